//! Which signed header field changed, when an earlier copy of the message shows its old value:
//! the signature's own `z=` tag (copies of the header fields as signed, RFC 6376 §3.5), or a
//! message/rfc822 part holding the original (a filter that wraps the message it changed, such
//! as a spam report, attaches it).
//!
//! An attached message counts as an earlier copy only when it is the same message: it carries
//! the failing signature itself (the same `b=`) or the same Message-ID. A message forwarded as
//! an attachment is a different message, and its Subject is different for good reason.

use mail_parser::MessageParser;

use super::{Facts, Finding, FindingCode, MAX_SIGNATURES_DIAGNOSED, Severity};
use crate::dkim::canonical::{Canonicalization, canonical_header};
use crate::dkim::message::RawMessage;
use crate::dkim::tags::{TagList, without_fws};
use crate::report::{DkimReasonCode, DkimResult, DkimSignatureReport};

/// The most attached messages looked at.
const MAX_ATTACHED_MESSAGES: usize = 5;
/// The most changed fields named per signature.
const MAX_CHANGED_FIELDS: usize = 5;

/// Where the old values come from.
enum EarlierCopy<'a> {
    /// The signature's `z=` tag: `name:value` pairs as the signer saw them.
    CopiedFields(Vec<(String, Vec<u8>)>),
    /// A message/rfc822 part that is the same message.
    Attached(&'a RawMessage<'a>),
}

impl EarlierCopy<'_> {
    fn describe(&self) -> &'static str {
        match self {
            EarlierCopy::CopiedFields(_) => "the signature's z= tag (the header fields as signed)",
            EarlierCopy::Attached(_) => "the original attached to it (a message/rfc822 part)",
        }
    }

    /// The field named `name` in this copy, relaxed-canonicalized (`name:value`), if present.
    fn field(&self, name: &str) -> Option<Vec<u8>> {
        match self {
            EarlierCopy::CopiedFields(fields) => fields
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(n, value)| {
                    let mut field = format!("{n}:").into_bytes();
                    field.extend_from_slice(value);
                    relaxed(&field)
                }),
            EarlierCopy::Attached(message) => last_field(message, name),
        }
    }
}

pub(crate) fn diagnose(facts: &Facts<'_>, findings: &mut Vec<Finding>) {
    let failing: Vec<&DkimSignatureReport> = facts
        .report
        .dkim
        .iter()
        .filter(|s| {
            s.result == DkimResult::Fail
                && matches!(
                    s.reason_code,
                    DkimReasonCode::SignatureMismatch | DkimReasonCode::BodyHashMismatch
                )
        })
        .take(MAX_SIGNATURES_DIAGNOSED)
        .collect();
    if failing.is_empty() {
        return;
    }
    // Parsed once, and only when a signature fails.
    let parsed = MessageParser::default().parse(facts.message.bytes());
    let attached: Vec<RawMessage<'_>> = parsed
        .iter()
        .flat_map(|message| message.parts.iter())
        .filter_map(|part| part.message())
        .take(MAX_ATTACHED_MESSAGES)
        .map(|message| RawMessage::parse(message.raw_message()))
        .collect();
    for signature in failing {
        let copies = copies_of(facts, signature, &attached);
        let found = copies
            .iter()
            .find_map(|copy| changed_fields(facts, signature, copy));
        findings.extend(found);
    }
}

/// The earlier copies of the header that `signature` signed: its `z=` and the attached
/// messages that are this message.
fn copies_of<'a>(
    facts: &Facts<'_>,
    signature: &DkimSignatureReport,
    attached: &'a [RawMessage<'a>],
) -> Vec<EarlierCopy<'a>> {
    let tags = TagList::parse_lenient(&signature.header_value);
    let mut copies = Vec::new();
    if let Some(z) = tags.value("z") {
        copies.push(EarlierCopy::CopiedFields(copied_fields(z)));
    }
    let b = tags.value("b").map(without_fws).filter(|b| !b.is_empty());
    let message_id = last_field(facts.message, "Message-ID");
    for message in attached {
        let same_signature = b.as_ref().is_some_and(|b| {
            message
                .fields()
                .iter()
                .filter(|field| message.is_named(field, "DKIM-Signature"))
                .any(|field| {
                    let value = String::from_utf8_lossy(message.field_value(field));
                    TagList::parse_lenient(&value)
                        .value("b")
                        .is_some_and(|found| without_fws(found) == *b)
                })
        });
        let same_id = message_id.is_some() && last_field(message, "Message-ID") == message_id;
        if same_signature || same_id {
            copies.push(EarlierCopy::Attached(message));
        }
    }
    copies
}

