//! Every setting and limit of the SMTP listener, with its default, in one place.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

/// Settings for [`crate::run`]. Start from [`SmtpConfig::new`] and override what differs:
/// `SmtpConfig { domains: vec!["tester.example".into()], ..SmtpConfig::new(addr) }`.
#[derive(Clone)]
pub struct SmtpConfig {
    /// The address the listener is bound to; shown in logs only (the caller binds the socket).
    pub listen: SocketAddr,
    /// The name in the greeting, the EHLO reply and timeout replies.
    pub hostname: String,
    /// The tester domains, lowercase, without a trailing dot. Recipients must be at one of them.
    pub domains: Vec<String>,
    /// The largest message accepted, in bytes; advertised as `SIZE`.
    pub max_message_size: usize,
    /// The most distinct recipients in one transaction.
    pub max_recipients: usize,
    /// The most sessions open at once; a client over it is refused with a 421.
    pub max_connections: usize,
    /// The most sessions open at once from one client: one IPv4 address, or one IPv6 /64
    /// (a single host commonly holds a whole /64).
    pub max_connections_per_ip: usize,
    /// The most bytes of message data held at once across all sessions, counting the copies
    /// delivery makes of the messages being delivered ([`crate::Delivery::COPIES_WHILE_DELIVERING`]);
    /// past it new transactions, and messages that would grow it, get `452 4.3.1`.
    pub max_memory_in_flight: usize,
    /// The most new transactions (MAIL FROM) from one client (IPv4 address or IPv6 /64) per
    /// `rate_window`; past it `450 4.7.1`. 0 turns the limit off.
    pub messages_per_client: u32,
    /// The most new transactions per MAIL FROM domain per `rate_window`; past it `450 4.7.1`.
    /// 0 turns the limit off. The null reverse-path is limited per client only.
    pub messages_per_sender_domain: u32,
    /// The window of the two rate limits above.
    pub rate_window: Duration,
    /// The time the rate limits read; tests replace it with a [`crate::ManualClock`].
    pub clock: Arc<dyn Clock>,
    /// How long the client may take to send each command line, or each
    /// `MIN_DATA_PER_TIMEOUT` (1 KiB) of message data.
    pub command_timeout: Duration,
    /// How long one session may last, however busy it is.
    pub session_timeout: Duration,
    /// The longest command line, in bytes including CRLF.
    pub max_line_length: usize,
    /// How many refused commands a session may send; the next one ends the session.
    pub max_bad_commands: usize,
    /// Offers STARTTLS with this configuration when set.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// After shutdown is requested, how long sessions in flight may take to finish.
    pub shutdown_grace: Duration,
}

/// The default `max_message_size`: 10 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
/// The default `max_memory_in_flight`: 512 MiB, a quarter of a 2 GB host.
pub const DEFAULT_MAX_MEMORY_IN_FLIGHT: usize = 512 * 1024 * 1024;
/// The default `messages_per_client`: a person testing sends a few messages a minute.
pub const DEFAULT_MESSAGES_PER_CLIENT: u32 = 60;
/// The default `messages_per_sender_domain`: twice the client limit, as several people may
/// test the same domain at once.
pub const DEFAULT_MESSAGES_PER_SENDER_DOMAIN: u32 = 120;
/// The default `rate_window`: 10 minutes.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The default `max_recipients`.
pub const DEFAULT_MAX_RECIPIENTS: usize = 10;
/// The default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// The default `max_connections_per_ip`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 50;
/// The default `command_timeout`: RFC 5321 section 4.5.3.2 asks servers to wait at least 5 minutes.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// The default `session_timeout`.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The default `max_line_length`, comfortably above RFC 5321's 512-byte command line.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 4096;
/// The default `max_bad_commands`.
pub const DEFAULT_MAX_BAD_COMMANDS: usize = 20;
/// The default `shutdown_grace`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

