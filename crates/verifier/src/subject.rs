//! Rewriting a message's Subject to carry the verdict, and reading the Subject and author back.
//!
//! The rewrite is an insertion: the verdict and a space go in front of the first non-blank
//! character of the Subject value, so an encoded word (RFC 2047) is never split and its
//! neighbours keep their meaning (plain text followed by white space before an encoded word
//! decodes to that text and that space). Every other byte of the message stays as it was,
//! including its line-ending style and folding; the only line break ever added is a fold after
//! the verdict when the line would otherwise pass the 998-byte limit of RFC 5322 §2.1.1.
//! A message without a Subject gets `Subject: <verdict>` at the end of its header block.
//! A malformed message with several Subject fields gets the verdict in each, so every reader sees it.

use std::sync::LazyLock;

use mail_parser::{HeaderName, MessageParser};

use crate::dmarc::FromField;

/// The most bytes a line may hold, line ending excluded (RFC 5322 §2.1.1).
const MAX_LINE_LENGTH: usize = 998;

/// Returns `message` with its Subject replaced by `<verdict> <original subject>`.
pub fn rewrite_subject(message: &[u8], verdict: &str) -> Vec<u8> {
    let verdict = printable(verdict);
    let eol = line_ending_of(message);
    let header = HeaderBlock::find(message);
    let subjects: Vec<Field> = header
        .fields
        .iter()
        .copied()
        .filter(|field| field.is_named(message, "subject"))
        .collect();

    let mut out = Vec::with_capacity(message.len() + verdict.len() + 16);
    if subjects.is_empty() {
        out.extend_from_slice(&message[..header.end]);
        if header.end > 0 && !message[..header.end].ends_with(b"\n") {
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(b"Subject: ");
        out.extend_from_slice(verdict.as_bytes());
        out.extend_from_slice(eol);
        out.extend_from_slice(&message[header.end..]);
        return out;
    }

    let mut copied = 0;
    for subject in subjects {
        let insertion = subject.value_start(message);
        out.extend_from_slice(&message[copied..insertion.at]);
        copied = insertion.at;
        let line_length =
            insertion.line_length_before + verdict.len() + 1 + insertion.line_length_after;
        if !insertion.has_leading_space {
            out.push(b' ');
        }
        out.extend_from_slice(verdict.as_bytes());
        if insertion.has_content {
            if line_length > MAX_LINE_LENGTH {
                out.extend_from_slice(line_ending_at(message, insertion.at).unwrap_or(eol));
            }
            out.push(b' ');
        }
    }
    out.extend_from_slice(&message[copied..]);
    out
}

/// The decoded Subject of `message` (as mail readers show it), if it has one.
pub fn subject_of(message: &[u8]) -> Option<String> {
    // Every other field is skipped unparsed (see `FromField::read`).
    static SUBJECT_ONLY: LazyLock<MessageParser> = LazyLock::new(|| {
        MessageParser::new()
            .header_text(HeaderName::Subject)
            .default_header_ignore()
    });
    let parsed = SUBJECT_ONLY.parse_headers(message)?;
    parsed.subject().map(str::to_string)
}

/// The first address of the first `From` header field, if there is one.
pub fn from_address(message: &[u8]) -> Option<String> {
    FromField::read(message).first_address().map(str::to_string)
}

/// `text` with control characters (line breaks above all) turned into spaces: the verdict must
/// not end the header field or start a new one.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The line ending the message uses: that of its first line, CRLF when it has none.
fn line_ending_of(message: &[u8]) -> &'static [u8] {
    match message.iter().position(|&b| b == b'\n') {
        Some(0) => b"\n",
        Some(newline) if message[newline - 1] != b'\r' => b"\n",
        _ => b"\r\n",
    }
}

/// The line ending of the line holding byte `at`, if that line has one.
fn line_ending_at(message: &[u8], at: usize) -> Option<&'static [u8]> {
    let newline = at + message[at..].iter().position(|&b| b == b'\n')?;
    Some(if newline > 0 && message[newline - 1] == b'\r' {
        b"\r\n"
    } else {
        b"\n"
    })
}

/// How many bytes of blank space `value` starts with: spaces, tabs, and line endings that
/// are followed by a space or tab (folds). A line ending followed by anything else ends the
/// blank space, so the verdict never lands after a line break that is not a fold.
fn leading_blank(value: &[u8]) -> usize {
    let is_wsp = |at: usize| matches!(value.get(at), Some(b' ' | b'\t'));
    let mut at = 0;
    loop {
        if is_wsp(at) {
            at += 1;
        } else if value[at..].starts_with(b"\r\n") && is_wsp(at + 2) {
            at += 2;
        } else if value[at..].starts_with(b"\n") && is_wsp(at + 1) {
            at += 1;
        } else {
            return at;
        }
    }
}

/// One header field: from the start of its name to the end of its last line, line ending excluded.
#[derive(Clone, Copy, Debug)]
struct Field {
    start: usize,
    /// Where the name ends (the colon).
    colon: usize,
    end: usize,
}

