//! Mail the tester sends itself: its own DKIM key ([`SigningKey`], made once and kept in a
//! file, with the DNS record the operator publishes), signing with it, and delivery of one
//! message to one SMTP server step by step ([`deliver`]), reporting the step that failed and
//! the server's reply.
//!
//! Used by the status page's self-check, which sends a real signed message through the
//! tester's own public address. It knows nothing of HTTP, storage or the inbound listener:
//! callers give it a message, an envelope and a server, and keep what it returns.

mod deliver;
mod key;

pub use deliver::{Delivered, Failure, Outgoing, Reply, Server, Step, deliver, dot_stuffed};
pub use key::{KEY_BITS, KeyError, KeyOrigin, SigningKey};
