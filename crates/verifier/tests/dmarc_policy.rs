//! DMARC through the whole verifier: policy discovery, relaxed and strict alignment, the
//! organizational-domain rule for `.test`, `sp=` for subdomains, and From field problems.
//!
//! 192.0.2.10 may send for every domain in the zone; 198.51.100.7 for none, so mail from it
//! passes DMARC only through DKIM.

mod common;

use authcheck_testdns::{Behaviour, TestDns};
use authcheck_verifier::{AlignmentMode, DmarcResult, Report};
use common::{
    OTHER_IP, SENDER_IP, SENDER_SPF, SignOptions, TestKey, message, publish_keys, publish_spf,
    sign, verifier, verify,
};

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    publish_spf(
        &dns,
        SENDER_SPF,
        &[
            "sender.test",
            "mail.sender.test",
            "strict.test",
            "mail.strict.test",
            "nodmarc.test",
            "flaky.test",
            "sp.test",
            "sub.sp.test",
            "pct.test",
            "invalid.test",
            "reporting.test",
            "twice.test",
        ],
    );
    dns.add_txt(
        "_dmarc.sender.test",
        "v=DMARC1; p=reject; rua=mailto:dmarc@sender.test",
    );
    dns.add_txt(
        "_dmarc.strict.test",
        "v=DMARC1; p=quarantine; aspf=s; adkim=s",
    );
    dns.set_behaviour("_dmarc.flaky.test", Behaviour::ServFail);
    dns.add_txt("_dmarc.sp.test", "v=DMARC1; p=reject; sp=quarantine");
    dns.add_txt("_dmarc.pct.test", "v=DMARC1; p=reject; pct=25");
    dns.add_txt("_dmarc.invalid.test", "v=DMARC1; p=bounce");
    dns.add_txt(
        "_dmarc.reporting.test",
        "v=DMARC1; p=bounce; rua=mailto:reports@reporting.test",
    );
    dns.add_txt("_dmarc.twice.test", "v=DMARC1; p=reject");
    dns.add_txt("_dmarc.twice.test", "v=DMARC1; p=none");
    for domain in [
        "sender.test",
        "mail.sender.test",
        "strict.test",
        "mail.strict.test",
    ] {
        publish_keys(&dns, domain);
    }
    dns
}

async fn check(dns: &TestDns, ip: &str, mail_from: &str, message: &[u8]) -> Report {
    verify(
        &verifier(dns),
        ip,
        "client.example.test",
        mail_from,
        message,
    )
    .await
}

fn from(address: &str) -> Vec<u8> {
    message(address, "dmarc test", "Hello.\r\n")
}

fn signed(message: &[u8], domain: &str) -> Vec<u8> {
    sign(message, &SignOptions::new(domain, TestKey::Ed25519))
}

#[tokio::test]
async fn relaxed_spf_alignment_accepts_a_subdomain_mail_from() {
    let dns = zone().await;
    let report = check(
        &dns,
        SENDER_IP,
        "bounce@mail.sender.test",
        &from("alice@sender.test"),
    )
    .await;
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Pass,
        "{}",
        report.dmarc.reason
    );
    assert_eq!(report.dmarc.spf_alignment.mode, AlignmentMode::Relaxed);
    assert!(report.spf.aligned);
    assert_eq!(report.verdicts.spf.to_string(), "|OK| spf-pass");
    assert_eq!(report.dmarc.policy, "none");
    let record = report.dmarc.record.as_ref().unwrap();
    assert_eq!(record.name, "_dmarc.sender.test");
    assert_eq!(record.p, "reject");
    assert_eq!(record.rua, ["mailto:dmarc@sender.test"]);
}

#[tokio::test]
async fn strict_spf_alignment_needs_the_exact_domain() {
    let dns = zone().await;
    let report = check(
        &dns,
        SENDER_IP,
        "bounce@mail.strict.test",
        &from("alice@strict.test"),
    )
    .await;
    assert_eq!(report.spf.check.result.as_str(), "pass");
    assert_eq!(report.dmarc.spf_alignment.mode, AlignmentMode::Strict);
    assert!(!report.spf.aligned);
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-diff !!");
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "quarantine");
    assert!(
        report.dmarc.reason.contains("strict"),
        "{}",
        report.dmarc.reason
    );

    let report = check(
        &dns,
        SENDER_IP,
        "bounce@strict.test",
        &from("alice@strict.test"),
    )
    .await;
    assert!(report.spf.aligned);
    assert_eq!(report.dmarc.result, DmarcResult::Pass);
}

