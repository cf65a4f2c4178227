//! Regressions for the places where mail-auth 0.13's DKIM verifier gives a tester the wrong
//! answer, which is why this crate verifies DKIM itself: relaxed body canonicalization that
//! keeps trailing whitespace-only lines, signatures with a missing tag silently dropped, and a
//! body-hash mismatch reported as neutral.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authcheck_testdns::TestDns;
use authcheck_verifier::dkim::verify_signatures;
use authcheck_verifier::{DkimReasonCode, DkimResult, DkimSignatureReport, Dns};
use common::{SignOptions, TestKey, message, publish_keys, sign};

const DOMAIN: &str = "example.test";

async fn verify(message: &[u8]) -> Vec<DkimSignatureReport> {
    let server = TestDns::start().await;
    publish_keys(&server, DOMAIN);
    let dns = Dns::new(&common::dns_config(&server)).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    verify_signatures(&dns, message, now, Duration::from_secs(5)).await
}

#[tokio::test]
async fn relaxed_body_ignores_trailing_whitespace_only_lines() {
    for key in [TestKey::Rsa2048, TestKey::Ed25519] {
        let original = message("alice@example.test", "Lunch", "See you at noon.\r\n");
        let mut received = sign(&original, &SignOptions::new(DOMAIN, key));
        received.extend_from_slice(b" \r\n\t\r\n  \t \r\n\r\n");
        let reports = verify(&received).await;
        assert_eq!(reports.len(), 1);
        assert_eq!(
            reports[0].result,
            DkimResult::Pass,
            "{:?}: {}",
            key,
            reports[0].reason
        );
    }
}

#[tokio::test]
async fn simple_body_does_not_ignore_trailing_whitespace_lines() {
    let original = message("alice@example.test", "Lunch", "See you at noon.\r\n");
    let mut options = SignOptions::new(DOMAIN, TestKey::Rsa2048);
    options.relaxed = false;
    let mut received = sign(&original, &options);
    received.extend_from_slice(b" \r\n");
    let reports = verify(&received).await;
    assert_eq!(
        reports[0].reason_code,
        DkimReasonCode::BodyHashMismatch,
        "{}",
        reports[0].reason
    );
}

#[tokio::test]
async fn a_signature_missing_a_tag_is_reported_not_dropped() {
    let signed = sign(
        &message("alice@example.test", "Lunch", "Noon.\r\n"),
        &SignOptions::new(DOMAIN, TestKey::Rsa2048),
    );
    let text = String::from_utf8(signed).unwrap();
    // Drop the d= tag from the signature the signer wrote.
    let start = text.find("d=example.test;").expect("the signer writes d=");
    let without_domain = format!(
        "{}{}",
        &text[..start],
        &text[start + "d=example.test;".len()..]
    );
    let reports = verify(without_domain.as_bytes()).await;
    assert_eq!(
        reports.len(),
        1,
        "the malformed signature must still be reported"
    );
    assert_eq!(reports[0].result, DkimResult::Invalid);
    assert_eq!(reports[0].reason_code, DkimReasonCode::MissingTag);
    assert_eq!(reports[0].reason, "required tag d= is missing");
    assert_eq!(
        reports[0].selector, "rsa2048",
        "the tags that are there are still shown"
    );
}

#[tokio::test]
async fn a_body_hash_mismatch_is_a_fail_not_neutral() {
    let signed = sign(
        &message("alice@example.test", "Invoice", "Amount: 100 EUR\r\n"),
        &SignOptions::new(DOMAIN, TestKey::Rsa2048),
    );
    let tampered = String::from_utf8(signed)
        .unwrap()
        .replace("100 EUR", "900 EUR");
    let reports = verify(tampered.as_bytes()).await;
    assert_eq!(reports[0].result, DkimResult::Fail);
    assert_eq!(reports[0].reason_code, DkimReasonCode::BodyHashMismatch);
    assert!(
        reports[0].reason.starts_with("body hash did not verify"),
        "{}",
        reports[0].reason
    );
}
