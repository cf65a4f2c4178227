//! The raw message as DKIM sees it: header fields exactly as received (folding kept) and the
//! body bytes.
//!
//! Messages stored or handed over with bare LF line endings are treated as if every line ended
//! in CRLF, which is what they carried on the wire (RFC 5322 lines end in CRLF).

use std::borrow::Cow;
use std::ops::Range;

/// One header field: the bytes from its name up to (not including) the CRLF that ends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderField {
    /// The whole field, name, colon, value and inner folding CRLFs included.
    pub span: Range<usize>,
    /// Where the field name ends: the position of the colon.
    pub colon: usize,
}

/// A message split into header fields and body.
#[derive(Debug)]
pub struct RawMessage<'a> {
    bytes: Cow<'a, [u8]>,
    fields: Vec<HeaderField>,
    body_start: usize,
}

impl<'a> RawMessage<'a> {
    pub fn parse(message: &'a [u8]) -> RawMessage<'a> {
        let bytes = with_crlf_line_endings(message);
        let (fields, body_start) = split_header(&bytes);
        RawMessage {
            bytes,
            fields,
            body_start,
        }
    }

    /// The whole message, with CRLF line ends.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn fields(&self) -> &[HeaderField] {
        &self.fields
    }

    /// The bytes of `field`, without its terminating CRLF.
    pub fn field_bytes(&self, field: &HeaderField) -> &[u8] {
        &self.bytes[field.span.clone()]
    }

    /// The field name as written, with any whitespace before the colon removed.
    pub fn field_name(&self, field: &HeaderField) -> &[u8] {
        trim_wsp_end(&self.bytes[field.span.start..field.colon])
    }

    /// The field value: everything after the colon, folding included.
    pub fn field_value(&self, field: &HeaderField) -> &[u8] {
        &self.bytes[field.colon + 1..field.span.end]
    }

    pub fn is_named(&self, field: &HeaderField, name: &str) -> bool {
        self.field_name(field).eq_ignore_ascii_case(name.as_bytes())
    }

    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body_start..]
    }
}

/// `message` with every LF that lacks its CR given one; borrowed when nothing needs changing.
fn with_crlf_line_endings(message: &[u8]) -> Cow<'_, [u8]> {
    let has_bare_lf = message
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || message[i - 1] != b'\r'));
    if !has_bare_lf {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + message.len() / 32);
    for (i, &b) in message.iter().enumerate() {
        if b == b'\n' && (i == 0 || message[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    Cow::Owned(out)
}

/// Header fields and where the body starts (after the empty line; the end when there is none).
fn split_header(bytes: &[u8]) -> (Vec<HeaderField>, usize) {
    let mut fields: Vec<HeaderField> = Vec::new();
    // A line without a colon cannot be a header field; folded lines after it belong to nothing.
    let mut current_is_field = false;
    let mut position = 0;
    while position < bytes.len() {
        let (line_end, next) = match find_crlf(&bytes[position..]) {
            Some(offset) => (position + offset, position + offset + 2),
            None => (bytes.len(), bytes.len()),
        };
        if line_end == position {
            return (fields, next);
        }
        let line = &bytes[position..line_end];
        if matches!(line[0], b' ' | b'\t') {
            if current_is_field && let Some(field) = fields.last_mut() {
                field.span.end = line_end;
            }
        } else if let Some(colon) = line.iter().position(|&b| b == b':') {
            fields.push(HeaderField {
                span: position..line_end,
                colon: position + colon,
            });
            current_is_field = true;
        } else {
            current_is_field = false;
        }
        position = next;
    }
    (fields, bytes.len())
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes, b"\r\n")
}

fn trim_wsp_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_fields_keep_their_folding_and_the_body_follows_the_empty_line() {
        let message = RawMessage::parse(b"A: 1\r\n 2\r\nB : 3\r\n\r\nbody\r\n");
        let fields = message.fields();
        assert_eq!(fields.len(), 2);
        assert_eq!(message.field_bytes(&fields[0]), b"A: 1\r\n 2");
        assert_eq!(message.field_name(&fields[1]), b"B");
        assert_eq!(message.field_value(&fields[1]), b" 3");
        assert_eq!(message.body(), b"body\r\n");
    }

    #[test]
    fn bare_lf_line_endings_are_read_as_crlf() {
        let message = RawMessage::parse(b"A: 1\n 2\nB: 3\n\nline\nline\r\n");
        assert_eq!(message.field_bytes(&message.fields()[0]), b"A: 1\r\n 2");
        assert_eq!(message.body(), b"line\r\nline\r\n");
    }

    #[test]
    fn a_message_without_an_empty_line_is_all_header() {
        let message = RawMessage::parse(b"A: 1\r\nB: 2");
        assert_eq!(message.fields().len(), 2);
        assert_eq!(message.field_bytes(&message.fields()[1]), b"B: 2");
        assert_eq!(message.body(), b"");
    }
}
