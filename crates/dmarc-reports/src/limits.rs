//! Every bound the parser puts on what a stranger sends, in one place.
//!
//! A report arrives from anyone who can send mail, so each resource it can make the parser spend
//! (bytes read, bytes decompressed, nesting, records, field length) has a ceiling here. Going over
//! a ceiling rejects the report with a [`Rejection`](crate::Rejection) naming the limit; nothing
//! is truncated silently. The lists a report only informs about (warnings, `<error>`) are cut at their
//! ceiling instead, keeping a count of what was left out.

/// The ceilings the parser enforces. [`Limits::default`] fits real reporters with room to spare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted at all (the message or file as given).
    pub max_input_bytes: usize,
    /// Largest report after decompression. Streaming keeps memory well below this; it bounds CPU.
    pub max_decompressed_bytes: u64,
    /// Largest ratio of decompressed to compressed size, once past `ratio_grace_bytes`.
    /// Real reports compress 10–40 times; a deflate bomb reaches about 1000.
    pub max_compression_ratio: u64,
    /// Decompressed bytes allowed before the ratio is checked, so tiny reports (whose headers
    /// dominate) are never refused for their ratio.
    pub ratio_grace_bytes: u64,
    /// Most `<record>` elements in one aggregate report.
    pub max_records: usize,
    /// Deepest element nesting in a report (the schema needs 5).
    pub max_xml_depth: usize,
    /// Longest text of one XML element or failure-report field.
    pub max_field_bytes: usize,
    /// Deepest nesting of containers (a zip in a message attached to a message...).
    pub max_container_depth: usize,
    /// Most distinct warnings kept for one report; the rest are only counted.
    pub max_warnings: usize,
    /// Most `<error>` texts kept for one report; the rest are only counted.
    pub max_errors: usize,
    /// How far (seconds) a report's period may end after the report was received: reporters'
    /// clocks and time zones are a little off, never by more.
    pub max_future_seconds: i64,
    /// The earliest time (seconds since 1970) a report's period may begin: DMARC was published
    /// in 2012, so nothing real is older than 2000-01-01.
    pub earliest_report_time: i64,
    /// The longest period one aggregate report may cover (reporters send one a day, a few one
    /// a week).
    pub max_period_seconds: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_input_bytes: 64 * 1024 * 1024,
            max_decompressed_bytes: 256 * 1024 * 1024,
            max_compression_ratio: 200,
            ratio_grace_bytes: 1024 * 1024,
            max_records: 500_000,
            max_xml_depth: 32,
            max_field_bytes: 64 * 1024,
            max_container_depth: 4,
            max_warnings: 100,
            max_errors: 100,
            max_future_seconds: 86_400,
            earliest_report_time: 946_684_800,
            max_period_seconds: 31 * 86_400,
        }
    }
}
