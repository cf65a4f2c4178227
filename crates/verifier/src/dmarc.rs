//! DMARC (RFC 9989): the From domain, policy discovery and organizational domains by the DNS
//! tree walk, identifier alignment and the result; and where a receiver that still follows
//! RFC 7489 (Public Suffix List, `pct`) would decide differently.
//!
//! The From domain is the domain of the first address in the first `From` header field. RFC 9989
//! leaves messages without a single usable author to the receiver; this verifier decides:
//! - no `From` field at all: result `none` (there is no author domain to look a policy up for),
//!   with the problem named;
//! - several `From` fields, several addresses in the field, or an address without a usable
//!   domain: result `permerror` (the message is malformed and cannot be evaluated), with the
//!   problem named.
//!
//! Policy discovery walks `_dmarc.<From domain>` and its parents (RFC 9989 §4.10, §4.10.1) and
//! takes the first DMARC record found. A name with several DMARC records counts as having none
//! and the walk goes on (§4.10 step 2). A record without a valid `p` counts as `p=none` when it
//! names a valid `rua`, and gives no policy otherwise. The same walk, continued to its end or to
//! a `psd=y`/`psd=n` record, gives the organizational domain of the From domain (§4.10.2); the
//! SPF domain and each passing DKIM `d=` get their own walk. Every `_dmarc` name is asked once
//! per message, and every query is listed in the report.
//!
//! Non-existent author domains (for `np=`): RFC 9989 calls a domain non-existent when A, AAAA
//! and MX queries all answer NXDOMAIN or no records. Those three queries are made only when
//! they can matter: the record that applies has `np=` and belongs to a parent of the author
//! domain. A DNS failure on any of them counts as "exists" (`sp`/`p` apply), with a note.
//!
//! A DNS failure that keeps an organizational domain unknown gives `temperror` only when it
//! could change the result: a passing identifier, not aligned, compared by relaxed alignment.
//! Without one (nothing passed, or alignment is strict) the result is decided without it.
//!
//! `t=y` (testing): RFC 9989 asks receivers not to apply the policy as written; it replaces
//! `pct=0`, for which RFC 7489 receivers apply the next milder policy. This verifier shows that
//! milder disposition (`reject` becomes `quarantine`, `quarantine` becomes `none`).

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use mail_parser::{Address, HeaderName, MessageParser};