/// The signed fields whose value in `copy` differs from this message's, as a finding.
fn changed_fields(
    facts: &Facts<'_>,
    signature: &DkimSignatureReport,
    copy: &EarlierCopy<'_>,
) -> Option<Finding> {
    let mut names: Vec<&str> = Vec::new();
    for name in &signature.signed_headers {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name);
        }
    }
    let changed: Vec<(&str, Vec<u8>, Vec<u8>)> = names
        .into_iter()
        .filter_map(|name| {
            let before = copy.field(name)?;
            let now = last_field(facts.message, name)?;
            (before != now).then_some((name, before, now))
        })
        .take(MAX_CHANGED_FIELDS)
        .collect();
    if changed.is_empty() {
        return None;
    }
    let domain = &signature.domain;
    let names: Vec<String> = changed
        .iter()
        .map(|(name, _, _)| display_name(name))
        .collect();
    let (list, differ, them) = match names.as_slice() {
        [one] => (format!("the {one} field"), "differs", "it"),
        [rest @ .., last] => (
            format!("the {} and {last} fields", rest.join(", ")),
            "differ",
            "them",
        ),
        [] => return None,
    };
    let mut finding = Finding::new(
        FindingCode::SignedHeaderChanged,
        Severity::Problem,
        format!(
            "{} changed after {domain} signed the message",
            capitalized(&list)
        ),
        format!(
            "An earlier copy of this message, in {}, shows what {domain} signed; {list} of the \
             message that arrived here {differ} from it. {domain}'s signature covers {them}, so the \
             change breaks the signature.",
            copy.describe(),
        ),
    );
    for (_, before, now) in &changed {
        finding = finding
            .evidence(format!("signed: {}", String::from_utf8_lossy(before)))
            .evidence(format!("now: {}", String::from_utf8_lossy(now)));
    }
    Some(finding.fix(format!(
        "Find the filter or gateway that rewrites {list} on the way and switch that off for mail \
         from {domain}, or have it sign the message again with its own domain after the change."
    )))
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().collect::<String>() + chars.as_str()
    })
}

/// `subject` → `Subject`, `message-id` → `Message-ID`: names as people write them.
fn display_name(name: &str) -> String {
    name.split('-')
        .map(|word| {
            if word.eq_ignore_ascii_case("id") {
                "ID".to_string()
            } else {
                let mut chars = word.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                })
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The last field named `name` in `message` (the one a signature covers first),
/// relaxed-canonicalized without its CRLF.
fn last_field(message: &RawMessage<'_>, name: &str) -> Option<Vec<u8>> {
    let field = message
        .fields()
        .iter()
        .rev()
        .find(|field| message.is_named(field, name))?;
    Some(relaxed(message.field_bytes(field)))
}

fn relaxed(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    canonical_header(field, Canonicalization::Relaxed, &mut out);
    out.truncate(out.len().saturating_sub(2));
    out
}

/// `z=`'s `name:value|name:value` with dkim-quoted-printable (`=XX`) decoded.
fn copied_fields(z: &str) -> Vec<(String, Vec<u8>)> {
    without_fws(z)
        .split('|')
        .filter_map(|copied| {
            let (name, value) = copied.split_once(':')?;
            Some((name.trim().to_string(), quoted_printable(value)))
        })
        .collect()
}

fn quoted_printable(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = value.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_copies_are_split_and_decoded() {
        // RFC 6376 §3.5's example, folded.
        let fields = copied_fields(
            "From:foo@eng.example.net|To:joe@example.com|\r\n Subject:demo=20run|Date:July=205,=202005=203:44:08=20PM=20-0700",
        );
        assert_eq!(fields.len(), 4);
        assert_eq!(fields[2], ("Subject".to_string(), b"demo run".to_vec()));
        let copy = EarlierCopy::CopiedFields(fields);
        assert_eq!(copy.field("subject").unwrap(), b"subject:demo run");
        assert_eq!(copy.field("Cc"), None);
    }
}
