//! MAIL FROM (RFC 5321 section 4.1.1.2) with the SIZE (RFC 1870), BODY=8BITMIME (RFC 6152)
//! and SMTPUTF8 (RFC 6531) parameters.

use std::borrow::Cow;

use smtp_proto::{MAIL_BODY_BINARYMIME, MailFrom};

use super::transaction::Transaction;
use super::{Session, State};
use crate::address::{path_in_line, reverse_path};
use crate::delivery::Delivery;
use crate::replies::{self, Reply};

impl<D: Delivery> Session<D> {
    pub(super) fn mail(&mut self, from: &MailFrom<Cow<'_, str>>, line: &[u8]) -> Reply {
        match self.state {
            State::Connected => return replies::HELLO_FIRST,
            State::Idle => {}
            _ => return replies::NESTED_MAIL,
        }
        let max_message_size = self.config.max_message_size;
        if from.size > max_message_size {
            return replies::declared_size_too_big(max_message_size);
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            return replies::unsupported_parameter("BODY=BINARYMIME");
        }
        // Recorded as written: the parser drops quotes, which matter to SPF's %{l} macro.
        let line = String::from_utf8_lossy(line);
        let mail_from = path_in_line(&line).map_or(from.address.as_ref(), reverse_path);
        self.state = State::Transaction(Transaction::new(mail_from.to_string(), max_message_size));
        replies::SENDER_OK
    }
}
