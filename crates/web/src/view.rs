//! What the templates show, prepared from stored results: table rows, verdict colours, times,
//! the message's header fields and the SPF trace as a flat list of open/close steps, and the
//! [`filters`] the templates apply.
//!
//! Anything taken from a message is shown bounded (see [`authcheck_verifier::display::bounded_display_text`])
//! and in bounded number (header fields, trace steps, signatures: "N more"), so that a hostile
//! message gives a page of bounded size; the raw download keeps everything.

use authcheck_store::ResultSummary;
use authcheck_verifier::display::{
    MAX_DISPLAY_FIELD_BYTES, MAX_LISTED_FIELD_BYTES, bounded_display_text,
};
use authcheck_verifier::{Grade, SpfTraceStep, Verdict, shown_verdicts, worst_grade};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Header fields shown on a result page; the rest are counted.
pub(crate) const MAX_HEADER_FIELDS_SHOWN: usize = 100;
/// SPF trace steps shown per check (nested steps included); the rest are counted.
pub(crate) const MAX_TRACE_STEPS_SHOWN: usize = 200;
/// DKIM signatures detailed on a result page; the rest are counted.
pub(crate) const MAX_SIGNATURES_SHOWN: usize = 20;

/// One line of a results table (and the fields a live update needs to draw one).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ResultRow {
    pub(crate) id: String,
    pub(crate) mailbox: &'static str,
    pub(crate) time: String,
    pub(crate) mail_from: String,
    pub(crate) header_from: String,
    pub(crate) prefixed_subject: String,
    pub(crate) verdict_class: &'static str,
}

impl ResultRow {
    pub(crate) fn new(result: &ResultSummary) -> Self {
        ResultRow {
            id: result.id.clone(),
            mailbox: result.mailbox.as_str(),
            time: utc_time(&result.received_at),
            mail_from: clip_listed(&display_mail_from(&result.session.mail_from)),
            header_from: clip_listed(result.header_from.as_deref().unwrap_or_default()),
            prefixed_subject: clip_listed(&result.prefixed_subject),
            verdict_class: stored_verdict_class(&result.verdict),
        }
    }
}

/// The null reverse-path shown as people write it.
pub(crate) fn display_mail_from(mail_from: &str) -> String {
    if mail_from.is_empty() {
        "<>".to_owned()
    } else {
        mail_from.to_owned()
    }
}

/// The CSS class colouring a verdict by its grade: `ok` (`|OK|`), `partial` (`|~OK|`),
/// `problem` (`!!`), or `unknown` when there is no verdict to show.
pub(crate) fn verdict_class(verdict: Option<Verdict>) -> &'static str {
    match verdict.map(Verdict::grade) {
        Some(Grade::Ok) => "ok",
        Some(Grade::PartialOk) => "partial",
        Some(Grade::Problem) => "problem",
        None => "unknown",
    }
}

/// The CSS class of a stored verdict text, which the store keeps exactly as shown: one
/// verdict, or both for a full check, coloured by the worse of the two.
pub(crate) fn stored_verdict_class(verdict: &str) -> &'static str {
    match shown_verdicts(verdict).as_deref().and_then(worst_grade) {
        Some(Grade::Ok) => "ok",
        Some(Grade::PartialOk) => "partial",
        Some(Grade::Problem) => "problem",
        None => "unknown",
    }
}

pub(crate) fn utc_time(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// One header field of the message as received.
#[derive(Debug, PartialEq)]
pub(crate) struct HeaderField {
    pub(crate) name: String,
    /// The value as written, folding line breaks included, without the final line break;
    /// bounded like every shown field.
    pub(crate) value: String,
}

/// The header fields shown on a result page, and how many more the message has.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ShownHeaders {
    pub(crate) fields: Vec<HeaderField>,
    pub(crate) more: usize,
}

