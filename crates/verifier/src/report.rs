//! The report: everything the verifier found about one message, as one serializable value.
//!
//! Other programs read the JSON form, so field names are snake_case and these paths are stable:
//! `verdicts.spf`, `verdicts.dkim`, `spf.result`, `spf.domain`, `spf.aligned`, `dkim[i].result`,
//! `dkim[i].reason`, `dkim[i].domain`, `dkim[i].selector`, `dkim[i].aligned`, `dmarc.result`.
//! Fields may be added; none of these is renamed or removed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::verdict::Verdict;

/// The most DKIM signatures a report details; a message carries one to three. Those past it
/// are only counted ([`Report::dkim_not_listed`]).
pub const MAX_LISTED_SIGNATURES: usize = 50;
/// The most SPF trace steps a report details, nested steps included; the ten-lookup limit
/// keeps real evaluations far below it. Those past it are counted ([`SpfCheck::trace_not_listed`]).
pub const MAX_LISTED_TRACE_STEPS: usize = 200;
/// The most `h=` names a signature's report lists ([`DkimSignatureReport::signed_headers_not_listed`]).
pub const MAX_LISTED_SIGNED_HEADERS: usize = 200;

/// The whole verification of one message.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The two tester verdicts, e.g. `|OK| spf-pass` and `!! dkim-none !!`.
    pub verdicts: Verdicts,
    /// SPF for the MAIL FROM identity (or HELO for the null reverse-path), with the HELO check inside.
    pub spf: SpfReport,
    /// One entry per `DKIM-Signature` header field, in header order, malformed ones included,
    /// up to [`MAX_LISTED_SIGNATURES`].
    pub dkim: Vec<DkimSignatureReport>,
    /// How many more `DKIM-Signature` fields the message carries: not verified, not listed.
    #[serde(default)]
    pub dkim_not_listed: u32,
    pub dmarc: DmarcReport,
    pub arc: ArcReport,
    /// The full `Authentication-Results:` header field (name included), RFC 8601.
    pub authentication_results: String,
    /// Why the message got its verdicts, in words, most serious first; it never changes them.
    /// Absent from reports stored before diagnosis existed.
    #[serde(default)]
    pub diagnosis: Vec<crate::diagnosis::Finding>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Verdicts {
    pub spf: Verdict,
    pub dkim: Verdict,
}

/// RFC 7208 §2.6 results.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum SpfResult {
    Pass,
    Fail,
    Softfail,
    Neutral,
    None,
    Permerror,
    Temperror,
}

impl SpfResult {
    pub fn as_str(self) -> &'static str {
        match self {
            SpfResult::Pass => "pass",
            SpfResult::Fail => "fail",
            SpfResult::Softfail => "softfail",
            SpfResult::Neutral => "neutral",
            SpfResult::None => "none",
            SpfResult::Permerror => "permerror",
            SpfResult::Temperror => "temperror",
        }
    }
}

/// Which identity an SPF check authorises (RFC 7208 §2.3, §2.4).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SpfIdentityKind {
    Mailfrom,
    Helo,
}

impl fmt::Display for SpfIdentityKind {
    /// The SMTP command that gave the identity: `MAIL FROM` or `HELO`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpfIdentityKind::Mailfrom => "MAIL FROM",
            SpfIdentityKind::Helo => "HELO",
        })
    }
}

/// The SPF report: the check that counts (MAIL FROM, or HELO for the null reverse-path),
/// plus the separate check of the HELO identity.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SpfReport {
    #[serde(flatten)]
    pub check: SpfCheck,
    /// Whether the SPF domain aligns with the From domain and the result is `pass` (DMARC).
    pub aligned: bool,
    /// The separate check of the HELO identity (absent when not checked, e.g. no client IP).
    pub helo: Option<SpfCheck>,
}

