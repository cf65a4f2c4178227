//! What happens to an accepted message: check that there is room to keep it; if it was sent to
//! a report mailbox (`rua@`, `ruf@`), keep it as a DMARC report ([`crate::dmarc::keep_report`]);
//! if it was sent to a tester mailbox, verify it on the verification pool within one deadline
//! and store one result per tester mailbox; and answer with the ids and links the SMTP
//! listener puts in its final reply.
//!
//! A message to both kinds of mailbox gets both: the report is kept first, since keeping it
//! again when the sender retries after a later temporary failure only finds it already stored.
//!
//! Everything is committed to the store before this returns, so a 250 reply always means the
//! result or report is there. Whatever goes wrong before that (too little disk, a check past its
//! deadline, a store that cannot write) is a temporary SMTP failure, so the sender retries;
//! nothing is acknowledged that was not stored.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authcheck_smtp::{
    Accepted, BodyType, Delivery, DeliveryError, Destination, Envelope, ReportReceipt,
    SessionRecord,
};
use authcheck_store::{Mailbox, NewResult, PrivateToken, SessionFacts, SharedStore};
use authcheck_verifier::subject::{from_address, subject_of};
use authcheck_verifier::{BodyParameter, Dns, MessageInput, Report, Verifier};
use serde_json::value::RawValue;
use tokio::runtime::Runtime;

use crate::dmarc::Kept;
use crate::reply::{HeaderFacts, Replies, ReplyContent, ReplyFacts, Tested};
use crate::session_log::{SessionLog, worth_looking_up};
use crate::sources::SourceNamer;

pub struct TesterDelivery {
    pub pool: VerificationPool,
    pub store: SharedStore,
    pub public_url: String,
    /// Below this many free bytes on the database's disk, messages are refused (452).
    pub min_free_disk: u64,
    /// Looks up the names of stored reports' sources once they are answered.
    pub source_namer: SourceNamer,
    /// Lets [`REPORTS_AT_ONCE`] reports be parsed and stored at a time.
    pub report_gate: tokio::sync::Semaphore,
    /// Where finished sessions go (see `session_log`).
    pub sessions: SessionLog,
    /// Replies by mail, when the operator turned them on.
    pub replies: Option<Replies>,
}

/// DMARC reports parsed and stored at once; the others wait their turn (their senders wait for
/// the reply). A report's parse and its stored form take far more memory than the message
/// (a compressed report decompresses up to the parser's 256 MiB limit, and a 50 MB report
/// peaked at 300-440 MiB: README, "Memory for large DMARC reports"), more than
/// [`TesterDelivery::COPIES_WHILE_DELIVERING`] can count; one at a time bounds that memory by
/// one report whatever many senders do. Reports are few (one a day per reporter and domain),
/// so the wait is rarely felt.
pub const REPORTS_AT_ONCE: usize = 1;

impl Delivery for TesterDelivery {
    /// Two message-sized copies at most, in one of two phases that never overlap (the
    /// verifier's copies are dropped before the results are stored):
    /// - verifying: the DKIM canonical bodies, simple and relaxed, each at most the size of
    ///   the message and made only for the canonicalizations the signatures name (a message
    ///   with bare LFs also gets a CRLF copy first; with both canonicalizations that one case
    ///   briefly reaches three);
    /// - storing: the message moves to the store's writer. SQLite copies it as it binds it
    ///   (`SQLITE_TRANSIENT`), and the record it builds from it exists for one row at a time
    ///   on the single writer thread, so it is bounded by one message in all, not per
    ///   message; sqlx copies it for PostgreSQL into its arguments and then its send buffer.
    ///
    /// A message to several tester mailboxes or private tests has one result for each, which
    /// share the message ([`Verified::results`]); the store keeps one copy of it.
    ///
    /// A message to a report mailbox and a tester mailbox is cloned for the report, which is
    /// stored (the driver's copy made and dropped) before verification starts: two copies
    /// again. What parsing a report and its stored form take beyond the message is bounded
    /// apart, by parsing one report at a time ([`REPORTS_AT_ONCE`]).
    const COPIES_WHILE_DELIVERING: usize = 2;