#[tokio::test]
async fn dkim_alignment_is_relaxed_unless_the_record_says_strict() {
    let dns = zone().await;
    // d=mail.sender.test for From sender.test: aligned in relaxed mode.
    let relaxed = signed(&from("alice@sender.test"), "mail.sender.test");
    let report = check(&dns, OTHER_IP, "alice@sender.test", &relaxed).await;
    assert!(report.dkim[0].aligned);
    assert_eq!(report.verdicts.dkim.to_string(), "|OK| dkim-pass");
    assert_eq!(report.dmarc.result, DmarcResult::Pass);
    assert_eq!(
        report.dmarc.dkim_alignment.domain.as_deref(),
        Some("mail.sender.test")
    );

    // d=mail.strict.test for From strict.test under adkim=s: not aligned.
    let strict = signed(&from("alice@strict.test"), "mail.strict.test");
    let report = check(&dns, OTHER_IP, "alice@strict.test", &strict).await;
    assert_eq!(report.dkim[0].result.as_str(), "pass");
    assert!(!report.dkim[0].aligned);
    assert_eq!(report.dmarc.dkim_alignment.mode, AlignmentMode::Strict);
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-diff !!");
    assert_eq!(report.dmarc.result, DmarcResult::Fail);

    // The exact domain aligns even in strict mode.
    let exact = signed(&from("alice@strict.test"), "strict.test");
    let report = check(&dns, OTHER_IP, "alice@strict.test", &exact).await;
    assert!(report.dkim[0].aligned);
    assert_eq!(report.dmarc.result, DmarcResult::Pass);
}

#[tokio::test]
async fn no_record_means_none() {
    let dns = zone().await;
    let report = check(
        &dns,
        SENDER_IP,
        "alice@nodmarc.test",
        &from("alice@nodmarc.test"),
    )
    .await;
    assert_eq!(report.dmarc.result, DmarcResult::None);
    assert!(report.dmarc.record.is_none());
    assert_eq!(report.dmarc.policy, "none");
    assert!(
        report.dmarc.reason.contains("_dmarc.nodmarc.test"),
        "{}",
        report.dmarc.reason
    );
    // Alignment is still worked out (relaxed) for the verdicts.
    assert!(report.spf.aligned);
    assert_eq!(report.verdicts.spf.to_string(), "|OK| spf-pass");
}

#[tokio::test]
async fn a_dns_failure_fetching_the_record_is_temperror() {
    let dns = zone().await;
    let report = check(
        &dns,
        SENDER_IP,
        "alice@flaky.test",
        &from("alice@flaky.test"),
    )
    .await;
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Temperror,
        "{}",
        report.dmarc.reason
    );
    assert_eq!(report.dmarc.policy, "none");
}

#[tokio::test]
async fn a_record_is_looked_up_at_the_organizational_domain_of_a_test_name() {
    let dns = zone().await;
    let report = check(
        &dns,
        SENDER_IP,
        "alice@sender.test",
        &from("alice@news.eu.sender.test"),
    )
    .await;
    assert_eq!(
        report.dmarc.from_domain.as_deref(),
        Some("news.eu.sender.test")
    );
    assert_eq!(
        report.dmarc.organizational_domain.as_deref(),
        Some("sender.test")
    );
    assert_eq!(
        report.dmarc.record.as_ref().map(|r| r.name.as_str()),
        Some("_dmarc.sender.test")
    );
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Pass,
        "{}",
        report.dmarc.reason
    );
    assert!(
        report.spf.aligned,
        "sender.test aligns with news.eu.sender.test (relaxed)"
    );
}

#[tokio::test]
async fn subdomains_get_the_sp_policy() {
    let dns = zone().await;
    let report = check(
        &dns,
        OTHER_IP,
        "alice@sub.sp.test",
        &from("alice@sub.sp.test"),
    )
    .await;
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(
        report.dmarc.record.as_ref().unwrap().sp.as_deref(),
        Some("quarantine")
    );
    assert_eq!(report.dmarc.policy, "quarantine");

    let report = check(&dns, OTHER_IP, "alice@sp.test", &from("alice@sp.test")).await;
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "reject");

    // Without sp=, a subdomain gets p=.
    let report = check(
        &dns,
        OTHER_IP,
        "alice@sender.test",
        &from("alice@mail.sender.test"),
    )
    .await;
    assert_eq!(report.dmarc.policy, "reject");
}

