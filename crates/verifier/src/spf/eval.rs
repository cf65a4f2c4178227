//! `check_host()` (RFC 7208 §4–§6): fetch the record, evaluate each term, follow `include:` and
//! `redirect=`, apply the processing limits, and write down every step for the trace.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dns::{Dns, LookupError, MAX_TXT_RECORD_BYTES};
use crate::report::{SpfResult, SpfTermOutcome, SpfTraceStep};

use super::macros::{MacroContext, MacroString, MacroValues};
use super::record::{self, DualCidr, Mechanism, Record, Term, TermKind};

/// DNS-querying terms allowed in one check (§4.6.4).
pub const DNS_LOOKUP_LIMIT: u32 = 10;
/// Lookups that may find nothing before the check is a permerror (§4.6.4).
pub const VOID_LOOKUP_LIMIT: u32 = 2;
/// Most MX names one `mx` term may look at, and most PTR names `ptr` and `%{p}` consider (§4.6.4).
const MX_LIMIT: usize = 10;
const PTR_LIMIT: usize = 10;
/// How many addresses or names a trace detail lists before summarising.
const LISTED: usize = 8;

/// Who is sending, as `check_host()` sees it (§4.1).
#[derive(Clone, Debug)]
pub struct Sender {
    /// IPv4-mapped IPv6 addresses already turned into IPv4 (§5).
    pub ip: IpAddr,
    /// `postmaster` when the address has none (§4.3).
    pub local_part: String,
    pub domain: String,
    pub helo: String,
}

/// The outcome of evaluating the top-level domain.
#[derive(Debug)]
pub struct Evaluation {
    pub result: SpfResult,
    pub reason: String,
    pub explanation: Option<String>,
    pub records: Vec<String>,
    pub trace: Vec<SpfTraceStep>,
    pub decided_by: Option<String>,
    pub dns_lookups: u32,
    pub void_lookups: u32,
}

/// Evaluates `sender.domain`'s SPF record for `sender.ip`.
pub async fn evaluate(dns: &Dns, sender: &Sender) -> Evaluation {
    let mut evaluator = Evaluator {
        dns,
        sender,
        dns_lookups: 0,
        void_lookups: 0,
        stack: Vec::new(),
        top_records: Vec::new(),
        validated_names: Vec::new(),
    };
    let mut conclusion = evaluator.check_host(sender.domain.clone(), true).await;
    let mut explanation = None;
    if conclusion.result == SpfResult::Fail
        && let Some(pending) = conclusion.explanation.take()
    {
        let (text, step) = evaluator.explain(pending).await;
        explanation = text;
        conclusion.trace.push(step);
    }
    Evaluation {
        result: conclusion.result,
        reason: conclusion.reason,
        explanation,
        records: evaluator.top_records,
        trace: conclusion.trace,
        decided_by: conclusion.decided_by,
        dns_lookups: evaluator.dns_lookups,
        void_lookups: evaluator.void_lookups,
    }
}

struct Evaluator<'a> {
    dns: &'a Dns,
    sender: &'a Sender,
    dns_lookups: u32,
    void_lookups: u32,
    /// Domains whose records are being evaluated, outermost first (to catch loops).
    stack: Vec<String>,
    top_records: Vec<String>,
    /// `%{p}` values already found, per current domain.
    validated_names: Vec<(String, String)>,
}

/// What one record's evaluation concluded.
struct Conclusion {
    result: SpfResult,
    reason: String,
    decided_by: Option<String>,
    /// The `exp=` to use if this `fail` becomes the final result.
    explanation: Option<PendingExplanation>,
    trace: Vec<SpfTraceStep>,
}

impl Conclusion {
    fn early(result: SpfResult, reason: String) -> Conclusion {
        Conclusion {
            result,
            reason,
            decided_by: None,
            explanation: None,
            trace: Vec::new(),
        }
    }
}

struct PendingExplanation {
    /// The domain whose record holds `exp=` (it is `%{d}` in the explanation).
    domain: String,
    term: String,
    spec: MacroString,
}