/// The header fields of a raw message, in order, at most [`MAX_HEADER_FIELDS_SHOWN`] of them.
/// Stops at the first empty line; a line that is neither a field nor a continuation is shown
/// as a field with an empty name rather than lost.
pub(crate) fn header_fields(raw: &[u8]) -> ShownHeaders {
    let header_end = raw
        .windows(2)
        .position(|pair| pair == b"\n\n" || pair == b"\n\r")
        .map_or(raw.len(), |at| at + 1);
    let text = String::from_utf8_lossy(&raw[..header_end]);
    let mut fields: Vec<HeaderField> = Vec::new();
    let mut more = 0;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        if content.is_empty() {
            break;
        }
        let is_continuation = content.starts_with([' ', '\t']);
        if fields.len() == MAX_HEADER_FIELDS_SHOWN && !is_continuation {
            more += 1;
            continue;
        }
        match fields.last_mut() {
            Some(field) if is_continuation => {
                if more == 0 && field.value.len() <= MAX_DISPLAY_FIELD_BYTES {
                    field.value.push('\n');
                    field.value.push_str(content);
                }
            }
            _ => match content.split_once(':') {
                Some((name, value)) if !name.is_empty() && !name.contains([' ', '\t']) => fields
                    .push(HeaderField {
                        name: clip(name),
                        value: value.trim_start().to_owned(),
                    }),
                _ => fields.push(HeaderField {
                    name: String::new(),
                    value: content.to_owned(),
                }),
            },
        }
    }
    for field in &mut fields {
        field.value = clip(&field.value);
    }
    ShownHeaders { fields, more }
}

/// `text` bounded for display on a result page.
fn clip(text: &str) -> String {
    bounded_display_text(text, MAX_DISPLAY_FIELD_BYTES).into_owned()
}

/// `text` bounded for display in a listing, shorter than on a result page; the length noted
/// stays the length received.
pub(crate) fn clip_listed(text: &str) -> String {
    bounded_display_text(text, MAX_LISTED_FIELD_BYTES).into_owned()
}

/// One item of the flattened SPF trace: templates cannot recurse, so nesting becomes explicit
/// list openings and closings around the steps.
#[derive(Debug)]
pub(crate) enum TraceItem<'a> {
    OpenList,
    Step(&'a SpfTraceStep),
    CloseStep,
    CloseList,
}

impl TraceItem<'_> {
    pub(crate) fn is_open_list(&self) -> bool {
        matches!(self, TraceItem::OpenList)
    }
    pub(crate) fn is_close_step(&self) -> bool {
        matches!(self, TraceItem::CloseStep)
    }
    pub(crate) fn is_close_list(&self) -> bool {
        matches!(self, TraceItem::CloseList)
    }
    pub(crate) fn step(&self) -> Option<&SpfTraceStep> {
        match self {
            TraceItem::Step(step) => Some(step),
            _ => None,
        }
    }
}

/// `steps` as a flat sequence: `OpenList, Step, [nested...], CloseStep, ..., CloseList`, with
/// at most [`MAX_TRACE_STEPS_SHOWN`] steps, and the number of steps left out.
pub(crate) fn flatten_trace(steps: &[SpfTraceStep]) -> (Vec<TraceItem<'_>>, usize) {
    fn walk<'a>(
        steps: &'a [SpfTraceStep],
        out: &mut Vec<TraceItem<'a>>,
        shown: &mut usize,
    ) -> usize {
        let mut left_out = 0;
        out.push(TraceItem::OpenList);
        for step in steps {
            if *shown == MAX_TRACE_STEPS_SHOWN {
                left_out += 1 + count(&step.nested);
                continue;
            }
            *shown += 1;
            out.push(TraceItem::Step(step));
            if !step.nested.is_empty() {
                left_out += walk(&step.nested, out, shown);
            }
            out.push(TraceItem::CloseStep);
        }
        out.push(TraceItem::CloseList);
        left_out
    }
    fn count(steps: &[SpfTraceStep]) -> usize {
        steps.iter().map(|step| 1 + count(&step.nested)).sum()
    }
    let mut out = Vec::new();
    let mut left_out = 0;
    if !steps.is_empty() {
        left_out = walk(steps, &mut out, &mut 0);
    }
    (out, left_out)
}

