//! The outgoing queue's worker, a scheduled task: every second it claims the messages due in
//! the store (replies by mail, weekly summaries), signs each with the tester's DKIM key,
//! delivers it from `<>` to the recipient domain's MX hosts (looked up with the service's
//! resolver, the verifier's) or through the configured smarthost, and records the attempt: sent,
//! tried again later by the retry policy, or given up. Each attempt is logged and kept with the
//! message, where the result page and the API show it; each connection to a server is stored
//! in the SMTP session log as an outbound session (its transcript and the outcome), to which the
//! attempt links. A reply to a private test's sender is stored unlisted (the public log would
//! tell that the test passed DMARC), and a summary's recipient, an operator, is hidden.
//!
//! The clock is passed in ([`Sender::run_once`] takes `now`), so retries and give-ups are tested
//! without waiting. A claim holds a message for a short lease (one network wait and a margin,
//! [`OutgoingConfig::lease`]) in this process's name, renewed while the attempt runs; an attempt
//! whose claim cannot be renewed stops before its lease runs out. So instances sharing a
//! database never send one message at once, and a message whose instance died mid-attempt is
//! taken again about one lease after its last renewal: a restart loses no reply and waits
//! little for it.

use std::time::Duration;

use tokio::time::Instant;

use authcheck_outbound::{
    Credentials, NextAttempt, Outgoing, RetryPolicy, Server, SigningKey, SmarthostTls, Transcript,
    deliver, deliver_to_smarthost, mx_servers,
};
use authcheck_store::{
    AfterAttempt, Direction, NewSession, OutgoingAttempt, OutgoingKind, OutgoingMessage,
    SessionEvent, SharedStore, StoreError, new_session_id,
};
use authcheck_verifier::Dns;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// How often the queue is looked at.
const POLL: Duration = Duration::from_secs(1);
/// The most messages one look takes.
const CLAIM_AT_ONCE: u32 = 10;
/// How much longer than one network wait a claim's lease runs: time for the renewal, made
/// every third of the lease, to come through.
const LEASE_MARGIN: Duration = Duration::from_secs(15);
/// How long before its lease would run out an attempt whose claim was not renewed stops: it
/// has stopped before another instance may claim the message, even with clocks a little apart.
const STOP_BEFORE_LEASE_ENDS: Duration = Duration::from_secs(5);

/// Where messages go.
#[derive(Clone, Debug)]
pub enum Route {
    /// To the recipient domain's MX hosts, on `port` (25 between mail servers);
    /// `allow_inward` lets loopback and private addresses through.
    Mx { port: u16, allow_inward: bool },
    /// Everything through one server, `HOST:PORT`, its certificate checked with `tls`,
    /// authenticating when credentials are given.
    Smarthost {
        target: String,
        tls: SmarthostTls,
        credentials: Option<Credentials>,
    },
}

/// How the smarthost's connection is secured (the setting `outgoing_smarthost_tls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmarthostTlsMode {
    /// Implicit TLS on port 465 (the submissions port, RFC 8314), STARTTLS on any other.
    Auto,
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

impl SmarthostTlsMode {
    /// Whether the smarthost `HOST:PORT` is spoken to with implicit TLS.
    pub fn is_implicit_for(self, target: &str) -> bool {
        match self {
            SmarthostTlsMode::Auto => target
                .rsplit_once(':')
                .is_some_and(|(_, port)| port == "465"),
            SmarthostTlsMode::StartTls => false,
            SmarthostTlsMode::Implicit => true,
        }
    }
}

/// The worker's settings, resolved.
#[derive(Clone, Debug)]
pub struct OutgoingConfig {
    /// This instance's host name: the EHLO name.
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
    /// How long a claim holds a message unless it is renewed: one network wait (no single
    /// wait of an attempt is longer) and [`LEASE_MARGIN`]. With the default timeout, 75 s: a
    /// message whose instance died is taken again that long after the last renewal.
    pub fn lease(&self) -> Duration {
        self.timeout.max(Duration::from_secs(1)) + LEASE_MARGIN
    }

    /// When a claim made or renewed at `now` (seconds since the epoch, as stored) runs out.
    fn lease_until(&self, now: i64) -> i64 {
        now.saturating_add(i64::try_from(self.lease().as_secs()).unwrap_or(i64::MAX))
    }
}

