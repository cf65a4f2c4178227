//! EHLO and HELO (RFC 5321 section 4.1.1.1). Either one abandons an open transaction.

use super::{Session, State};
use crate::delivery::Delivery;
use crate::replies::{self, Reply};

impl<D: Delivery> Session<D> {
    pub(super) fn ehlo(&mut self, client_name: &str) -> Reply {
        self.greeted(client_name);
        let offer_starttls = self.config.tls.is_some() && self.tls.is_none();
        replies::ehlo(
            &self.config.hostname,
            client_name,
            self.config.max_message_size,
            offer_starttls,
        )
    }

    pub(super) fn helo(&mut self, client_name: &str) -> Reply {
        self.greeted(client_name);
        replies::helo(&self.config.hostname)
    }

    fn greeted(&mut self, client_name: &str) {
        self.helo = Some(client_name.to_string());
        self.state = State::Idle;
    }
}
