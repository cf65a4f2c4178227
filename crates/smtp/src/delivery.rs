//! What the listener hands over for each accepted message, and the trait through which the
//! program that embeds the listener verifies and stores it.

use std::future::Future;
use std::net::SocketAddr;

pub use authcheck_verifier::{Mailbox, PrivateToken};
use chrono::{DateTime, Utc};

use crate::transcript::SessionRecord;

/// One accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address as the client wrote it, `+tag` included.
    pub address: String,
    pub destination: Destination,
}

/// What a recipient address names: a tester mailbox, whose messages are verified, a private
/// test address, whose messages get a full check only its token's page lists, or a report
/// mailbox, whose messages are DMARC reports to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    Test(Mailbox),
    /// `test-<token>@`: accepted only while [`Delivery::private_test_is_open`] says so.
    Private(PrivateToken),
    Reports(ReportMailbox),
}

/// The mailboxes that receive DMARC reports (RFC 7489 section 7), named in a domain's DMARC
/// record as `rua=mailto:rua@<tester domain>` and `ruf=mailto:ruf@<tester domain>`. Both take
/// either kind of report: the parser tells them apart by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportMailbox {
    /// `rua@`: aggregate reports.
    Aggregate,
    /// `ruf@`: failure reports.
    Failure,
}

impl ReportMailbox {
    /// The local part that names this mailbox: `rua` or `ruf`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportMailbox::Aggregate => "rua",
            ReportMailbox::Failure => "ruf",
        }
    }
}

/// The TLS parameters of a session that used STARTTLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// For example `TLSv1.3`.
    pub version: String,
    /// The IANA name, for example `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

/// What MAIL FROM's `BODY=` parameter declared about the message (RFC 6152); `BODY=BINARYMIME`
/// is refused, so it never reaches a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    /// No `BODY=` parameter: a 7-bit message.
    Undeclared,
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME`: the body may hold 8-bit bytes.
    EightBitMime,
}

/// The SMTP facts of one received message.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub client: SocketAddr,
    /// The name the client gave in EHLO or HELO.
    pub helo: String,
    /// Set when the message arrived after STARTTLS.
    pub tls: Option<TlsInfo>,
    /// The reverse-path without angle brackets; empty for the null reverse-path `<>`.
    pub mail_from: String,
    /// MAIL FROM's `BODY=` parameter.
    pub body: BodyType,
    /// Distinct accepted recipients, in the order given.
    pub recipients: Vec<Recipient>,
    /// When the end of the message data arrived.
    pub received_at: DateTime<Utc>,
}

/// What was kept of a message for one of its destinations, named in the final reply to DATA or
/// BDAT LAST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// A test result stored for a tester mailbox.
    Result {
        mailbox: Mailbox,
        id: String,
        /// Where the result can be read.
        url: String,
    },
    /// A message to a report mailbox, kept one of three ways.
    Report(ReportReceipt),
}

impl Accepted {
    /// The id of the stored result or report.
    pub fn id(&self) -> &str {
        match self {
            Accepted::Result { id, .. } => id,
            Accepted::Report(
                ReportReceipt::Stored { id }
                | ReportReceipt::Duplicate { id }
                | ReportReceipt::Rejected { id, .. },
            ) => id,
        }
    }
}

/// What became of a message sent to a report mailbox. Each is answered 250: the message is
/// kept in every case (see [`ReportReceipt::Rejected`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportReceipt {
    /// A new report, stored under this id.
    Stored { id: String },
    /// The same reporter and report id were stored before, under this id.
    Duplicate { id: String },
    /// Not a report that could be parsed: kept as a rejected report under this id, with the
    /// reason a person reads on the rejected reports list.
    Rejected { id: String, reason: String },
}

/// Why a message could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Nothing was stored and the client should retry: replied with `451 4.3.0`.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Checking the message took longer than its deadline (slow DNS answers, or a message
    /// costly to check); nothing was stored: replied with `451 4.4.3`.
    #[error("checking took too long: {0}")]
    TimedOut(String),
    /// The disk that keeps results is nearly full; nothing was stored: replied with
    /// `452 4.3.1`.
    #[error("insufficient storage")]
    InsufficientStorage,
    /// The message will never be taken: replied with `554 5.6.0`.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Takes an accepted message. The listener sends its final 250 reply only after `deliver`
/// returns `Ok`, so an implementation must have stored the message by then.
pub trait Delivery: Send + Sync + 'static {
    /// The most copies of the message, each as large as the message, that `deliver` holds at
    /// once besides the `message` it is given. The listener counts them against
    /// `max_memory_in_flight` before calling `deliver` (the message gets `452 4.3.1` when the
    /// budget has no room for them) and gives them back when it returns, so the budget bounds
    /// delivery's memory too. The implementation documents how it arrives at its figure.
    const COPIES_WHILE_DELIVERING: usize;

    /// `message` holds the bytes as received, after dot-unstuffing, with nothing added.
    fn deliver(
        &self,
        envelope: Envelope,
        message: Vec<u8>,
    ) -> impl Future<Output = Result<Vec<Accepted>, DeliveryError>> + Send;

    /// Whether the private test address with `token` takes messages now: it was made and has
    /// not expired. Asked at RCPT TO; `false` is refused with `550 5.1.1`, an error with
    /// `451 4.3.0`. The default knows no private test.
    fn private_test_is_open(
        &self,
        token: PrivateToken,
    ) -> impl Future<Output = Result<bool, DeliveryError>> + Send {
        let _ = token;
        async { Ok(false) }
    }

    /// Takes the record of a finished session: every session, whether it delivered a
    /// message, was refused or timed out, once its connection is closed (connections refused
    /// at connect included). It runs on the session's task, so it must not wait: hand the
    /// record to a queue. The default drops it.
    fn session_ended(&self, record: SessionRecord) {
        let _ = record;
    }
}
