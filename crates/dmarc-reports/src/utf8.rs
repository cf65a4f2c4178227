//! A streaming reader that repairs invalid UTF-8.
//!
//! Some reporters write Latin-1 names into reports that claim UTF-8; the XML reader refuses such
//! bytes, so they are replaced by U+FFFD on the way in (as `String::from_utf8_lossy` would) and
//! the report is kept with a warning. Works chunk by chunk: a sequence split between two reads is
//! carried over, never replaced by mistake.

use std::io::{self, Read};

const CHUNK: usize = 16 * 1024;
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

pub(crate) struct LossyUtf8<R> {
    inner: R,
    /// Repaired bytes not yet handed out.
    out: Vec<u8>,
    out_pos: usize,
    /// The start of a sequence cut by the end of the last read.
    carry: Vec<u8>,
    replaced: bool,
    at_eof: bool,
}

impl<R: Read> LossyUtf8<R> {
    pub(crate) fn new(inner: R) -> Self {
        LossyUtf8 {
            inner,
            out: Vec::with_capacity(CHUNK + 4),
            out_pos: 0,
            carry: Vec::new(),
            replaced: false,
            at_eof: false,
        }
    }

    /// Whether any bytes have been replaced so far.
    pub(crate) fn replaced(&self) -> bool {
        self.replaced
    }

    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.out_pos = 0;
        let mut chunk = std::mem::take(&mut self.carry);
        let start = chunk.len();
        chunk.resize(start + CHUNK, 0);
        let read = loop {
            match self.inner.read(&mut chunk[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        chunk.truncate(start + read);
        if read == 0 {
            self.at_eof = true;
        }
        let mut rest = &chunk[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    self.out.extend_from_slice(valid.as_bytes());
                    break;
                }
                Err(error) => {
                    let (valid, after) = rest.split_at(error.valid_up_to());
                    self.out.extend_from_slice(valid);
                    match error.error_len() {
                        Some(bad) => {
                            self.out.extend_from_slice(REPLACEMENT);
                            self.replaced = true;
                            rest = &after[bad..];
                        }
                        None if self.at_eof => {
                            self.out.extend_from_slice(REPLACEMENT);
                            self.replaced = true;
                            break;
                        }
                        None => {
                            self.carry = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for LossyUtf8<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.out.len() {
            if self.at_eof {
                return Ok(0);
            }
            self.refill()?;
        }
        let available = &self.out[self.out_pos..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds its bytes one at a time, so every multi-byte sequence is split between reads.
    struct OneByte<'a>(&'a [u8]);

    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.split_first() {
                Some((first, rest)) if !buf.is_empty() => {
                    buf[0] = *first;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn repair(bytes: &[u8]) -> (String, bool) {
        let mut reader = LossyUtf8::new(OneByte(bytes));
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        (String::from_utf8(out).unwrap(), reader.replaced())
    }

    #[test]
    fn valid_utf8_split_across_reads_is_unchanged() {
        assert_eq!(
            repair("Zürich ✓ 𝄞".as_bytes()),
            ("Zürich ✓ 𝄞".to_owned(), false)
        );
    }

    #[test]
    fn latin1_bytes_are_replaced_like_from_utf8_lossy() {
        let bytes = b"Z\xfcrich \xe2\x9c end \xe2";
        assert_eq!(
            repair(bytes),
            (String::from_utf8_lossy(bytes).into_owned(), true)
        );
    }
}
