//! The typed DMARC aggregate report (RFC 7489 appendix C, its draft without `<version>`, and
//! RFC 9990) and the closed sets of values it uses.
//!
//! Values are read the way real reporters write them: any case, surrounding blanks, and the
//! old names some still use (`hardfail`, `softfail` for DKIM...). A value outside a set is
//! kept as `None` with a [`Warning`] that quotes it, never guessed.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Which schema the report follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggregateFormat {
    /// The pre-RFC draft schema: no `<version>` element.
    Rfc7489Draft,
    /// RFC 7489 appendix C, `<version>1.0</version>`.
    Rfc7489,
    /// RFC 9990 (DMARCbis): the `urn:ietf:params:xml:ns:dmarc-2.0` namespace or version 2.
    Rfc9990,
}

impl fmt::Display for AggregateFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AggregateFormat::Rfc7489Draft => "RFC 7489 draft (no version)",
            AggregateFormat::Rfc7489 => "RFC 7489",
            AggregateFormat::Rfc9990 => "RFC 9990 (DMARCbis)",
        })
    }
}

/// One aggregate report: who reported, about which domain and period, and what they saw.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AggregateReport {
    pub format: AggregateFormat,
    /// The `<version>` text as written, if any.
    pub version: Option<String>,
    pub metadata: ReportMetadata,
    pub policy: PolicyPublished,
    pub records: Vec<Record>,
    /// What the parser repaired or could not place; empty for a clean report. At most
    /// [`Limits::max_warnings`](crate::Limits), each once.
    pub warnings: Vec<Warning>,
    /// Further warnings left out of `warnings` once it was full.
    #[serde(default)]
    pub warnings_omitted: u64,
}

impl AggregateReport {
    /// The reporter's name for display and for the duplicate key: `org_name`, or the domain
    /// of `email` when a reporter leaves `org_name` empty.
    pub fn reporter(&self) -> &str {
        let org = self.metadata.org_name.trim();
        if !org.is_empty() {
            return org;
        }
        let email = self.metadata.email.trim();
        email.rsplit_once('@').map_or(email, |(_, domain)| domain)
    }

    /// Messages the report covers (the sum of the records' counts).
    pub fn message_count(&self) -> u64 {
        self.records.iter().map(|r| r.count).sum()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportMetadata {
    /// May be empty: some reporters leave it so (see [`AggregateReport::reporter`]).
    pub org_name: String,
    pub email: String,
    pub extra_contact_info: Option<String>,
    pub report_id: String,
    pub date_range: DateRange,
    /// The reporter's `<error>` texts, at most [`Limits::max_errors`](crate::Limits).
    pub errors: Vec<String>,
    /// Further `<error>` elements left out of `errors` once it was full.
    #[serde(default)]
    pub errors_omitted: u64,
    /// RFC 9990 `<generator>`.
    pub generator: Option<String>,
}

/// The period a report covers, in seconds since the Unix epoch (UTC), as the reporter wrote it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRange {
    pub begin: i64,
    pub end: i64,
}

/// The DMARC policy as the reporter found it published.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyPublished {
    pub domain: String,
    pub adkim: Option<Alignment>,
    pub aspf: Option<Alignment>,
    pub p: Option<Policy>,
    pub sp: Option<Policy>,
    /// RFC 9990 (and RFC 9091) policy for non-existent subdomains.
    pub np: Option<Policy>,
    /// RFC 7489 sampling rate (removed by RFC 9990).
    pub pct: Option<u8>,
    pub fo: Option<String>,
    /// RFC 9990 `t=` test mode.
    pub testing: Option<bool>,
    /// RFC 9990: how the reporter found the policy.
    pub discovery_method: Option<DiscoveryMethod>,
}

impl PolicyPublished {
    /// The policy as the tags of a DMARC record, in the record's usual order and only those
    /// the reporter gave: `p=reject; sp=none; adkim=r; aspf=r; pct=100`.
    pub fn tags(&self) -> String {
        let mut tags = Vec::new();
        let policy = |name: &str, value: Option<Policy>| value.map(|v| format!("{name}={v}"));
        let alignment = |name: &str, value: Option<Alignment>| value.map(|v| format!("{name}={v}"));
        tags.extend(policy("p", self.p));
        tags.extend(policy("sp", self.sp));
        tags.extend(policy("np", self.np));
        tags.extend(alignment("adkim", self.adkim));
        tags.extend(alignment("aspf", self.aspf));
        tags.extend(self.pct.map(|pct| format!("pct={pct}")));
        tags.extend(self.fo.as_deref().map(|fo| format!("fo={}", fo.trim())));
        tags.extend(
            self.testing
                .map(|t| format!("t={}", if t { "y" } else { "n" })),
        );
        tags.join("; ")
    }
}

/// One row of the report: messages from one source with one outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub source_ip: IpAddr,
    pub count: u64,
    pub policy_evaluated: PolicyEvaluated,
    pub identifiers: Identifiers,
    pub auth_results: AuthResults,
}

