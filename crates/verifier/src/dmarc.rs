//! DMARC (RFC 7489): the From domain, policy discovery, identifier alignment and the result.
//!
//! The From domain is the domain of the first address in the first `From` header field. RFC 7489
//! §6.6.1 leaves messages without a single usable author to the receiver; this verifier decides:
//! - no `From` field at all: result `none` (there is no author domain to look a policy up for),
//!   with the problem named;
//! - several `From` fields, several addresses in the field, or an address without a usable
//!   domain: result `permerror` (the message is malformed and cannot be evaluated), with the
//!   problem named.
//!
//! Policy discovery (§6.6.3) asks `_dmarc.<From domain>`, then `_dmarc.<organizational domain>`
//! when the first name has no DMARC record. An invalid record counts as no record, except that
//! one with a valid `rua` is treated as `p=none`, as §6.6.3 says. Several DMARC records at one
//! name also mean no policy.

use mail_parser::{Address, HeaderName, MessageParser};

use crate::dns::{Dns, LookupError};
use crate::domain::{aligned, normalize, organizational_domain};
use crate::report::{
    Alignment, AlignmentMode, DkimResult, DkimSignatureReport, DmarcRecord, DmarcReport,
    DmarcResult, SpfCheck, SpfResult,
};

/// The `From` header fields of a message, as DMARC needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FromField {
    /// How many `From` header fields the message has.
    pub field_count: usize,
    /// The addresses in the first `From` field, in order; an entry without an address
    /// (a bare display name) is an empty string.
    pub addresses: Vec<String>,
}

impl FromField {
    /// Reads the `From` header fields of `message` (the header block only).
    pub fn read(message: &[u8]) -> FromField {
        let Some(parsed) = MessageParser::new().parse_headers(message) else {
            return FromField {
                field_count: 0,
                addresses: Vec::new(),
            };
        };
        let from_fields: Vec<_> = parsed
            .headers()
            .iter()
            .filter(|header| header.name == HeaderName::From)
            .collect();
        let addresses = match from_fields.first().map(|header| header.value.as_address()) {
            Some(Some(Address::List(list))) => list
                .iter()
                .map(|addr| addr.address().unwrap_or("").to_string())
                .collect(),
            Some(Some(Address::Group(groups))) => groups
                .iter()
                .flat_map(|group| &group.addresses)
                .map(|addr| addr.address().unwrap_or("").to_string())
                .collect(),
            Some(None) | None => Vec::new(),
        };
        FromField {
            field_count: from_fields.len(),
            addresses,
        }
    }

    /// The first address of the first `From` field, if it has one.
    pub fn first_address(&self) -> Option<&str> {
        self.addresses
            .first()
            .map(String::as_str)
            .filter(|address| !address.is_empty())
    }

    /// The domain of the first address (normalized), if it is a usable domain name.
    pub fn first_domain(&self) -> Option<String> {
        let (_, domain) = self.first_address()?.rsplit_once('@')?;
        let domain = normalize(domain);
        is_domain_name(&domain).then_some(domain)
    }

    /// The From domain DMARC evaluates, or what stops the message from being evaluated.
    pub fn author_domain(&self) -> Result<String, FromProblem> {
        if self.field_count == 0 {
            return Err(FromProblem::Missing);
        }
        if self.field_count > 1 {
            return Err(FromProblem::Malformed(format!(
                "The message has {} From header fields; RFC 5322 allows exactly one.",
                self.field_count
            )));
        }
        if self.addresses.len() > 1 {
            return Err(FromProblem::Malformed(format!(
                "The From header field holds {} addresses; DMARC needs a single author.",
                self.addresses.len()
            )));
        }
        let Some(address) = self.first_address() else {
            return Err(FromProblem::Malformed(
                "The From header field holds no email address.".into(),
            ));
        };
        if !address.contains('@') {
            return Err(FromProblem::Malformed(format!(
                "The From address {address:?} has no domain."
            )));
        }
        self.first_domain().ok_or_else(|| {
            FromProblem::Malformed(format!(
                "The domain of the From address {address:?} is not a valid domain name."
            ))
        })
    }
}

