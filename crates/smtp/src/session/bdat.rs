//! BDAT (RFC 3030 CHUNKING): `BDAT <size> [LAST]` is followed by exactly `size` bytes of
//! message, taken as they are (no dot-stuffing).
//!
//! A chunk is judged before its bytes are read. One that would take the message over the
//! size limit is answered 552 at once, and one the memory budget has no room for 452; either
//! ends the transaction. RFC 3030 still has the server consume a refused chunk so that its
//! bytes are not taken for commands: that is done when the chunk is no larger than the size
//! limit (the cost is bounded), while a chunk larger than the whole limit (`BDAT 999999999999
//! LAST`) is not worth reading — the 552 is followed by a 421 and the connection is closed.
//! Chunks the client had pipelined behind a refused one are discarded the same way and get
//! the same reply (RFC 3030 section 2), without counting as bad commands.

use super::{Next, Session, SessionEnding, State, Step};
use crate::delivery::Delivery;
use crate::replies::{self, Reply};

impl<D: Delivery> Session<D> {
    pub(super) fn bdat(&mut self, size: usize, last: bool) -> Step {
        if let Some(refusal) = self.chunking_refused.clone() {
            if last {
                self.chunking_refused = None;
            }
            return self.discard_chunk(size, refusal);
        }
        let max_message_size = self.config.max_message_size;
        match self.take_transaction() {
            Some(mut transaction) if !transaction.recipients.is_empty() => {
                if transaction.body.size().saturating_add(size) > max_message_size {
                    // The transaction is dropped here: the message can no longer be taken.
                    tracing::info!(
                        client = %self.client.ip(), received = transaction.body.size(), chunk = size,
                        limit = max_message_size, "BDAT chunk refused: the message would be too big"
                    );
                    let refusal = replies::declared_size_too_big(max_message_size);
                    // A refused LAST chunk ends the message: nothing of it can follow.
                    if !last {
                        self.chunking_refused = Some(refusal.clone());
                    }
                    return self.refuse_chunk(size, refusal, State::Idle);
                }
                if !self.shared.budget.has_room_for(size) {
                    tracing::warn!(
                        client = %self.client.ip(), chunk = size,
                        limit = self.config.max_memory_in_flight,
                        "BDAT chunk refused: the memory budget for messages in flight is used up"
                    );
                    if !last {
                        self.chunking_refused = Some(replies::BUSY);
                    }
                    return self.refuse_chunk(size, replies::BUSY, State::Idle);
                }
                transaction.chunking = true;
                self.state = State::Chunk {
                    transaction,
                    size,
                    remaining: size,
                    last,
                };
                Step::Continue
            }
            other => {
                if let Some(transaction) = other {
                    self.state = State::Transaction(transaction);
                }
                let reply = self.no_message_expected();
                let resume = std::mem::replace(&mut self.state, State::Idle);
                self.refuse_chunk(size, reply, resume)
            }
        }
    }

    /// Answers a refused chunk now, then reads and drops its bytes and goes back to `resume`,
    /// or closes the connection if the chunk is larger than any message may be.
    fn refuse_chunk(&mut self, size: usize, reply: Reply, resume: State) -> Step {
        if size > self.config.max_message_size {
            self.push(&reply);
            self.push(&replies::chunk_not_read(&self.config.hostname));
            return Step::Stop(Next::Close(SessionEnding::ChunkTooBig));
        }
        self.state = State::RefusedChunk {
            remaining: size,
            resume: Box::new(resume),
        };
        self.command_reply(reply)
    }

    /// A chunk pipelined behind a refused one: answered as that one was, and dropped.
    fn discard_chunk(&mut self, size: usize, refusal: Reply) -> Step {
        if size > self.config.max_message_size {
            self.push(&refusal);
            self.push(&replies::chunk_not_read(&self.config.hostname));
            return Step::Stop(Next::Close(SessionEnding::ChunkTooBig));
        }
        let resume = std::mem::replace(&mut self.state, State::Idle);
        self.state = State::RefusedChunk {
            remaining: size,
            resume: Box::new(resume),
        };
        self.push(&refusal);
        Step::Continue
    }

    /// A chunk other than the last arrived in full.
    pub(super) fn end_of_chunk(&mut self, size: usize) -> Step {
        let Some(transaction) = self.take_transaction() else {
            return Step::Continue;
        };
        if transaction.body.overflow().is_some() {
            // Only the memory budget can be short here: the size was checked before reading.
            tracing::warn!(
                client = %self.client.ip(), received = transaction.body.size(),
                limit = self.config.max_memory_in_flight,
                "message abandoned: the memory budget for messages in flight is used up"
            );
            self.chunking_refused = Some(replies::BUSY);
            return self.command_reply(replies::BUSY);
        }
        self.state = State::Transaction(transaction);
        self.command_reply(replies::chunk_received(size))
    }

    pub(super) fn end_of_refused_chunk(&mut self) -> Step {
        if let State::RefusedChunk { resume, .. } = std::mem::replace(&mut self.state, State::Idle)
        {
            self.state = *resume;
        }
        Step::Continue
    }
}
