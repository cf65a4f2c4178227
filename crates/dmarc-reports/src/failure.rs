//! The typed DMARC failure report: RFC 6591 authentication-failure ARF (RFC 5965), the
//! RFC 9991 fields DMARCbis adds, and a plain-text report with no machine-readable part.
//!
//! The `message/feedback-report` part is a block of header-like fields; they are read here
//! (folded lines, LF or CRLF), the known ones into types and every other one kept as written.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::aggregate::Warning;
use crate::limits::Limits;
use crate::rejection::Rejection;
use crate::warnings::Warnings;

/// How the failure report was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureFormat {
    /// An ARF report (RFC 5965) with RFC 6591 authentication-failure fields.
    Rfc6591,
    /// An ARF report with the RFC 9991 `Identity-Alignment` field (DMARCbis).
    Rfc9991,
    /// A message that reports a failure in prose only; its text is kept.
    PlainText,
}

impl fmt::Display for FailureFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureFormat::Rfc6591 => "ARF (RFC 6591)",
            FailureFormat::Rfc9991 => "ARF (RFC 9991)",
            FailureFormat::PlainText => "plain text",
        })
    }
}

/// One failure report: the report message's own facts, the machine-readable fields if any, the
/// human-readable text and the headers of the message that failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureReport {
    pub format: FailureFormat,
    /// The report message's `From` address.
    pub reporter: Option<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    /// The report message's `Date`, seconds since the Unix epoch.
    pub date: Option<i64>,
    /// The `message/feedback-report` fields; `None` for a plain-text report.
    pub feedback: Option<Box<Feedback>>,
    /// The human-readable part(s).
    pub text: String,
    /// The header block of the reported message (from `message/rfc822` or
    /// `text/rfc822-headers`), as written.
    pub original_headers: Option<String>,
    /// What the parser could not place. At most [`Limits::max_warnings`](crate::Limits), each
    /// once.
    pub warnings: Vec<Warning>,
    /// Further warnings left out of `warnings` once it was full.
    #[serde(default)]
    pub warnings_omitted: u64,
}

/// The fields of a `message/feedback-report` part.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub feedback_type: Option<FeedbackType>,
    pub version: Option<String>,
    pub user_agent: Option<String>,
    pub auth_failure: Vec<AuthFailure>,
    /// RFC 9991: which identifiers aligned (empty for `none`).
    pub identity_alignment: Option<Vec<AlignedIdentity>>,
    pub delivery_result: Option<DeliveryResult>,
    pub source_ip: Option<IpAddr>,
    pub arrival_date: Option<String>,
    pub original_mail_from: Option<String>,
    pub original_rcpt_to: Vec<String>,
    pub original_envelope_id: Option<String>,
    pub reported_domain: Vec<String>,
    pub reported_uri: Vec<String>,
    pub authentication_results: Vec<String>,
    pub dkim_domain: Option<String>,
    pub dkim_identity: Option<String>,
    pub dkim_selector: Option<String>,
    pub dkim_canonicalized_header: Option<String>,
    pub dkim_canonicalized_body: Option<String>,
    pub dkim_selector_dns: Option<String>,
    pub spf_dns: Vec<String>,
    pub incidents: Option<u64>,
    /// Every field not named above, in order, as (name, value).
    pub other_fields: Vec<(String, String)>,
}

closed_set! {
    /// RFC 5965 feedback types; DMARC failure reports are `auth-failure`.
    FeedbackType {
        AuthFailure => "auth-failure",
        Abuse => "abuse",
        Fraud => "fraud",
        NotSpam => "not-spam",
        Virus => "virus",
        Other => "other",
    }
}

closed_set! {
    /// RFC 6591 `Auth-Failure` values (with `dmarc` from RFC 7489 and RFC 9991).
    AuthFailure {
        Adsp => "adsp",
        BodyHash => "bodyhash",
        Revoked => "revoked",
        Signature => "signature",
        Spf => "spf",
        Dmarc => "dmarc",
    }
}

