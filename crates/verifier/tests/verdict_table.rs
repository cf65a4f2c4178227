//! Every tester verdict, through the whole verifier with a real DNS server on loopback.
//!
//! The zone: `sender.test` lets 192.0.2.10 send (`-all`) and publishes DMARC `p=reject` and every
//! test key; `other.test` lets 192.0.2.10 send too and publishes the keys, so mail can pass SPF
//! or DKIM for a domain that does not align with the From domain `sender.test`.

mod common;

use authcheck_testdns::{Behaviour, TestDns};
use authcheck_verifier::{BodyParameter, DkimResult, MessageInput, Report, SpfResult};
use common::{SignOptions, TestKey, message, publish_keys, sign, verifier, verify};

const ALLOWED_IP: &str = "192.0.2.10";
const OTHER_IP: &str = "198.51.100.7";
const HELO: &str = "mail.sender.test";

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 -all");
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    dns.add_txt("mail.sender.test", "v=spf1 ip4:192.0.2.10 -all");
    dns.add_txt("other.test", "v=spf1 ip4:192.0.2.10 -all");
    dns.add_txt("softfail.test", "v=spf1 ~all");
    dns.add_txt("neutral.test", "v=spf1 ?all");
    dns.add_txt("nospf.test", "just some verification token");
    dns.add_txt("broken.test", "v=spf1 ip4:192.0.2.10 frobnicate:x -all");
    dns.set_behaviour("flaky.test", Behaviour::ServFail);
    publish_keys(&dns, "sender.test");
    publish_keys(&dns, "other.test");
    dns
}

fn plain() -> Vec<u8> {
    message("alice@sender.test", "verdict test", "Hello.\r\n")
}

fn signed_by(domain: &str) -> Vec<u8> {
    sign(&plain(), &SignOptions::new(domain, TestKey::Rsa2048))
}