/// One SPF evaluation of one identity.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SpfCheck {
    /// False when the check could not run (no client IP known); `reason` says why.
    pub checked: bool,
    pub identity_kind: SpfIdentityKind,
    /// The identity checked: `user@domain` for MAIL FROM, `postmaster@helo` for HELO.
    pub identity: String,
    /// The domain whose SPF record was evaluated.
    pub domain: String,
    pub result: SpfResult,
    /// A sentence a person can read: why this result (what matched, or what went wrong).
    pub reason: String,
    /// The `exp=` explanation text, when the result is `fail` and the record has one.
    pub explanation: Option<String>,
    /// The SPF record text(s) found at `domain` (more than one is itself a permerror).
    pub records: Vec<String>,
    /// Each term evaluated, in order, nested through `include:` and `redirect=`, up to
    /// [`MAX_LISTED_TRACE_STEPS`] steps in all.
    pub trace: Vec<SpfTraceStep>,
    /// How many more trace steps the evaluation took, not listed.
    #[serde(default)]
    pub trace_not_listed: u32,
    /// DNS-querying terms evaluated, against the limit of 10 (RFC 7208 §4.6.4).
    pub dns_lookups: u32,
    pub dns_lookup_limit: u32,
    /// Lookups that found nothing (NXDOMAIN or no records), against the limit of 2.
    pub void_lookups: u32,
    pub void_lookup_limit: u32,
    /// The term that decided the result, as written (e.g. `-all`, `include:_spf.example.com`).
    pub decided_by: Option<String>,
}

/// One step of SPF evaluation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SpfTraceStep {
    /// The domain whose record holds the term.
    pub domain: String,
    /// The term as written in the record, e.g. `ip4:192.0.2.0/24`, `redirect=_spf.example.com`.
    pub term: String,
    pub outcome: SpfTermOutcome,
    /// What the term looked up and what it found, or why it failed.
    pub detail: String,
    /// For `include:` and `redirect=`: the evaluation of the other domain's record.
    pub nested: Vec<SpfTraceStep>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SpfTermOutcome {
    /// The mechanism matched: its qualifier gives the result.
    Match,
    /// The mechanism did not match; evaluation went on.
    NoMatch,
    /// The term caused an error that ended evaluation.
    Error,
    /// A modifier that was applied (`redirect=`, `exp=`).
    Applied,
    /// A term that was not evaluated or has no effect (unknown modifier).
    Ignored,
}

impl fmt::Display for SpfTermOutcome {
    /// As a person reads it: `match`, `no match`, `error`, `applied`, `ignored`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpfTermOutcome::Match => "match",
            SpfTermOutcome::NoMatch => "no match",
            SpfTermOutcome::Error => "error",
            SpfTermOutcome::Applied => "applied",
            SpfTermOutcome::Ignored => "ignored",
        })
    }
}

/// DKIM result for one signature (RFC 8601 terms, narrowed to what the tester shows).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum DkimResult {
    Pass,
    /// The body hash or the signature does not verify.
    Fail,
    /// The signature cannot be processed (RFC 6376 §6.1 checks, key problems, policy).
    Invalid,
    /// A transient DNS failure fetching the key.
    Temperror,
}

impl DkimResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimResult::Pass => "pass",
            DkimResult::Fail => "fail",
            DkimResult::Invalid => "invalid",
            DkimResult::Temperror => "temperror",
        }
    }
}

/// Why a signature got its result; `reason` on the report is the sentence, this the code.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DkimReasonCode {
    Verified,
    BodyHashMismatch,
    SignatureMismatch,
    KeyNotFound,
    KeyRevoked,
    KeyMalformed,
    SignatureExpired,
    Sha1Rejected,
    KeyTooShort,
    /// An RSA key over 8,192 bits: refused rather than spend the CPU on it.
    KeyTooLong,
    MissingTag,
    MalformedSignature,
    UnsupportedVersion,
    UnsupportedAlgorithm,
    UnsupportedCanonicalization,
    IdentityNotInDomain,
    FromNotSigned,
    KeyAlgorithmMismatch,
    DnsFailure,
    /// Not verified: the message carries more signatures than the verifier checks.
    TooManySignatures,
}