closed_set! {
    /// RFC 6591 `Delivery-Result` values.
    DeliveryResult {
        Delivered => "delivered",
        Spam => "spam",
        Policy => "policy",
        Reject => "reject",
        Other => "other",
    }
}

closed_set! {
    /// RFC 9991 `Identity-Alignment` identifiers.
    AlignedIdentity { Dkim => "dkim", Spf => "spf" }
}

/// Splits a header-like block into unfolded `(name, value)` fields. Lines without a colon are
/// skipped (real reports have blank separators and stray lines).
pub(crate) fn fields(block: &str, limits: &Limits) -> Result<Vec<(String, String)>, Rejection> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((name, value)) = fields.last_mut() {
                if value.len() + line.len() > limits.max_field_bytes {
                    return Err(Rejection::FieldTooLong {
                        element: name.clone(),
                        limit: limits.max_field_bytes,
                    });
                }
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(' ') {
                fields.push((name.to_owned(), value.trim().to_owned()));
            }
        }
    }
    Ok(fields)
}

/// Reads the fields of a `message/feedback-report` part.
pub(crate) fn feedback(
    block: &str,
    limits: &Limits,
    warnings: &mut Warnings,
) -> Result<Feedback, Rejection> {
    let mut feedback = Feedback::default();
    let mut unknown = |field: &str, value: &str| {
        warnings.push(Warning::UnknownValue {
            field: field.to_owned(),
            value: value.to_owned(),
        });
    };
    for (name, value) in fields(block, limits)? {
        let optional = (!value.is_empty()).then(|| value.clone());
        match name.to_ascii_lowercase().as_str() {
            "feedback-type" => {
                feedback.feedback_type = FeedbackType::parse(&value);
                if feedback.feedback_type.is_none() {
                    unknown(&name, &value);
                }
            }
            "version" => feedback.version = optional,
            "user-agent" => feedback.user_agent = optional,
            "auth-failure" => match AuthFailure::parse(&value) {
                Some(failure) => feedback.auth_failure.push(failure),
                None => unknown(&name, &value),
            },
            "identity-alignment" => {
                let mut aligned = Vec::new();
                for identity in value.split(',').map(str::trim) {
                    if identity.eq_ignore_ascii_case("none") || identity.is_empty() {
                        continue;
                    }
                    match AlignedIdentity::parse(identity) {
                        Some(identity) => aligned.push(identity),
                        None => unknown(&name, identity),
                    }
                }
                feedback.identity_alignment = Some(aligned);
            }
            "delivery-result" => {
                feedback.delivery_result = DeliveryResult::parse(&value);
                if feedback.delivery_result.is_none() {
                    unknown(&name, &value);
                }
            }
            "source-ip" => {
                // Some reporters bracket the address or append a comment.
                let address = value
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_matches(['[', ']']);
                feedback.source_ip = address.parse().ok();
                if feedback.source_ip.is_none() {
                    unknown(&name, &value);
                }
            }
            "arrival-date" | "received-date" => feedback.arrival_date = optional,
            "original-mail-from" => feedback.original_mail_from = optional,
            "original-rcpt-to" => feedback.original_rcpt_to.push(value),
            "original-envelope-id" => feedback.original_envelope_id = optional,
            "reported-domain" => feedback.reported_domain.push(value),
            "reported-uri" => feedback.reported_uri.push(value),
            "authentication-results" => feedback.authentication_results.push(value),
            "dkim-domain" => feedback.dkim_domain = optional,
            "dkim-identity" => feedback.dkim_identity = optional,
            "dkim-selector" => feedback.dkim_selector = optional,
            "dkim-canonicalized-header" => feedback.dkim_canonicalized_header = optional,
            "dkim-canonicalized-body" => feedback.dkim_canonicalized_body = optional,
            "dkim-selector-dns" => feedback.dkim_selector_dns = optional,
            "spf-dns" => feedback.spf_dns.push(value),
            "incidents" => {
                feedback.incidents = value.parse().ok();
                if feedback.incidents.is_none() {
                    unknown(&name, &value);
                }
            }
            _ => feedback.other_fields.push((name, value)),
        }
    }
    Ok(feedback)
}
