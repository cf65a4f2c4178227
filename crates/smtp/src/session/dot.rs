//! Decoding a DATA body (RFC 5321 section 4.5.2): the body ends at `CRLF.CRLF`, a leading dot
//! on a line is removed, and everything else — bare LF and bare CR included — is passed
//! through unchanged.
//!
//! Only CR LF starts a line. Treating a bare LF as a line end would let `LF.LF` end the data
//! early (SMTP smuggling), and a test message must reach the verifier exactly as sent.

/// Where the decoder stands relative to the last line break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Just after CR LF (or at the start of the body).
    LineStart,
    /// After CR LF `.`: a stuffed dot or the start of the terminator. The dot is held back.
    Dot,
    /// After CR LF `.` CR: the terminator unless LF does not follow. Dot and CR held back.
    DotCr,
    /// Inside a line.
    InLine,
    /// Inside a line, just after a CR (already emitted).
    AfterCr,
}

#[derive(Debug)]
pub(crate) struct DotDecoder {
    position: Position,
}

/// How far [`DotDecoder::decode`] got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Input bytes used; after the terminator, the rest is the next command.
    pub consumed: usize,
    pub finished: bool,
}

impl DotDecoder {
    pub(crate) fn new() -> Self {
        DotDecoder {
            position: Position::LineStart,
        }
    }

    /// Decodes `input`, passing message bytes to `emit` in order, and stops after the terminator.
    pub(crate) fn decode(&mut self, input: &[u8], mut emit: impl FnMut(&[u8])) -> Decoded {
        let mut i = 0;
        while i < input.len() {
            let byte = input[i];
            match self.position {
                Position::InLine => {
                    // Only CR LF `.` changes what is passed on: copy everything up to the next
                    // one in one go, or all of the input, noting where its last bytes leave a
                    // line that may go on in the next piece.
                    let rest = &input[i..];
                    if let Some(at) = memchr::memmem::find(rest, b"\r\n.") {
                        emit(&rest[..at + 2]);
                        self.position = Position::Dot;
                        i += at + 3;
                        continue;
                    }
                    emit(rest);
                    self.position = if rest.ends_with(b"\r\n") {
                        Position::LineStart
                    } else if rest.ends_with(b"\r") {
                        Position::AfterCr
                    } else {
                        Position::InLine
                    };
                    break;
                }
                Position::AfterCr => {
                    emit(&[byte]);
                    self.position = match byte {
                        b'\n' => Position::LineStart,
                        b'\r' => Position::AfterCr,
                        _ => Position::InLine,
                    };
                }
                Position::LineStart => match byte {
                    b'.' => self.position = Position::Dot,
                    _ => {
                        self.position = Position::InLine;
                        continue;
                    }
                },
                Position::Dot => match byte {
                    b'\r' => self.position = Position::DotCr,
                    // A stuffed line: the held-back dot is dropped and the byte is content.
                    _ => {
                        self.position = Position::InLine;
                        continue;
                    }
                },
                Position::DotCr => {
                    if byte == b'\n' {
                        return Decoded {
                            consumed: i + 1,
                            finished: true,
                        };
                    }
                    // `.CR` then something else: a stuffed line starting with CR.
                    emit(b"\r");
                    self.position = Position::AfterCr;
                    continue;
                }
            }
            i += 1;
        }
        Decoded {
            consumed: input.len(),
            finished: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` split into pieces of `piece` bytes; returns the message and the rest.
    fn decode_in_pieces(input: &[u8], piece: usize) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut decoder = DotDecoder::new();
        let mut message = Vec::new();
        for (n, chunk) in input.chunks(piece).enumerate() {
            let decoded = decoder.decode(chunk, |bytes| message.extend_from_slice(bytes));
            if decoded.finished {
                let rest = input[n * piece + decoded.consumed..].to_vec();
                return (message, Some(rest));
            }
        }
        (message, None)
    }

    fn decode_every_way(input: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
        let whole = decode_in_pieces(input, input.len().max(1));
        for piece in 1..input.len().min(8) {
            assert_eq!(
                decode_in_pieces(input, piece),
                whole,
                "split every {piece} bytes"
            );
        }
        whole
    }

    #[test]
    fn the_body_ends_at_crlf_dot_crlf_keeping_the_last_line_break() {
        let (message, rest) = decode_every_way(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n");
        assert_eq!(message, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(rest.unwrap(), b"QUIT\r\n");
    }

    #[test]
    fn an_empty_body_is_just_the_terminator() {
        let (message, rest) = decode_every_way(b".\r\n");
        assert_eq!(message, b"");
        assert_eq!(rest.unwrap(), b"");
    }

    #[test]
    fn a_leading_dot_is_removed() {
        let (message, _) = decode_every_way(b"..\r\n..x\r\n.y\r\na.b\r\n.\r\n");
        assert_eq!(message, b".\r\n.x\r\ny\r\na.b\r\n");
    }

    #[test]
    fn bare_line_feeds_and_carriage_returns_pass_through_and_do_not_end_the_body() {
        let (message, rest) = decode_every_way(b"a\n.\nb\r.\r\rc\r\n.\rd\r\n.\r\n");
        assert_eq!(message, b"a\n.\nb\r.\r\rc\r\n\rd\r\n");
        assert_eq!(rest.unwrap(), b"");
    }

    /// What RFC 5321 §4.5.2 says, written the slow way: the body ends at the first CR LF `.`
    /// CR LF (its first line break belonging to the body), and a dot that starts a line of it
    /// is removed.
    fn reference(input: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let framed = [b"\r\n".as_slice(), input].concat();
        let at = memchr::memmem::find(&framed, b"\r\n.\r\n").expect("a terminated input");
        let body = &framed[..at + 2];
        let message = (2..body.len())
            .filter(|&i| !(body[i] == b'.' && &body[i - 2..i] == b"\r\n"))
            .map(|i| body[i])
            .collect();
        (message, framed[at + 5..].to_vec())
    }

    #[test]
    fn every_short_mix_of_dots_and_line_breaks_decodes_as_the_rfc_says() {
        const ALPHABET: [u8; 4] = [b'a', b'.', b'\r', b'\n'];
        for len in 0..=6u32 {
            for n in 0..ALPHABET.len().pow(len) {
                let mut input: Vec<u8> = (0..len)
                    .map(|digit| ALPHABET[n / ALPHABET.len().pow(digit) % ALPHABET.len()])
                    .collect();
                input.extend_from_slice(b"\r\n.\r\nQUIT");
                let (message, rest) = decode_every_way(&input);
                assert_eq!(
                    (message, rest.expect("terminated")),
                    reference(&input),
                    "{:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }

    #[test]
    fn without_the_terminator_the_body_is_unfinished() {
        let (message, rest) = decode_every_way(b"hello\r\n.x\r\n");
        assert_eq!(message, b"hello\r\nx\r\n");
        assert_eq!(rest, None);
    }
}
