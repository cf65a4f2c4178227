//! The message as the tester delivers it: the verdict in front of the Subject (by
//! [`rewrite_subject`]) and the tester's `Authentication-Results` field on top, every other
//! byte as received. Line ends of the added field follow the message's own style.

use crate::subject::rewrite_subject;

/// `message` as delivered with `verdict`: `authentication_results` (a whole header field, name
/// included, folded with CRLF) first, then the message with its Subject rewritten.
pub fn message_as_delivered(
    message: &[u8],
    verdict: &str,
    authentication_results: &str,
) -> Vec<u8> {
    let rewritten = rewrite_subject(message, verdict);
    let uses_crlf = match memchr::memchr(b'\n', message) {
        Some(at) => at > 0 && message[at - 1] == b'\r',
        None => true,
    };
    let field = authentication_results.trim_end_matches(['\r', '\n']);
    let mut out = Vec::with_capacity(field.len() + 2 + rewritten.len());
    if !field.is_empty() {
        for (index, line) in field.split('\n').enumerate() {
            if index > 0 {
                out.extend_from_slice(if uses_crlf { b"\r\n" } else { b"\n" });
            }
            out.extend_from_slice(line.trim_end_matches('\r').as_bytes());
        }
        out.extend_from_slice(if uses_crlf { b"\r\n" } else { b"\n" });
    }
    out.extend_from_slice(&rewritten);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_goes_on_top_and_the_subject_carries_the_verdict() {
        let message = b"From: a@example.com\r\nSubject: Hi\r\n\r\nbody\r\n";
        let delivered = message_as_delivered(
            message,
            "|OK| spf-pass",
            "Authentication-Results: tester;\r\n\tspf=pass",
        );
        assert_eq!(
            delivered,
            b"Authentication-Results: tester;\r\n\tspf=pass\r\nFrom: a@example.com\r\nSubject: |OK| spf-pass Hi\r\n\r\nbody\r\n"
        );
    }

    #[test]
    fn lf_messages_get_an_lf_field() {
        let delivered = message_as_delivered(
            b"Subject: Hi\n\nbody\n",
            "!! dkim-none !!",
            "A-R: x;\r\n\ty",
        );
        assert_eq!(
            delivered,
            b"A-R: x;\n\ty\nSubject: !! dkim-none !! Hi\n\nbody\n"
        );
    }
}