use crate::dns::{Dns, LookupError};
use crate::domain::{
    OrganizationalRule, WALK_QUERY_LIMIT, aligned, normalize, organizational_domain_from_walk,
    psl_aligned, psl_organizational_domain, tree_walk_names, walk_stops_at,
};
use crate::report::{
    Alignment, AlignmentMode, DkimResult, DkimSignatureReport, DmarcAnswer, DmarcQuery,
    DmarcRecord, DmarcReport, DmarcResult, IdentifierRole, OrganizationalDomain, PolicyTag, Psd,
    Rfc7489Outcome, SpfCheck, SpfResult,
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
        // Every other field is skipped unparsed: Received, Date and the rest cost more to
        // parse than From itself, on every message.
        static FROM_ONLY: LazyLock<MessageParser> = LazyLock::new(|| {
            MessageParser::new()
                .header_address(HeaderName::From)
                .default_header_ignore()
        });
        let Some(parsed) = FROM_ONLY.parse_headers(message) else {
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
    discovery: Result<Found, FromProblem>,
    queries: Queries,
    /// What remains of the DMARC time limit for the walks of [`Policy::evaluate`].
    time_left: Duration,
}

/// What the walk from the author domain found.
struct Found {
    from_domain: String,
    walk: Walk,
    discovery: Discovery,
    /// Whether the author domain exists, when that was asked (for `np=`).
    exists: Option<bool>,
    /// Why existence is unknown, when a DNS failure kept it so.
    exists_note: Option<String>,
}

/// Looks up the DMARC policy for the author domain of `from` by the DNS tree walk (RFC 9989
/// §4.10.1). All DMARC queries of the message, here and in [`Policy::evaluate`], take at most
/// `time_limit` together (past it, what is not known is `temperror`). Asks no DNS when the
/// From field gives no usable domain.
pub async fn discover(dns: &Dns, from: FromField, time_limit: Duration) -> Policy {
    let started = std::time::Instant::now();
    let mut queries = Queries::default();
    let discovery = match from.author_domain() {
        Ok(from_domain) => {
            let purpose = format!("policy and organizational domain of {from_domain}");
            let found = tokio::time::timeout(time_limit, async {
                let walk = walk(dns, &mut queries, &from_domain, &purpose).await;
                let discovery = walk.policy();
                let (exists, exists_note) = match &discovery {
                    Discovery::Found { record, .. }
                        if record.np.is_some() && !is_own_record(record, &from_domain) =>
                    {
                        author_domain_exists(dns, &from_domain).await
                    }
                    _ => (None, None),
                };
                (walk, discovery, exists, exists_note)
            })
            .await;
            let (walk, discovery, exists, exists_note) = found.unwrap_or_else(|_| {
                (
                    Walk::default(),
                    Discovery::TemporaryFailure(format!(
                        "no answer from DNS within the DMARC time limit of {} ms",
                        time_limit.as_millis()
                    )),
                    None,
                    None,
                )
            });
            Ok(Found {
                from_domain,
                walk,
                discovery,
                exists,
                exists_note,
            })
        }
        Err(problem) => Err(problem),
    };
    Policy {
        from,
        discovery,
        queries,
        time_left: time_limit.saturating_sub(started.elapsed()),
    }
}

impl Policy {
    /// Evaluates DMARC given the SPF check that counts (MAIL FROM, or HELO for the null
    /// reverse-path) and the message's DKIM signatures. Walks the DNS tree for the
    /// organizational domain of each passing identifier (RFC 9989 §4.10.2) and for the RFC 7489
    /// comparison, within what remains of the DMARC time limit.
    pub async fn evaluate(
        mut self,
        dns: &Dns,
        spf: &SpfCheck,
        dkim: &[DkimSignatureReport],
    ) -> DmarcEvaluation {
        match self.discovery {
            Ok(found) => {
                let mut evaluation =
                    evaluate_found(dns, &mut self.queries, found, spf, dkim, self.time_left).await;
                evaluation.report.queries = self.queries.log;
                evaluation
            }
            Err(problem) => unevaluable(&self.from, &problem, spf, dkim),
        }
    }
}

/// An identifier DMARC compares with the From domain, and its organizational domains.
struct Identifier {
    role: IdentifierRole,
    domain: String,
    passed: bool,
    /// By the tree walk; `None` when not looked up or a DNS failure stopped the walk.
    organizational: Option<String>,
    how: String,
    /// A DNS failure (or the time limit) kept the organizational domain unknown.
    unknown: bool,
}

async fn evaluate_found(
    dns: &Dns,
    queries: &mut Queries,
    found: Found,
    spf: &SpfCheck,
    dkim: &[DkimSignatureReport],
    time_limit: Duration,
) -> DmarcEvaluation {
    let Found {
        from_domain,
        walk: from_walk,
        discovery,
        exists,
        exists_note,
    } = found;
    let from_organizational = from_walk.organizational(&from_domain);
    let record = match &discovery {
        Discovery::Found { record, .. } => Some(record.clone()),
        _ => None,
    };
    let (aspf, adkim) = record
        .as_ref()
        .map_or((AlignmentMode::Relaxed, AlignmentMode::Relaxed), |r| {
            (r.aspf, r.adkim)
        });

    let spf_domain = (spf.checked && !spf.domain.is_empty()).then(|| normalize(&spf.domain));
    let mut identifiers: Vec<Identifier> = Vec::new();
    if let Some(domain) = &spf_domain {
        identifiers.push(Identifier::new(
            IdentifierRole::Spf,
            domain,
            spf.result == SpfResult::Pass,
        ));
    }
    for signature in dkim {
        identifiers.push(Identifier::new(
            IdentifierRole::Dkim,
            &normalize(&signature.domain),
            signature.result == DkimResult::Pass,
        ));
    }

    // RFC 9989 §4.10.2: a walk from each passing identifier; the RFC 7489 comparison asks at
    // most two more names. All within the time limit; past it, what is unknown stays unknown.
    let from_org_ref = from_organizational.as_ref().map(|(org, _)| org.as_str());
    let comparison = tokio::time::timeout(time_limit, async {
        for identifier in identifiers.iter_mut() {
            identifier
                .find_organizational(dns, queries, &from_domain, from_org_ref)
                .await;
        }
        rfc7489_discovery(dns, queries, &from_domain).await
    })
    .await;
    let rfc7489_discovery = comparison.ok();
    for identifier in identifiers.iter_mut() {
        if identifier.passed && identifier.how.is_empty() {
            identifier.unknown = true;
            identifier.how = "The DMARC time limit ran out before the tree walk finished.".into();
        }
    }

    let is_aligned = |identifier: &Identifier, mode: AlignmentMode| {
        identifier.passed
            && aligned(
                &identifier.domain,
                identifier.organizational.as_deref(),
                &from_domain,
                from_org_ref,
                mode,
            )
    };
    let spf_identifier = spf_domain.as_ref().map(|_| &identifiers[0]);
    let dkim_identifiers = &identifiers[usize::from(spf_domain.is_some())..];
    let spf_alignment = Alignment {
        mode: aspf,
        aligned: spf_identifier.is_some_and(|identifier| is_aligned(identifier, aspf)),
        domain: spf_domain.clone(),
    };
    let dkim_aligned: Vec<bool> = dkim_identifiers
        .iter()
        .map(|identifier| is_aligned(identifier, adkim))
        .collect();
    let dkim_alignment = dkim_alignment(dkim, &dkim_aligned, adkim);
    // Only a relaxed comparison that a DNS failure left open could still have aligned. An
    // identifier that did not pass never aligns, and strict alignment compares the names
    // themselves: neither depends on an organizational domain, so the failure cannot change
    // the result and DMARC fails rather than asking the sender to try again.
    let undecided = identifiers.iter().any(|identifier| {
        let mode = match identifier.role {
            IdentifierRole::Spf => aspf,
            IdentifierRole::Dkim | IdentifierRole::From => adkim,
        };
        identifier.passed
            && mode == AlignmentMode::Relaxed
            && (from_organizational.is_none() || identifier.unknown)
    });

    let mut notes = Vec::new();
    notes.extend(from_walk.discarded_notes());
    if let Some(note) = &exists_note {
        notes.push(note.clone());
    }
    let (result, policy, policy_tag, reason) = match discovery {
        Discovery::TemporaryFailure(error) => (
            DmarcResult::Temperror,
            "none".to_string(),
            None,
            format!(
                "The DMARC record could not be fetched ({error}); a receiver would defer the message and try again."
            ),
        ),
        Discovery::NoPolicy(why) => (
            DmarcResult::None,
            "none".to_string(),
            None,
            format!("{why} DMARC does not apply, so receivers use their own policy."),
        ),
        Discovery::Found { record, note } => {
            notes.extend(record_notes(&record));
            let note = note.map(|note| format!(" {note}")).unwrap_or_default();
            let tag = policy_tag(&record, &from_domain, exists);
            if spf_alignment.aligned || dkim_alignment.aligned {
                let how = passing_identifiers(&spf_alignment, &dkim_alignment);
                (
                    DmarcResult::Pass,
                    "none".to_string(),
                    Some(tag),
                    format!("{how} with the From domain {from_domain}.{note}"),
                )
            } else if undecided {
                (
                    DmarcResult::Temperror,
                    "none".to_string(),
                    Some(tag),
                    format!(
                        "No identifier aligned with the From domain {from_domain}, but a DNS failure kept an organizational domain unknown, so relaxed alignment could not be decided; a receiver would try again.{note}"
                    ),
                )
            } else {
                if from_organizational.is_none() || identifiers.iter().any(|i| i.unknown) {
                    notes.push(
                        "A DNS failure kept an organizational domain unknown; it does not change the result: no SPF or DKIM identifier passed, or those that did are compared by strict alignment, which needs no organizational domain.".into(),
                    );
                }
                let requested = requested_policy(&record, tag);
                let applied = disposition(&record, tag);
                let reason = fail_reason(
                    &record,
                    tag,
                    &requested,
                    &applied,
                    &from_domain,
                    spf,
                    dkim,
                    adkim,
                    aspf,
                );
                (DmarcResult::Fail, applied, Some(tag), reason + &note)
            }
        }
    };

    let mut organizational_domains = vec![OrganizationalDomain {
        role: IdentifierRole::From,
        domain: from_domain.clone(),
        organizational_domain: from_org_ref.map(String::from),
        how: match &from_organizational {
            Some((org, rule)) => rule.describe(&from_domain, org),
            None => "A DNS failure stopped the tree walk, so the organizational domain is unknown."
                .into(),
        },
        rfc7489_organizational_domain: psl_organizational_domain(&from_domain),
    }];
    organizational_domains.extend(identifiers.iter().map(|identifier| OrganizationalDomain {
        role: identifier.role,
        domain: identifier.domain.clone(),
        organizational_domain: identifier.organizational.clone(),
        how: identifier.how.clone(),
        rfc7489_organizational_domain: psl_organizational_domain(&identifier.domain),
    }));

    let mut report = DmarcReport {
        from_domain: Some(from_domain.clone()),
        organizational_domain: from_org_ref.map(String::from),
        problem: None,
        record,
        spf_alignment,
        dkim_alignment,
        result,
        policy,
        reason,
        policy_tag,
        author_domain_exists: exists,
        queries: Vec::new(),
        walk_queries: from_walk.steps.len() as u32,
        walk_query_limit: WALK_QUERY_LIMIT as u32,
        organizational_domains,
        notes,
        rfc7489: None,
        rfc7489_differences: Vec::new(),
    };
    if let Some(old) = rfc7489_discovery {
        let outcome = rfc7489_outcome(&old, &from_domain, spf_identifier, dkim_identifiers);
        report.rfc7489_differences =
            rfc7489_differences(&report, &outcome, &old, spf_identifier, dkim_identifiers);
        report.rfc7489 = Some(outcome);
    }

    DmarcEvaluation {
        spf_aligned: report.spf_alignment.aligned,
        dkim_aligned,
        report,
    }
}

impl Identifier {
    fn new(role: IdentifierRole, domain: &str, passed: bool) -> Identifier {
        Identifier {
            role,
            domain: domain.to_string(),
            passed,
            organizational: None,
            how: String::new(),
            unknown: false,
        }
    }

    /// Finds the organizational domain by the tree walk (RFC 9989 §4.10.2). Only a passing
    /// identifier's alignment counts, so only passing identifiers are walked: that keeps the
    /// queries a stranger can cause to the domains that authenticated.
    async fn find_organizational(
        &mut self,
        dns: &Dns,
        queries: &mut Queries,
        from_domain: &str,
        from_organizational: Option<&str>,
    ) {
        if self.domain == from_domain {
            self.organizational = from_organizational.map(String::from);
            self.how = "The same name as the From domain.".into();
            return;
        }
        if !self.passed {
            self.how =
                "Not looked up: the identifier did not pass, so its alignment does not count."
                    .into();
            return;
        }
        if !is_domain_name(&self.domain) {
            self.how = "Not a domain name DNS can look up.".into();
            return;
        }
        let purpose = format!("organizational domain of {}", self.domain);
        let walk = walk(dns, queries, &self.domain, &purpose).await;
        match walk.organizational(&self.domain) {
            Some((org, rule)) => {
                self.how = rule.describe(&self.domain, &org);
                self.organizational = Some(org);
            }
            None => {
                self.unknown = true;
                self.how = format!(
                    "A DNS failure stopped the tree walk ({}), so the organizational domain is unknown.",
                    walk.failure.unwrap_or_default()
                );
            }
        }
    }
}

/// The evaluation of a message whose From field cannot be evaluated. Alignment is still
/// reported against the first address's domain when there is one (same name, or same Public
/// Suffix List organizational domain, since no DNS is asked), so the sender sees which
/// identifiers would have aligned.
fn unevaluable(
    from: &FromField,
    problem: &FromProblem,
    spf: &SpfCheck,
    dkim: &[DkimSignatureReport],
) -> DmarcEvaluation {
    let from_domain = from.first_domain();
    let mode = AlignmentMode::Relaxed;
    let spf_domain = (spf.checked && !spf.domain.is_empty()).then(|| normalize(&spf.domain));
    let spf_aligned = spf.result == SpfResult::Pass
        && matches!((&spf_domain, &from_domain), (Some(s), Some(f)) if psl_aligned(s, f, mode));
    let spf_alignment = Alignment {
        mode,
        aligned: spf_aligned,
        domain: spf_domain,
    };
    let dkim_aligned: Vec<bool> = dkim
        .iter()
        .map(|signature| {
            signature.result == DkimResult::Pass
                && from_domain
                    .as_deref()
                    .is_some_and(|domain| psl_aligned(&signature.domain, domain, mode))
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
            "DMARC cannot evaluate a message without exactly one author domain; receivers often reject such messages.",
        ),
    };
    DmarcEvaluation {
        spf_aligned: spf_alignment.aligned,
        dkim_aligned,
        report: DmarcReport {
            organizational_domain: None,
            from_domain,
            problem: Some(problem.describe()),
            record: None,
            spf_alignment,
            dkim_alignment,
            result,
            policy: "none".into(),
            reason: format!("{} {consequence}", problem.describe()),
            policy_tag: None,
            author_domain_exists: None,
            queries: Vec::new(),
            walk_queries: 0,
            walk_query_limit: WALK_QUERY_LIMIT as u32,
            organizational_domains: Vec::new(),
            notes: Vec::new(),
            rfc7489: None,
            rfc7489_differences: Vec::new(),
        },
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

/// Whether `record` was published at the author domain itself.
fn is_own_record(record: &DmarcRecord, from_domain: &str) -> bool {
    record.name == format!("_dmarc.{from_domain}")
}

/// Which tag gives the policy for a failing message (RFC 9989 §4.7 `p`, `sp`, `np`): `p` for
/// the author domain's own record; for a record found at a parent, `np` when the author domain
/// does not exist and the record has one, else `sp` when present, else `p`.
fn policy_tag(record: &DmarcRecord, from_domain: &str, exists: Option<bool>) -> PolicyTag {
    if is_own_record(record, from_domain) {
        PolicyTag::P
    } else if exists == Some(false) && record.np.is_some() {
        PolicyTag::Np
    } else if record.sp.is_some() {
        PolicyTag::Sp
    } else {
        PolicyTag::P
    }
}

/// The policy the record asks for with `tag`.
pub(crate) fn requested_policy(record: &DmarcRecord, tag: PolicyTag) -> String {
    match tag {
        PolicyTag::P => record.p.clone(),
        PolicyTag::Sp => record.sp.clone().unwrap_or_else(|| record.p.clone()),
        PolicyTag::Np => record.np.clone().unwrap_or_else(|| record.p.clone()),
    }
}

/// The disposition of a failing message: the requested policy, one step milder under `t=y`.
fn disposition(record: &DmarcRecord, tag: PolicyTag) -> String {
    let requested = requested_policy(record, tag);
    if record.testing {
        milder(&requested).to_string()
    } else {
        requested
    }
}

fn milder(policy: &str) -> &'static str {
    match policy {
        "reject" => "quarantine",
        _ => "none",
    }
}

/// Notes about a record: tags RFC 9989 removed, and testing mode.
fn record_notes(record: &DmarcRecord) -> Vec<String> {
    let mut notes = Vec::new();
    if !record.removed_tags.is_empty() {
        notes.push(format!(
            "The record at {} uses {}, which RFC 9989 removed; receivers that follow it ignore them (t=y replaces pct for testing).",
            record.name,
            record.removed_tags.join(", ")
        ));
    }
    if record.testing {
        notes.push(format!(
            "The record at {} says t=y: the domain owner is testing, so receivers apply a milder policy than it names.",
            record.name
        ));
    }
    notes
}

#[allow(clippy::too_many_arguments)]
fn fail_reason(
    record: &DmarcRecord,
    tag: PolicyTag,
    requested: &str,
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
    let why_tag = match tag {
        PolicyTag::P if is_own_record(record, from_domain) => String::new(),
        PolicyTag::P => format!(" (p=, for {from_domain} is a subdomain and there is no sp=)"),
        PolicyTag::Sp => format!(" (sp=, for the subdomain {from_domain})"),
        PolicyTag::Np => format!(" (np=, for {from_domain} does not exist: no A, AAAA or MX)"),
    };
    let mut reason = format!(
        "Neither SPF nor DKIM authenticated a domain aligned with the From domain {from_domain}: {spf_part}, and {dkim_part}. \
         The policy at {} asks receivers to apply {requested}{why_tag}.",
        record.name
    );
    if applied != requested {
        reason.push_str(&format!(
            " With t=y (testing) receivers apply {applied} instead."
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

/// What one `_dmarc` name held.
#[derive(Clone)]
enum Answer {
    /// Exactly one DMARC record, parsed (possibly with a problem).
    Record(ParsedRecord),
    /// No DMARC record there (other TXT records are ignored).
    Absent,
    /// This many DMARC records: all discarded.
    Several(usize),
    /// A DNS failure.
    Failed(String),
}

/// Every `_dmarc` name asked for one message, each asked once, in the order asked.
#[derive(Default)]
struct Queries {
    answers: HashMap<String, Answer>,
    log: Vec<DmarcQuery>,
}

impl Queries {
    /// The answer at `_dmarc.<domain>`, asking DNS the first time.
    async fn ask(&mut self, dns: &Dns, domain: &str, purpose: &str) -> Answer {
        if let Some(answer) = self.answers.get(domain) {
            return answer.clone();
        }
        let name = format!("_dmarc.{domain}");
        let answer = lookup(dns, &name).await;
        let (kind, detail) = match &answer {
            Answer::Record(parsed) => (DmarcAnswer::Record, parsed.record.text.clone()),
            Answer::Absent => (DmarcAnswer::NoRecord, String::new()),
            Answer::Several(count) => (
                DmarcAnswer::SeveralRecords,
                format!("{count} DMARC records; all are discarded"),
            ),
            Answer::Failed(error) => (DmarcAnswer::Error, error.clone()),
        };
        self.log.push(DmarcQuery {
            name,
            purpose: purpose.to_string(),
            answer: kind,
            detail,
        });
        self.answers.insert(domain.to_string(), answer.clone());
        answer
    }
}

/// One DNS tree walk: the names asked and their answers, in order.
#[derive(Default)]
struct Walk {
    steps: Vec<(String, Answer)>,
    /// The DNS failure that stopped the walk, if one did.
    failure: Option<String>,
}

/// Walks from `domain` towards the root (RFC 9989 §4.10 steps 1 to 8): asks each name of
/// [`tree_walk_names`] in turn and stops at a record with `psd=y` or `psd=n`, or at a DNS
/// failure (whose meaning the caller decides).
async fn walk(dns: &Dns, queries: &mut Queries, domain: &str, purpose: &str) -> Walk {
    let mut walk = Walk::default();
    for name in tree_walk_names(domain) {
        let answer = queries.ask(dns, &name, purpose).await;
        let stop = match &answer {
            Answer::Record(parsed) => walk_stops_at(parsed.record.psd),
            Answer::Failed(error) => {
                walk.failure = Some(error.clone());
                true
            }
            Answer::Absent | Answer::Several(_) => false,
        };
        walk.steps.push((name, answer));
        if stop {
            break;
        }
    }
    walk
}

impl Walk {
    /// The policy for the walk's first name (RFC 9989 §4.10.1): the first DMARC record on the
    /// walk. A DNS failure before it is a temporary failure.
    fn policy(&self) -> Discovery {
        for (name, answer) in &self.steps {
            match answer {
                Answer::Record(parsed) => return parsed.policy(&format!("_dmarc.{name}")),
                Answer::Failed(error) => return Discovery::TemporaryFailure(error.clone()),
                Answer::Absent | Answer::Several(_) => {}
            }
        }
        let asked: Vec<String> = self
            .steps
            .iter()
            .map(|(name, _)| format!("_dmarc.{name}"))
            .collect();
        let discarded: Vec<String> = self
            .steps
            .iter()
            .filter_map(|(name, answer)| match answer {
                Answer::Several(count) => Some(format!(
                    "_dmarc.{name} has {count} DMARC records, which are discarded"
                )),
                _ => None,
            })
            .collect();
        let discarded = if discarded.is_empty() {
            String::new()
        } else {
            format!(" ({})", discarded.join("; "))
        };
        Discovery::NoPolicy(format!(
            "No DMARC record was found at {}{discarded}.",
            asked.join(", ")
        ))
    }

    /// The organizational domain of `domain` (RFC 9989 §4.10.2), unless a DNS failure stopped
    /// the walk before it could be decided.
    fn organizational(&self, domain: &str) -> Option<(String, OrganizationalRule)> {
        if self.failure.is_some() {
            return None;
        }
        let found: Vec<(String, Psd)> = self
            .steps
            .iter()
            .filter_map(|(name, answer)| match answer {
                Answer::Record(parsed) => Some((name.clone(), parsed.record.psd)),
                _ => None,
            })
            .collect();
        Some(organizational_domain_from_walk(domain, &found))
    }

    /// A note for each name whose several DMARC records were discarded.
    fn discarded_notes(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter_map(|(name, answer)| match answer {
                Answer::Several(count) => Some(format!(
                    "_dmarc.{name} has {count} DMARC records; there must be exactly one, so all {count} are discarded and the walk goes on (RFC 9989 §4.10 step 2)."
                )),
                _ => None,
            })
            .collect()
    }
}

/// Whether the author domain exists for `np=` (RFC 9989 §3.2: non-existent means A, AAAA and
/// MX all answer NXDOMAIN or no records), with a note when a DNS failure leaves it unknown.
async fn author_domain_exists(dns: &Dns, domain: &str) -> (Option<bool>, Option<String>) {
    let (a, aaaa, mx) = tokio::join!(dns.a(domain), dns.aaaa(domain), dns.mx(domain));
    let results = [a.map(|_| ()), aaaa.map(|_| ()), mx.map(|_| ())];
    if results.iter().any(Result::is_ok) {
        return (Some(true), None);
    }
    if results
        .iter()
        .all(|result| result.as_ref().is_err_and(LookupError::is_void))
    {
        return (Some(false), None);
    }
    let error = results
        .iter()
        .find_map(|result| result.as_ref().err().filter(|e| !e.is_void()))
        .map(ToString::to_string)
        .unwrap_or_default();
    (
        None,
        Some(format!(
            "Whether {domain} exists could not be checked ({error}), so np= is not applied."
        )),
    )
}

async fn lookup(dns: &Dns, name: &str) -> Answer {
    let texts = match dns.txt(name).await {
        Ok(texts) => texts,
        Err(error @ LookupError::Temporary(..)) => return Answer::Failed(error.to_string()),
        Err(_) => return Answer::Absent,
    };
    let records: Vec<String> = texts
        .iter()
        .map(|text| String::from_utf8_lossy(text).into_owned())
        .filter(|text| is_dmarc_record(text))
        .collect();
    match records.as_slice() {
        [] => Answer::Absent,
        [text] => Answer::Record(parse_record(name, text)),
        several => Answer::Several(several.len()),
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

/// A DMARC record as parsed, with what makes it invalid as a policy, if anything.
#[derive(Clone, Debug)]
struct ParsedRecord {
    record: DmarcRecord,
    /// No valid `p`, or an invalid `sp`/`np`.
    problem: Option<String>,
}

impl ParsedRecord {
    /// The policy this record gives: itself when valid; `p=none` when invalid but naming a
    /// valid report address; no policy otherwise (RFC 9989 §4.7, as RFC 7489 §6.6.3 did).
    fn policy(&self, name: &str) -> Discovery {
        let Some(problem) = &self.problem else {
            return Discovery::Found {
                record: self.record.clone(),
                note: None,
            };
        };
        if self.record.rua.iter().any(|uri| is_valid_report_uri(uri)) {
            Discovery::Found {
                record: DmarcRecord {
                    p: "none".into(),
                    sp: None,
                    np: None,
                    ..self.record.clone()
                },
                note: Some(format!(
                    "The record at {name} is not valid ({problem}); because it names a report address, receivers treat it as p=none."
                )),
            }
        } else {
            Discovery::NoPolicy(format!(
                "The DMARC record at {name} is not valid ({problem})."
            ))
        }
    }
}

/// Parses a DMARC record found at `name` (RFC 9989 §4.7). The record starts with `v=DMARC1`;
/// the other tags may come in any order. Unknown tags are ignored, and invalid values of
/// optional tags fall back to their defaults; `p` (and `sp`, `np` when present) must be valid.
/// `pct`, `rf` and `ri`, which RFC 9989 removed, are parsed only to be shown as removed.
fn parse_record(name: &str, text: &str) -> ParsedRecord {
    let mut record = DmarcRecord {
        name: name.to_string(),
        text: text.to_string(),
        p: String::new(),
        sp: None,
        np: None,
        adkim: AlignmentMode::Relaxed,
        aspf: AlignmentMode::Relaxed,
        pct: 100,
        rua: Vec::new(),
        psd: Psd::U,
        testing: false,
        removed_tags: Vec::new(),
    };
    let mut problem = None;
    for tag in text.split(';').skip(1) {
        let Some((tag_name, value)) = tag.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let tag_name = tag_name.trim().to_ascii_lowercase();
        match tag_name.as_str() {
            "p" => match policy(value) {
                Some(p) => record.p = p,
                None => problem = Some(format!("p={value} is not none, quarantine or reject")),
            },
            "sp" => match policy(value) {
                Some(sp) => record.sp = Some(sp),
                None => problem = Some(format!("sp={value} is not none, quarantine or reject")),
            },
            "np" => match policy(value) {
                Some(np) => record.np = Some(np),
                None => problem = Some(format!("np={value} is not none, quarantine or reject")),
            },
            "adkim" => record.adkim = alignment_mode(value),
            "aspf" => record.aspf = alignment_mode(value),
            "psd" => {
                record.psd = match value.to_ascii_lowercase().as_str() {
                    "y" => Psd::Y,
                    "n" => Psd::N,
                    _ => Psd::U,
                }
            }
            "t" => record.testing = value.eq_ignore_ascii_case("y"),
            "pct" | "rf" | "ri" => {
                if tag_name == "pct" {
                    record.pct = value
                        .parse::<u8>()
                        .ok()
                        .filter(|pct| *pct <= 100)
                        .unwrap_or(100);
                }
                record.removed_tags.push(format!("{tag_name}={value}"));
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
    ParsedRecord { record, problem }
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

/// What a receiver following RFC 7489 §6.6.3 finds: `_dmarc.<From domain>`, then
/// `_dmarc.<Public Suffix List organizational domain>`; several records at a name end
/// discovery with no policy.
struct Rfc7489Discovery {
    discovery: Discovery,
    psl_organizational: String,
}

async fn rfc7489_discovery(
    dns: &Dns,
    queries: &mut Queries,
    from_domain: &str,
) -> Rfc7489Discovery {
    let psl_organizational = psl_organizational_domain(from_domain);
    let mut names = vec![from_domain.to_string()];
    if psl_organizational != from_domain {
        names.push(psl_organizational.clone());
    }
    let purpose = "comparison with RFC 7489 (Public Suffix List)";
    for domain in &names {
        let name = format!("_dmarc.{domain}");
        let discovery = match queries.ask(dns, domain, purpose).await {
            Answer::Record(parsed) => parsed.policy(&name),
            Answer::Absent => continue,
            Answer::Several(count) => Discovery::NoPolicy(format!(
                "{name} has {count} DMARC records and RFC 7489 stops there."
            )),
            Answer::Failed(error) => Discovery::TemporaryFailure(error),
        };
        return Rfc7489Discovery {
            discovery,
            psl_organizational,
        };
    }
    Rfc7489Discovery {
        discovery: Discovery::NoPolicy(String::new()),
        psl_organizational,
    }
}

/// The RFC 7489 result: Public Suffix List alignment, `sp` for any subdomain of the record's
/// domain, `pct` applied (as the policy a failing message gets most of the time).
fn rfc7489_outcome(
    old: &Rfc7489Discovery,
    from_domain: &str,
    spf: Option<&Identifier>,
    dkim: &[Identifier],
) -> Rfc7489Outcome {
    let record = match &old.discovery {
        Discovery::Found { record, .. } => Some(record),
        _ => None,
    };
    let (aspf, adkim) = record.map_or((AlignmentMode::Relaxed, AlignmentMode::Relaxed), |r| {
        (r.aspf, r.adkim)
    });
    let old_aligned = |identifier: &Identifier, mode| {
        identifier.passed && psl_aligned(&identifier.domain, from_domain, mode)
    };
    let spf_aligned = spf.is_some_and(|identifier| old_aligned(identifier, aspf));
    let dkim_aligned = dkim.iter().any(|identifier| old_aligned(identifier, adkim));
    let (result, policy) = match (&old.discovery, record) {
        (Discovery::TemporaryFailure(_), _) => (DmarcResult::Temperror, "none".to_string()),
        (_, None) => (DmarcResult::None, "none".to_string()),
        (_, Some(_)) if spf_aligned || dkim_aligned => (DmarcResult::Pass, "none".to_string()),
        (_, Some(record)) => {
            let policy = match (&record.sp, is_own_record(record, from_domain)) {
                (Some(sp), false) => sp.clone(),
                _ => record.p.clone(),
            };
            (DmarcResult::Fail, policy)
        }
    };
    Rfc7489Outcome {
        result,
        policy,
        record_name: record.map(|record| record.name.clone()),
        spf_aligned,
        dkim_aligned,
    }
}

/// Sentences naming each place where a receiver following RFC 7489 decides differently:
/// which record applies, each identifier's alignment, `pct`, and the result.
fn rfc7489_differences(
    report: &DmarcReport,
    old: &Rfc7489Outcome,
    old_discovery: &Rfc7489Discovery,
    spf: Option<&Identifier>,
    dkim: &[Identifier],
) -> Vec<String> {
    const OLD: &str = "Receivers that follow RFC 7489";
    let from_domain = report.from_domain.as_deref().unwrap_or_default();
    let new_record = report.record.as_ref().map(|record| record.name.as_str());
    let mut differences = Vec::new();
    if old.record_name.as_deref() != new_record {
        let old_part = match &old.record_name {
            Some(name) => format!("would apply the policy at {name}"),
            None => format!(
                "would find no DMARC policy for {from_domain}, for they look only at _dmarc.{from_domain} and _dmarc.{}",
                old_discovery.psl_organizational
            ),
        };
        let new_part = match new_record {
            Some(name) => format!(
                "under RFC 9989 the policy at {name} applies, the first record on the DNS tree walk from {from_domain}"
            ),
            None => format!("under RFC 9989 no policy applies to {from_domain}"),
        };
        differences.push(format!("{OLD} {old_part}; {new_part}."));
    }

    let from_entry = report.organizational_domains.first();
    let from_how = from_entry
        .map(|entry| entry.how.as_str())
        .unwrap_or_default();
    let from_psl = psl_organizational_domain(from_domain);
    let identifiers = spf.into_iter().chain(dkim.iter());
    let mut seen = Vec::new();
    for identifier in identifiers.filter(|identifier| identifier.passed) {
        if seen.contains(&(identifier.role, &identifier.domain)) {
            continue;
        }
        seen.push((identifier.role, &identifier.domain));
        let (new_mode, old_mode) = match identifier.role {
            IdentifierRole::Spf => (report.spf_alignment.mode, old_mode_of(old_discovery, true)),
            _ => (
                report.dkim_alignment.mode,
                old_mode_of(old_discovery, false),
            ),
        };
        let new_aligned = aligned(
            &identifier.domain,
            identifier.organizational.as_deref(),
            from_domain,
            report.organizational_domain.as_deref(),
            new_mode,
        );
        let old_aligned = psl_aligned(&identifier.domain, from_domain, old_mode);
        let what = match identifier.role {
            IdentifierRole::Dkim => format!("the DKIM domain d={}", identifier.domain),
            _ => format!("the SPF domain {}", identifier.domain),
        };
        if old_aligned && !new_aligned {
            let because = match &identifier.organizational {
                Some(org) if report.organizational_domain.as_deref() != Some(org.as_str()) => {
                    format!(
                        "the organizational domain of {from_domain} is {} and that of {} is {org}: {from_how}",
                        report.organizational_domain.as_deref().unwrap_or("unknown"),
                        identifier.domain
                    )
                }
                _ => format!(
                    "alignment is {} under the record that applies",
                    mode_name(new_mode)
                ),
            };
            differences.push(format!(
                "{OLD} would treat {what} as aligned with {from_domain} (both under {from_psl} by the Public Suffix List); under RFC 9989 it is not, because {because}"
            ));
        } else if new_aligned && !old_aligned {
            differences.push(format!(
                "{OLD} would not treat {what} as aligned with {from_domain} (the Public Suffix List gives {} and {from_psl}); under RFC 9989 it is, because both have the organizational domain {}: {}",
                psl_organizational_domain(&identifier.domain),
                report.organizational_domain.as_deref().unwrap_or("unknown"),
                identifier.how
            ));
        }
    }

    if let Discovery::Found { record, .. } = &old_discovery.discovery
        && record.pct < 100
        && old.result == DmarcResult::Fail
        && old.policy != "none"
    {
        differences.push(format!(
            "{OLD} apply {} to only {}% of failing messages (pct={}) and {} to the rest; RFC 9989 removed pct.",
            old.policy,
            record.pct,
            record.pct,
            milder(&old.policy)
        ));
    }
    if old.result != report.result || old.policy != report.policy {
        differences.push(format!(
            "{OLD} would give dmarc={} with disposition {}; under RFC 9989 the result is dmarc={} with disposition {}.",
            old.result.as_str(),
            old.policy,
            report.result.as_str(),
            report.policy
        ));
    }
    differences
}

/// The alignment mode of the record an RFC 7489 receiver applies (relaxed without one).
fn old_mode_of(old: &Rfc7489Discovery, spf: bool) -> AlignmentMode {
    match &old.discovery {
        Discovery::Found { record, .. } if spf => record.aspf,
        Discovery::Found { record, .. } => record.adkim,
        _ => AlignmentMode::Relaxed,
    }
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
        .record;
        assert_eq!(record.p, "reject");
        assert_eq!(record.sp.as_deref(), Some("quarantine"));
        assert_eq!(record.adkim, AlignmentMode::Strict);
        assert_eq!(record.aspf, AlignmentMode::Relaxed);
        assert_eq!(record.pct, 50);
        assert_eq!(record.removed_tags, ["pct=50"]);
        assert_eq!(
            record.rua,
            ["mailto:a@example.test", "mailto:b@example.test"]
        );
        assert_eq!(
            parse_record("n", "v=DMARC1; p=none; pct=500").record.pct,
            100
        );
    }

    #[test]
    fn rfc_9989_tags_are_parsed_and_p_may_come_anywhere() {
        let parsed = parse_record(
            "n",
            "v=DMARC1; rua=mailto:a@example.test; np=reject; psd=y; t=y; ri=3600; rf=afrf; future=1; p=quarantine",
        );
        assert!(parsed.problem.is_none(), "{:?}", parsed.problem);
        let record = parsed.record;
        assert_eq!(record.p, "quarantine");
        assert_eq!(record.np.as_deref(), Some("reject"));
        assert_eq!(record.psd, Psd::Y);
        assert!(record.testing);
        assert_eq!(record.removed_tags, ["ri=3600", "rf=afrf"]);
        assert_eq!(
            parse_record("n", "v=DMARC1; p=none; psd=maybe").record.psd,
            Psd::U
        );
    }

    #[test]
    fn a_record_without_a_valid_policy_is_invalid_unless_it_reports() {
        let parsed = parse_record("n", "v=DMARC1; p=block");
        assert!(parsed.problem.as_deref().unwrap().contains("p=block"));
        assert!(matches!(parsed.policy("n"), Discovery::NoPolicy(_)));
        let parsed = parse_record("n", "v=DMARC1; rua=mailto:dmarc@example.test");
        match parsed.policy("n") {
            Discovery::Found { record, note } => {
                assert_eq!(record.p, "none");
                assert!(note.is_some());
            }
            _ => panic!("a reporting record acts as p=none"),
        }
    }

    #[test]
    fn only_records_starting_with_the_version_tag_count() {
        assert!(is_dmarc_record("v=DMARC1; p=none"));
        assert!(is_dmarc_record("v = DMARC1"));
        assert!(!is_dmarc_record("p=none; v=DMARC1"));
        assert!(!is_dmarc_record("v=spf1 -all"));
    }

    #[test]
    fn subdomains_get_sp_or_np_only_from_a_parent_record() {
        let record = parse_record(
            "_dmarc.example.test",
            "v=DMARC1; p=reject; sp=none; np=quarantine",
        )
        .record;
        assert_eq!(
            policy_tag(&record, "example.test", Some(false)),
            PolicyTag::P
        );
        assert_eq!(
            policy_tag(&record, "mail.example.test", Some(true)),
            PolicyTag::Sp
        );
        assert_eq!(
            policy_tag(&record, "mail.example.test", None),
            PolicyTag::Sp
        );
        assert_eq!(
            policy_tag(&record, "ghost.example.test", Some(false)),
            PolicyTag::Np
        );
        assert_eq!(requested_policy(&record, PolicyTag::Np), "quarantine");
    }

    #[test]
    fn testing_mode_applies_the_next_milder_policy() {
        let record = parse_record("_dmarc.example.test", "v=DMARC1; p=reject; t=y").record;
        assert_eq!(disposition(&record, PolicyTag::P), "quarantine");
        let record = parse_record("_dmarc.example.test", "v=DMARC1; p=quarantine; t=y").record;
        assert_eq!(disposition(&record, PolicyTag::P), "none");
    }
}
