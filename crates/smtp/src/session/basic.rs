//! The commands that change little: RSET, and QUIT (NOOP, VRFY and HELP have fixed replies,
//! see `replies.rs`).

use super::{Next, Session, SessionEnding, State, Step};
use crate::delivery::Delivery;
use crate::replies;

impl<D: Delivery> Session<D> {
    /// Abandons the transaction, keeping the greeting (RFC 5321 section 4.1.1.5).
    pub(super) fn rset(&mut self) -> Step {
        if !matches!(self.state, State::Connected) {
            self.state = State::Idle;
        }
        self.command_reply(replies::RESET)
    }

    pub(super) fn quit(&mut self) -> Step {
        self.push(&replies::closing(&self.config.hostname));
        Step::Stop(Next::Close(SessionEnding::ClientQuit))
    }
}
