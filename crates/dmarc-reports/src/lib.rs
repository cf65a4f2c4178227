//! DMARC report parsing: bytes in, a typed report or the reason it was refused out.
//!
//! This crate owns reading the reports receivers send about a domain's mail: aggregate reports
//! (RFC 7489 with its draft schema, and RFC 9990) and failure reports (RFC 6591 ARF, RFC 9991,
//! and prose-only ones). [`parse`] takes what arrived — an email message (with an mbox `From `
//! line or not), a plain XML file, gzip or zip — tells which it is by content, finds the report
//! in it and returns a [`Report`], or a [`Rejection`] whose text tells a person what was wrong.
//! [`day_shares`] splits a report's period into UTC days for daily figures.
//! [`Report::check_received`] refuses a report that names no domain or whose period could not
//! have been written by the time it was received; [`domain_name`] is the one rule for the
//! domain a report is stored and looked up under.
//!
//! It does no I/O but reading the bytes it is given, and knows nothing of SMTP, storage, DNS or
//! HTTP: the binary receives, stores and shows. Everything a stranger controls is bounded by
//! [`Limits`]: input and decompressed size, compression ratio, XML depth, records, field length
//! and container nesting; XML is read as a stream and no DTD entity is ever expanded.

#[macro_use]
mod closed_set;

mod aggregate;
mod container;
mod days;
mod failure;
mod limits;
mod message;
mod received;
mod rejection;
mod utf8;
mod warnings;
mod xml;

use serde::{Deserialize, Serialize};

pub use aggregate::*;
pub use days::{DayShare, MAX_SPLIT_DAYS, day_shares, split_count};
pub use failure::{
    AlignedIdentity, AuthFailure, DeliveryResult, FailureFormat, FailureReport, Feedback,
    FeedbackType,
};
pub use limits::Limits;
pub use received::domain_name;
pub use rejection::Rejection;

use container::Sniffed;

/// A parsed report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Report {
    Aggregate(AggregateReport),
    Failure(FailureReport),
}

impl Report {
    /// What the parser repaired or could not place in the report.
    pub fn warnings(&self) -> &[Warning] {
        match self {
            Report::Aggregate(report) => &report.warnings,
            Report::Failure(report) => &report.warnings,
        }
    }
}

/// Parses a DMARC report from whatever arrived: an email message (the report attached, inline
/// or as a `multipart/report`), an mbox-style message, an XML file, or a gzip or zip archive.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Report, Rejection> {
    if bytes.len() > limits.max_input_bytes {
        return Err(Rejection::InputTooLarge {
            size: bytes.len(),
            limit: limits.max_input_bytes,
        });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::Empty);
    }
    parse_payload(bytes, limits, 0)
}

/// Parses one container level, `depth` levels down from what the caller gave.
pub(crate) fn parse_payload(
    bytes: &[u8],
    limits: &Limits,
    depth: usize,
) -> Result<Report, Rejection> {
    if depth > limits.max_container_depth {
        return Err(Rejection::ContainersTooDeep {
            limit: limits.max_container_depth,
        });
    }
    let aggregate = Report::Aggregate;
    match container::sniff(bytes) {
        Sniffed::Xml => xml::parse_aggregate(bytes, limits, "XML").map(aggregate),
        Sniffed::Gzip => {
            xml::parse_aggregate(container::gunzip(bytes, limits), limits, "gzip").map(aggregate)
        }
        Sniffed::Zip => container::with_zip_member(bytes, limits, |member| {
            xml::parse_aggregate(member, limits, "zip")
        })
        .map(aggregate),
        Sniffed::Mbox => {
            // The separator line is mbox framing, not a header.
            let message = bytes
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |end| &bytes[end + 1..]);
            message::parse_message(message, limits, depth)
        }
        Sniffed::Other => message::parse_message(bytes, limits, depth),
    }
}
