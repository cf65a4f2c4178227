//! Header and body canonicalization, "simple" and "relaxed" (RFC 6376 §3.4).
//!
//! Both work on raw bytes: header fields exactly as received (folding included, no terminating
//! CRLF) and the body after the empty line, with CRLF line endings.

use std::fmt;

/// One canonicalization algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Canonicalization {
    Simple,
    Relaxed,
}

impl Canonicalization {
    /// Parses one half of `c=`: `simple` or `relaxed`.
    pub fn parse(name: &str) -> Option<Canonicalization> {
        match name {
            "simple" => Some(Canonicalization::Simple),
            "relaxed" => Some(Canonicalization::Relaxed),
            _ => None,
        }
    }
}

impl fmt::Display for Canonicalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Canonicalization::Simple => "simple",
            Canonicalization::Relaxed => "relaxed",
        })
    }
}

/// Appends header `field` (name, colon and value, without its terminating CRLF) to `out`,
/// canonicalized and followed by CRLF.
pub fn canonical_header(field: &[u8], canonicalization: Canonicalization, out: &mut Vec<u8>) {
    match canonicalization {
        Canonicalization::Simple => out.extend_from_slice(field),
        Canonicalization::Relaxed => {
            let colon = field.iter().position(|&b| b == b':').unwrap_or(field.len());
            let name = trim_wsp(&field[..colon]);
            out.extend(name.iter().map(u8::to_ascii_lowercase));
            out.push(b':');
            let value = field.get(colon + 1..).unwrap_or_default();
            let unfolded: Vec<u8> = value
                .iter()
                .copied()
                .filter(|b| !matches!(b, b'\r' | b'\n'))
                .collect();
            push_collapsing_wsp(trim_wsp(&unfolded), out);
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The canonicalized body (RFC 6376 §3.4.3, §3.4.4).
///
/// Simple keeps every byte but ignores empty lines at the end and always ends in one CRLF (an
/// empty body becomes CRLF). Relaxed also reduces each run of whitespace to one space and drops
/// whitespace at line ends before removing trailing empty lines, so lines holding only
/// whitespace at the end vanish too; an empty body stays empty.
pub fn canonical_body(body: &[u8], canonicalization: Canonicalization) -> Vec<u8> {
    match canonicalization {
        Canonicalization::Simple => {
            let mut end = body.len();
            while end >= 2 && &body[end - 2..end] == b"\r\n" {
                end -= 2;
            }
            let mut out = body[..end].to_vec();
            out.extend_from_slice(b"\r\n");
            out
        }
        Canonicalization::Relaxed => {
            let mut out = Vec::with_capacity(body.len());
            // Empty lines are held back until a non-empty line shows they are not trailing.
            let mut pending_empty_lines = 0;
            for line in body_lines(body) {
                let start = out.len();
                push_collapsing_wsp(line, &mut out);
                if out.len() > start && out.last() == Some(&b' ') {
                    out.pop();
                }
                if out.len() == start {
                    pending_empty_lines += 1;
                    continue;
                }
                if pending_empty_lines > 0 {
                    let held_back = b"\r\n".repeat(pending_empty_lines);
                    out.splice(start..start, held_back);
                    pending_empty_lines = 0;
                }
                out.extend_from_slice(b"\r\n");
            }
            out
        }
    }
}

/// The body's lines without their CRLF; a final line lacking CRLF counts as a line, and a
/// bare LF is part of its line.
fn body_lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut search_from = 0;
        while let Some(offset) = memchr::memchr(b'\n', &rest[search_from..]) {
            let newline = search_from + offset;
            if newline > 0 && rest[newline - 1] == b'\r' {
                let line = &rest[..newline - 1];
                rest = &rest[newline + 1..];
                return Some(line);
            }
            search_from = newline + 1;
        }
        let line = rest;
        rest = &[];
        Some(line)
    })
}

fn push_collapsing_wsp(bytes: &[u8], out: &mut Vec<u8>) {
    let mut in_wsp = false;
    for &b in bytes {
        if matches!(b, b' ' | b'\t') {
            if !in_wsp {
                out.push(b' ');
            }
            in_wsp = true;
        } else {
            out.push(b);
            in_wsp = false;
        }
    }
}

