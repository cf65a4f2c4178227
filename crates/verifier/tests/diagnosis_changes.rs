//! Diagnosis of how a message was changed after signing, and of its shape, through the whole
//! verifier against a loopback DNS server: each finding with a message that triggers it and a
//! near-identical one that must not. The verdicts stay what the checks decided.

mod common;

use authcheck_testdns::TestDns;
use authcheck_verifier::Report;
use authcheck_verifier::diagnosis::{FindingCode, Severity};
use base64::Engine as _;
use common::*;
use sha2::{Digest, Sha256};

async fn check(dns: &TestDns, message: &[u8]) -> Report {
    verify(
        &verifier(dns),
        SENDER_IP,
        "mail.sender.test",
        "alice@sender.test",
        message,
    )
    .await
}

fn numbered_lines(count: usize) -> String {
    (1..=count)
        .map(|n| format!("Line {n} of the letter.\r\n"))
        .collect()
}

fn signed(body: &str, relaxed: bool) -> Vec<u8> {
    let mut options = SignOptions::new("sender.test", TestKey::Rsa2048);
    options.relaxed = relaxed;
    sign(
        &message("alice@sender.test", "Quarterly figures", body),
        &options,
    )
}

const FOOTER: &str = "\r\n-- \r\nThis e-mail is confidential.\r\nIf you are not the intended recipient,\r\nplease delete it.\r\nExample Filter Inc.\r\n";

#[tokio::test]
async fn clean_signed_mail_has_no_findings_either_canonicalization() {
    let dns = sender_zone().await;
    for relaxed in [true, false] {
        let report = check(&dns, &signed(&numbered_lines(42), relaxed)).await;
        assert_eq!(report.verdicts.spf.to_string(), "|OK| spf-pass");
        assert_eq!(report.verdicts.dkim.to_string(), "|OK| dkim-pass");
        assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
    }
}

#[tokio::test]
async fn lines_appended_after_signing_are_counted_and_quoted() {
    let dns = sender_zone().await;
    for relaxed in [true, false] {
        let mut message = signed(&numbered_lines(42), relaxed);
        message.extend_from_slice(FOOTER.as_bytes());
        let report = check(&dns, &message).await;
        assert_verdict(report.verdicts.dkim, "!! dkim-fail !!");
        let found = finding(&report, FindingCode::BodyAppended);
        assert_eq!(found.severity, Severity::Problem);
        assert!(
            found.detail.contains("The first 42 lines")
                && found.detail.contains("6 lines were added"),
            "relaxed={relaxed}: {}",
            found.detail
        );
        assert_mentions(&found.title, "sender.test");
        assert_any_mentions(&found.evidence, "This e-mail is confidential.");
    }
}

#[tokio::test]
async fn a_body_changed_in_the_middle_is_not_called_appended() {
    let dns = sender_zone().await;
    let message = signed(&numbered_lines(42), true);
    let text = String::from_utf8(message).unwrap();
    let changed = text.replacen("Line 20 of", "Line 20 OF", 1);
    let report = check(&dns, changed.as_bytes()).await;
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-fail !!");
    assert_no_finding(&report, FindingCode::BodyAppended);
}

#[tokio::test]
async fn trailing_whitespace_added_in_transit_breaks_simple_bodies() {
    let dns = sender_zone().await;
    let message = signed("First line.\r\nSecond line.\r\nThird.\r\n", false);
    let text = String::from_utf8(message).unwrap();
    let changed = text.replacen("Second line.\r\n", "Second line.  \r\n", 1);
    let report = check(&dns, changed.as_bytes()).await;
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-fail !!");
    let found = finding(&report, FindingCode::BodyTrailingWhitespaceChanged);
    assert_mentions(&found.title, "1 line");
    assert!(found.fix.as_deref().unwrap().contains("c=relaxed/relaxed"));

    // Relaxed canonicalization ignores it: the signature passes and nothing is reported.
    let message = signed("First line.\r\nSecond line.\r\nThird.\r\n", true);
    let text = String::from_utf8(message).unwrap();
    let changed = text.replacen("Second line.\r\n", "Second line.  \r\n", 1);
    let report = check(&dns, changed.as_bytes()).await;
    assert_eq!(report.verdicts.dkim.to_string(), "|OK| dkim-pass");
    assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
}

