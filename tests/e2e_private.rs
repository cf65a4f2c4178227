//! The full check at `check@` and private test addresses (`test-<token>@`), end to end: the
//! real binary with a loopback DNS server, messages over real SMTP, results read back through
//! the JSON API and the pages.

mod support;

use authcheck_testdns::TestDns;
use authcheck_testkit::{SignOptions, TestKey, message, publish_keys, sign};
use support::{Service, send};

/// `pass.test` passes SPF for 127.0.0.1 and publishes the test keys; `nokey.test` passes SPF
/// and signs nothing.
async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    for domain in ["pass.test", "nokey.test"] {
        dns.add_txt(domain, "v=spf1 ip4:127.0.0.1 -all");
    }
    publish_keys(&dns, "pass.test");
    dns
}

fn signed(from: &str, d: &str, subject: &str) -> Vec<u8> {
    sign(
        &message(from, subject, "Hello.\r\n"),
        &SignOptions::new(d, TestKey::Rsa2048),
    )
}

#[tokio::test]
async fn check_at_gives_one_result_with_both_verdicts() {
    let dns = zone().await;
    let service = Service::start(&dns).await;

    let reply = send(
        &service,
        "pass.test",
        "a@pass.test",
        &["Check+run-1@Tester.Test"],
        &signed("a@pass.test", "pass.test", "Both"),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let stored = reply.stored();
    assert_eq!(stored.len(), 1, "one result for check@: {reply:?}");
    let (id, url) = &stored[0];
    assert_eq!(url, &format!("{}/r/{id}", service.public_url));
    let result = service.get_json(&format!("/api/v1/results/{id}")).await;
    assert_eq!(result["mailbox"], "check");
    assert_eq!(result["verdict"], "|OK| spf-pass |OK| dkim-pass");
    assert_eq!(result["verdicts"]["spf"], "|OK| spf-pass");
    assert_eq!(result["verdicts"]["dkim"], "|OK| dkim-pass");
    assert_eq!(
        result["prefixed_subject"],
        "|OK| spf-pass |OK| dkim-pass Both"
    );
    assert_eq!(result["session"]["recipient"], "Check+run-1@Tester.Test");

    // A problem in either verdict shows, and colours the line as a problem.
    let unsigned = message("a@nokey.test", "Half", "Hello.\r\n");
    let reply = send(
        &service,
        "nokey.test",
        "a@nokey.test",
        &["check@tester.test"],
        &unsigned,
    )
    .await;
    let (half_id, _) = reply.stored().remove(0);
    let half = service
        .get_json(&format!("/api/v1/results/{half_id}"))
        .await;
    assert_eq!(half["verdict"], "|OK| spf-pass !! dkim-none !!");
    assert_eq!(half["verdicts"]["dkim"], "!! dkim-none !!");

    // The list of full checks and the API's mailbox filter hold them; spf@ results do not
    // gain the field.
    let listed = service.get_json("/api/v1/results?mailbox=check").await;
    let ids: Vec<&str> = listed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|result| result["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [half_id.as_str(), id.as_str()]);
    let page = service.get_text("/check").await;
    assert!(page.contains("Results for check@"), "{page}");
    assert!(
        page.contains(r#"class="verdict problem" href="/r/"#)
            && page.contains("!! dkim-none !! Half"),
        "{page}"
    );
    let detail = service.get_text(&format!("/r/{id}")).await;
    assert!(detail.contains("at check@"), "{detail}");
    assert!(
        detail.contains("|OK| spf-pass |OK| dkim-pass Both"),
        "{detail}"
    );

    let spf = send(
        &service,
        "pass.test",
        "a@pass.test",
        &["spf@tester.test"],
        &signed("a@pass.test", "pass.test", "One"),
    )
    .await;
    let spf = service
        .get_json(&format!("/api/v1/results/{}", spf.stored()[0].0))
        .await;
    assert_eq!(spf["verdict"], "|OK| spf-pass");
    assert!(spf.get("verdicts").is_none(), "{spf:#}");
    let front = service.get_text("/").await;
    assert!(front.contains("check@tester.test"), "{front}");
}
