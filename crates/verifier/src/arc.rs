//! The ARC chain (RFC 8617): whether the message's ARC sets form a valid chain.
//!
//! The cryptography and chain walk are mail-auth's, run against this crate's resolver so that
//! they share the DNS configuration and cache of the other checks. Around it this module
//! enforces what mail-auth lets through but RFC 8617 does not: every set complete, ARC-Seal and
//! ARC-Message-Signature tag lists well-formed (RFC 6376 §3.2: no empty or duplicate tags, tag
//! names case-sensitive), the required tags present, `a=` a permitted algorithm, no ARC-Seal in
//! an AMS `h=`, and no RSA key under 1024 bits (RFC 8301).
//!
//! The tester reports the chain's state: `none` (no ARC header fields), `pass` or `fail`, with
//! the reason for a failure. A DNS failure or the time limit also gives `fail`, with a reason
//! that says to try again.

use std::time::Duration;

use base64::Engine as _;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use rsa::traits::PublicKeyParts as _;

use crate::dkim::tags::{TagList, without_fws};
use crate::dkim::{MIN_RSA_BITS, rsa_public_key};
use crate::dns::Dns;
use crate::report::{ArcReport, ArcResult};

const ARC_SEAL: &str = "ARC-Seal";
const ARC_MESSAGE_SIGNATURE: &str = "ARC-Message-Signature";
const ARC_AUTHENTICATION_RESULTS: &str = "ARC-Authentication-Results";
/// The most ARC sets a chain may have: instance numbers run from 1 to 50 (RFC 8617 §4.2.1).
const MAX_SETS: u32 = 50;
/// The signing algorithms an ARC set may use (RFC 8617 with RFC 8463).
const PERMITTED_ALGORITHMS: [&str; 2] = ["rsa-sha256", "ed25519-sha256"];

/// Validates the ARC chain of `message`, giving up after `time_limit`.
pub async fn verify_chain(dns: &Dns, message: &[u8], time_limit: Duration) -> ArcReport {
    let fields = arc_fields(message);
    let sets = count_sets(&fields);
    let fail = |reason: String| ArcReport {
        result: ArcResult::Fail,
        sets,
        reason,
    };
    if sets == 0 {
        return ArcReport {
            result: ArcResult::None,
            sets,
            reason: "The message carries no ARC header fields.".into(),
        };
    }
    if sets > MAX_SETS {
        return fail(format!(
            "The ARC chain is malformed: the message carries {sets} ARC sets, and RFC 8617 allows at most \
             {MAX_SETS} (i=1 to {MAX_SETS})."
        ));
    }
    if let Some(problem) = structural_problem(&fields) {
        return fail(format!("The ARC chain is malformed: {problem}."));
    }
    let Some(parsed) = AuthenticatedMessage::parse(message) else {
        return fail("The message header could not be parsed.".into());
    };
    let authenticator = MessageAuthenticator(dns.resolver().clone());
    let checked = tokio::time::timeout(time_limit, async {
        let output = authenticator.verify_arc(&parsed).await;
        match output.result() {
            DkimResult::Pass => short_key(dns, &fields).await.map_or(Ok(()), Err),
            DkimResult::TempError(error) => Err(format!(
                "The ARC chain could not be validated because a DNS lookup failed ({error}); try again later."
            )),
            DkimResult::None => Err("The message carries no complete ARC set.".into()),
            DkimResult::Fail(error) | DkimResult::Neutral(error) | DkimResult::PermError(error) => {
                Err(format!("The ARC chain does not validate: {error}."))
            }
        }
    })
    .await;
    match checked {
        Ok(Ok(())) => ArcReport {
            result: ArcResult::Pass,
            sets,
            reason: format!("All {sets} ARC set(s) validate: the chain is intact."),
        },
        Ok(Err(reason)) => fail(reason),
        Err(_) => fail(format!(
            "ARC validation did not finish within {} ms (DNS too slow); try again later.",
            time_limit.as_millis()
        )),
    }
}

/// One ARC header field: its name as written and its unfolded-as-is value.
struct ArcField {
    name: String,
    value: String,
}

impl ArcField {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The ARC header fields of `message`, in header order.
fn arc_fields(message: &[u8]) -> Vec<ArcField> {
    let mut fields: Vec<ArcField> = Vec::new();
    let mut in_arc_field = false;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            if in_arc_field && let Some(field) = fields.last_mut() {
                field.value.push_str("\r\n");
                field.value.push_str(&text);
            }
            continue;
        }
        in_arc_field = false;
        if let Some((name, value)) = text.split_once(':') {
            let name = name.trim_end();
            if [ARC_SEAL, ARC_MESSAGE_SIGNATURE, ARC_AUTHENTICATION_RESULTS]
                .iter()
                .any(|arc| name.eq_ignore_ascii_case(arc))
            {
                fields.push(ArcField {
                    name: name.to_string(),
                    value: value.to_string(),
                });
                in_arc_field = true;
            }
        }
    }
    fields
}

/// How many ARC sets the message carries: the most fields of any one ARC header field type,
/// so that a broken set still counts.
fn count_sets(fields: &[ArcField]) -> u32 {
    let count = |name: &str| fields.iter().filter(|field| field.is(name)).count();
    let most = count(ARC_SEAL)
        .max(count(ARC_MESSAGE_SIGNATURE))
        .max(count(ARC_AUTHENTICATION_RESULTS));
    u32::try_from(most).unwrap_or(u32::MAX)
}

