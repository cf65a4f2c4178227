//! Every bound the parser puts on what a stranger sends, in one place.
//!
//! A report arrives from anyone who can send mail, so each resource it can make the parser spend
//! (bytes read, bytes decompressed, nesting, records, field length) has a ceiling here. Going over
//! a ceiling rejects the report with a [`Rejection`](crate::Rejection) naming the limit; nothing
//! is truncated silently.

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
        }
    }
}
