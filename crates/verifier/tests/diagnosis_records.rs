//! Records and policy advice, and third-party senders, through the whole verifier against a
//! loopback DNS server: each finding names the sender's own domain and values, and a clean
//! setup (one SPF record ending in -all, DMARC p=reject with rua, a 2048-bit key) gets none.

mod common;

use authcheck_testdns::TestDns;
use authcheck_verifier::Report;
use authcheck_verifier::diagnosis::{FindingCode, Severity};
use common::*;

/// A zone where sender.test is set up well; each test changes one thing.
async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    dns.add_txt(
        "_dmarc.sender.test",
        "v=DMARC1; p=reject; rua=mailto:dmarc@sender.test",
    );
    publish_keys(&dns, "sender.test");
    publish_keys(&dns, "esp.test");
    dns.add_txt("esp.test", "v=spf1 ip4:192.0.2.10 -all");
    dns
}

async fn check(dns: &TestDns, mail_from: &str, message: &[u8]) -> Report {
    verify(
        &verifier(dns),
        SENDER_IP,
        "mail.sender.test",
        mail_from,
        message,
    )
    .await
}

/// A letter from alice@sender.test signed by sender.test with `key`, as sent by sender.test.
async fn check_own_letter(dns: &TestDns, key: TestKey) -> Report {
    check(dns, "alice@sender.test", &letter(key, "sender.test")).await
}

fn letter(key: TestKey, domain: &str) -> Vec<u8> {
    sign(
        &message("alice@sender.test", "Hello", "Hi.\r\n"),
        &SignOptions::new(domain, key),
    )
}

#[tokio::test]
async fn a_well_set_up_sender_gets_no_findings() {
    let dns = zone().await;
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 -all");
    let report = check_own_letter(&dns, TestKey::Rsa2048).await;
    assert_eq!(report.verdicts.spf.to_string(), "|OK| spf-pass");
    assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
    // ed25519 keys are not "short".
    let report = check_own_letter(&dns, TestKey::Ed25519).await;
    assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
}

#[tokio::test]
async fn too_many_spf_lookups_are_counted_with_the_terms() {
    let dns = zone().await;
    let includes: String = (1..=11)
        .map(|n| format!(" include:s{n}.sender.test"))
        .collect();
    dns.add_txt("sender.test", &format!("v=spf1{includes} -all"));
    for n in 1..=11 {
        dns.add_txt(&format!("s{n}.sender.test"), "v=spf1 ip4:203.0.113.1 -all");
    }
    let report = check_own_letter(&dns, TestKey::Rsa2048).await;
    assert_verdict(report.verdicts.spf, "!! spf-permerror !!");
    let found = finding(&report, FindingCode::SpfTooManyLookups);
    assert_mentions(
        &found.title,
        "sender.test's SPF record needs more than 10 DNS lookups",
    );
    assert_mentions(&found.detail, "reached 11 lookups");
    assert_any_mentions(&found.evidence, "include:s1.sender.test");
}

#[tokio::test]
async fn several_records_void_lookups_and_unknown_terms_each_get_their_cause() {
    let dns = zone().await;
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 -all");
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.11 -all");
    let report = check_own_letter(&dns, TestKey::Rsa2048).await;
    let found = finding(&report, FindingCode::SpfSeveralRecords);
    assert_mentions(&found.title, "sender.test publishes 2 SPF records");
    assert_eq!(found.evidence.len(), 2);

    let dns = zone().await;
    dns.add_txt(
        "sender.test",
        "v=spf1 a:gone1.sender.test a:gone2.sender.test a:gone3.sender.test -all",
    );
    let report = check_own_letter(&dns, TestKey::Rsa2048).await;
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-permerror !!");
    finding(&report, FindingCode::SpfTooManyVoidLookups);

    let dns = zone().await;
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 foo:bar -all");
    let report = check_own_letter(&dns, TestKey::Rsa2048).await;
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-permerror !!");
    let found = finding(&report, FindingCode::SpfPermerror);
    assert_mentions(&found.title, "sender.test");
    assert_any_mentions(&found.evidence, "foo:bar");
}

#[tokio::test]
async fn soft_all_is_advice_not_alarm() {
    let dns = zone().await;
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 ~all");
    let report = check_own_letter(&dns, TestKey::Rsa2048).await;
    let found = finding(&report, FindingCode::SpfSoftAll);
    assert_eq!(found.severity, Severity::Info);
    assert!(found.evidence[0].contains("sender.test: v=spf1 ip4:192.0.2.10 ~all"));
}