/// A term that ended evaluation with permerror or temperror.
struct TermError {
    result: SpfResult,
    /// The sentence for the whole check.
    reason: String,
    /// The sentence for this trace step.
    detail: String,
    nested: Vec<SpfTraceStep>,
}

impl TermError {
    fn new(result: SpfResult, reason: String) -> TermError {
        TermError {
            result,
            detail: reason.clone(),
            reason,
            nested: Vec::new(),
        }
    }
}

/// A term that was evaluated without error.
struct TermMatch {
    matched: bool,
    detail: String,
    nested: Vec<SpfTraceStep>,
}

impl TermMatch {
    fn new(matched: bool, detail: String) -> TermMatch {
        TermMatch {
            matched,
            detail,
            nested: Vec::new(),
        }
    }
}

enum RecordLookup {
    Found(Record),
    /// No SPF record: result `none` for the top level, permerror for include/redirect.
    Missing(String),
    Failed(SpfResult, String),
}

type BoxedConclusion<'s> = Pin<Box<dyn Future<Output = Conclusion> + Send + 's>>;

impl<'a> Evaluator<'a> {
    fn top_domain(&self) -> &str {
        self.stack
            .first()
            .map_or(self.sender.domain.as_str(), String::as_str)
    }

    /// `check_host()` for `domain`; `explanation_applies` is false under an `include:`, whose
    /// `exp=` is never used (§6.2).
    fn check_host(&mut self, domain: String, explanation_applies: bool) -> BoxedConclusion<'_> {
        Box::pin(async move {
            let record = match self.find_record(&domain).await {
                RecordLookup::Found(record) => record,
                RecordLookup::Missing(reason) => return Conclusion::early(SpfResult::None, reason),
                RecordLookup::Failed(result, reason) => return Conclusion::early(result, reason),
            };
            self.stack.push(domain.to_ascii_lowercase());
            let conclusion = self
                .evaluate_record(&domain, &record, explanation_applies)
                .await;
            self.stack.pop();
            conclusion
        })
    }

    async fn find_record(&mut self, domain: &str) -> RecordLookup {
        let is_top = self.stack.is_empty();
        let txts = match self.dns.txt(domain).await {
            Ok(txts) => txts,
            Err(LookupError::Temporary(_, why)) => {
                return RecordLookup::Failed(
                    SpfResult::Temperror,
                    format!(
                        "the TXT lookup for {domain} failed ({why}), so its SPF record could not be read: temperror"
                    ),
                );
            }
            Err(LookupError::NxDomain(_)) => {
                return RecordLookup::Missing(format!(
                    "{domain} does not exist (NXDOMAIN), so it has no SPF record"
                ));
            }
            Err(LookupError::NoRecords(..)) => {
                return RecordLookup::Missing(format!(
                    "{domain} has no TXT records, so no SPF record"
                ));
            }
            Err(LookupError::InvalidName(_)) => {
                return RecordLookup::Missing(format!(
                    "'{domain}' is not a valid domain name, so it has no SPF record"
                ));
            }
            Err(LookupError::TooLarge(_, length)) => {
                return RecordLookup::Failed(
                    SpfResult::Permerror,
                    format!(
                        "a TXT record of {domain} is {length} bytes long; records over {MAX_TXT_RECORD_BYTES} bytes \
                         are not read, so its SPF record could not be read: permerror"
                    ),
                );
            }
        };
        let spf: Vec<&Vec<u8>> = txts.iter().filter(|t| record::is_spf_record(t)).collect();
        if is_top {
            self.top_records = spf
                .iter()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .collect();
        }
        match spf.as_slice() {
            [] => RecordLookup::Missing(format!(
                "{domain} has no SPF record (no TXT record starts with v=spf1)"
            )),
            [text] => match record::parse_record(text) {
                Ok(record) => RecordLookup::Found(record),
                Err(error) => RecordLookup::Failed(
                    SpfResult::Permerror,
                    format!("the SPF record of {domain} has a syntax error: {error}: permerror"),
                ),
            },
            several => RecordLookup::Failed(
                SpfResult::Permerror,
                format!(
                    "{domain} has {} SPF records; RFC 7208 §4.5 allows exactly one (a receiver cannot tell which applies): permerror",
                    number_word(several.len())
                ),
            ),
        }
    }

    async fn evaluate_record(
        &mut self,
        domain: &str,
        record: &Record,
        explanation_applies: bool,
    ) -> Conclusion {
        let mut trace = Vec::new();
        let mut decision: Option<(&Term, SpfResult)> = None;
        for term in &record.terms {
            let TermKind::Directive {
                qualifier,
                mechanism,
            } = &term.kind
            else {
                if term.kind == TermKind::UnknownModifier {
                    trace.push(step(
                        domain,
                        term,
                        SpfTermOutcome::Ignored,
                        "unknown modifier: ignored (RFC 7208 §6)".into(),
                    ));
                }
                continue;
            };
            if let Some((decider, _)) = decision {
                let detail = format!("not evaluated: {} matched earlier", decider.text);
                trace.push(step(domain, term, SpfTermOutcome::Ignored, detail));
                continue;
            }
            match self.evaluate_mechanism(domain, term, mechanism).await {
                Ok(outcome) => {
                    let kind = if outcome.matched {
                        SpfTermOutcome::Match
                    } else {
                        SpfTermOutcome::NoMatch
                    };
                    trace.push(SpfTraceStep {
                        domain: domain.to_string(),
                        term: term.text.clone(),
                        outcome: kind,
                        detail: outcome.detail,
                        nested: outcome.nested,
                    });
                    if outcome.matched {
                        decision = Some((term, qualifier.result()));
                    }
                }
                Err(error) => {
                    trace.push(SpfTraceStep {
                        domain: domain.to_string(),
                        term: term.text.clone(),
                        outcome: SpfTermOutcome::Error,
                        detail: error.detail,
                        nested: error.nested,
                    });
                    return Conclusion {
                        result: error.result,
                        reason: error.reason,
                        decided_by: Some(term.text.clone()),
                        explanation: None,
                        trace,
                    };
                }
            }
        }

        if let Some((decider, result)) = decision {
            if let Some((redirect, _)) = record.redirect() {
                let detail = format!("not used: {} matched", decider.text);
                trace.push(step(domain, redirect, SpfTermOutcome::Ignored, detail));
            }
            let explanation =
                self.own_explanation(domain, record, result, explanation_applies, &mut trace);
            return Conclusion {
                result,
                reason: self.match_reason(domain, &decider.text, result),
                decided_by: Some(decider.text.clone()),
                explanation,
                trace,
            };
        }

        if let Some((redirect, spec)) = record.redirect() {
            if let Some((exp, _)) = record.explanation() {
                let detail =
                    "not used: after redirect= the target's own exp= applies (RFC 7208 §6.2)"
                        .into();
                trace.push(step(domain, exp, SpfTermOutcome::Ignored, detail));
            }
            let mut conclusion = self
                .follow_redirect(domain, redirect, spec, explanation_applies)
                .await;
            conclusion.trace.splice(0..0, trace);
            return conclusion;
        }

        let explanation = self.own_explanation(
            domain,
            record,
            SpfResult::Neutral,
            explanation_applies,
            &mut trace,
        );
        let top = self.top_domain();
        let ip = self.sender.ip;
        let reason = if domain.eq_ignore_ascii_case(top) {
            format!(
                "{ip} matched no mechanism of {top}'s SPF record; the default result is neutral (RFC 7208 §4.7)"
            )
        } else {
            format!(
                "{ip} matched no mechanism of {top}'s SPF record or of {domain}'s, reached by redirect; the default result is neutral (RFC 7208 §4.7)"
            )
        };
        Conclusion {
            result: SpfResult::Neutral,
            reason,
            decided_by: None,
            explanation,
            trace,
        }
    }

    /// This record's `exp=`: kept for later when its `fail` may become the final result,
    /// otherwise shown in the trace as not used.
    fn own_explanation(
        &self,
        domain: &str,
        record: &Record,
        result: SpfResult,
        explanation_applies: bool,
        trace: &mut Vec<SpfTraceStep>,
    ) -> Option<PendingExplanation> {
        let (term, spec) = record.explanation()?;
        if result == SpfResult::Fail && explanation_applies {
            return Some(PendingExplanation {
                domain: domain.to_string(),
                term: term.text.clone(),
                spec: spec.clone(),
            });
        }
        let detail = if result == SpfResult::Fail {
            "not used: the explanation of an included record is never shown (RFC 7208 §6.2)"
                .to_string()
        } else {
            format!(
                "not used: exp= is only consulted when the result is fail, and this record gave {}",
                result.as_str()
            )
        };
        trace.push(step(domain, term, SpfTermOutcome::Ignored, detail));
        None
    }

    fn match_reason(&self, domain: &str, term: &str, result: SpfResult) -> String {
        let top = self.top_domain();
        let ip = self.sender.ip;
        let sentence = match result {
            SpfResult::Pass => format!("{ip} is permitted by {top}"),
            SpfResult::Fail => format!("{ip} is not permitted by {top}"),
            SpfResult::Softfail => format!("{ip} is probably not permitted by {top} (softfail)"),
            _ => format!("{top} makes no statement about {ip} (neutral)"),
        };
        if domain.eq_ignore_ascii_case(top) {
            format!("{sentence}; {term} matched")
        } else {
            format!("{sentence}; {term} matched in the record of {domain}, reached by redirect")
        }
    }

    async fn follow_redirect(
        &mut self,
        domain: &str,
        term: &Term,
        spec: &MacroString,
        explanation_applies: bool,
    ) -> Conclusion {
        let failed = |error: TermError, trace_detail: Option<String>| Conclusion {
            result: error.result,
            reason: error.reason.clone(),
            decided_by: Some(term.text.clone()),
            explanation: None,
            trace: vec![SpfTraceStep {
                domain: domain.to_string(),
                term: term.text.clone(),
                outcome: SpfTermOutcome::Error,
                detail: trace_detail.unwrap_or(error.detail),
                nested: error.nested,
            }],
        };
        if let Err(error) = self.count_lookup(domain, term) {
            return failed(error, None);
        }
        let target = self.target_name(spec, domain).await;
        if let Err(error) = self.check_loop(domain, term, &target) {
            return failed(error, None);
        }
        let inner = self.check_host(target.clone(), explanation_applies).await;
        if inner.result == SpfResult::None {
            let reason = format!(
                "{domain} redirects to {target}, which has no SPF record ({}); RFC 7208 §6.1 makes that a permerror",
                inner.reason
            );
            return failed(TermError::new(SpfResult::Permerror, reason), None);
        }
        let detail = format!(
            "followed: {target}'s record gives {}",
            inner.result.as_str()
        );
        Conclusion {
            result: inner.result,
            reason: inner.reason,
            decided_by: inner.decided_by,
            explanation: inner.explanation,
            trace: vec![SpfTraceStep {
                domain: domain.to_string(),
                term: term.text.clone(),
                outcome: SpfTermOutcome::Applied,
                detail,
                nested: inner.trace,
            }],
        }
    }

    async fn evaluate_mechanism(
        &mut self,
        domain: &str,
        term: &Term,
        mechanism: &Mechanism,
    ) -> Result<TermMatch, TermError> {
        if mechanism.queries_dns() {
            self.count_lookup(domain, term)?;
        }
        let ip = self.sender.ip;
        match mechanism {
            Mechanism::All => Ok(TermMatch::new(true, "all matches every address".into())),
            Mechanism::Ip4 { network, prefix } => {
                let matched = in_network(ip, IpAddr::V4(*network), *prefix);
                let verb = if matched { "is" } else { "is not" };
                Ok(TermMatch::new(
                    matched,
                    format!("{ip} {verb} in {network}/{prefix}"),
                ))
            }
            Mechanism::Ip6 { network, prefix } => {
                let matched = in_network(ip, IpAddr::V6(*network), *prefix);
                let verb = if matched { "is" } else { "is not" };
                Ok(TermMatch::new(
                    matched,
                    format!("{ip} {verb} in {network}/{prefix}"),
                ))
            }
            Mechanism::A { domain: spec, cidr } => {
                let target = self.optional_target(spec.as_ref(), domain).await;
                self.match_a(domain, term, &target, *cidr).await
            }
            Mechanism::Mx { domain: spec, cidr } => {
                let target = self.optional_target(spec.as_ref(), domain).await;
                self.match_mx(domain, term, &target, *cidr).await
            }
            Mechanism::Ptr(spec) => {
                let target = self.optional_target(spec.as_ref(), domain).await;
                self.match_ptr(domain, &target).await
            }
            Mechanism::Exists(spec) => {
                let target = self.target_name(spec, domain).await;
                self.match_exists(domain, term, &target).await
            }
            Mechanism::Include(spec) => {
                let target = self.target_name(spec, domain).await;
                self.match_include(domain, term, &target).await
            }
        }
    }

    async fn match_a(
        &mut self,
        domain: &str,
        term: &Term,
        target: &str,
        cidr: DualCidr,
    ) -> Result<TermMatch, TermError> {
        let ip = self.sender.ip;
        let kind = address_kind(ip);
        match self.dns.addresses(target, ip).await {
            Ok(addresses) => {
                let prefix = prefix_for(ip, cidr);
                let matched = addresses.iter().any(|a| in_network(ip, *a, prefix));
                let listed = list(&addresses);
                let verb = if matched { "is" } else { "is not" };
                let within = if prefix == full_prefix(ip) {
                    String::new()
                } else {
                    format!(" within /{prefix}")
                };
                Ok(TermMatch::new(
                    matched,
                    format!("{target} has {kind} {listed}; {ip} {verb} among them{within}"),
                ))
            }
            Err(error) => self.lookup_failed(domain, term, target, kind, error),
        }
    }

    async fn match_mx(
        &mut self,
        domain: &str,
        term: &Term,
        target: &str,
        cidr: DualCidr,
    ) -> Result<TermMatch, TermError> {
        let ip = self.sender.ip;
        let mut exchanges = match self.dns.mx(target).await {
            Ok(exchanges) => exchanges,
            Err(error) => return self.lookup_failed(domain, term, target, "MX", error),
        };
        if exchanges.len() > MX_LIMIT {
            let reason = format!(
                "{target} has {} MX records, more than the {MX_LIMIT} one mx mechanism may look at (RFC 7208 §4.6.4), in {domain}'s {}: permerror",
                exchanges.len(),
                term.text
            );
            return Err(TermError::new(SpfResult::Permerror, reason));
        }
        exchanges.sort_by_key(|(preference, _)| *preference);
        // A null MX (RFC 7505) names the root: the domain accepts no mail and has no MX host.
        let hosts: Vec<String> = exchanges
            .into_iter()
            .map(|(_, host)| host)
            .filter(|h| !h.is_empty())
            .collect();
        if hosts.is_empty() {
            return Ok(TermMatch::new(
                false,
                format!("{target} has only a null MX (no mail hosts), so nothing matches"),
            ));
        }
        let prefix = prefix_for(ip, cidr);
        let kind = address_kind(ip);
        let mut looked_at = Vec::new();
        for host in &hosts {
            match self.dns.addresses(host, ip).await {
                Ok(addresses) => {
                    if addresses.iter().any(|a| in_network(ip, *a, prefix)) {
                        let detail = format!(
                            "{target}'s MX hosts are {}; {ip} is an address of {host} ({kind} {})",
                            hosts.join(", "),
                            list(&addresses)
                        );
                        return Ok(TermMatch::new(true, detail));
                    }
                    looked_at.push(format!("{host}: {}", list(&addresses)));
                }
                Err(LookupError::Temporary(_, why)) => {
                    let reason = format!(
                        "looking up {kind} records of {host}, an MX host of {target}, for {domain}'s {} failed ({why}): temperror",
                        term.text
                    );
                    return Err(TermError::new(SpfResult::Temperror, reason));
                }
                Err(_) => looked_at.push(format!("{host}: no {kind} record")),
            }
        }
        Ok(TermMatch::new(
            false,
            format!(
                "{target}'s MX hosts have these addresses: {}; {ip} is not among them",
                looked_at.join("; ")
            ),
        ))
    }

    async fn match_ptr(&mut self, domain: &str, target: &str) -> Result<TermMatch, TermError> {
        let ip = self.sender.ip;
        let names = match self.dns.ptr(ip).await {
            Ok(names) => names,
            Err(error) => {
                if error.is_void() {
                    self.count_void(domain, &format!("the PTR lookup of {ip}"))?;
                }
                // A failed PTR lookup makes ptr not match; it is not an error (§5.5).
                return Ok(TermMatch::new(
                    false,
                    format!("{ip} has no usable PTR record ({error}), so ptr does not match"),
                ));
            }
        };
        let considered: Vec<&String> = names.iter().take(PTR_LIMIT).collect();
        let candidates: Vec<&String> = considered
            .iter()
            .copied()
            .filter(|n| is_within(n, target))
            .collect();
        for name in &candidates {
            if let Ok(addresses) = self.dns.addresses(name, ip).await
                && addresses.contains(&ip)
            {
                return Ok(TermMatch::new(
                    true,
                    format!(
                        "{ip} has PTR name {name}, which is within {target} and resolves back to {ip}"
                    ),
                ));
            }
        }
        let names_text = considered
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let detail = if candidates.is_empty() {
            format!("{ip} has PTR names {names_text}; none is within {target}")
        } else {
            format!("{ip} has PTR names {names_text}; none within {target} resolves back to {ip}")
        };
        Ok(TermMatch::new(false, detail))
    }

    async fn match_exists(
        &mut self,
        domain: &str,
        term: &Term,
        target: &str,
    ) -> Result<TermMatch, TermError> {
        match self.dns.a(target).await {
            Ok(addresses) => {
                let listed = list(&addresses.iter().map(|a| IpAddr::V4(*a)).collect::<Vec<_>>());
                Ok(TermMatch::new(
                    true,
                    format!("{target} exists (A {listed})"),
                ))
            }
            Err(error) => self.lookup_failed(domain, term, target, "A", error),
        }
    }

    async fn match_include(
        &mut self,
        domain: &str,
        term: &Term,
        target: &str,
    ) -> Result<TermMatch, TermError> {
        self.check_loop(domain, term, target)?;
        let inner = self.check_host(target.to_string(), false).await;
        let result = inner.result.as_str();
        match inner.result {
            SpfResult::Pass => Ok(TermMatch {
                matched: true,
                detail: format!("{target} gives pass, so the include matches"),
                nested: inner.trace,
            }),
            SpfResult::Fail | SpfResult::Softfail | SpfResult::Neutral => Ok(TermMatch {
                matched: false,
                detail: format!("{target} gives {result}, so the include does not match"),
                nested: inner.trace,
            }),
            SpfResult::Temperror | SpfResult::Permerror => Err(TermError {
                result: inner.result,
                detail: format!("{target} gives {result}: {}", inner.reason),
                reason: inner.reason,
                nested: inner.trace,
            }),
            SpfResult::None => {
                let reason = format!(
                    "{domain} includes {target}, which has no SPF record ({}); RFC 7208 §5.2 makes that a permerror",
                    inner.reason
                );
                Err(TermError::new(SpfResult::Permerror, reason))
            }
        }
    }

    /// A lookup that found nothing is a void lookup and no match; a DNS failure is temperror.
    fn lookup_failed(
        &mut self,
        domain: &str,
        term: &Term,
        target: &str,
        kind: &str,
        error: LookupError,
    ) -> Result<TermMatch, TermError> {
        match error {
            LookupError::NxDomain(_) | LookupError::NoRecords(..) => {
                let what = if matches!(error, LookupError::NxDomain(_)) {
                    format!("{target} does not exist")
                } else {
                    format!("{target} has no {kind} record")
                };
                self.count_void(domain, &term.text)?;
                Ok(TermMatch::new(
                    false,
                    format!(
                        "{what} (void lookup {} of {VOID_LOOKUP_LIMIT} allowed)",
                        self.void_lookups
                    ),
                ))
            }
            LookupError::InvalidName(_) => Ok(TermMatch::new(
                false,
                format!(
                    "'{target}' is not a valid domain name, so it has no {kind} record and nothing matches"
                ),
            )),
            LookupError::Temporary(_, why) => Err(TermError::new(
                SpfResult::Temperror,
                format!(
                    "looking up {kind} records of {target} for {domain}'s {} failed ({why}): temperror",
                    term.text
                ),
            )),
            LookupError::TooLarge(..) => Err(TermError::new(
                SpfResult::Permerror,
                format!(
                    "{domain}'s {} could not be evaluated: {error}: permerror",
                    term.text
                ),
            )),
        }
    }

    fn count_lookup(&mut self, domain: &str, term: &Term) -> Result<(), TermError> {
        self.dns_lookups += 1;
        if self.dns_lookups > DNS_LOOKUP_LIMIT {
            let top = self.top_domain();
            let reason = format!(
                "{top}'s SPF evaluation needs more than {DNS_LOOKUP_LIMIT} DNS-querying terms (include, a, mx, ptr, exists, redirect); the 11th was {} in {domain}'s record (RFC 7208 §4.6.4): permerror",
                term.text
            );
            return Err(TermError::new(SpfResult::Permerror, reason));
        }
        Ok(())
    }

    fn count_void(&mut self, domain: &str, what: &str) -> Result<(), TermError> {
        self.void_lookups += 1;
        if self.void_lookups > VOID_LOOKUP_LIMIT {
            let top = self.top_domain();
            let reason = format!(
                "{top}'s SPF evaluation found nothing in more than {VOID_LOOKUP_LIMIT} lookups (void lookups); the 3rd was {what} in {domain}'s record (RFC 7208 §4.6.4): permerror"
            );
            return Err(TermError::new(SpfResult::Permerror, reason));
        }
        Ok(())
    }

    fn check_loop(&self, domain: &str, term: &Term, target: &str) -> Result<(), TermError> {
        let key = target.to_ascii_lowercase();
        if !self.stack.contains(&key) {
            return Ok(());
        }
        let mut chain = self.stack.clone();
        chain.push(key);
        let reason = format!(
            "{domain}'s {} loops back to a record already being evaluated ({}); the loop never ends, so it is a permerror (RFC 7208 §4.6.4)",
            term.text,
            chain.join(" → ")
        );
        Err(TermError::new(SpfResult::Permerror, reason))
    }

    async fn optional_target(&mut self, spec: Option<&MacroString>, domain: &str) -> String {
        match spec {
            Some(spec) => self.target_name(spec, domain).await,
            None => domain.to_string(),
        }
    }

    /// Expands a domain-spec into the name to query: without a trailing dot, and shortened
    /// from the left to 253 characters (§7.3).
    async fn target_name(&mut self, spec: &MacroString, domain: &str) -> String {
        let expanded = self.expand(spec, domain).await;
        let mut name = expanded.strip_suffix('.').unwrap_or(&expanded);
        while name.len() > 253 {
            match name.split_once('.') {
                Some((_, rest)) => name = rest,
                None => break,
            }
        }
        name.to_string()
    }

    async fn expand(&mut self, spec: &MacroString, domain: &str) -> String {
        let validated_name = if spec.uses_validated_name() {
            Some(self.validated_name(domain).await)
        } else {
            None
        };
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let values = MacroValues {
            local_part: &self.sender.local_part,
            sender_domain: &self.sender.domain,
            domain,
            ip: self.sender.ip,
            validated_name: validated_name.as_deref(),
            helo: &self.sender.helo,
            receiver: "unknown",
            timestamp,
        };
        spec.expand(&values)
    }

    /// `%{p}` (§7.3): a PTR name of the client that resolves back to it, preferring `domain`
    /// itself, then its subdomains; `unknown` when there is none.
    async fn validated_name(&mut self, domain: &str) -> String {
        if let Some((_, name)) = self
            .validated_names
            .iter()
            .find(|(d, _)| d.eq_ignore_ascii_case(domain))
        {
            return name.clone();
        }
        let ip = self.sender.ip;
        let mut names: Vec<String> = self
            .dns
            .ptr(ip)
            .await
            .unwrap_or_default()
            .into_iter()
            .take(PTR_LIMIT)
            .collect();
        names.sort_by_key(|n| {
            if n.eq_ignore_ascii_case(domain) {
                0
            } else if is_within(n, domain) {
                1
            } else {
                2
            }
        });
        let mut found = "unknown".to_string();
        for name in names {
            if let Ok(addresses) = self.dns.addresses(&name, ip).await
                && addresses.contains(&ip)
            {
                found = name;
                break;
            }
        }
        self.validated_names
            .push((domain.to_string(), found.clone()));
        found
    }

    /// Fetches and expands the explanation for a final `fail` (§6.2). Any problem only means
    /// there is no explanation; the exp lookup does not count against the limits.
    async fn explain(&mut self, pending: PendingExplanation) -> (Option<String>, SpfTraceStep) {
        let target = self.target_name(&pending.spec, &pending.domain).await;
        let outcome = match self.dns.txt(&target).await {
            Ok(texts) if texts.len() == 1 => match std::str::from_utf8(&texts[0]) {
                Ok(text) if text.is_ascii() => {
                    match MacroString::parse(text, MacroContext::Explanation) {
                        Ok(parsed) => Ok(self.expand(&parsed, &pending.domain).await),
                        Err(problem) => Err(format!(
                            "the explanation at {target} is malformed ({problem})"
                        )),
                    }
                }
                _ => Err(format!("the explanation at {target} is not ASCII text")),
            },
            Ok(texts) => Err(format!(
                "{target} has {} TXT records instead of one",
                texts.len()
            )),
            Err(error) => Err(format!("the explanation could not be fetched: {error}")),
        };
        let (text, outcome, detail) = match outcome {
            Ok(text) => {
                let detail =
                    format!("the result is fail; the explanation from {target} reads: {text}");
                (Some(text), SpfTermOutcome::Applied, detail)
            }
            Err(why) => (
                None,
                SpfTermOutcome::Ignored,
                format!("the result is fail, but {why}; no explanation is given"),
            ),
        };
        let step = SpfTraceStep {
            domain: pending.domain,
            term: pending.term,
            outcome,
            detail,
            nested: Vec::new(),
        };
        (text, step)
    }
}

