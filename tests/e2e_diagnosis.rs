//! Diagnosis end to end: the classic relayed-and-changed message sent over SMTP to the real
//! binary shows its findings first on the result page, in the JSON API and from
//! `authcheck check`; the message as delivered is at `/r/{id}/eml` and from
//! `authcheck check --rewrite`; a clean message shows no diagnosis at all. Message shape
//! findings that depend on how the message was sent (MAIL FROM's `BODY=`, line lengths in
//! DATA) are checked over SMTP too, and `check --body` gives the `BODY=` parameter by hand.

mod support;

use authcheck_testdns::TestDns;
use authcheck_testkit::browser::{Browser, screenshot_dir};
use authcheck_testkit::{SignOptions, TestKey, message, publish_sender_domain, sign};
use support::{RawSmtp, Service, run_cli, send_and_fetch};

/// sender.test sends from 192.0.2.10 only; the service sees every message from 127.0.0.1, the
/// "filter" that relays it.
async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    publish_sender_domain(&dns, "sender.test", "192.0.2.10");
    publish_sender_domain(&dns, "clean.test", "127.0.0.1");
    dns
}

/// Signed by sender.test, received by a filter from sender.test's server, then given a footer.
fn relayed_and_changed() -> Vec<u8> {
    let signed = sign(
        &message(
            "alice@sender.test",
            "Invoice 2026-11",
            "Please find the invoice.\r\nRegards,\r\nAlice\r\n",
        ),
        &SignOptions::new("sender.test", TestKey::Rsa2048),
    );
    let mut out = b"Received: from mx.sender.test (mx.sender.test [192.0.2.10])\r\n\tby filter.example.net with ESMTPS id 4AbC\r\n\tfor <bob@recipient.test>; Mon, 23 Nov 2026 10:00:02 +0000\r\n".to_vec();
    out.extend_from_slice(&signed);
    out.extend_from_slice(b"\r\n-- \r\nScanned for viruses by Example Filter.\r\n");
    out
}

fn clean() -> Vec<u8> {
    sign(
        &message("carol@clean.test", "All good", "Hello.\r\n"),
        &SignOptions::new("clean.test", TestKey::Rsa2048),
    )
}

fn codes(json: &serde_json::Value) -> Vec<String> {
    json["diagnosis"]
        .as_array()
        .expect("diagnosis is a list")
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_relayed_and_changed_message_is_explained_on_every_interface() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let message = relayed_and_changed();

    let result = send_and_fetch(
        &service,
        "filter.example.net",
        "alice@sender.test",
        "dkim@tester.test",
        &message,
    )
    .await;
    assert_eq!(
        result["verdict"], "!! dkim-fail !!",
        "diagnosis never changes a verdict"
    );
    let codes = codes(&result);
    assert!(
        codes.contains(&"spf-passes-at-previous-hop".to_string()),
        "{codes:?}"
    );
    assert!(codes.contains(&"body-appended".to_string()), "{codes:?}");
    let first = &result["diagnosis"][0];
    assert_eq!(first["severity"], "problem");
    for field in ["title", "detail", "evidence", "fix"] {
        assert!(!first[field].is_null(), "{field} missing: {first}");
    }
    let id = result["id"].as_str().unwrap().to_string();

    // The page: the diagnosis section comes before every other card, in plain words.
    let page = service.get_text(&format!("/r/{id}")).await;
    let diagnosis_at = page.find("What happened").expect("a diagnosis section");
    let verdicts_at = page.find("<h2>Verdicts</h2>").unwrap();
    assert!(diagnosis_at < verdicts_at, "the diagnosis comes first");
    assert!(
        page.contains("the address before it, 192.0.2.10 (mx.sender.test), is permitted by sender.test&#39;s SPF record"),
        "{page}"
    );
    assert!(page.contains("3 lines were added at the end"), "{page}");
    assert!(page.contains(&format!("href=\"/r/{id}/eml\"")));

    // The message as delivered: Authentication-Results on top, the verdict in the Subject,
    // every other byte as received.
    let raw = service
        .get(&format!("/r/{id}/raw"))
        .await
        .bytes()
        .await
        .unwrap();
    let response = service.get(&format!("/r/{id}/eml")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "message/rfc822");
    let delivered = String::from_utf8(response.bytes().await.unwrap().to_vec()).unwrap();
    assert!(
        delivered.starts_with("Authentication-Results: "),
        "{delivered}"
    );
    assert!(
        delivered.contains("\r\nSubject: !! dkim-fail !! Invoice 2026-11\r\n"),
        "{delivered}"
    );
    let raw = String::from_utf8(raw.to_vec()).unwrap();
    let body_of = |m: &str| m.split_once("\r\n\r\n").unwrap().1.to_string();
    assert_eq!(body_of(&delivered), body_of(&raw));
    assert_eq!(
        delivered
            .replace("Subject: !! dkim-fail !! ", "Subject: ")
            .split_once("\r\nReceived: ")
            .unwrap()
            .1,
        raw.split_once("Received: ").unwrap().1
    );
    assert_eq!(
        service
            .get("/r/0000000000000000000000000000/eml")
            .await
            .status(),
        404
    );

    // A clean message: no diagnosis anywhere.
    let result = send_and_fetch(
        &service,
        "mail.clean.test",
        "carol@clean.test",
        "dkim@tester.test",
        &clean(),
    )
    .await;
    assert_eq!(result["verdict"], "|OK| dkim-pass");
    assert_eq!(result["diagnosis"], serde_json::json!([]));
    let page = service
        .get_text(&format!("/r/{}", result["id"].as_str().unwrap()))
        .await;
    assert!(!page.contains("What happened"), "{page}");
}

