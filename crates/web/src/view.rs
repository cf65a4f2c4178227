//! What the templates show, prepared from stored results: table rows, verdict colours, times,
//! the message's header fields and the SPF trace as a flat list of open/close steps.

use authcheck_store::StoredResult;
use authcheck_verifier::{
    AlignmentMode, ArcResult, Grade, SpfIdentityKind, SpfTermOutcome, SpfTraceStep, Verdict,
};
use chrono::{DateTime, Utc};
use serde::Serialize;

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
    pub(crate) fn new(result: &StoredResult) -> Self {
        ResultRow {
            id: result.id.clone(),
            mailbox: result.mailbox.as_str(),
            time: utc_time(&result.received_at),
            mail_from: display_mail_from(&result.session.mail_from),
            header_from: result.header_from.clone().unwrap_or_default(),
            prefixed_subject: result.prefixed_subject.clone(),
            verdict_class: stored_verdict_class(result),
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

/// The CSS class of a stored verdict, whose text the store keeps exactly as shown.
pub(crate) fn stored_verdict_class(result: &StoredResult) -> &'static str {
    verdict_class(result.verdict.parse().ok())
}

pub(crate) fn utc_time(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// One header field of the message as received.
#[derive(Debug, PartialEq)]
pub(crate) struct HeaderField {
    pub(crate) name: String,
    /// The value as written, folding line breaks included, without the final line break.
    pub(crate) value: String,
}

/// The header fields of a raw message, in order. Stops at the first empty line; a line that is
/// neither a field nor a continuation is shown as a field with an empty name rather than lost.
pub(crate) fn header_fields(raw: &[u8]) -> Vec<HeaderField> {
    let text = String::from_utf8_lossy(raw);
    let mut fields: Vec<HeaderField> = Vec::new();
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        if content.is_empty() {
            break;
        }
        let is_continuation = content.starts_with([' ', '\t']);
        match fields.last_mut() {
            Some(field) if is_continuation => {
                field.value.push('\n');
                field.value.push_str(content);
            }
            _ => match content.split_once(':') {
                Some((name, value)) if !name.is_empty() && !name.contains([' ', '\t']) => fields
                    .push(HeaderField {
                        name: name.to_owned(),
                        value: value.trim_start().to_owned(),
                    }),
                _ => fields.push(HeaderField {
                    name: String::new(),
                    value: content.to_owned(),
                }),
            },
        }
    }
    fields
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

/// `steps` as a flat sequence: `OpenList, Step, [nested...], CloseStep, ..., CloseList`.
pub(crate) fn flatten_trace(steps: &[SpfTraceStep]) -> Vec<TraceItem<'_>> {
    fn walk<'a>(steps: &'a [SpfTraceStep], out: &mut Vec<TraceItem<'a>>) {
        out.push(TraceItem::OpenList);
        for step in steps {
            out.push(TraceItem::Step(step));
            if !step.nested.is_empty() {
                walk(&step.nested, out);
            }
            out.push(TraceItem::CloseStep);
        }
        out.push(TraceItem::CloseList);
    }
    let mut out = Vec::new();
    if !steps.is_empty() {
        walk(steps, &mut out);
    }
    out
}

// The helpers below take references because templates pass every argument by reference.

pub(crate) fn term_outcome(outcome: &SpfTermOutcome) -> &'static str {
    match outcome {
        SpfTermOutcome::Match => "match",
        SpfTermOutcome::NoMatch => "no match",
        SpfTermOutcome::Error => "error",
        SpfTermOutcome::Applied => "applied",
        SpfTermOutcome::Ignored => "ignored",
    }
}

pub(crate) fn identity_kind(kind: &SpfIdentityKind) -> &'static str {
    match kind {
        SpfIdentityKind::Mailfrom => "MAIL FROM",
        SpfIdentityKind::Helo => "HELO",
    }
}

pub(crate) fn alignment_mode(mode: &AlignmentMode) -> &'static str {
    match mode {
        AlignmentMode::Relaxed => "relaxed",
        AlignmentMode::Strict => "strict",
    }
}

pub(crate) fn arc_result(result: &ArcResult) -> &'static str {
    match result {
        ArcResult::None => "none",
        ArcResult::Pass => "pass",
        ArcResult::Fail => "fail",
    }
}

pub(crate) fn yes_no(value: &bool) -> &'static str {
    if *value { "yes" } else { "no" }
}

/// An optional value, or a dash when absent.
pub(crate) fn or_dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("—")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields_unfold_continuations_and_stop_at_the_body() {
        let raw = b"From: a@example.com\r\nSubject: one\r\n  two\r\nX-Empty:\r\n\r\nBody: not a header\r\n";
        let fields = header_fields(raw);
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
    fn verdict_class_follows_the_grade() {
        let class = |text: &str| verdict_class(Some(text.parse().unwrap()));
        assert_eq!(class("|OK| spf-pass"), "ok");
        assert_eq!(class("|~OK| dkim-pass"), "partial");
        assert_eq!(class("!! spf-fail !!"), "problem");
        assert_eq!(verdict_class(None), "unknown");
    }
}
