//! Records and policy advice with the sender's own values: why SPF is a permerror (with the
//! counts), `~all`, a DMARC record without reports or whose policy for the From domain is
//! `none`, short or testing DKIM keys, and — when DMARC fails — the organizational domains
//! alignment compares.

use std::time::Duration;

use super::{Facts, Finding, FindingCode, MAX_SIGNATURES_DIAGNOSED, Severity, Upstream};
use crate::dkim::tags::TagList;
use crate::dmarc::requested_policy;
use crate::dns::Dns;
use crate::report::{
    AlignmentMode, DkimResult, DmarcRecord, DmarcResult, PolicyTag, Report, SpfCheck, SpfResult,
    SpfTermOutcome, SpfTraceStep,
};

/// RSA keys shorter than this are reported (RFC 8301 allows 1024, current advice is 2048).
const RECOMMENDED_RSA_BITS: u32 = 2048;
/// The most trace steps quoted as evidence.
const QUOTED_TERMS: usize = 12;

/// The key record names of the signatures whose key was found, with `t=y` in the record.
pub(crate) async fn testing_keys(dns: &Dns, report: &Report, time_limit: Duration) -> Vec<String> {
    let names: Vec<String> = report
        .dkim
        .iter()
        .filter(|s| s.key_bits.is_some())
        .take(MAX_SIGNATURES_DIAGNOSED)
        .map(|s| format!("{}._domainkey.{}", s.selector, s.domain))
        .collect();
    let lookups = names.into_iter().map(|name| async move {
        let records = tokio::time::timeout(time_limit, dns.txt(&name)).await;
        let testing = matches!(records, Ok(Ok(records)) if records.iter().any(|record| {
            let text = String::from_utf8_lossy(record);
            TagList::parse_lenient(&text)
                .value("t")
                .is_some_and(|flags| flags.split(':').any(|flag| flag.trim() == "y"))
        }));
        testing.then_some(name)
    });
    futures::future::join_all(lookups)
        .await
        .into_iter()
        .flatten()
        .collect()
}

pub(crate) fn diagnose(facts: &Facts<'_>, findings: &mut Vec<Finding>) {
    let spf = &facts.report.spf.check;
    if spf.checked && spf.result == SpfResult::Permerror {
        findings.push(spf_permerror(spf));
    }
    findings.extend(spf_soft_all(spf));
    findings.extend(dmarc_advice(facts));
    findings.extend(short_keys(facts));
    findings.extend(testing_keys_found(facts.upstream));
    findings.extend(alignment_domains(facts));
}

/// The terms of the trace, nested ones included, in evaluation order, at most `limit`.
fn terms(steps: &[SpfTraceStep], out: &mut Vec<String>, limit: usize) {
    for step in steps {
        if out.len() == limit {
            return;
        }
        out.push(format!("{}: {} — {}", step.domain, step.term, step.detail));
        terms(&step.nested, out, limit);
    }
}

fn error_steps<'a>(steps: &'a [SpfTraceStep], out: &mut Vec<&'a SpfTraceStep>) {
    for step in steps {
        if step.outcome == SpfTermOutcome::Error && step.nested.is_empty() {
            out.push(step);
        }
        error_steps(&step.nested, out);
    }
}

