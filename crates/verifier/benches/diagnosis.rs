//! How long diagnosis takes on a message whose body hash does not match, at two body sizes:
//! the worst case for the body search, as no candidate original matches (a line changed in
//! the middle), so every candidate is built and hashed. Linear cost shows as a time that
//! grows with the size and no faster.
//!
//! Run: `cargo bench -p authcheck-verifier --bench diagnosis` (`-- --quick` for a rough figure).
//! The report comes from one real verification against a loopback TestDns; what is measured
//! is `diagnosis::diagnose` alone, which needs no DNS, given the message split into header
//! fields as the verifier splits it once for DKIM and the diagnosis.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use authcheck_verifier::diagnosis::{Upstream, diagnose};
use authcheck_verifier::dkim::RawMessage;
use authcheck_verifier::{BodyParameter, DkimReasonCode, MessageInput};
use common::{SignOptions, TestKey, sender_zone, sign, verifier};
use criterion::{Criterion, criterion_group, criterion_main};

/// A signed message of about `size` bytes whose middle line was changed after signing.
fn changed_message(size: usize) -> Vec<u8> {
    let mut body = String::with_capacity(size);
    let mut n = 0;
    while body.len() < size {
        body.push_str(&format!(
            "Line {n} of the quarterly report, with some more words.\r\n"
        ));
        n += 1;
    }
    let message = common::message("alice@sender.test", "benchmark", &body);
    let signed = sign(&message, &SignOptions::new("sender.test", TestKey::Rsa2048));
    let text = String::from_utf8(signed).unwrap();
    text.replacen(
        &format!("Line {} of", n / 2),
        &format!("LINE {} of", n / 2),
        1,
    )
    .into_bytes()
}

fn bench_diagnosis(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dns = runtime.block_on(sender_zone());
    let verifier = runtime.block_on(async { verifier(&dns) });

    for (name, size) in [("100 KB", 100 * 1024), ("1 MB", 1024 * 1024)] {
        let message = changed_message(size);
        let input = MessageInput {
            client_ip: Some("192.0.2.10".parse().unwrap()),
            helo: "mail.sender.test",
            mail_from: "alice@sender.test",
            message: &message,
            body: BodyParameter::Absent,
        };
        let report = runtime.block_on(verifier.verify(&input));
        assert_eq!(
            report.dkim[0].reason_code,
            DkimReasonCode::BodyHashMismatch,
            "the benchmark message must fail on its body hash"
        );
        let upstream = Upstream::default();
        let fields = RawMessage::parse(&message);
        c.bench_function(&format!("diagnose a body hash mismatch, {name}"), |b| {
            b.iter(|| black_box(diagnose(black_box(&input), &fields, &report, &upstream)))
        });
    }
}

criterion_group!(benches, bench_diagnosis);
criterion_main!(benches);
