//! Shared by the verifier's integration tests: a verifier pointed at a loopback DNS server, and
//! the test keys and signer of `authcheck-testkit`.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_verifier::diagnosis::{Finding, FindingCode};
use authcheck_verifier::{
    BodyParameter, DnsConfig, MessageInput, Report, Verifier, VerifierConfig,
};

pub use authcheck_testkit::{
    SignOptions, TestKey, crafted_rsa_public_key, distinct_empty_tags, message, publish_keys,
    publish_sender_domain, sign,
};

/// A DNS configuration that sends every query to `dns` and gives up quickly.
pub fn dns_config(dns: &TestDns) -> DnsConfig {
    DnsConfig {
        servers: vec![dns.addr()],
        query_timeout: Duration::from_millis(500),
        attempts: 1,
        ..DnsConfig::default()
    }
}

/// A verifier that asks `dns`.
pub fn verifier(dns: &TestDns) -> Verifier {
    Verifier::new(VerifierConfig::new("tester.test", dns_config(dns))).unwrap()
}

/// Verifies `message` as received from `ip` with this HELO and MAIL FROM.
pub async fn verify(
    verifier: &Verifier,
    ip: &str,
    helo: &str,
    mail_from: &str,
    message: &[u8],
) -> Report {
    let input = MessageInput {
        client_ip: Some(ip.parse().unwrap()),
        helo,
        mail_from,
        message,
        body: BodyParameter::Unknown,
    };
    verifier.verify(&input).await
}

/// Like [`sign`], with `i=` and, when `body_length`, `l=`.
pub fn sign_with_identity_and_length(
    message: &[u8],
    options: &SignOptions,
    identity: Option<&str>,
    body_length: bool,
) -> Vec<u8> {
    let mut options = options.clone();
    options.identity = identity.map(String::from);
    options.body_length = body_length;
    sign(message, &options)
}

/// The address that sender.test's SPF record permits in [`sender_zone`].
pub const SENDER_IP: &str = "192.0.2.10";

/// An SPF record that permits [`SENDER_IP`] and nothing else.
pub const SENDER_SPF: &str = "v=spf1 ip4:192.0.2.10 -all";

/// An address no test SPF record permits.
pub const OTHER_IP: &str = "198.51.100.7";

/// A zone where sender.test is set up well: SPF permitting [`SENDER_IP`] and nothing else,
/// DMARC `p=reject` with reports, and the test keys. Each test then changes one thing.
pub async fn sender_zone() -> TestDns {
    let dns = TestDns::start().await;
    publish_sender_domain(&dns, "sender.test", SENDER_IP);
    dns
}

/// Publishes the same SPF record for each of `domains`.
pub fn publish_spf(dns: &TestDns, record: &str, domains: &[&str]) {
    for domain in domains {
        dns.add_txt(domain, record);
    }
}

/// The diagnosis finding with `code`; the test fails, listing what was found, if there is none.
pub fn finding(report: &Report, code: FindingCode) -> &Finding {
    report
        .diagnosis
        .iter()
        .find(|f| f.code == code)
        .unwrap_or_else(|| panic!("no {code:?} in {:#?}", report.diagnosis))
}

/// The codes of all diagnosis findings, in order.
pub fn codes(report: &Report) -> Vec<FindingCode> {
    report.diagnosis.iter().map(|f| f.code).collect()
}

/// Fails, listing the findings, if there is one with `code`.
#[track_caller]
pub fn assert_no_finding(report: &Report, code: FindingCode) {
    assert!(
        !codes(report).contains(&code),
        "unexpected {code:?} in {:#?}",
        report.diagnosis
    );
}

/// Fails, showing `text`, unless it contains `part`.
#[track_caller]
pub fn assert_mentions(text: &str, part: &str) {
    assert!(text.contains(part), "{part:?} not in {text:?}");
}

/// Fails unless `verdict` shows as `expected`: the diagnosis explains a verdict, never changes it.
#[track_caller]
pub fn assert_verdict(verdict: impl std::fmt::Display, expected: &str) {
    assert_eq!(verdict.to_string(), expected, "verdict unchanged");
}

/// Fails, showing the list, unless one of `lines` contains `part`.
#[track_caller]
pub fn assert_any_mentions(lines: &[String], part: &str) {
    assert!(
        lines.iter().any(|line| line.contains(part)),
        "{part:?} not in any of {lines:#?}"
    );
}