impl Record {
    /// DMARC passes when the aligned DKIM or SPF result passed.
    pub fn dmarc_pass(&self) -> bool {
        self.policy_evaluated.dkim == Some(DmarcResult::Pass)
            || self.policy_evaluated.spf == Some(DmarcResult::Pass)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyEvaluated {
    pub disposition: Option<Disposition>,
    pub dkim: Option<DmarcResult>,
    pub spf: Option<DmarcResult>,
    pub reasons: Vec<PolicyOverrideReason>,
}

/// Why the receiver applied another disposition than the policy asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyOverrideReason {
    /// `None` when the reporter left `<type>` empty or wrote an unknown value (see warnings).
    pub kind: Option<PolicyOverride>,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Identifiers {
    pub header_from: String,
    /// `None` when absent or empty (many reporters send `<envelope_from></envelope_from>`).
    pub envelope_from: Option<String>,
    pub envelope_to: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthResults {
    pub dkim: Vec<DkimAuthResult>,
    pub spf: Vec<SpfAuthResult>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DkimAuthResult {
    pub domain: String,
    pub selector: Option<String>,
    pub result: Option<DkimResult>,
    pub human_result: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SpfAuthResult {
    pub domain: String,
    pub scope: Option<SpfScope>,
    pub result: Option<SpfResult>,
    pub human_result: Option<String>,
}

/// Something the parser repaired or left out of the typed report, kept so nothing is lost
/// silently.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Warning {
    /// Bytes that were not UTF-8 were replaced by U+FFFD.
    InvalidUtf8Replaced,
    /// A value outside its closed set; the typed field is `None`.
    UnknownValue { field: String, value: String },
    /// An entity reference other than XML's five; kept as written.
    UnknownEntity { name: String },
    /// Text between elements where the schema has none; ignored.
    StrayText,
    /// `<org_name>` was empty.
    EmptyOrgName,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::InvalidUtf8Replaced => {
                f.write_str("bytes that were not UTF-8 were replaced by \u{FFFD}")
            }
            Warning::UnknownValue { field, value } => {
                write!(
                    f,
                    "<{field}> has the unknown value \"{value}\"; it is shown as unknown"
                )
            }
            Warning::UnknownEntity { name } => {
                write!(f, "the undefined entity &{name}; was kept as written")
            }
            Warning::StrayText => f.write_str("text between elements was ignored"),
            Warning::EmptyOrgName => {
                f.write_str("<org_name> is empty; the reporter is named by its email domain")
            }
        }
    }
}

closed_set! {
    /// The DMARC-aligned outcome of DKIM or SPF in `<policy_evaluated>`.
    DmarcResult { Pass => "pass", Fail => "fail" }
}

closed_set! {
    /// What the receiver did with the messages. `pass` is RFC 9990's.
    Disposition { None => "none", Pass => "pass", Quarantine => "quarantine", Reject => "reject" }
}

closed_set! {
    /// A requested policy (`p`, `sp`, `np`).
    Policy { None => "none", Quarantine => "quarantine", Reject => "reject" }
}

closed_set! {
    /// Identifier alignment mode.
    Alignment { Relaxed => "r" | "relaxed", Strict => "s" | "strict" }
}

closed_set! {
    /// RFC 9990 policy discovery.
    DiscoveryMethod { Psl => "psl", Treewalk => "treewalk" | "tree_walk" | "tree-walk" }
}

closed_set! {
    /// The DKIM result of one signature (RFC 8601 names).
    DkimResult {
        None => "none",
        Pass => "pass",
        Fail => "fail" | "hardfail" | "softfail",
        Policy => "policy",
        Neutral => "neutral",
        TempError => "temperror" | "temp_error" | "temp-error",
        PermError => "permerror" | "perm_error" | "perm-error",
    }
}

closed_set! {
    /// The SPF result of one identity (RFC 7208 names; `hardfail`, `unknown` and `error` are the
    /// old names some reporters still write).
    SpfResult {
        None => "none",
        Neutral => "neutral",
        Pass => "pass",
        Fail => "fail" | "hardfail",
        SoftFail => "softfail" | "soft_fail" | "soft-fail",
        TempError => "temperror" | "temp_error" | "temp-error" | "error",
        PermError => "permerror" | "perm_error" | "perm-error" | "unknown",
    }
}

closed_set! {
    /// Which identity SPF checked.
    SpfScope { Helo => "helo" | "ehlo", MailFrom => "mfrom" | "mailfrom" }
}

closed_set! {
    /// Why the disposition differs from the policy. `sampled_out` is RFC 7489's (pct), and
    /// `policy_test_mode` RFC 9990's (t=y).
    PolicyOverride {
        Forwarded => "forwarded",
        SampledOut => "sampled_out",
        TrustedForwarder => "trusted_forwarder",
        MailingList => "mailing_list",
        LocalPolicy => "local_policy",
        PolicyTestMode => "policy_test_mode",
        Other => "other",
    }
}
