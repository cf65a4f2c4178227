//! Records and policy advice, and third-party senders, through the whole verifier against a
//! loopback DNS server: each finding names the sender's own domain and values, and a clean
//! setup (one SPF record ending in -all, DMARC p=reject with rua, a 2048-bit key) gets none.

mod common;

use authcheck_testdns::TestDns;
use authcheck_verifier::diagnosis::{FindingCode, Severity};
use authcheck_verifier::{AlignmentMode, DmarcResult, PolicyTag, Report};
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

/// A letter from `from`, unsigned, sent by sender.test's server with a sender.test MAIL FROM.
async fn check_letter_from(dns: &TestDns, from: &str) -> Report {
    check(
        dns,
        "bounce@sender.test",
        &message(from, "Hello", "Hi.\r\n"),
    )
    .await
}

#[tokio::test]
async fn the_p_none_finding_speaks_of_the_policy_that_applied() {
    let dns = TestDns::start().await;
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 -all");
    dns.add_txt(
        "_dmarc.sender.test",
        "v=DMARC1; p=none; sp=reject; rua=mailto:d@sender.test",
    );
    dns.add_a("news.sender.test", "192.0.2.80".parse().unwrap());
    // sp=reject applies to the subdomain: nothing claims failing mail is delivered.
    let report = check_letter_from(&dns, "alice@news.sender.test").await;
    assert_eq!(report.dmarc.policy_tag, Some(PolicyTag::Sp));
    assert_no_finding(&report, FindingCode::DmarcPolicyNone);
    // p=none applies to the domain itself.
    let report = check_letter_from(&dns, "alice@sender.test").await;
    let none = finding(&report, FindingCode::DmarcPolicyNone);
    assert_mentions(&none.title, "p=none applies to sender.test");

    // The other way round: p=reject, but sp=none for subdomains.
    let dns = TestDns::start().await;
    dns.add_txt(
        "_dmarc.sender.test",
        "v=DMARC1; p=reject; sp=none; np=reject; rua=mailto:d@sender.test",
    );
    dns.add_a("news.sender.test", "192.0.2.80".parse().unwrap());
    let report = check_letter_from(&dns, "alice@sender.test").await;
    assert_no_finding(&report, FindingCode::DmarcPolicyNone);
    let report = check_letter_from(&dns, "alice@news.sender.test").await;
    let none = finding(&report, FindingCode::DmarcPolicyNone);
    assert_mentions(&none.title, "sp=none applies to news.sender.test");
    assert_mentions(none.fix.as_deref().unwrap(), "sp=quarantine");
    // np=reject applies to a subdomain that does not exist.
    let report = check_letter_from(&dns, "alice@ghost.sender.test").await;
    assert_eq!(report.dmarc.policy_tag, Some(PolicyTag::Np));
    assert_no_finding(&report, FindingCode::DmarcPolicyNone);

    // np=none for a subdomain that does not exist, under p=reject.
    let dns = TestDns::start().await;
    dns.add_txt(
        "_dmarc.sender.test",
        "v=DMARC1; p=reject; np=none; rua=mailto:d@sender.test",
    );
    let report = check_letter_from(&dns, "alice@ghost.sender.test").await;
    let none = finding(&report, FindingCode::DmarcPolicyNone);
    assert_mentions(&none.title, "np=none applies to ghost.sender.test");
}

#[tokio::test]
async fn the_p_none_finding_under_testing_mode_asks_to_remove_t_y() {
    let dns = TestDns::start().await;
    dns.add_txt(
        "_dmarc.sender.test",
        "v=DMARC1; p=none; t=y; rua=mailto:d@sender.test",
    );
    let report = check_letter_from(&dns, "alice@sender.test").await;
    let none = finding(&report, FindingCode::DmarcPolicyNone);
    assert_mentions(&none.detail, "t=y");
    assert_mentions(none.fix.as_deref().unwrap(), "remove t=y");
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

/// A letter from alice@news.sender.test signed with d=`domain`, sent with MAIL FROM
/// bounce@`mail_from_domain`, checked against a zone whose DMARC record is `dmarc`.
async fn check_news_letter(dmarc: &str, mail_from_domain: &str, domain: &str) -> Report {
    let dns = TestDns::start().await;
    dns.add_txt("_dmarc.sender.test", dmarc);
    publish_spf(&dns, SENDER_SPF, &["sender.test", "esp.test"]);
    publish_keys(&dns, "sender.test");
    publish_keys(&dns, "esp.test");
    let letter = sign(
        &message("alice@news.sender.test", "Hello", "Hi.\r\n"),
        &SignOptions::new(domain, TestKey::Rsa2048),
    );
    check(&dns, &format!("bounce@{mail_from_domain}"), &letter).await
}

#[tokio::test]
async fn strict_alignment_advice_asks_for_the_from_domain_itself() {
    // Relaxed: sender.test aligns with news.sender.test, a service's domain does not; the
    // advice is a return-path or d= under sender.test.
    let relaxed = "v=DMARC1; p=reject; rua=mailto:d@sender.test";
    let report = check_news_letter(relaxed, "esp.test", "esp.test").await;
    assert_eq!(report.dmarc.spf_alignment.mode, AlignmentMode::Relaxed);
    let spf = finding(&report, FindingCode::UnalignedSpfPass);
    assert_mentions(spf.fix.as_deref().unwrap(), "bounce.sender.test");
    let dkim = finding(&report, FindingCode::UnalignedDkimPass);
    assert_mentions(dkim.fix.as_deref().unwrap(), "sign with d=sender.test");
    let alignment = finding(&report, FindingCode::AlignmentDomains);
    assert_mentions(&alignment.title, "organizational domains");
    assert_mentions(alignment.fix.as_deref().unwrap(), "belong to sender.test");

    // Strict: the very domains relaxed advice names fail, so the advice is the From domain
    // itself, or relaxing the record.
    let strict = "v=DMARC1; p=reject; aspf=s; adkim=s; rua=mailto:d@sender.test";
    let report = check_news_letter(strict, "sender.test", "sender.test").await;
    assert_eq!(
        report.dmarc.result,
        DmarcResult::Fail,
        "{}",
        report.dmarc.reason
    );
    assert_eq!(report.dmarc.spf_alignment.mode, AlignmentMode::Strict);
    let spf = finding(&report, FindingCode::UnalignedSpfPass);
    assert_mentions(&spf.title, "not for news.sender.test");
    assert_mentions(&spf.detail, "exactly news.sender.test");
    let fix = spf.fix.as_deref().unwrap();
    assert_mentions(fix, "return-path at news.sender.test itself");
    assert_mentions(fix, "remove aspf=s");
    let dkim = finding(&report, FindingCode::UnalignedDkimPass);
    assert_mentions(&dkim.detail, "exactly news.sender.test");
    let fix = dkim.fix.as_deref().unwrap();
    assert_mentions(fix, "sign with d=news.sender.test");
    assert_mentions(fix, "remove adkim=s");
    let alignment = finding(&report, FindingCode::AlignmentDomains);
    assert_mentions(&alignment.title, "strict alignment");
    assert_mentions(&alignment.detail, "exactly news.sender.test");
    let fix = alignment.fix.as_deref().unwrap();
    assert_mentions(fix, "exactly news.sender.test");
    assert_mentions(fix, "remove aspf=s and adkim=s");
    assert!(!fix.contains("belong to"), "{fix}");
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
