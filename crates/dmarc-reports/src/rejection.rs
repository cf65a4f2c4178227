//! Why a report could not be parsed, in words the person who reads the "rejected reports" list
//! understands.
//!
//! Every way [`parse`](crate::parse) can fail is one variant here, so a caller can store and count
//! rejections by kind and a user reads a sentence that says what was wrong and, where it can,
//! what to do.

use thiserror::Error;

use crate::days::shown_time;

/// The reason a report was refused. `Display` is a full sentence for people.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("the input is empty")]
    Empty,
    #[error("the input is {size} bytes, more than the {limit}-byte limit for a report")]
    InputTooLarge { size: usize, limit: usize },
    #[error(
        "the content is neither XML, gzip, zip nor an email message, so it cannot be a DMARC report"
    )]
    UnrecognisedFormat,
    #[error("the {container} data is damaged and cannot be decompressed: {detail}")]
    Corrupt {
        container: &'static str,
        detail: String,
    },
    #[error(
        "the report decompresses to more than {limit} bytes, the limit for one report (a decompression bomb?)"
    )]
    DecompressedTooLarge { limit: u64 },
    #[error(
        "the report decompresses to more than {limit} times its compressed size (a decompression bomb?)"
    )]
    CompressionRatioTooHigh { limit: u64 },
    #[error("the zip archive contains no file")]
    ZipEmpty,
    #[error(
        "the zip archive holds {count} files and none or several look like the report ({names})"
    )]
    ZipAmbiguous { count: usize, names: String },
    #[error(
        "the zip archive member is encrypted or uses an unsupported compression method: {detail}"
    )]
    ZipUnsupported { detail: String },
    #[error(
        "containers are nested more than {limit} deep (an archive in a message in a message...)"
    )]
    ContainersTooDeep { limit: usize },
    #[error(
        "the XML declares a document type (DTD); reports never need one and entities are not expanded"
    )]
    DocumentTypeDeclaration,
    #[error("the XML is malformed at byte {position}: {detail}")]
    MalformedXml { position: u64, detail: String },
    #[error("XML elements are nested more than {limit} deep")]
    XmlTooDeep { limit: usize },
    #[error("the report has more than {limit} records, the limit for one report")]
    TooManyRecords { limit: usize },
    #[error("the <{element}> text is longer than {limit} bytes")]
    FieldTooLong { element: String, limit: usize },
    #[error("the XML has no <feedback> element, so it is not a DMARC aggregate report")]
    NotAggregateReport,
    #[error("the report ends inside <{element}>: it was cut short")]
    Truncated { element: String },
    #[error("the report has no <{field}>, which every aggregate report must have")]
    MissingField { field: &'static str },
    #[error("<{field}> is \"{value}\", which is not a valid {expected}")]
    InvalidField {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the message holds {count} different reports; send each report in its own message")]
    SeveralReports { count: usize },
    #[error(
        "the message has an attachment ({content_type}) that is not a DMARC report, and no report"
    )]
    NoReportInMessage { content_type: String },
    #[error("the message has no text and no attachment")]
    EmptyMessage,
    #[error(
        "the failure report names no domain (no Reported-Domain field with a domain name), so it cannot be listed under one"
    )]
    NoReportedDomain,
    #[error(
        "the report's period ends ({}) before it begins ({})", shown_time(*end), shown_time(*begin)
    )]
    PeriodBackwards { begin: i64, end: i64 },
    #[error(
        "the report's period ends {}, later than it could have been written: it was received {}",
        shown_time(*end), shown_time(*received_at)
    )]
    PeriodInFuture { end: i64, received_at: i64 },
    #[error(
        "the report's period begins {}, before any DMARC report (the earliest accepted is {})",
        shown_time(*begin), shown_time(*earliest)
    )]
    PeriodTooEarly { begin: i64, earliest: i64 },
    #[error(
        "the report covers {days} days; a report covers at most {limit_days} (usually one day)"
    )]
    PeriodTooLong { days: i64, limit_days: i64 },
}