#[tokio::test]
async fn check_prints_the_diagnosis_and_the_message_as_delivered() {
    let dns = zone().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("relayed.eml");
    std::fs::write(&file, relayed_and_changed()).unwrap();
    let server = dns.addr().to_string();
    let args = |extra: &[&'static str]| {
        let mut args = vec![
            "check".to_string(),
            file.to_str().unwrap().to_string(),
            "--ip".into(),
            "198.51.100.7".into(),
            "--helo".into(),
            "filter.example.net".into(),
            "--mail-from".into(),
            "alice@sender.test".into(),
            "--dns-server".into(),
            server.clone(),
            "--hostname".into(),
            "tester.test".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>| {
        let dir = dir.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_cli(&args, None, &dir).await
        }
    };

    let (status, stdout, stderr) = run(args(&["--color", "never"])).await;
    assert!(status.success(), "{stderr}");
    let what = stdout.find("What happened").expect("a diagnosis section");
    assert!(
        what < stdout.find("\nSPF\n").unwrap(),
        "diagnosis before the checks:\n{stdout}"
    );
    assert!(stdout.contains("[spf-passes-at-previous-hop]"), "{stdout}");
    assert!(
        stdout.contains("problem SPF fails because the message was relayed"),
        "{stdout}"
    );
    assert!(stdout.contains("3 lines were added"), "{stdout}");

    let (status, stdout, stderr) = run(args(&["--json"])).await;
    assert!(status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(codes(&report).contains(&"body-appended".to_string()));

    let (status, stdout, stderr) = run(args(&["--rewrite", "dkim"])).await;
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.starts_with("Authentication-Results: tester.test;"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\r\nSubject: !! dkim-fail !! Invoice 2026-11\r\n"),
        "{stdout}"
    );
    let (status, stdout, _) = run(args(&["--rewrite"])).await;
    assert!(status.success());
    assert!(
        stdout.contains("\r\nSubject: !! spf-fail !! Invoice 2026-11\r\n"),
        "{stdout}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn the_result_page_shows_the_diagnosis_first_in_a_browser() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let result = send_and_fetch(
        &service,
        "filter.example.net",
        "alice@sender.test",
        "dkim@tester.test",
        &relayed_and_changed(),
    )
    .await;
    let id = result["id"].as_str().unwrap();
    let browser = Browser::launch().await;
    browser.goto(&service.url(&format!("/r/{id}"))).await;
    let first_card = browser
        .eval("return document.querySelector('main section.card').id;")
        .await;
    assert_eq!(first_card, "diagnosis");
    let findings = browser
        .eval("return document.querySelectorAll('#diagnosis .finding').length;")
        .await;
    assert!(findings.as_u64().unwrap() >= 2, "{findings}");
    browser.keep_screenshot("diagnosis").await;
    browser.quit().await;
}

#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn the_dmarc_tree_walk_is_listed_and_long_names_stay_inside_the_page() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    // Eleven labels, three of them 63 bytes long: the walk asks the name itself, jumps to
    // seven labels, then goes up one label at a time to sender.test's record.
    let long = "l".repeat(63);
    let from = format!("alice@{long}.{long}.{long}.b.c.d.e.f.g.sender.test");
    let result = send_and_fetch(
        &service,
        "filter.example.net",
        "alice@sender.test",
        "spf@tester.test",
        &message(&from, "Tree walk", "Hello.\r\n"),
    )
    .await;
    let queries = result["dmarc"]["queries"].as_array().expect("queries");
    assert!(queries.len() >= 3, "{queries:?}");
    let id = result["id"].as_str().unwrap();
    let browser = Browser::launch().await;
    browser.goto(&service.url(&format!("/r/{id}"))).await;
    let rows = browser
        .eval("return document.querySelectorAll('table.dmarc-walk tbody tr').length;")
        .await;
    assert_eq!(rows.as_u64(), Some(queries.len() as u64));
    let overflow = browser
        .eval("return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page is {overflow} px wider than the window"
    );
    if screenshot_dir().is_some() {
        browser
            .eval("document.querySelector('table.dmarc-walk').scrollIntoView(); return 0;")
            .await;
        browser.keep_screenshot("dmarc-walk").await;
    }
    browser.quit().await;
}

/// Sends `message` to dkim@ with `MAIL FROM:<carol@clean.test>` followed by `parameters`, and
/// returns the stored result's JSON from the API.
async fn send_with_parameters(
    service: &Service,
    parameters: &str,
    message: &[u8],
) -> serde_json::Value {
    let (mut smtp, greeting) = RawSmtp::connect(service.smtp).await;
    assert_eq!(greeting.code, 220, "{greeting:?}");
    assert_eq!(smtp.command("EHLO mail.clean.test").await.code, 250);
    let mail = smtp
        .command(&format!("MAIL FROM:<carol@clean.test>{parameters}"))
        .await;
    assert_eq!(mail.code, 250, "MAIL FROM with {parameters:?}: {mail:?}");
    assert_eq!(smtp.command("RCPT TO:<dkim@tester.test>").await.code, 250);
    assert_eq!(smtp.command("DATA").await.code, 354);
    smtp.write(&support::dot_stuffed(message)).await;
    let reply = smtp.read_reply().await;
    let _ = smtp.command("QUIT").await;
    assert_eq!(reply.code, 250, "final reply: {reply:?}");
    let stored = reply.stored();
    service
        .get_json(&format!("/api/v1/results/{}", stored[0].0))
        .await
}

/// Signed by clean.test (whose SPF permits the service's 127.0.0.1), with `body`.
fn clean_with_body(subject: &str, body: &str) -> Vec<u8> {
    sign(
        &message("carol@clean.test", subject, body),
        &SignOptions::new("clean.test", TestKey::Rsa2048),
    )
}

#[tokio::test]
async fn an_eight_bit_body_sent_without_8bitmime_is_reported_over_smtp() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let message = clean_with_body("Greetings", "Viele Grüße aus Köln.\r\n");

    for parameters in ["", " BODY=7BIT"] {
        let result = send_with_parameters(&service, parameters, &message).await;
        assert_eq!(result["verdict"], "|OK| dkim-pass", "verdict unchanged");
        let codes = codes(&result);
        assert_eq!(codes, ["eight-bit-undeclared"], "{parameters:?}");
        let finding = &result["diagnosis"][0];
        assert_eq!(finding["severity"], "warning");
        assert!(
            finding["fix"].as_str().unwrap().contains("BODY=8BITMIME"),
            "{finding}"
        );
        let page = service
            .get_text(&format!("/r/{}", result["id"].as_str().unwrap()))
            .await;
        assert!(
            page.contains("but the sender did not declare BODY=8BITMIME"),
            "{page}"
        );
    }

    let result = send_with_parameters(&service, " BODY=8BITMIME", &message).await;
    assert_eq!(result["verdict"], "|OK| dkim-pass");
    assert_eq!(result["diagnosis"], serde_json::json!([]));
    // 7-bit text needs no declaration.
    let ascii = clean_with_body("Greetings", "Best regards from Cologne.\r\n");
    let result = send_with_parameters(&service, "", &ascii).await;
    assert_eq!(result["diagnosis"], serde_json::json!([]));
}