    fn deliver(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<Accepted>, DeliveryError>> + Send {
        self.verify_and_store(envelope, message)
    }

    /// Open until its expiry by the wall clock; the store's tests move that clock.
    async fn private_test_is_open(&self, token: PrivateToken) -> Result<bool, DeliveryError> {
        let test = self.store.private_test(token).await.map_err(|e| {
            metrics::counter!("authcheck_store_errors_total").increment(1);
            DeliveryError::Temporary(e.to_string())
        })?;
        Ok(test.is_some_and(|test| test.is_open(chrono::Utc::now().timestamp())))
    }

    fn session_ended(&self, record: SessionRecord) {
        self.sessions.record(record);
    }
}

impl TesterDelivery {
    async fn verify_and_store(
        &self,
        envelope: Envelope,
        mut message: Vec<u8>,
    ) -> Result<Vec<Accepted>, DeliveryError> {
        self.check_free_disk_space()?;
        let to_reports = envelope
            .recipients
            .iter()
            .find(|r| matches!(r.destination, Destination::Reports(_)));
        let to_tests = envelope.recipients.iter().any(|r| {
            matches!(
                r.destination,
                Destination::Test(_) | Destination::Private(_)
            )
        });
        let mut accepted = Vec::new();
        if let Some(report_recipient) = to_reports {
            let raw = if to_tests {
                message.clone()
            } else {
                std::mem::take(&mut message)
            };
            let source = format!("smtp:{}", report_recipient.address);
            accepted.push(Accepted::Report(
                self.keep_report(&envelope, raw, &source).await?,
            ));
        }
        if to_tests {
            accepted.extend(self.verify_and_store_results(envelope, message).await?);
        }
        Ok(accepted)
    }

    /// Keeps a message sent to `rua@` or `ruf@` (`source` names the first such recipient) as
    /// a report, or as a rejected report with the reason.
    async fn keep_report(
        &self,
        envelope: &Envelope,
        raw: Vec<u8>,
        source: &str,
    ) -> Result<ReportReceipt, DeliveryError> {
        let received_at = envelope.received_at.timestamp();
        let _turn = self
            .report_gate
            .acquire()
            .await
            .map_err(|_| DeliveryError::Temporary("the service is stopping".into()))?;
        let kept = crate::dmarc::keep_report(&self.store, raw, received_at, source)
            .await
            .map_err(|e| {
                metrics::counter!("authcheck_store_errors_total").increment(1);
                tracing::error!(error = %e, client_ip = %envelope.client.ip(), "could not store a DMARC report; the client was told to retry");
                DeliveryError::Temporary("the report could not be stored".into())
            })?;
        let client_ip = envelope.client.ip();
        Ok(match kept {
            Kept::Stored { id, sources } => {
                tracing::info!(%client_ip, source, id, sources = sources.len(), "DMARC report stored");
                // After the commit and off the reply's path (see `crate::sources`).
                self.source_namer.look_up(sources);
                ReportReceipt::Stored { id }
            }
            Kept::Duplicate(id) => {
                tracing::info!(%client_ip, source, id, "DMARC report already stored");
                ReportReceipt::Duplicate { id }
            }
            Kept::Rejected { id, reason } => {
                tracing::info!(%client_ip, source, id, reason, "DMARC report rejected and kept with its reason");
                ReportReceipt::Rejected { id, reason }
            }
        })
    }

