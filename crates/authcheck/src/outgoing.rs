//! The outgoing queue's worker, a scheduled task: every second it claims the messages due in
//! the store (replies by mail, weekly summaries), signs each with the tester's DKIM key,
//! delivers it from `<>` to the recipient domain's MX hosts (looked up with the service's
//! resolver, the verifier's) or through the configured smarthost, and records the attempt: sent,
//! tried again later by the retry policy, or given up. Each attempt is logged and kept with the
//! message, where the result page and the API show it.
//!
//! The clock is passed in ([`Sender::run_once`] takes `now`), so retries and give-ups are tested
//! without waiting. A claim holds a message for a lease longer than any attempt can take, so
//! instances sharing a database never send one message twice, and a message whose instance died
//! mid-attempt is taken again when the lease ends: a restart loses no reply.

use std::time::Duration;

use authcheck_outbound::{
    Credentials, NextAttempt, Outgoing, RetryPolicy, Server, SigningKey, deliver_authenticated,
    mx_servers,
};
use authcheck_store::{AfterAttempt, OutgoingAttempt, OutgoingMessage, SharedStore, StoreError};
use authcheck_verifier::Dns;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// How often the queue is looked at.
const POLL: Duration = Duration::from_secs(1);
/// The most messages one look takes.
const CLAIM_AT_ONCE: u32 = 10;

/// Where messages go.
#[derive(Clone, Debug)]
pub enum Route {
    /// To the recipient domain's MX hosts, on `port` (25 between mail servers);
    /// `allow_inward` lets loopback and private addresses through.
    Mx { port: u16, allow_inward: bool },
    /// Everything through one server, `HOST:PORT`, authenticating when credentials are given.
    Smarthost {
        target: String,
        credentials: Option<Credentials>,
    },
}

/// The worker's settings, resolved.
#[derive(Clone, Debug)]
pub struct OutgoingConfig {
    /// This instance's host name: the EHLO name and the claimant.
    pub instance: String,
    /// The first tester domain, which the messages are signed for.
    pub domain: String,
    pub selector: String,
    pub route: Route,
    /// Each network wait of one attempt.
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl OutgoingConfig {
    /// How long a claim holds a message: longer than the slowest attempt (every step of every
    /// server timing out).
    fn lease(&self) -> i64 {
        let servers =
            (authcheck_outbound::MAX_MX_HOSTS * authcheck_outbound::MAX_ADDRESSES_PER_HOST) as u64;
        (self.timeout.as_secs().max(1) * 9 * servers + 60) as i64
    }
}

/// Sends queued messages with one key through one route.
pub struct Sender {
    config: OutgoingConfig,
    key: SigningKey,
    store: SharedStore,
    dns: Dns,
}

impl Sender {
    pub fn new(config: OutgoingConfig, key: SigningKey, store: SharedStore, dns: Dns) -> Sender {
        Sender {
            config,
            key,
            store,
            dns,
        }
    }

    /// Attempts every message due at `now` that this instance can claim; how many.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let claimed = self
            .store
            .claim_outgoing(
                &self.config.instance,
                now.timestamp(),
                now.timestamp() + self.config.lease(),
                CLAIM_AT_ONCE,
            )
            .await?;
        let count = claimed.len();
        for message in claimed {
            let (attempt, permanent) = self.attempt(&message, now).await;
            let after = if attempt.ok {
                AfterAttempt::Sent
            } else {
                let attempts = u32::try_from(message.attempts + 1).unwrap_or(u32::MAX);
                match self.config.retry.after_failure(
                    attempts,
                    message.created_at,
                    now.timestamp(),
                    permanent,
                ) {
                    NextAttempt::At(at) => AfterAttempt::RetryAt(at),
                    NextAttempt::GiveUp => AfterAttempt::Failed,
                }
            };
            log_attempt(&message, &attempt, after);
            self.store
                .record_attempt(&message.id, attempt, after)
                .await?;
        }
        Ok(count)
    }

