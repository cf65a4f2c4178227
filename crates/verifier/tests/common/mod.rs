//! Shared by the verifier's integration tests: a verifier pointed at a loopback DNS server, and
//! the test keys and signer of `authcheck-testkit`.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_verifier::{DnsConfig, MessageInput, Report, Verifier, VerifierConfig};

pub use authcheck_testkit::{SignOptions, TestKey, message, publish_keys, sign};

/// A DNS configuration that sends every query to `dns` and gives up quickly.
pub fn dns_config(dns: &TestDns) -> DnsConfig {
    DnsConfig {
        servers: vec![dns.addr()],
        query_timeout: Duration::from_millis(500),
        attempts: 1,
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
