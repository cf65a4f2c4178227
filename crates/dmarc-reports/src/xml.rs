//! The streaming aggregate-report reader: XML events in, an [`AggregateReport`] out.
//!
//! It reads with quick-xml's pull reader, so memory holds one element's text and the typed
//! records, never the document. It is lenient where real reporters are sloppy and strict where
//! a stranger could hurt us:
//!
//! - elements are matched by local name, ignoring namespaces and attributes (`xsi:*`);
//! - unknown elements are transparent (their children still count), so a stray or unclosed
//!   `<xs:schema>` wrapper changes nothing; `<extensions>` content is skipped;
//! - an end tag closes the innermost open element of its name, and one that matches nothing is
//!   ignored; text between elements is ignored;
//! - a DTD is refused outright (no entity is ever expanded), and nesting, records and field
//!   length are bounded by [`Limits`].

use std::io::{self, BufReader, Read};
use std::net::IpAddr;

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};

use crate::aggregate::*;
use crate::limits::Limits;
use crate::rejection::Rejection;
use crate::utf8::LossyUtf8;
use crate::warnings::Warnings;

/// The RFC 9990 namespace.
const DMARC_2_NAMESPACE: &str = "urn:ietf:params:xml:ns:dmarc-2.0";

/// An error raised inside a reader below the XML parser (a decompression limit), carried through
/// `io::Error` so it reaches the caller as the rejection it is.
#[derive(Debug)]
pub(crate) struct LimitHit(pub(crate) Rejection);

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for LimitHit {}

/// Turns a read error into a rejection: a limit hit below us is passed through, anything else
/// means the container (`gzip`, `zip`...) was damaged.
pub(crate) fn io_rejection(error: &io::Error, container: &'static str) -> Rejection {
    match error.get_ref().and_then(|e| e.downcast_ref::<LimitHit>()) {
        Some(LimitHit(rejection)) => rejection.clone(),
        None => Rejection::Corrupt {
            container,
            detail: error.to_string(),
        },
    }
}

/// Parses one aggregate report from `input` (XML, already decompressed). `container` names
/// what the bytes came out of, for error messages.
pub(crate) fn parse_aggregate<R: Read>(
    input: R,
    limits: &Limits,
    container: &'static str,
) -> Result<AggregateReport, Rejection> {
    let mut reader = Reader::from_reader(BufReader::new(LossyUtf8::new(input)));
    let config = reader.config_mut();
    config.check_end_names = false;
    config.allow_unmatched_ends = true;
    config.expand_empty_elements = true;
    config.allow_dangling_amp = true;

    let mut builder = Builder::new(limits);
    let mut buf = Vec::new();
    loop {
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(quick_xml::Error::Io(error)) => return Err(io_rejection(&error, container)),
            Err(error) => {
                return Err(Rejection::MalformedXml {
                    position: reader.error_position(),
                    detail: error.to_string(),
                });
            }
        };
        match event {
            Event::Start(start) => builder.start(&start)?,
            Event::Empty(start) => {
                builder.start(&start)?;
                builder.end(start.name().as_ref())?;
            }
            Event::End(end) => builder.end(end.name().as_ref())?,
            Event::Text(text) => builder.text(&text.xml10_content())?,
            Event::CData(data) => builder.text(&data.xml10_content())?,
            Event::GeneralRef(reference) => {
                if let Ok(Some(ch)) = reference.resolve_char_ref() {
                    builder.text(ch.encode_utf8(&mut [0; 4]))?;
                } else if let Some(text) = resolve_predefined_entity(&reference) {
                    builder.text(text)?;
                } else {
                    // Without a DTD no other entity can be defined: keep it as written.
                    let name: &str = &reference;
                    builder.warn(Warning::UnknownEntity {
                        name: name.to_owned(),
                    });
                    builder.text(&format!("&{};", &*reference))?;
                }
            }
            Event::DocType(_) => return Err(Rejection::DocumentTypeDeclaration),
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
        buf.clear();
    }
    if reader.get_ref().get_ref().replaced() {
        builder.warn(Warning::InvalidUtf8Replaced);
    }
    builder.finish()
}

/// The report containers (elements with children the schema defines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Container {
    Feedback,
    Metadata,
    DateRange,
    Policy,
    Record,
    Row,
    PolicyEvaluated,
    Reason,
    Identifiers,
    AuthResults,
    Dkim,
    Spf,
}

