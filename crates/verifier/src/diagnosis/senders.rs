//! Third-party senders: SPF or DKIM passes, but only for a domain that does not align with the
//! From domain — what a sending service (newsletters, CRM, ticketing) does until it is set up
//! with the sender's own domain. No vendor list: the finding names the domain that passed, and
//! the advice follows the record's alignment mode (`aspf=`, `adkim=`).

use super::{Facts, Finding, FindingCode, Severity};
use crate::report::{AlignmentMode, DkimResult, DmarcResult, SpfIdentityKind, SpfResult};

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
        // Strict alignment needs the From domain itself: a bounce subdomain, the usual advice,
        // fails it just as the service's own domain does.
        let (title, counts, fix) = match report.dmarc.spf_alignment.mode {
            AlignmentMode::Relaxed => (
                format!("SPF passes for {domain}, not for {from_org}"),
                format!("DMARC counts SPF only when the MAIL FROM domain belongs to {from_org}."),
                format!(
                    "In the sending service, set up a custom return-path (bounce) domain such as \
                     bounce.{from_org}; it usually means publishing a CNAME or MX record they \
                     give you."
                ),
            ),
            AlignmentMode::Strict => (
                format!("SPF passes for {domain}, not for {from}"),
                format!(
                    "Your DMARC record asks for strict SPF alignment (aspf=s): DMARC counts SPF \
                     only when the MAIL FROM domain is exactly {from}; a subdomain such as \
                     bounce.{from_org} does not align."
                ),
                format!(
                    "Either have the sending service use a return-path at {from} itself (the \
                     domain's SPF record must then list the service), or remove aspf=s from your \
                     DMARC record so that a return-path such as bounce.{from_org} is enough."
                ),
            ),
        };
        findings.push(
            Finding::new(
                FindingCode::UnalignedSpfPass,
                severity,
                title,
                format!(
                    "The MAIL FROM (return-path) domain is {domain}, so SPF vouches for {domain}, not \
                     for your From domain {from}. Sending services do this by default: they use their \
                     own bounce domain. {counts}"
                ),
            )
            .evidence(format!("MAIL FROM: {}", spf.check.identity))
            .evidence(format!("From domain: {from}"))
            .fix(fix),
        );
    }
    let passing: Vec<_> = report
        .dkim
        .iter()
        .filter(|s| s.result == DkimResult::Pass)
        .collect();
    if !passing.is_empty() && !passing.iter().any(|s| s.aligned) {
        let domain = &passing[0].domain;
        let (title, counts, fix) = match report.dmarc.dkim_alignment.mode {
            AlignmentMode::Relaxed => (
                format!("DKIM passes for {domain}, not for {from_org}"),
                format!("DMARC counts DKIM only when d= belongs to {from_org}."),
                format!(
                    "In the sending service, enable DKIM for {from_org}: publish the key or CNAME \
                     records they give you (for example selector._domainkey.{from_org}) so they \
                     sign with d={from_org}."
                ),
            ),
            AlignmentMode::Strict => (
                format!("DKIM passes for {domain}, not for {from}"),
                format!(
                    "Your DMARC record asks for strict DKIM alignment (adkim=s): DMARC counts DKIM \
                     only when d= is exactly {from}; another name under {from_org} does not align."
                ),
                format!(
                    "In the sending service, enable DKIM for {from} itself: publish the key or \
                     CNAME records they give you (for example selector._domainkey.{from}) so they \
                     sign with d={from}; or remove adkim=s from your DMARC record so that any d= \
                     under {from_org} is enough."
                ),
            ),
        };
        findings.push(
            Finding::new(
                FindingCode::UnalignedDkimPass,
                severity,
                title,
                format!(
                    "The message is signed with d={domain}, which is not your From domain {from}. \
                     Sending services sign with their own domain until you set up signing with \
                     yours. {counts}"
                ),
            )
            .evidence(format!(
                "DKIM-Signature d={domain} s={}: pass",
                passing[0].selector
            ))
            .evidence(format!("From domain: {from}"))
            .fix(fix),
        );
    }
}
