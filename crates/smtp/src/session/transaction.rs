//! One mail transaction (RFC 5321 section 3.3): the envelope gathered from MAIL and RCPT, and
//! the message body as it arrives through DATA or BDAT.

use std::time::Instant;

use crate::delivery::Recipient;

pub(crate) struct Transaction {
    pub started: Instant,
    /// The reverse-path as written, `""` for `<>`.
    pub mail_from: String,
    pub recipients: Vec<Recipient>,
    /// Set by the first BDAT: from then on only BDAT, RSET, NOOP, HELP and QUIT may follow.
    pub chunking: bool,
    pub body: Body,
}

impl Transaction {
    pub(crate) fn new(mail_from: String, max_message_size: usize) -> Self {
        Transaction {
            started: Instant::now(),
            mail_from,
            recipients: Vec::new(),
            chunking: false,
            body: Body::new(max_message_size),
        }
    }
}

/// The message bytes, kept only while they fit the size limit. Once over it the bytes are
/// dropped and only counted, so an oversize message costs no memory.
pub(crate) struct Body {
    bytes: Vec<u8>,
    size: usize,
    limit: usize,
}

impl Body {
    fn new(limit: usize) -> Self {
        Body {
            bytes: Vec::new(),
            size: 0,
            limit,
        }
    }

    pub(crate) fn append(&mut self, chunk: &[u8]) {
        self.size = self.size.saturating_add(chunk.len());
        if self.size > self.limit {
            self.bytes = Vec::new();
        } else {
            self.bytes.extend_from_slice(chunk);
        }
    }

    pub(crate) fn is_too_big(&self) -> bool {
        self.size > self.limit
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}
