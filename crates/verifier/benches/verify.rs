//! How long the verifier takes per message once DNS answers are cached: a 4 KB message signed
//! with rsa-sha256 (2048-bit key) and with ed25519-sha256, SPF passing, DMARC passing.
//!
//! DNS comes from a loopback TestDns; one verification before measuring fills the resolver's
//! cache, so what is measured is parsing, hashing, signature verification and report assembly.
//! Negative answers carry an SOA, as a production nameserver's do, so the resolver caches them
//! too (reverse DNS of the documentation address, the names the diagnosis looks up); the
//! benchmark reports how many queries reached the server while it measured, which should be 0.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use authcheck_testdns::TestDns;
use authcheck_verifier::{BodyParameter, MessageInput, Verifier};
use common::{SignOptions, TestKey, publish_keys, sign, verifier};
use criterion::{Criterion, criterion_group, criterion_main};

const CLIENT_IP: &str = "192.0.2.10";
const HELO: &str = "mail.sender.test";
const MAIL_FROM: &str = "alice@sender.test";
const MESSAGE_SIZE: usize = 4096;

fn four_kilobyte_message() -> Vec<u8> {
    let line = "The quick brown fox jumps over the lazy dog, again and again.\r\n";
    let mut body = String::new();
    let header = common::message("alice@sender.test", "benchmark", "");
    while header.len() + body.len() + line.len() <= MESSAGE_SIZE {
        body.push_str(line);
    }
    common::message("alice@sender.test", "benchmark", &body)
}

fn zone(dns: &TestDns) {
    dns.cache_negative_answers(3600);
    dns.add_txt("sender.test", "v=spf1 ip4:192.0.2.10 -all");
    dns.add_txt(HELO, "v=spf1 ip4:192.0.2.10 -all");
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    publish_keys(dns, "sender.test");
}

fn bench_verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dns = runtime.block_on(TestDns::start());
    zone(&dns);
    let verifier: Verifier = runtime.block_on(async { verifier(&dns) });
    let message = four_kilobyte_message();

    for (name, key) in [
        ("rsa-sha256 2048", TestKey::Rsa2048),
        ("ed25519-sha256", TestKey::Ed25519),
    ] {
        let signed = sign(&message, &SignOptions::new("sender.test", key));
        let input = MessageInput {
            client_ip: Some(CLIENT_IP.parse().unwrap()),
            helo: HELO,
            mail_from: MAIL_FROM,
            message: &signed,
            body: BodyParameter::Unknown,
        };
        let warm = runtime.block_on(verifier.verify(&input));
        assert_eq!(
            (
                warm.verdicts.spf.to_string().as_str(),
                warm.verdicts.dkim.to_string().as_str()
            ),
            ("|OK| spf-pass", "|OK| dkim-pass"),
            "the benchmark message must pass: {:?}",
            warm.dkim.first().map(|s| &s.reason)
        );
        let queries_before = dns.query_count();
        c.bench_function(&format!("verify 4 KB message, {name}"), |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(verifier.verify(black_box(&input)).await) })
        });
        println!(
            "{name}: {} DNS queries reached the server while measuring",
            dns.query_count() - queries_before
        );
    }
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
