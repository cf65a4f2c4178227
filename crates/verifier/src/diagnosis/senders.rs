//! Third-party senders: SPF or DKIM passes, but only for a domain that does not align with the
//! From domain — what a sending service (newsletters, CRM, ticketing) does until it is set up
//! with the sender's own domain. No vendor list: the finding names the domain that passed.

use super::{Facts, Finding, FindingCode, Severity};
use crate::report::{DkimResult, DmarcResult, SpfIdentityKind, SpfResult};

pub(crate) fn diagnose(facts: &Facts<'_>, findings: &mut Vec<Finding>) {
    let Some(from) = facts.author_domain() else {
        return;
    };
    let from_org = facts.organizational_domain(from);
    let report = facts.report;
    let severity = if report.dmarc.result == DmarcResult::Pass {
        Severity::Info
    } else {
        Severity::Problem
    };
    let spf = &report.spf;
    if spf.check.result == SpfResult::Pass
        && !spf.aligned
        && spf.check.identity_kind == SpfIdentityKind::Mailfrom
    {
        let domain = &spf.check.domain;
        findings.push(
            Finding::new(
                FindingCode::UnalignedSpfPass,
                severity,
                format!("SPF passes for {domain}, not for {from_org}"),
                format!(
                    "The MAIL FROM (return-path) domain is {domain}, so SPF vouches for {domain}, not \
                     for your From domain {from}. Sending services do this by default: they use their \
                     own bounce domain. DMARC counts SPF only when the MAIL FROM domain belongs to \
                     {from_org}."
                ),
            )
            .evidence(format!("MAIL FROM: {}", spf.check.identity))
            .evidence(format!("From domain: {from}"))
            .fix(format!(
                "In the sending service, set up a custom return-path (bounce) domain such as \
                 bounce.{from_org}; it usually means publishing a CNAME or MX record they give you."
            )),
        );
    }
    let passing: Vec<_> = report
        .dkim
        .iter()
        .filter(|s| s.result == DkimResult::Pass)
        .collect();
    if !passing.is_empty() && !passing.iter().any(|s| s.aligned) {
        let domain = &passing[0].domain;
        findings.push(
            Finding::new(
                FindingCode::UnalignedDkimPass,
                severity,
                format!("DKIM passes for {domain}, not for {from_org}"),
                format!(
                    "The message is signed with d={domain}, which is not your From domain {from}. \
                     Sending services sign with their own domain until you set up signing with \
                     yours; DMARC counts DKIM only when d= belongs to {from_org}."
                ),
            )
            .evidence(format!(
                "DKIM-Signature d={domain} s={}: pass",
                passing[0].selector
            ))
            .evidence(format!("From domain: {from}"))
            .fix(format!(
                "In the sending service, enable DKIM for {from_org}: publish the key or CNAME \
                 records they give you (for example selector._domainkey.{from_org}) so they sign \
                 with d={from_org}."
            )),
        );
    }
}