impl Container {
    fn element(self) -> &'static str {
        match self {
            Container::Feedback => "feedback",
            Container::Metadata => "report_metadata",
            Container::DateRange => "date_range",
            Container::Policy => "policy_published",
            Container::Record => "record",
            Container::Row => "row",
            Container::PolicyEvaluated => "policy_evaluated",
            Container::Reason => "reason",
            Container::Identifiers => "identifiers",
            Container::AuthResults => "auth_results",
            Container::Dkim => "dkim",
            Container::Spf => "spf",
        }
    }
}

/// The text-valued elements, each named by where it sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Version,
    OrgName,
    Email,
    ExtraContactInfo,
    ReportId,
    Error,
    Generator,
    Begin,
    End,
    PolicyDomain,
    Adkim,
    Aspf,
    P,
    Sp,
    Np,
    Pct,
    Fo,
    Testing,
    DiscoveryMethod,
    SourceIp,
    Count,
    Disposition,
    EvaluatedDkim,
    EvaluatedSpf,
    ReasonType,
    ReasonComment,
    HeaderFrom,
    EnvelopeFrom,
    EnvelopeTo,
    DkimDomain,
    DkimSelector,
    DkimResult,
    DkimHumanResult,
    SpfDomain,
    SpfScope,
    SpfResult,
    SpfHumanResult,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Container(Container),
    Field(Field),
    /// Content we do not read (`<extensions>` and everything inside it).
    Skipped,
    /// An element the schema does not name: transparent.
    Unknown,
}

/// What a child element named `name` is, inside `context` (the innermost known container).
fn classify(context: Option<Container>, name: &str) -> Kind {
    use Container as C;
    use Field as F;
    let container = |c| Kind::Container(c);
    let field = |f| Kind::Field(f);
    match (context, name) {
        (None, "feedback") => container(C::Feedback),
        (Some(C::Feedback), "version") => field(F::Version),
        (Some(C::Feedback), "report_metadata") => container(C::Metadata),
        (Some(C::Feedback), "policy_published") => container(C::Policy),
        (Some(C::Feedback), "record") => container(C::Record),
        (Some(C::Metadata), "org_name") => field(F::OrgName),
        (Some(C::Metadata), "email") => field(F::Email),
        (Some(C::Metadata), "extra_contact_info") => field(F::ExtraContactInfo),
        (Some(C::Metadata), "report_id") => field(F::ReportId),
        (Some(C::Metadata), "error") => field(F::Error),
        (Some(C::Metadata), "generator") => field(F::Generator),
        (Some(C::Metadata), "date_range") => container(C::DateRange),
        (Some(C::DateRange), "begin") => field(F::Begin),
        (Some(C::DateRange), "end") => field(F::End),
        (Some(C::Policy), "domain") => field(F::PolicyDomain),
        (Some(C::Policy), "adkim") => field(F::Adkim),
        (Some(C::Policy), "aspf") => field(F::Aspf),
        (Some(C::Policy), "p") => field(F::P),
        (Some(C::Policy), "sp") => field(F::Sp),
        (Some(C::Policy), "np") => field(F::Np),
        (Some(C::Policy), "pct") => field(F::Pct),
        (Some(C::Policy), "fo") => field(F::Fo),
        (Some(C::Policy), "testing") => field(F::Testing),
        (Some(C::Policy), "discovery_method") => field(F::DiscoveryMethod),
        (Some(C::Record), "row") => container(C::Row),
        (Some(C::Record), "identifiers") => container(C::Identifiers),
        (Some(C::Record), "auth_results") => container(C::AuthResults),
        (Some(C::Row), "source_ip") => field(F::SourceIp),
        (Some(C::Row), "count") => field(F::Count),
        (Some(C::Row), "policy_evaluated") => container(C::PolicyEvaluated),
        (Some(C::PolicyEvaluated), "disposition") => field(F::Disposition),
        (Some(C::PolicyEvaluated), "dkim") => field(F::EvaluatedDkim),
        (Some(C::PolicyEvaluated), "spf") => field(F::EvaluatedSpf),
        (Some(C::PolicyEvaluated), "reason") => container(C::Reason),
        (Some(C::Reason), "type") => field(F::ReasonType),
        (Some(C::Reason), "comment") => field(F::ReasonComment),
        (Some(C::Identifiers), "header_from") => field(F::HeaderFrom),
        (Some(C::Identifiers), "envelope_from") => field(F::EnvelopeFrom),
        (Some(C::Identifiers), "envelope_to") => field(F::EnvelopeTo),
        (Some(C::AuthResults), "dkim") => container(C::Dkim),
        (Some(C::AuthResults), "spf") => container(C::Spf),
        (Some(C::Dkim), "domain") => field(F::DkimDomain),
        (Some(C::Dkim), "selector") => field(F::DkimSelector),
        (Some(C::Dkim), "result") => field(F::DkimResult),
        (Some(C::Dkim), "human_result") => field(F::DkimHumanResult),
        (Some(C::Spf), "domain") => field(F::SpfDomain),
        (Some(C::Spf), "scope") => field(F::SpfScope),
        (Some(C::Spf), "result") => field(F::SpfResult),
        (Some(C::Spf), "human_result") => field(F::SpfHumanResult),
        (_, "extensions") => Kind::Skipped,
        _ => Kind::Unknown,
    }
}

