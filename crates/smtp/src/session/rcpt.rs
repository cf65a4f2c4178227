//! RCPT TO (RFC 5321 section 4.1.1.3): only the tester and report mailboxes and the private
//! test addresses the delivery says are open, at most `max_recipients` distinct ones; the
//! same address twice is accepted once.

use super::{Session, State, Step};
use crate::address::{Refusal, check_recipient, path_in_line};
use crate::delivery::{Delivery, Destination};
use crate::replies;

impl<D: Delivery> Session<D> {
    /// `parsed` is false when smtp-proto refused the address; the policy check still runs
    /// first so that every relay attempt gets the same 550 5.7.1.
    pub(super) async fn rcpt(&mut self, line: &[u8], parsed: bool) -> Step {
        match &self.state {
            State::Connected => return self.command_reply(replies::HELLO_FIRST),
            State::Transaction(transaction) if transaction.chunking => {
                return self.command_reply(replies::FINISH_CHUNKING);
            }
            State::Transaction(_) => {}
            _ => return self.command_reply(replies::MAIL_FIRST),
        }
        let line = String::from_utf8_lossy(line);
        let Some(path) = path_in_line(&line) else {
            return self
                .command_reply(replies::syntax_error("RCPT TO:<forward-path> [parameters]"));
        };
        let recipient = match check_recipient(path, &self.config.domains) {
            Ok(recipient) => recipient,
            Err(Refusal::RelayDenied) => return self.command_reply(replies::RELAYING_DENIED),
            Err(Refusal::NoSuchMailbox) => {
                return self.command_reply(replies::no_such_mailbox(path));
            }
            Err(Refusal::Syntax) => return self.command_reply(replies::bad_address_syntax(path)),
        };
        if !parsed {
            return self.command_reply(replies::bad_address_syntax(path));
        }
        if let Destination::Private(token) = recipient.destination {
            match self.delivery.private_test_is_open(token).await {
                Ok(true) => {}
                Ok(false) => return self.command_reply(replies::no_such_private_test(path)),
                Err(error) => {
                    tracing::warn!(client = %self.client, %error, "cannot look up a private test address; the client was told to retry");
                    return self.command_reply(replies::temporary_failure(
                        "the private test address cannot be looked up now",
                    ));
                }
            }
        }
        // Checked above; only this command changes the state in between.
        let State::Transaction(transaction) = &mut self.state else {
            return self.command_reply(replies::MAIL_FIRST);
        };
        let already_given = transaction
            .recipients
            .iter()
            .any(|given| given.address.eq_ignore_ascii_case(&recipient.address));
        if !already_given {
            if transaction.recipients.len() >= self.config.max_recipients {
                return self.command_reply(replies::TOO_MANY_RECIPIENTS);
            }
            transaction.recipients.push(recipient);
        }
        let reply = replies::recipient_ok(path);
        self.command_reply(reply)
    }
}
