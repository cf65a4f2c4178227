//! DATA (RFC 5321 section 4.1.1.4): after the 354 the session reads the body through
//! [`DotDecoder`](super::dot::DotDecoder) until `CRLF.CRLF`.

use super::dot::DotDecoder;
use super::{Session, State, Step};
use crate::delivery::Delivery;
use crate::replies;

impl<D: Delivery> Session<D> {
    pub(super) fn data(&mut self) -> Step {
        if let State::Transaction(transaction) = &self.state
            && transaction.chunking
        {
            return self.command_reply(replies::FINISH_CHUNKING);
        }
        match self.take_transaction() {
            Some(transaction) if !transaction.recipients.is_empty() => {
                self.state = State::Data(transaction, DotDecoder::new());
                self.push(&replies::START_DATA);
                Step::Continue
            }
            Some(transaction) => {
                self.state = State::Transaction(transaction);
                let refusal = self.no_message_expected();
                self.command_reply(refusal)
            }
            None => {
                let refusal = self.no_message_expected();
                self.command_reply(refusal)
            }
        }
    }
}