/// One `DKIM-Signature` header field and what became of it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DkimSignatureReport {
    /// `d=` (empty when missing).
    pub domain: String,
    /// `s=` (empty when missing).
    pub selector: String,
    /// `a=`, e.g. `rsa-sha256`, `ed25519-sha256`.
    pub algorithm: String,
    /// `c=` as written, `simple/simple` when absent.
    pub canonicalization: String,
    /// `i=` when present.
    pub identity: Option<String>,
    /// `h=`: the signed header field names, in order, up to [`MAX_LISTED_SIGNED_HEADERS`].
    pub signed_headers: Vec<String>,
    /// How many more names `h=` holds, not listed.
    #[serde(default)]
    pub signed_headers_not_listed: u32,
    /// `l=` when present: a body length limit lets anyone append content.
    pub body_length: Option<u64>,
    /// `t=` and `x=` when present (seconds since the epoch).
    pub timestamp: Option<u64>,
    pub expiration: Option<u64>,
    /// Key type from the key record (`rsa`, `ed25519`) once fetched.
    pub key_type: Option<String>,
    /// RSA modulus size or 256 for ed25519, once the key is parsed.
    pub key_bits: Option<u32>,
    pub result: DkimResult,
    /// A sentence a person can read: why this result.
    pub reason: String,
    pub reason_code: DkimReasonCode,
    /// Passes and `d=` aligns with the From domain.
    pub aligned: bool,
    /// Things that do not change the result but a sender should fix (e.g. `l=`).
    pub warnings: Vec<String>,
    /// The raw header field value, for the detail page.
    pub header_value: String,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DmarcResult {
    Pass,
    Fail,
    None,
    Temperror,
    Permerror,
}

impl DmarcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::None => "none",
            DmarcResult::Temperror => "temperror",
            DmarcResult::Permerror => "permerror",
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AlignmentMode {
    Relaxed,
    Strict,
}

impl AlignmentMode {
    /// The mode as DMARC records write it (`adkim=`, `aspf=`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlignmentMode::Relaxed => "relaxed",
            AlignmentMode::Strict => "strict",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Alignment {
    pub mode: AlignmentMode,
    pub aligned: bool,
    /// The authenticated domain that aligned (or the SPF domain checked), if any.
    pub domain: Option<String>,
}

/// The DMARC record that applied, as parsed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DmarcRecord {
    /// Where it was found, e.g. `_dmarc.example.com`.
    pub name: String,
    pub text: String,
    pub p: String,
    pub sp: Option<String>,
    /// `np=`: the policy for non-existent subdomains (RFC 9989).
    #[serde(default)]
    pub np: Option<String>,
    pub adkim: AlignmentMode,
    pub aspf: AlignmentMode,
    /// `pct=` as written (100 when absent). RFC 9989 removed the tag: it no longer changes the
    /// result; `removed_tags` names it when the record uses it.
    pub pct: u8,
    pub rua: Vec<String>,
    /// `psd=`: whether the domain is a public suffix domain (RFC 9989).
    #[serde(default)]
    pub psd: Psd,
    /// `t=y`: the domain owner is testing its policy (RFC 9989).
    #[serde(default)]
    pub testing: bool,
    /// Tags RFC 9989 removed that the record still uses (`pct`, `rf`, `ri`), as written.
    #[serde(default)]
    pub removed_tags: Vec<String>,
}

/// The `psd=` tag of a DMARC record (RFC 9989).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Psd {
    /// `psd=y`: a public suffix domain; the organizational domain is the name one label below.
    Y,
    /// `psd=n`: this domain is an organizational domain.
    N,
    /// `psd=u` or no tag: the tree walk decides.
    #[default]
    U,
}

impl Psd {
    pub fn as_str(self) -> &'static str {
        match self {
            Psd::Y => "y",
            Psd::N => "n",
            Psd::U => "u",
        }
    }
}

/// Which tag of the record gave the policy applied to a failing message.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyTag {
    /// The record is the author domain's own.
    P,
    /// The author domain is a subdomain of the record's domain.
    Sp,
    /// The author domain is a subdomain that does not exist (no A, AAAA or MX).
    Np,
}

impl PolicyTag {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyTag::P => "p",
            PolicyTag::Sp => "sp",
            PolicyTag::Np => "np",
        }
    }
}

/// One `_dmarc` query made to find the policy or an organizational domain (RFC 9989 §4.10).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DmarcQuery {
    /// The name asked, e.g. `_dmarc.example.com`.
    pub name: String,
    /// Which walk asked first, e.g. `policy for example.com`, `organizational domain of d=...`.
    pub purpose: String,
    pub answer: DmarcAnswer,
    /// The record text, how many records were discarded, or the DNS error.
    pub detail: String,
}

