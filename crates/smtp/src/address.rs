//! The recipient policy: only the tester mailboxes `spf@`, `dkim@` and `check@`, the private
//! test addresses `test-<token>@` (whether the token is open is the delivery's to say), and
//! the report mailboxes `rua@` and `ruf@` (each with an optional `+tag` of letters, digits and `._=-`) at a tester
//! domain, and no way of naming another domain — the listener must never look like a relay.
//!
//! smtp-proto's parser silently drops source routes and quotes, so these checks read the path
//! exactly as the client wrote it in the command line.

use crate::delivery::{Destination, Mailbox, PrivateToken, Recipient, ReportMailbox};

/// Why a recipient is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// At a tester domain, but not `spf`, `dkim`, `check`, `rua` or `ruf`.
    NoSuchMailbox,
    /// Another domain, or a form that could route to one.
    RelayDenied,
    /// Not an address at all.
    Syntax,
}

/// The text between `<` and its closing `>` in a `MAIL FROM:` or `RCPT TO:` line, as written.
/// A `>` inside a quoted string does not close the path.
pub(crate) fn path_in_line(line: &str) -> Option<&str> {
    let after_colon = &line[line.find(':')? + 1..];
    let path = after_colon.trim_start().strip_prefix('<')?;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in path.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '>' if !in_quotes => return Some(&path[..i]),
            _ => {}
        }
    }
    None
}

/// The reverse-path to record: as written, minus an obsolete source route (`@a,@b:`), which
/// RFC 5321 section 4.1.1.2 tells servers to ignore.
pub(crate) fn reverse_path(path: &str) -> &str {
    match path.strip_prefix('@') {
        Some(routed) => routed.split_once(':').map_or(path, |(_, address)| address),
        None => path,
    }
}

/// Decides whether `path` (a forward-path as written, without angle brackets) names a tester
/// or report mailbox at one of `domains` (lowercase).
pub(crate) fn check_recipient(path: &str, domains: &[String]) -> Result<Recipient, Refusal> {
    if path.is_empty() {
        return Err(Refusal::Syntax);
    }
    // A source route names the hosts to relay through.
    if path.starts_with('@') {
        return Err(Refusal::RelayDenied);
    }
    // Quoted local parts can hide `@`, `%` or `!` routing from simple checks.
    if path.contains(['"', '\\']) {
        return Err(Refusal::RelayDenied);
    }
    let Some((local, domain)) = path.rsplit_once('@') else {
        return if path.eq_ignore_ascii_case("postmaster") {
            Err(Refusal::NoSuchMailbox)
        } else {
            Err(Refusal::Syntax)
        };
    };
    if local.is_empty() || domain.is_empty() {
        return Err(Refusal::Syntax);
    }
    // `%` (the percent hack), `!` (UUCP bang paths) and a second `@` all route onward.
    if local.contains(['%', '!', '@']) {
        return Err(Refusal::RelayDenied);
    }
    // An address literal or a trailing dot would let `spf@` reach a host not in `domains`.
    if domain.starts_with('[') || domain.ends_with('.') {
        return Err(Refusal::RelayDenied);
    }
    let domain = domain.to_ascii_lowercase();
    if !domains.contains(&domain) {
        return Err(Refusal::RelayDenied);
    }
    let (mailbox_name, tag) = local.split_once('+').unwrap_or((local, ""));
    let Some(destination) = destination_named(mailbox_name) else {
        return Err(Refusal::NoSuchMailbox);
    };
    // The tag is shown on pages and in logs and used to find results: plain characters only.
    if !tag.chars().all(is_tag_character) {
        return Err(Refusal::Syntax);
    }
    Ok(Recipient {
        address: path.to_string(),
        destination,
    })
}

/// The mailbox a local part (without its `+tag`) names, in any case.
fn destination_named(local_part: &str) -> Option<Destination> {
    if let Some(mailbox) = Mailbox::parse(local_part) {
        return Some(Destination::Test(mailbox));
    }
    if let Some(token) = PrivateToken::from_local_part(local_part) {
        return Some(Destination::Private(token));
    }
    [ReportMailbox::Aggregate, ReportMailbox::Failure]
        .into_iter()
        .find(|mailbox| local_part.eq_ignore_ascii_case(mailbox.as_str()))
        .map(Destination::Reports)
}

