//! The load generator's SMTP client: concurrent sessions that each say EHLO once and then repeat
//! MAIL/RCPT/DATA transactions (or, like most real senders, open a new connection for every
//! message), timing each end of DATA to its reply; and a pool of idle connections kept alive
//! with NOOP while the load runs.
//!
//! Every loop is bounded: sessions stop when the shared message budget or the deadline is
//! spent, a reply is read under a timeout, and held connections stop when the pool is finished.

use crate::stats::{Errors, HoldReport, merge_errors, record_error};
use anyhow::{Context as _, bail};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// How the client talks to the server, the same for every target of a run.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub helo: String,
    pub mail_from: String,
    pub rcpt_to: String,
    /// The message as sent after DATA: dot-stuffed, ending in CRLF, without the final `.`.
    pub data: Arc<[u8]>,
    /// The longest wait for a connection or any one reply.
    pub reply_timeout: Duration,
    /// Whether a session sends all its messages over one connection or opens one per message.
    pub connections: ConnectionMode,
}

/// How a session uses its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ConnectionMode {
    /// EHLO once, then one transaction after another over the same connection.
    Reuse,
    /// Connect, EHLO, one transaction and QUIT for every message, as most senders do.
    PerMessage,
}

/// When the sessions stop taking new transactions.
#[derive(Clone, Copy, Debug)]
pub enum Workload {
    /// After this many transactions in all.
    Messages(u64),
    /// When this much time has passed since the load started.
    Duration(Duration),
}

/// What the sessions of one load phase did, added up.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    pub delivered: u64,
    pub latencies: Vec<Duration>,
    pub errors: Errors,
    pub elapsed: Duration,
}

/// The end of the DATA section.
const DATA_END: &[u8] = b".\r\n";
/// The longest reply line read; a longer one is cut there and the rest read as another line.
const MAX_LINE: u64 = 4096;
/// The most lines accepted in one reply (EHLO answers have a dozen or so).
const MAX_REPLY_LINES: usize = 100;
/// How often a held connection shows it is alive.
const NOOP_INTERVAL: Duration = Duration::from_secs(5);

/// Returns `message` in the form DATA sends it: CRLF line endings, a `.` doubled at the start
/// of a line, and a final CRLF, ready to be followed by [`DATA_END`].
pub fn smtp_data(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64 + 2);
    let mut at_line_start = true;
    let mut previous = 0u8;
    for &byte in message {
        if at_line_start && byte == b'.' {
            out.push(b'.');
        }
        if byte == b'\n' && previous != b'\r' {
            out.push(b'\r');
        }
        out.push(byte);
        at_line_start = byte == b'\n';
        previous = byte;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One SMTP reply: its code and its lines joined by ` / `.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Reply {
    code: u16,
    text: String,
}

impl Reply {
    /// The kind of failure this reply stands for at `stage`, e.g. `RCPT 550 5.1.1`.
    fn error_kind(&self, stage: &str) -> String {
        let enhanced = self
            .text
            .get(4..)
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|word| {
                word.split('.').count() == 3 && word.split('.').all(|n| n.parse::<u16>().is_ok())
            });
        match enhanced {
            Some(enhanced) => format!("{stage} {} {enhanced}", self.code),
            None => format!("{stage} {}", self.code),
        }
    }
}

/// A line's reply code and whether more lines follow (`250-…` rather than `250 …`).
fn parse_reply_line(line: &str) -> Option<(u16, bool)> {
    let code = line
        .get(..3)?
        .parse::<u16>()
        .ok()
        .filter(|code| (200..600).contains(code))?;
    match line.as_bytes().get(3) {
        Some(b'-') => Some((code, true)),
        Some(b' ') | None => Some((code, false)),
        Some(_) => None,
    }
}

struct SmtpConnection {
    stream: BufReader<TcpStream>,
    reply_timeout: Duration,
}

