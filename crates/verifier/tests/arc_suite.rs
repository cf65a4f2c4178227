//! The ARC validation suite (ValiMail's, as kept by the mailauth project) against the verifier's
//! ARC check, each scenario's key records served by a real DNS server on loopback.
//!
//! Every test is run and its chain result compared with the suite's `cv`; a mismatch fails the
//! test unless it is in [`KNOWN_DIFFERENCES`] with the reason.

mod common;

use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_verifier::{ArcResult, arc};
use serde_json::Value;

const SUITE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/arc/arc-draft-validation-tests.json"
);

/// How many validation tests the suite file holds.
const SUITE_SIZE: usize = 171;

/// Tests whose result differs from the suite's, each with why. Keep this list short.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "ams_fields_c_na",
        "an AMS without c= is checked with the RFC 6376 default simple/simple (as mail-auth does); \
         the suite's signature only verifies with relaxed header canonicalization",
    ),
    (
        "ams_fields_h_empty",
        "mail-auth refuses to parse an AMS whose h= is empty, so the chain fails; the suite accepts it",
    ),
];

fn expected(cv: &str) -> Option<ArcResult> {
    match cv {
        "Pass" => Some(ArcResult::Pass),
        "Fail" => Some(ArcResult::Fail),
        "None" => Some(ArcResult::None),
        // The suite leaves cv empty for chains that already carry cv=fail; RFC 8617 §5.2 step 2
        // says such a chain fails.
        "" => Some(ArcResult::Fail),
        _ => None,
    }
}

#[tokio::test]
async fn the_arc_validation_suite_gives_the_expected_chain_results() {
    let suite: Value =
        serde_json::from_str(&std::fs::read_to_string(SUITE).expect("read the ARC suite")).unwrap();
    let scenarios = suite.as_array().expect("the suite is a list of scenarios");
    let mut run = 0;
    let mut matched = 0;
    let mut unexpected = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for scenario in scenarios {
        let dns = TestDns::start().await;
        for (name, value) in scenario["txt-records"].as_object().expect("txt-records") {
            dns.add_txt(name, value.as_str().expect("a TXT value"));
        }
        let verifier = common::verifier(&dns);
        for (name, test) in scenario["tests"].as_object().expect("tests") {
            let cv = test["cv"].as_str().unwrap_or_default();
            let want = expected(cv).unwrap_or_else(|| panic!("{name}: unknown cv {cv:?}"));
            run += 1;
            // The suite writes messages with LF for readability; on the wire they are CRLF,
            // and simple canonicalization tells the two apart.
            let message = test["message"]
                .as_str()
                .expect("a message")
                .replace('\n', "\r\n");
            let report =
                arc::verify_chain(verifier.dns(), message.as_bytes(), Duration::from_secs(5)).await;
            seen.insert(name.clone());
            if report.result == want {
                matched += 1;
                if KNOWN_DIFFERENCES.iter().any(|(known, _)| known == name) {
                    unexpected.push(format!(
                        "{name} matches now: remove it from KNOWN_DIFFERENCES"
                    ));
                }
            } else if !KNOWN_DIFFERENCES.iter().any(|(known, _)| known == name) {
                unexpected.push(format!(
                    "{name} ({}): expected {want:?}, got {:?}: {}",
                    test["description"].as_str().unwrap_or_default(),
                    report.result,
                    report.reason
                ));
            }
        }
    }
    println!("arc: {matched}/{run}");
    for (name, reason) in KNOWN_DIFFERENCES {
        println!("known difference {name}: {reason}");
    }
    assert_eq!(
        run, SUITE_SIZE,
        "the suite should hold {SUITE_SIZE} validation tests: is the file complete?"
    );
    for (name, _) in KNOWN_DIFFERENCES {
        assert!(
            seen.contains(*name),
            "KNOWN_DIFFERENCES names {name}, which the suite lacks"
        );
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected result(s):\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

/// The suite's scenario that holds `test`, and that test's message with CRLF line endings.
fn suite_case(test: &str) -> (Value, String) {
    let suite: Value =
        serde_json::from_str(&std::fs::read_to_string(SUITE).expect("read the ARC suite")).unwrap();
    let scenario = suite
        .as_array()
        .unwrap()
        .iter()
        .find(|scenario| scenario["tests"].get(test).is_some())
        .unwrap_or_else(|| panic!("{test} is not in the suite"))
        .clone();
    let message = scenario["tests"][test]["message"]
        .as_str()
        .unwrap()
        .replace('\n', "\r\n");
    (scenario, message)
}

async fn serve(scenario: &Value) -> TestDns {
    let dns = TestDns::start().await;
    for (name, value) in scenario["txt-records"].as_object().unwrap() {
        dns.add_txt(name, value.as_str().unwrap());
    }
    dns
}

#[tokio::test]
async fn the_verifier_reports_the_arc_chain_and_names_it_in_authentication_results() {
    let (scenario, message) = suite_case("cv_pass_i1_1");
    let dns = serve(&scenario).await;
    let verifier = common::verifier(&dns);
    let report = common::verify(
        &verifier,
        "192.0.2.10",
        "lists.example.org",
        "jqd@d1.example.org",
        message.as_bytes(),
    )
    .await;
    assert_eq!(report.arc.result, ArcResult::Pass, "{}", report.arc.reason);
    assert_eq!(report.arc.sets, 1);
    assert!(
        report.authentication_results.ends_with("arc=pass"),
        "{}",
        report.authentication_results
    );

    let tampered = message.replace("This is a test message.", "This is another message.");
    let report = common::verify(
        &verifier,
        "192.0.2.10",
        "lists.example.org",
        "jqd@d1.example.org",
        tampered.as_bytes(),
    )
    .await;
    assert_eq!(report.arc.result, ArcResult::Fail);
    assert!(
        report.arc.reason.contains("body hash"),
        "{}",
        report.arc.reason
    );
    assert!(
        report.authentication_results.contains("arc=fail ("),
        "{}",
        report.authentication_results
    );
}

#[tokio::test]
async fn an_unanswered_key_lookup_fails_the_chain_with_advice_to_retry() {
    let (scenario, message) = suite_case("cv_pass_i1_1");
    let dns = serve(&scenario).await;
    dns.set_behaviour(
        "dummy._domainkey.example.org",
        authcheck_testdns::Behaviour::Timeout,
    );
    let verifier = common::verifier(&dns);
    let report = arc::verify_chain(
        verifier.dns(),
        message.as_bytes(),
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(report.result, ArcResult::Fail);
    assert!(report.reason.contains("try again"), "{}", report.reason);
}
