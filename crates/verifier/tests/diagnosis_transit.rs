//! Diagnosis of what happens to a message in transit, beyond diagnosis_changes.rs: 8-bit bodies
//! sent without `BODY=8BITMIME`, long lines a relay broke in two, and signed header fields
//! whose old values an earlier copy of the message shows. Each finding has a message that
//! triggers it and a near-identical one that must not; the verdicts stay what the checks decided.

mod common;

use authcheck_testdns::TestDns;
use authcheck_verifier::diagnosis::{FindingCode, Severity};
use authcheck_verifier::{BodyParameter, MessageInput, Report};
use common::*;

async fn check_declared(dns: &TestDns, message: &[u8], body: BodyParameter) -> Report {
    let input = MessageInput {
        client_ip: Some(SENDER_IP.parse().unwrap()),
        helo: "mail.sender.test",
        mail_from: "alice@sender.test",
        message,
        body,
    };
    verifier(dns).verify(&input).await
}

async fn check(dns: &TestDns, message: &[u8]) -> Report {
    check_declared(dns, message, BodyParameter::Unknown).await
}

fn signed(subject: &str, body: &str, relaxed: bool) -> Vec<u8> {
    let mut options = SignOptions::new("sender.test", TestKey::Rsa2048);
    options.relaxed = relaxed;
    sign(&message("alice@sender.test", subject, body), &options)
}

#[tokio::test]
async fn an_eight_bit_body_is_questioned_only_when_the_client_declared_seven_bit() {
    let dns = sender_zone().await;
    let eight_bit = signed("Grüße", "Hello.\r\nViele Grüße,\r\nAlice\r\n", true);
    for (declared, evidence) in [
        (BodyParameter::Absent, "no BODY= parameter"),
        (BodyParameter::SevenBit, "BODY=7BIT"),
    ] {
        let report = check_declared(&dns, &eight_bit, declared).await;
        assert_verdict(report.verdicts.dkim, "|OK| dkim-pass");
        let found = finding(&report, FindingCode::EightBitUndeclared);
        assert_eq!(found.severity, Severity::Warning);
        assert!(
            found.title.starts_with("1 line of the body"),
            "{}",
            found.title
        );
        assert!(
            found.evidence[0].contains(evidence) && found.evidence[1].contains("body line 2"),
            "{:?}",
            found.evidence
        );
        assert!(found.fix.as_deref().unwrap().contains("BODY=8BITMIME"));
    }
    // Declared, or not known (a file): nothing to say.
    for declared in [BodyParameter::EightBitMime, BodyParameter::Unknown] {
        let report = check_declared(&dns, &eight_bit, declared).await;
        assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
    }
    // 8-bit only in the header (SMTPUTF8's business) or nowhere: nothing either.
    let ascii_body = signed("Grüße", "Hello.\r\n", true);
    let report = check_declared(&dns, &ascii_body, BodyParameter::Absent).await;
    assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
}

/// `body` with its one line of `long` bytes broken at 998 by a relay, the continuation
/// starting with `continuation_prefix`.
fn broken_at_998(message: &[u8], long: usize, continuation_prefix: &str) -> Vec<u8> {
    let text = String::from_utf8(message.to_vec()).unwrap();
    let line = "x".repeat(long);
    let broken = format!("{}\r\n{continuation_prefix}{}", &line[..998], &line[998..]);
    assert!(text.contains(&line));
    text.replacen(&line, &broken, 1).into_bytes()
}

#[tokio::test]
async fn long_lines_broken_in_two_are_named_with_either_way_of_folding() {
    let dns = sender_zone().await;
    let body = format!("Short.\r\n{}\r\nShort again.\r\n", "x".repeat(1200));
    for relaxed in [true, false] {
        let original = signed("Figures", &body, relaxed);
        for prefix in ["", " "] {
            let report = check(&dns, &broken_at_998(&original, 1200, prefix)).await;
            assert_verdict(report.verdicts.dkim, "!! dkim-fail !!");
            let found = finding(&report, FindingCode::BodyLinesRefolded);
            assert_eq!(found.severity, Severity::Problem);
            assert!(found.title.contains("sender.test"), "{}", found.title);
            assert!(
                found
                    .detail
                    .contains("1 line ending at 998 bytes is joined"),
                "relaxed={relaxed} prefix={prefix:?}: {}",
                found.detail
            );
            assert_eq!(
                found.evidence,
                ["body line 2: 998 bytes, continued on line 3"]
            );
        }
    }
    // The same break with a changed continuation: something else changed, no guess.
    let original = signed("Figures", &body, true);
    let broken = String::from_utf8(broken_at_998(&original, 1200, "")).unwrap();
    let changed = broken.replacen("\r\nxxx", "\r\nyyy", 1);
    let report = check(&dns, changed.as_bytes()).await;
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-fail !!");
    assert_no_finding(&report, FindingCode::BodyLinesRefolded);
    // Lines of 998 bytes that nobody broke: the signature passes, nothing to report.
    let body = format!("{}\r\n{}\r\n", "x".repeat(998), "y".repeat(500));
    let report = check(&dns, &signed("Figures", &body, true)).await;
    assert_eq!(report.verdicts.dkim.to_string(), "|OK| dkim-pass");
    assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
}