impl SmtpConnection {
    /// Connects and reads the greeting.
    async fn open(
        addr: SocketAddr,
        reply_timeout: Duration,
    ) -> anyhow::Result<(SmtpConnection, Reply)> {
        let stream = tokio::time::timeout(reply_timeout, TcpStream::connect(addr))
            .await
            .context("timed out connecting")?
            .context("could not connect")?;
        // Without this, Nagle's algorithm holds back the small end-of-DATA write.
        stream.set_nodelay(true).context("set TCP_NODELAY")?;
        let mut connection = SmtpConnection {
            stream: BufReader::new(stream),
            reply_timeout,
        };
        let greeting = connection.read_reply().await?;
        Ok((connection, greeting))
    }

    async fn command(&mut self, line: &str) -> anyhow::Result<Reply> {
        self.send(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply().await
    }

    async fn send(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        tokio::time::timeout(self.reply_timeout, self.stream.get_mut().write_all(bytes))
            .await
            .context("timed out writing")?
            .context("connection lost while writing")
    }

    async fn read_reply(&mut self) -> anyhow::Result<Reply> {
        tokio::time::timeout(self.reply_timeout, self.read_reply_lines())
            .await
            .context("timed out waiting for a reply")?
    }

    async fn read_reply_lines(&mut self) -> anyhow::Result<Reply> {
        let mut lines = Vec::new();
        for _ in 0..MAX_REPLY_LINES {
            let mut line = String::new();
            let read = (&mut self.stream)
                .take(MAX_LINE)
                .read_line(&mut line)
                .await
                .context("connection lost")?;
            if read == 0 {
                bail!("connection closed by the server");
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let Some((code, more)) = parse_reply_line(&line) else {
                bail!("not an SMTP reply: {line:?}");
            };
            lines.push(line);
            if !more {
                return Ok(Reply {
                    code,
                    text: lines.join(" / "),
                });
            }
        }
        bail!("reply longer than {MAX_REPLY_LINES} lines")
    }
}

/// Why a session's step did not succeed.
enum Failure {
    /// The server answered, with an unexpected code.
    Reply { stage: &'static str, reply: Reply },
    /// The connection failed: closed, timed out, or not speaking SMTP.
    Connection {
        stage: &'static str,
        error: anyhow::Error,
    },
}

impl Failure {
    fn connection(stage: &'static str) -> impl FnOnce(anyhow::Error) -> Failure {
        move |error| Failure::Connection { stage, error }
    }

    /// A 421 reply means the server is closing the connection.
    fn closes_session(&self) -> bool {
        matches!(self, Failure::Reply { reply, .. } if reply.code == 421)
    }

    fn record(self, errors: &mut Errors) {
        match self {
            Failure::Reply { stage, reply } => {
                record_error(errors, reply.error_kind(stage), || reply.text)
            }
            Failure::Connection { stage, error } => {
                record_error(errors, format!("{stage}: {error}"), || format!("{error:#}"))
            }
        }
    }
}

/// `reply` if its code is `expected`, otherwise the failure of `stage`.
fn expect(stage: &'static str, reply: Reply, expected: u16) -> Result<Reply, Failure> {
    if reply.code == expected {
        Ok(reply)
    } else {
        Err(Failure::Reply { stage, reply })
    }
}

/// Sends one message and returns the time from the end of DATA to its 250 reply.
async fn transaction(
    connection: &mut SmtpConnection,
    settings: &ClientSettings,
) -> Result<Duration, Failure> {
    let steps = [
        ("MAIL", format!("MAIL FROM:<{}>", settings.mail_from), 250),
        ("RCPT", format!("RCPT TO:<{}>", settings.rcpt_to), 250),
        ("DATA", "DATA".to_string(), 354),
    ];
    for (stage, command, expected) in steps {
        let reply = connection
            .command(&command)
            .await
            .map_err(Failure::connection(stage))?;
        expect(stage, reply, expected)?;
    }
    let stage = "DATA end";
    connection
        .send(&settings.data)
        .await
        .map_err(Failure::connection(stage))?;
    let started = Instant::now();
    connection
        .send(DATA_END)
        .await
        .map_err(Failure::connection(stage))?;
    let reply = connection
        .read_reply()
        .await
        .map_err(Failure::connection(stage))?;
    let latency = started.elapsed();
    expect(stage, reply, 250)?;
    Ok(latency)
}

/// Hands out transactions to sessions until the workload is spent.
struct Budget {
    workload: Workload,
    started: Instant,
    claimed: AtomicU64,
}

impl Budget {
    fn claim(&self) -> bool {
        match self.workload {
            Workload::Messages(total) => self.claimed.fetch_add(1, Ordering::Relaxed) < total,
            Workload::Duration(duration) => self.started.elapsed() < duration,
        }
    }
}

/// One client connection's share of the load.
async fn session(
    addr: SocketAddr,
    settings: Arc<ClientSettings>,
    budget: Arc<Budget>,
) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    if let Err(failure) = run_session(addr, &settings, &budget, &mut outcome).await {
        failure.record(&mut outcome.errors);
    }
    outcome
}

/// Runs transactions until the budget is spent; a refused transaction is counted and the next
/// one tried, while a lost connection (or 421) ends the session and leaves the remaining budget
/// to the others. In [`ConnectionMode::PerMessage`] every transaction has a connection of its own.
async fn run_session(
    addr: SocketAddr,
    settings: &ClientSettings,
    budget: &Budget,
    outcome: &mut LoadOutcome,
) -> Result<(), Failure> {
    match settings.connections {
        ConnectionMode::Reuse => {
            let mut connection = greeted_connection(addr, settings).await?;
            while budget.claim() {
                send_one(&mut connection, settings, outcome).await?;
            }
            let _ = connection.command("QUIT").await;
        }
        ConnectionMode::PerMessage => {
            while budget.claim() {
                let mut connection = greeted_connection(addr, settings).await?;
                send_one(&mut connection, settings, outcome).await?;
                let _ = connection.command("QUIT").await;
            }
        }
    }
    Ok(())
}

/// Connects, checks the greeting and says EHLO.
async fn greeted_connection(
    addr: SocketAddr,
    settings: &ClientSettings,
) -> Result<SmtpConnection, Failure> {
    let (mut connection, greeting) = SmtpConnection::open(addr, settings.reply_timeout)
        .await
        .map_err(Failure::connection("connect"))?;
    expect("greeting", greeting, 220)?;
    let ehlo = connection
        .command(&format!("EHLO {}", settings.helo))
        .await
        .map_err(Failure::connection("EHLO"))?;
    expect("EHLO", ehlo, 250)?;
    Ok(connection)
}

/// One transaction, counted in `outcome`; a refusal that leaves the session usable is recorded
/// and the session reset, anything else ends the session.
async fn send_one(
    connection: &mut SmtpConnection,
    settings: &ClientSettings,
    outcome: &mut LoadOutcome,
) -> Result<(), Failure> {
    match transaction(connection, settings).await {
        Ok(latency) => {
            outcome.delivered += 1;
            outcome.latencies.push(latency);
            Ok(())
        }
        Err(failure @ Failure::Reply { .. }) if !failure.closes_session() => {
            failure.record(&mut outcome.errors);
            // The server may still be inside the transaction; RSET starts the next one clean.
            let reset = connection
                .command("RSET")
                .await
                .map_err(Failure::connection("RSET"))?;
            expect("RSET", reset, 250).map(drop)
        }
        Err(failure) => Err(failure),
    }
}

/// Runs `connections` sessions against `addr` until `workload` is spent and adds up what they did.
pub async fn run_load(
    addr: SocketAddr,
    connections: usize,
    workload: Workload,
    settings: Arc<ClientSettings>,
) -> LoadOutcome {
    let started = Instant::now();
    let budget = Arc::new(Budget {
        workload,
        started,
        claimed: AtomicU64::new(0),
    });
    let mut sessions = JoinSet::new();
    for _ in 0..connections {
        sessions.spawn(session(addr, settings.clone(), budget.clone()));
    }
    let mut total = LoadOutcome::default();
    while let Some(joined) = sessions.join_next().await {
        let outcome = joined.expect("a load session panicked");
        total.delivered += outcome.delivered;
        total.latencies.extend(outcome.latencies);
        merge_errors(&mut total.errors, outcome.errors);
    }
    total.elapsed = started.elapsed();
    total
}

/// How a held connection's opening went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HoldStart {
    Accepted,
    Refused,
    Failed,
}

/// Idle connections kept open (with NOOP every few seconds) until [`HoldPool::finish`].
pub struct HoldPool {
    report: HoldReport,
    stop: watch::Sender<bool>,
    tasks: JoinSet<bool>,
}

impl HoldPool {
    /// Opens `count` connections to `addr`, each greeted and introduced with EHLO, and returns
    /// once every one is either established or has failed.
    pub async fn open(addr: SocketAddr, count: usize, settings: Arc<ClientSettings>) -> HoldPool {
        let (stop, stopped) = watch::channel(false);
        let (started_tx, mut started_rx) = mpsc::channel(count.max(1));
        let mut tasks = JoinSet::new();
        for _ in 0..count {
            tasks.spawn(hold_connection(
                addr,
                settings.clone(),
                started_tx.clone(),
                stopped.clone(),
            ));
        }
        drop(started_tx);
        let mut report = HoldReport {
            requested: count,
            ..HoldReport::default()
        };
        while let Some(start) = started_rx.recv().await {
            match start {
                HoldStart::Accepted => report.accepted += 1,
                HoldStart::Refused => report.refused += 1,
                HoldStart::Failed => report.failed += 1,
            }
        }
        HoldPool {
            report,
            stop,
            tasks,
        }
    }