/// The header field unfolded, with every run of white space as one space.
fn unfold(field: &str) -> String {
    field.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn check(dns: &TestDns, ip: &str, mail_from: &str, message: &[u8]) -> Report {
    verify(&verifier(dns), ip, HELO, mail_from, message).await
}

#[tokio::test]
async fn spf_pass_aligned_is_ok() {
    let dns = zone().await;
    let report = check(&dns, ALLOWED_IP, "alice@sender.test", &plain()).await;
    assert_eq!(report.verdicts.spf.to_string(), "|OK| spf-pass");
    assert!(report.spf.aligned);
}

#[tokio::test]
async fn spf_pass_unaligned_rescued_by_aligned_dkim_is_nearly_ok() {
    let dns = zone().await;
    let report = check(
        &dns,
        ALLOWED_IP,
        "bounce@other.test",
        &signed_by("sender.test"),
    )
    .await;
    assert_eq!(report.spf.check.result, SpfResult::Pass);
    assert!(!report.spf.aligned);
    assert!(report.dkim[0].aligned);
    assert_eq!(report.verdicts.spf.to_string(), "|~OK| spf-pass");
}

#[tokio::test]
async fn spf_pass_for_another_domain_alone_is_diff() {
    let dns = zone().await;
    let report = check(&dns, ALLOWED_IP, "bounce@other.test", &plain()).await;
    assert_eq!(report.spf.check.result, SpfResult::Pass);
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-diff !!");
    // Signed, but by a domain that does not align either: still diff.
    let report = check(
        &dns,
        ALLOWED_IP,
        "bounce@other.test",
        &signed_by("other.test"),
    )
    .await;
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-diff !!");
}

#[tokio::test]
async fn every_spf_failure_result_has_its_verdict() {
    let dns = zone().await;
    let cases = [
        (OTHER_IP, "alice@sender.test", "!! spf-fail !!"),
        (OTHER_IP, "alice@softfail.test", "!! spf-softfail !!"),
        (OTHER_IP, "alice@neutral.test", "!! spf-neutral !!"),
        (OTHER_IP, "alice@nospf.test", "!! spf-none !!"),
        (OTHER_IP, "alice@broken.test", "!! spf-permerror !!"),
        (OTHER_IP, "alice@flaky.test", "!! spf-temperror !!"),
    ];
    for (ip, mail_from, expected) in cases {
        // An aligned passing DKIM signature does not soften an SPF failure.
        let report = check(&dns, ip, mail_from, &signed_by("sender.test")).await;
        assert_eq!(
            report.verdicts.spf.to_string(),
            expected,
            "MAIL FROM {mail_from}: {:?}",
            report.spf.check.reason
        );
    }
}

#[tokio::test]
async fn without_a_client_ip_spf_is_not_checked() {
    let dns = zone().await;
    let message = plain();
    let input = MessageInput {
        client_ip: None,
        helo: HELO,
        mail_from: "alice@sender.test",
        message: &message,
        body: BodyParameter::Unknown,
    };
    let report = verifier(&dns).verify(&input).await;
    assert!(!report.spf.check.checked);
    assert_eq!(
        report.spf.check.reason,
        "no client IP address was given, so SPF cannot be evaluated"
    );
    assert!(report.spf.helo.is_none());
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-none !!");
}

#[tokio::test]
async fn the_null_reverse_path_checks_the_helo_name() {
    let dns = zone().await;
    let report = check(&dns, ALLOWED_IP, "", &plain()).await;
    assert_eq!(report.spf.check.domain, HELO);
    assert_eq!(report.spf.check.result, SpfResult::Pass);
    // mail.sender.test aligns with sender.test in relaxed mode.
    assert!(report.spf.aligned);
    assert_eq!(report.verdicts.spf.to_string(), "|OK| spf-pass");
}

#[tokio::test]
async fn an_unsigned_message_is_dkim_none() {
    let dns = zone().await;
    let report = check(&dns, ALLOWED_IP, "alice@sender.test", &plain()).await;
    assert!(report.dkim.is_empty());
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-none !!");
}

#[tokio::test]
async fn an_aligned_passing_signature_is_ok_with_either_key_type() {
    let dns = zone().await;
    for key in [TestKey::Rsa2048, TestKey::Ed25519] {
        let message = sign(&plain(), &SignOptions::new("sender.test", key));
        // SPF fails: DKIM alone makes the verdict.
        let report = check(&dns, OTHER_IP, "alice@sender.test", &message).await;
        assert_eq!(
            report.verdicts.dkim.to_string(),
            "|OK| dkim-pass",
            "{key:?}: {}",
            report.dkim[0].reason
        );
        assert!(report.dkim[0].aligned);
    }
}

#[tokio::test]
async fn an_unaligned_passing_signature_rescued_by_aligned_spf_is_nearly_ok() {
    let dns = zone().await;
    let report = check(
        &dns,
        ALLOWED_IP,
        "alice@sender.test",
        &signed_by("other.test"),
    )
    .await;
    assert_eq!(report.dkim[0].result, DkimResult::Pass);
    assert!(!report.dkim[0].aligned);
    assert_eq!(report.verdicts.dkim.to_string(), "|~OK| dkim-pass");
}

#[tokio::test]
async fn an_unaligned_passing_signature_alone_is_diff() {
    let dns = zone().await;
    let report = check(
        &dns,
        OTHER_IP,
        "alice@sender.test",
        &signed_by("other.test"),
    )
    .await;
    assert_eq!(report.dkim[0].result, DkimResult::Pass);
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-diff !!");
}

#[tokio::test]
async fn a_changed_body_is_dkim_fail() {
    let dns = zone().await;
    let mut message = signed_by("sender.test");
    message.extend_from_slice(b"A line added in transit.\r\n");
    let report = check(&dns, ALLOWED_IP, "alice@sender.test", &message).await;
    assert_eq!(report.dkim[0].result, DkimResult::Fail);
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-fail !!");
}

#[tokio::test]
async fn fail_outranks_invalid_and_invalid_outranks_temperror() {
    let dns = zone().await;
    dns.set_behaviour("flaky._domainkey.sender.test", Behaviour::ServFail);
    let with_selector = |selector: &str| {
        let mut options = SignOptions::new("sender.test", TestKey::Rsa2048);
        options.selector = Some(selector.to_string());
        sign(&plain(), &options)
    };

    let temperror = with_selector("flaky");
    let report = check(&dns, ALLOWED_IP, "alice@sender.test", &temperror).await;
    assert_eq!(report.dkim[0].result, DkimResult::Temperror);
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-temperror !!");

    // No key at the selector: invalid; next to a temperror it still says invalid.
    let invalid = sign(&temperror, &{
        let mut options = SignOptions::new("sender.test", TestKey::Rsa2048);
        options.selector = Some("unpublished".into());
        options
    });
    let report = check(&dns, ALLOWED_IP, "alice@sender.test", &invalid).await;
    assert_eq!(report.dkim[0].result, DkimResult::Invalid);
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-invalid !!");

    // A failing signature next to both: fail.
    let mut failing = sign(&invalid, &SignOptions::new("sender.test", TestKey::Ed25519));
    failing.extend_from_slice(b"tampered\r\n");
    let report = check(&dns, ALLOWED_IP, "alice@sender.test", &failing).await;
    let results: Vec<DkimResult> = report.dkim.iter().map(|s| s.result).collect();
    assert!(results.contains(&DkimResult::Fail), "{results:?}");
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-fail !!");
}

#[tokio::test]
async fn one_aligned_pass_among_failures_is_ok() {
    let dns = zone().await;
    let unaligned = signed_by("other.test");
    let mut options = SignOptions::new("sender.test", TestKey::Ed25519);
    options.selector = Some("unpublished".into());
    let both = sign(
        &sign(
            &unaligned,
            &SignOptions::new("sender.test", TestKey::Rsa2048),
        ),
        &options,
    );
    let report = check(&dns, OTHER_IP, "alice@sender.test", &both).await;
    assert_eq!(report.dkim.len(), 3);
    assert_eq!(report.verdicts.dkim.to_string(), "|OK| dkim-pass");
    let aligned: Vec<bool> = report.dkim.iter().map(|s| s.aligned).collect();
    assert_eq!(
        aligned,
        [false, true, false],
        "only the passing sender.test signature aligns"
    );
}

#[tokio::test]
async fn the_json_report_keeps_its_stable_paths() {
    let dns = zone().await;
    let report = check(
        &dns,
        ALLOWED_IP,
        "alice@sender.test",
        &signed_by("sender.test"),
    )
    .await;
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["verdicts"]["spf"], "|OK| spf-pass");
    assert_eq!(json["verdicts"]["dkim"], "|OK| dkim-pass");
    assert_eq!(json["spf"]["result"], "pass");
    assert_eq!(json["spf"]["domain"], "sender.test");
    assert_eq!(json["spf"]["aligned"], true);
    assert_eq!(json["dkim"][0]["result"], "pass");
    assert!(
        json["dkim"][0]["reason"]
            .as_str()
            .is_some_and(|reason| !reason.is_empty())
    );
    assert_eq!(json["dkim"][0]["domain"], "sender.test");
    assert_eq!(json["dkim"][0]["selector"], "rsa2048");
    assert_eq!(json["dkim"][0]["aligned"], true);
    assert_eq!(json["dmarc"]["result"], "pass");

    let failing = check(
        &dns,
        OTHER_IP,
        "alice@sender.test",
        &signed_by("other.test"),
    )
    .await;
    let json = serde_json::to_value(&failing).unwrap();
    assert_eq!(json["verdicts"]["spf"], "!! spf-fail !!");
    assert_eq!(json["spf"]["result"], "fail");
    assert_eq!(json["spf"]["aligned"], false);
    assert_eq!(json["dkim"][0]["domain"], "other.test");
    assert_eq!(json["dkim"][0]["aligned"], false);
    assert_eq!(json["dmarc"]["result"], "fail");
}

