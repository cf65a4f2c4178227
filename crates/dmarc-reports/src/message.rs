//! Finding the report inside an email message.
//!
//! An aggregate report travels as an attachment (base64 or not), as the message body itself, or
//! beside a text part; a failure report is a `multipart/report` with a `message/feedback-report`
//! part, sometimes itself attached to another message, and sometimes only prose. The MIME
//! structure is read with mail-parser; which part is the report is decided by content, never by
//! the declared type or file name.

use mail_parser::{HeaderName, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::container::{Sniffed, sniff};
use crate::failure::{self, FailureFormat, FailureReport};
use crate::limits::Limits;
use crate::rejection::Rejection;
use crate::warnings::Warnings;
use crate::{Report, parse_payload};

pub(crate) fn parse_message(
    bytes: &[u8],
    limits: &Limits,
    depth: usize,
) -> Result<Report, Rejection> {
    let message = MessageParser::default()
        .parse(bytes)
        // Bytes that merely happen to contain a colon are not a message: it takes one header
        // field mail-parser knows (From, Subject, Content-Type...).
        .filter(|m| {
            m.headers()
                .iter()
                .any(|h| !matches!(h.name, HeaderName::Other(_)))
        })
        .ok_or(Rejection::UnrecognisedFormat)?;

    if let Some(report) = feedback_report(&message, limits)? {
        return Ok(Report::Failure(report));
    }

    let mut candidates: Vec<&[u8]> = Vec::new();
    let mut nested: Vec<Result<Report, Rejection>> = Vec::new();
    let mut other_attachment = None;
    let mut text = String::new();
    for part in leaves(&message) {
        match &part.body {
            PartType::Text(body) | PartType::Html(body) => {
                if sniff(body.as_bytes()) == Sniffed::Xml && body.contains("<feedback") {
                    candidates.push(body.as_bytes());
                } else if matches!(part.body, PartType::Text(_)) {
                    push_text(&mut text, body);
                }
            }
            PartType::Binary(body) | PartType::InlineBinary(body) => match sniff(body) {
                Sniffed::Gzip | Sniffed::Zip | Sniffed::Xml => candidates.push(body),
                Sniffed::Mbox | Sniffed::Other => match parse_payload(body, limits, depth + 1) {
                    Ok(report) => nested.push(Ok(report)),
                    Err(Rejection::UnrecognisedFormat) => {
                        other_attachment.get_or_insert_with(|| content_type(part));
                    }
                    Err(rejection) => nested.push(Err(rejection)),
                },
            },
            PartType::Message(inner) => match parse_payload(inner.raw_message(), limits, depth + 1)
            {
                // A forwarded message in prose is text, not a report of its own.
                Ok(Report::Failure(report)) if report.format == FailureFormat::PlainText => {
                    push_text(&mut text, &report.text);
                }
                result => nested.push(result),
            },
            PartType::Multipart(_) => {}
        }
    }

    // The same report attached twice (in two encodings, say) is one report.
    candidates.sort_unstable();
    candidates.dedup();
    let found = candidates.len() + nested.iter().filter(|r| r.is_ok()).count();
    if found > 1 {
        return Err(Rejection::SeveralReports { count: found });
    }
    if let Some(bytes) = candidates.first() {
        return parse_payload(bytes, limits, depth + 1);
    }
    if let Some(index) = nested.iter().position(|r| r.is_ok()) {
        return nested.swap_remove(index);
    }
    // An attachment that looked like a report but was not: its reason is the report's.
    if let Some(rejection) = nested.into_iter().find_map(|r| r.err()) {
        return Err(rejection);
    }
    if let Some(content_type) = other_attachment {
        return Err(Rejection::NoReportInMessage { content_type });
    }
    if text.trim().is_empty() {
        return Err(Rejection::EmptyMessage);
    }
    Ok(Report::Failure(FailureReport {
        format: FailureFormat::PlainText,
        feedback: None,
        text,
        original_headers: None,
        warnings: Vec::new(),
        ..report_facts(&message)
    }))
}

/// An ARF report: the message has a `message/feedback-report` part.
fn feedback_report(
    message: &Message<'_>,
    limits: &Limits,
) -> Result<Option<FailureReport>, Rejection> {
    let Some(part) = leaves(message).find(|p| is_type(p, "message", "feedback-report")) else {
        return Ok(None);
    };
    let block = String::from_utf8_lossy(part.contents());
    let mut warnings = Warnings::new(limits.max_warnings);
    let feedback = failure::feedback(&block, limits, &mut warnings)?;
    let (warnings, warnings_omitted) = warnings.finish();
    let mut text = String::new();
    let mut original_headers = None;
    for part in leaves(message) {
        match &part.body {
            PartType::Message(original) => {
                original_headers.get_or_insert_with(|| header_block(original.raw_message()));
            }
            PartType::Text(body) if is_type(part, "text", "rfc822-headers") => {
                original_headers.get_or_insert_with(|| body.to_string());
            }
            // A reporter that labels the original `text/plain` or sends it undecoded as
            // binary is rare; the raw message keeps it either way.
            PartType::Text(body) if !is_type(part, "message", "feedback-report") => {
                push_text(&mut text, body);
            }
            _ => {}
        }
    }
    let format = if feedback.identity_alignment.is_some() {
        FailureFormat::Rfc9991
    } else {
        FailureFormat::Rfc6591
    };
    Ok(Some(FailureReport {
        format,
        feedback: Some(Box::new(feedback)),
        text,
        original_headers,
        warnings,
        warnings_omitted,
        ..report_facts(message)
    }))
}

/// The report message's own From, Subject, Message-ID and Date.
fn report_facts(message: &Message<'_>) -> FailureReport {
    FailureReport {
        format: FailureFormat::PlainText,
        reporter: message
            .from()
            .and_then(|from| from.first())
            .and_then(|address| address.address())
            .map(str::to_owned),
        subject: message.subject().map(str::to_owned),
        message_id: message.message_id().map(str::to_owned),
        date: message.date().map(|date| date.to_timestamp()),
        feedback: None,
        text: String::new(),
        original_headers: None,
        warnings: Vec::new(),
        warnings_omitted: 0,
    }
}

/// The parts that carry content (not multipart containers), the root included when the message
/// is not multipart.
fn leaves<'m>(message: &'m Message<'m>) -> impl Iterator<Item = &'m MessagePart<'m>> {
    message
        .parts
        .iter()
        .filter(|part| !matches!(part.body, PartType::Multipart(_)))
}

fn is_type(part: &MessagePart<'_>, ctype: &str, subtype: &str) -> bool {
    part.content_type().is_some_and(|t| {
        t.ctype().eq_ignore_ascii_case(ctype)
            && t.subtype().is_some_and(|s| s.eq_ignore_ascii_case(subtype))
    })
}

fn content_type(part: &MessagePart<'_>) -> String {
    part.content_type().map_or_else(
        || "no content type".to_owned(),
        |t| match t.subtype() {
            Some(subtype) => format!("{}/{}", t.ctype(), subtype),
            None => t.ctype().to_owned(),
        },
    )
}

fn push_text(text: &mut String, body: &str) {
    if !text.is_empty() {
        text.push_str("\n\n");
    }
    text.push_str(body.trim_end());
}

/// The header block of a raw message: everything before the first empty line.
fn header_block(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let end = [text.find("\r\n\r\n"), text.find("\n\n")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(text.len());
    text[..end].to_owned()
}
