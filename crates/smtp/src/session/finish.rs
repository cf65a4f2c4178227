//! The end of a message (after DATA's `CRLF.CRLF` or BDAT LAST): refuse it if too big or if
//! the memory budget had no room for it or for the copies delivery makes of it
//! ([`Delivery::COPIES_WHILE_DELIVERING`]), else hand it to the [`Delivery`] and answer only
//! once that returns, so a 250 means stored. The memory stays reserved until then.

use chrono::Utc;

use super::transaction::Overflow;
use super::{Session, Step};
use crate::delivery::{Accepted, Delivery, DeliveryError, Envelope};
use crate::replies;

impl<D: Delivery> Session<D> {
    pub(super) async fn end_of_message(&mut self) -> Step {
        let Some(transaction) = self.take_transaction() else {
            return Step::Continue;
        };
        self.transcript.prompt("end of data");
        let client = self.client;
        let helo = self.helo.clone().unwrap_or_default();
        let recipients: Vec<&str> = transaction
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        // Client text, escaped so it cannot forge log lines or reach a terminal raw.
        let recipients = recipients.join(",").escape_debug().to_string();
        let size = transaction.body.size();
        let mail_from = transaction.mail_from.escape_debug().to_string();
        let helo_logged = helo.escape_debug().to_string();
        let helo_logged = helo_logged.as_str();

        match transaction.body.overflow() {
            None => {}
            Some(Overflow::TooBig) => {
                tracing::info!(
                    client = %client.ip(), helo = helo_logged, mail_from, recipients, size,
                    limit = self.config.max_message_size, "message refused: too big"
                );
                return self.command_reply(replies::MESSAGE_TOO_BIG);
            }
            Some(Overflow::OverBudget) => {
                tracing::warn!(
                    client = %client.ip(), helo = helo_logged, mail_from, recipients, size,
                    limit = self.config.max_memory_in_flight,
                    "message refused: the memory budget for messages in flight is used up"
                );
                return self.command_reply(replies::BUSY);
            }
        }

        let envelope = Envelope {
            client,
            helo,
            tls: self.tls.clone(),
            mail_from: transaction.mail_from,
            body: transaction.body_type,
            recipients: transaction.recipients,
            received_at: Utc::now(),
        };
        let (message, memory) = transaction.body.into_parts();
        // The copies delivery makes while verifying and storing count against the budget too,
        // held (like the message's own memory) until delivery returns.
        let copies_size = size.saturating_mul(D::COPIES_WHILE_DELIVERING);
        let mut copies = self.shared.budget.reservation();
        if !copies.grow_to(copies_size) {
            tracing::warn!(
                client = %client.ip(), helo = helo_logged, mail_from, recipients, size, copies_size,
                limit = self.config.max_memory_in_flight,
                "message refused: the memory budget has no room for the copies delivery makes of it"
            );
            return self.command_reply(replies::BUSY);
        }
        let outcome = self.delivery.deliver(envelope, message).await;
        drop(memory);
        drop(copies);
        // Verification time is the server's, not the client's: the command timeout restarts.
        self.waiting_since = std::time::Instant::now();
        let took_ms = transaction.started.elapsed().as_millis() as u64;
        let reply = match outcome {
            Ok(accepted) => {
                self.messages_stored += 1;
                // Report ids are named in the reply text; the record keeps the results'.
                self.transcript
                    .stored(accepted.iter().filter_map(|accepted| match accepted {
                        Accepted::Result { id, .. } => Some(id.clone()),
                        Accepted::Report(_) => None,
                    }));
                let ids: Vec<&str> = accepted.iter().map(Accepted::id).collect();
                tracing::debug!(
                    client = %client.ip(), helo = helo_logged, mail_from, recipients, size, ids = ids.join(","), took_ms,
                    "message stored"
                );
                replies::stored(&accepted)
            }
            Err(DeliveryError::Temporary(reason)) => {
                tracing::warn!(
                    client = %client.ip(), helo = helo_logged, mail_from, recipients, size, reason, took_ms,
                    "message not stored: temporary failure, the client was told to retry"
                );
                replies::temporary_failure(&reason)
            }
            Err(DeliveryError::TimedOut(reason)) => {
                tracing::warn!(
                    client = %client.ip(), helo = helo_logged, mail_from, recipients, size, reason, took_ms,
                    "message not stored: verification ran past its deadline, the client was told to retry"
                );
                replies::verification_timed_out(&reason)
            }
            Err(DeliveryError::InsufficientStorage) => {
                tracing::warn!(
                    client = %client.ip(), helo = helo_logged, mail_from, recipients, size, took_ms,
                    "message not stored: too little free disk space, the client was told to retry"
                );
                replies::INSUFFICIENT_STORAGE
            }
            Err(DeliveryError::Permanent(reason)) => {
                tracing::warn!(
                    client = %client.ip(), helo = helo_logged, mail_from, recipients, size, reason, took_ms,
                    "message refused by delivery"
                );
                replies::permanent_failure(&reason)
            }
        };
        self.push(&reply);
        Step::Continue
    }
}
