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
//! without waiting. A claim holds a message for a lease longer than any attempt can take, so
//! instances sharing a database never send one message twice, and a message whose instance died
//! mid-attempt is taken again when the lease ends: a restart loses no reply.

use std::time::Duration;

use authcheck_outbound::{
    Credentials, NextAttempt, Outgoing, RetryPolicy, Server, SigningKey, Transcript,
    deliver_authenticated, mx_servers,
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
            let (mut attempt, permanent, connections) = self.attempt(&message, now).await;
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
            self.store
                .record_attempt(&message.id, attempt, after)
                .await?;
        }
        Ok(count)
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
                let (status, text) = split_status(&exchange.text);
                let mut command = exchange.command;
                if let Some((address, hidden)) = &hidden_recipient {
                    command = command.replace(address.as_str(), hidden);
                }
                SessionEvent {
                    at: DateTime::<Utc>::from(exchange.at),
                    command,
                    code: exchange.code,
                    status,
                    text,
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
        let (servers, credentials) = match self.servers_for(&message.recipient).await {
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
            let delivered =
                deliver_authenticated(server, &outgoing, self.config.timeout, credentials.as_ref())
                    .await;
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

/// A reply text as the outbound crate gives it (`4.3.0 busy`) split into its enhanced status
/// code and the rest, as the session log keeps inbound replies.
fn split_status(text: &str) -> (Option<String>, String) {
    let (first, rest) = text.split_once(' ').unwrap_or((text, ""));
    let parts: Vec<&str> = first.split('.').collect();
    let is_status = parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..].iter().all(|part| {
            !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit())
        });
    if is_status {
        (Some(first.to_owned()), rest.to_owned())
    } else {
        (None, text.to_owned())
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