#[tokio::test]
async fn dmarc_without_reports_and_with_p_none() {
    let dns = TestDns::start().await;
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 -all");
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=none");
    publish_keys(&dns, "sender.test");
    let report = check_own_letter(&dns, TestKey::Rsa2048).await;
    let no_reports = finding(&report, FindingCode::DmarcNoReports);
    assert!(
        no_reports
            .fix
            .as_deref()
            .unwrap()
            .contains("rua=mailto:dmarc-reports@sender.test")
    );
    let none = finding(&report, FindingCode::DmarcPolicyNone);
    assert!(none.fix.as_deref().unwrap().contains("p=quarantine"));
}

#[tokio::test]
async fn short_and_testing_keys() {
    let dns = zone().await;
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 -all");
    let report = check_own_letter(&dns, TestKey::Rsa1024).await;
    assert_verdict(report.verdicts.dkim, "|OK| dkim-pass");
    let found = finding(&report, FindingCode::DkimKeyShort);
    assert_mentions(
        &found.title,
        "rsa1024._domainkey.sender.test is only 1024 bits",
    );

    let dns = TestDns::start().await;
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 -all");
    dns.add_txt(
        "_dmarc.sender.test",
        "v=DMARC1; p=reject; rua=mailto:d@sender.test",
    );
    dns.add_txt(
        "rsa2048._domainkey.sender.test",
        &TestKey::Rsa2048
            .dns_record()
            .replace("v=DKIM1;", "v=DKIM1; t=y;"),
    );
    let report = check_own_letter(&dns, TestKey::Rsa2048).await;
    let found = finding(&report, FindingCode::DkimKeyTesting);
    assert_mentions(&found.title, "rsa2048._domainkey.sender.test");
}

#[tokio::test]
async fn a_sending_service_that_passes_for_itself_is_explained() {
    let dns = zone().await;
    dns.add_txt("sender.test", "v=spf1 ip4:203.0.113.1 -all");
    let report = check(
        &dns,
        "bounce@esp.test",
        &letter(TestKey::Rsa2048, "esp.test"),
    )
    .await;
    assert_verdict(report.verdicts.spf, "!! spf-diff !!");
    assert_verdict(report.verdicts.dkim, "!! dkim-diff !!");
    let spf = finding(&report, FindingCode::UnalignedSpfPass);
    assert_eq!(spf.severity, Severity::Problem);
    assert_mentions(&spf.title, "SPF passes for esp.test, not for sender.test");
    assert!(spf.fix.as_deref().unwrap().contains("bounce.sender.test"));
    let dkim = finding(&report, FindingCode::UnalignedDkimPass);
    assert!(dkim.fix.as_deref().unwrap().contains("d=sender.test"));
    let alignment = finding(&report, FindingCode::AlignmentDomains);
    assert!(
        alignment
            .evidence
            .iter()
            .any(|e| e == "MAIL FROM: esp.test → esp.test, SPF pass"),
        "{:?}",
        alignment.evidence
    );
    assert!(
        alignment
            .evidence
            .iter()
            .any(|e| e == "DKIM d=esp.test → esp.test, pass"),
        "{:?}",
        alignment.evidence
    );

    // Signed by the service with the sender's own domain as well: DMARC passes, the SPF
    // finding stays as advice, the DKIM one goes.
    let both = sign(
        &letter(TestKey::Rsa2048, "esp.test"),
        &SignOptions::new("sender.test", TestKey::Rsa2048),
    );
    let report = check(&dns, "bounce@esp.test", &both).await;
    assert_eq!(
        finding(&report, FindingCode::UnalignedSpfPass).severity,
        Severity::Info
    );
    assert_no_finding(&report, FindingCode::UnalignedDkimPass);
    assert_no_finding(&report, FindingCode::AlignmentDomains);
}

#[tokio::test]
async fn organizational_domains_are_the_tree_walks_not_the_public_suffix_lists() {
    // No DMARC record anywhere above news.plain.test: by RFC 9989 it is its own organizational
    // domain, so SPF for plain.test does not align (the Public Suffix List would say plain.test).
    let dns = TestDns::start().await;
    publish_spf(&dns, "v=spf1 ip4:192.0.2.10 -all", &["plain.test"]);
    let report = check(
        &dns,
        "bounce@plain.test",
        &message("alice@news.plain.test", "Hello", "Hi.\r\n"),
    )
    .await;
    assert!(!report.spf.aligned, "{:#?}", report.dmarc);
    let found = finding(&report, FindingCode::UnalignedSpfPass);
    assert_mentions(&found.title, "not for news.plain.test");
    assert_mentions(found.fix.as_deref().unwrap(), "bounce.news.plain.test");
}
