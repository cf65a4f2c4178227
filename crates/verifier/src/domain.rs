//! Organizational domains and identifier alignment.
//!
//! RFC 9989 finds organizational domains with a DNS tree walk over `_dmarc` records; this file
//! holds the parts of it that need no DNS: which names a walk asks ([`tree_walk_names`]), and
//! which organizational domain the answers give ([`organizational_domain_from_walk`]). The
//! queries themselves are made in `dmarc.rs`.
//!
//! RFC 7489 took the organizational domain from the Public Suffix List (the `psl` crate, compiled
//! in). The verifier no longer decides with it; it is kept only to tell senders where receivers
//! that still follow RFC 7489 decide differently ([`psl_organizational_domain`]).

use crate::report::{AlignmentMode, Psd};

/// The most `_dmarc` queries one tree walk makes (RFC 9989 §4.10: the author domain, then at
/// most seven shorter names).
pub const WALK_QUERY_LIMIT: usize = 8;

/// `name` lowercased, without surrounding whitespace or a trailing dot: the form domains are
/// compared in.
pub fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The names a DNS tree walk from `domain` asks for a `_dmarc` record, in order (without the
/// `_dmarc.` prefix). Implements RFC 9989 §4.10 steps 1, 4, 5 and 8: first `domain` itself;
/// then, when it has eight labels or more, its last seven labels, else `domain` without its
/// left-most label; then one label fewer each time down to the last label. At most
/// [`WALK_QUERY_LIMIT`] names.
pub fn tree_walk_names(domain: &str) -> Vec<String> {
    let domain = normalize(domain);
    let label_count = domain.split('.').count();
    let mut names = vec![domain.clone()];
    let mut remaining = label_count;
    loop {
        remaining = if remaining >= WALK_QUERY_LIMIT {
            WALK_QUERY_LIMIT - 1
        } else {
            remaining - 1
        };
        if remaining == 0 {
            break;
        }
        names.push(last_labels(&domain, remaining).to_string());
    }
    names
}

/// Whether a walk stops at a record with this `psd=` value: RFC 9989 §4.10 steps 2 and 7 stop
/// at `psd=y` and `psd=n`.
pub fn walk_stops_at(psd: Psd) -> bool {
    matches!(psd, Psd::Y | Psd::N)
}

/// How the tree walk decided an organizational domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrganizationalRule {
    /// A record with `psd=n` at this name (RFC 9989 §4.10.2, first rule).
    PsdNo(String),
    /// A record with `psd=y` at this name: the organizational domain is one label below it
    /// (second rule).
    BelowPsd(String),
    /// The record with the fewest labels found by the walk is at this name (third rule).
    HighestRecord(String),
    /// No DMARC record anywhere on the walk: the domain is its own (fourth rule).
    NoRecord,
}

impl OrganizationalRule {
    /// A sentence saying how the organizational domain of `domain` was found.
    pub fn describe(&self, domain: &str, organizational: &str) -> String {
        match self {
            OrganizationalRule::PsdNo(name) => format!(
                "_dmarc.{name} says psd=n, so {organizational} is the organizational domain of {domain}."
            ),
            OrganizationalRule::BelowPsd(name) if name == organizational => format!(
                "_dmarc.{name} says psd=y and is the domain itself, so {domain} is its own organizational domain."
            ),
            OrganizationalRule::BelowPsd(name) => format!(
                "_dmarc.{name} says psd=y (a public suffix domain), so the organizational domain of {domain} is the name one label below it, {organizational}."
            ),
            OrganizationalRule::HighestRecord(name) => format!(
                "{name} is the shortest name on the walk from {domain} with a DMARC record, so it is the organizational domain."
            ),
            OrganizationalRule::NoRecord => format!(
                "No name on the walk from {domain} publishes a DMARC record, so {domain} is its own organizational domain."
            ),
        }
    }
}

