//! RCPT TO (RFC 5321 section 4.1.1.3): only the tester and report mailboxes and the private
//! test addresses the delivery says are open, at most `max_recipients` distinct ones; the
//! same address twice is accepted once. No RCPT parameter is offered, so any (DSN's NOTIFY and
//! ORCPT, say) gets 555.

use std::borrow::Cow;

use smtp_proto::RcptTo;

use super::{Session, State, Step};
use crate::address::{Refusal, check_recipient, path_in_line};
use crate::delivery::{Delivery, Destination};
use crate::replies;

impl<D: Delivery> Session<D> {
    /// `parsed` is `None` when smtp-proto refused the address; the policy check still runs
    /// first so that every relay attempt gets the same 550 5.7.1.
    pub(super) async fn rcpt(
        &mut self,
        line: &[u8],
        parsed: Option<&RcptTo<Cow<'_, str>>>,
    ) -> Step {
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
        let Some(parsed) = parsed else {
            return self.command_reply(replies::bad_address_syntax(path));
        };
        if let Some(parameter) = unoffered_parameter(parsed) {
            return self.command_reply(replies::unsupported_parameter(parameter));
        }
        let private = matches!(recipient.destination, Destination::Private(_));
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
        if private {
            self.transcript.private_recipient();
        }
        let reply = replies::recipient_ok(path);
        self.command_reply(reply)
    }
}

/// The first RCPT TO parameter smtp-proto read: none is offered in the EHLO reply, and RFC 5321
/// section 4.1.1.11 asks for 555 rather than a 250 the client would take for the extension's
/// promise (a DSN it will never get, say).
fn unoffered_parameter(to: &RcptTo<Cow<'_, str>>) -> Option<&'static str> {
    use smtp_proto::{
        RCPT_CONNEG, RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER,
        RCPT_NOTIFY_SUCCESS, RCPT_RRVS_CONTINUE, RCPT_RRVS_REJECT,
    };
    let notify = RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY | RCPT_NOTIFY_NEVER;
    [
        (to.flags & notify != 0, "NOTIFY"),
        (to.orcpt.is_some(), "ORCPT"),
        (to.flags & RCPT_CONNEG != 0, "CONNEG"),
        (
            to.rrvs != 0 || to.flags & (RCPT_RRVS_REJECT | RCPT_RRVS_CONTINUE) != 0,
            "RRVS",
        ),
    ]
    .into_iter()
    .find_map(|(given, name)| given.then_some(name))
}