/// The filters the templates apply (`{{ value|clip }}`); askama passes each value by reference.
pub(crate) mod filters {
    /// Message-derived text, bounded for display.
    pub(crate) fn clip(
        text: impl std::fmt::Display,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(super::clip(&text.to_string()))
    }

    pub(crate) fn yes_no(value: &bool, _: &dyn askama::Values) -> askama::Result<&'static str> {
        Ok(if *value { "yes" } else { "no" })
    }

    /// An optional value, bounded, or a dash when absent.
    pub(crate) fn or_dash(
        value: &Option<String>,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        Ok(value.as_deref().map_or_else(|| "—".to_owned(), super::clip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_unfold_continuations_and_stop_at_the_body() {
        let raw = b"From: a@example.com\r\nSubject: one\r\n  two\r\nX-Empty:\r\n\r\nBody: not a header\r\n";
        let fields = header_fields(raw).fields;
        assert_eq!(
            fields,
            vec![
                HeaderField {
                    name: "From".into(),
                    value: "a@example.com".into()
                },
                HeaderField {
                    name: "Subject".into(),
                    value: "one\n  two".into()
                },
                HeaderField {
                    name: "X-Empty".into(),
                    value: String::new()
                },
            ]
        );
    }

    #[test]
    fn header_fields_are_bounded_in_size_and_number() {
        let mut raw = format!("Subject: {}\r\n", "x".repeat(5 << 20)).into_bytes();
        for n in 0..150 {
            raw.extend_from_slice(format!("X-Field-{n}: {n}\r\n").as_bytes());
        }
        raw.extend_from_slice(b"\r\nbody\r\n");
        let shown = header_fields(&raw);
        assert_eq!(shown.fields.len(), MAX_HEADER_FIELDS_SHOWN);
        assert_eq!(shown.more, 151 - MAX_HEADER_FIELDS_SHOWN);
        let subject = &shown.fields[0].value;
        assert!(
            subject.len() <= MAX_DISPLAY_FIELD_BYTES,
            "{}",
            subject.len()
        );
        assert!(
            subject.ends_with("… (5,242,880 bytes)"),
            "{}",
            &subject[subject.len() - 40..]
        );
    }

    #[test]
    fn the_trace_is_bounded_and_counts_what_it_leaves_out() {
        let step = |nested: Vec<SpfTraceStep>| SpfTraceStep {
            domain: "x.test".into(),
            term: "include:x.test".into(),
            outcome: authcheck_verifier::SpfTermOutcome::NoMatch,
            detail: String::new(),
            nested,
        };
        let steps: Vec<SpfTraceStep> = (0..150).map(|_| step(vec![step(vec![])])).collect();
        let (items, left_out) = flatten_trace(&steps);
        let shown = items.iter().filter(|item| item.step().is_some()).count();
        assert_eq!(shown, MAX_TRACE_STEPS_SHOWN);
        assert_eq!(shown + left_out, 300);
    }

    #[test]
    fn verdict_class_follows_the_grade() {
        assert_eq!(stored_verdict_class("|OK| spf-pass"), "ok");
        assert_eq!(stored_verdict_class("|~OK| dkim-pass"), "partial");
        assert_eq!(stored_verdict_class("!! spf-fail !!"), "problem");
        assert_eq!(stored_verdict_class("not a verdict"), "unknown");
        assert_eq!(
            stored_verdict_class("|OK| spf-pass |~OK| dkim-pass"),
            "partial"
        );
        assert_eq!(
            stored_verdict_class("!! spf-fail !! |OK| dkim-pass"),
            "problem"
        );
        assert_eq!(verdict_class(None), "unknown");
    }
}