/// What one `_dmarc` name answered.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DmarcAnswer {
    /// Exactly one DMARC record.
    Record,
    /// No DMARC record (no such name, no TXT, or no TXT starting with `v=DMARC1`).
    NoRecord,
    /// More than one DMARC record: all are discarded (RFC 9989 §4.10 step 2).
    SeveralRecords,
    /// A DNS failure.
    Error,
}

impl DmarcAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcAnswer::Record => "record",
            DmarcAnswer::NoRecord => "no record",
            DmarcAnswer::SeveralRecords => "several records (discarded)",
            DmarcAnswer::Error => "DNS error",
        }
    }
}

/// Which identifier a domain is.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierRole {
    /// The RFC 5322 From domain (author domain).
    From,
    /// The SPF domain: the MAIL FROM domain, or the HELO name for the null reverse-path.
    Spf,
    /// A DKIM signature's `d=`.
    Dkim,
}

impl IdentifierRole {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierRole::From => "From",
            IdentifierRole::Spf => "SPF (MAIL FROM)",
            IdentifierRole::Dkim => "DKIM d=",
        }
    }
}

/// The organizational domain of one identifier, by RFC 9989 and by RFC 7489.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OrganizationalDomain {
    pub role: IdentifierRole,
    pub domain: String,
    /// Found by the DNS tree walk (RFC 9989 §4.10.2); absent when a DNS failure stopped it.
    pub organizational_domain: Option<String>,
    /// A sentence saying how the walk decided.
    pub how: String,
    /// From the Public Suffix List, as a receiver following RFC 7489 §3.2 would find it.
    pub rfc7489_organizational_domain: String,
}

/// What a receiver following RFC 7489 (Public Suffix List, `pct`) would decide.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Rfc7489Outcome {
    pub result: DmarcResult,
    pub policy: String,
    /// The record such a receiver applies, e.g. `_dmarc.example.com`.
    pub record_name: Option<String>,
    pub spf_aligned: bool,
    pub dkim_aligned: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DmarcReport {
    /// The domain of the first address in the first From field, if there is one.
    pub from_domain: Option<String>,
    pub organizational_domain: Option<String>,
    /// What is wrong with the From field, if anything (none, several fields, several addresses).
    pub problem: Option<String>,
    pub record: Option<DmarcRecord>,
    pub spf_alignment: Alignment,
    pub dkim_alignment: Alignment,
    pub result: DmarcResult,
    /// The policy a receiver would apply: `none`, `quarantine` or `reject`.
    pub policy: String,
    /// A sentence a person can read: why this result.
    pub reason: String,
    /// Which tag of the record gave `policy` (absent when no record applies).
    #[serde(default)]
    pub policy_tag: Option<PolicyTag>,
    /// Whether the author domain exists (has A, AAAA or MX records); asked only when the
    /// record applied has `np=` and is not the author domain's own.
    #[serde(default)]
    pub author_domain_exists: Option<bool>,
    /// Every `_dmarc` name queried, in order, and what it answered.
    #[serde(default)]
    pub queries: Vec<DmarcQuery>,
    /// The queries of the tree walk from the From domain, against `walk_query_limit`.
    #[serde(default)]
    pub walk_queries: u32,
    #[serde(default)]
    pub walk_query_limit: u32,
    /// The organizational domain of the From domain, the SPF domain and each DKIM `d=`.
    #[serde(default)]
    pub organizational_domains: Vec<OrganizationalDomain>,
    /// Things about the record a sender should know (removed tags, testing mode).
    #[serde(default)]
    pub notes: Vec<String>,
    /// What a receiver following RFC 7489 would decide (absent without an author domain).
    #[serde(default)]
    pub rfc7489: Option<Rfc7489Outcome>,
    /// Sentences naming each place where an RFC 7489 receiver decides differently.
    #[serde(default)]
    pub rfc7489_differences: Vec<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArcResult {
    None,
    Pass,
    Fail,
}

impl ArcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            ArcResult::None => "none",
            ArcResult::Pass => "pass",
            ArcResult::Fail => "fail",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArcReport {
    pub result: ArcResult,
    /// How many ARC sets (instances) the message carries.
    pub sets: u32,
    pub reason: String,
}
