//! What a person reads about an SPF check: the trace through `include:` and `redirect=`, the
//! deciding term, the reason, the explanation, and how the HELO and null-sender identities and
//! unusable HELO names are reported.

use std::net::IpAddr;
use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_verifier::spf::{check_helo, check_mail_from, not_checked};
use authcheck_verifier::{Dns, DnsConfig, SpfCheck, SpfIdentityKind, SpfResult, SpfTermOutcome};

const TIME_LIMIT: Duration = Duration::from_secs(10);

fn dns_for(server: &TestDns) -> Dns {
    Dns::new(&DnsConfig {
        servers: vec![server.addr()],
        query_timeout: Duration::from_millis(300),
        attempts: 1,
        ..DnsConfig::default()
    })
    .expect("DNS client")
}

async fn check(server: &TestDns, ip: &str, mail_from: &str) -> SpfCheck {
    let ip: IpAddr = ip.parse().unwrap();
    check_mail_from(
        &dns_for(server),
        ip,
        mail_from,
        "mail.example.test",
        TIME_LIMIT,
    )
    .await
}

/// example.test includes a.example.test, which includes b.example.test, which lists 192.0.2.1.
async fn include_chain() -> TestDns {
    let server = TestDns::start().await;
    server.add_txt(
        "example.test",
        "v=spf1 ip4:198.51.100.0/24 include:a.example.test -all",
    );
    server.add_txt("a.example.test", "v=spf1 include:b.example.test ?all");
    server.add_txt("b.example.test", "v=spf1 ip4:192.0.2.1 -all");
    server
}

#[tokio::test]
async fn an_include_chain_shows_nested_steps_and_the_deciding_term() {
    let server = include_chain().await;
    let spf = check(&server, "192.0.2.1", "user@example.test").await;
    assert_eq!(spf.result, SpfResult::Pass, "{}", spf.reason);
    assert_eq!(spf.decided_by.as_deref(), Some("include:a.example.test"));
    assert_eq!(
        spf.records,
        vec!["v=spf1 ip4:198.51.100.0/24 include:a.example.test -all".to_string()]
    );
    assert_eq!(
        spf.reason,
        "192.0.2.1 is permitted by example.test; include:a.example.test matched"
    );

    let terms: Vec<(&str, SpfTermOutcome)> = spf
        .trace
        .iter()
        .map(|s| (s.term.as_str(), s.outcome))
        .collect();
    assert_eq!(
        terms,
        [
            ("ip4:198.51.100.0/24", SpfTermOutcome::NoMatch),
            ("include:a.example.test", SpfTermOutcome::Match),
            ("-all", SpfTermOutcome::Ignored),
        ]
    );
    let include_a = &spf.trace[1];
    assert_eq!(include_a.domain, "example.test");
    let include_b = &include_a.nested[0];
    assert_eq!(
        (include_b.domain.as_str(), include_b.term.as_str()),
        ("a.example.test", "include:b.example.test")
    );
    let listed = &include_b.nested[0];
    assert_eq!(
        (listed.domain.as_str(), listed.term.as_str()),
        ("b.example.test", "ip4:192.0.2.1")
    );
    assert_eq!(listed.outcome, SpfTermOutcome::Match);
    assert_eq!(spf.dns_lookups, 2);
}

#[tokio::test]
async fn a_failing_check_names_all_and_says_why() {
    let server = include_chain().await;
    let spf = check(&server, "203.0.113.9", "user@example.test").await;
    assert_eq!(spf.result, SpfResult::Fail, "{}", spf.reason);
    assert_eq!(spf.decided_by.as_deref(), Some("-all"));
    assert_eq!(
        spf.reason,
        "203.0.113.9 is not permitted by example.test; -all matched"
    );
    let include_a = &spf.trace[1];
    assert_eq!(include_a.outcome, SpfTermOutcome::NoMatch);
    assert!(include_a.detail.contains("neutral"), "{}", include_a.detail);
}

