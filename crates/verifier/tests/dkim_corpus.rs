//! DKIM verification against independently signed real-world messages (`tests/data/dkim/`),
//! served by a real DNS server on loopback: each verifies, and tampered copies fail for the
//! right reason.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authcheck_testdns::TestDns;
use authcheck_verifier::dkim::verify_signatures;
use authcheck_verifier::{DkimReasonCode, DkimResult, DkimSignatureReport, Dns};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/dkim/");
const VECTORS: [&str; 6] = [
    "001.txt", "002.txt", "003.txt", "004.txt", "005.txt", "006.txt",
];
const TIME_LIMIT: Duration = Duration::from_secs(5);

/// One corpus file: the key records to publish and the raw message.
struct Vector {
    name: &'static str,
    records: Vec<(String, String)>,
    message: Vec<u8>,
}

fn load(name: &'static str) -> Vector {
    let path = format!("{CORPUS}{name}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let separator = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("records, a blank line, then the message");
    let records = std::str::from_utf8(&bytes[..separator])
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(' ').expect("`name TXT-value`");
            (name.to_string(), value.to_string())
        })
        .collect();
    Vector {
        name,
        records,
        message: bytes[separator + 2..].to_vec(),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Verifies `message` against a fresh DNS server holding the vector's records.
async fn verify(vector: &Vector, message: &[u8], now: u64) -> Vec<DkimSignatureReport> {
    let server = TestDns::start().await;
    for (name, value) in &vector.records {
        server.add_txt(name, value);
    }
    let dns = Dns::new(&common::dns_config(&server)).unwrap();
    let reports = verify_signatures(&dns, message, now, TIME_LIMIT).await;
    assert!(
        !reports.is_empty(),
        "{}: no DKIM-Signature found",
        vector.name
    );
    reports
}

/// The time to verify a vector at: its signing time when it carries `x=` (which has passed
/// since), otherwise the present.
fn verification_time(reports: &[DkimSignatureReport]) -> u64 {
    match reports.iter().find(|r| r.expiration.is_some()) {
        Some(report) => report.timestamp.expect("x= comes with t= in the corpus"),
        None => now(),
    }
}

/// `message` with one letter of the body replaced by another.
fn with_body_changed(message: &[u8]) -> Vec<u8> {
    let body_start = message.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let mut changed = message.to_vec();
    let position = body_start
        + changed[body_start..]
            .iter()
            .position(|b| b.is_ascii_alphabetic())
            .expect("the body has a letter");
    changed[position] = if changed[position] == b'x' {
        b'y'
    } else {
        b'x'
    };
    changed
}

/// `message` with text added to the start of its Subject value.
fn with_subject_changed(message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(message);
    let position = text
        .find("\nSubject: ")
        .expect("every vector has a Subject")
        + "\nSubject: ".len();
    let mut changed = message[..position].to_vec();
    changed.extend_from_slice(b"Re: ");
    changed.extend_from_slice(&message[position..]);
    changed
}

#[tokio::test]
async fn every_corpus_signature_verifies() {
    for name in VECTORS {
        let vector = load(name);
        let first = verify(&vector, &vector.message, now()).await;
        let reports = verify(&vector, &vector.message, verification_time(&first)).await;
        for report in &reports {
            assert_eq!(
                report.result,
                DkimResult::Pass,
                "{name}: {} ({:?})",
                report.reason,
                report.reason_code
            );
            assert_eq!(report.reason_code, DkimReasonCode::Verified);
            assert!(
                report.key_bits.is_some_and(|bits| bits >= 256),
                "{name}: key size known"
            );
            assert!(!report.aligned, "alignment is the caller's job");
        }
    }
}

#[tokio::test]
async fn the_rfc8463_example_has_an_ed25519_and_an_rsa_signature() {
    let vector = load("001.txt");
    let reports = verify(&vector, &vector.message, now()).await;
    let summary: Vec<(&str, Option<&str>, Option<u32>, DkimResult)> = reports
        .iter()
        .map(|r| {
            (
                r.algorithm.as_str(),
                r.key_type.as_deref(),
                r.key_bits,
                r.result,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "ed25519-sha256",
                Some("ed25519"),
                Some(256),
                DkimResult::Pass
            ),
            ("rsa-sha256", Some("rsa"), Some(1024), DkimResult::Pass),
        ]
    );
    assert_eq!(reports[0].domain, "football.example.com");
    assert_eq!(reports[0].selector, "brisbane");
    assert_eq!(
        reports[0].identity.as_deref(),
        Some("@football.example.com")
    );
    assert_eq!(reports[0].canonicalization, "relaxed/relaxed");
    assert_eq!(
        reports[0].signed_headers,
        [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "from",
            "subject",
            "date"
        ]
    );
    assert_eq!(reports[0].timestamp, Some(1528637909));
}

#[tokio::test]
async fn the_expired_vector_is_invalid_today() {
    let vector = load("005.txt");
    let reports = verify(&vector, &vector.message, now()).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].result, DkimResult::Invalid);
    assert_eq!(reports[0].reason_code, DkimReasonCode::SignatureExpired);
    assert!(
        reports[0].reason.contains("x=1667930064"),
        "{}",
        reports[0].reason
    );
    assert_eq!(
        reports[0].canonicalization, "relaxed",
        "c= is shown as written"
    );
}

#[tokio::test]
async fn a_changed_body_fails_every_corpus_signature_on_its_body_hash() {
    for name in VECTORS {
        let vector = load(name);
        let first = verify(&vector, &vector.message, now()).await;
        let reports = verify(
            &vector,
            &with_body_changed(&vector.message),
            verification_time(&first),
        )
        .await;
        for report in &reports {
            assert_eq!(report.result, DkimResult::Fail, "{name}: {}", report.reason);
            assert_eq!(
                report.reason_code,
                DkimReasonCode::BodyHashMismatch,
                "{name}"
            );
            assert!(
                report.reason.starts_with("body hash did not verify"),
                "{name}: {}",
                report.reason
            );
        }
    }
}

#[tokio::test]
async fn a_changed_subject_fails_every_corpus_signature() {
    for name in VECTORS {
        let vector = load(name);
        let first = verify(&vector, &vector.message, now()).await;
        let reports = verify(
            &vector,
            &with_subject_changed(&vector.message),
            verification_time(&first),
        )
        .await;
        for report in &reports {
            assert_eq!(report.result, DkimResult::Fail, "{name}: {}", report.reason);
            assert_eq!(
                report.reason_code,
                DkimReasonCode::SignatureMismatch,
                "{name}"
            );
        }
    }
}