#[tokio::test]
async fn authentication_results_name_every_result() {
    let dns = zone().await;
    let report = check(
        &dns,
        ALLOWED_IP,
        "alice@sender.test",
        &signed_by("sender.test"),
    )
    .await;
    let field = &report.authentication_results;
    assert!(
        field.starts_with("Authentication-Results: tester.test;\r\n"),
        "{field}"
    );
    let unfolded = unfold(field);
    for expected in [
        "spf=pass",
        "smtp.mailfrom=alice@sender.test",
        "smtp.helo=mail.sender.test",
        "dkim=pass",
        "header.d=sender.test header.s=rsa2048 header.a=rsa-sha256",
        "dmarc=pass",
        "header.from=sender.test",
        "arc=none",
    ] {
        assert!(
            unfolded.contains(expected),
            "{expected:?} missing from {field}"
        );
    }
    for line in field.split("\r\n") {
        assert!(line.len() <= 998, "line too long: {line}");
        assert!(!line.trim().is_empty(), "blank line in {field:?}");
    }
}

#[tokio::test]
async fn authentication_results_report_invalid_signatures_as_neutral() {
    let dns = zone().await;
    let mut options = SignOptions::new("sender.test", TestKey::Rsa2048);
    options.selector = Some("unpublished".into());
    let report = check(
        &dns,
        OTHER_IP,
        "alice@sender.test",
        &sign(&plain(), &options),
    )
    .await;
    let unfolded = unfold(&report.authentication_results);
    assert!(unfolded.contains("spf=fail"), "{unfolded}");
    assert!(unfolded.contains("dkim=neutral ("), "{unfolded}");
    assert!(unfolded.contains("header.s=unpublished"), "{unfolded}");
    assert!(unfolded.contains("dmarc=fail"), "{unfolded}");
}

#[tokio::test]
async fn authentication_results_are_ascii_for_an_address_literal_helo() {
    // The HELO check's reason cites "RFC 7208 §2.3": the field carries it in ASCII.
    let dns = zone().await;
    let report = verify(
        &verifier(&dns),
        ALLOWED_IP,
        "[192.0.2.1]",
        "alice@sender.test",
        &plain(),
    )
    .await;
    let field = &report.authentication_results;
    assert!(field.is_ascii(), "{field:?}");
    let unfolded = unfold(field);
    assert!(
        unfolded.contains("\\(RFC 7208 section 2.3\\)"),
        "{unfolded}"
    );
    assert!(unfolded.contains("smtp.helo=\"[192.0.2.1]\""), "{unfolded}");
    for line in field.split("\r\n") {
        assert!(line.len() <= 998, "line too long: {line}");
    }
}