/// Why a message's `From` field gives DMARC no author domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FromProblem {
    /// No `From` header field: result `none`.
    Missing,
    /// Several fields or addresses, or no usable domain (a sentence saying which): `permerror`.
    Malformed(String),
}

impl FromProblem {
    /// A sentence naming the problem.
    pub fn describe(&self) -> String {
        match self {
            FromProblem::Missing => "The message has no From header field.".into(),
            FromProblem::Malformed(problem) => problem.clone(),
        }
    }
}

/// A dotted name DNS can carry: labels of 1 to 63 bytes, 253 bytes in all, no spaces or brackets.
fn is_domain_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || !b.is_ascii())
        })
}

/// DMARC's verdict on one message, with the alignment of each authenticated identifier.
#[derive(Clone, Debug, PartialEq)]
pub struct DmarcEvaluation {
    pub report: DmarcReport,
    /// SPF passed for a domain aligned with the From domain.
    pub spf_aligned: bool,
    /// For each DKIM signature, in order: it passed and its `d=` aligns with the From domain.
    pub dkim_aligned: Vec<bool>,
}

/// The DMARC policy that applies to a message, found before its SPF and DKIM results are known
/// so that the lookups can run alongside them.
pub struct Policy {
    from: FromField,
    /// The From domain and what discovery found for it, or why there is no From domain.
    discovery: Result<(String, Discovery), FromProblem>,
}

/// Looks up the DMARC policy for the author domain of `from` (RFC 7489 §6.6.3), taking at most
/// `time_limit` for both lookups together (past it, the result is `temperror`). Asks no DNS
/// when the From field gives no usable domain.
pub async fn discover(dns: &Dns, from: FromField, time_limit: std::time::Duration) -> Policy {
    let discovery = match from.author_domain() {
        Ok(domain) => {
            let organizational = organizational_domain(&domain);
            let lookups = discover_policy(dns, &domain, &organizational);
            let found = tokio::time::timeout(time_limit, lookups)
                .await
                .unwrap_or_else(|_| {
                    Discovery::TemporaryFailure(format!(
                        "no answer from DNS within the DMARC time limit of {} ms",
                        time_limit.as_millis()
                    ))
                });
            Ok((domain, found))
        }
        Err(problem) => Err(problem),
    };
    Policy { from, discovery }
}

impl Policy {
    /// Evaluates DMARC given the SPF check that counts (MAIL FROM, or HELO for the null
    /// reverse-path) and the message's DKIM signatures.
    pub fn evaluate(self, spf: &SpfCheck, dkim: &[DkimSignatureReport]) -> DmarcEvaluation {
        match self.discovery {
            Ok((from_domain, discovery)) => evaluate_found(from_domain, discovery, spf, dkim),
            Err(problem) => unevaluable(&self.from, &problem, spf, dkim),
        }
    }
}

fn evaluate_found(
    from_domain: String,
    discovery: Discovery,
    spf: &SpfCheck,
    dkim: &[DkimSignatureReport],
) -> DmarcEvaluation {
    let organizational = organizational_domain(&from_domain);
    let record = match &discovery {
        Discovery::Found { record, .. } => Some(record.clone()),
        _ => None,
    };
    let (aspf, adkim) = record
        .as_ref()
        .map_or((AlignmentMode::Relaxed, AlignmentMode::Relaxed), |r| {
            (r.aspf, r.adkim)
        });

    let spf_alignment = spf_alignment(spf, Some(&from_domain), aspf);
    let dkim_aligned: Vec<bool> = dkim
        .iter()
        .map(|signature| dkim_signature_aligned(signature, &from_domain, adkim))
        .collect();
    let dkim_alignment = dkim_alignment(dkim, &dkim_aligned, adkim);

    let (result, policy, reason) = match discovery {
        Discovery::TemporaryFailure(error) => (
            DmarcResult::Temperror,
            "none".to_string(),
            format!(
                "The DMARC record could not be fetched ({error}); a receiver would defer the message and try again."
            ),
        ),
        Discovery::NoPolicy(why) => (
            DmarcResult::None,
            "none".to_string(),
            format!("{why} DMARC does not apply, so receivers use their own policy."),
        ),
        Discovery::Found { record, note } => {
            let note = note.map(|note| format!(" {note}")).unwrap_or_default();
            if spf_alignment.aligned || dkim_alignment.aligned {
                let how = passing_identifiers(&spf_alignment, &dkim_alignment);
                (
                    DmarcResult::Pass,
                    "none".to_string(),
                    format!("{how} with the From domain {from_domain}.{note}"),
                )
            } else {
                let applied = applied_policy(&record, &from_domain);
                let reason = fail_reason(&record, &applied, &from_domain, spf, dkim, adkim, aspf);
                (DmarcResult::Fail, applied, reason + &note)
            }
        }
    };

    DmarcEvaluation {
        spf_aligned: spf_alignment.aligned,
        dkim_aligned,
        report: DmarcReport {
            from_domain: Some(from_domain),
            organizational_domain: Some(organizational),
            problem: None,
            record,
            spf_alignment,
            dkim_alignment,
            result,
            policy,
            reason,
        },
    }
}

