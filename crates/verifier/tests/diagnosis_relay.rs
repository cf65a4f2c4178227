//! Diagnosis of forwarding and upstream filters, and of what intermediaries recorded, through
//! the whole verifier against a loopback DNS server. The classic case: a filter in front of
//! sender.test's recipient relays the message onward, so SPF fails for the filter's address
//! while the hop before it is permitted.

mod common;

use authcheck_testdns::TestDns;
use authcheck_verifier::Report;
use authcheck_verifier::diagnosis::{FindingCode, Severity, parse_received};
use common::*;

const FILTER_IP: &str = "198.51.100.7";

/// sender.test set up well, and two forwarders that may send from the filter's address.
async fn zone() -> TestDns {
    let dns = sender_zone().await;
    publish_spf(
        &dns,
        "v=spf1 ip4:198.51.100.7 -all",
        &["forwarder.test", "gmail.test"],
    );
    dns
}

async fn check_from(dns: &TestDns, ip: &str, mail_from: &str, message: &[u8]) -> Report {
    verify(&verifier(dns), ip, "filter.example.net", mail_from, message).await
}

fn with_fields(fields: &str, message: &[u8]) -> Vec<u8> {
    let mut out = fields.as_bytes().to_vec();
    out.extend_from_slice(message);
    out
}

const FROM_SENDER: &str = "Received: from mx.sender.test (mx.sender.test [192.0.2.10])\r\n\tby filter.example.net (Postfix) with ESMTPS id 4AbC\r\n\tfor <bob@recipient.test>; Mon, 23 Nov 2026 10:00:02 +0000\r\n";

fn signed_letter() -> Vec<u8> {
    sign(
        &message(
            "alice@sender.test",
            "Invoice",
            "Please find the invoice.\r\n",
        ),
        &SignOptions::new("sender.test", TestKey::Rsa2048),
    )
}

