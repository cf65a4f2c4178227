//! Property-based fuzzing of [`Verifier::verify`] against a loopback DNS server: on arbitrary
//! bytes, on header blocks full of DKIM-Signature tag soup, and on mutations of a real signed
//! message, it never panics and returns a report whose verdicts are among the published ones,
//! whose Authentication-Results field cannot start a new header field, and which survives a
//! JSON round trip unchanged. A changed character in the body of the signed message always
//! makes its signature fail with a body hash mismatch.
//!
//! The case count comes from `PROPTEST_CASES` (default 64 per target). To fuzz for longer:
//!
//! ```sh
//! PROPTEST_CASES=100000 cargo test -p authcheck-verifier --test fuzz_verifier -- --nocapture
//! ```

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use authcheck_testdns::TestDns;
use authcheck_verifier::{
    BodyParameter, DkimReasonCode, DkimResult, MessageInput, Report, Verifier,
};
use common::{SignOptions, TestKey, message, publish_keys, sign, verifier};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

const DEFAULT_CASES: u32 = 64;
const SENDER_DOMAIN: &str = "signed.test";
const CLIENT_IP: &str = "192.0.2.1";

/// Every verdict the tester can show (README, "The verdicts").
const SPF_VERDICTS: [&str; 9] = [
    "|OK| spf-pass",
    "|~OK| spf-pass",
    "!! spf-diff !!",
    "!! spf-fail !!",
    "!! spf-softfail !!",
    "!! spf-neutral !!",
    "!! spf-none !!",
    "!! spf-permerror !!",
    "!! spf-temperror !!",
];
const DKIM_VERDICTS: [&str; 7] = [
    "|OK| dkim-pass",
    "|~OK| dkim-pass",
    "!! dkim-diff !!",
    "!! dkim-none !!",
    "!! dkim-fail !!",
    "!! dkim-invalid !!",
    "!! dkim-temperror !!",
];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// A loopback DNS server with the test keys and an SPF record for the client, and a verifier
/// asking it, on a runtime of their own.
struct World {
    runtime: tokio::runtime::Runtime,
    _dns: TestDns,
    verifier: Verifier,
    signed: Vec<u8>,
}

impl World {
    fn new() -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dns = runtime.block_on(TestDns::start());
        publish_keys(&dns, SENDER_DOMAIN);
        dns.add_txt(SENDER_DOMAIN, &format!("v=spf1 ip4:{CLIENT_IP} -all"));
        dns.add_txt(
            &format!("_dmarc.{SENDER_DOMAIN}"),
            "v=DMARC1; p=reject; rua=mailto:d@signed.test",
        );
        let verifier = runtime.block_on(async { verifier(&dns) });
        let body = "Hello,\r\n\r\nthis body is signed. Every character counts.\r\n";
        let signed = sign(
            &message(&format!("a@{SENDER_DOMAIN}"), "Signed", body),
            &SignOptions::new(SENDER_DOMAIN, TestKey::Rsa2048),
        );
        World {
            runtime,
            _dns: dns,
            verifier,
            signed,
        }
    }

    fn verify(&self, message: &[u8]) -> Report {
        let input = MessageInput {
            client_ip: Some(CLIENT_IP.parse().unwrap()),
            helo: "mail.signed.test",
            mail_from: "bounce@signed.test",
            message,
            body: BodyParameter::Unknown,
        };
        self.runtime.block_on(self.verifier.verify(&input))
    }
}

/// The properties every report must have, whatever the input.
fn check_report(report: &Report) -> Result<(), TestCaseError> {
    prop_assert!(
        SPF_VERDICTS.contains(&report.verdicts.spf.to_string().as_str()),
        "unknown SPF verdict {:?}",
        report.verdicts.spf.to_string()
    );
    prop_assert!(
        DKIM_VERDICTS.contains(&report.verdicts.dkim.to_string().as_str()),
        "unknown DKIM verdict {:?}",
        report.verdicts.dkim.to_string()
    );
    prop_assert_eq!(
        report.dkim.is_empty(),
        report.verdicts.dkim.to_string() == "!! dkim-none !!"
    );
    let field = report.authentication_results.as_bytes();
    prop_assert!(field.starts_with(b"Authentication-Results:"));
    for (i, &byte) in field.iter().enumerate() {
        let folded = match byte {
            b'\n' => {
                i > 0 && field[i - 1] == b'\r' && matches!(field.get(i + 1), Some(b' ' | b'\t'))
            }
            b'\r' => field.get(i + 1) == Some(&b'\n'),
            _ => true,
        };
        prop_assert!(
            folded,
            "a line break in Authentication-Results that is not a fold: {:?}",
            report.authentication_results
        );
    }
    let json = serde_json::to_string(report).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: Report =
        serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, report, "the report changed in a JSON round trip");
    Ok(())
}

fn fuzz<S, F>(name: &str, strategy: S, check: F)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(&World, S::Value) -> Result<(), TestCaseError>,
{
    let world = World::new();
    let runs = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let started = std::time::Instant::now();
    let outcome = runner.run(&strategy, |value| {
        runs.fetch_add(1, Ordering::SeqCst);
        check(&world, value)
    });
    println!(
        "{name}: {} executions ({} cases) in {:.1?}",
        runs.load(Ordering::SeqCst),
        cases(),
        started.elapsed()
    );
    match outcome {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => panic!("{name}: {reason}\nminimal input: {value:?}"),
        Err(TestError::Abort(reason)) => panic!("{name}: aborted: {reason}"),
    }
}

#[test]
fn arbitrary_bytes_give_a_well_formed_report() {
    let message = proptest::collection::vec(any::<u8>(), 0..4096);
    fuzz("verifier, arbitrary bytes", message, |world, message| {
        check_report(&world.verify(&message))
    });
}

