//! Organizational domains and identifier alignment (RFC 7489 §3.2, §3.1).
//!
//! The organizational domain comes from the Public Suffix List compiled into the `psl` crate, so
//! no lookup ever leaves the process. A name under a top-level domain the list does not know
//! (`.test`, `.localhost`, `.example`, a private TLD) takes its last two labels, which is what the
//! list's implicit `*` rule means and what test setups expect: `mail.example.test` belongs to
//! `example.test`.

use crate::report::AlignmentMode;

/// `name` lowercased, without surrounding whitespace or a trailing dot: the form domains are
/// compared in.
pub fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The organizational domain of `name` (RFC 7489 §3.2), in normalized form.
///
/// A name that is itself a public suffix (`co.uk`) or has a single label is its own
/// organizational domain: there is nothing above it to belong to.
pub fn organizational_domain(name: &str) -> String {
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
    match name.rmatch_indices('.').nth(count - 1) {
        Some((dot, _)) => &name[dot + 1..],
        None => name,
    }
}

/// Whether the authenticated domain `authenticated` aligns with the From domain `from` in `mode`:
/// equal organizational domains (relaxed) or equal names (strict), ignoring case and a
/// trailing dot.
pub fn aligned(authenticated: &str, from: &str, mode: AlignmentMode) -> bool {
    let (authenticated, from) = (normalize(authenticated), normalize(from));
    if authenticated.is_empty() || from.is_empty() {
        return false;
    }
    match mode {
        AlignmentMode::Strict => authenticated == from,
        AlignmentMode::Relaxed => {
            authenticated == from
                || organizational_domain(&authenticated) == organizational_domain(&from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domain_follows_the_public_suffix_list() {
        assert_eq!(organizational_domain("mail.example.com"), "example.com");
        assert_eq!(organizational_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(organizational_domain("Example.COM."), "example.com");
        assert_eq!(
            organizational_domain("someone.github.io"),
            "someone.github.io"
        );
    }

    #[test]
    fn unknown_top_level_domains_take_the_last_two_labels() {
        assert_eq!(organizational_domain("mail.example.test"), "example.test");
        assert_eq!(
            organizational_domain("a.b.c.example.localhost"),
            "example.localhost"
        );
        assert_eq!(organizational_domain("example.test"), "example.test");
        assert_eq!(organizational_domain("localhost"), "localhost");
    }

    #[test]
    fn a_public_suffix_is_its_own_organizational_domain() {
        assert_eq!(organizational_domain("co.uk"), "co.uk");
        assert_eq!(organizational_domain("com"), "com");
    }

    #[test]
    fn relaxed_alignment_compares_organizational_domains() {
        assert!(aligned(
            "mail.example.test",
            "example.test",
            AlignmentMode::Relaxed
        ));
        assert!(aligned(
            "bounce.Example.COM.",
            "news.example.com",
            AlignmentMode::Relaxed
        ));
        assert!(!aligned(
            "example.org",
            "example.com",
            AlignmentMode::Relaxed
        ));
        assert!(!aligned("a.co.uk", "b.co.uk", AlignmentMode::Relaxed));
    }

    #[test]
    fn strict_alignment_needs_equal_names() {
        assert!(aligned(
            "Example.test.",
            "example.test",
            AlignmentMode::Strict
        ));
        assert!(!aligned(
            "mail.example.test",
            "example.test",
            AlignmentMode::Strict
        ));
    }

    #[test]
    fn an_empty_domain_never_aligns() {
        assert!(!aligned("", "", AlignmentMode::Relaxed));
        assert!(!aligned("example.test", "", AlignmentMode::Strict));
    }
}
