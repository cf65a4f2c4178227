//! MAIL FROM (RFC 5321 section 4.1.1.2) with the SIZE (RFC 1870), BODY=8BITMIME (RFC 6152)
//! and SMTPUTF8 (RFC 6531) parameters; any other parameter gets 555. A new transaction must
//! also fit the memory budget and the rate limits per client and per sender domain.

use std::borrow::Cow;

use smtp_proto::{MAIL_BODY_7BIT, MAIL_BODY_8BITMIME, MAIL_BODY_BINARYMIME, MailFrom};

use super::transaction::Transaction;
use super::{Session, State, Step};
use crate::address::{path_in_line, reverse_path};
use crate::config::MAX_DOMAIN_LENGTH;
use crate::delivery::{BodyType, Delivery};
use crate::listener::client_key;
use crate::replies;

impl<D: Delivery> Session<D> {
    pub(super) fn mail(&mut self, from: &MailFrom<Cow<'_, str>>, line: &[u8]) -> Step {
        match self.state {
            State::Connected => return self.command_reply(replies::HELLO_FIRST),
            State::Idle => {}
            _ => return self.command_reply(replies::NESTED_MAIL),
        }
        let max_message_size = self.config.max_message_size;
        if from.size > max_message_size {
            return self.command_reply(replies::declared_size_too_big(max_message_size));
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            return self.command_reply(replies::unsupported_parameter("BODY=BINARYMIME"));
        }
        if let Some(parameter) = unoffered_parameter(from) {
            return self.command_reply(replies::unsupported_parameter(parameter));
        }
        // Recorded as written: the parser drops quotes, which matter to SPF's %{l} macro.
        let line = String::from_utf8_lossy(line);
        let mail_from = path_in_line(&line).map_or(from.address.as_ref(), reverse_path);

        // A declared size counts with the copies its delivery will make.
        let declared_memory = from
            .size
            .max(1)
            .saturating_mul(1 + D::COPIES_WHILE_DELIVERING);
        if !self.shared.budget.has_room_for(declared_memory) {
            tracing::warn!(
                client = %self.client.ip(), declared_size = from.size,
                limit = self.config.max_memory_in_flight,
                "new transaction refused: the memory budget for messages in flight is used up"
            );
            return self.command_reply(replies::BUSY);
        }
        if let Some(reply) = self.rate_limited(mail_from) {
            return self.command_reply(reply);
        }
        if self.transcript.mail_from.is_none() {
            self.transcript.mail_from = Some(mail_from.to_string());
        }
        let memory = self.shared.budget.reservation();
        self.state = State::Transaction(Transaction::new(
            mail_from.to_string(),
            body_type(from.flags),
            max_message_size,
            memory,
        ));
        self.command_reply(replies::SENDER_OK)
    }

    /// Counts the transaction against the client's and the sender domain's rate limits, or
    /// returns the refusal if either is used up (then nothing is counted).
    fn rate_limited(&self, mail_from: &str) -> Option<replies::Reply> {
        let now = self.config.clock.now();
        let client = client_key(self.client.ip());
        // The null reverse-path (bounces) has no domain; the client limit still applies.
        let domain = mail_from
            .rsplit_once('@')
            .map(|(_, domain)| rate_key(domain))
            .filter(|domain| !domain.is_empty());
        let shared = &self.shared;
        if !shared.per_client.allows(&client, now) {
            tracing::info!(
                client = %self.client.ip(), limit = self.config.messages_per_client,
                window = ?self.config.rate_window, "new transaction refused: client rate limit"
            );
            return Some(replies::client_rate_limited(
                self.config.messages_per_client,
                self.config.rate_window,
            ));
        }
        if let Some(domain) = &domain
            && !shared.per_sender_domain.allows(domain, now)
        {
            tracing::info!(
                client = %self.client.ip(), domain = %domain.escape_debug(),
                limit = self.config.messages_per_sender_domain,
                window = ?self.config.rate_window, "new transaction refused: sender domain rate limit"
            );
            return Some(replies::sender_domain_rate_limited(
                domain,
                self.config.messages_per_sender_domain,
                self.config.rate_window,
            ));
        }
        shared.per_client.record(client, now);
        if let Some(domain) = domain {
            shared.per_sender_domain.record(domain, now);
        }
        None
    }
}

/// The first MAIL FROM parameter smtp-proto read that the EHLO reply does not offer (DSN's RET
/// and ENVID, AUTH, DELIVERBY's BY, FUTURERELEASE, REQUIRETLS, ...): RFC 5321 section 4.1.1.11
/// asks for 555 rather than a 250 the client would take for the extension's promise.
fn unoffered_parameter(from: &MailFrom<Cow<'_, str>>) -> Option<&'static str> {
    use smtp_proto::{
        MAIL_BY_NOTIFY, MAIL_BY_RETURN, MAIL_BY_TRACE, MAIL_CONPERM, MAIL_REQUIRETLS,
        MAIL_RET_FULL, MAIL_RET_HDRS,
    };
    [
        (from.flags & (MAIL_RET_FULL | MAIL_RET_HDRS) != 0, "RET"),
        (from.env_id.is_some(), "ENVID"),
        (from.auth.is_some(), "AUTH"),
        (
            from.by != 0 || from.flags & (MAIL_BY_NOTIFY | MAIL_BY_RETURN | MAIL_BY_TRACE) != 0,
            "BY",
        ),
        (from.hold_for != 0, "HOLDFOR"),
        (from.hold_until != 0, "HOLDUNTIL"),
        (from.flags & MAIL_REQUIRETLS != 0, "REQUIRETLS"),
        (from.flags & MAIL_CONPERM != 0, "CONPERM"),
        (from.mt_priority != 0, "MT-PRIORITY"),
        (from.trans_id.is_some(), "TRANSID"),
        (from.solicit.is_some(), "SOLICIT"),
        (from.mtrk.is_some(), "MTRK"),
    ]
    .into_iter()
    .find_map(|(given, name)| given.then_some(name))
}

/// The `BODY=` parameter among MAIL FROM's parameter flags (BINARYMIME is refused before).
fn body_type(flags: u64) -> BodyType {
    if flags & MAIL_BODY_8BITMIME != 0 {
        BodyType::EightBitMime
    } else if flags & MAIL_BODY_7BIT != 0 {
        BodyType::SevenBit
    } else {
        BodyType::Undeclared
    }
}

/// The key a sender domain is counted under: lowercase, without a trailing dot, and no longer
/// than a domain name may be (RFC 1035: 255 octets), so the table's size stays bounded.
fn rate_key(domain: &str) -> String {
    let domain = domain.trim_end_matches('.');
    domain[..domain.floor_char_boundary(MAX_DOMAIN_LENGTH)].to_lowercase()
}