fn is_tag_character(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '=' | '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains() -> Vec<String> {
        vec!["tester.example".to_string(), "second.test".to_string()]
    }

    fn check(path: &str) -> Result<Recipient, Refusal> {
        check_recipient(path, &domains())
    }

    fn destination(path: &str) -> Destination {
        check(path).unwrap().destination
    }

    const SPF: Destination = Destination::Test(Mailbox::Spf);
    const DKIM: Destination = Destination::Test(Mailbox::Dkim);
    const CHECK: Destination = Destination::Test(Mailbox::Check);
    const RUA: Destination = Destination::Reports(ReportMailbox::Aggregate);
    const RUF: Destination = Destination::Reports(ReportMailbox::Failure);

    #[test]
    fn spf_and_dkim_at_each_tester_domain_are_accepted() {
        assert_eq!(destination("spf@tester.example"), SPF);
        assert_eq!(destination("dkim@tester.example"), DKIM);
        assert_eq!(destination("dkim@second.test"), DKIM);
    }

    #[test]
    fn check_at_each_tester_domain_is_the_full_check_with_a_tag_in_any_case() {
        assert_eq!(destination("check@tester.example"), CHECK);
        assert_eq!(destination("CHECK@Second.Test"), CHECK);
        let recipient = check("check+run-7@tester.example").unwrap();
        assert_eq!(recipient.destination, CHECK);
        assert_eq!(recipient.address, "check+run-7@tester.example");
        assert_eq!(check("check+a b@tester.example"), Err(Refusal::Syntax));
        assert_eq!(check("check@other.example"), Err(Refusal::RelayDenied));
        assert_eq!(check("checks@tester.example"), Err(Refusal::NoSuchMailbox));
    }

    #[test]
    fn a_private_test_address_names_its_token_in_any_case() {
        let token = PrivateToken::parse("abcdefghijklmnopqrst").unwrap();
        let private = Destination::Private(token);
        assert_eq!(
            destination("test-abcdefghijklmnopqrst@tester.example"),
            private
        );
        assert_eq!(
            destination("TEST-ABCDEFGHIJKLMNOPQRST@Tester.Example"),
            private
        );
        assert_eq!(
            destination("test-abcdefghijklmnopqrst+x@second.test"),
            private
        );
        for path in [
            "test-@tester.example",
            "test-abcdefghijklmnopqrs@tester.example",
            "test-abcdefghijklmnopqrs1@tester.example",
            "test-abcdefghijklmnopqrstu@tester.example",
            "test@tester.example",
        ] {
            assert_eq!(check(path), Err(Refusal::NoSuchMailbox), "{path}");
        }
        assert_eq!(
            check("test-abcdefghijklmnopqrst@other.example"),
            Err(Refusal::RelayDenied)
        );
    }

    #[test]
    fn rua_and_ruf_at_each_tester_domain_are_report_mailboxes() {
        assert_eq!(destination("rua@tester.example"), RUA);
        assert_eq!(destination("ruf@second.test"), RUF);
        assert_eq!(destination("RUA@Tester.Example"), RUA);
        assert_eq!(destination("rua+example.org@tester.example"), RUA);
        assert_eq!(destination("ruf+a.b_c=d-9@tester.example"), RUF);
        assert_eq!(
            check("rua+a b@tester.example"),
            Err(Refusal::Syntax),
            "a report mailbox's tag follows the same rule"
        );
        assert_eq!(check("rua@other.example"), Err(Refusal::RelayDenied));
        assert_eq!(
            check("rua%other.example@tester.example"),
            Err(Refusal::RelayDenied)
        );
    }

    #[test]
    fn case_is_ignored_in_local_part_and_domain_but_kept_in_the_address() {
        let recipient = check("SpF@Tester.EXAMPLE").unwrap();
        assert_eq!(recipient.destination, SPF);
        assert_eq!(recipient.address, "SpF@Tester.EXAMPLE");
    }

    #[test]
    fn a_plus_tag_is_allowed_and_kept() {
        let recipient = check("dkim+run-42@tester.example").unwrap();
        assert_eq!(recipient.destination, DKIM);
        assert_eq!(recipient.address, "dkim+run-42@tester.example");
        assert_eq!(destination("spf+@tester.example"), SPF);
        assert!(check("spf+a.b_c=d-9@tester.example").is_ok());
    }

    #[test]
    fn a_tag_with_other_characters_is_a_syntax_error() {
        for path in [
            "spf+a\rb@tester.example",
            "spf+a b@tester.example",
            "dkim+caf\u{e9}@tester.example",
            "dkim+a/b@tester.example",
            "spf+a+b@tester.example",
            "spf+\u{1b}[31m@tester.example",
        ] {
            assert_eq!(check(path), Err(Refusal::Syntax), "{path:?}");
        }
    }

    #[test]
    fn other_local_parts_at_a_tester_domain_are_unknown_mailboxes() {
        for path in [
            "bob@tester.example",
            "spfx@tester.example",
            "dmarc@tester.example",
            "ruax@tester.example",
            "rufus@tester.example",
            "postmaster",
        ] {
            assert_eq!(check(path), Err(Refusal::NoSuchMailbox), "{path}");
        }
    }

    #[test]
    fn every_way_of_naming_another_domain_is_relaying() {
        for path in [
            "spf@other.example",
            "spf@tester.example.evil.test",
            "spf@sub.tester.example",
            "@a.example,@b.example:spf@tester.example",
            "@tester.example:spf@other.example",
            "spf%other.example@tester.example",
            "other.example!spf@tester.example",
            "\"spf@other.example\"@tester.example",
            "\"spf\"@tester.example",
            "spf\\@x@tester.example",
            "spf@[127.0.0.1]",
            "spf@[IPv6:::1]",
            "spf@tester.example.",
        ] {
            assert_eq!(check(path), Err(Refusal::RelayDenied), "{path}");
        }
    }

    #[test]
    fn things_that_are_not_addresses_are_syntax_errors() {
        for path in ["", "spf", "spf@", "tester.example"] {
            assert_eq!(check(path), Err(Refusal::Syntax), "{path}");
        }
    }

    #[test]
    fn the_path_is_read_as_written_up_to_its_closing_bracket() {
        assert_eq!(
            path_in_line("RCPT TO:<spf@t.example> NOTIFY=NEVER\r\n"),
            Some("spf@t.example")
        );
        assert_eq!(
            path_in_line("RCPT TO: <@a,@b:spf@t.example>\r\n"),
            Some("@a,@b:spf@t.example")
        );
        assert_eq!(
            path_in_line("RCPT TO:<\"a>b\"@t.example>\r\n"),
            Some("\"a>b\"@t.example")
        );
        assert_eq!(path_in_line("MAIL FROM:<>\r\n"), Some(""));
        assert_eq!(path_in_line("RCPT TO:spf@t.example\r\n"), None);
    }

    #[test]
    fn the_reverse_path_loses_only_its_source_route() {
        assert_eq!(
            reverse_path("@relay.example:user@example.com"),
            "user@example.com"
        );
        assert_eq!(
            reverse_path("\"john doe\"@example.com"),
            "\"john doe\"@example.com"
        );
        assert_eq!(reverse_path(""), "");
    }
}
