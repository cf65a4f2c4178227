//! SPF (RFC 7208): is the client IP allowed to send for the MAIL FROM or HELO domain?
//!
//! This is our own `check_host()` rather than a library's, because a tester must show its work:
//! every term evaluated, with what it looked up and found, nested through `include:` and
//! `redirect=`, and the exact reason for the result. It also keeps to the letter of the RFC where
//! libraries are lenient: two SPF records are a permerror (§4.5), more than two void lookups are
//! a permerror (§4.6.4), and the limit of 10 DNS-querying terms is exact.
//!
//! `record` parses records, `macros` implements the macro language (§7) and `eval` walks
//! the record. A DNS failure gives `temperror`; the whole evaluation is bounded by a time limit.

mod eval;
mod macros;
mod record;

use std::net::IpAddr;
use std::time::Duration;

use crate::dns::Dns;
use crate::report::{MAX_LISTED_TRACE_STEPS, SpfCheck, SpfIdentityKind, SpfResult, SpfTraceStep};

use eval::{DNS_LOOKUP_LIMIT, Sender, VOID_LOOKUP_LIMIT};

/// SPF for the MAIL FROM identity; with an empty `mail_from` (null reverse-path) this checks
/// `postmaster@<helo>` with identity_kind Helo (RFC 7208 §2.4).
pub async fn check_mail_from(
    dns: &Dns,
    ip: IpAddr,
    mail_from: &str,
    helo: &str,
    time_limit: Duration,
) -> SpfCheck {
    let mail_from = mail_from.trim();
    let mail_from = mail_from
        .strip_prefix('<')
        .and_then(|m| m.strip_suffix('>'))
        .unwrap_or(mail_from);
    if mail_from.is_empty() {
        return check_helo(dns, ip, helo, time_limit).await;
    }
    // The domain follows the last '@': a quoted local-part may itself contain '@'.
    let (local_part, domain) = match mail_from.rsplit_once('@') {
        Some((local, domain)) => (local, domain),
        None => ("", mail_from),
    };
    let local_part = if local_part.is_empty() {
        "postmaster"
    } else {
        local_part
    };
    let identity = format!("{local_part}@{domain}");
    if let Some(problem) = domain_problem(domain) {
        let reason = format!(
            "the MAIL FROM domain '{domain}' {problem}, so there is no SPF record to check (RFC 7208 §4.3): none"
        );
        return unchecked_none(SpfIdentityKind::Mailfrom, identity, domain, reason);
    }
    let sender = Sender {
        ip: canonical_ip(ip),
        local_part: local_part.into(),
        domain: domain.into(),
        helo: helo.into(),
    };
    run(dns, SpfIdentityKind::Mailfrom, identity, sender, time_limit).await
}

/// SPF for the HELO identity (RFC 7208 §2.3). A HELO that is not a domain name (an IP literal, a bare word) gives `none` with a reason.
pub async fn check_helo(dns: &Dns, ip: IpAddr, helo: &str, time_limit: Duration) -> SpfCheck {
    let helo = helo.trim();
    let identity = format!("postmaster@{helo}");
    if let Some(problem) = domain_problem(helo) {
        let reason = format!(
            "the HELO name '{helo}' {problem}, so it has no SPF record to check (RFC 7208 §2.3): none"
        );
        return unchecked_none(SpfIdentityKind::Helo, identity, helo, reason);
    }
    let sender = Sender {
        ip: canonical_ip(ip),
        local_part: "postmaster".into(),
        domain: helo.into(),
        helo: helo.into(),
    };
    run(dns, SpfIdentityKind::Helo, identity, sender, time_limit).await
}

/// A check that could not run (e.g. no client IP): checked=false, result None, the reason given.
pub fn not_checked(kind: SpfIdentityKind, identity: &str, domain: &str, reason: &str) -> SpfCheck {
    SpfCheck {
        checked: false,
        ..empty_check(
            kind,
            identity.into(),
            domain,
            SpfResult::None,
            reason.into(),
        )
    }
}

async fn run(
    dns: &Dns,
    kind: SpfIdentityKind,
    identity: String,
    sender: Sender,
    time_limit: Duration,
) -> SpfCheck {
    let domain = sender.domain.trim_end_matches('.').to_string();
    let sender = Sender {
        domain: domain.clone(),
        ..sender
    };
    match tokio::time::timeout(time_limit, eval::evaluate(dns, &sender)).await {
        Ok(mut evaluation) => SpfCheck {
            trace_not_listed: u32::try_from(truncate_trace(
                &mut evaluation.trace,
                MAX_LISTED_TRACE_STEPS,
            ))
            .unwrap_or(u32::MAX),
            checked: true,
            identity_kind: kind,
            identity,
            domain,
            result: evaluation.result,
            reason: evaluation.reason,
            explanation: evaluation.explanation,
            records: evaluation.records,
            trace: evaluation.trace,
            dns_lookups: evaluation.dns_lookups,
            dns_lookup_limit: DNS_LOOKUP_LIMIT,
            void_lookups: evaluation.void_lookups,
            void_lookup_limit: VOID_LOOKUP_LIMIT,
            decided_by: evaluation.decided_by,
        },
        Err(_) => {
            let reason = format!(
                "SPF evaluation of {domain} took longer than {} and was stopped; try again later (RFC 7208 §4.6.4): temperror",
                describe(time_limit)
            );
            empty_check(kind, identity, &domain, SpfResult::Temperror, reason)
        }
    }
}