/// The first way the ARC fields break RFC 8617's structure rules, if any.
fn structural_problem(fields: &[ArcField]) -> Option<String> {
    let count = |name: &str| fields.iter().filter(|field| field.is(name)).count();
    let (seals, signatures, results) = (
        count(ARC_SEAL),
        count(ARC_MESSAGE_SIGNATURE),
        count(ARC_AUTHENTICATION_RESULTS),
    );
    if seals != signatures || seals != results {
        return Some(format!(
            "the message has {seals} {ARC_SEAL}, {signatures} {ARC_MESSAGE_SIGNATURE} and {results} \
             {ARC_AUTHENTICATION_RESULTS} field(s), but every ARC set needs exactly one of each"
        ));
    }
    for field in fields {
        let required: &[&str] = if field.is(ARC_SEAL) {
            &["i", "a", "b", "cv", "d", "s"]
        } else if field.is(ARC_MESSAGE_SIGNATURE) {
            &["i", "a", "b", "bh", "d", "h", "s"]
        } else {
            continue;
        };
        let tags = match TagList::parse(&field.value) {
            Ok(tags) => tags,
            Err(problem) => {
                return Some(format!(
                    "an {} field has a malformed tag list: {problem}",
                    field.name
                ));
            }
        };
        let value = |name: &str| tags.value(name);
        let instance = value("i").unwrap_or("?");
        if let Some(missing) = required.iter().find(|tag| value(tag).is_none()) {
            return Some(format!("{} i={instance} has no {missing}= tag", field.name));
        }
        let algorithm = value("a").unwrap_or_default();
        if !PERMITTED_ALGORITHMS.contains(&algorithm) {
            return Some(format!(
                "{} i={instance} uses a={algorithm}; ARC allows only {}",
                field.name,
                PERMITTED_ALGORITHMS.join(" and ")
            ));
        }
        if field.is(ARC_MESSAGE_SIGNATURE)
            && value("h")
                .unwrap_or_default()
                .split(':')
                .any(|header| header.trim().eq_ignore_ascii_case(ARC_SEAL))
        {
            return Some(format!(
                "{ARC_MESSAGE_SIGNATURE} i={instance} signs ARC-Seal fields, which RFC 8617 §4.1.2 forbids"
            ));
        }
    }
    None
}

/// The first ARC-Seal or ARC-Message-Signature key that is an RSA key under 1024 bits, as a
/// reason. The records are in the resolver's cache by now: mail-auth has just fetched them.
async fn short_key(dns: &Dns, fields: &[ArcField]) -> Option<String> {
    for field in fields
        .iter()
        .filter(|field| field.is(ARC_SEAL) || field.is(ARC_MESSAGE_SIGNATURE))
    {
        let Ok(tags) = TagList::parse(&field.value) else {
            continue;
        };
        let value = |name: &str| tags.value(name);
        let (Some("rsa-sha256"), Some(selector), Some(domain)) =
            (value("a"), value("s"), value("d"))
        else {
            continue;
        };
        let name = format!("{selector}._domainkey.{domain}");
        let Ok(records) = dns.txt(&name).await else {
            continue;
        };
        for record in records {
            let Some(bits) = rsa_key_bits(&record) else {
                continue;
            };
            if bits < MIN_RSA_BITS {
                return Some(format!(
                    "The {} key at {name} is a {bits}-bit RSA key; keys under {MIN_RSA_BITS} bits are refused (RFC 8301).",
                    field.name
                ));
            }
        }
    }
    None
}

/// The modulus size of the RSA key in a DKIM key record (SubjectPublicKeyInfo or bare PKCS#1).
fn rsa_key_bits(record: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(record).ok()?;
    let tags = TagList::parse(text).ok()?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(without_fws(tags.value("p")?))
        .ok()?;
    Some(rsa_public_key(&der).ok()?.n().bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_sets_and_forbidden_tags_are_named() {
        let fields = |list: &[(&str, &str)]| -> Vec<ArcField> {
            list.iter()
                .map(|(name, value)| ArcField {
                    name: name.to_string(),
                    value: value.to_string(),
                })
                .collect()
        };
        let seal = "i=1; a=rsa-sha256; cv=none; d=example.test; s=sel; b=AAAA";
        let signature = "i=1; a=rsa-sha256; d=example.test; s=sel; h=from:to; bh=AAAA; b=AAAA";
        let results = "i=1; example.test; spf=pass";
        assert_eq!(
            structural_problem(&fields(&[
                (ARC_SEAL, seal),
                (ARC_MESSAGE_SIGNATURE, signature),
                (ARC_AUTHENTICATION_RESULTS, results)
            ])),
            None
        );
        let missing = structural_problem(&fields(&[
            (ARC_SEAL, seal),
            (ARC_AUTHENTICATION_RESULTS, results),
        ]))
        .unwrap();
        assert!(missing.contains("needs exactly one of each"), "{missing}");
        let sha1 = seal.replace("rsa-sha256", "rsa-sha1");
        let problem = structural_problem(&fields(&[
            (ARC_SEAL, &sha1),
            (ARC_MESSAGE_SIGNATURE, signature),
            (ARC_AUTHENTICATION_RESULTS, results),
        ]));
        assert!(problem.unwrap().contains("a=rsa-sha1"));
        let signs_seal = signature.replace("h=from:to", "h=from:ARC-Seal");
        let problem = structural_problem(&fields(&[
            (ARC_SEAL, seal),
            (ARC_MESSAGE_SIGNATURE, &signs_seal),
            (ARC_AUTHENTICATION_RESULTS, results),
        ]));
        assert!(problem.unwrap().contains("forbids"));
        let upper = seal.replace("s=sel", "S=sel");
        let problem = structural_problem(&fields(&[
            (ARC_SEAL, &upper),
            (ARC_MESSAGE_SIGNATURE, signature),
            (ARC_AUTHENTICATION_RESULTS, results),
        ]));
        assert!(problem.unwrap().contains("no s= tag"));
    }
}