fn spf_permerror(spf: &SpfCheck) -> Finding {
    let domain = &spf.domain;
    if spf.records.len() > 1 {
        let finding = Finding::new(
            FindingCode::SpfSeveralRecords,
            Severity::Problem,
            format!(
                "{domain} publishes {} SPF records; there must be one",
                spf.records.len()
            ),
            format!(
                "{domain} has {} TXT records starting with v=spf1. Receivers cannot tell which one \
                 applies, so SPF gives permerror for every message from {domain}.",
                spf.records.len()
            ),
        );
        return spf
            .records
            .iter()
            .fold(finding, |f, record| f.evidence(format!("{domain}: {record}")))
            .fix(format!(
                "Merge them into one TXT record at {domain}: one v=spf1, the mechanisms of both, one \
                 all at the end."
            ));
    }
    if spf.dns_lookups > spf.dns_lookup_limit {
        let mut evidence = Vec::new();
        terms(&spf.trace, &mut evidence, QUOTED_TERMS);
        let finding = Finding::new(
            FindingCode::SpfTooManyLookups,
            Severity::Problem,
            format!(
                "{domain}'s SPF record needs more than {} DNS lookups",
                spf.dns_lookup_limit
            ),
            format!(
                "Each include, a, mx, ptr, exists and redirect costs a DNS lookup, and includes count \
                 what they include. Evaluating {domain}'s record reached {} lookups; the limit is {}, \
                 so SPF gives permerror and DMARC treats SPF as failed.",
                spf.dns_lookups, spf.dns_lookup_limit
            ),
        );
        return evidence
            .iter()
            .fold(finding, |f, line| f.evidence(line))
            .fix(format!(
                "Remove includes of services that no longer send for {domain}, replace a and mx with \
                 the ip4:/ip6: ranges they stand for, and move senders with large records to a \
                 subdomain of their own."
            ));
    }
    if spf.void_lookups > spf.void_lookup_limit {
        return Finding::new(
            FindingCode::SpfTooManyVoidLookups,
            Severity::Problem,
            format!("{domain}'s SPF record points at names that do not exist"),
            format!(
                "{} lookups made while evaluating {domain}'s record found nothing; more than {} such \
                 lookups make SPF a permerror.",
                spf.void_lookups, spf.void_lookup_limit
            ),
        )
        .evidence(&spf.reason)
        .fix(format!(
            "Remove the include:, a: or mx: terms in {domain}'s record that name domains without \
             records (typically a service you stopped using)."
        ));
    }
    let mut errors = Vec::new();
    error_steps(&spf.trace, &mut errors);
    let finding = Finding::new(
        FindingCode::SpfPermerror,
        Severity::Problem,
        format!("{domain}'s SPF record has an error"),
        format!(
            "SPF gives permerror for {domain}: {}. Receivers treat this as a failure.",
            spf.reason
        ),
    );
    let finding = spf.records.iter().fold(finding, |f, record| {
        f.evidence(format!("{domain}: {record}"))
    });
    errors
        .iter()
        .take(QUOTED_TERMS)
        .fold(finding, |f, step| {
            f.evidence(format!("{}: {} — {}", step.domain, step.term, step.detail))
        })
        .fix(format!(
            "Correct the term named above in {domain}'s record (check its spelling: ip4:, ip6:, a, \
             mx, include:, exists:, redirect=, -all)."
        ))
}

fn spf_soft_all(spf: &SpfCheck) -> Option<Finding> {
    if !spf.checked || spf.records.len() != 1 {
        return None;
    }
    let record = &spf.records[0];
    if !record
        .split_whitespace()
        .any(|term| term.eq_ignore_ascii_case("~all"))
    {
        return None;
    }
    let domain = &spf.domain;
    Some(
        Finding::new(
            FindingCode::SpfSoftAll,
            Severity::Info,
            format!("{domain}'s SPF record ends in ~all (softfail), not -all"),
            format!(
                "With ~all, mail from servers not listed for {domain} is only marked as suspicious, \
                 not refused. That is the safe setting while you are still finding all the servers \
                 that send for {domain}."
            ),
        )
        .evidence(format!("{domain}: {record}"))
        .fix(format!(
            "Once DMARC reports show that every server sending for {domain} is listed, change ~all \
             to -all."
        )),
    )
}