/// A `none` result decided before any DNS lookup (the identity has no usable domain).
fn unchecked_none(
    kind: SpfIdentityKind,
    identity: String,
    domain: &str,
    reason: String,
) -> SpfCheck {
    empty_check(kind, identity, domain, SpfResult::None, reason)
}

fn empty_check(
    kind: SpfIdentityKind,
    identity: String,
    domain: &str,
    result: SpfResult,
    reason: String,
) -> SpfCheck {
    SpfCheck {
        checked: true,
        identity_kind: kind,
        identity,
        domain: domain.to_string(),
        result,
        reason,
        explanation: None,
        records: Vec::new(),
        trace: Vec::new(),
        trace_not_listed: 0,
        dns_lookups: 0,
        dns_lookup_limit: DNS_LOOKUP_LIMIT,
        void_lookups: 0,
        void_lookup_limit: VOID_LOOKUP_LIMIT,
        decided_by: None,
    }
}

/// Keeps the first `limit` steps of `trace` in reading order (each step before the steps nested
/// in it) and returns how many it dropped.
fn truncate_trace(trace: &mut Vec<SpfTraceStep>, limit: usize) -> usize {
    fn keep(steps: &mut Vec<SpfTraceStep>, limit: usize, kept: &mut usize) -> usize {
        let mut dropped = 0;
        for index in 0..steps.len() {
            if *kept == limit {
                dropped += steps[index..].iter().map(count).sum::<usize>();
                steps.truncate(index);
                break;
            }
            *kept += 1;
            dropped += keep(&mut steps[index].nested, limit, kept);
        }
        dropped
    }
    fn count(step: &SpfTraceStep) -> usize {
        1 + step.nested.iter().map(count).sum::<usize>()
    }
    keep(trace, limit, &mut 0)
}

/// IPv4-mapped IPv6 addresses are IPv4 for SPF (RFC 7208 §5).
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why `domain` cannot have an SPF record, if it cannot: RFC 7208 §4.3 wants a syntactically
/// valid, fully qualified domain name.
fn domain_problem(domain: &str) -> Option<String> {
    if domain.is_empty() {
        return Some("is empty".into());
    }
    if domain.starts_with('[') || domain.parse::<IpAddr>().is_ok() {
        return Some("is an address literal, not a domain name".into());
    }
    if domain.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("contains spaces or control characters".into());
    }
    let name = domain.strip_suffix('.').unwrap_or(domain);
    if name.len() > 253 {
        return Some("is longer than 253 characters".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Some("has an empty label".into());
    }
    if labels.iter().any(|l| l.len() > 63) {
        return Some("has a label longer than 63 characters".into());
    }
    if labels.len() < 2 {
        return Some("is not a fully qualified domain name".into());
    }
    None
}

fn describe(limit: Duration) -> String {
    if limit.subsec_millis() == 0 {
        format!("{} s", limit.as_secs())
    } else {
        format!("{} ms", limit.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fully_qualified_names_are_checked() {
        assert_eq!(domain_problem("example.com"), None);
        assert_eq!(domain_problem("example.com."), None);
        assert!(domain_problem("A2345678").is_some());
        assert!(domain_problem("[192.0.2.1]").is_some());
        assert!(domain_problem("192.0.2.1").is_some());
        assert!(domain_problem("a...example.com").is_some());
        assert!(domain_problem(&format!("{}.example.com", "a".repeat(64))).is_some());
    }

    #[test]
    fn mapped_addresses_become_ipv4() {
        assert_eq!(
            canonical_ip("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            canonical_ip("2001:db8::1".parse().unwrap()),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    fn step(term: &str, nested: Vec<SpfTraceStep>) -> SpfTraceStep {
        SpfTraceStep {
            domain: "example.com".into(),
            term: term.into(),
            outcome: crate::report::SpfTermOutcome::NoMatch,
            detail: String::new(),
            nested,
        }
    }

    fn terms(steps: &[SpfTraceStep]) -> Vec<String> {
        steps
            .iter()
            .flat_map(|s| std::iter::once(s.term.clone()).chain(terms(&s.nested)))
            .collect()
    }

    #[test]
    fn the_trace_keeps_its_first_steps_in_reading_order() {
        let trace = vec![
            step("a", vec![]),
            step("include:b", vec![step("b1", vec![]), step("b2", vec![])]),
            step("c", vec![]),
        ];
        for (limit, kept, dropped) in [
            (10, "a include:b b1 b2 c", 0),
            (5, "a include:b b1 b2 c", 0),
            (3, "a include:b b1", 2),
            (2, "a include:b", 3),
            (0, "", 5),
        ] {
            let mut truncated = trace.clone();
            assert_eq!(truncate_trace(&mut truncated, limit), dropped, "{limit}");
            assert_eq!(terms(&truncated).join(" "), kept, "{limit}");
        }
    }
}
