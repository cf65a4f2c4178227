//! Property-based fuzzing of [`rewrite_subject`] on arbitrary bytes: it never panics, and the
//! output differs from the input only inside the Subject field(s) — the original field is kept
//! byte for byte with the verdict (and at most a space, a fold and a space) inserted — or, when
//! there is no Subject, by one `Subject:` field added where the header block ends.
//!
//! The header block is read here independently of the code under test: lines end at LF (a CR
//! before it belongs to the line ending), the block ends at the first empty line, a line that
//! starts with a space or tab continues the field above it, and any other line without a colon
//! is not part of a field (nor are continuation lines after it).
//!
//! The case count comes from `PROPTEST_CASES` (default 256). To fuzz for longer:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test -p authcheck-verifier --test fuzz_subject -- --nocapture
//! ```

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use authcheck_verifier::rewrite_subject;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

const DEFAULT_CASES: u32 = 256;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The byte ranges of the Subject fields (name to the end of the last continuation line,
/// line ending excluded) and the offset where the header block ends.
fn subject_fields(message: &[u8]) -> (Vec<Range<usize>>, usize) {
    let mut subjects = Vec::new();
    // The field the previous line belonged to, if it was a Subject field still open.
    let mut open: Option<usize> = None;
    let mut in_field = false;
    let mut start = 0;
    while start < message.len() {
        let newline = message[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|n| start + n);
        let content_end = match newline {
            Some(n) if n > start && message[n - 1] == b'\r' => n - 1,
            Some(n) => n,
            None => message.len(),
        };
        let line = &message[start..content_end];
        if line.is_empty() {
            return (subjects, start);
        }
        if matches!(line[0], b' ' | b'\t') {
            if in_field && let Some(index) = open {
                let range: &mut Range<usize> = &mut subjects[index];
                range.end = content_end;
            }
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            in_field = true;
            if line[..colon]
                .trim_ascii_end()
                .eq_ignore_ascii_case(b"subject")
            {
                subjects.push(start..content_end);
                open = Some(subjects.len() - 1);
            } else {
                open = None;
            }
        } else {
            in_field = false;
            open = None;
        }
        match newline {
            Some(n) => start = n + 1,
            None => break,
        }
    }
    (subjects, message.len())
}

/// `original` is a subsequence of `rewritten`.
fn is_subsequence(original: &[u8], rewritten: &[u8]) -> bool {
    let mut rest = rewritten.iter();
    original.iter().all(|b| rest.any(|r| r == b))
}

/// The verdict as the rewrite writes it: control characters become spaces.
fn printable(verdict: &str) -> String {
    verdict
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A rewritten Subject field: the original with the verdict, and at most a space before it
/// and a space or a fold and a space after it, inserted after the colon.
fn check_rewritten_field(
    original: &[u8],
    rewritten: &[u8],
    verdict: &[u8],
) -> Result<(), TestCaseError> {
    let colon = original.iter().position(|&b| b == b':').unwrap() + 1;
    prop_assert!(
        rewritten.starts_with(&original[..colon]),
        "the field name changed: {:?} became {:?}",
        String::from_utf8_lossy(original),
        String::from_utf8_lossy(rewritten)
    );
    let inserted = rewritten.len() - original.len();
    prop_assert!(
        inserted >= verdict.len() && inserted <= verdict.len() + 4,
        "{inserted} bytes inserted for a {}-byte verdict",
        verdict.len()
    );
    prop_assert!(
        rewritten
            .windows(verdict.len().max(1))
            .any(|window| window == verdict),
        "the verdict is missing from {:?}",
        String::from_utf8_lossy(rewritten)
    );
    prop_assert!(
        is_subsequence(original, rewritten),
        "original bytes were changed: {:?} became {:?}",
        String::from_utf8_lossy(original),
        String::from_utf8_lossy(rewritten)
    );
    Ok(())
}

fn check_rewrite(message: &[u8], verdict: &str) -> Result<(), TestCaseError> {
    let rewritten = rewrite_subject(message, verdict);
    let verdict = printable(verdict);
    let verdict = verdict.as_bytes();
    let (subjects, header_end) = subject_fields(message);

    if subjects.is_empty() {
        let (head, tail) = message.split_at(header_end);
        prop_assert!(
            rewritten.starts_with(head) && rewritten.ends_with(tail),
            "bytes outside the added Subject changed"
        );
        prop_assert!(rewritten.len() >= head.len() + tail.len());
        let added = &rewritten[head.len()..rewritten.len() - tail.len()];
        let trimmed = added.trim_ascii();
        let expected = [&b"Subject: "[..], verdict].concat();
        prop_assert_eq!(
            trimmed,
            expected.trim_ascii(),
            "added {:?}",
            String::from_utf8_lossy(added)
        );
        prop_assert!(added.len() <= expected.len() + 4 && added.ends_with(b"\n"));
        return Ok(());
    }

    // Walk the output: the bytes between Subject fields must be copied exactly, and each
    // field must be its original with the verdict inserted.
    let mut copied_to = 0;
    let mut at = 0;
    for (n, field) in subjects.iter().enumerate() {
        let between = &message[copied_to..field.start];
        prop_assert!(
            rewritten[at..].starts_with(between),
            "bytes before Subject field {n} changed"
        );
        at += between.len();
        let next_fixed = match subjects.get(n + 1) {
            Some(next) => &message[field.end..next.start],
            None => &message[field.end..],
        };
        let original = &message[field.clone()];
        let length =
            (original.len() + verdict.len()..=original.len() + verdict.len() + 4).find(|&length| {
                let end = at + length;
                end <= rewritten.len()
                    && rewritten[end..].starts_with(next_fixed)
                    && (subjects.get(n + 1).is_some() || rewritten.len() - end == next_fixed.len())
            });
        let Some(length) = length else {
            return Err(TestCaseError::fail(format!(
                "Subject field {n} ({:?}) is not followed by the original bytes in {:?}",
                String::from_utf8_lossy(original),
                String::from_utf8_lossy(&rewritten)
            )));
        };
        check_rewritten_field(original, &rewritten[at..at + length], verdict)?;
        at += length;
        copied_to = field.end;
    }
    Ok(())
}

/// Header-like lines with Subject fields, folds, garbage and odd line endings.
fn header_message() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"Subject: Hello world".to_vec()),
        Just(b"Subject:".to_vec()),
        Just(b"Subject:   ".to_vec()),
        Just(b"subject :x".to_vec()),
        Just(b"SUBJECT:\t=?UTF-8?B?w6k=?= tail".to_vec()),
        Just(b"From: a@b.test".to_vec()),
        Just(b" folded continuation".to_vec()),
        Just(b"\tfolded".to_vec()),
        Just(b"no colon here".to_vec()),
        Just(b"".to_vec()),
        (1usize..1100).prop_map(|n| [&b"Subject: "[..], &vec![b'x'; n]].concat()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    let line_end = prop_oneof![Just(&b"\r\n"[..]), Just(&b"\n"[..]), Just(&b"\r"[..])];
    proptest::collection::vec((line, line_end), 0..12).prop_map(|lines| {
        lines
            .into_iter()
            .flat_map(|(line, end)| [line, end.to_vec()].concat())
            .collect()
    })
}

fn verdict() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("|OK| spf-pass".to_string()),
        Just("!! dkim-none !!".to_string()),
        Just("|~OK| dkim-pass".to_string()),
        "[^\u{0}]{1,30}",
    ]
}

fn fuzz<S: Strategy<Value = (Vec<u8>, String)>>(name: &str, strategy: S) {
    let runs = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let outcome = runner.run(&strategy, |(message, verdict)| {
        runs.fetch_add(1, Ordering::SeqCst);
        check_rewrite(&message, &verdict)
    });
    println!(
        "{name}: {} executions ({} cases) in {:.1?}",
        runs.load(Ordering::SeqCst),
        cases(),
        started.elapsed()
    );
    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(reason, (message, verdict))) => panic!(
            "{name}: {reason}\nminimal input: {:?} with verdict {verdict:?}",
            String::from_utf8_lossy(&message)
        ),
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
}

#[test]
fn arbitrary_bytes_change_only_the_subject() {
    let message = proptest::collection::vec(any::<u8>(), 0..2048);
    fuzz("rewrite_subject, arbitrary bytes", (message, verdict()));
}

#[test]
fn header_shaped_input_changes_only_the_subject() {
    let message = (
        header_message(),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(header, body)| [header, b"\r\n".to_vec(), body].concat());
    fuzz("rewrite_subject, header-shaped input", (message, verdict()));
}