    async fn verify_and_store_results(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<Vec<Accepted>, DeliveryError> {
        let started = Instant::now();
        let (verified, message) = self.pool.verify(&envelope, message).await?;
        metrics::histogram!("authcheck_verification_seconds")
            .record(started.elapsed().as_secs_f64());
        let header = self.replies.as_ref().map(|_| HeaderFacts::of(&message));
        let results = verified.results(&envelope, message)?;
        let mailboxes: Vec<Mailbox> = results.iter().map(|result| result.mailbox).collect();
        let ids = self.store.insert(results).await.map_err(|e| {
            metrics::counter!("authcheck_store_errors_total").increment(1);
            tracing::error!(error = %e, client_ip = %envelope.client.ip(), "could not store a result; the client was told to retry");
            DeliveryError::Temporary("the result could not be stored".into())
        })?;
        verified.log_and_count(&envelope, &mailboxes, &ids, started);
        if let (Some(replies), Some(header)) = (&self.replies, &header) {
            // Decided before the 250, so that a reply the sender is told of (on the result
            // page) is in the store; the results are stored whatever happens here.
            self.decide_reply(replies, &verified, &envelope, header, &mailboxes, &ids)
                .await;
        }
        Ok(mailboxes
            .into_iter()
            .zip(ids)
            .map(|(mailbox, id)| Accepted::Result {
                mailbox,
                url: authcheck_web::result_url(&self.public_url, &id),
                id,
            })
            .collect())
    }

    /// Takes the reply decision for a message whose results are stored as `ids`, and logs it.
    async fn decide_reply(
        &self,
        replies: &Replies,
        verified: &Verified,
        envelope: &Envelope,
        header: &HeaderFacts,
        mailboxes: &[Mailbox],
        ids: &[String],
    ) {
        let results: Vec<(Mailbox, String, String)> = mailboxes
            .iter()
            .zip(ids)
            .map(|(&mailbox, id)| {
                (
                    mailbox,
                    verified.report.verdicts.text_for(mailbox),
                    id.clone(),
                )
            })
            .collect();
        let tested = Tested {
            facts: ReplyFacts {
                mail_from: &envelope.mail_from,
                mailboxes,
                report: &verified.report,
                header,
            },
            content: ReplyContent {
                tester_domain: &replies.config.tester_domain,
                public_url: &replies.config.public_url,
                recipient: &envelope.mail_from,
                report: &verified.report,
                results: &results,
                subject: verified.subject.as_deref(),
                client_ip: envelope.client.ip(),
                received_at: envelope.received_at,
                in_reply_to: header.message_id.as_deref(),
            },
            client: envelope.client.ip().to_string(),
        };
        let client_ip = envelope.client.ip();
        match replies.decide(&tested, chrono::Utc::now()).await {
            Ok(Ok(reply_id)) => tracing::info!(
                %client_ip, mail_from = %envelope.mail_from, ids = %ids.join(","), reply_id,
                "reply by mail queued"
            ),
            Ok(Err(reason)) => tracing::info!(
                %client_ip, mail_from = %envelope.mail_from, ids = %ids.join(","),
                reason = reason.as_str(), "no reply sent: {reason}"
            ),
            Err(error) => tracing::warn!(
                %client_ip, ids = %ids.join(","), %error,
                "the reply decision could not be stored; no reply for this message"
            ),
        }
    }

    /// Refuses the message while the database's disk is below the free-space floor: a
    /// message accepted now might be the one that fills it, and with it every write.
    fn check_free_disk_space(&self) -> Result<(), DeliveryError> {
        match self.store.free_disk_space() {
            Ok(Some(free)) if free < self.min_free_disk => {
                tracing::error!(
                    free_bytes = free,
                    min_free_disk = self.min_free_disk,
                    "refusing messages (452): the database's disk has less free space than \
                     min_free_disk; free some space or lower the setting"
                );
                Err(DeliveryError::InsufficientStorage)
            }
            Ok(_) => Ok(()),
            // Not knowing is no reason to refuse: the write itself will tell.
            Err(error) => {
                tracing::warn!(%error, "cannot check the free disk space");
                Ok(())
            }
        }
    }
}

/// Where messages are verified: a runtime of its own with one thread per core, so that
/// messages costly to check (slow DNS, many signatures, large keys) slow one another but never
/// the SMTP sessions, the site or `/healthz`, which run on the service's runtime. Each message
/// gets one deadline for all of its checking, DNS and CPU alike.
pub struct VerificationPool {
    verifier: Arc<Verifier>,
    /// `Some` until dropped; see the `Drop` implementation.
    runtime: Option<Runtime>,
    deadline: Duration,
}

impl VerificationPool {
    pub fn new(verifier: Verifier, deadline: Duration) -> std::io::Result<VerificationPool> {
        let threads = std::thread::available_parallelism().map_or(2, |cores| cores.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("verifier")
            .enable_all()
            .build()?;
        Ok(VerificationPool {
            verifier: Arc::new(verifier),
            runtime: Some(runtime),
            deadline,
        })
    }

    /// PTR lookups with the verifier's resolver, on the pool's threads.
    pub fn ptr_lookup(&self) -> PtrLookup {
        PtrLookup {
            verifier: self.verifier.clone(),
            runtime: self
                .runtime
                .as_ref()
                .expect("the pool runs until dropped")
                .handle()
                .clone(),
        }
    }

    /// Verifies `message` on the pool and gives it back with what was found, or
    /// [`DeliveryError::TimedOut`] when that took longer than the deadline (the checking is
    /// then abandoned at its next wait for DNS).
    async fn verify(
        &self,
        envelope: &Envelope,
        message: Vec<u8>,
    ) -> Result<(Verified, Vec<u8>), DeliveryError> {
        let verifier = self.verifier.clone();
        let client_ip = envelope.client.ip();
        let (helo, mail_from) = (envelope.helo.clone(), envelope.mail_from.clone());
        let body = body_parameter(envelope.body);
        let runtime = self.runtime.as_ref().expect("the pool runs until dropped");
        let task = runtime.spawn(async move {
            let input = MessageInput {
                client_ip: Some(client_ip),
                helo: &helo,
                mail_from: &mail_from,
                message: &message,
                body,
            };
            // Boxed, so that the task holds a pointer rather than the checking's whole state
            // machine: tokio moves a task's future and output in and out of its cell, and each
            // move copied those tens of kilobytes.
            let verified = Box::pin(Verified::check(&verifier, &input)).await;
            (verified, message)
        });
        let abort = task.abort_handle();
        match tokio::time::timeout(self.deadline, task).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(failure)) => {
                tracing::error!(error = %failure, client_ip = %client_ip, "verification failed; the client was told to retry");
                Err(DeliveryError::Temporary(
                    "the message could not be checked".into(),
                ))
            }
            Err(_) => {
                abort.abort();
                metrics::counter!("authcheck_verification_timeouts_total").increment(1);
                Err(DeliveryError::TimedOut(format!(
                    "checking takes longer than {}",
                    humantime::format_duration(self.deadline)
                )))
            }
        }
    }
}

/// Looks up the PTR names of session clients for the session log.
#[derive(Clone)]
pub struct PtrLookup {
    verifier: Arc<Verifier>,
    runtime: tokio::runtime::Handle,
}

impl PtrLookup {
    /// The PTR name of `ip`, if it has one and the answer comes within `limit`.
    pub async fn name_of(&self, ip: IpAddr, limit: Duration) -> Option<String> {
        if !worth_looking_up(ip) {
            return None;
        }
        let verifier = self.verifier.clone();
        let lookup = self.runtime.spawn(async move {
            tokio::time::timeout(limit, verifier.dns().ptr(ip))
                .await
                .ok()?
                .ok()?
                .into_iter()
                .next()
        });
        lookup.await.ok().flatten()
    }
}

/// The SMTP session's `BODY=` parameter in the verifier's terms.
fn body_parameter(body: BodyType) -> BodyParameter {
    match body {
        BodyType::Undeclared => BodyParameter::Absent,
        BodyType::SevenBit => BodyParameter::SevenBit,
        BodyType::EightBitMime => BodyParameter::EightBitMime,
    }
}

impl Drop for VerificationPool {
    /// Dropping a runtime waits for its threads, which an async context may not do; checks
    /// still under way are abandoned, as their clients were already answered.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Everything verification found out about one message, and so everything its results are
/// built from besides the envelope.
struct Verified {
    report: Report,
    subject: Option<String>,
    header_from: Option<String>,
    client_ptr: Option<String>,
    client_ptr_confirmed: bool,
}

impl Verified {
    async fn check(verifier: &Verifier, input: &MessageInput<'_>) -> Verified {
        let client_ip = input.client_ip.expect("the SMTP client's address is known");
        let (report, (client_ptr, client_ptr_confirmed)) = tokio::join!(
            verifier.verify(input),
            reverse_dns(verifier.dns(), client_ip)
        );
        Verified {
            report,
            subject: subject_of(input.message),
            header_from: from_address(input.message),
            client_ptr,
            client_ptr_confirmed,
        }
    }