/// The organizational domain of `domain` given the records a walk from it found, as
/// `(name, psd)` in walk order (the walk having stopped at a `psd=y` or `psd=n` record).
/// Implements RFC 9989 §4.10.2: a `psd=n` record's name; else, below a `psd=y` record, the
/// name one label below it (the domain itself when the record is its own); else the name with
/// the fewest labels that has a record; else `domain` itself.
pub fn organizational_domain_from_walk(
    domain: &str,
    found: &[(String, Psd)],
) -> (String, OrganizationalRule) {
    let domain = normalize(domain);
    if let Some((name, psd)) = found.iter().find(|(_, psd)| walk_stops_at(*psd)) {
        return match psd {
            Psd::N => (name.clone(), OrganizationalRule::PsdNo(name.clone())),
            _ => {
                let below = name.split('.').count() + 1;
                let organizational = last_labels(&domain, below).to_string();
                (organizational, OrganizationalRule::BelowPsd(name.clone()))
            }
        };
    }
    match found.iter().min_by_key(|(name, _)| name.split('.').count()) {
        Some((name, _)) => (
            name.clone(),
            OrganizationalRule::HighestRecord(name.clone()),
        ),
        None => (domain, OrganizationalRule::NoRecord),
    }
}

/// The organizational domain of `name` as RFC 7489 §3.2 finds it, from the Public Suffix List,
/// in normalized form. Used only to compare with RFC 9989.
///
/// A name that is itself a public suffix (`co.uk`) or has a single label is its own
/// organizational domain: there is nothing above it to belong to. A name under a top-level
/// domain the list does not know (`.test`, `.localhost`, a private TLD) takes its last two
/// labels, which is what the list's implicit `*` rule means.
pub fn psl_organizational_domain(name: &str) -> String {
    let name = normalize(name);
    let registrable = psl::domain(name.as_bytes()).filter(|domain| domain.suffix().is_known());
    match registrable {
        Some(domain) => String::from_utf8_lossy(domain.as_bytes()).into_owned(),
        None if psl::suffix(name.as_bytes()).is_some_and(|suffix| suffix.is_known()) => name,
        None => last_labels(&name, 2).to_string(),
    }
}

/// The last `count` labels of `name` (all of it when it has fewer).
fn last_labels(name: &str, count: usize) -> &str {
    if count == 0 {
        return name;
    }
    match name.rmatch_indices('.').nth(count - 1) {
        Some((dot, _)) => &name[dot + 1..],
        None => name,
    }
}

/// Whether the authenticated domain aligns with the From domain in `mode` (RFC 9989 §4.4):
/// equal names (strict), or equal organizational domains (relaxed). `None` for an
/// organizational domain means a DNS failure kept it unknown: then only equal names align.
pub fn aligned(
    authenticated: &str,
    authenticated_organizational: Option<&str>,
    from: &str,
    from_organizational: Option<&str>,
    mode: AlignmentMode,
) -> bool {
    let (authenticated, from) = (normalize(authenticated), normalize(from));
    if authenticated.is_empty() || from.is_empty() {
        return false;
    }
    if authenticated == from {
        return true;
    }
    match (mode, authenticated_organizational, from_organizational) {
        (AlignmentMode::Relaxed, Some(a), Some(f)) => normalize(a) == normalize(f),
        _ => false,
    }
}

