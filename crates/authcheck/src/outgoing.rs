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
//! The clock is passed in (a look at the queue takes `now`), so retries and give-ups are
//! tested without waiting. A claim holds a message for a short lease (one network wait and a
//! margin, [`OutgoingConfig::lease`]) in this process's name, renewed while the attempt runs;
//! an attempt whose claim cannot be renewed stops before its lease runs out. So instances sharing a
//! database never send one message at once, and a message whose instance died mid-attempt is
//! taken again about one lease after its last renewal: a restart loses no reply and waits
//! little for it.
//!
//! Attempts run side by side, up to [`CLAIM_AT_ONCE`], each started at the look that claimed
//! it: a message queued while a slow server holds another attempt goes at the next look, not
//! after that attempt. An attempt tries no further server once its deadline
//! ([`OutgoingConfig::attempt_deadline`]) has passed, so a recipient domain whose servers
//! accept and stay silent costs a few network waits, not one per address; its next attempt
//! counts from the end of this one. An attempt's outcome is offered to the store a few times
//! ([`RECORD_TRIES`]): a delivery left unrecorded would be made again after the lease.

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
/// The most attempts in flight at once; a look claims no more than the room left.
const CLAIM_AT_ONCE: u32 = 10;
/// How much longer than one network wait a claim's lease runs: time for the renewal, made
/// every third of the lease, to come through.
const LEASE_MARGIN: Duration = Duration::from_secs(15);
/// How long before its lease would run out an attempt whose claim was not renewed stops: it
/// has stopped before another instance may claim the message, even with clocks a little apart.
const STOP_BEFORE_LEASE_ENDS: Duration = Duration::from_secs(5);
/// How many network waits one attempt may spend before it tries no further server
/// ([`OutgoingConfig::attempt_deadline`]): a domain whose MX hosts all accept and stay silent
/// costs one attempt this many waits, not one per address (up to 10).
const WAITS_PER_ATTEMPT: u32 = 3;
/// The step an attempt that ran out of [`OutgoingConfig::attempt_deadline`] is recorded at.
const DEADLINE_STEP: &str = "deadline";
/// How many times an attempt's outcome is offered to the store before it is given up: a
/// delivered message whose outcome is lost is delivered again after its lease.
const RECORD_TRIES: u32 = 3;
/// The pause between two of those tries: a database hiccup's length.
const RECORD_PAUSE: Duration = Duration::from_secs(1);

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

    /// When one attempt of one message stops trying further servers: after [`WAITS_PER_ATTEMPT`]
    /// network waits (3 minutes with the default timeout). A session already under way is
    /// never cut, so an attempt ends within this and one session.
    pub fn attempt_deadline(&self) -> Duration {
        self.timeout.max(Duration::from_secs(1)) * WAITS_PER_ATTEMPT
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

    /// One look of [`run_periodically`] at `now`, awaited to its end: attempts every message
    /// due that this instance can claim (at most [`CLAIM_AT_ONCE`]) side by side; how many.
    /// The tests move the clock through it.
    #[cfg(test)]
    async fn run_once(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let claimed_at = Instant::now();
        let claimed = self.claim(now, CLAIM_AT_ONCE).await?;
        let count = claimed.len();
        futures::future::join_all(
            claimed
                .iter()
                .map(|message| self.work(message, now, claimed_at)),
        )
        .await;
        Ok(count)
    }

    /// Claims at most `limit` messages due at `now` for this process, for one lease.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutgoingMessage>, StoreError> {
        self.store
            .claim_outgoing(
                &self.claimant,
                now.timestamp(),
                self.config.lease_until(now.timestamp()),
                limit,
            )
            .await
    }

    /// Attempts `message`, claimed at `now` (`claimed_at` on the monotonic clock), and records
    /// the attempt; a failure to record is logged, and touches no other message.
    async fn work(&self, message: &OutgoingMessage, now: DateTime<Utc>, claimed_at: Instant) {
        let Some((mut attempt, permanent, connections)) =
            self.attempt_while_held(message, now, claimed_at).await
        else {
            return;
        };
        // The pause before the next attempt counts from this one's end, however long it took.
        let ended = now + chrono::Duration::from_std(claimed_at.elapsed()).unwrap_or_default();
        let after = if attempt.ok {
            AfterAttempt::Sent
        } else {
            let attempts = u32::try_from(message.attempts + 1).unwrap_or(u32::MAX);
            match self.config.retry.after_failure(
                attempts,
                message.created_at,
                ended.timestamp(),
                permanent,
            ) {
                NextAttempt::At(at) => AfterAttempt::RetryAt(at),
                NextAttempt::GiveUp => AfterAttempt::Failed,
            }
        };
        attempt.session_id = self.log_sessions(message, connections, after).await;
        log_attempt(message, &attempt, after);
        self.record(message, attempt, after).await;
    }

    /// Records `message`'s attempt, trying [`RECORD_TRIES`] times: the outcome is known, and
    /// an unrecorded delivery would be made again once the lease runs out.
    async fn record(
        &self,
        message: &OutgoingMessage,
        attempt: OutgoingAttempt,
        after: AfterAttempt,
    ) {
        for tries in 1..=RECORD_TRIES {
            match self
                .store
                .record_attempt(&message.id, &self.claimant, attempt.clone(), after)
                .await
            {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(
                        id = %message.id,
                        "another instance holds this outgoing message now; its attempt counts"
                    );
                    return;
                }
                Err(error) if tries < RECORD_TRIES => {
                    tracing::warn!(%error, id = %message.id, "could not record the attempt; trying again");
                    tokio::time::sleep(RECORD_PAUSE).await;
                }
                Err(error) => tracing::error!(
                    %error,
                    id = %message.id,
                    "could not record the attempt; the message will be attempted again after \
                     its lease (a delivered one arrives twice)"
                ),
            }
        }
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
        let deadline = Instant::now() + self.config.attempt_deadline();
        let out_of_time = |server: String| {
            let detail = format!(
                "the attempt ran out of its {} s ({WAITS_PER_ATTEMPT} times outgoing_timeout)",
                self.config.attempt_deadline().as_secs()
            );
            failed(server, DEADLINE_STEP, detail)
        };
        let servers =
            match tokio::time::timeout_at(deadline, self.servers_for(&message.recipient)).await {
                Err(_) => return (out_of_time(String::new()), false, Vec::new()),
                Ok(Ok(found)) => found,
                Ok(Err((detail, permanent))) => {
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
            // Checked between sessions, never within one: a session cut after the message's
            // final dot may have delivered it, and the retry would deliver it again.
            if Instant::now() >= deadline {
                let server = last.map(|tried: OutgoingAttempt| tried.server);
                return (out_of_time(server.unwrap_or_default()), false, connections);
            }
            let shown = format!("{} [{}]", server.name, server.addr);
            let started_at = Utc::now();
            let timeout = self.config.timeout;
            let delivery = async {
                match &self.config.route {
                    Route::Mx { .. } => deliver(server, &outgoing, timeout).await,
                    Route::Smarthost {
                        tls, credentials, ..
                    } => {
                        deliver_to_smarthost(server, &outgoing, timeout, tls, credentials.as_ref())
                            .await
                    }
                }
            };
            let delivered = delivery.await;
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

/// Works the queue until `stop`: every [`POLL`] it claims what is due, as many as leave at
/// most [`CLAIM_AT_ONCE`] attempts in flight, and starts them at once beside those still
/// running. A message cut off mid-attempt by the stop is taken again when its lease ends,
/// about [`OutgoingConfig::lease`] later.
pub async fn run_periodically(sender: Sender, mut stop: watch::Receiver<bool>) {
    let sender = &sender;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut ticker = crate::schedule::ticker(Instant::now(), POLL);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let room = CLAIM_AT_ONCE.saturating_sub(u32::try_from(in_flight.len()).unwrap_or(u32::MAX));
                if room == 0 {
                    continue;
                }
                let (now, claimed_at) = (Utc::now(), Instant::now());
                match sender.claim(now, room).await {
                    Ok(claimed) => in_flight.extend(claimed.into_iter().map(|message| async move {
                        sender.work(&message, now, claimed_at).await;
                    })),
                    Err(error) => {
                        tracing::warn!(%error, "the outgoing queue could not be read; will try again");
                    }
                }
            }
            Some(()) = futures::StreamExt::next(&mut in_flight) => {}
            // Attempts in flight are dropped, their connections closed mid-data if need be
            // (which delivers nothing); their claims run out and another start takes them.
            _ = stop.changed() => return,
        }
    }
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

    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use authcheck_store::{NewOutgoing, OutgoingState};
    use authcheck_testdns::TestDns;
    use authcheck_verifier::DnsConfig;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// The network wait of these tests: short, so a silent server costs a second.
    const TEST_TIMEOUT: Duration = Duration::from_secs(1);

    /// When each message was taken.
    type Taken = Arc<Mutex<Vec<std::time::Instant>>>;

    /// An SMTP server on loopback that takes every message.
    async fn sink(listener: TcpListener) -> Taken {
        let taken = Taken::default();
        let counter = taken.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 sink ready\r\n").await?;
                    let mut in_data = false;
                    while let Some(line) = lines.next_line().await? {
                        let reply: &[u8] = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            counter.lock().unwrap().push(std::time::Instant::now());
                            b"250 2.0.0 queued\r\n"
                        } else if line.eq_ignore_ascii_case("DATA") {
                            in_data = true;
                            b"354 go on\r\n"
                        } else if line.eq_ignore_ascii_case("QUIT") {
                            write.write_all(b"221 bye\r\n").await?;
                            break;
                        } else {
                            b"250 ok\r\n"
                        };
                        write.write_all(reply).await?;
                    }
                    std::io::Result::Ok(())
                });
            }
        });
        taken
    }

    /// A server that accepts connections and never says a word, holding them; counted in
    /// `accepted`.
    fn silent(listener: TcpListener, accepted: Arc<AtomicUsize>) {
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
    }

    /// `fast.test`, whose one MX host takes mail, and `slow.test`, whose 5 MX hosts have 2
    /// addresses each that accept and stay silent; all on one port of loopback addresses.
    struct Net {
        dns: TestDns,
        port: u16,
        taken: Taken,
        /// Connections the silent servers took.
        silent_accepted: Arc<AtomicUsize>,
    }

    async fn net() -> Net {
        let dns = TestDns::start().await;
        // A port free on all eleven addresses; a few tries find one.
        'ports: for _ in 0..50 {
            let good = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = good.local_addr().unwrap().port();
            let mut silent_ones = Vec::new();
            for last in 2..12u8 {
                match TcpListener::bind((Ipv4Addr::new(127, 0, 0, last), port)).await {
                    Ok(listener) => silent_ones.push(listener),
                    Err(_) => continue 'ports,
                }
            }
            let silent_accepted = Arc::new(AtomicUsize::new(0));
            for listener in silent_ones {
                silent(listener, silent_accepted.clone());
            }
            dns.add_mx("fast.test", 10, "mx.fast.test");
            dns.add_a("mx.fast.test", Ipv4Addr::LOCALHOST);
            for host in 0..5u8 {
                let name = format!("mx{host}.slow.test");
                dns.add_mx("slow.test", 10 + u16::from(host), &name);
                dns.add_a(&name, Ipv4Addr::new(127, 0, 0, 2 + 2 * host));
                dns.add_a(&name, Ipv4Addr::new(127, 0, 0, 3 + 2 * host));
            }
            let taken = sink(good).await;
            return Net {
                dns,
                port,
                taken,
                silent_accepted,
            };
        }
        panic!("no port free on 127.0.0.1 to 127.0.0.11 in 50 tries");
    }

    fn sender(net: &Net, store: SharedStore) -> Sender {
        let dns = Dns::new(&DnsConfig {
            servers: vec![net.dns.addr()],
            query_timeout: TEST_TIMEOUT,
            attempts: 1,
            ..DnsConfig::default()
        })
        .unwrap();
        let config = OutgoingConfig {
            instance: "authcheck.test".into(),
            domain: "tester.test".into(),
            selector: "authcheck".into(),
            route: Route::Mx {
                port: net.port,
                allow_inward: true,
            },
            timeout: TEST_TIMEOUT,
            retry: RetryPolicy {
                first_retry: Duration::from_secs(60),
                give_up_after: Duration::from_secs(86_400),
            },
        };
        Sender::new(config, SigningKey::generate().unwrap(), store, dns)
    }

    async fn queue(store: &SharedStore, recipient: &str, at: i64) -> String {
        let message = NewOutgoing {
            kind: OutgoingKind::Summary,
            recipient: recipient.to_owned(),
            client: String::new(),
            message: format!(
                "From: <check@tester.test>\r\nTo: <{recipient}>\r\nSubject: s\r\n\r\nhello\r\n"
            )
            .into_bytes(),
            created_at: at,
            give_up_at: at + 86_400,
        };
        store.queue_outgoing(message, 100).await.unwrap().unwrap()
    }

    /// A domain whose every MX address accepts and stays silent costs one attempt its
    /// deadline (3 waits, not 10), holds up no other message, and is tried again a retry
    /// pause after the attempt ended, not after it began.
    #[tokio::test]
    async fn a_silent_domain_stalls_no_other_message_and_no_longer_than_the_deadline() {
        let net = net().await;
        let store = authcheck_store::open("sqlite::memory:").await.unwrap();
        let sender = sender(&net, store.clone());
        let now = Utc::now();
        let slow = queue(&store, "ops@slow.test", now.timestamp() - 2).await;
        let fast = queue(&store, "ops@fast.test", now.timestamp() - 1).await;
        let started = std::time::Instant::now();
        assert_eq!(sender.run_once(now).await.unwrap(), 2);
        let took = started.elapsed();
        let deadline = sender.config.attempt_deadline();
        assert_eq!(deadline, TEST_TIMEOUT * WAITS_PER_ATTEMPT);
        assert!(took >= deadline, "{took:?}");
        assert!(took < deadline + Duration::from_secs(3), "{took:?}");
        let taken = net.taken.lock().unwrap().clone();
        assert_eq!(taken.len(), 1);
        assert!(
            taken[0] - started < TEST_TIMEOUT,
            "the fast message waited for the slow one"
        );
        let fast = store.outgoing_status(&fast).await.unwrap().unwrap();
        assert_eq!(fast.state, OutgoingState::Sent);
        let slow = store.outgoing_status(&slow).await.unwrap().unwrap();
        assert_eq!(slow.state, OutgoingState::Queued);
        assert_eq!(slow.attempts.len(), 1);
        assert_eq!(slow.attempts[0].step.as_deref(), Some(DEADLINE_STEP));
        let deadline_seconds = i64::try_from(deadline.as_secs()).unwrap();
        assert!(
            slow.next_attempt_at >= now.timestamp() + deadline_seconds + 60,
            "the retry counts from the attempt's end: {} vs {}",
            slow.next_attempt_at,
            now.timestamp()
        );
    }

    /// Whether `condition` holds within two seconds, asked every 20 ms.
    async fn within_two_seconds<F: Future<Output = bool>>(
        mut condition: impl FnMut() -> F,
    ) -> bool {
        for _ in 0..100 {
            if condition().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        condition().await
    }

    /// A message queued while a silent domain holds an attempt is sent at the next look of
    /// the running queue, while that attempt is still waiting, not after it.
    #[tokio::test]
    async fn a_message_queued_behind_a_slow_attempt_is_sent_without_waiting_for_it() {
        let net = net().await;
        let store = authcheck_store::open("sqlite::memory:").await.unwrap();
        let sender = sender(&net, store.clone());
        let slow = queue(&store, "ops@slow.test", Utc::now().timestamp() - 1).await;
        let (stop, stopped) = watch::channel(false);
        let running = tokio::spawn(run_periodically(sender, stopped));
        // The slow attempt is under way once a silent server has its connection.
        assert!(
            within_two_seconds(|| async { net.silent_accepted.load(Ordering::SeqCst) > 0 }).await,
            "the slow attempt began"
        );
        let fast = queue(&store, "ops@fast.test", Utc::now().timestamp() - 1).await;
        assert!(
            within_two_seconds(|| async { !net.taken.lock().unwrap().is_empty() }).await,
            "the fast message was sent"
        );
        assert_eq!(net.taken.lock().unwrap().len(), 1, "sent once");
        let slow_then = store.outgoing_status(&slow).await.unwrap().unwrap();
        assert!(
            slow_then.attempts.is_empty(),
            "the fast message waited for the slow attempt to end: {:?}",
            slow_then.attempts
        );
        let fast_sent = || async {
            let status = store.outgoing_status(&fast).await.unwrap().unwrap();
            status.state == OutgoingState::Sent
        };
        assert!(
            within_two_seconds(fast_sent).await,
            "the fast message was recorded as sent"
        );
        let _ = stop.send(true);
        running.await.unwrap();
    }

    /// A delivered message whose outcome the store fails to take the first time is recorded
    /// on the next try, so it is not delivered again; the other message of the batch is
    /// delivered and recorded all the same.
    #[tokio::test]
    async fn a_delivery_is_recorded_despite_a_failed_first_record() {
        let net = net().await;
        let real = authcheck_store::open("sqlite::memory:").await.unwrap();
        let flaky = Arc::new(crate::test_store::FlakyStore::new(real.clone()));
        let sender = sender(&net, flaky.clone());
        let now = Utc::now();
        let first = queue(&real, "a@fast.test", now.timestamp() - 2).await;
        let second = queue(&real, "b@fast.test", now.timestamp() - 1).await;
        flaky.fail_next("record_attempt", 1);
        assert_eq!(sender.run_once(now).await.unwrap(), 2);
        for id in [first, second] {
            let status = real.outgoing_status(&id).await.unwrap().unwrap();
            assert_eq!(status.state, OutgoingState::Sent, "{id}");
        }
        let lease = i64::try_from(sender.config.lease().as_secs()).unwrap();
        let after_the_lease = now + chrono::Duration::seconds(lease + 1);
        assert_eq!(sender.run_once(after_the_lease).await.unwrap(), 0);
        assert_eq!(net.taken.lock().unwrap().len(), 2, "each delivered once");
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