/// RFC 9989 removed `pct`: the whole policy applies, the record gets a note, and the report
/// says that RFC 7489 receivers would apply it to a quarter of failing messages only.
#[tokio::test]
async fn a_partial_pct_is_removed_and_explained() {
    let dns = zone().await;
    let report = check(&dns, OTHER_IP, "alice@pct.test", &from("alice@pct.test")).await;
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "reject");
    let record = report.dmarc.record.as_ref().unwrap();
    assert_eq!(record.pct, 25);
    assert_eq!(record.removed_tags, ["pct=25"]);
    let notes = report.dmarc.notes.join(" ");
    assert!(notes.contains("pct=25"), "{notes}");
    let differences = report.dmarc.rfc7489_differences.join(" ");
    assert!(
        differences.contains("pct=25") && differences.contains("quarantine"),
        "{differences}"
    );
}

#[tokio::test]
async fn invalid_or_duplicate_records_give_no_policy() {
    let dns = zone().await;
    let report = check(
        &dns,
        OTHER_IP,
        "alice@invalid.test",
        &from("alice@invalid.test"),
    )
    .await;
    assert_eq!(report.dmarc.result, DmarcResult::None);
    assert!(
        report.dmarc.reason.contains("p=bounce"),
        "{}",
        report.dmarc.reason
    );

    let report = check(
        &dns,
        OTHER_IP,
        "alice@twice.test",
        &from("alice@twice.test"),
    )
    .await;
    assert_eq!(report.dmarc.result, DmarcResult::None);
    assert!(
        report.dmarc.reason.contains("2 DMARC records"),
        "{}",
        report.dmarc.reason
    );

    // An invalid policy next to a report address counts as p=none (RFC 7489 §6.6.3).
    let report = check(
        &dns,
        OTHER_IP,
        "alice@reporting.test",
        &from("alice@reporting.test"),
    )
    .await;
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "none");
    assert!(
        report.dmarc.reason.contains("p=none"),
        "{}",
        report.dmarc.reason
    );
}

#[tokio::test]
async fn from_field_problems_make_dmarc_permerror() {
    let dns = zone().await;
    let base = "To: spf@tester.test\r\nSubject: x\r\n\r\nbody\r\n";
    let cases = [
        (
            "From: alice@sender.test\r\nFrom: bob@sender.test\r\n",
            "2 From header fields",
        ),
        ("From: alice@sender.test, bob@other.test\r\n", "2 addresses"),
        ("From: Alice Only\r\n", "From"),
        ("From: alice@[192.0.2.1]\r\n", "not a valid domain name"),
    ];
    for (from_fields, problem) in cases {
        let message = format!("{from_fields}{base}");
        let report = check(&dns, SENDER_IP, "alice@sender.test", message.as_bytes()).await;
        assert_eq!(
            report.dmarc.result,
            DmarcResult::Permerror,
            "{from_fields:?}"
        );
        let described = report.dmarc.problem.as_deref().unwrap_or_default();
        assert!(described.contains(problem), "{from_fields:?}: {described}");
        assert!(report.dmarc.record.is_none());
    }
}

#[tokio::test]
async fn a_message_without_from_is_dmarc_none_with_the_problem_named() {
    let dns = zone().await;
    let message = b"To: spf@tester.test\r\nSubject: no author\r\n\r\nbody\r\n";
    let report = check(&dns, SENDER_IP, "alice@sender.test", message).await;
    assert_eq!(report.dmarc.result, DmarcResult::None);
    assert_eq!(report.dmarc.from_domain, None);
    assert!(
        report
            .dmarc
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("no From"))
    );
    assert!(!report.spf.aligned, "nothing aligns without a From domain");
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-diff !!");
}

#[tokio::test]
async fn the_from_domain_record_wins_over_the_organizational_one() {
    let dns = zone().await;
    dns.add_txt("_dmarc.mail.sender.test", "v=DMARC1; p=none");
    let report = check(
        &dns,
        OTHER_IP,
        "alice@sender.test",
        &from("alice@mail.sender.test"),
    )
    .await;
    assert_eq!(
        report.dmarc.record.as_ref().map(|r| r.name.as_str()),
        Some("_dmarc.mail.sender.test")
    );
    assert_eq!(report.dmarc.result, DmarcResult::Fail);
    assert_eq!(report.dmarc.policy, "none");
}