fn dmarc_advice(facts: &Facts<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let Some(record) = &facts.report.dmarc.record else {
        return findings;
    };
    let domain = facts
        .report
        .dmarc
        .from_domain
        .clone()
        .unwrap_or_else(|| record.name.trim_start_matches("_dmarc.").to_string());
    let org = facts.organizational_domain(&domain);
    if record.rua.is_empty() {
        findings.push(
            Finding::new(
                FindingCode::DmarcNoReports,
                Severity::Warning,
                format!(
                    "{}: no rua=, so nobody sends you DMARC reports",
                    record.name
                ),
                format!(
                    "Without rua= receivers do not send aggregate reports, so you cannot see which \
                     servers send mail as {domain} or whether their mail passes."
                ),
            )
            .evidence(format!("{}: {}", record.name, record.text))
            .fix(format!(
                "Add rua=mailto:dmarc-reports@{org} (a mailbox you read, or a report-analysis \
                 service) to the record at {}.",
                record.name
            )),
        );
    }
    // The tag that gave the policy, not `p=` alone: a subdomain gets `sp=` (or `np=`), which
    // may be strict where `p=none` is not, and the other way round.
    let tag = facts.report.dmarc.policy_tag.unwrap_or(PolicyTag::P);
    let requested = requested_policy(record, tag);
    if requested.eq_ignore_ascii_case("none") {
        findings.push(policy_none(record, tag, &domain, &org));
    }
    findings
}

/// The finding for a policy of `none` given by `tag` of `record` to `domain`.
fn policy_none(record: &DmarcRecord, tag: PolicyTag, domain: &str, org: &str) -> Finding {
    let tag_name = tag.as_str();
    let applies = match tag {
        PolicyTag::P if record.name == format!("_dmarc.{domain}") => String::new(),
        PolicyTag::P => format!(" (p= applies to the subdomain {domain}: there is no sp=)"),
        PolicyTag::Sp => format!(" (sp= applies to the subdomain {domain})"),
        PolicyTag::Np => format!(" (np= applies to {domain}, which does not exist)"),
    };
    // Under t=y receivers apply one step milder than written: moving to quarantine alone would
    // change nothing, so the advice must name t=y too.
    let testing = if record.testing {
        " The record also says t=y (testing): receivers apply one step milder than the policy \
         written, so quarantine would still mean none."
    } else {
        ""
    };
    let next = if record.testing {
        format!(
            "move to {tag_name}=quarantine, then to {tag_name}=reject, and remove t=y when you \
             want the policy applied as written"
        )
    } else {
        format!("move to {tag_name}=quarantine, then to {tag_name}=reject")
    };
    Finding::new(
        FindingCode::DmarcPolicyNone,
        Severity::Info,
        format!(
            "{}: {tag_name}=none applies to {domain}, so failing mail is still delivered",
            record.name
        ),
        format!(
            "The policy that applies to {domain} is {tag_name}=none{applies}: receivers take no \
             action on mail that fails DMARC, so anyone can still send mail that claims to be from \
             {domain}. It is the right first step while you collect reports.{testing}"
        ),
    )
    .evidence(format!("{}: {}", record.name, record.text))
    .fix(format!(
        "Read the aggregate reports for a few weeks; when every legitimate source passes aligned \
         SPF or DKIM for {org}, {next} in the record at {}.",
        record.name
    ))
}

fn short_keys(facts: &Facts<'_>) -> Vec<Finding> {
    facts
        .report
        .dkim
        .iter()
        .filter(|s| {
            s.key_type.as_deref() == Some("rsa")
                && s.key_bits.is_some_and(|bits| bits < RECOMMENDED_RSA_BITS)
        })
        .take(MAX_SIGNATURES_DIAGNOSED)
        .map(|signature| {
            let name = format!("{}._domainkey.{}", signature.selector, signature.domain);
            let bits = signature.key_bits.unwrap_or_default();
            Finding::new(
                FindingCode::DkimKeyShort,
                Severity::Warning,
                format!("The DKIM key at {name} is only {bits} bits"),
                format!(
                    "{bits}-bit RSA keys are weak by today's standards; {RECOMMENDED_RSA_BITS} bits \
                     is the usual minimum, and receivers may stop accepting shorter keys."
                ),
            )
            .evidence(format!("{name}: rsa, {bits} bits"))
            .fix(format!(
                "Generate a {RECOMMENDED_RSA_BITS}-bit key, publish it under a new selector of {}, \
                 switch the signer to it, then remove the old record.",
                signature.domain
            ))
        })
        .collect()
}