fn trim_wsp(bytes: &[u8]) -> &[u8] {
    let is_wsp = |b: &u8| matches!(b, b' ' | b'\t');
    let start = bytes.iter().position(|b| !is_wsp(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_wsp(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two header fields of the RFC 6376 §3.4.5 example, as received.
    const EXAMPLE_FIELDS: [&[u8]; 2] = [b"A: X", b"B : Y\t\r\n\tZ  "];
    /// The body of the RFC 6376 §3.4.5 example.
    const EXAMPLE_BODY: &[u8] = b" C \r\nD \t E\r\n\r\n\r\n";

    fn headers(canonicalization: Canonicalization) -> Vec<u8> {
        let mut out = Vec::new();
        for field in EXAMPLE_FIELDS {
            canonical_header(field, canonicalization, &mut out);
        }
        out
    }

    #[test]
    fn rfc6376_example_relaxed() {
        assert_eq!(headers(Canonicalization::Relaxed), b"a:X\r\nb:Y Z\r\n");
        assert_eq!(
            canonical_body(EXAMPLE_BODY, Canonicalization::Relaxed),
            b" C\r\nD E\r\n"
        );
    }

    #[test]
    fn rfc6376_example_simple() {
        assert_eq!(
            headers(Canonicalization::Simple),
            b"A: X\r\nB : Y\t\r\n\tZ  \r\n"
        );
        assert_eq!(
            canonical_body(EXAMPLE_BODY, Canonicalization::Simple),
            b" C \r\nD \t E\r\n"
        );
    }

    #[test]
    fn empty_bodies() {
        assert_eq!(canonical_body(b"", Canonicalization::Simple), b"\r\n");
        assert_eq!(
            canonical_body(b"\r\n\r\n", Canonicalization::Simple),
            b"\r\n"
        );
        assert_eq!(canonical_body(b"", Canonicalization::Relaxed), b"");
        assert_eq!(
            canonical_body(b"\r\n \r\n\t\r\n", Canonicalization::Relaxed),
            b""
        );
    }

    #[test]
    fn relaxed_body_drops_trailing_whitespace_only_lines() {
        let body = b"Hello\r\n\r\nWorld  \r\n \r\n\t\r\n\r\n";
        assert_eq!(
            canonical_body(body, Canonicalization::Relaxed),
            b"Hello\r\n\r\nWorld\r\n"
        );
    }

    #[test]
    fn a_last_line_without_crlf_is_completed() {
        assert_eq!(
            canonical_body(b"a\r\nb", Canonicalization::Simple),
            b"a\r\nb\r\n"
        );
        assert_eq!(
            canonical_body(b"a\r\nb ", Canonicalization::Relaxed),
            b"a\r\nb\r\n"
        );
    }

    #[test]
    fn relaxed_header_lowercases_only_the_name() {
        let mut out = Vec::new();
        canonical_header(
            b"SUBJECT:  Hello   World ",
            Canonicalization::Relaxed,
            &mut out,
        );
        assert_eq!(out, b"subject:Hello World\r\n");
    }

    /// RFC 6376 §3.4.4 step by step, line by line, as plainly as it can be written.
    fn relaxed_body_by_the_rfc(body: &[u8]) -> Vec<u8> {
        let text: Vec<u8> = body.to_vec();
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut rest = text.as_slice();
        while !rest.is_empty() {
            match rest.windows(2).position(|w| w == b"\r\n") {
                Some(end) => {
                    lines.push(rest[..end].to_vec());
                    rest = &rest[end + 2..];
                }
                None => {
                    lines.push(rest.to_vec());
                    rest = &[];
                }
            }
        }
        let mut canonical: Vec<Vec<u8>> = lines
            .iter()
            .map(|line| {
                let mut out = Vec::new();
                push_collapsing_wsp(line, &mut out);
                if out.last() == Some(&b' ') {
                    out.pop();
                }
                out
            })
            .collect();
        while canonical.last().is_some_and(Vec::is_empty) {
            canonical.pop();
        }
        canonical
            .iter()
            .flat_map(|line| [line.as_slice(), b"\r\n"].concat())
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn relaxed_body_matches_the_rfc_on_any_mix_of_whitespace_and_line_ends(
            body in proptest::collection::vec(
                proptest::sample::select(vec![b' ', b'\t', b'\r', b'\n', b'a', b'.']),
                0..64,
            )
        ) {
            proptest::prop_assert_eq!(
                canonical_body(&body, Canonicalization::Relaxed),
                relaxed_body_by_the_rfc(&body)
            );
        }
    }
}