impl SmtpConfig {
    /// The defaults: host name `localhost`, tester domain `tester.localhost`, no TLS.
    pub fn new(listen: SocketAddr) -> Self {
        SmtpConfig {
            listen,
            hostname: "localhost".to_string(),
            domains: vec!["tester.localhost".to_string()],
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_recipients: DEFAULT_MAX_RECIPIENTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max_memory_in_flight: DEFAULT_MAX_MEMORY_IN_FLIGHT,
            messages_per_client: DEFAULT_MESSAGES_PER_CLIENT,
            messages_per_sender_domain: DEFAULT_MESSAGES_PER_SENDER_DOMAIN,
            rate_window: DEFAULT_RATE_WINDOW,
            clock: Arc::new(SystemClock),
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
            max_bad_commands: DEFAULT_MAX_BAD_COMMANDS,
            tls: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("listen", &self.listen)
            .field("hostname", &self.hostname)
            .field("domains", &self.domains)
            .field("max_message_size", &self.max_message_size)
            .field("max_recipients", &self.max_recipients)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("max_memory_in_flight", &self.max_memory_in_flight)
            .field("messages_per_client", &self.messages_per_client)
            .field(
                "messages_per_sender_domain",
                &self.messages_per_sender_domain,
            )
            .field("rate_window", &self.rate_window)
            .field("command_timeout", &self.command_timeout)
            .field("session_timeout", &self.session_timeout)
            .field("max_line_length", &self.max_line_length)
            .field("max_bad_commands", &self.max_bad_commands)
            .field("tls", &self.tls.is_some())
            .field("shutdown_grace", &self.shutdown_grace)
            .finish()
    }
}

/// How many bytes one read from the client may add to the input buffer.
pub(crate) const READ_CHUNK: usize = 16 * 1024;
/// The most reply bytes a session queues before it waits for the client to take them. Replies
/// to HELP or EHLO are dozens of times longer than the commands, so a [`READ_CHUNK`] of such
/// pipelined commands would queue about 0.75 MB, outside the memory budget; RFC 2920 lets a
/// server send its replies early.
pub const MAX_QUEUED_REPLIES: usize = 64 * 1024;
/// How long closing a connection (TLS close_notify included) may take.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Message data the client must send within each command timeout to keep the connection.
/// RFC 5321 asks servers to wait minutes between data blocks; a client that sends a message a
/// byte every few seconds would otherwise hold its slot until the whole-session limit.
pub(crate) const MIN_DATA_PER_TIMEOUT: usize = 1024;
/// How many clients, and how many sender domains, the rate limits track at most (a client
/// costs about 60 bytes, a domain at most about 320); when a table is full of keys still
/// counting, new keys are refused until some expire.
pub(crate) const RATE_LIMIT_MAX_KEYS: usize = 50_000;
/// The longest sender domain the rate limit keeps as a key (RFC 1035: 255 octets).
pub(crate) const MAX_DOMAIN_LENGTH: usize = 255;
/// The smallest step in which a message's buffer (and its reservation) grows.
pub(crate) const MIN_BODY_GROWTH: usize = 64 * 1024;
/// The longest client text (a HELO name, an address) echoed in a reply.
pub(crate) const MAX_ECHO: usize = 256;
/// The transcript of a session keeps its first this-many events (command and reply) ...
pub(crate) const TRANSCRIPT_HEAD: usize = 40;
/// ... and its last this-many; those between are counted, not kept. The end of a session
/// (a timeout's 421, QUIT) is what a reader most often looks for.
pub(crate) const TRANSCRIPT_TAIL: usize = 10;
/// The most characters of a command line or a reply line a transcript keeps.
pub const TRANSCRIPT_TEXT_CHARS: usize = 200;
/// The most result ids a session record names (a session stores at most this many messages'
/// worth of ids; the others are still stored and counted in the logs).
pub(crate) const TRANSCRIPT_RESULT_IDS: usize = 32;