/// What a spam filter that wraps a message does: the outer header fields copied (the
/// signature included) with `changes` applied, the body replaced by a note and the
/// original attached as a message/rfc822 part.
fn wrapped_by_filter(original: &[u8], changes: &[(&str, &str)]) -> Vec<u8> {
    let text = String::from_utf8(original.to_vec()).unwrap();
    let (header, _) = text.split_once("\r\n\r\n").unwrap();
    let mut header = header.to_string();
    for (from, to) in changes {
        assert!(header.contains(from), "{from} in {header}");
        header = header.replacen(from, to, 1);
    }
    format!(
        "{header}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"wrap\"\r\n\r\n\
         --wrap\r\nContent-Type: text/plain\r\n\r\nThis message was marked as possible spam.\r\n\
         --wrap\r\nContent-Type: message/rfc822\r\n\r\n{text}\r\n--wrap--\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_signed_subject_and_from_changed_are_named_from_the_attached_original() {
    let dns = sender_zone().await;
    let original = signed("Quarterly figures", "The figures.\r\n", true);
    let wrapped = wrapped_by_filter(
        &original,
        &[
            ("Subject: Quarterly", "Subject: ***SPAM*** Quarterly"),
            (
                "From: Sender <alice@sender.test>",
                "From: Filter <alice@sender.test>",
            ),
        ],
    );
    let report = check(&dns, &wrapped).await;
    assert_verdict(report.verdicts.dkim, "!! dkim-fail !!");
    let found = finding(&report, FindingCode::SignedHeaderChanged);
    assert_eq!(found.severity, Severity::Problem);
    // Named in the signature's h= order.
    assert!(
        [
            "The From and Subject fields changed after sender.test signed the message",
            "The Subject and From fields changed after sender.test signed the message",
        ]
        .contains(&found.title.as_str()),
        "{}",
        found.title
    );
    assert!(found.detail.contains("message/rfc822"), "{}", found.detail);
    assert!(
        found
            .evidence
            .contains(&"signed: subject:Quarterly figures".to_string())
            && found
                .evidence
                .contains(&"now: subject:***SPAM*** Quarterly figures".to_string())
            && found
                .evidence
                .contains(&"signed: from:Sender <alice@sender.test>".to_string()),
        "{:?}",
        found.evidence
    );

    // Only the body wrapped, the header fields as signed: the attachment shows no change.
    let report = check(&dns, &wrapped_by_filter(&original, &[])).await;
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-fail !!");
    assert_no_finding(&report, FindingCode::SignedHeaderChanged);
}

#[tokio::test]
async fn a_different_message_forwarded_as_an_attachment_is_no_earlier_copy() {
    let dns = sender_zone().await;
    dns.add_txt("other.test", "v=spf1 -all");
    publish_keys(&dns, "other.test");
    let forwarded = sign(
        &message("carol@other.test", "Lunch on Friday?", "Are you free?\r\n"),
        &SignOptions::new("other.test", TestKey::Rsa2048),
    );
    // sender.test's own message with the forwarded one attached, then changed on the way
    // (a footer), so its signature fails while the attachment's Subject differs.
    let text = String::from_utf8(forwarded).unwrap();
    let body = format!(
        "--fwd\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n--fwd\r\nContent-Type: message/rfc822\r\n\r\n{text}\r\n--fwd--\r\n"
    );
    let outer = message("alice@sender.test", "Fwd: Lunch on Friday?", &body);
    let outer = String::from_utf8(outer).unwrap().replacen(
        "\r\n\r\n",
        "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"fwd\"\r\n\r\n",
        1,
    );
    let mut signed = sign(
        outer.as_bytes(),
        &SignOptions::new("sender.test", TestKey::Rsa2048),
    );
    signed.extend_from_slice(b"Scanned.\r\n");
    let report = check(&dns, &signed).await;
    assert_eq!(report.verdicts.dkim.to_string(), "!! dkim-fail !!");
    assert_no_finding(&report, FindingCode::SignedHeaderChanged);
}