    /// One result per tester mailbox the message was sent to (`spf+a@` and `spf+b@` in one
    /// message are one spf test), in the order of the recipients. They carry the same raw
    /// message, which the store keeps once.
    fn results(
        &self,
        envelope: &Envelope,
        message: Vec<u8>,
    ) -> Result<Vec<NewResult>, DeliveryError> {
        let encode = |what: &str, value: Result<Box<RawValue>, serde_json::Error>| {
            value.map_err(|e| DeliveryError::Temporary(format!("cannot encode the {what}: {e}")))
        };
        let report = encode("report", serde_json::value::to_raw_value(&self.report))?;
        let report_summary = encode(
            "report summary",
            serde_json::value::to_raw_value(&self.report.summary()),
        )?;
        // A private test address gets the full check, listed only on its test's page.
        let mut tested: Vec<(Mailbox, Option<PrivateToken>, &str)> = Vec::new();
        for recipient in &envelope.recipients {
            let (mailbox, private_test) = match recipient.destination {
                Destination::Test(mailbox) => (mailbox, None),
                Destination::Private(token) => (Mailbox::Check, Some(token)),
                Destination::Reports(_) => continue,
            };
            if !tested
                .iter()
                .any(|&(seen, seen_test, _)| (seen, seen_test) == (mailbox, private_test))
            {
                tested.push((mailbox, private_test, recipient.address.as_str()));
            }
        }
        let size = message.len() as u64;
        let session = |recipient: &str| SessionFacts {
            client_ip: envelope.client.ip().to_string(),
            client_port: envelope.client.port(),
            client_ptr: self.client_ptr.clone(),
            client_ptr_confirmed: self.client_ptr_confirmed,
            helo: envelope.helo.clone(),
            tls_version: envelope.tls.as_ref().map(|t| t.version.clone()),
            tls_cipher: envelope.tls.as_ref().map(|t| t.cipher.clone()),
            mail_from: envelope.mail_from.clone(),
            recipient: recipient.to_owned(),
            size,
        };
        if tested.is_empty() {
            // The session hands over only messages with an accepted recipient.
            return Err(DeliveryError::Permanent(
                "the message has no recipient".into(),
            ));
        }
        // One copy shared by every result: a message sent to ten addresses must not hold ten
        // copies against a budget that counted one.
        let message = Arc::new(message);
        let results = tested
            .iter()
            .map(|&(mailbox, private_test, recipient)| {
                let verdict = self.report.verdicts.text_for(mailbox);
                let prefixed_subject = match &self.subject {
                    Some(subject) if !subject.is_empty() => format!("{verdict} {subject}"),
                    _ => verdict.clone(),
                };
                NewResult {
                    mailbox,
                    received_at: envelope.received_at,
                    session: session(recipient),
                    header_from: self.header_from.clone(),
                    subject: self.subject.clone(),
                    verdict,
                    prefixed_subject,
                    report: report.clone(),
                    report_summary: report_summary.clone(),
                    raw_message: Arc::clone(&message),
                    private_test,
                }
            })
            .collect();
        Ok(results)
    }

