//! Subject rewriting, property style: for many Subjects (plain, encoded words, folded, missing,
//! empty, 8-bit, too long) and every verdict, the rewritten message parses (with mail-parser,
//! as a mail reader would) to `<verdict> <original subject>`, every byte outside the one
//! insertion is unchanged, the line-ending style is kept and no line grows past 998 bytes.

use authcheck_verifier::rewrite_subject;
use authcheck_verifier::subject::{from_address, subject_of};
use mail_parser::MessageParser;

const VERDICTS: [&str; 4] = [
    "|OK| spf-pass",
    "|~OK| dkim-pass",
    "!! spf-diff !!",
    "!! dkim-temperror !!",
];

/// Raw Subject field values (what follows `Subject:`), line endings written as `\n`.
fn subject_values() -> Vec<String> {
    let long_words = "word ".repeat(196); // a 980-byte first line once "Subject: " is in front
    let mut values: Vec<String> = [
        " Hello world",
        " ",
        "",
        "   \t ",
        "Hello without a space",
        "\tTabbed",
        " =?UTF-8?B?w6lsw6h2ZSDDoCBQYXJpcw==?=",
        " =?ISO-8859-1?Q?Caf=E9?= au lait",
        " Re: =?UTF-8?Q?na=C3=AFve_question?=",
        " =?UTF-8?Q?first?= =?UTF-8?Q?_second?=",
        " =?utf-8?b?8J+RiyBoaQ==?= and text",
        " A folded subject\n that continues\n\tover three lines",
        "\n starts on the next line",
        " =?UTF-8?B?RWluZSBsYW5nZSBaZWlsZQ==?=\n =?UTF-8?B?IG1pdCB6d2VpIFfDtnJ0ZXJu?=",
        " Grüße aus Köln – 8-bit UTF-8",
        " 日本語の件名",
        " [list] Subject: with a colon",
        " ends with spaces   ",
        " !! looks like a verdict !!",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    values.push(format!(" {}", long_words.trim_end()));
    values.push(format!(" {}", "x".repeat(985)));
    values
}

/// A message around one Subject value, with `eol` line endings; `None` leaves the Subject out.
fn message_with(subject: Option<&str>, eol: &str, subject_first: bool) -> Vec<u8> {
    let mut header = Vec::new();
    let subject_line = subject.map(|value| format!("Subject:{value}"));
    if subject_first {
        header.extend(subject_line.clone());
    }
    header.push("From: Alice <alice@sender.test>".to_string());
    header.push("To: spf@tester.test".to_string());
    if !subject_first {
        header.extend(subject_line);
    }
    header.push("Date: Mon, 23 Nov 2026 10:00:00 +0000".to_string());
    header.push("Message-ID: <rewrite@sender.test>".to_string());
    let text = format!(
        "{}\n\nBody line one.\nSubject: not a header, just body text\n",
        header.join("\n")
    );
    text.replace('\n', eol).into_bytes()
}

fn parsed_subject(message: &[u8]) -> Option<String> {
    MessageParser::new()
        .parse(message)
        .and_then(|m| m.subject().map(str::to_string))
}

/// What a reader should see: the verdict, then the original subject when there is one.
fn expected_subject(original: &[u8], verdict: &str) -> String {
    match parsed_subject(original).filter(|subject| !subject.trim().is_empty()) {
        Some(subject) => format!("{verdict} {subject}"),
        None => verdict.to_string(),
    }
}

/// Whether `rewritten` is `original` with one block inserted, the block being the verdict plus
/// only white space, line breaks or a `Subject:` field name.
fn is_single_insertion(original: &[u8], rewritten: &[u8], verdict: &str) -> bool {
    let Some(added) = rewritten.len().checked_sub(original.len()) else {
        return false;
    };
    let common_prefix = original
        .iter()
        .zip(rewritten)
        .take_while(|(a, b)| a == b)
        .count();
    let common_suffix = original
        .iter()
        .rev()
        .zip(rewritten.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let earliest = original.len().saturating_sub(common_suffix);
    (earliest..=common_prefix.min(original.len())).any(|at| {
        let block = &rewritten[at..at + added];
        rewritten[..at] == original[..at] && rewritten[at + added..] == original[at..] && {
            let block = String::from_utf8_lossy(block);
            block.contains(verdict)
                && block
                    .replacen(verdict, "", 1)
                    .replace("Subject:", "")
                    .bytes()
                    .all(|b| matches!(b, b' ' | b'\r' | b'\n'))
        }
    })
}

fn longest_header_line(message: &[u8]) -> usize {
    let header_end = message
        .windows(2)
        .position(|w| w == b"\n\n")
        .or_else(|| message.windows(4).position(|w| w == b"\r\n\r\n"));
    let header = &message[..header_end.unwrap_or(message.len())];
    header
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line).len())
        .max()
        .unwrap_or(0)
}