#[tokio::test]
async fn redirect_is_followed_and_its_target_supplies_the_explanation() {
    let server = TestDns::start().await;
    server.add_txt(
        "example.test",
        "v=spf1 ip4:198.51.100.1 redirect=_spf.example.test exp=ignored.example.test",
    );
    server.add_txt(
        "_spf.example.test",
        "v=spf1 a:%{l}.hosts.example.test -all exp=why.example.test",
    );
    server.add_txt(
        "why.example.test",
        "%{i} may not send for %{o} (checked %{d})",
    );
    server.add_a("alice.hosts.example.test", "192.0.2.1".parse().unwrap());

    // The mapped form of an IPv4 address is treated as IPv4.
    let pass = check(&server, "::ffff:192.0.2.1", "alice@example.test").await;
    assert_eq!(pass.result, SpfResult::Pass, "{}", pass.reason);
    assert_eq!(
        pass.decided_by.as_deref(),
        Some("a:%{l}.hosts.example.test")
    );
    let redirect = pass
        .trace
        .iter()
        .find(|s| s.term == "redirect=_spf.example.test")
        .expect("redirect step");
    assert_eq!(redirect.outcome, SpfTermOutcome::Applied);
    assert_eq!(redirect.nested[0].domain, "_spf.example.test");
    assert!(
        redirect.nested[0]
            .detail
            .contains("alice.hosts.example.test"),
        "{}",
        redirect.nested[0].detail
    );

    let fail = check(&server, "192.0.2.1", "bob@example.test").await;
    assert_eq!(fail.result, SpfResult::Fail, "{}", fail.reason);
    assert_eq!(
        fail.explanation.as_deref(),
        Some("192.0.2.1 may not send for example.test (checked _spf.example.test)")
    );
    assert!(fail.reason.contains("_spf.example.test"), "{}", fail.reason);
}

#[tokio::test]
async fn syntax_errors_name_the_bad_term() {
    let server = TestDns::start().await;
    server.add_txt("example.test", "v=spf1 ip4:192.0.2.1 ip4:192.0.2.300 -all");
    let spf = check(&server, "192.0.2.1", "user@example.test").await;
    assert_eq!(spf.result, SpfResult::Permerror);
    assert!(spf.reason.contains("'ip4:192.0.2.300'"), "{}", spf.reason);
}

#[tokio::test]
async fn a_domain_without_spf_gives_none() {
    let server = TestDns::start().await;
    server.add_txt("example.test", "some other TXT record");
    let spf = check(&server, "192.0.2.1", "user@example.test").await;
    assert_eq!(spf.result, SpfResult::None);
    assert!(spf.records.is_empty());
    assert!(spf.reason.contains("no SPF record"), "{}", spf.reason);
}

#[tokio::test]
async fn the_null_sender_is_checked_as_postmaster_at_the_helo_name() {
    let server = TestDns::start().await;
    server.add_txt("mail.example.test", "v=spf1 ip4:192.0.2.1 -all");
    let spf = check(&server, "192.0.2.1", "").await;
    assert_eq!(spf.identity_kind, SpfIdentityKind::Helo);
    assert_eq!(spf.identity, "postmaster@mail.example.test");
    assert_eq!(spf.domain, "mail.example.test");
    assert_eq!(spf.result, SpfResult::Pass, "{}", spf.reason);

    let with_sender = check(&server, "192.0.2.1", "user@mail.example.test").await;
    assert_eq!(with_sender.identity_kind, SpfIdentityKind::Mailfrom);
    assert_eq!(with_sender.identity, "user@mail.example.test");
}

#[tokio::test]
async fn helo_names_that_are_not_domains_give_none_with_a_reason() {
    let server = TestDns::start().await;
    let dns = dns_for(&server);
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    for helo in ["[192.0.2.1]", "192.0.2.1", "localhost"] {
        let spf = check_helo(&dns, ip, helo, TIME_LIMIT).await;
        assert_eq!(spf.result, SpfResult::None, "{helo}");
        assert!(spf.checked);
        assert!(
            spf.reason.contains(helo) && spf.reason.contains("HELO"),
            "{}",
            spf.reason
        );
    }
    assert_eq!(
        server.query_count(),
        0,
        "nothing is looked up for names that cannot have a record"
    );
}

#[test]
fn a_check_that_could_not_run_says_so() {
    let spf = not_checked(
        SpfIdentityKind::Mailfrom,
        "user@example.test",
        "example.test",
        "no client IP address is known",
    );
    assert!(!spf.checked);
    assert_eq!(spf.result, SpfResult::None);
    assert_eq!(spf.reason, "no client IP address is known");
    assert_eq!((spf.dns_lookup_limit, spf.void_lookup_limit), (10, 2));
}
