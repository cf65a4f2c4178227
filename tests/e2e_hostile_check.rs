//! `authcheck check` on messages and DNS answers built to cost unbounded work (issue 9): a
//! DKIM-Signature of 80,000 tags, one of a few thousand, an oversized TXT record, an RSA key of
//! 16,384 bits, and more signatures and SPF terms than a report lists. Each gets a clear reason
//! in the report, and the verdict of the honest signature beside it does not change.

mod support;

use std::time::{Duration, Instant};

use authcheck_testdns::TestDns;
use authcheck_testkit::{
    SignOptions, TestKey, crafted_rsa_public_key, distinct_empty_tags, message,
    publish_sender_domain, sign,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use support::{check_json, run_cli};

const CLIENT: &str = "192.0.2.10";

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    publish_sender_domain(&dns, "sender.test", CLIENT);
    dns
}

fn signed_message() -> Vec<u8> {
    sign(
        &message("alice@sender.test", "Hello", "Hi there.\r\n"),
        &SignOptions::new("sender.test", TestKey::Rsa2048),
    )
}

/// A signed message with a hostile DKIM-Signature field of `count` empty tags on top.
fn with_hostile_signature(count: usize) -> Vec<u8> {
    let mut out = format!(
        "DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=rsa2048; {}h=from; bh=AAAA; b=AAAA\r\n",
        distinct_empty_tags(count)
    )
    .into_bytes();
    out.extend_from_slice(&signed_message());
    out
}

/// Runs `authcheck check --json` on `message` and returns the report and how long it took.
async fn check(dns: &TestDns, message: &[u8], mail_from: &str) -> (serde_json::Value, Duration) {
    let started = Instant::now();
    let report = check_json(dns, message, CLIENT, mail_from).await;
    (report, started.elapsed())
}

#[tokio::test]
async fn a_signature_of_80000_tags_is_refused_in_time_linear_in_its_size() {
    let dns = zone().await;
    let small = with_hostile_signature(20_000);
    let large = with_hostile_signature(80_000);
    assert!(large.len() > 500_000, "{} bytes", large.len());

    let (report, small_time) = check(&dns, &small, "alice@sender.test").await;
    assert_eq!(report["dkim"][0]["result"], "invalid");
    let (report, large_time) = check(&dns, &large, "alice@sender.test").await;
    let hostile = &report["dkim"][0];
    assert_eq!(hostile["result"], "invalid");
    assert_eq!(hostile["reason_code"], "malformed_signature");
    let reason = hostile["reason"].as_str().unwrap();
    assert!(
        reason.contains("signatures over 65536 bytes are not verified"),
        "{reason}"
    );
    assert_eq!(report["dkim"][1]["result"], "pass");
    assert_eq!(report["verdicts"]["dkim"], "|OK| dkim-pass");
    // Four times the tags costs about four times the work; comparing every tag with every
    // earlier one (the old parser: 1 s and 20 s in a release build) costs sixteen times.
    assert!(
        large_time < small_time * 8 + Duration::from_secs(2),
        "20,000 tags took {small_time:?}, 80,000 took {large_time:?}"
    );
}

#[tokio::test]
async fn a_signature_with_more_tags_than_the_limit_is_invalid_with_the_reason() {
    let dns = zone().await;
    let message = with_hostile_signature(2_000);
    let (report, _) = check(&dns, &message, "alice@sender.test").await;
    let reason = report["dkim"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the signature has more than 256 tags"),
        "{reason}"
    );
    assert_eq!(report["dkim"][0]["domain"], "sender.test");
    assert_eq!(report["verdicts"]["dkim"], "|OK| dkim-pass");
}

#[tokio::test]
async fn oversized_txt_records_and_huge_rsa_keys_are_refused_with_reasons() {
    let dns = zone().await;
    let padding = "x".repeat(20 * 1024);
    dns.add_txt(
        "big._domainkey.sender.test",
        &format!("v=DKIM1; n={padding}; p=AAAA"),
    );
    dns.add_txt(
        "huge._domainkey.sender.test",
        &format!(
            "v=DKIM1; p={}",
            STANDARD.encode(crafted_rsa_public_key(16_384))
        ),
    );
    dns.add_txt(
        "bigspf.test",
        &format!("v=spf1 ip4:{CLIENT} {padding} -all"),
    );
    let mut message = message("alice@bigspf.test", "Hostile DNS", "Hi.\r\n");
    for selector in ["huge", "big"] {
        let mut options = SignOptions::new("sender.test", TestKey::Rsa2048);
        options.selector = Some(selector.into());
        message = sign(&message, &options);
    }

    let (report, _) = check(&dns, &message, "alice@bigspf.test").await;
    let by_selector = |selector: &str| {
        report["dkim"]
            .as_array()
            .unwrap()
            .iter()
            .find(|signature| signature["selector"] == selector)
            .unwrap_or_else(|| panic!("no signature with s={selector}: {report}"))
            .clone()
    };
    let big = by_selector("big");
    assert_eq!(big["result"], "invalid");
    let reason = big["reason"].as_str().unwrap();
    assert!(
        reason.contains("TXT records over 16384 bytes are not read"),
        "{reason}"
    );
    let huge = by_selector("huge");
    assert_eq!(huge["result"], "invalid");
    assert_eq!(huge["reason_code"], "key_too_long");
    assert_eq!(huge["key_bits"], 16_384);
    let reason = huge["reason"].as_str().unwrap();
    assert!(
        reason.contains("16384 bits; keys over 8192 bits are refused"),
        "{reason}"
    );

    assert_eq!(report["spf"]["result"], "permerror");
    let reason = report["spf"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("records over 16384 bytes are not read"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_report_lists_a_bounded_number_of_signatures_and_trace_steps_and_counts_the_rest() {
    let dns = zone().await;
    let mut record = String::from("v=spf1");
    for i in 0..300 {
        record.push_str(&format!(" ip4:198.51.100.{}/32", i % 250));
    }
    record.push_str(" -all");
    dns.add_txt("wide.test", &record);
    let signed = signed_message();
    let field_end = signed
        .windows(3)
        .position(|w| w[0] == b'\n' && w[1] != b' ' && w[1] != b'\t')
        .map(|at| at + 1)
        .unwrap();
    let mut message = signed[..field_end].repeat(59);
    message.extend_from_slice(&signed);

    let (report, _) = check(&dns, &message, "alice@wide.test").await;
    let signatures = report["dkim"].as_array().unwrap();
    assert_eq!(signatures.len(), 50);
    assert_eq!(report["dkim_not_listed"], 10);
    assert_eq!(signatures[0]["result"], "pass");
    assert_eq!(signatures[49]["reason_code"], "too_many_signatures");
    assert_eq!(report["verdicts"]["dkim"], "|OK| dkim-pass");

    let spf = &report["spf"];
    assert_eq!(spf["result"], "fail");
    assert_eq!(spf["decided_by"], "-all");
    assert_eq!(spf["trace"].as_array().unwrap().len(), 200);
    assert_eq!(spf["trace_not_listed"], 101);

    // The person reading the text report is told what was left out.
    let dir = tempfile::tempdir().unwrap();
    let server = dns.addr().to_string();
    let (status, stdout, stderr) = run_cli(
        &[
            "check",
            "-",
            "--ip",
            CLIENT,
            "--mail-from",
            "alice@wide.test",
            "--dns-server",
            &server,
        ],
        Some(&message),
        dir.path(),
    )
    .await;
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(
        stdout.contains("... and 10 more DKIM-Signature fields, not verified and not listed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("... and 101 more steps, not listed"),
        "{stdout}"
    );
}