/// Alignment as a receiver following RFC 7489 §3.1 decides it, with Public Suffix List
/// organizational domains.
pub fn psl_aligned(authenticated: &str, from: &str, mode: AlignmentMode) -> bool {
    let (a, f) = (
        psl_organizational_domain(authenticated),
        psl_organizational_domain(from),
    );
    aligned(authenticated, Some(&a), from, Some(&f), mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domain_follows_the_public_suffix_list() {
        assert_eq!(psl_organizational_domain("mail.example.com"), "example.com");
        assert_eq!(
            psl_organizational_domain("a.b.example.co.uk"),
            "example.co.uk"
        );
        assert_eq!(psl_organizational_domain("Example.COM."), "example.com");
        assert_eq!(
            psl_organizational_domain("someone.github.io"),
            "someone.github.io"
        );
    }

    #[test]
    fn unknown_top_level_domains_take_the_last_two_labels() {
        assert_eq!(
            psl_organizational_domain("mail.example.test"),
            "example.test"
        );
        assert_eq!(
            psl_organizational_domain("a.b.c.example.localhost"),
            "example.localhost"
        );
        assert_eq!(psl_organizational_domain("example.test"), "example.test");
        assert_eq!(psl_organizational_domain("localhost"), "localhost");
    }

    #[test]
    fn a_public_suffix_is_its_own_psl_organizational_domain() {
        assert_eq!(psl_organizational_domain("co.uk"), "co.uk");
        assert_eq!(psl_organizational_domain("com"), "com");
    }

    #[test]
    fn relaxed_psl_alignment_compares_organizational_domains() {
        assert!(psl_aligned(
            "mail.example.test",
            "example.test",
            AlignmentMode::Relaxed
        ));
        assert!(psl_aligned(
            "bounce.Example.COM.",
            "news.example.com",
            AlignmentMode::Relaxed
        ));
        assert!(!psl_aligned(
            "example.org",
            "example.com",
            AlignmentMode::Relaxed
        ));
        assert!(!psl_aligned("a.co.uk", "b.co.uk", AlignmentMode::Relaxed));
    }

    #[test]
    fn strict_alignment_needs_equal_names() {
        assert!(psl_aligned(
            "Example.test.",
            "example.test",
            AlignmentMode::Strict
        ));
        assert!(!psl_aligned(
            "mail.example.test",
            "example.test",
            AlignmentMode::Strict
        ));
    }

    #[test]
    fn an_empty_domain_never_aligns() {
        assert!(!psl_aligned("", "", AlignmentMode::Relaxed));
        assert!(!psl_aligned("example.test", "", AlignmentMode::Strict));
    }

    #[test]
    fn a_walk_asks_the_domain_then_each_parent() {
        assert_eq!(
            tree_walk_names("a.mail.example.com"),
            [
                "a.mail.example.com",
                "mail.example.com",
                "example.com",
                "com"
            ]
        );
        assert_eq!(tree_walk_names("com"), ["com"]);
    }

    #[test]
    fn a_long_name_shortcuts_to_seven_labels_and_stays_within_eight_queries() {
        let names = tree_walk_names("a.b.c.d.e.f.g.h.i.j.mail.example.com");
        assert_eq!(names.len(), WALK_QUERY_LIMIT);
        assert_eq!(names[0], "a.b.c.d.e.f.g.h.i.j.mail.example.com");
        assert_eq!(names[1], "g.h.i.j.mail.example.com");
        assert_eq!(names[7], "com");
        let eight = tree_walk_names("a.b.c.d.e.f.example.com");
        assert_eq!(eight.len(), 8);
        assert_eq!(eight[1], "b.c.d.e.f.example.com");
    }

    #[test]
    fn organizational_domain_rules_in_order() {
        let walk = |found: &[(&str, Psd)]| {
            let found: Vec<(String, Psd)> =
                found.iter().map(|(n, p)| (n.to_string(), *p)).collect();
            organizational_domain_from_walk("a.b.example.com", &found).0
        };
        assert_eq!(walk(&[]), "a.b.example.com");
        assert_eq!(
            walk(&[("b.example.com", Psd::U), ("example.com", Psd::U)]),
            "example.com"
        );
        assert_eq!(
            walk(&[("b.example.com", Psd::N), ("example.com", Psd::U)]),
            "b.example.com"
        );
        assert_eq!(walk(&[("com", Psd::Y)]), "example.com");
        assert_eq!(walk(&[("example.com", Psd::Y)]), "b.example.com");
        assert_eq!(walk(&[("a.b.example.com", Psd::Y)]), "a.b.example.com");
    }

    #[test]
    fn relaxed_alignment_needs_known_equal_organizational_domains() {
        let relaxed = AlignmentMode::Relaxed;
        assert!(aligned(
            "mail.example.com",
            Some("example.com"),
            "example.com",
            Some("example.com"),
            relaxed
        ));
        assert!(!aligned(
            "mail.example.com",
            Some("mail.example.com"),
            "example.com",
            Some("example.com"),
            relaxed
        ));
        assert!(!aligned(
            "mail.example.com",
            None,
            "example.com",
            Some("example.com"),
            relaxed
        ));
        assert!(aligned(
            "Example.com.",
            None,
            "example.com",
            None,
            AlignmentMode::Strict
        ));
    }
}
