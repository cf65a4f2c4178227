//! BDAT (RFC 3030 CHUNKING): `BDAT <size> [LAST]` is followed by exactly `size` bytes of
//! message, taken as they are (no dot-stuffing). A refused BDAT still has its bytes read and
//! dropped, or they would be taken for commands.

use super::{Session, State, Step};
use crate::delivery::Delivery;
use crate::replies;

impl<D: Delivery> Session<D> {
    pub(super) fn bdat(&mut self, size: usize, last: bool) -> Step {
        match self.take_transaction() {
            Some(mut transaction) if !transaction.recipients.is_empty() => {
                transaction.chunking = true;
                self.state = State::Chunk {
                    transaction,
                    size,
                    remaining: size,
                    last,
                };
            }
            other => {
                if let Some(transaction) = other {
                    self.state = State::Transaction(transaction);
                }
                let reply = self.no_message_expected();
                let resume = std::mem::replace(&mut self.state, State::Idle);
                self.state = State::RefusedChunk {
                    remaining: size,
                    reply,
                    resume: Box::new(resume),
                };
            }
        }
        Step::Continue
    }

    /// A chunk other than the last arrived in full.
    pub(super) fn end_of_chunk(&mut self, size: usize) -> Step {
        if let Some(transaction) = self.take_transaction() {
            self.state = State::Transaction(transaction);
        }
        self.command_reply(replies::chunk_received(size))
    }

    pub(super) fn end_of_refused_chunk(&mut self) -> Step {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::RefusedChunk { reply, resume, .. } => {
                self.state = *resume;
                self.command_reply(reply)
            }
            other => {
                self.state = other;
                Step::Continue
            }
        }
    }
}
