//! The ARC chain (RFC 8617): whether the message's ARC sets form a valid chain.
//!
//! Validation is mail-auth's, run against this crate's resolver so that it shares the DNS
//! configuration and cache of the other checks. The tester only reports the chain's state:
//! `none` (no ARC header fields), `pass` or `fail`, with the reason for a failure.

use std::time::Duration;

use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};

use crate::dns::Dns;
use crate::report::{ArcReport, ArcResult};

/// Validates the ARC chain of `message`, giving up after `time_limit`.
pub async fn verify_chain(dns: &Dns, message: &[u8], time_limit: Duration) -> ArcReport {
    let sets = count_sets(message);
    if sets == 0 {
        return ArcReport { result: ArcResult::None, sets, reason: "The message carries no ARC header fields.".into() };
    }
    let Some(parsed) = AuthenticatedMessage::parse(message) else {
        return ArcReport { result: ArcResult::Fail, sets, reason: "The message header could not be parsed.".into() };
    };
    let authenticator = MessageAuthenticator(dns.resolver().clone());
    let (result, reason) = match tokio::time::timeout(time_limit, authenticator.verify_arc(&parsed)).await {
        Err(_) => (
            ArcResult::Fail,
            format!("ARC validation did not finish within {} s (DNS too slow); try again later.", time_limit.as_secs()),
        ),
        Ok(output) => match output.result() {
            DkimResult::Pass => (ArcResult::Pass, format!("All {sets} ARC set(s) validate: the chain is intact.")),
            DkimResult::None => (ArcResult::None, "The message carries no complete ARC set.".into()),
            DkimResult::Fail(error) | DkimResult::Neutral(error) | DkimResult::PermError(error) => {
                (ArcResult::Fail, format!("The ARC chain does not validate: {error}."))
            }
            DkimResult::TempError(error) => (
                ArcResult::Fail,
                format!("The ARC chain could not be validated because a DNS lookup failed ({error}); try again later."),
            ),
        },
    };
    ArcReport { result, sets, reason }
}

/// How many ARC sets the message carries: the most fields of any one ARC header field type,
/// so that a broken set still counts.
fn count_sets(message: &[u8]) -> u32 {
    let names = header_field_names(message);
    let count = |wanted: &str| names.iter().filter(|name| name.eq_ignore_ascii_case(wanted)).count();
    let most = count("ARC-Seal").max(count("ARC-Message-Signature")).max(count("ARC-Authentication-Results"));
    u32::try_from(most).unwrap_or(u32::MAX)
}

/// The names of the header fields of `message`, in order (continuation lines skipped).
fn header_field_names(message: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            names.push(String::from_utf8_lossy(&line[..colon]).trim_end().to_string());
        }
    }
    names
}