/// Where the verdict goes in a Subject field, and what surrounds it on its line.
struct Insertion {
    /// The offset of the first non-blank byte of the value (or the field's end when blank).
    at: usize,
    /// Blank space separates the colon from the insertion point.
    has_leading_space: bool,
    /// The value holds more than blank space: the verdict needs a space after it.
    has_content: bool,
    /// Bytes of the insertion point's line before and after it.
    line_length_before: usize,
    line_length_after: usize,
}

impl Field {
    fn is_named(&self, message: &[u8], name: &str) -> bool {
        message[self.start..self.colon]
            .trim_ascii_end()
            .eq_ignore_ascii_case(name.as_bytes())
    }

    fn value_start(&self, message: &[u8]) -> Insertion {
        let value = &message[self.colon + 1..self.end];
        let blank = leading_blank(value);
        let at = self.colon + 1 + blank;
        let line_start = message[..at]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |newline| newline + 1);
        let line_end = message[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |newline| at + newline);
        let line_end = if line_end > at && message[line_end - 1] == b'\r' {
            line_end - 1
        } else {
            line_end
        };
        Insertion {
            at,
            has_leading_space: blank > 0,
            has_content: at < self.end,
            line_length_before: at - line_start + usize::from(blank == 0),
            line_length_after: line_end - at,
        }
    }
}

/// The header fields of a message and where its header block ends.
struct HeaderBlock {
    fields: Vec<Field>,
    /// The offset of the blank line that ends the header block (the message length when none).
    end: usize,
}

impl HeaderBlock {
    fn find(message: &[u8]) -> HeaderBlock {
        let mut fields: Vec<Field> = Vec::new();
        let mut in_field = false;
        let mut line_start = 0;
        while line_start < message.len() {
            let newline = message[line_start..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|n| line_start + n);
            let content_end = match newline {
                Some(n) if n > line_start && message[n - 1] == b'\r' => n - 1,
                Some(n) => n,
                None => message.len(),
            };
            let line = &message[line_start..content_end];
            if line.is_empty() {
                return HeaderBlock {
                    fields,
                    end: line_start,
                };
            }
            if matches!(line[0], b' ' | b'\t') {
                if in_field && let Some(field) = fields.last_mut() {
                    field.end = content_end;
                }
            } else if let Some(colon) = line.iter().position(|&b| b == b':') {
                fields.push(Field {
                    start: line_start,
                    colon: line_start + colon,
                    end: content_end,
                });
                in_field = true;
            } else {
                // Not a field: neither it nor the continuation lines after it belong to one.
                in_field = false;
            }
            match newline {
                Some(n) => line_start = n + 1,
                None => break,
            }
        }
        HeaderBlock {
            fields,
            end: message.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_goes_before_the_subject() {
        let rewritten = rewrite_subject(
            b"From: a@b.test\r\nSubject: Hello\r\n\r\nbody",
            "|OK| spf-pass",
        );
        assert_eq!(
            rewritten,
            b"From: a@b.test\r\nSubject: |OK| spf-pass Hello\r\n\r\nbody"
        );
    }

    #[test]
    fn a_missing_subject_is_added_at_the_end_of_the_header() {
        let rewritten =
            rewrite_subject(b"From: a@b.test\nTo: c@d.test\n\nbody\n", "!! dkim-none !!");
        assert_eq!(
            rewritten,
            b"From: a@b.test\nTo: c@d.test\nSubject: !! dkim-none !!\n\nbody\n"
        );
    }

    #[test]
    fn an_empty_subject_becomes_the_verdict() {
        assert_eq!(
            rewrite_subject(b"Subject:\r\n\r\n", "v"),
            b"Subject: v\r\n\r\n"
        );
        assert_eq!(
            rewrite_subject(b"Subject: \r\n\r\n", "v"),
            b"Subject: v\r\n\r\n"
        );
    }

    #[test]
    fn a_long_first_line_is_folded_after_the_verdict() {
        let subject = "x".repeat(MAX_LINE_LENGTH - "Subject: ".len());
        let message = format!("Subject: {subject}\r\n\r\n");
        let rewritten = rewrite_subject(message.as_bytes(), "!! spf-fail !!");
        assert_eq!(
            rewritten,
            format!("Subject: !! spf-fail !!\r\n {subject}\r\n\r\n").into_bytes()
        );
    }

    #[test]
    fn a_line_that_is_not_a_field_ends_the_subject() {
        let rewritten = rewrite_subject(b"Subject:\r\n\0\r\n continued\r\n\r\n", "v");
        assert_eq!(rewritten, b"Subject: v\r\n\0\r\n continued\r\n\r\n");
    }

    #[test]
    fn line_breaks_in_the_verdict_cannot_start_a_field() {
        let rewritten = rewrite_subject(b"Subject: a\r\n\r\n", "x\r\nBcc: e@f.test");
        assert_eq!(rewritten, b"Subject: x  Bcc: e@f.test a\r\n\r\n");
    }
}
