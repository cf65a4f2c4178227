//! The harness for the listener's own tests: a listener on 127.0.0.1 port 0 with a delivery
//! that records what it is given, and a raw SMTP client that reads whole replies.

#![allow(dead_code)] // Each test file uses a different part of the harness.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authcheck_smtp::{
    Accepted, Delivery, DeliveryError, Destination, Envelope, Mailbox, PrivateToken, ReportReceipt,
    SessionRecord, SmtpConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Bounds every wait in the tests so a broken listener fails a test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub const DOMAIN: &str = "tester.example";

/// How a machine gets the local IPv6 route the tests send from (`cfg(ipv6_range_tests)`).
pub const IPV6_RANGE_SETUP: &str =
    "scripts/setup-test-deps adds it, as root: ip -6 route replace local 2001:db8:ac::/48 dev lo";

/// Records each message and answers with ids `<mailbox>-<n>` (`report-<n>` for the report
/// mailboxes, `private-<n>` for private test addresses), or with `failure` when set. The
/// private test addresses open are those of `open_tokens`; `token_lookup_failure` makes
/// looking one up fail.
#[derive(Default)]
pub struct RecordingDelivery {
    pub delivered: Mutex<Vec<(Envelope, Vec<u8>)>>,
    pub failure: Mutex<Option<DeliveryError>>,
    pub sessions: Mutex<Vec<SessionRecord>>,
    pub open_tokens: Mutex<Vec<PrivateToken>>,
    pub token_lookup_failure: Mutex<bool>,
}

impl RecordingDelivery {
    pub fn messages(&self) -> Vec<(Envelope, Vec<u8>)> {
        self.delivered.lock().unwrap().clone()
    }