/// Replaces the `bh=` value of the (first) DKIM-Signature of `message`.
fn with_body_hash(message: &[u8], body_hash: &str) -> Vec<u8> {
    let text = String::from_utf8(message.to_vec()).unwrap();
    let start = text.find("bh=").unwrap() + 3;
    let end = start + text[start..].find(';').unwrap();
    format!("{}{body_hash}{}", &text[..start], &text[end..]).into_bytes()
}

#[tokio::test]
async fn a_signer_that_hashed_lf_line_ends_is_named() {
    let dns = sender_zone().await;
    // What a signer computes when it hashes the body before line ends become CRLF
    // (simple canonicalization: the body plus one CRLF).
    let lf_hash = base64::engine::general_purpose::STANDARD
        .encode(Sha256::digest(b"First line.\nSecond line.\n\r\n"));
    let message = signed("First line.\r\nSecond line.\r\n", false);
    let report = check(&dns, &with_body_hash(&message, &lf_hash)).await;
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-fail !!");
    let found = finding(&report, FindingCode::BodyLineEndsChanged);
    assert_mentions(&found.title, "LF line ends");

    // A bh= that matches nothing known: no guess.
    let other = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"other"));
    let report = check(&dns, &with_body_hash(&message, &other)).await;
    assert_no_finding(&report, FindingCode::BodyLineEndsChanged);
}

#[tokio::test]
async fn a_tagged_subject_is_named_when_the_subject_is_signed() {
    let dns = sender_zone().await;
    let message = signed("Hello.\r\n", true);
    let text = String::from_utf8(message).unwrap();
    let tagged = text.replacen("Subject: Quarterly", "Subject: [EXTERNAL] Quarterly", 1);
    let report = check(&dns, tagged.as_bytes()).await;
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-fail !!");
    let found = finding(&report, FindingCode::SubjectTagged);
    assert_mentions(&found.title, "[EXTERNAL]");

    // The same tag, signed by the sender itself: the signature passes, nothing to report.
    let message = sign(
        &message_with_subject("[EXTERNAL] Quarterly figures"),
        &SignOptions::new("sender.test", TestKey::Rsa2048),
    );
    let report = check(&dns, &message).await;
    assert_eq!(report.verdicts.dkim.to_string(), "|OK| dkim-pass");
    assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
}

fn message_with_subject(subject: &str) -> Vec<u8> {
    message("alice@sender.test", subject, "Hello.\r\n")
}

#[tokio::test]
async fn lines_over_998_bytes_are_reported_and_998_is_fine() {
    let dns = sender_zone().await;
    let body = format!("Short.\r\n{}\r\nShort.\r\n", "x".repeat(1200));
    let report = check(&dns, &signed(&body, true)).await;
    let found = finding(&report, FindingCode::LongLines);
    assert!(
        found.evidence[0].contains("1200 bytes"),
        "{:?}",
        found.evidence
    );
    assert_verdict(report.verdicts.dkim, "|OK| dkim-pass");

    let body = format!("Short.\r\n{}\r\n", "x".repeat(998));
    let report = check(&dns, &signed(&body, true)).await;
    assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
}

#[tokio::test]
async fn mixed_bare_lf_is_reported_but_an_all_lf_file_is_not() {
    let dns = sender_zone().await;
    let mixed = message("alice@sender.test", "Hi", "one\ntwo\r\n");
    let report = check(&dns, &mixed).await;
    let found = finding(&report, FindingCode::BareLf);
    assert_mentions(&found.title, "1 line");

    let signed_crlf = signed("one\r\ntwo\r\n", true);
    let all_lf = String::from_utf8(signed_crlf)
        .unwrap()
        .replace("\r\n", "\n");
    let report = check(&dns, all_lf.as_bytes()).await;
    assert_no_finding(&report, FindingCode::BareLf);
}

#[tokio::test]
async fn a_body_length_limit_reports_the_unsigned_bytes() {
    let dns = sender_zone().await;
    let mut options = SignOptions::new("sender.test", TestKey::Rsa2048);
    options.body_length = true;
    let mut message = sign(
        &message("alice@sender.test", "Hi", "Signed text.\r\n"),
        &options,
    );
    message.extend_from_slice(b"Appended: click here\r\n");
    let report = check(&dns, &message).await;
    assert_eq!(
        report.verdicts.dkim.to_string(),
        "|OK| dkim-pass",
        "l= still passes"
    );
    let found = finding(&report, FindingCode::BodyLengthLimit);
    assert_mentions(&found.detail, "22 of 36 body bytes are not covered");
}
