//! The SMTP listener that accepts test messages for the tester mailboxes (`spf@`, `dkim@` and
//! `check@` a tester domain, and the private test addresses `test-<token>@` a delivery says are
//! open) and DMARC reports for the report mailboxes (`rua@` and `ruf@`), and hands
//! each message, with its envelope, to a [`Delivery`].
//!
//! It knows nothing of verification, storage or HTTP. [`run`] serves a bound
//! [`tokio::net::TcpListener`] until a shutdown future completes; [`SmtpConfig`] holds every
//! limit; `replies.rs` holds every reply text. The session state machine is in `session/`,
//! one file per command.

mod address;
mod budget;
mod clock;
mod config;
mod delivery;
mod listener;
mod rate;
mod replies;
mod session;
mod tls;
mod transcript;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_MAX_BAD_COMMANDS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_LINE_LENGTH, DEFAULT_MAX_MEMORY_IN_FLIGHT,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_RECIPIENTS, DEFAULT_MESSAGES_PER_CLIENT,
    DEFAULT_MESSAGES_PER_SENDER_DOMAIN, DEFAULT_RATE_WINDOW, DEFAULT_SESSION_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE, MAX_QUEUED_REPLIES, SmtpConfig, TRANSCRIPT_TEXT_CHARS,
};
pub use delivery::{
    Accepted, BodyType, Delivery, DeliveryError, Destination, Envelope, Mailbox, PrivateToken,
    Recipient, ReportMailbox, ReportReceipt, TlsInfo,
};
pub use listener::run;
pub use tls::{TlsError, load_tls, self_signed_tls};
pub use transcript::{RESULTS_HIDDEN, SessionEnding, SessionRecord, TranscriptEvent};
