//! Mail the tester sends itself: its own DKIM key ([`SigningKey`], made once and kept in a
//! file, with the DNS record the operator publishes), signing with it, and delivery of one
//! message to one SMTP server step by step ([`deliver`]), reporting the step that failed and
//! the server's reply.
//!
//! It also finds where mail to a domain goes ([`mx_servers`], with the service's resolver),
//! says when to try a message again ([`RetryPolicy`]), and composes the messages the tester
//! writes ([`Letter`]).
//!
//! Used by the status page's self-check, which sends a real signed message through the
//! tester's own public address, and by the outgoing queue (replies by mail, weekly
//! summaries). It knows nothing of HTTP, storage or the inbound listener: callers give it a
//! message, an envelope and a server, and keep what it returns.

mod compose;
mod deliver;
mod key;
mod retry;
mod route;

pub use compose::{Letter, MAX_LETTER_BYTES};
pub use deliver::{
    Credentials, Delivered, Exchange, Failure, MAX_EXCHANGE_TEXT_BYTES, MAX_TRANSCRIPT_EXCHANGES,
    Outgoing, Reply, Server, SmarthostTls, Step, Transcript, deliver, deliver_to_smarthost,
    dot_stuffed,
};
pub use key::{KEY_BITS, KeyError, KeyOrigin, SigningKey};
pub use retry::{MAX_RETRY_INTERVAL, NextAttempt, RetryPolicy};
pub use route::{MAX_ADDRESSES_PER_HOST, MAX_MX_HOSTS, RouteError, mx_servers};
