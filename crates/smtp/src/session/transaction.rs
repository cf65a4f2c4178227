//! One mail transaction (RFC 5321 section 3.3): the envelope gathered from MAIL and RCPT, and
//! the message body as it arrives through DATA or BDAT.

use std::time::Instant;

use crate::budget::Reservation;
use crate::config::MIN_BODY_GROWTH;
use crate::delivery::{BodyType, Recipient};

pub(crate) struct Transaction {
    pub started: Instant,
    /// The reverse-path as written, `""` for `<>`.
    pub mail_from: String,
    /// MAIL FROM's `BODY=` parameter.
    pub body_type: BodyType,
    pub recipients: Vec<Recipient>,
    /// Set by the first BDAT: from then on only BDAT, RSET, NOOP, HELP and QUIT may follow.
    pub chunking: bool,
    pub body: Body,
}

impl Transaction {
    pub(crate) fn new(
        mail_from: String,
        body_type: BodyType,
        max_message_size: usize,
        memory: Reservation,
    ) -> Self {
        Transaction {
            started: Instant::now(),
            mail_from,
            body_type,
            recipients: Vec::new(),
            chunking: false,
            body: Body::new(max_message_size, memory),
        }
    }
}

/// The message bytes, kept only while they fit the size limit and the memory budget. Once
/// over either the bytes are dropped and only counted, so a refused message costs no memory.
pub(crate) struct Body {
    bytes: Vec<u8>,
    size: usize,
    limit: usize,
    /// Covers the whole capacity of `bytes`: the buffer grows only as far as this does.
    memory: Reservation,
    over_budget: bool,
}

/// Why a complete message cannot be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Over `max_message_size`.
    TooBig,
    /// The memory budget had no room for it.
    OverBudget,
}

impl Body {
    fn new(limit: usize, memory: Reservation) -> Self {
        Body {
            bytes: Vec::new(),
            size: 0,
            limit,
            memory,
            over_budget: false,
        }
    }

    pub(crate) fn append(&mut self, chunk: &[u8]) {
        self.size = self.size.saturating_add(chunk.len());
        if self.overflow().is_some() {
            self.drop_bytes();
            return;
        }
        let needed = self.bytes.len() + chunk.len();
        if needed > self.bytes.capacity() {
            // Doubling, as a Vec would, but never past the size limit and never past the budget.
            let comfortable = needed
                .max(self.bytes.capacity().saturating_mul(2))
                .max(MIN_BODY_GROWTH)
                .min(self.limit);
            if !self.memory.grow_to(comfortable) && !self.memory.grow_to(needed) {
                self.over_budget = true;
                self.drop_bytes();
                return;
            }
            self.bytes
                .reserve_exact(self.memory.bytes() - self.bytes.len());
        }
        self.bytes.extend_from_slice(chunk);
    }

    fn drop_bytes(&mut self) {
        self.bytes = Vec::new();
        self.memory.release();
    }

    /// Whether the message can no longer be delivered, and why.
    pub(crate) fn overflow(&self) -> Option<Overflow> {
        if self.size > self.limit {
            Some(Overflow::TooBig)
        } else if self.over_budget {
            Some(Overflow::OverBudget)
        } else {
            None
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The message, and the reservation to hold for as long as the message is in memory.
    pub(crate) fn into_parts(self) -> (Vec<u8>, Reservation) {
        (self.bytes, self.memory)
    }
}