    /// The records of the first `count` finished sessions, waiting (bounded) for them.
    pub async fn sessions(&self, count: usize) -> Vec<SessionRecord> {
        for _ in 0..200 {
            let sessions = self.sessions.lock().unwrap().clone();
            if sessions.len() >= count {
                return sessions;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("fewer than {count} sessions were recorded");
    }
}

impl Delivery for RecordingDelivery {
    /// The message is moved into the list, never copied.
    const COPIES_WHILE_DELIVERING: usize = 0;

    async fn deliver(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> Result<Vec<Accepted>, DeliveryError> {
        if let Some(failure) = self.failure.lock().unwrap().clone() {
            return Err(failure);
        }
        let mut delivered = self.delivered.lock().unwrap();
        let n = delivered.len() + 1;
        let mut destinations: Vec<Destination> = Vec::new();
        for recipient in &envelope.recipients {
            let destination = match recipient.destination {
                // rua@ and ruf@ in one message are one report.
                Destination::Reports(_) => {
                    Destination::Reports(authcheck_smtp::ReportMailbox::Aggregate)
                }
                test => test,
            };
            if !destinations.contains(&destination) {
                destinations.push(destination);
            }
        }
        delivered.push((envelope, message));
        Ok(destinations
            .into_iter()
            .map(|destination| match destination {
                Destination::Test(mailbox) => {
                    let id = format!("{}-{n}", mailbox.as_str());
                    Accepted::Result {
                        mailbox,
                        url: format!("http://results.test/r/{id}"),
                        id,
                    }
                }
                Destination::Private(_) => {
                    let id = format!("private-{n}");
                    Accepted::Result {
                        mailbox: Mailbox::Check,
                        url: format!("http://results.test/r/{id}"),
                        id,
                    }
                }
                Destination::Reports(_) => Accepted::Report(ReportReceipt::Stored {
                    id: format!("report-{n}"),
                }),
            })
            .collect())
    }

    async fn private_test_is_open(&self, token: PrivateToken) -> Result<bool, DeliveryError> {
        if *self.token_lookup_failure.lock().unwrap() {
            return Err(DeliveryError::Temporary("the test database is down".into()));
        }
        Ok(self.open_tokens.lock().unwrap().contains(&token))
    }

    fn session_ended(&self, record: SessionRecord) {
        self.sessions.lock().unwrap().push(record);
    }
}

pub struct Server<D = RecordingDelivery> {
    pub addr: SocketAddr,
    pub delivery: Arc<D>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// Starts a listener with the default configuration changed by `configure`.
pub async fn start(configure: impl FnOnce(&mut SmtpConfig)) -> Server {
    start_with(configure, Arc::new(RecordingDelivery::default())).await
}

/// Starts a listener like [`start`] that hands its messages to `delivery`.
pub async fn start_with<D: Delivery>(
    configure: impl FnOnce(&mut SmtpConfig),
    delivery: Arc<D>,
) -> Server<D> {
    start_at("127.0.0.1:0", configure, delivery).await
}

/// Starts a listener like [`start_with`] on `listen` (an address with port 0).
pub async fn start_at<D: Delivery>(
    listen: &str,
    configure: impl FnOnce(&mut SmtpConfig),
    delivery: Arc<D>,
) -> Server<D> {
    let listener = TcpListener::bind(listen).await.unwrap();
    start_on(listener, configure, delivery)
}

/// Starts a listener like [`start_with`] on `listener` (for socket options set before it
/// listens, which its connections inherit).
pub fn start_on<D: Delivery>(
    listener: TcpListener,
    configure: impl FnOnce(&mut SmtpConfig),
    delivery: Arc<D>,
) -> Server<D> {
    let addr = listener.local_addr().unwrap();
    let mut config = SmtpConfig {
        hostname: "mx.tester.example".to_string(),
        // Written as a person might configure it; matched as `second.test`.
        domains: vec![DOMAIN.to_string(), "Second.Test.".to_string()],
        ..SmtpConfig::new(addr)
    };
    configure(&mut config);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(authcheck_smtp::run(
        listener,
        config,
        delivery.clone(),
        stopped,
    ));
    Server {
        addr,
        delivery,
        stop: Some(stop),
        task,
    }
}

impl<D> Server<D> {
    pub async fn client(&self) -> Client<TcpStream> {
        let mut client = self.connect().await;
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220 mx.tester.example"), "{greeting}");
        client
    }

    /// A connection whose greeting has not been read.
    pub async fn connect(&self) -> Client<TcpStream> {
        Client::new(TcpStream::connect(self.addr).await.unwrap())
    }

    /// A connection from the local address `source` whose greeting has not been read.
    pub async fn connect_from(&self, source: IpAddr) -> Client<TcpStream> {
        let socket = match source {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .unwrap();
        if source.is_ipv6() {
            // The address is routed to `lo` but not assigned to it.
            socket2::SockRef::from(&socket)
                .set_freebind_v6(true)
                .unwrap();
        }
        socket
            .bind(SocketAddr::new(source, 0))
            .unwrap_or_else(|error| {
                panic!("cannot send from {source}: {error} (for IPv6: {IPV6_RANGE_SETUP})")
            });
        Client::new(socket.connect(self.addr).await.unwrap())
    }

    /// A greeted client after EHLO.
    pub async fn greeted_client(&self) -> Client<TcpStream> {
        let mut client = self.client().await;
        let reply = client.command("EHLO client.example").await;
        assert!(reply.starts_with("250-mx.tester.example"), "{reply}");
        client
    }

    /// Requests shutdown and waits for the listener to return.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("the listener stops")
            .unwrap();
    }
}

pub struct Client<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Client {
            stream: BufReader::new(stream),
        }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .get_mut()
            .write_all(bytes.as_ref())
            .await
            .unwrap();
    }

    /// Whether the server has sent something (or closed) within `wait`; reads nothing.
    pub async fn has_input_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.stream.fill_buf())
            .await
            .is_ok()
    }

    /// Reads one whole reply; lines are joined with `\n`, without CRLF.
    pub async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(PATIENCE, self.stream.read_line(&mut line))
                .await
                .expect("a reply in time");
            assert!(
                read.unwrap() > 0,
                "connection closed; replies so far: {lines:?}"
            );
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Sends `line` with CRLF and reads the reply.
    pub async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Whether the server closes the connection without sending anything more.
    pub async fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match tokio::time::timeout(PATIENCE, self.stream.read_to_end(&mut rest)).await {
            Ok(Ok(_)) => rest.is_empty(),
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }

    pub fn into_inner(self) -> S {
        assert!(
            self.stream.buffer().is_empty(),
            "unread bytes from the server"
        );
        self.stream.into_inner()
    }

    /// MAIL FROM and RCPT TO each recipient, asserting the replies are 250.
    pub async fn envelope(&mut self, from: &str, to: &[&str]) {
        let reply = self.command(&format!("MAIL FROM:<{from}>")).await;
        assert!(reply.starts_with("250 "), "{reply}");
        for recipient in to {
            let reply = self.command(&format!("RCPT TO:<{recipient}>")).await;
            assert!(reply.starts_with("250 "), "{reply}");
        }
    }
}

/// A short message with CRLF line ends.
pub fn message(subject: &str) -> String {
    format!("From: sender@example.com\r\nTo: spf@{DOMAIN}\r\nSubject: {subject}\r\n\r\nHello.\r\n")
}