/// A DKIM-Signature field of random tags, some well-formed, some not.
fn dkim_signature() -> impl Strategy<Value = String> {
    let tag = prop_oneof![
        Just("v=1".to_string()),
        Just("v=2".to_string()),
        Just("a=rsa-sha256".to_string()),
        Just("a=ed25519-sha256".to_string()),
        Just("a=rsa-sha1".to_string()),
        Just(format!("d={SENDER_DOMAIN}")),
        Just("d=".to_string()),
        Just("s=rsa2048".to_string()),
        Just("s=ed25519".to_string()),
        Just("s=missing".to_string()),
        Just("c=relaxed/relaxed".to_string()),
        Just("c=simple".to_string()),
        Just("c=bogus/x".to_string()),
        Just("h=From:To:Subject".to_string()),
        Just("h=to".to_string()),
        Just("h=".to_string()),
        Just("i=@signed.test".to_string()),
        Just("i=x@other.test".to_string()),
        (0u64..u64::MAX).prop_map(|n| format!("l={n}")),
        (0u64..u64::MAX).prop_map(|n| format!("t={n}")),
        (0u64..u64::MAX).prop_map(|n| format!("x={n}")),
        "bh=[A-Za-z0-9+/=]{0,60}",
        "b=[A-Za-z0-9+/= \t]{0,120}",
        "[a-z]{1,3}=[ -:<-~]{0,20}",
        "[ -~]{0,20}",
    ];
    proptest::collection::vec(tag, 0..14).prop_map(|tags| tags.join("; "))
}

#[test]
fn dkim_tag_soup_gives_a_well_formed_report() {
    let fields = proptest::collection::vec(dkim_signature(), 0..6);
    let fold = prop_oneof![Just("\r\n"), Just("\n"), Just("\r\n\t")];
    fuzz(
        "verifier, DKIM-Signature tag soup",
        (fields, fold),
        |world, (fields, fold)| {
            let mut message = Vec::new();
            for field in &fields {
                message.extend_from_slice(format!("DKIM-Signature: {field}{fold}").as_bytes());
            }
            message.extend_from_slice(&world.signed);
            let report = world.verify(&message);
            check_report(&report)?;
            // Each added field is reported, plus the real signature; a tab after the line break
            // folds each added field into the one below it.
            let expected = if fold == "\r\n\t" && !fields.is_empty() {
                1
            } else {
                fields.len() + 1
            };
            prop_assert_eq!(report.dkim.len(), expected);
            Ok(())
        },
    );
}

/// A change to a copy of the signed message.
#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, length: usize },
    Truncate { at: usize },
    DuplicateLine { at: usize },
}

impl Mutation {
    fn apply(&self, message: &mut Vec<u8>) {
        let position = |at: usize| at % (message.len() + 1);
        match self {
            Mutation::Flip { at, byte } if !message.is_empty() => {
                let at = at % message.len();
                message[at] = *byte;
            }
            Mutation::Flip { .. } => {}
            Mutation::Insert { at, bytes } => {
                let at = position(*at);
                message.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete { at, length } => {
                let at = position(*at);
                let end = (at + length).min(message.len());
                message.drain(at..end);
            }
            Mutation::Truncate { at } => {
                let at = position(*at);
                message.truncate(at);
            }
            Mutation::DuplicateLine { at } => {
                let at = position(*at);
                let start = message[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |n| n + 1);
                let end = message[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(message.len(), |n| at + n + 1);
                let line = message[start..end].to_vec();
                message.splice(start..start, line);
            }
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Flip { at, byte }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, length)| Mutation::Delete { at, length }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        any::<usize>().prop_map(|at| Mutation::DuplicateLine { at }),
    ]
}

#[test]
fn mutations_of_a_signed_message_give_a_well_formed_report() {
    {
        let world = World::new();
        let report = world.verify(&world.signed);
        assert_eq!(
            report.verdicts.dkim.to_string(),
            "|OK| dkim-pass",
            "{report:#?}"
        );
    }
    let mutations = proptest::collection::vec(mutation(), 1..4);
    fuzz(
        "verifier, mutated signed message",
        mutations,
        |world, mutations| {
            let mut message = world.signed.clone();
            for mutation in &mutations {
                mutation.apply(&mut message);
            }
            check_report(&world.verify(&message))
        },
    );
}

#[test]
fn a_changed_body_character_always_fails_the_body_hash() {
    // Only visible characters are changed: relaxed canonicalization may legitimately absorb
    // changes to white space.
    let visible_body_positions: Vec<usize> = {
        let world = World::new();
        let body_start = world
            .signed
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap()
            + 4;
        (body_start..world.signed.len())
            .filter(|&at| world.signed[at].is_ascii_graphic())
            .collect()
    };
    fuzz(
        "verifier, one body character changed",
        (any::<usize>(), b'!'..=b'~'),
        move |world, (index, replacement)| {
            let at = visible_body_positions[index % visible_body_positions.len()];
            let original = world.signed[at];
            let replacement = match replacement {
                same if same == original && same == b'~' => b'!',
                same if same == original => same + 1,
                other => other,
            };
            let mut message = world.signed.clone();
            message[at] = replacement;
            let report = world.verify(&message);
            check_report(&report)?;
            prop_assert_eq!(report.dkim.len(), 1);
            prop_assert_eq!(report.dkim[0].result, DkimResult::Fail);
            prop_assert_eq!(
                &report.dkim[0].reason_code,
                &DkimReasonCode::BodyHashMismatch
            );
            prop_assert_eq!(&report.verdicts.dkim.to_string(), "!! dkim-fail !!");
            Ok(())
        },
    );
}
