//! How long the verifier takes on the hostile message of issue 9: a DKIM-Signature field of
//! 80,000 distinct empty tags (`aaaa=; baaa=; ...`, 720 KB) on top of an honestly signed
//! message. Before tag lists were capped and read in linear time it took 20 s (release build);
//! now it is refused after one look at its length.
//!
//! DNS comes from a loopback TestDns; one verification before measuring fills the resolver's
//! cache, so what is measured is the parsing and the verification of the honest signature.
//!
//! Run: `cargo bench -p authcheck-verifier --bench hostile`

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use authcheck_verifier::{BodyParameter, MessageInput, Verifier};
use common::{SignOptions, TestKey, distinct_empty_tags, sender_zone, sign, verifier};
use criterion::{Criterion, criterion_group, criterion_main};

const CLIENT_IP: &str = "192.0.2.10";
const HELO: &str = "mail.sender.test";
const MAIL_FROM: &str = "alice@sender.test";
const TAGS: usize = 80_000;

fn hostile_message() -> Vec<u8> {
    let honest = sign(
        &common::message(MAIL_FROM, "benchmark", "Hi there.\r\n"),
        &SignOptions::new("sender.test", TestKey::Ed25519),
    );
    let mut out = format!(
        "DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=rsa2048; {}h=from; bh=AAAA; b=AAAA\r\n",
        distinct_empty_tags(TAGS)
    )
    .into_bytes();
    out.extend_from_slice(&honest);
    out
}

fn bench_hostile(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dns = runtime.block_on(sender_zone());
    dns.add_txt(HELO, "v=spf1 ip4:192.0.2.10 -all");
    let verifier: Verifier = runtime.block_on(async { verifier(&dns) });
    let message = hostile_message();
    let input = MessageInput {
        client_ip: Some(CLIENT_IP.parse().unwrap()),
        helo: HELO,
        mail_from: MAIL_FROM,
        message: &message,
        body: BodyParameter::Unknown,
    };
    let warm = runtime.block_on(verifier.verify(&input));
    assert_eq!(warm.dkim.len(), 2);
    assert_eq!(
        warm.verdicts.dkim.to_string(),
        "|OK| dkim-pass",
        "the honest signature passes: {:?}",
        warm.dkim[1].reason
    );
    c.bench_function(
        &format!("verify a message with a {TAGS}-tag DKIM-Signature"),
        |b| {
            b.to_async(&runtime)
                .iter(|| async { black_box(verifier.verify(black_box(&input)).await) })
        },
    );
}

criterion_group!(benches, bench_hostile);
criterion_main!(benches);
