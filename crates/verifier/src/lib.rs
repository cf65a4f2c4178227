//! The verifier: given how a message arrived and its bytes, say whether it authenticates, why,
//! and which verdict the tester shows.
//!
//! It computes SPF (RFC 7208) for the MAIL FROM and HELO identities, every DKIM signature
//! (RFC 6376, RFC 8463 ed25519), DMARC alignment and policy (RFC 9989, with the
//! differences from RFC 7489 named) and the ARC chain, and
//! turns them into one [`Report`]: the two tester verdicts, the reasons, and an RFC 8601
//! `Authentication-Results` header field. [`rewrite_subject`] puts a verdict in front of a
//! message's Subject.
//!
//! This crate knows nothing of SMTP, storage or HTTP: its only contact with the world is DNS,
//! through [`Dns`], whose time limits bound every check.

pub mod arc;
pub mod auth_results;
pub mod delivered;
pub mod diagnosis;
pub mod display;
pub mod dkim;
pub mod dmarc;
pub mod dns;
pub mod domain;
mod mailbox;
pub mod report;
pub mod spf;
pub mod subject;
pub mod summary;
pub mod verdict;
mod verifier;

pub use delivered::message_as_delivered;
pub use dns::{Dns, DnsConfig, DnsSetupError, LookupError};
pub use mailbox::{Mailbox, PRIVATE_PREFIX, PrivateToken};
pub use report::*;
pub use subject::rewrite_subject;
pub use summary::ReportSummary;
pub use verdict::{Grade, UnknownVerdict, Verdict, shown_verdicts, worst_grade};
pub use verifier::{BodyParameter, MessageInput, Verifier, VerifierConfig};