    /// One attempt: the servers in order until one takes the message or refuses it for good.
    /// The attempt as recorded (the last server's answer) and whether the failure is permanent.
    async fn attempt(
        &self,
        message: &OutgoingMessage,
        now: DateTime<Utc>,
    ) -> (OutgoingAttempt, bool) {
        let failed = |server: String, step: &str, detail: String| OutgoingAttempt {
            at: now.timestamp(),
            ok: false,
            server,
            step: Some(step.to_owned()),
            detail,
            tls: None,
        };
        let signed =
            match self
                .key
                .sign(&message.message, &self.config.domain, &self.config.selector)
            {
                Ok(signed) => signed,
                Err(error) => return (failed(String::new(), "sign", error.to_string()), false),
            };
        let (servers, credentials) = match self.servers_for(&message.recipient).await {
            Ok(found) => found,
            Err((detail, permanent)) => {
                return (failed(String::new(), "route", detail), permanent);
            }
        };
        let recipients = [message.recipient.clone()];
        let outgoing = Outgoing {
            helo: &self.config.instance,
            mail_from: "",
            recipients: &recipients,
            message: &signed,
        };
        let mut last = None;
        for server in &servers {
            let shown = format!("{} [{}]", server.name, server.addr);
            match deliver_authenticated(
                server,
                &outgoing,
                self.config.timeout,
                credentials.as_ref(),
            )
            .await
            {
                Ok(delivered) => {
                    let attempt = OutgoingAttempt {
                        at: now.timestamp(),
                        ok: true,
                        server: shown,
                        step: None,
                        detail: delivered.reply.to_string(),
                        tls: delivered.tls,
                    };
                    return (attempt, false);
                }
                Err(failure) => {
                    let permanent = failure.is_permanent();
                    let detail = match &failure.reply {
                        Some(reply) => reply.to_string(),
                        None => failure.detail.clone(),
                    };
                    let attempt = OutgoingAttempt {
                        tls: failure.tls.clone(),
                        ..failed(shown, &failure.step.to_string(), detail)
                    };
                    // A 5xx answers for the domain; another MX host would say the same.
                    if permanent {
                        return (attempt, true);
                    }
                    last = Some(attempt);
                }
            }
        }
        let attempt = last.unwrap_or_else(|| failed(String::new(), "route", "no server".into()));
        (attempt, false)
    }

    /// The servers for `recipient`, and the credentials to use with them; or what went wrong
    /// and whether it is permanent.
    async fn servers_for(
        &self,
        recipient: &str,
    ) -> Result<(Vec<Server>, Option<Credentials>), (String, bool)> {
        match &self.config.route {
            Route::Mx { port, allow_inward } => {
                let Some((_, domain)) = recipient.rsplit_once('@') else {
                    return Err((format!("{recipient:?} has no domain"), true));
                };
                mx_servers(&self.dns, domain, *port, *allow_inward)
                    .await
                    .map(|servers| (servers, None))
                    .map_err(|error| (error.detail, error.permanent))
            }
            Route::Smarthost {
                target,
                credentials,
            } => {
                let addrs = tokio::net::lookup_host(target.as_str())
                    .await
                    .map_err(|error| (format!("cannot resolve {target}: {error}"), false))?;
                let host = target
                    .rsplit_once(':')
                    .map_or(target.as_str(), |(host, _)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                let servers: Vec<Server> = addrs
                    .take(2)
                    .map(|addr| Server {
                        addr,
                        name: host.clone(),
                    })
                    .collect();
                if servers.is_empty() {
                    return Err((format!("{target} has no address"), false));
                }
                Ok((servers, credentials.clone()))
            }
        }
    }
}

fn log_attempt(message: &OutgoingMessage, attempt: &OutgoingAttempt, after: AfterAttempt) {
    let kind = message.kind.as_str();
    let step = attempt.step.as_deref().unwrap_or("");
    match after {
        AfterAttempt::Sent => tracing::info!(
            id = %message.id, kind, recipient = %message.recipient, server = %attempt.server,
            reply = %attempt.detail, tls = attempt.tls.as_deref().unwrap_or("none"),
            "outgoing message sent"
        ),
        AfterAttempt::RetryAt(at) => tracing::warn!(
            id = %message.id, kind, recipient = %message.recipient, server = %attempt.server,
            step, failure = %attempt.detail, retry_at = at,
            "outgoing message not taken; will try again"
        ),
        AfterAttempt::Failed => tracing::warn!(
            id = %message.id, kind, recipient = %message.recipient, server = %attempt.server,
            step, failure = %attempt.detail,
            "outgoing message given up"
        ),
    }
    metrics::counter!(
        "authcheck_outgoing_attempts_total",
        "kind" => kind,
        "outcome" => match after {
            AfterAttempt::Sent => "sent",
            AfterAttempt::RetryAt(_) => "retry",
            AfterAttempt::Failed => "failed",
        }
    )
    .increment(1);
}

/// Works the queue every [`POLL`] until `stop`. A message cut off mid-attempt by the stop is
/// taken again when its lease ends.
pub async fn run_periodically(sender: Sender, stop: watch::Receiver<bool>) {
    let sender = &sender;
    crate::schedule::repeat(tokio::time::Instant::now(), POLL, stop, |now| async move {
        if let Err(error) = sender.run_once(now).await {
            tracing::warn!(%error, "the outgoing queue could not be worked; will try again");
        }
    })
    .await;
}