/// Sends queued messages with one key through one route.
pub struct Sender {
    config: OutgoingConfig,
    key: SigningKey,
    store: SharedStore,
    dns: Dns,
    /// The name this process claims messages under: the host name, the process id and the
    /// start time, so that two instances on one host (or a restarted one) never share it.
    claimant: String,
}

impl Sender {
    pub fn new(config: OutgoingConfig, key: SigningKey, store: SharedStore, dns: Dns) -> Sender {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let claimant = format!("{} {} {started}", config.instance, std::process::id());
        Sender {
            config,
            key,
            store,
            dns,
            claimant,
        }
    }

    /// Attempts every message due at `now` that this instance can claim; how many.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let claimed_at = Instant::now();
        let claimed = self
            .store
            .claim_outgoing(
                &self.claimant,
                now.timestamp(),
                self.config.lease_until(now.timestamp()),
                CLAIM_AT_ONCE,
            )
            .await?;
        let count = claimed.len();
        for message in claimed {
            let Some((mut attempt, permanent, connections)) =
                self.attempt_while_held(&message, now, claimed_at).await
            else {
                continue;
            };
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
            attempt.session_id = self.log_sessions(&message, connections, after).await;
            log_attempt(&message, &attempt, after);
            let recorded = self
                .store
                .record_attempt(&message.id, &self.claimant, attempt, after)
                .await?;
            if !recorded {
                tracing::warn!(
                    id = %message.id,
                    "another instance holds this outgoing message now; its attempt counts"
                );
            }
        }
        Ok(count)
    }

    /// [`Sender::attempt`] while renewing the claim on `message` (made at `claimed_at`) every
    /// third of the lease; `None` when the claim is lost or could not be renewed in time: the
    /// attempt is then dropped (its connection closed, mid-data if need be, which delivers
    /// nothing) before the lease runs out, so no other instance sends the message meanwhile.
    async fn attempt_while_held(
        &self,
        message: &OutgoingMessage,
        now: DateTime<Utc>,
        claimed_at: Instant,
    ) -> Option<(OutgoingAttempt, bool, Vec<Connection>)> {
        let lease = self.config.lease();
        let mut held_until = claimed_at + lease - STOP_BEFORE_LEASE_ENDS;
        let mut next_renewal = claimed_at + lease / 3;
        let attempt = self.attempt(message, now);
        tokio::pin!(attempt);
        // Bounded: each turn renews (or stops), and a renewal that fails stops by held_until.
        loop {
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(next_renewal.min(held_until)) => {}
                outcome = &mut attempt => return Some(outcome),
            }
            if Instant::now() >= held_until {
                tracing::warn!(
                    id = %message.id,
                    "the claim on this outgoing message could not be renewed in time; the \
                     attempt stops and the message will be taken again"
                );
                return None;
            }
            let asked = Instant::now();
            let wall = Utc::now().timestamp();
            let renewal = self.store.renew_outgoing_claim(
                &message.id,
                &self.claimant,
                wall,
                self.config.lease_until(wall),
            );
            match tokio::time::timeout_at(held_until, renewal).await {
                Ok(Ok(true)) => {
                    held_until = asked + lease - STOP_BEFORE_LEASE_ENDS;
                    next_renewal = asked + lease / 3;
                }
                Ok(Ok(false)) => {
                    tracing::warn!(
                        id = %message.id,
                        "the claim on this outgoing message is no longer this instance's; \
                         the attempt stops"
                    );
                    return None;
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, id = %message.id, "could not renew the claim; trying again");
                    next_renewal = Instant::now() + POLL;
                }
                Err(_) => next_renewal = held_until,
            }
        }
    }

    /// Stores the attempt's connections in the session log, the last with the attempt's
    /// outcome, the others as left for the next server; the id of the last, which the attempt
    /// links to, unless the log could not be written (the attempt is recorded all the same).
    async fn log_sessions(
        &self,
        message: &OutgoingMessage,
        connections: Vec<Connection>,
        after: AfterAttempt,
    ) -> Option<String> {
        let count = connections.len();
        let sessions: Vec<NewSession> = connections
            .into_iter()
            .enumerate()
            .map(|(index, connection)| {
                let outcome = if index + 1 < count {
                    Outcome::NextServer
                } else {
                    Outcome::After(after)
                };
                self.outbound_session(message, connection, outcome)
            })
            .collect();
        let last = sessions.last()?.id.clone();
        match self.store.insert_sessions(sessions).await {
            Ok(()) => last,
            Err(error) => {
                tracing::warn!(%error, id = %message.id, "could not store the outgoing sessions");
                None
            }
        }
    }

    /// One connection as the session log keeps it.
    fn outbound_session(
        &self,
        message: &OutgoingMessage,
        connection: Connection,
        outcome: Outcome,
    ) -> NewSession {
        // An operator's address is not for the public log.
        let hidden_recipient = (message.kind == OutgoingKind::Summary)
            .then(|| (format!("<{}>", message.recipient), "<(operator)>"));
        let events_left_out = connection.transcript.left_out;
        // The transcript keeps its first exchanges: those left out came before the outcome.
        let left_out_at = u32::try_from(connection.transcript.exchanges.len()).unwrap_or(0);
        let mut events: Vec<SessionEvent> = connection
            .transcript
            .exchanges
            .into_iter()
            .map(|exchange| {
                let mut command = exchange.command;
                if let Some((address, hidden)) = &hidden_recipient {
                    command = command.replace(address.as_str(), hidden);
                }
                SessionEvent {
                    at: DateTime::<Utc>::from(exchange.at),
                    command,
                    code: exchange.code,
                    status: exchange.status,
                    text: exchange.text,
                }
            })
            .collect();
        let ended_at = Utc::now();
        let (ending, said) = outcome.describe();
        events.push(SessionEvent {
            at: ended_at,
            command: "(outcome)".to_owned(),
            code: 0,
            status: None,
            text: said,
        });
        NewSession {
            id: Some(new_session_id()),
            direction: Direction::Outbound,
            listed: !message.private,
            started_at: connection.started_at,
            ended_at,
            client_ip: connection.server.addr.ip().to_string(),
            client_port: connection.server.addr.port(),
            client_ptr: Some(connection.server.name),
            helo: Some(self.config.instance.clone()),
            tls_version: connection.tls,
            tls_cipher: None,
            mail_from: Some(String::new()),
            ending: ending.to_owned(),
            events,
            events_left_out,
            left_out_at,
            result_ids: message.result_ids.clone(),
        }
    }

    /// One attempt: the servers in order until one takes the message or refuses it for good.
    /// The attempt as recorded (the last server's answer), whether the failure is permanent,
    /// and the connections made, in order.
    async fn attempt(
        &self,
        message: &OutgoingMessage,
        now: DateTime<Utc>,
    ) -> (OutgoingAttempt, bool, Vec<Connection>) {
        let failed = |server: String, step: &str, detail: String| OutgoingAttempt {
            at: now.timestamp(),
            ok: false,
            server,
            step: Some(step.to_owned()),
            detail,
            tls: None,
            session_id: None,
        };
        let signed =
            match self
                .key
                .sign(&message.message, &self.config.domain, &self.config.selector)
            {
                Ok(signed) => signed,
                Err(error) => {
                    return (
                        failed(String::new(), "sign", error.to_string()),
                        false,
                        Vec::new(),
                    );
                }
            };
        let servers = match self.servers_for(&message.recipient).await {
            Ok(found) => found,
            Err((detail, permanent)) => {
                return (
                    failed(String::new(), "route", detail),
                    permanent,
                    Vec::new(),
                );
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
        let mut connections = Vec::new();
        for server in &servers {
            let shown = format!("{} [{}]", server.name, server.addr);
            let started_at = Utc::now();
            let timeout = self.config.timeout;
            let delivered = match &self.config.route {
                Route::Mx { .. } => deliver(server, &outgoing, timeout).await,
                Route::Smarthost {
                    tls, credentials, ..
                } => {
                    deliver_to_smarthost(server, &outgoing, timeout, tls, credentials.as_ref())
                        .await
                }
            };
            let (transcript, tls) = match &delivered {
                Ok(delivered) => (delivered.transcript.clone(), delivered.tls.clone()),
                Err(failure) => (failure.transcript.clone(), failure.tls.clone()),
            };
            connections.push(Connection {
                server: server.clone(),
                started_at,
                transcript,
                tls,
            });
            match delivered {
                Ok(delivered) => {
                    let attempt = OutgoingAttempt {
                        at: now.timestamp(),
                        ok: true,
                        server: shown,
                        step: None,
                        detail: delivered.reply.to_string(),
                        tls: delivered.tls,
                        session_id: None,
                    };
                    return (attempt, false, connections);
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
                        return (attempt, true, connections);
                    }
                    last = Some(attempt);
                }
            }
        }
        let attempt = last.unwrap_or_else(|| failed(String::new(), "route", "no server".into()));
        (attempt, false, connections)
    }

    /// The servers for `recipient`; or what went wrong and whether it is permanent.
    async fn servers_for(&self, recipient: &str) -> Result<Vec<Server>, (String, bool)> {
        match &self.config.route {
            Route::Mx { port, allow_inward } => {
                let Some((_, domain)) = recipient.rsplit_once('@') else {
                    return Err((format!("{recipient:?} has no domain"), true));
                };
                mx_servers(&self.dns, domain, *port, *allow_inward)
                    .await
                    .map_err(|error| (error.detail, error.permanent))
            }
            Route::Smarthost { target, .. } => {
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
                Ok(servers)
            }
        }
    }
}