    /// Closes every held connection and reports what became of them.
    pub async fn finish(mut self) -> HoldReport {
        let _ = self.stop.send(true);
        while let Some(joined) = self.tasks.join_next().await {
            if joined.expect("a held connection panicked") {
                self.report.dropped += 1;
            }
        }
        self.report
    }
}

/// Holds one connection; returns whether it was accepted and later lost.
async fn hold_connection(
    addr: SocketAddr,
    settings: Arc<ClientSettings>,
    started: mpsc::Sender<HoldStart>,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let opened = async {
        let (mut connection, greeting) = SmtpConnection::open(addr, settings.reply_timeout)
            .await
            .ok()?;
        let reply = if greeting.code == 220 {
            connection
                .command(&format!("EHLO {}", settings.helo))
                .await
                .ok()?
        } else {
            greeting
        };
        Some((connection, reply.code))
    };
    let mut connection = match opened.await {
        Some((connection, 250)) => connection,
        Some((_, 421)) => {
            let _ = started.send(HoldStart::Refused).await;
            return false;
        }
        _ => {
            let _ = started.send(HoldStart::Failed).await;
            return false;
        }
    };
    let _ = started.send(HoldStart::Accepted).await;
    drop(started);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(NOOP_INTERVAL) => {
                match connection.command("NOOP").await {
                    Ok(reply) if reply.code == 250 => {}
                    _ => return true,
                }
            }
        }
    }
    let _ = connection.command("QUIT").await;
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn data_is_dot_stuffed_with_crlf_line_endings() {
        assert_eq!(smtp_data(b"a\r\n.b\r\n..c\r\n"), b"a\r\n..b\r\n...c\r\n");
        assert_eq!(smtp_data(b".\r\n"), b"..\r\n");
        assert_eq!(smtp_data(b"a\nb"), b"a\r\nb\r\n");
        assert_eq!(smtp_data(b"x. y\r\n"), b"x. y\r\n");
    }

    #[test]
    fn reply_lines_give_their_code_and_whether_more_follow() {
        assert_eq!(parse_reply_line("250-PIPELINING"), Some((250, true)));
        assert_eq!(
            parse_reply_line("250 2.0.0 Stored as 1: http://x/r/1"),
            Some((250, false))
        );
        assert_eq!(parse_reply_line("421"), Some((421, false)));
        assert_eq!(parse_reply_line("hello"), None);
        assert_eq!(parse_reply_line("250xyz"), None);
        assert_eq!(parse_reply_line("999 no such code"), None);
    }

    #[test]
    fn error_kinds_name_the_stage_and_codes_but_not_the_free_text() {
        let reply = Reply {
            code: 550,
            text: "550 5.7.1 Rejected for reasons".into(),
        };
        assert_eq!(reply.error_kind("RCPT"), "RCPT 550 5.7.1");
        let plain = Reply {
            code: 451,
            text: "451 try again later".into(),
        };
        assert_eq!(plain.error_kind("DATA end"), "DATA end 451");
    }

    /// A loopback SMTP server that accepts every transaction except each `reject_every`th
    /// RCPT (answered 550 5.1.1), so that the client's counting can be checked; it also counts
    /// the connections it accepted.
    async fn start_server(reject_every: u64) -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let rcpt_count = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let rcpt_count = rcpt_count.clone();
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let _ = stream.get_mut().write_all(b"220 test ESMTP\r\n").await;
                    let mut in_data = false;
                    let mut line = String::new();
                    while stream.read_line(&mut line).await.unwrap_or(0) > 0 {
                        let reply: &[u8] = if in_data {
                            in_data = line != ".\r\n";
                            if in_data {
                                b""
                            } else {
                                b"250 2.0.0 Stored as 1: http://test/r/1\r\n"
                            }
                        } else if line.starts_with("EHLO") {
                            b"250-test\r\n250 PIPELINING\r\n"
                        } else if line.starts_with("RCPT") {
                            if (rcpt_count.fetch_add(1, Ordering::SeqCst) + 1)
                                .is_multiple_of(reject_every)
                            {
                                b"550 5.1.1 no such mailbox\r\n"
                            } else {
                                b"250 ok\r\n"
                            }
                        } else if line.starts_with("DATA") {
                            in_data = true;
                            b"354 go on\r\n"
                        } else if line.starts_with("QUIT") {
                            let _ = stream.get_mut().write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"250 ok\r\n"
                        };
                        if stream.get_mut().write_all(reply).await.is_err() {
                            return;
                        }
                        line.clear();
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn settings_with(connections: ConnectionMode) -> Arc<ClientSettings> {
        Arc::new(ClientSettings {
            helo: "client.test".into(),
            mail_from: "a@client.test".into(),
            rcpt_to: "spf@tester.test".into(),
            data: smtp_data(b"Subject: hi\r\n\r\n.hidden dot\r\nbody\r\n").into(),
            reply_timeout: Duration::from_secs(10),
            connections,
        })
    }

    fn settings() -> Arc<ClientSettings> {
        settings_with(ConnectionMode::Reuse)
    }

    #[tokio::test]
    async fn load_sends_exactly_the_budget_and_counts_every_refusal() {
        let (addr, connections) = start_server(10).await;
        let outcome = run_load(addr, 4, Workload::Messages(100), settings()).await;
        assert_eq!(outcome.delivered, 90);
        assert_eq!(outcome.latencies.len(), 90);
        assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
        let tally = &outcome.errors["RCPT 550 5.1.1"];
        assert_eq!(tally.count, 10);
        assert_eq!(tally.example, "550 5.1.1 no such mailbox");
        assert_eq!(
            connections.load(Ordering::SeqCst),
            4,
            "one connection per session"
        );
    }

    #[tokio::test]
    async fn per_message_mode_opens_a_connection_for_every_message() {
        let (addr, connections) = start_server(10).await;
        let settings = settings_with(ConnectionMode::PerMessage);
        let outcome = run_load(addr, 4, Workload::Messages(100), settings).await;
        assert_eq!(outcome.delivered, 90);
        assert_eq!(outcome.errors["RCPT 550 5.1.1"].count, 10);
        assert_eq!(connections.load(Ordering::SeqCst), 100);
    }

    #[tokio::test]
    async fn load_against_a_closed_port_reports_connection_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let outcome = run_load(addr, 3, Workload::Messages(10), settings()).await;
        assert_eq!(outcome.delivered, 0);
        let connect_errors: u64 = outcome
            .errors
            .iter()
            .filter(|(kind, _)| kind.starts_with("connect"))
            .map(|(_, t)| t.count)
            .sum();
        assert_eq!(connect_errors, 3, "{:?}", outcome.errors);
    }

    #[tokio::test]
    async fn held_connections_are_counted_as_accepted_and_none_dropped() {
        let (addr, _) = start_server(u64::MAX).await;
        let pool = HoldPool::open(addr, 5, settings()).await;
        let report = pool.finish().await;
        assert_eq!(
            report,
            HoldReport {
                requested: 5,
                accepted: 5,
                refused: 0,
                failed: 0,
                dropped: 0
            }
        );
    }
}