/// The evaluation of a message whose From field cannot be evaluated. Alignment is still
/// reported against the first address's domain when there is one, so the sender sees which
/// identifiers would have aligned; no DNS is asked.
fn unevaluable(
    from: &FromField,
    problem: &FromProblem,
    spf: &SpfCheck,
    dkim: &[DkimSignatureReport],
) -> DmarcEvaluation {
    let from_domain = from.first_domain();
    let mode = AlignmentMode::Relaxed;
    let spf_alignment = spf_alignment(spf, from_domain.as_deref(), mode);
    let dkim_aligned: Vec<bool> = dkim
        .iter()
        .map(|signature| {
            from_domain
                .as_deref()
                .is_some_and(|domain| dkim_signature_aligned(signature, domain, mode))
        })
        .collect();
    let dkim_alignment = dkim_alignment(dkim, &dkim_aligned, mode);
    let (result, consequence) = match problem {
        FromProblem::Missing => (
            DmarcResult::None,
            "There is no author domain whose policy could apply.",
        ),
        FromProblem::Malformed(_) => (
            DmarcResult::Permerror,
            "DMARC cannot evaluate a message without exactly one author domain (RFC 7489 §6.6.1); receivers often reject such messages.",
        ),
    };
    DmarcEvaluation {
        spf_aligned: spf_alignment.aligned,
        dkim_aligned,
        report: DmarcReport {
            organizational_domain: from_domain.as_deref().map(organizational_domain),
            from_domain,
            problem: Some(problem.describe()),
            record: None,
            spf_alignment,
            dkim_alignment,
            result,
            policy: "none".into(),
            reason: format!("{} {consequence}", problem.describe()),
        },
    }
}

fn dkim_signature_aligned(
    signature: &DkimSignatureReport,
    from_domain: &str,
    mode: AlignmentMode,
) -> bool {
    signature.result == DkimResult::Pass && aligned(&signature.domain, from_domain, mode)
}

/// SPF alignment: the check passed and its domain (MAIL FROM domain, or HELO name for the null
/// reverse-path) aligns with the From domain.
fn spf_alignment(spf: &SpfCheck, from_domain: Option<&str>, mode: AlignmentMode) -> Alignment {
    let spf_domain = (spf.checked && !spf.domain.is_empty()).then(|| normalize(&spf.domain));
    let is_aligned = spf.result == SpfResult::Pass
        && matches!((&spf_domain, from_domain), (Some(spf_domain), Some(from)) if aligned(spf_domain, from, mode));
    Alignment {
        mode,
        aligned: is_aligned,
        domain: spf_domain,
    }
}

/// DKIM alignment: the first aligned signature's `d=`, else the first passing one's, else none.
fn dkim_alignment(
    dkim: &[DkimSignatureReport],
    aligned_flags: &[bool],
    mode: AlignmentMode,
) -> Alignment {
    let first_aligned = dkim
        .iter()
        .zip(aligned_flags)
        .find(|(_, aligned)| **aligned)
        .map(|(signature, _)| signature);
    let shown = first_aligned.or_else(|| {
        dkim.iter()
            .find(|signature| signature.result == DkimResult::Pass)
    });
    Alignment {
        mode,
        aligned: first_aligned.is_some(),
        domain: shown.map(|signature| normalize(&signature.domain)),
    }
}

