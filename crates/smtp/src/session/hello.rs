//! EHLO and HELO (RFC 5321 section 4.1.1.1). Either one abandons an open transaction.

use super::{Session, State, Step};
use crate::delivery::Delivery;
use crate::replies;

impl<D: Delivery> Session<D> {
    pub(super) fn ehlo(&mut self, client_name: &str) -> Step {
        self.greeted(client_name);
        let offer_starttls = self.config.tls.is_some() && self.tls.is_none();
        let reply = replies::ehlo(
            &self.config.hostname,
            client_name,
            self.config.max_message_size,
            offer_starttls,
        );
        self.command_reply(reply)
    }

    pub(super) fn helo(&mut self, client_name: &str) -> Step {
        self.greeted(client_name);
        let reply = replies::helo(&self.config.hostname);
        self.command_reply(reply)
    }

    fn greeted(&mut self, client_name: &str) {
        self.helo = Some(client_name.to_string());
        self.state = State::Idle;
    }
}