fn step(domain: &str, term: &Term, outcome: SpfTermOutcome, detail: String) -> SpfTraceStep {
    SpfTraceStep {
        domain: domain.to_string(),
        term: term.text.clone(),
        outcome,
        detail,
        nested: Vec::new(),
    }
}

fn address_kind(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "A" } else { "AAAA" }
}

fn full_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn prefix_for(ip: IpAddr, cidr: DualCidr) -> u8 {
    if ip.is_ipv4() { cidr.v4 } else { cidr.v6 }
}

/// Whether `ip` lies in `network/prefix`; addresses of different families never match.
fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Whether `name` is `domain` or a subdomain of it, ignoring case and trailing dots.
fn is_within(name: &str, domain: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    name == domain || name.ends_with(&format!(".{domain}"))
}

fn list(addresses: &[IpAddr]) -> String {
    let mut text = addresses
        .iter()
        .take(LISTED)
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if addresses.len() > LISTED {
        text.push_str(&format!(" and {} more", addresses.len() - LISTED));
    }
    text
}

fn number_word(n: usize) -> String {
    match n {
        2 => "two".into(),
        3 => "three".into(),
        4 => "four".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix_and_family() {
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        assert!(in_network(ip, "192.0.2.0".parse().unwrap(), 24));
        assert!(!in_network(ip, "192.0.3.0".parse().unwrap(), 24));
        assert!(in_network(ip, "1.1.1.1".parse().unwrap(), 0));
        assert!(!in_network(ip, "::".parse().unwrap(), 0));
        let ip6: IpAddr = "2001:db8:1234::cafe".parse().unwrap();
        assert!(in_network(ip6, "2001:db8:1234::beef".parse().unwrap(), 64));
        assert!(!in_network(
            ip6,
            "2001:db8:1234::beef".parse().unwrap(),
            128
        ));
    }

    #[test]
    fn subdomains_are_within_their_parent_only() {
        assert!(is_within("mail.Example.com.", "example.COM"));
        assert!(is_within("example.com", "example.com"));
        assert!(!is_within("badexample.com", "example.com"));
    }
}