fn passing_identifiers(spf: &Alignment, dkim: &Alignment) -> String {
    let spf_part = spf
        .domain
        .as_deref()
        .filter(|_| spf.aligned)
        .map(|d| format!("SPF passed for {d}"));
    let dkim_part = dkim
        .domain
        .as_deref()
        .filter(|_| dkim.aligned)
        .map(|d| format!("a DKIM signature by {d} passed"));
    match (spf_part, dkim_part) {
        (Some(spf), Some(dkim)) => format!("{spf} and {dkim}, both aligned"),
        (Some(one), None) | (None, Some(one)) => format!("{one}, aligned"),
        (None, None) => "An identifier passed, aligned".into(),
    }
}

/// The policy a receiver applies to a failing message: `sp` for a subdomain whose policy came
/// from the organizational domain, `p` otherwise.
fn applied_policy(record: &DmarcRecord, from_domain: &str) -> String {
    let own_record = record.name == format!("_dmarc.{from_domain}");
    match (&record.sp, own_record) {
        (Some(sp), false) => sp.clone(),
        _ => record.p.clone(),
    }
}

fn fail_reason(
    record: &DmarcRecord,
    applied: &str,
    from_domain: &str,
    spf: &SpfCheck,
    dkim: &[DkimSignatureReport],
    adkim: AlignmentMode,
    aspf: AlignmentMode,
) -> String {
    let spf_part = if spf.result != SpfResult::Pass {
        format!("SPF did not pass ({})", spf.result.as_str())
    } else {
        format!(
            "SPF passed for {} but it does not align ({} alignment)",
            normalize(&spf.domain),
            mode_name(aspf)
        )
    };
    let passing: Vec<&str> = dkim
        .iter()
        .filter(|s| s.result == DkimResult::Pass)
        .map(|s| s.domain.as_str())
        .collect();
    let dkim_part = if dkim.is_empty() {
        "the message has no DKIM signature".to_string()
    } else if passing.is_empty() {
        "no DKIM signature passed".to_string()
    } else {
        format!(
            "DKIM passed only for {} ({} alignment)",
            passing.join(", "),
            mode_name(adkim)
        )
    };
    let mut reason = format!(
        "Neither SPF nor DKIM authenticated a domain aligned with the From domain {from_domain}: {spf_part}, and {dkim_part}. \
         The policy at {} asks receivers to apply {applied}.",
        record.name
    );
    if record.pct < 100 && applied != "none" {
        let milder = if applied == "reject" {
            "quarantine"
        } else {
            "none"
        };
        reason.push_str(&format!(
            " With pct={}, that applies to {}% of failing messages; the rest get {milder}.",
            record.pct, record.pct
        ));
    }
    reason
}

fn mode_name(mode: AlignmentMode) -> &'static str {
    match mode {
        AlignmentMode::Relaxed => "relaxed",
        AlignmentMode::Strict => "strict",
    }
}

/// What policy discovery found.
enum Discovery {
    Found {
        record: DmarcRecord,
        /// Something the sender should know about the record (e.g. `p` was invalid).
        note: Option<String>,
    },
    /// No policy applies; the sentence says why.
    NoPolicy(String),
    TemporaryFailure(String),
}

/// What one name held.
enum Lookup {
    Record(DmarcRecord, Option<String>),
    /// No DMARC record there (other TXT records are ignored).
    Absent,
    /// A sentence saying why the record(s) there give no policy.
    Unusable(String),
    TemporaryFailure(String),
}

async fn discover_policy(dns: &Dns, from_domain: &str, organizational: &str) -> Discovery {
    let mut names = vec![format!("_dmarc.{from_domain}")];
    if organizational != from_domain {
        names.push(format!("_dmarc.{organizational}"));
    }
    for name in &names {
        match lookup(dns, name).await {
            Lookup::Record(record, note) => return Discovery::Found { record, note },
            Lookup::Absent => continue,
            Lookup::Unusable(why) => return Discovery::NoPolicy(why),
            Lookup::TemporaryFailure(error) => return Discovery::TemporaryFailure(error),
        }
    }
    Discovery::NoPolicy(format!(
        "No DMARC record was found at {}.",
        names.join(" or ")
    ))
}