fn testing_keys_found(upstream: &Upstream) -> Vec<Finding> {
    upstream
        .testing_keys
        .iter()
        .map(|name| {
            Finding::new(
                FindingCode::DkimKeyTesting,
                Severity::Warning,
                format!("The DKIM key at {name} is in testing mode (t=y)"),
                "t=y tells receivers that DKIM is being tested for this domain: they may treat signed \
                 mail as if it were not signed."
                    .to_string(),
            )
            .evidence(format!("{name}: t=y"))
            .fix(format!("Remove t=y from the TXT record at {name} once signing works."))
        })
        .collect()
}

/// When DMARC fails: the domains alignment compares, each with its organizational domain, and
/// what alignment needs in the record's modes (strict needs the From domain itself).
fn alignment_domains(facts: &Facts<'_>) -> Option<Finding> {
    let report = facts.report;
    if report.dmarc.result != DmarcResult::Fail {
        return None;
    }
    let from = facts.author_domain()?;
    let from_org = facts.organizational_domain(from);
    let spf_mode = report.dmarc.spf_alignment.mode;
    let dkim_mode = report.dmarc.dkim_alignment.mode;
    let needs = |mode: AlignmentMode, what: &str, tag: &str| match mode {
        AlignmentMode::Relaxed => {
            format!("{what} for a domain whose organizational domain is {from_org}")
        }
        AlignmentMode::Strict => format!("{what} for exactly {from} ({tag}, strict alignment)"),
    };
    let title = match (spf_mode, dkim_mode) {
        (AlignmentMode::Relaxed, AlignmentMode::Relaxed) => {
            format!("DMARC compares organizational domains: From is {from_org}")
        }
        (AlignmentMode::Strict, AlignmentMode::Strict) => {
            format!("DMARC compares exact domains (strict alignment): From is {from}")
        }
        _ => format!("DMARC compares domains: From is {from}, organizational domain {from_org}"),
    };
    let mut finding = Finding::new(
        FindingCode::AlignmentDomains,
        Severity::Info,
        title,
        format!(
            "DMARC passes when {} or {}. Below, each authenticated domain with its organizational \
             domain and result.",
            needs(spf_mode, "SPF passes", "aspf=s"),
            needs(dkim_mode, "DKIM passes", "adkim=s"),
        ),
    )
    .evidence(format!("From: {from} → {from_org}"));
    if let Some(domain) = facts.mail_from_domain() {
        finding = finding.evidence(format!(
            "MAIL FROM: {domain} → {}, SPF {}",
            facts.organizational_domain(domain),
            report.spf.check.result.as_str()
        ));
    }
    for signature in report
        .dkim
        .iter()
        .filter(|s| !s.domain.is_empty())
        .take(MAX_SIGNATURES_DIAGNOSED)
    {
        finding = finding.evidence(format!(
            "DKIM d={} → {}, {}",
            signature.domain,
            facts.organizational_domain(&signature.domain),
            signature.result.as_str()
        ));
    }
    let spf_pass = report.spf.check.result == SpfResult::Pass;
    let dkim_pass = report.dkim.iter().any(|s| s.result == DkimResult::Pass);
    if !spf_pass && !dkim_pass {
        return Some(finding);
    }
    // Advice for the mode of the identifier that passed: under strict alignment a subdomain of
    // the From domain fails just as a stranger's domain does.
    let strict_tags: Vec<&str> = [
        (spf_pass && spf_mode == AlignmentMode::Strict).then_some("aspf=s"),
        (dkim_pass && dkim_mode == AlignmentMode::Strict).then_some("adkim=s"),
    ]
    .into_iter()
    .flatten()
    .collect();
    let record = report
        .dmarc
        .record
        .as_ref()
        .map_or_else(|| format!("_dmarc.{from}"), |record| record.name.clone());
    Some(if !strict_tags.is_empty() {
        let relax = strict_tags.join(" and ");
        finding.fix(format!(
            "Make the domain that passes exactly {from}: sign with d={from}, or use a return-path \
             at {from} itself (see the findings about the sending service); or remove {relax} \
             from the record at {record} so that any domain under {from_org} aligns."
        ))
    } else {
        finding.fix(format!(
            "Make the domain that passes belong to {from_org}: see the findings about the sending \
             service, or sign with d={from_org}."
        ))
    })
}