    fn log_and_count(
        &self,
        envelope: &Envelope,
        mailboxes: &[Mailbox],
        ids: &[String],
        started: Instant,
    ) {
        tracing::info!(
            client_ip = %envelope.client.ip(),
            helo = %envelope.helo,
            mail_from = %envelope.mail_from,
            recipients = %envelope.recipients.iter().map(|r| r.address.as_str()).collect::<Vec<_>>().join(","),
            spf = %self.report.verdicts.spf,
            dkim = %self.report.verdicts.dkim,
            ids = %ids.join(","),
            millis = started.elapsed().as_millis() as u64,
            "message verified and stored"
        );
        for &mailbox in mailboxes {
            metrics::counter!(
                "authcheck_messages_total",
                "mailbox" => mailbox.as_str(),
                "verdict" => self.report.verdicts.text_for(mailbox)
            )
            .increment(1);
        }
    }
}

/// The most time the PTR lookup and its forward confirmation may take together, within the
/// message's deadline: past it the result is stored without a PTR name.
const REVERSE_DNS_TIME_LIMIT: Duration = Duration::from_secs(10);

/// The PTR name of `ip` and whether it resolves back to `ip` (forward-confirmed reverse DNS).
async fn reverse_dns(dns: &Dns, ip: IpAddr) -> (Option<String>, bool) {
    tokio::time::timeout(REVERSE_DNS_TIME_LIMIT, lookup_reverse_dns(dns, ip))
        .await
        .unwrap_or((None, false))
}

async fn lookup_reverse_dns(dns: &Dns, ip: IpAddr) -> (Option<String>, bool) {
    let Ok(names) = dns.ptr(ip).await else {
        return (None, false);
    };
    let Some(name) = names.into_iter().next() else {
        return (None, false);
    };
    let confirmed =
        matches!(dns.addresses(&name, ip).await, Ok(addresses) if addresses.contains(&ip));
    (Some(name), confirmed)
}

#[cfg(test)]
mod tests {
    use authcheck_smtp::{BodyType, Destination, Recipient};
    use chrono::Utc;

