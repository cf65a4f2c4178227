//! What happens to an accepted message: verify it, store one result per tester mailbox, and
//! answer with the ids and links the SMTP listener puts in its final reply.
//!
//! The result is committed to the store before this returns, so a 250 reply always means the
//! result is there. A store that cannot write turns into a temporary SMTP failure (451) so the
//! sender retries; nothing is acknowledged that was not stored.

use std::net::IpAddr;

use authcheck_smtp::{Accepted, Delivery, DeliveryError, Envelope, Mailbox as SmtpMailbox};
use authcheck_store::{Mailbox, NewResult, SessionFacts, SharedStore};
use authcheck_verifier::{Dns, MessageInput, Report, Verdict, Verifier};

pub struct TesterDelivery {
    pub verifier: Verifier,
    pub store: SharedStore,
    pub public_url: String,
}

fn store_mailbox(mailbox: SmtpMailbox) -> Mailbox {
    match mailbox {
        SmtpMailbox::Spf => Mailbox::Spf,
        SmtpMailbox::Dkim => Mailbox::Dkim,
    }
}

fn verdict_for(report: &Report, mailbox: Mailbox) -> Verdict {
    match mailbox {
        Mailbox::Spf => report.verdicts.spf,
        Mailbox::Dkim => report.verdicts.dkim,
    }
}

/// The most time the PTR lookup and its forward confirmation may take together.
const REVERSE_DNS_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The PTR name of `ip` and whether it resolves back to `ip` (forward-confirmed reverse DNS),
/// bounded like the checks so that a silent nameserver cannot hold the reply back.
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

impl TesterDelivery {
    async fn verify_and_store(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<Vec<Accepted>, DeliveryError> {
        let client_ip = envelope.client.ip();
        let input = MessageInput {
            client_ip: Some(client_ip),
            helo: &envelope.helo,
            mail_from: &envelope.mail_from,
            message: &message,
        };
        let started = std::time::Instant::now();
        let (report, (client_ptr, client_ptr_confirmed)) = tokio::join!(
            self.verifier.verify(&input),
            reverse_dns(self.verifier.dns(), client_ip)
        );
        metrics::histogram!("authcheck_verification_seconds")
            .record(started.elapsed().as_secs_f64());
        let report_json = serde_json::value::to_raw_value(&report)
            .map_err(|e| DeliveryError::Temporary(format!("cannot encode the report: {e}")))?;
        let subject = authcheck_verifier::subject::subject_of(&message);
        let header_from = authcheck_verifier::subject::from_address(&message);

        // One result per mailbox: spf+a@ and spf+b@ in one message are one spf test.
        let mut tested = Vec::new();
        for recipient in &envelope.recipients {
            if !tested
                .iter()
                .any(|(mailbox, _)| *mailbox == recipient.mailbox)
            {
                tested.push((recipient.mailbox, recipient.address.as_str()));
            }
        }
        let size = message.len() as u64;
        let result_for = |mailbox, recipient: &str, serialized_report, raw_message| {
            let mailbox = store_mailbox(mailbox);
            let verdict = verdict_for(&report, mailbox).to_string();
            let prefixed_subject = match &subject {
                Some(s) if !s.is_empty() => format!("{verdict} {s}"),
                _ => verdict.clone(),
            };
            NewResult {
                mailbox,
                received_at: envelope.received_at,
                session: SessionFacts {
                    client_ip: client_ip.to_string(),
                    client_port: envelope.client.port(),
                    client_ptr: client_ptr.clone(),
                    client_ptr_confirmed,
                    helo: envelope.helo.clone(),
                    tls_version: envelope.tls.as_ref().map(|t| t.version.clone()),
                    tls_cipher: envelope.tls.as_ref().map(|t| t.cipher.clone()),
                    mail_from: envelope.mail_from.clone(),
                    recipient: recipient.to_owned(),
                    size,
                },
                header_from: header_from.clone(),
                subject: subject.clone(),
                verdict,
                prefixed_subject,
                report: serialized_report,
                raw_message,
            }
        };
        // The message and the report are copied for all but the last result, which takes them.
        let Some((&(last_mailbox, last_recipient), others)) = tested.split_last() else {
            // The session hands over only messages with an accepted recipient.
            return Err(DeliveryError::Permanent(
                "the message has no recipient".into(),
            ));
        };
        let mut results: Vec<NewResult> = others
            .iter()
            .map(|&(mailbox, recipient)| {
                result_for(mailbox, recipient, report_json.clone(), message.clone())
            })
            .collect();
        results.push(result_for(
            last_mailbox,
            last_recipient,
            report_json,
            message,
        ));

        let ids = self.store.insert(results).await.map_err(|e| {
            metrics::counter!("authcheck_store_errors_total").increment(1);
            tracing::error!(error = %e, client_ip = %client_ip, "could not store a result; the client was told to retry");
            DeliveryError::Temporary("the result could not be stored".into())
        })?;
        tracing::info!(
            client_ip = %client_ip,
            // Client text, escaped so it cannot forge log lines or reach a terminal raw.
            helo = %envelope.helo.escape_debug(),
            mail_from = %envelope.mail_from.escape_debug(),
            recipients = %envelope.recipients.iter().map(|r| r.address.as_str()).collect::<Vec<_>>().join(",").escape_debug(),
            spf = %report.verdicts.spf,
            dkim = %report.verdicts.dkim,
            ids = %ids.join(","),
            millis = started.elapsed().as_millis() as u64,
            "message verified and stored"
        );
        for &(mailbox, _) in &tested {
            let mailbox = store_mailbox(mailbox);
            metrics::counter!(
                "authcheck_messages_total",
                "mailbox" => mailbox.as_str(),
                "verdict" => verdict_for(&report, mailbox).to_string()
            )
            .increment(1);
        }
        Ok(tested
            .iter()
            .zip(ids)
            .map(|(&(mailbox, _), id)| Accepted {
                mailbox,
                url: authcheck_web::result_url(&self.public_url, &id),
                id,
            })
            .collect())
    }
}

impl Delivery for TesterDelivery {
    fn deliver(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<Accepted>, DeliveryError>> + Send {
        self.verify_and_store(envelope, message)
    }
}
