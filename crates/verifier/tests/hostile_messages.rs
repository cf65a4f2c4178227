//! Messages built to make DKIM verification do unbounded work: hundreds of signatures, an
//! `h=` list naming thousands of fields over a header of thousands of fields, and a 100 KB
//! signature field. Only the first signatures are verified (the next are reported `invalid`
//! with a reason naming the limit, the rest only counted), the work per signature does not grow
//! with the product of `h=` and the header size, and a signature over 64 KiB is not read.

mod common;

use authcheck_testdns::TestDns;
use authcheck_verifier::Report;
use authcheck_verifier::{DkimReasonCode, DkimResult};
use common::{SignOptions, TestKey, message, publish_keys, sign, verifier, verify};

const DOMAIN: &str = "many.test";
const CLIENT: &str = "192.0.2.1";

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    publish_keys(&dns, DOMAIN);
    dns.add_txt(DOMAIN, &format!("v=spf1 ip4:{CLIENT} -all"));
    dns
}

/// Verifies `message` as sent by many.test's server.
async fn check(dns: &TestDns, message: &[u8]) -> Report {
    verify(
        &verifier(dns),
        CLIENT,
        "mail.many.test",
        &format!("a@{DOMAIN}"),
        message,
    )
    .await
}

fn signed(body: &str) -> Vec<u8> {
    sign(
        &message(&format!("a@{DOMAIN}"), "Many", body),
        &SignOptions::new(DOMAIN, TestKey::Ed25519),
    )
}

/// `message` with its first header field (the signature) repeated `copies` more times.
fn with_repeated_signature(message: &[u8], copies: usize) -> Vec<u8> {
    let mut end = 0;
    // The signature field ends at the first line break not followed by folding white space.
    while let Some(offset) = message[end..].windows(2).position(|w| w == b"\r\n") {
        end += offset + 2;
        if !matches!(message.get(end), Some(b' ' | b'\t')) {
            break;
        }
    }
    let field = &message[..end];
    let mut out = field.repeat(copies);
    out.extend_from_slice(message);
    out
}

#[tokio::test]
async fn five_hundred_signatures_are_reported_but_only_the_first_are_verified() {
    let dns = zone().await;
    let body =
        "A line of body text that every copy of the signature would hash again.\r\n".repeat(2000);
    let message_bytes = with_repeated_signature(&signed(&body), 499);
    let report = check(&dns, &message_bytes).await;

    assert_eq!(
        report.dkim.len(),
        50,
        "the first 50 signature fields are reported"
    );
    assert_eq!(report.dkim_not_listed, 450, "the others are counted");
    let verified: Vec<_> = report
        .dkim
        .iter()
        .take_while(|signature| signature.reason_code != DkimReasonCode::TooManySignatures)
        .collect();
    assert!(
        !verified.is_empty() && verified.len() < 100,
        "{} signatures were verified",
        verified.len()
    );
    assert!(
        verified
            .iter()
            .all(|signature| signature.result == DkimResult::Pass)
    );
    for skipped in &report.dkim[verified.len()..] {
        assert_eq!(skipped.result, DkimResult::Invalid);
        assert_eq!(skipped.reason_code, DkimReasonCode::TooManySignatures);
        assert!(
            skipped
                .reason
                .contains(&format!("only the first {}", verified.len())),
            "{}",
            skipped.reason
        );
        assert_eq!(
            skipped.domain, DOMAIN,
            "what the signature claims is still shown"
        );
    }
    assert_eq!(report.verdicts.dkim.to_string(), "|OK| dkim-pass");
}

#[tokio::test]
async fn an_h_list_of_thousands_of_names_over_thousands_of_fields_is_verified() {
    let dns = zone().await;
    let mut base = String::new();
    for i in 0..3000 {
        base.push_str(&format!("X-Filler: {i}\r\n"));
    }
    base.push_str(&String::from_utf8(message(&format!("a@{DOMAIN}"), "Wide", "Hi.\r\n")).unwrap());
    let mut options = SignOptions::new(DOMAIN, TestKey::Ed25519);
    // Every filler field, then the same name 500 more times: those instances do not exist
    // and add nothing (RFC 6376 §5.4.2), but each one must not cost a pass over the header.
    // (3,500 names, folded, stay under the 64 KiB a signature field may have.)
    options.headers = ["From", "Subject"].map(String::from).to_vec();
    options
        .headers
        .extend(std::iter::repeat_n("X-Filler".to_string(), 3_500));
    let message_bytes = sign(base.as_bytes(), &options);
    assert!(message_bytes.len() > 100_000);

    let report = check(&dns, &message_bytes).await;
    assert_eq!(report.dkim.len(), 1);
    assert_eq!(
        report.dkim[0].result,
        DkimResult::Pass,
        "{}",
        report.dkim[0].reason
    );
    assert_eq!(
        report.dkim[0].signed_headers.len(),
        200,
        "the report lists the first 200 names"
    );
    assert!(
        report.dkim[0].signed_headers_not_listed > 3_500 - 200,
        "the other names are counted: {}",
        report.dkim[0].signed_headers_not_listed
    );
}

#[tokio::test]
async fn a_signature_field_of_100_kilobytes_is_reported_as_malformed() {
    let dns = zone().await;
    let signed = signed("Hi.\r\n");
    let padding = format!("; z={}", "A".repeat(100 * 1024));
    let mut message_bytes = Vec::new();
    message_bytes.extend_from_slice(b"DKIM-Signature: v=1; a=rsa-sha256; d=many.test; s=rsa2048");
    message_bytes.extend_from_slice(padding.as_bytes());
    message_bytes.extend_from_slice(b"\r\n");
    message_bytes.extend_from_slice(&signed);

    let report = check(&dns, &message_bytes).await;
    assert_eq!(report.dkim.len(), 2);
    assert_eq!(
        report.dkim[0].result,
        DkimResult::Invalid,
        "{}",
        report.dkim[0].reason
    );
    assert!(
        report.dkim[0]
            .reason
            .contains("signatures over 65536 bytes are not verified"),
        "{}",
        report.dkim[0].reason
    );
    assert_eq!(
        report.dkim[1].result,
        DkimResult::Pass,
        "{}",
        report.dkim[1].reason
    );
    assert_eq!(report.verdicts.dkim.to_string(), "|OK| dkim-pass");
}

#[tokio::test]
async fn more_than_fifty_arc_sets_fail_the_chain_without_being_read() {
    let dns = zone().await;
    let mut message_bytes = Vec::new();
    for instance in (1..=51).rev() {
        message_bytes.extend_from_slice(
            format!(
                "ARC-Seal: i={instance}; a=rsa-sha256; cv=pass; d={DOMAIN}; s=rsa2048; b=AAAA\r\n\
                 ARC-Message-Signature: i={instance}; a=rsa-sha256; d={DOMAIN}; s=rsa2048; h=from; bh=AAAA; b=AAAA\r\n\
                 ARC-Authentication-Results: i={instance}; {DOMAIN}; spf=pass\r\n"
            )
            .as_bytes(),
        );
    }
    message_bytes.extend_from_slice(&signed("Hi.\r\n"));
    let report = check(&dns, &message_bytes).await;
    assert_eq!(report.arc.result, authcheck_verifier::ArcResult::Fail);
    assert_eq!(report.arc.sets, 51);
    assert!(
        report.arc.reason.contains("RFC 8617 allows at most 50"),
        "{}",
        report.arc.reason
    );
    assert_eq!(report.verdicts.dkim.to_string(), "|OK| dkim-pass");
}
