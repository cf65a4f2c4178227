//! Every DKIM result and reason code, reached through the whole verifier (`Verifier::verify_at`)
//! with keys served by a real DNS server on loopback; each case also checks the `dkim` verdict
//! the tester shows for it. Signatures come from mail-auth's signer where it can make the
//! case, and are written by hand where it cannot (a missing tag, an unknown algorithm...).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authcheck_testdns::{Behaviour, TestDns};
use authcheck_verifier::{
    BodyParameter, DkimReasonCode, DkimResult, DkimSignatureReport, MessageInput, Report, Verifier,
    VerifierConfig,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{SignOptions, TestKey, crafted_rsa_public_key, message, publish_keys, sign};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;

const DOMAIN: &str = "example.test";
const TIME_LIMIT: Duration = Duration::from_secs(5);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn test_message() -> Vec<u8> {
    message(
        "alice@example.test",
        "Quarterly figures",
        "Hello,\r\n\r\nthe figures are attached.\r\n",
    )
}

/// A DNS server with every test key published under example.test.
async fn server() -> TestDns {
    let server = TestDns::start().await;
    publish_keys(&server, DOMAIN);
    server
}

/// The whole verifier on `message` as of `now`, with `time_limit` for the DKIM key lookups.
async fn verify_report(server: &TestDns, message: &[u8], now: u64, time_limit: Duration) -> Report {
    let mut config = VerifierConfig::new("tester.test", common::dns_config(server));
    config.dkim_time_limit = time_limit;
    let verifier = Verifier::new(config).unwrap();
    let input = MessageInput {
        client_ip: Some("192.0.2.1".parse().unwrap()),
        helo: "mail.example.test",
        mail_from: "alice@example.test",
        message,
        body: BodyParameter::Unknown,
    };
    let report = verifier.verify_at(&input, now).await;
    assert_verdict_follows_from_the_signatures(&report);
    report
}

async fn verify_all(
    server: &TestDns,
    message: &[u8],
    now: u64,
    time_limit: Duration,
) -> Vec<DkimSignatureReport> {
    verify_report(server, message, now, time_limit).await.dkim
}

/// Verifies a message carrying one signature and returns its report.
async fn verify_one(server: &TestDns, message: &[u8]) -> DkimSignatureReport {
    let mut reports = verify_all(server, message, now(), TIME_LIMIT).await;
    assert_eq!(reports.len(), 1, "one DKIM-Signature, one report");
    reports.remove(0)
}

/// The `dkim` verdict of the table for these signatures. No SPF record is published
/// here, so a passing signature that is not aligned gives `dkim-diff`.
fn assert_verdict_follows_from_the_signatures(report: &Report) {
    let results: Vec<DkimResult> = report.dkim.iter().map(|s| s.result).collect();
    let expected = if results.is_empty() {
        "!! dkim-none !!"
    } else if report
        .dkim
        .iter()
        .any(|s| s.result == DkimResult::Pass && s.aligned)
    {
        "|OK| dkim-pass"
    } else if results.contains(&DkimResult::Pass) {
        "!! dkim-diff !!"
    } else if results.contains(&DkimResult::Fail) {
        "!! dkim-fail !!"
    } else if results.contains(&DkimResult::Invalid) {
        "!! dkim-invalid !!"
    } else {
        "!! dkim-temperror !!"
    };
    assert_eq!(
        report.verdicts.dkim.to_string(),
        expected,
        "signatures: {results:?}"
    );
}

fn assert_outcome(
    report: &DkimSignatureReport,
    result: DkimResult,
    code: DkimReasonCode,
    reason_mentions: &str,
) {
    assert_eq!(
        (report.result, &report.reason_code),
        (result, &code),
        "reason: {}",
        report.reason
    );
    assert!(
        report.reason.contains(reason_mentions),
        "reason {:?} should mention {reason_mentions:?}",
        report.reason
    );
}

/// The test message under a hand-written DKIM-Signature with these tags.
fn with_signature_tags(tags: &str) -> Vec<u8> {
    let mut out = format!("DKIM-Signature: {tags}\r\n").into_bytes();
    out.extend_from_slice(&test_message());
    out
}

/// Well-formed tags (the hashes are placeholders: these cases are decided before any hash).
const TAGS: &str = "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test; s=rsa2048; h=from:to:subject; bh=AAAA; b=AAAA";

fn signed(key: TestKey) -> Vec<u8> {
    sign(&test_message(), &SignOptions::new(DOMAIN, key))
}

/// Signed with `key` but pointing at selector `selector`, where a test publishes a variant.
fn signed_with_selector(key: TestKey, selector: &str) -> Vec<u8> {
    let mut options = SignOptions::new(DOMAIN, key);
    options.selector = Some(selector.into());
    sign(&test_message(), &options)
}

fn public_key_base64(key: TestKey) -> String {
    key.dns_record().split("p=").nth(1).unwrap().to_string()
}

#[tokio::test]
async fn rsa_and_ed25519_signatures_pass_with_their_details_reported() {
    let server = server().await;
    for (key, algorithm, bits) in [
        (TestKey::Rsa2048, "rsa-sha256", 2048),
        (TestKey::Rsa1024, "rsa-sha256", 1024),
        (TestKey::Ed25519, "ed25519-sha256", 256),
    ] {
        let report = verify_one(&server, &signed(key)).await;
        assert_outcome(
            &report,
            DkimResult::Pass,
            DkimReasonCode::Verified,
            &format!("{}._domainkey.{DOMAIN}", key.selector()),
        );
        assert_eq!(report.domain, DOMAIN);
        assert_eq!(report.selector, key.selector());
        assert_eq!(report.algorithm, algorithm);
        assert_eq!(report.canonicalization, "relaxed/relaxed");
        assert_eq!(report.key_bits, Some(bits));
        assert_eq!(
            report.key_type.as_deref(),
            Some(if key == TestKey::Ed25519 {
                "ed25519"
            } else {
                "rsa"
            })
        );
        let mut signed_headers: Vec<String> = report
            .signed_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        signed_headers.sort();
        assert_eq!(
            signed_headers,
            ["date", "from", "message-id", "subject", "to"]
        );
        assert!(
            report
                .header_value
                .contains(&format!("s={}", key.selector()))
        );
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    }
}

#[tokio::test]
async fn simple_canonicalization_passes() {
    let server = server().await;
    let mut options = SignOptions::new(DOMAIN, TestKey::Rsa2048);
    options.relaxed = false;
    let report = verify_one(&server, &sign(&test_message(), &options)).await;
    assert_outcome(
        &report,
        DkimResult::Pass,
        DkimReasonCode::Verified,
        "verified",
    );
    assert_eq!(report.canonicalization, "simple/simple");
}

#[tokio::test]
async fn a_message_stored_with_bare_lf_line_endings_still_passes() {
    let server = server().await;
    for relaxed in [true, false] {
        let mut options = SignOptions::new(DOMAIN, TestKey::Rsa2048);
        options.relaxed = relaxed;
        let crlf = sign(&test_message(), &options);
        let lf: Vec<u8> = String::from_utf8(crlf)
            .unwrap()
            .replace("\r\n", "\n")
            .into_bytes();
        let report = verify_one(&server, &lf).await;
        assert_outcome(
            &report,
            DkimResult::Pass,
            DkimReasonCode::Verified,
            "verified",
        );
    }
}

#[tokio::test]
async fn a_changed_body_fails_on_the_body_hash() {
    let server = server().await;
    let tampered = String::from_utf8(signed(TestKey::Ed25519))
        .unwrap()
        .replace("attached", "enclosed");
    let report = verify_one(&server, tampered.as_bytes()).await;
    assert_outcome(
        &report,
        DkimResult::Fail,
        DkimReasonCode::BodyHashMismatch,
        "the body was changed after signing",
    );
    assert!(report.reason.contains("hashes to"), "{}", report.reason);
}

#[tokio::test]
async fn a_changed_signed_header_fails_the_signature() {
    let server = server().await;
    let tampered = String::from_utf8(signed(TestKey::Rsa2048))
        .unwrap()
        .replace("Quarterly figures", "Urgent figures");
    let report = verify_one(&server, tampered.as_bytes()).await;
    assert_outcome(
        &report,
        DkimResult::Fail,
        DkimReasonCode::SignatureMismatch,
        "changed after signing",
    );
}

#[tokio::test]
async fn an_unsigned_header_may_change() {
    let server = server().await;
    let mut message = b"X-Mailer: changed in transit\r\n".to_vec();
    message.extend_from_slice(&signed(TestKey::Rsa2048));
    let report = verify_one(&server, &message).await;
    assert_outcome(
        &report,
        DkimResult::Pass,
        DkimReasonCode::Verified,
        "verified",
    );
}

#[tokio::test]
async fn repeated_headers_are_selected_from_the_bottom() {
    // The signature covered the only Subject. A second Subject at the top is not the one
    // selected, so it passes; one added below the original is, so it fails.
    let server = server().await;
    let signed = String::from_utf8(signed(TestKey::Rsa2048)).unwrap();
    let above = format!("Subject: added at the top\r\n{signed}");
    let report = verify_one(&server, above.as_bytes()).await;
    assert_outcome(
        &report,
        DkimResult::Pass,
        DkimReasonCode::Verified,
        "verified",
    );

    let below = signed.replacen("\r\n\r\n", "\r\nSubject: added at the bottom\r\n\r\n", 1);
    let report = verify_one(&server, below.as_bytes()).await;
    assert_outcome(
        &report,
        DkimResult::Fail,
        DkimReasonCode::SignatureMismatch,
        "Subject",
    );
}

#[tokio::test]
async fn each_missing_required_tag_is_named() {
    let server = server().await;
    for tag in ["v", "a", "b", "bh", "d", "h", "s"] {
        let tags: Vec<&str> = TAGS
            .split("; ")
            .filter(|t| t.split_once('=').unwrap().0 != tag)
            .collect();
        let report = verify_one(&server, &with_signature_tags(&tags.join("; "))).await;
        assert_outcome(
            &report,
            DkimResult::Invalid,
            DkimReasonCode::MissingTag,
            &format!("required tag {tag}= is missing"),
        );
    }
}

#[tokio::test]
async fn signatures_that_fail_the_section_6_1_1_checks_are_invalid_with_their_reason() {
    let server = server().await;
    let cases: [(String, DkimReasonCode, &str); 11] = [
        (
            TAGS.replace("v=1", "v=2"),
            DkimReasonCode::UnsupportedVersion,
            "v=2",
        ),
        (
            TAGS.replace("a=rsa-sha256", "a=rsa-md5"),
            DkimReasonCode::UnsupportedAlgorithm,
            "a=rsa-md5",
        ),
        (
            TAGS.replace("c=relaxed/relaxed", "c=foo/bar"),
            DkimReasonCode::UnsupportedCanonicalization,
            "c=foo/bar",
        ),
        (
            format!("{TAGS}; i=joe@elsewhere.test"),
            DkimReasonCode::IdentityNotInDomain,
            "i=joe@elsewhere.test",
        ),
        (
            TAGS.replace("h=from:to:subject", "h=to:subject"),
            DkimReasonCode::FromNotSigned,
            "From",
        ),
        (
            format!("{TAGS}; t=2000000000; x=1900000000"),
            DkimReasonCode::MalformedSignature,
            "x=1900000000",
        ),
        (
            format!("{TAGS}; d=other.test"),
            DkimReasonCode::MalformedSignature,
            "d= appears more than once",
        ),
        (
            TAGS.replace("b=AAAA", "b=A*A"),
            DkimReasonCode::MalformedSignature,
            "b= is not valid base64",
        ),
        (
            TAGS.replace("; h=", "; garbage; h="),
            DkimReasonCode::MalformedSignature,
            "garbage",
        ),
        (
            format!("{TAGS}; l=ten"),
            DkimReasonCode::MalformedSignature,
            "l=ten",
        ),
        (
            TAGS.replace("bh=AAAA", "bh="),
            DkimReasonCode::MalformedSignature,
            "bh= is empty",
        ),
    ];
    for (tags, code, mention) in cases {
        let report = verify_one(&server, &with_signature_tags(&tags)).await;
        assert_outcome(&report, DkimResult::Invalid, code, mention);
    }
}

#[tokio::test]
async fn malformed_signatures_still_report_what_they_claim() {
    let server = server().await;
    let report = verify_one(
        &server,
        &with_signature_tags(&format!("{TAGS}; s=again; l=12")),
    )
    .await;
    assert_eq!(report.reason_code, DkimReasonCode::MalformedSignature);
    assert_eq!(
        (report.domain.as_str(), report.selector.as_str()),
        (DOMAIN, "rsa2048")
    );
    assert_eq!(report.signed_headers, ["from", "to", "subject"]);
    assert_eq!(report.body_length, Some(12));
    assert!(
        report.warnings.iter().any(|w| w.contains("append")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn rsa_sha1_is_rejected_without_looking_up_the_key() {
    let server = server().await;
    let report = verify_one(
        &server,
        &with_signature_tags(&TAGS.replace("rsa-sha256", "rsa-sha1")),
    )
    .await;
    assert_outcome(
        &report,
        DkimResult::Invalid,
        DkimReasonCode::Sha1Rejected,
        "RFC 8301",
    );
    assert_eq!(
        server.query_count_for("rsa2048._domainkey.example.test"),
        0,
        "a SHA-1 signature must be refused before its key is fetched"
    );
}

#[tokio::test]
async fn an_expired_signature_is_invalid() {
    let server = server().await;
    let mut options = SignOptions::new(DOMAIN, TestKey::Rsa2048);
    options.expiration_secs = Some(60);
    let message = sign(&test_message(), &options);
    let later = now() + 3600;
    let reports = verify_all(&server, &message, later, TIME_LIMIT).await;
    assert_outcome(
        &reports[0],
        DkimResult::Invalid,
        DkimReasonCode::SignatureExpired,
        "expired",
    );
    assert!(reports[0].expiration.is_some_and(|x| x < later));
    let reports = verify_all(&server, &message, now(), TIME_LIMIT).await;
    assert_eq!(reports[0].result, DkimResult::Pass, "{}", reports[0].reason);
}

#[tokio::test]
async fn a_missing_key_record_is_key_not_found() {
    let server = server().await;
    let report = verify_one(&server, &signed_with_selector(TestKey::Rsa2048, "absent")).await;
    assert_outcome(
        &report,
        DkimResult::Invalid,
        DkimReasonCode::KeyNotFound,
        "absent._domainkey.example.test does not exist",
    );

    server.add_empty("empty._domainkey.example.test");
    let report = verify_one(&server, &signed_with_selector(TestKey::Rsa2048, "empty")).await;
    assert_outcome(
        &report,
        DkimResult::Invalid,
        DkimReasonCode::KeyNotFound,
        "has no TXT record",
    );
}

#[tokio::test]
async fn key_record_problems_have_their_codes() {
    let server = server().await;
    let rsa = public_key_base64(TestKey::Rsa2048);
    let ed25519 = public_key_base64(TestKey::Ed25519);
    let cases = [
        (
            "v2",
            format!("v=DKIM2; k=rsa; p={rsa}"),
            TestKey::Rsa2048,
            DkimReasonCode::KeyMalformed,
            "v=DKIM2",
        ),
        (
            "dsa",
            format!("v=DKIM1; k=dsa; p={rsa}"),
            TestKey::Rsa2048,
            DkimReasonCode::KeyMalformed,
            "k=dsa",
        ),
        (
            "sha1only",
            format!("v=DKIM1; h=sha1; p={rsa}"),
            TestKey::Rsa2048,
            DkimReasonCode::KeyMalformed,
            "h=sha1",
        ),
        (
            "garbled",
            "v=DKIM1; k=rsa; p=bm90IGEga2V5".to_string(),
            TestKey::Rsa2048,
            DkimReasonCode::KeyMalformed,
            "not an RSA public key",
        ),
        (
            "badbase64",
            "v=DKIM1; k=rsa; p=%%%".to_string(),
            TestKey::Rsa2048,
            DkimReasonCode::KeyMalformed,
            "not valid base64",
        ),
        (
            "nokey",
            "v=DKIM1; k=rsa".to_string(),
            TestKey::Rsa2048,
            DkimReasonCode::KeyMalformed,
            "no p=",
        ),
        (
            "revoked",
            "v=DKIM1; k=rsa; p=".to_string(),
            TestKey::Rsa2048,
            DkimReasonCode::KeyRevoked,
            "revoked",
        ),
        (
            "edkey",
            format!("v=DKIM1; k=ed25519; p={ed25519}"),
            TestKey::Rsa2048,
            DkimReasonCode::KeyAlgorithmMismatch,
            "k=ed25519",
        ),
        (
            "rsakey",
            format!("v=DKIM1; k=rsa; p={rsa}"),
            TestKey::Ed25519,
            DkimReasonCode::KeyAlgorithmMismatch,
            "a=ed25519-sha256",
        ),
        (
            "shorted",
            format!("v=DKIM1; k=ed25519; p={}", &ed25519[..20]),
            TestKey::Ed25519,
            DkimReasonCode::KeyMalformed,
            "32 bytes",
        ),
    ];
    for (selector, record, _, _, _) in &cases {
        server.add_txt(&format!("{selector}._domainkey.{DOMAIN}"), record);
    }
    for (selector, record, key, code, mention) in cases {
        let report = verify_one(&server, &signed_with_selector(key, selector)).await;
        assert_outcome(&report, DkimResult::Invalid, code, mention);
        assert!(
            report
                .reason
                .contains(&format!("{selector}._domainkey.{DOMAIN}")),
            "{record}: {}",
            report.reason
        );
    }
}

#[tokio::test]
async fn a_512_bit_rsa_key_is_too_short() {
    let server = server().await;
    let report = verify_one(&server, &signed(TestKey::Rsa512)).await;
    assert_outcome(
        &report,
        DkimResult::Invalid,
        DkimReasonCode::KeyTooShort,
        "512 bits",
    );
    assert_eq!(report.key_bits, Some(512));
    assert_eq!(report.key_type.as_deref(), Some("rsa"));
}

#[tokio::test]
async fn an_rsa_key_over_8192_bits_is_refused_before_any_arithmetic() {
    let server = server().await;
    server.add_txt(
        "huge._domainkey.example.test",
        &format!(
            "v=DKIM1; p={}",
            STANDARD.encode(crafted_rsa_public_key(16_384))
        ),
    );
    let report = verify_one(&server, &signed_with_selector(TestKey::Rsa2048, "huge")).await;
    assert_outcome(
        &report,
        DkimResult::Invalid,
        DkimReasonCode::KeyTooLong,
        "16384 bits; keys over 8192 bits are refused",
    );
    assert_eq!(report.key_bits, Some(16_384));
    assert_eq!(report.key_type.as_deref(), Some("rsa"));

    // 8192 bits is still read: this crafted key gets as far as the signature check.
    server.add_txt(
        "large._domainkey.example.test",
        &format!(
            "v=DKIM1; p={}",
            STANDARD.encode(crafted_rsa_public_key(8192))
        ),
    );
    let report = verify_one(&server, &signed_with_selector(TestKey::Rsa2048, "large")).await;
    assert_eq!(report.key_bits, Some(8192), "{}", report.reason);
    assert_eq!(report.result, DkimResult::Fail, "{}", report.reason);
}

#[tokio::test]
async fn a_bare_pkcs1_rsa_key_is_accepted() {
    let server = server().await;
    let spki = STANDARD
        .decode(public_key_base64(TestKey::Rsa2048))
        .unwrap();
    let pkcs1 = rsa::RsaPublicKey::from_public_key_der(&spki)
        .unwrap()
        .to_pkcs1_der()
        .unwrap();
    server.add_txt(
        "pkcs1._domainkey.example.test",
        &format!("v=DKIM1; p={}", STANDARD.encode(pkcs1.as_bytes())),
    );
    let report = verify_one(&server, &signed_with_selector(TestKey::Rsa2048, "pkcs1")).await;
    assert_outcome(
        &report,
        DkimResult::Pass,
        DkimReasonCode::Verified,
        "2048-bit",
    );
}

#[tokio::test]
async fn testing_mode_and_several_key_records_are_warned_about() {
    let server = server().await;
    let rsa = public_key_base64(TestKey::Rsa2048);
    server.add_txt(
        "testing._domainkey.example.test",
        &format!("v=DKIM1; t=y; p={rsa}"),
    );
    server.add_txt("testing._domainkey.example.test", "not a key record");
    let report = verify_one(&server, &signed_with_selector(TestKey::Rsa2048, "testing")).await;
    assert_outcome(
        &report,
        DkimResult::Pass,
        DkimReasonCode::Verified,
        "verified",
    );
    assert!(
        report.warnings.iter().any(|w| w.contains("t=y")),
        "{:?}",
        report.warnings
    );
    assert!(
        report.warnings.iter().any(|w| w.contains("2 TXT records")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn an_identity_in_a_subdomain_passes_unless_the_key_says_t_s() {
    let server = server().await;
    let message = test_message();
    let options = SignOptions::new(DOMAIN, TestKey::Rsa2048);
    let signed = common::sign_with_identity_and_length(
        &message,
        &options,
        Some("news@mail.example.test"),
        false,
    );
    let report = verify_one(&server, &signed).await;
    assert_outcome(
        &report,
        DkimResult::Pass,
        DkimReasonCode::Verified,
        "verified",
    );
    assert_eq!(report.identity.as_deref(), Some("news@mail.example.test"));

    let rsa = public_key_base64(TestKey::Rsa2048);
    server.add_txt(
        "strict._domainkey.example.test",
        &format!("v=DKIM1; t=s; p={rsa}"),
    );
    let mut options = SignOptions::new(DOMAIN, TestKey::Rsa2048);
    options.selector = Some("strict".into());
    let signed = common::sign_with_identity_and_length(
        &message,
        &options,
        Some("news@mail.example.test"),
        false,
    );
    let report = verify_one(&server, &signed).await;
    assert_outcome(
        &report,
        DkimResult::Invalid,
        DkimReasonCode::IdentityNotInDomain,
        "t=s",
    );
}

#[tokio::test]
async fn a_body_length_limit_passes_with_appended_content_and_a_warning() {
    let server = server().await;
    let options = SignOptions::new(DOMAIN, TestKey::Rsa2048);
    let mut signed = common::sign_with_identity_and_length(&test_message(), &options, None, true);
    signed.extend_from_slice(b"Appended by someone else: click here.\r\n");
    let report = verify_one(&server, &signed).await;
    assert_outcome(
        &report,
        DkimResult::Pass,
        DkimReasonCode::Verified,
        "verified",
    );
    assert!(report.body_length.is_some());
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("anyone can append")),
        "{:?}",
        report.warnings
    );
    assert!(
        report.warnings.iter().any(|w| w.contains("not covered")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn a_dns_failure_is_a_temporary_error() {
    let server = server().await;
    server.set_behaviour("rsa2048._domainkey.example.test", Behaviour::ServFail);
    let report = verify_one(&server, &signed(TestKey::Rsa2048)).await;
    assert_outcome(
        &report,
        DkimResult::Temperror,
        DkimReasonCode::DnsFailure,
        "try again later",
    );
}

#[tokio::test]
async fn key_lookups_are_bounded_by_the_time_limit() {
    let server = server().await;
    server.set_behaviour(
        "rsa2048._domainkey.example.test",
        Behaviour::Delay(Duration::from_secs(3)),
    );
    let reports = verify_all(
        &server,
        &signed(TestKey::Rsa2048),
        now(),
        Duration::from_millis(100),
    )
    .await;
    assert_outcome(
        &reports[0],
        DkimResult::Temperror,
        DkimReasonCode::DnsFailure,
        "within the 100 ms",
    );
}

#[tokio::test]
async fn every_signature_is_reported_in_header_order() {
    let server = server().await;
    let ed25519_signed = signed(TestKey::Ed25519);
    let mut message =
        format!("DKIM-Signature: {}\r\n", TAGS.replace("s=rsa2048; ", "")).into_bytes();
    message.extend_from_slice(&sign(
        &ed25519_signed,
        &SignOptions::new(DOMAIN, TestKey::Rsa2048),
    ));
    let reports = verify_all(&server, &message, now(), TIME_LIMIT).await;
    let summary: Vec<(&str, DkimResult)> = reports
        .iter()
        .map(|r| (r.selector.as_str(), r.result))
        .collect();
    assert_eq!(
        summary,
        [
            ("", DkimResult::Invalid),
            ("rsa2048", DkimResult::Pass),
            ("ed25519", DkimResult::Pass)
        ]
    );
}

#[tokio::test]
async fn verification_can_be_spawned_onto_any_runtime_thread() {
    let server = server().await;
    let verifier = common::verifier(&server);
    let message = signed(TestKey::Rsa2048);
    let report = tokio::spawn(async move {
        let input = MessageInput {
            client_ip: None,
            helo: "",
            mail_from: "",
            message: &message,
            body: BodyParameter::Unknown,
        };
        verifier.verify(&input).await
    })
    .await
    .unwrap();
    assert_eq!(
        report.dkim[0].result,
        DkimResult::Pass,
        "{}",
        report.dkim[0].reason
    );
}