async fn lookup(dns: &Dns, name: &str) -> Lookup {
    let texts = match dns.txt(name).await {
        Ok(texts) => texts,
        Err(error @ LookupError::Temporary(..)) => {
            return Lookup::TemporaryFailure(error.to_string());
        }
        Err(LookupError::InvalidName(_)) => {
            return Lookup::Unusable(format!("{name} is not a name DNS can look up."));
        }
        Err(_) => return Lookup::Absent,
    };
    let records: Vec<String> = texts
        .iter()
        .map(|text| String::from_utf8_lossy(text).into_owned())
        .filter(|text| is_dmarc_record(text))
        .collect();
    match records.as_slice() {
        [] => Lookup::Absent,
        [text] => match parse_record(name, text) {
            Ok(record) => Lookup::Record(record, None),
            Err(RecordError {
                problem,
                reporting_record: Some(record),
            }) => Lookup::Record(
                *record,
                Some(format!(
                    "The record at {name} is not valid ({problem}); because it names a report address, receivers treat it as p=none."
                )),
            ),
            Err(RecordError {
                problem,
                reporting_record: None,
            }) => Lookup::Unusable(format!(
                "The DMARC record at {name} is not valid ({problem})."
            )),
        },
        several => Lookup::Unusable(format!(
            "{name} has {} DMARC records; there must be exactly one (RFC 7489 §6.6.3).",
            several.len()
        )),
    }
}

/// A TXT record is a DMARC record when its first tag is `v=DMARC1`.
fn is_dmarc_record(text: &str) -> bool {
    let first = text.split(';').next().unwrap_or("");
    match first.split_once('=') {
        Some((name, value)) => name.trim() == "v" && value.trim() == "DMARC1",
        None => false,
    }
}

/// Why a DMARC record is not valid.
#[derive(Debug)]
struct RecordError {
    problem: String,
    /// RFC 7489 §6.6.3: a record without a valid `p` but with a valid `rua` acts as `p=none`.
    reporting_record: Option<Box<DmarcRecord>>,
}

/// Parses a DMARC record found at `name` (RFC 7489 §6.3). Unknown tags are ignored, and invalid
/// values of optional tags fall back to their defaults, as §6.3 asks; `p` (and `sp` when
/// present) must be valid.
fn parse_record(name: &str, text: &str) -> Result<DmarcRecord, RecordError> {
    let mut record = DmarcRecord {
        name: name.to_string(),
        text: text.to_string(),
        p: String::new(),
        sp: None,
        adkim: AlignmentMode::Relaxed,
        aspf: AlignmentMode::Relaxed,
        pct: 100,
        rua: Vec::new(),
    };
    let mut problem = None;
    for tag in text.split(';').skip(1) {
        let Some((tag_name, value)) = tag.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match tag_name.trim().to_ascii_lowercase().as_str() {
            "p" => match policy(value) {
                Some(p) => record.p = p,
                None => problem = Some(format!("p={value} is not none, quarantine or reject")),
            },
            "sp" => match policy(value) {
                Some(sp) => record.sp = Some(sp),
                None => problem = Some(format!("sp={value} is not none, quarantine or reject")),
            },
            "adkim" => record.adkim = alignment_mode(value),
            "aspf" => record.aspf = alignment_mode(value),
            "pct" => {
                record.pct = value
                    .parse::<u8>()
                    .ok()
                    .filter(|pct| *pct <= 100)
                    .unwrap_or(100)
            }
            "rua" => {
                record.rua = value
                    .split(',')
                    .map(str::trim)
                    .filter(|uri| !uri.is_empty())
                    .map(String::from)
                    .collect();
            }
            _ => {}
        }
    }
    if record.p.is_empty() && problem.is_none() {
        problem = Some("it has no p= tag".into());
    }
    match problem {
        None => Ok(record),
        Some(problem) => {
            let reports_somewhere = record.rua.iter().any(|uri| is_valid_report_uri(uri));
            let reporting_record = reports_somewhere.then(|| {
                Box::new(DmarcRecord {
                    p: "none".into(),
                    sp: None,
                    ..record
                })
            });
            Err(RecordError {
                problem,
                reporting_record,
            })
        }
    }
}