struct Frame {
    /// The qualified name as written, to match its end tag.
    name: String,
    kind: Kind,
}

/// A record while its elements arrive; checked when `</record>` closes it.
#[derive(Default)]
struct PartialRecord {
    source_ip: Option<String>,
    count: Option<String>,
    policy_evaluated: PolicyEvaluated,
    identifiers: Identifiers,
    auth_results: AuthResults,
}

struct Builder<'l> {
    limits: &'l Limits,
    stack: Vec<Frame>,
    /// Text of the field being read.
    text: String,
    seen_feedback: bool,
    namespace_2: bool,
    version: Option<String>,
    metadata: ReportMetadata,
    begin: Option<String>,
    end: Option<String>,
    saw_policy: bool,
    policy: PolicyPublished,
    record: Option<PartialRecord>,
    records: Vec<Record>,
    warnings: Warnings,
}

impl<'l> Builder<'l> {
    fn new(limits: &'l Limits) -> Self {
        Builder {
            limits,
            stack: Vec::new(),
            text: String::new(),
            seen_feedback: false,
            namespace_2: false,
            version: None,
            metadata: ReportMetadata::default(),
            begin: None,
            end: None,
            saw_policy: false,
            policy: PolicyPublished::default(),
            record: None,
            records: Vec::new(),
            warnings: Warnings::new(limits.max_warnings),
        }
    }

    fn warn(&mut self, warning: Warning) {
        self.warnings.push(warning);
    }

    /// The innermost known container, looking through unknown elements.
    fn context(&self) -> Option<Container> {
        self.stack.iter().rev().find_map(|frame| match frame.kind {
            Kind::Container(c) => Some(c),
            _ => None,
        })
    }

    fn start(&mut self, start: &BytesStart<'_>) -> Result<(), Rejection> {
        if self.stack.len() >= self.limits.max_xml_depth {
            return Err(Rejection::XmlTooDeep {
                limit: self.limits.max_xml_depth,
            });
        }
        let local = start.local_name();
        let local: &str = local.as_ref();
        let kind = match self.stack.last().map(|f| f.kind) {
            Some(Kind::Skipped) => Kind::Skipped,
            // Elements inside a text field are not part of the schema; their text is ignored.
            Some(Kind::Field(_)) => Kind::Skipped,
            _ => match classify(self.context(), local) {
                // A second <feedback> (or one nested in the first) is not read again.
                Kind::Container(Container::Feedback) if self.seen_feedback => Kind::Unknown,
                kind => kind,
            },
        };
        match kind {
            Kind::Container(Container::Feedback) => {
                self.seen_feedback = true;
                self.namespace_2 = start.attributes().flatten().any(|attribute| {
                    let key = attribute.key.as_ref();
                    (key == "xmlns" || key.starts_with("xmlns:"))
                        && attribute.value.trim() == DMARC_2_NAMESPACE
                });
            }
            Kind::Container(Container::Policy) => self.saw_policy = true,
            Kind::Container(Container::Record) => self.record = Some(PartialRecord::default()),
            Kind::Container(Container::Reason) => {
                if let Some(record) = &mut self.record {
                    record.policy_evaluated.reasons.push(PolicyOverrideReason {
                        kind: None,
                        comment: None,
                    });
                }
            }
            Kind::Container(Container::Dkim) => {
                if let Some(record) = &mut self.record {
                    record.auth_results.dkim.push(DkimAuthResult::default());
                }
            }
            Kind::Container(Container::Spf) => {
                if let Some(record) = &mut self.record {
                    record.auth_results.spf.push(SpfAuthResult::default());
                }
            }
            Kind::Field(_) => self.text.clear(),
            _ => {}
        }
        self.stack.push(Frame {
            name: start.name().as_ref().to_owned(),
            kind,
        });
        Ok(())
    }