#[tokio::test]
async fn a_line_over_998_bytes_in_data_is_reported_and_998_is_not() {
    let dns = zone().await;
    let service = Service::start(&dns).await;

    let long = clean_with_body(
        "Report",
        &format!("Short.\r\n{}\r\nShort.\r\n", "x".repeat(1200)),
    );
    let result = send_with_parameters(&service, "", &long).await;
    assert_eq!(result["verdict"], "|OK| dkim-pass", "verdict unchanged");
    assert_eq!(codes(&result), ["long-lines"]);
    let evidence = result["diagnosis"][0]["evidence"][0].as_str().unwrap();
    assert!(evidence.contains("1200 bytes"), "{evidence}");

    let longest_allowed = clean_with_body(
        "Report",
        &format!("Short.\r\n{}\r\nShort.\r\n", "x".repeat(998)),
    );
    let result = send_with_parameters(&service, "", &longest_allowed).await;
    assert_eq!(result["verdict"], "|OK| dkim-pass");
    assert_eq!(result["diagnosis"], serde_json::json!([]));
}

#[tokio::test]
async fn check_takes_the_body_parameter_and_keeps_its_old_command_line() {
    let dns = zone().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("eight-bit.eml");
    std::fs::write(
        &file,
        clean_with_body("Greetings", "Viele Grüße aus Köln.\r\n"),
    )
    .unwrap();
    let server = dns.addr().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "check",
            file.to_str().unwrap(),
            "--ip",
            "127.0.0.1",
            "--mail-from",
            "carol@clean.test",
            "--dns-server",
            &server,
            "--hostname",
            "tester.test",
            "--json",
        ];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let dir = dir.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (status, stdout, stderr) = run_cli(&args, None, &dir).await;
            assert!(status.success(), "{stderr}");
            let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            codes(&report)
        }
    };

    // Without --body, as before: not known, so nothing is said about 8-bit bytes.
    assert!(run(&[]).await.is_empty());
    assert_eq!(run(&["--body", "7bit"]).await, ["eight-bit-undeclared"]);
    assert_eq!(run(&["--body", "none"]).await, ["eight-bit-undeclared"]);
    assert!(run(&["--body", "8bitmime"]).await.is_empty());

    let args = ["check", file.to_str().unwrap(), "--body", "binarymime"];
    let (status, _, stderr) = run_cli(&args, None, dir.path()).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("8bitmime"), "{stderr}");
}