    use super::*;

    fn recipient(address: &str, destination: Destination) -> Recipient {
        Recipient {
            address: address.into(),
            destination,
        }
    }

    /// The memory budget counts one copy of a message for its results, however many
    /// mailboxes and private tests it was sent to.
    #[test]
    fn every_result_of_a_message_shares_one_copy_of_it() {
        let verified = Verified {
            report: serde_json::from_str(include_str!("testdata/report.json"))
                .expect("the sample report parses"),
            subject: None,
            header_from: None,
            client_ptr: None,
            client_ptr_confirmed: false,
        };
        let mut recipients = vec![
            recipient("spf@tester.test", Destination::Test(Mailbox::Spf)),
            recipient("dkim@tester.test", Destination::Test(Mailbox::Dkim)),
            recipient("check@tester.test", Destination::Test(Mailbox::Check)),
        ];
        recipients.extend((1..=7u128).map(|n| {
            let token = PrivateToken::from_random_bits(n);
            recipient(
                &format!("test-{token}@tester.test"),
                Destination::Private(token),
            )
        }));
        let envelope = Envelope {
            client: "192.0.2.1:40000".parse().unwrap(),
            helo: "mail.sender.example".into(),
            tls: None,
            mail_from: "alice@sender.example".into(),
            body: BodyType::Undeclared,
            recipients,
            received_at: Utc::now(),
        };
        let message = vec![b'x'; 1 << 20];
        let results = verified.results(&envelope, message.clone()).unwrap();
        assert_eq!(results.len(), 10);
        for result in &results {
            assert!(Arc::ptr_eq(&result.raw_message, &results[0].raw_message));
        }
        assert_eq!(*results[0].raw_message, message);
    }
}