fn policy(value: &str) -> Option<String> {
    let value = value.to_ascii_lowercase();
    matches!(value.as_str(), "none" | "quarantine" | "reject").then_some(value)
}

fn alignment_mode(value: &str) -> AlignmentMode {
    if value.eq_ignore_ascii_case("s") {
        AlignmentMode::Strict
    } else {
        AlignmentMode::Relaxed
    }
}

/// A `rua` URI a receiver could send reports to: `mailto:` with an address (an optional `!size`
/// suffix aside).
fn is_valid_report_uri(uri: &str) -> bool {
    let address = uri.split('!').next().unwrap_or("");
    address
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("mailto:"))
        .then(|| &address[7..])
        .is_some_and(|mailbox| {
            mailbox
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_of(header: &str) -> FromField {
        FromField::read(format!("{header}To: a@b.test\r\nSubject: hi\r\n\r\nbody\r\n").as_bytes())
    }

    #[test]
    fn the_from_domain_is_the_first_address_domain_normalized() {
        let from = from_of("From: \"Alice\" <alice@Mail.Example.TEST>\r\n");
        assert_eq!(from.author_domain(), Ok("mail.example.test".to_string()));
    }

    #[test]
    fn from_problems_are_named() {
        assert_eq!(from_of("").author_domain(), Err(FromProblem::Missing));
        let several_fields =
            from_of("From: a@example.test\r\nFrom: b@example.test\r\n").author_domain();
        assert!(
            matches!(several_fields, Err(FromProblem::Malformed(p)) if p.contains("2 From header fields"))
        );
        let several_addresses = from_of("From: a@example.test, b@example.org\r\n").author_domain();
        assert!(
            matches!(several_addresses, Err(FromProblem::Malformed(p)) if p.contains("2 addresses"))
        );
        let no_domain = from_of("From: alice\r\n").author_domain();
        assert!(
            matches!(no_domain, Err(FromProblem::Malformed(_))),
            "{no_domain:?}"
        );
        let literal = from_of("From: alice@[192.0.2.1]\r\n").author_domain();
        assert!(
            matches!(literal, Err(FromProblem::Malformed(p)) if p.contains("not a valid domain name"))
        );
    }

    #[test]
    fn records_are_parsed_with_defaults_for_optional_tags() {
        let record = parse_record(
            "_dmarc.example.test",
            "v=DMARC1; p=Reject; sp=quarantine; adkim=s; aspf=x; pct=50; rua=mailto:a@example.test, mailto:b@example.test",
        )
        .unwrap();
        assert_eq!(record.p, "reject");
        assert_eq!(record.sp.as_deref(), Some("quarantine"));
        assert_eq!(record.adkim, AlignmentMode::Strict);
        assert_eq!(record.aspf, AlignmentMode::Relaxed);
        assert_eq!(record.pct, 50);
        assert_eq!(
            record.rua,
            ["mailto:a@example.test", "mailto:b@example.test"]
        );
        assert_eq!(
            parse_record("n", "v=DMARC1; p=none; pct=500").unwrap().pct,
            100
        );
    }

    #[test]
    fn a_record_without_a_valid_policy_is_invalid_unless_it_reports() {
        let error = parse_record("n", "v=DMARC1; p=block").unwrap_err();
        assert!(error.problem.contains("p=block"));
        assert!(error.reporting_record.is_none());
        let error = parse_record("n", "v=DMARC1; rua=mailto:dmarc@example.test").unwrap_err();
        assert_eq!(
            error.reporting_record.map(|r| r.p),
            Some("none".to_string())
        );
    }

    #[test]
    fn only_records_starting_with_the_version_tag_count() {
        assert!(is_dmarc_record("v=DMARC1; p=none"));
        assert!(is_dmarc_record("v = DMARC1"));
        assert!(!is_dmarc_record("p=none; v=DMARC1"));
        assert!(!is_dmarc_record("v=spf1 -all"));
    }

    #[test]
    fn subdomains_get_sp_only_from_the_organizational_record() {
        let record = parse_record("_dmarc.example.test", "v=DMARC1; p=reject; sp=none").unwrap();
        assert_eq!(applied_policy(&record, "mail.example.test"), "none");
        assert_eq!(applied_policy(&record, "example.test"), "reject");
    }
}