    fn text(&mut self, text: &str) -> Result<(), Rejection> {
        match self.stack.last() {
            Some(Frame {
                kind: Kind::Field(_),
                name,
            }) => {
                if self.text.len() + text.len() > self.limits.max_field_bytes {
                    return Err(Rejection::FieldTooLong {
                        element: name.clone(),
                        limit: self.limits.max_field_bytes,
                    });
                }
                self.text.push_str(text);
            }
            Some(Frame {
                kind: Kind::Skipped,
                ..
            }) => {}
            _ => {
                if !text.trim().is_empty() {
                    self.warn(Warning::StrayText);
                }
            }
        }
        Ok(())
    }

    fn end(&mut self, name: &str) -> Result<(), Rejection> {
        // Close the innermost open element of this name and everything left open inside it;
        // an end tag matching nothing open is ignored.
        let Some(position) = self.stack.iter().rposition(|f| f.name == name) else {
            return Ok(());
        };
        while self.stack.len() > position {
            let frame = self.stack.pop().expect("stack is longer than position");
            self.close(frame.kind)?;
        }
        Ok(())
    }

    fn close(&mut self, kind: Kind) -> Result<(), Rejection> {
        match kind {
            Kind::Field(field) => {
                let text = std::mem::take(&mut self.text);
                self.set(field, text);
            }
            Kind::Container(Container::Record) => {
                if let Some(record) = self.record.take() {
                    if self.records.len() >= self.limits.max_records {
                        return Err(Rejection::TooManyRecords {
                            limit: self.limits.max_records,
                        });
                    }
                    let record = finish_record(record)?;
                    self.records.push(record);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads a closed-set value; an unknown value becomes `None` and a warning.
    fn value<T>(&mut self, element: &str, text: &str, parse: fn(&str) -> Option<T>) -> Option<T> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let value = parse(text);
        if value.is_none() {
            self.warn(Warning::UnknownValue {
                field: element.to_owned(),
                value: text.to_owned(),
            });
        }
        value
    }

    fn set(&mut self, field: Field, raw: String) {
        use Field as F;
        let text = raw.trim().to_owned();
        let optional = |text: String| (!text.is_empty()).then_some(text);
        match field {
            F::Version => self.version = optional(text),
            F::OrgName => self.metadata.org_name = text,
            F::Email => self.metadata.email = text,
            F::ExtraContactInfo => self.metadata.extra_contact_info = optional(text),
            F::ReportId => self.metadata.report_id = text,
            F::Error if text.is_empty() => {}
            F::Error if self.metadata.errors.len() >= self.limits.max_errors => {
                self.metadata.errors_omitted = self.metadata.errors_omitted.saturating_add(1);
            }
            F::Error => self.metadata.errors.push(text),
            F::Generator => self.metadata.generator = optional(text),
            F::Begin => self.begin = Some(text),
            F::End => self.end = Some(text),
            F::PolicyDomain => self.policy.domain = text,
            F::Adkim => self.policy.adkim = self.value("adkim", &text, Alignment::parse),
            F::Aspf => self.policy.aspf = self.value("aspf", &text, Alignment::parse),
            F::P => self.policy.p = self.value("p", &text, Policy::parse),
            F::Sp => self.policy.sp = self.value("sp", &text, Policy::parse),
            F::Np => self.policy.np = self.value("np", &text, Policy::parse),
            F::Pct => self.policy.pct = self.value("pct", &text, |t| t.parse().ok()),
            F::Fo => self.policy.fo = optional(text),
            F::Testing => self.policy.testing = self.value("testing", &text, parse_yes_no),
            F::DiscoveryMethod => {
                self.policy.discovery_method =
                    self.value("discovery_method", &text, DiscoveryMethod::parse)
            }
            _ => self.set_record_field(field, text),
        }
    }

    fn set_record_field(&mut self, field: Field, text: String) {
        use Field as F;
        let Some(mut record) = self.record.take() else {
            return;
        };
        let optional = |text: String| (!text.is_empty()).then_some(text);
        let evaluated = &mut record.policy_evaluated;
        match field {
            F::SourceIp => record.source_ip = Some(text),
            F::Count => record.count = Some(text),
            F::Disposition => {
                evaluated.disposition = self.value("disposition", &text, Disposition::parse)
            }
            F::EvaluatedDkim => evaluated.dkim = self.value("dkim", &text, DmarcResult::parse),
            F::EvaluatedSpf => evaluated.spf = self.value("spf", &text, DmarcResult::parse),
            F::ReasonType => {
                let kind = self.value("type", &text, PolicyOverride::parse);
                if let Some(reason) = evaluated.reasons.last_mut() {
                    reason.kind = kind;
                }
            }
            F::ReasonComment => {
                if let Some(reason) = evaluated.reasons.last_mut() {
                    reason.comment = optional(text);
                }
            }
            F::HeaderFrom => record.identifiers.header_from = text,
            F::EnvelopeFrom => record.identifiers.envelope_from = optional(text),
            F::EnvelopeTo => record.identifiers.envelope_to = optional(text),
            F::DkimDomain | F::DkimSelector | F::DkimResult | F::DkimHumanResult => {
                let result = match field {
                    F::DkimResult => self.value("dkim result", &text, DkimResult::parse),
                    _ => None,
                };
                if let Some(dkim) = record.auth_results.dkim.last_mut() {
                    match field {
                        F::DkimDomain => dkim.domain = text,
                        F::DkimSelector => dkim.selector = optional(text),
                        F::DkimResult => dkim.result = result,
                        _ => dkim.human_result = optional(text),
                    }
                }
            }
            F::SpfDomain | F::SpfScope | F::SpfResult | F::SpfHumanResult => {
                let scope = match field {
                    F::SpfScope => self.value("scope", &text, SpfScope::parse),
                    _ => None,
                };
                let result = match field {
                    F::SpfResult => self.value("spf result", &text, SpfResult::parse),
                    _ => None,
                };
                if let Some(spf) = record.auth_results.spf.last_mut() {
                    match field {
                        F::SpfDomain => spf.domain = text,
                        F::SpfScope => spf.scope = scope,
                        F::SpfResult => spf.result = result,
                        _ => spf.human_result = optional(text),
                    }
                }
            }
            _ => {}
        }
        self.record = Some(record);
    }

    fn finish(mut self) -> Result<AggregateReport, Rejection> {
        if !self.seen_feedback {
            return Err(Rejection::NotAggregateReport);
        }
        // Only unknown wrappers (an unclosed <xs:schema>) may stay open at the end.
        if let Some(open) = self.context() {
            return Err(Rejection::Truncated {
                element: open.element().to_owned(),
            });
        }
        if self.metadata.report_id.is_empty() {
            return Err(Rejection::MissingField { field: "report_id" });
        }
        if !self.saw_policy || self.policy.domain.is_empty() {
            return Err(Rejection::MissingField {
                field: "policy_published><domain",
            });
        }
        let begin = parse_timestamp("begin", self.begin.take())?;
        let end = parse_timestamp("end", self.end.take())?;
        self.metadata.date_range = DateRange { begin, end };
        if self.metadata.org_name.is_empty() {
            self.warn(Warning::EmptyOrgName);
        }
        let format = if self.namespace_2
            || self
                .version
                .as_deref()
                .is_some_and(|v| v.trim().starts_with('2'))
        {
            AggregateFormat::Rfc9990
        } else if self.version.is_some() {
            AggregateFormat::Rfc7489
        } else {
            AggregateFormat::Rfc7489Draft
        };
        let (warnings, warnings_omitted) = self.warnings.finish();
        Ok(AggregateReport {
            format,
            version: self.version,
            metadata: self.metadata,
            policy: self.policy,
            records: self.records,
            warnings,
            warnings_omitted,
        })
    }
}

fn parse_yes_no(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" | "1" => Some(true),
        "n" | "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

fn parse_timestamp(field: &'static str, text: Option<String>) -> Result<i64, Rejection> {
    let text = text.unwrap_or_default();
    if text.is_empty() {
        return Err(Rejection::MissingField { field });
    }
    // A few reporters write fractional seconds ("1669507200.0").
    text.parse::<i64>()
        .ok()
        .or_else(|| {
            text.parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && t.abs() < 1e15)
                .map(|t| t as i64)
        })
        .ok_or(Rejection::InvalidField {
            field,
            value: text,
            expected: "Unix timestamp",
        })
}

fn finish_record(record: PartialRecord) -> Result<Record, Rejection> {
    let ip_text = record
        .source_ip
        .filter(|t| !t.is_empty())
        .ok_or(Rejection::MissingField { field: "source_ip" })?;
    let source_ip = ip_text
        .parse::<IpAddr>()
        .map_err(|_| Rejection::InvalidField {
            field: "source_ip",
            value: ip_text.clone(),
            expected: "IP address",
        })?;
    let count_text = record
        .count
        .filter(|t| !t.is_empty())
        .ok_or(Rejection::MissingField { field: "count" })?;
    let count = count_text
        .parse::<u64>()
        .map_err(|_| Rejection::InvalidField {
            field: "count",
            value: count_text.clone(),
            expected: "message count",
        })?;
    Ok(Record {
        source_ip,
        count,
        policy_evaluated: record.policy_evaluated,
        identifiers: record.identifiers,
        auth_results: record.auth_results,
    })
}