/// One connection of an attempt, for the session log.
struct Connection {
    server: Server,
    started_at: DateTime<Utc>,
    transcript: Transcript,
    tls: Option<String>,
}

/// How one connection ended, as its session says it.
enum Outcome {
    /// The attempt went on with the next server.
    NextServer,
    /// The last connection of the attempt: what followed the attempt.
    After(AfterAttempt),
}

impl Outcome {
    /// The session's `ending` token and the sentence of its last line.
    fn describe(&self) -> (&'static str, String) {
        match self {
            Outcome::NextServer => ("next-server", "not taken; trying the next server".into()),
            Outcome::After(AfterAttempt::Sent) => ("delivered", "delivered".into()),
            Outcome::After(AfterAttempt::RetryAt(at)) => (
                "will-retry",
                match DateTime::<Utc>::from_timestamp(*at, 0) {
                    Some(at) => format!(
                        "not taken; will try again at {}",
                        at.format("%Y-%m-%d %H:%M:%S UTC")
                    ),
                    None => "not taken; will try again".into(),
                },
            ),
            Outcome::After(AfterAttempt::Failed) => (
                "gave-up",
                "not taken; given up (refused for good, or out of time)".into(),
            ),
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
/// taken again when its lease ends, about [`OutgoingConfig::lease`] later.
pub async fn run_periodically(sender: Sender, stop: watch::Receiver<bool>) {
    let sender = &sender;
    crate::schedule::repeat(tokio::time::Instant::now(), POLL, stop, |now| async move {
        if let Err(error) = sender.run_once(now).await {
            tracing::warn!(%error, "the outgoing queue could not be worked; will try again");
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_tls_is_implicit_on_the_submissions_port_only() {
        assert!(SmarthostTlsMode::Auto.is_implicit_for("smtp.example:465"));
        assert!(!SmarthostTlsMode::Auto.is_implicit_for("smtp.example:587"));
        assert!(!SmarthostTlsMode::Auto.is_implicit_for("[2001:db8::4]:25"));
        assert!(SmarthostTlsMode::Implicit.is_implicit_for("smtp.example:587"));
        assert!(!SmarthostTlsMode::StartTls.is_implicit_for("smtp.example:465"));
    }

    #[test]
    fn a_lease_is_one_network_wait_and_a_margin() {
        let config = |timeout| OutgoingConfig {
            instance: "authcheck.test".into(),
            domain: "tester.test".into(),
            selector: "authcheck".into(),
            route: Route::Mx {
                port: 25,
                allow_inward: false,
            },
            timeout,
            retry: RetryPolicy {
                first_retry: Duration::from_secs(60),
                give_up_after: Duration::from_secs(3600),
            },
        };
        assert_eq!(
            config(Duration::from_secs(60)).lease(),
            Duration::from_secs(75)
        );
        // Room for two renewals before an unrenewed attempt stops.
        let shortest = config(Duration::ZERO).lease();
        assert!(shortest / 3 * 2 < shortest - STOP_BEFORE_LEASE_ENDS);
    }
}