#[test]
fn every_subject_reparses_with_the_verdict_in_front_and_nothing_else_changes() {
    let mut checked = 0;
    for value in subject_values().iter().map(Some).chain([None]) {
        for eol in ["\r\n", "\n"] {
            for subject_first in [false, true] {
                let original = message_with(value.map(String::as_str), eol, subject_first);
                for verdict in VERDICTS {
                    let rewritten = rewrite_subject(&original, verdict);
                    let context = format!("subject {value:?}, eol {eol:?}, verdict {verdict:?}");
                    assert_eq!(
                        parsed_subject(&rewritten).as_deref(),
                        Some(expected_subject(&original, verdict).as_str()),
                        "{context}"
                    );
                    assert!(
                        is_single_insertion(&original, &rewritten, verdict),
                        "{context}: bytes other than the insertion changed:\n{}",
                        String::from_utf8_lossy(&rewritten)
                    );
                    if eol == "\n" {
                        assert!(
                            !rewritten.contains(&b'\r'),
                            "{context}: CR added to an LF message"
                        );
                    } else {
                        let bare_lf = rewritten.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r')
                            || rewritten.first() == Some(&b'\n');
                        assert!(!bare_lf, "{context}: bare LF added to a CRLF message");
                    }
                    assert!(
                        longest_header_line(&rewritten) <= 998.max(longest_header_line(&original)),
                        "{context}: line too long"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(
        checked,
        (subject_values().len() + 1) * 2 * 2 * VERDICTS.len()
    );
}

#[test]
fn a_first_line_that_would_pass_998_bytes_is_folded_after_the_verdict() {
    let original = message_with(Some(&format!(" {}", "x".repeat(985))), "\r\n", false);
    let rewritten = rewrite_subject(&original, "|OK| spf-pass");
    let text = String::from_utf8(rewritten).unwrap();
    assert!(
        text.contains("\r\nSubject: |OK| spf-pass\r\n xxx"),
        "{text}"
    );
}

#[test]
fn the_verdict_never_lands_inside_an_encoded_word() {
    let original = message_with(Some(" =?UTF-8?Q?caf=C3=A9?="), "\r\n", false);
    let rewritten = String::from_utf8(rewrite_subject(&original, "!! dkim-fail !!")).unwrap();
    assert!(
        rewritten.contains("Subject: !! dkim-fail !! =?UTF-8?Q?caf=C3=A9?=\r\n"),
        "{rewritten}"
    );
}

#[test]
fn messages_without_a_blank_line_or_without_anything_get_a_subject() {
    let header_only = b"From: alice@sender.test\r\nTo: spf@tester.test";
    let rewritten = rewrite_subject(header_only, "!! spf-none !!");
    assert_eq!(
        rewritten,
        b"From: alice@sender.test\r\nTo: spf@tester.test\r\nSubject: !! spf-none !!\r\n"
    );
    assert_eq!(
        rewrite_subject(b"", "!! spf-none !!"),
        b"Subject: !! spf-none !!\r\n"
    );
}

#[test]
fn every_subject_field_of_a_malformed_message_gets_the_verdict() {
    let original = b"Subject: one\r\nsubject : two\r\n\r\nbody\r\n";
    let rewritten = rewrite_subject(original, "v");
    assert_eq!(
        rewritten,
        b"Subject: v one\r\nsubject : v two\r\n\r\nbody\r\n"
    );
}

#[test]
fn subject_and_author_are_read_back_decoded() {
    let original = message_with(Some(" =?UTF-8?Q?caf=C3=A9?= time"), "\r\n", false);
    assert_eq!(subject_of(&original).as_deref(), Some("café time"));
    assert_eq!(
        from_address(&original).as_deref(),
        Some("alice@sender.test")
    );
    let no_subject = message_with(None, "\r\n", false);
    assert_eq!(subject_of(&no_subject), None);
    assert_eq!(from_address(b"To: x@y.test\r\n\r\n"), None);
}