#[test]
fn received_fields_are_read_into_hops() {
    let hop = parse_received(
        " from mx.sender.test (mx.sender.test [192.0.2.10])\r\n\tby filter.example.net (Postfix) with ESMTPS id 4AbC\r\n\tfor <bob@recipient.test>; Mon, 23 Nov 2026 10:00:02 +0000",
    );
    assert_eq!(hop.from_name.as_deref(), Some("mx.sender.test"));
    assert_eq!(hop.ip, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(hop.by.as_deref(), Some("filter.example.net"));
    assert_eq!(hop.for_address.as_deref(), Some("bob@recipient.test"));
    assert_eq!(hop.time.as_deref(), Some("Mon, 23 Nov 2026 10:00:02 +0000"));

    let exim = parse_received(
        " from [IPv6:2001:db8::25] (helo=relay.example) by mx.example with esmtp; Tue, 1 Dec 2026",
    );
    assert_eq!(exim.ip, Some("2001:db8::25".parse().unwrap()));
    assert_eq!(exim.by.as_deref(), Some("mx.example"));
    let garbage = parse_received(" ((( by ) for ;;; from [999.1.1.1]");
    assert_eq!(garbage.ip, None);
}

#[tokio::test]
async fn spf_fails_at_the_filter_but_passes_for_the_hop_before_it() {
    let dns = zone().await;
    let mut message = with_fields(FROM_SENDER, &signed_letter());
    message.extend_from_slice(b"\r\n-- \r\nScanned by Example Filter\r\n");
    let report = check_from(&dns, FILTER_IP, "alice@sender.test", &message).await;
    assert_verdict(report.verdicts.spf, "!! spf-fail !!");
    assert_verdict(report.verdicts.dkim, "!! dkim-fail !!");
    let found = finding(&report, FindingCode::SpfPassesAtPreviousHop);
    assert_eq!(found.severity, Severity::Problem);
    assert_mentions(
        &found.detail,
        "SPF fail for 198.51.100.7 (filter.example.net), which relayed this message; the address before it, 192.0.2.10 (mx.sender.test), is permitted by sender.test's SPF record",
    );
    assert_any_mentions(&found.evidence, "v=spf1 ip4:192.0.2.10 -all");
    // The filter's footer is named too: both halves of the classic case.
    assert!(
        codes(&report).contains(&FindingCode::BodyAppended),
        "{:#?}",
        report.diagnosis
    );
    // Problems come first.
    assert_eq!(report.diagnosis[0].severity, Severity::Problem);
}

#[tokio::test]
async fn no_previous_hop_claim_when_the_earlier_address_is_not_permitted_either() {
    let dns = zone().await;
    let received = FROM_SENDER.replace("192.0.2.10", "203.0.113.9");
    let message = with_fields(&received, &signed_letter());
    let report = check_from(&dns, FILTER_IP, "alice@sender.test", &message).await;
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-fail !!");
    assert_no_finding(&report, FindingCode::SpfPassesAtPreviousHop);

    // Sent directly from a permitted address, with an internal hop in its own Received field.
    let internal = "Received: from laptop (unknown [10.0.0.5]) by mx.sender.test; Mon, 23 Nov 2026 10:00:00 +0000\r\n";
    let message = with_fields(internal, &signed_letter());
    let report = check_from(&dns, SENDER_IP, "alice@sender.test", &message).await;
    assert_eq!(report.verdicts.spf.to_string(), "|OK| spf-pass");
    assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
}

#[tokio::test]
async fn srs_and_mailbox_forwarding_are_recognised() {
    let dns = zone().await;
    let report = check_from(
        &dns,
        FILTER_IP,
        "SRS0=HHH=TT=sender.test=alice@forwarder.test",
        &signed_letter(),
    )
    .await;
    let found = finding(&report, FindingCode::SrsForwarded);
    assert_mentions(&found.detail, "from alice@sender.test");
    assert_mentions(&found.title, "forwarder.test");

    let report = check_from(
        &dns,
        FILTER_IP,
        "bob+caf_=spf=tester.test@gmail.test",
        &signed_letter(),
    )
    .await;
    let found = finding(&report, FindingCode::MailboxForwarded);
    assert_mentions(&found.title, "spf@tester.test");

    // An ordinary address with "srs" in it is not SRS.
    let report = check_from(&dns, SENDER_IP, "srs0@sender.test", &signed_letter()).await;
    assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
}

#[tokio::test]
async fn mailing_lists_and_readdressed_mail_are_recognised() {
    let dns = zone().await;
    let list = with_fields(
        "List-Id: Staff announcements <staff.lists.sender.test>\r\nList-Post: <mailto:staff@lists.sender.test>\r\n",
        &signed_letter(),
    );
    let report = check_from(&dns, SENDER_IP, "alice@sender.test", &list).await;
    let found = finding(&report, FindingCode::MailingList);
    assert_mentions(&found.title, "staff.lists.sender.test");

    let readdressed = with_fields(
        "Received: from relay.recipient.test (relay.recipient.test [198.51.100.7]) by mx.tester.test for <spf@tester.test>; Mon, 23 Nov 2026 10:00:03 +0000\r\n",
        &with_fields(FROM_SENDER, &signed_letter()),
    );
    let report = check_from(&dns, FILTER_IP, "alice@sender.test", &readdressed).await;
    let found = finding(&report, FindingCode::ReceivedForOtherRecipient);
    assert!(
        found.title.contains("bob@recipient.test") && found.title.contains("spf@tester.test"),
        "{}",
        found.title
    );

    // One recipient all along: not readdressed.
    let direct = with_fields(FROM_SENDER, &signed_letter());
    let report = check_from(&dns, SENDER_IP, "alice@sender.test", &direct).await;
    assert!(report.diagnosis.is_empty(), "{:#?}", report.diagnosis);
}

const ARC_FIELDS: &str = "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=filter.example.net; s=arc2026; t=1795000000; b=AAAA\r\nARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=filter.example.net; s=arc2026; h=from:subject; bh=AAAA; b=AAAA\r\nARC-Authentication-Results: i=1; filter.example.net;\r\n\tspf=pass (sender IP is 192.0.2.10) smtp.mailfrom=sender.test;\r\n\tdkim=pass header.d=sender.test; dmarc=pass header.from=sender.test\r\n";

#[tokio::test]
async fn an_arc_sealer_that_saw_pass_is_named_when_it_fails_here() {
    let dns = zone().await;
    let mut message = with_fields(ARC_FIELDS, &with_fields(FROM_SENDER, &signed_letter()));
    message.extend_from_slice(b"[scanned]\r\n");
    let report = check_from(&dns, FILTER_IP, "alice@sender.test", &message).await;
    assert_eq!(report.dmarc.result.as_str(), "fail");
    let found = finding(&report, FindingCode::ArcSealerSawPass);
    assert_mentions(
        &found.title,
        "filter.example.net recorded spf=pass dkim=pass dmarc=pass",
    );
    assert!(
        found.detail.starts_with("DMARC fails here"),
        "{}",
        found.detail
    );
    assert_any_mentions(&found.evidence, "d=filter.example.net s=arc2026 cv=none");

    // The same fields on a message that passes here: nothing to explain.
    let message = with_fields(ARC_FIELDS, &signed_letter());
    let report = check_from(&dns, SENDER_IP, "alice@sender.test", &message).await;
    assert_no_finding(&report, FindingCode::ArcSealerSawPass);
}

#[tokio::test]
async fn earlier_authentication_results_are_evidence() {
    let dns = zone().await;
    let earlier = "Authentication-Results: mx.recipient.test; spf=pass smtp.mailfrom=sender.test; dkim=pass header.d=sender.test\r\n";
    let mut message = with_fields(earlier, &signed_letter());
    message.extend_from_slice(b"footer\r\n");
    let report = check_from(&dns, FILTER_IP, "alice@sender.test", &message).await;
    let found = finding(&report, FindingCode::EarlierResultsPassed);
    assert_mentions(
        &found.title,
        "mx.recipient.test, recorded spf=pass dkim=pass",
    );
    assert_eq!(found.severity, Severity::Info);

    // Earlier failures explain nothing.
    let failed = earlier.replace("=pass", "=fail");
    let mut message = with_fields(&failed, &signed_letter());
    message.extend_from_slice(b"footer\r\n");
    let report = check_from(&dns, FILTER_IP, "alice@sender.test", &message).await;
    assert_no_finding(&report, FindingCode::EarlierResultsPassed);
}

#[tokio::test]
async fn a_long_received_chain_is_read_only_up_to_the_cap() {
    let dns = zone().await;
    // 500 internal hops, then the permitted one: beyond the cap, so not examined.
    let mut fields = String::new();
    for n in 0..500 {
        fields.push_str(&format!(
            "Received: from h{n} ([10.0.0.1]) by h{n}; Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        ));
    }
    fields.push_str(FROM_SENDER);
    let message = with_fields(&fields, &signed_letter());
    let report = check_from(&dns, FILTER_IP, "alice@sender.test", &message).await;
    assert_eq!(report.verdicts.spf.to_string(), "!! spf-fail !!");
    assert_no_finding(&report, FindingCode::SpfPassesAtPreviousHop);
}
