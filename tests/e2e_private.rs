//! The full check at `check@` and private test addresses (`test-<token>@`), end to end: the
//! real binary with a loopback DNS server, messages over real SMTP, results read back through
//! the JSON API and the pages.

mod support;

use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_testkit::{SignOptions, TestKey, message, publish_keys, sign};
use serde_json::Value;
use support::{RawSmtp, Service, ServiceOptions, eventually, http, send};

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

/// Ten recipients (the three mailboxes and seven private tests) make ten results, too many
/// links for one reply line of at most 512 octets: the reply gives each its own line, and
/// every result can be read at its id.
#[tokio::test]
async fn ten_results_are_all_named_in_a_reply_whose_lines_smtp_allows() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let mut recipients = vec![
        "spf@tester.test".to_owned(),
        "dkim@tester.test".to_owned(),
        "check@tester.test".to_owned(),
    ];
    for _ in 0..7 {
        let test = new_test(&service).await;
        recipients.push(test["address"].as_str().unwrap().to_owned());
    }
    let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
    // The raw client refuses any reply line over 512 octets.
    let reply = send(
        &service,
        "pass.test",
        "a@pass.test",
        &recipients,
        &signed("a@pass.test", "pass.test", "Ten"),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(reply.lines.len(), 10, "a line per result: {reply:#?}");
    let stored = reply.stored();
    assert_eq!(stored.len(), 10, "{reply:#?}");
    for (id, url) in &stored {
        assert_eq!(url, &format!("{}/r/{id}", service.public_url));
        let result = service.get_json(&format!("/api/v1/results/{id}")).await;
        assert_eq!(result["id"], id.as_str(), "{result:#}");
    }
}

/// Makes a private test through the API; returns its JSON answer.
async fn new_test(service: &Service) -> Value {
    let response = http()
        .post(service.url("/api/v1/tests"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// The token of `test-<token>@tester.test`.
fn token_of(address: &str) -> &str {
    address
        .strip_prefix("test-")
        .and_then(|rest| rest.strip_suffix("@tester.test"))
        .unwrap_or_else(|| panic!("not a private test address: {address}"))
}

/// RCPT TO `address` in a fresh transaction; returns the reply.
async fn rcpt(service: &Service, address: &str) -> support::Reply {
    let (mut smtp, _) = RawSmtp::connect(service.smtp).await;
    assert_eq!(smtp.command("EHLO pass.test").await.code, 250);
    assert_eq!(smtp.command("MAIL FROM:<a@pass.test>").await.code, 250);
    let reply = smtp.command(&format!("RCPT TO:<{address}>")).await;
    let _ = smtp.command("QUIT").await;
    reply
}

#[tokio::test]
async fn a_private_address_result_is_only_on_its_page_and_at_its_id() {
    let dns = zone().await;
    let service = Service::start(&dns).await;

    let test = new_test(&service).await;
    let address = test["address"].as_str().unwrap().to_owned();
    let token = token_of(&address).to_owned();
    assert_eq!(token.len(), 20, "100 random bits in base32");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    );
    let url = test["url"].as_str().unwrap();
    assert_eq!(url, format!("{}/t/{token}", service.public_url));
    let expires_at = chrono::DateTime::parse_from_rfc3339(test["expires_at"].as_str().unwrap())
        .expect("expires_at is RFC 3339");
    let in_a_week = chrono::Utc::now() + chrono::Duration::days(7);
    assert!(
        (expires_at.to_utc() - in_a_week).num_seconds().abs() < 60,
        "{expires_at}"
    );
    let page_path = format!("/t/{token}");
    let waiting = service.get_text(&page_path).await;
    assert!(
        waiting.contains(&address) && waiting.contains("Waiting for your message"),
        "{waiting}"
    );

    // Senders may change the case of the local part.
    let shouted = format!("TEST-{}@tester.test", token.to_uppercase());
    let reply = send(
        &service,
        "pass.test",
        "a@pass.test",
        &[&shouted],
        &signed("a@pass.test", "pass.test", "Secret"),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let (id, _) = reply.stored().remove(0);
    let result = service.get_json(&format!("/api/v1/results/{id}")).await;
    assert_eq!(result["mailbox"], "check");
    assert_eq!(result["verdict"], "|OK| spf-pass |OK| dkim-pass");
    assert!(!result.to_string().contains("private_test"), "{result:#}");
    let detail = service.get_text(&format!("/r/{id}")).await;
    assert!(detail.contains("private test"), "{detail}");
    // Without JavaScript the waiting page reloads itself, and stops once it has a result.
    let refresh = r#"<noscript><meta http-equiv="refresh" content="10"></noscript>"#;
    assert!(waiting.contains(refresh), "{waiting}");
    assert!(waiting.contains(&format!(r#"<a href="{page_path}">Reload this page</a>"#)));
    let page = service.get_text(&page_path).await;
    assert!(!page.contains(refresh), "{page}");
    assert!(
        page.contains(&format!("/r/{id}")) && page.contains("Secret"),
        "{page}"
    );

    // A public message beside it, to show the lists work.
    let public = send(
        &service,
        "pass.test",
        "a@pass.test",
        &["check@tester.test"],
        &signed("a@pass.test", "pass.test", "Public"),
    )
    .await;
    let (public_id, _) = public.stored().remove(0);
    for path in [
        "/",
        "/spf",
        "/dkim",
        "/check",
        "/check?sender=pass.test",
        "/api/v1/results",
        "/api/v1/results?mailbox=check",
        "/api/v1/results?sender=a@pass.test",
        "/logs",
        "/api/v1/sessions",
        "/logs/raw",
        "/stats",
        "/api/v1/stats",
    ] {
        let text = eventually(Duration::from_secs(5), || async {
            let text = service.get_text(path).await;
            // The session log is written after the session ends.
            let is_log = path.contains("log") || path.contains("sessions");
            let ready = !is_log || text.contains(&public_id);
            ready.then_some(text)
        })
        .await
        .unwrap_or_else(|| service_text_missing(path));
        assert!(
            !text.contains(&id),
            "{path} shows the private result: {text}"
        );
        assert!(!text.contains(&token), "{path} shows the token: {text}");
        assert!(!text.contains("Secret"), "{path} shows the private subject");
        if path == "/api/v1/sessions" {
            assert!(text.contains("TEST-(private)@tester.test"), "{text}");
        }
        if path.starts_with("/check") || path.starts_with("/api/v1/results") || path == "/" {
            assert!(
                text.contains(&public_id),
                "{path} lists public results: {text}"
            );
        }
    }

    // An address nobody made, and a malformed one, are refused at RCPT.
    let unknown = rcpt(&service, "test-aaaaaaaaaaaaaaaaaaaa@tester.test").await;
    assert_eq!(unknown.code, 550, "{unknown:?}");
    assert!(unknown.text().starts_with("5.1.1"), "{unknown:?}");
    assert!(
        unknown.text().contains("no such private test address"),
        "{unknown:?}"
    );
    let malformed = rcpt(&service, "test-abc@tester.test").await;
    assert_eq!(malformed.code, 550, "{malformed:?}");
    assert!(malformed.text().starts_with("5.1.1"), "{malformed:?}");
    let missing = service.get("/t/aaaaaaaaaaaaaaaaaaaa").await;
    assert_eq!(missing.status(), 404);
}

/// Whether `text` shows any 8 characters of the random part of the result id `id` (after its
/// 11 characters of time), as a truncated id or address would.
fn shows_part_of(text: &str, id: &str) -> bool {
    id.as_bytes()[11..]
        .windows(8)
        .any(|part| text.contains(std::str::from_utf8(part).unwrap()))
}

/// A long session: the private message falls between the 40 events the log keeps at the start
/// and the 10 at the end, so its text cannot tell the log the session was private.
#[tokio::test]
async fn a_long_session_that_wrote_to_a_private_test_shows_no_result_id_in_the_log() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let test = new_test(&service).await;
    let private_address = test["address"].as_str().unwrap().to_owned();

    let sender = "long-session@pass.test";
    let (mut smtp, _) = RawSmtp::connect(service.smtp).await;
    let mut ids = Vec::new();
    let mut send = async |to: &str, subject: &str| {
        let reply = smtp
            .send(
                "pass.test",
                sender,
                &[to],
                &signed(sender, "pass.test", subject),
            )
            .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        ids.push(reply.stored().remove(0).0);
    };
    for n in 0..10 {
        send("spf@tester.test", &format!("Before {n}")).await;
    }
    send(&private_address, "Secret").await;
    for n in 0..3 {
        send("spf@tester.test", &format!("After {n}")).await;
    }
    assert_eq!(smtp.command("QUIT").await.code, 221);
    let private_id = ids[10].clone();

    let session = eventually(Duration::from_secs(10), || async {
        let list = service
            .get_json(&format!("/api/v1/sessions?sender={sender}"))
            .await;
        list["sessions"].as_array()?.first().cloned()
    })
    .await
    .expect("the session is listed");
    assert_eq!(session["results"], serde_json::json!([]), "{session:#}");
    for path in [
        "/api/v1/sessions".to_owned(),
        format!("/api/v1/sessions?sender={sender}"),
        "/logs".to_owned(),
        format!("/logs?sender={sender}"),
        "/logs/raw".to_owned(),
    ] {
        let text = service.get_text(&path).await;
        assert!(text.contains(sender), "{path} lists the session: {text}");
        for id in &ids {
            assert!(
                !shows_part_of(&text, id),
                "{path} shows (part of) result {id} of a session that wrote to a private test: {text}"
            );
        }
        assert!(!shows_part_of(&text, &private_id));
    }
}

fn service_text_missing(path: &str) -> String {
    panic!("{path} never showed the public message")
}

#[tokio::test]
async fn the_form_makes_a_test_and_sends_the_browser_to_its_page() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let form = service.get_text("/new").await;
    assert!(
        form.contains(r#"<form class="new-test" method="post" action="/new">"#),
        "{form}"
    );
    assert!(form.contains("Who can read what"), "{form}");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let made = no_redirects.post(service.url("/new")).send().await.unwrap();
    assert_eq!(made.status(), 303);
    let location = made.headers()["location"].to_str().unwrap().to_owned();
    let token = location.strip_prefix("/t/").expect("the test's page");
    let page = service.get_text(&location).await;
    assert!(
        page.contains(&format!("test-{token}@tester.test")),
        "{page}"
    );
}

#[tokio::test]
async fn an_expired_address_is_refused_at_rcpt() {
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec!["--private-test-lifetime".into(), "3s".into()];
    let service = Service::start_with(options).await;
    let test = new_test(&service).await;
    let address = test["address"].as_str().unwrap().to_owned();
    let open = rcpt(&service, &address).await;
    assert_eq!(open.code, 250, "{open:?}");
    let refused = eventually(Duration::from_secs(8), || async {
        let reply = rcpt(&service, &address).await;
        (reply.code != 250).then_some(reply)
    })
    .await
    .expect("the address expires");
    assert_eq!(refused.code, 550, "{refused:?}");
    assert!(refused.text().starts_with("5.1.1"), "{refused:?}");
    assert!(refused.text().contains("expired"), "{refused:?}");
    // Its page says so until the purge deletes it.
    let page = service.get(&format!("/t/{}", token_of(&address))).await;
    if page.status() == 200 {
        assert!(page.text().await.unwrap().contains("expired"));
    } else {
        assert_eq!(page.status(), 404);
    }
}

#[tokio::test]
async fn making_tests_is_bounded_per_client_and_in_all() {
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec![
        "--max-private-tests".into(),
        "2".into(),
        "--private-tests-per-client".into(),
        "3".into(),
    ];
    let service = Service::start_with(options).await;
    let post = || async {
        http()
            .post(service.url("/api/v1/tests"))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(post().await.status(), 201);
    assert_eq!(post().await.status(), 201);
    let full = post().await;
    assert_eq!(full.status(), 503);
    let full: Value = full.json().await.unwrap();
    assert!(
        full["error"]
            .as_str()
            .unwrap()
            .contains("Too many private test addresses are open")
    );
    let limited = post().await;
    assert_eq!(limited.status(), 429);
    let limited: Value = limited.json().await.unwrap();
    assert!(
        limited["error"]
            .as_str()
            .unwrap()
            .contains("in the last hour"),
        "{limited}"
    );
    let page = http().post(service.url("/new")).send().await.unwrap();
    assert_eq!(page.status(), 429);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Too many private test addresses")
    );
}

#[tokio::test]
async fn with_public_results_off_only_private_addresses_are_offered() {
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec!["--public-results".into(), "false".into()];
    let service = Service::start_with(options).await;
    let front = service.get_text("/").await;
    assert!(front.contains("Make a private test address"), "{front}");
    assert!(
        !front.contains("spf@tester.test") && !front.contains("check@tester.test"),
        "{front}"
    );
    for page in ["/", "/new", "/status", "/replies", "/dmarc"] {
        links_to_no_list(&service, page).await;
    }
    for path in ["/spf", "/dkim", "/check", "/logs", "/logs/raw", "/stats"] {
        let response = service.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Public results are turned off"),
            "{path}"
        );
    }
    for path in [
        "/api/v1/results",
        "/api/v1/sessions",
        "/events",
        "/api/v1/stats",
    ] {
        let response = service.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("public_results = false"),
            "{path}"
        );
    }
    let test = new_test(&service).await;
    let address = test["address"].as_str().unwrap();
    let reply = send(
        &service,
        "pass.test",
        "a@pass.test",
        &[address],
        &signed("a@pass.test", "pass.test", "Quiet"),
    )
    .await;
    let (id, _) = reply.stored().remove(0);
    let page = service.get_text(&format!("/t/{}", token_of(address))).await;
    assert!(page.contains(&format!("/r/{id}")), "{page}");
    assert_eq!(
        service.get(&format!("/api/v1/results/{id}")).await.status(),
        200
    );
    links_to_no_list(&service, &format!("/t/{}", token_of(address))).await;
    links_to_no_list(&service, &format!("/r/{id}")).await;
}

/// With the public lists off, `page` links to none of them and does not say results are
/// public.
async fn links_to_no_list(service: &Service, page: &str) {
    let html = service.get_text(page).await;
    for list in ["/spf", "/dkim", "/check", "/logs", "/stats"] {
        for link in [format!("href=\"{list}\""), format!("href=\"{list}?")] {
            assert!(!html.contains(&link), "{page} links to {list}");
        }
    }
    assert!(!html.contains("are public"), "{page}");
    assert!(html.contains("Results are not listed here"), "{page}");
}

#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn the_waiting_page_shows_the_result_without_a_reload() {
    use authcheck_testkit::browser::Browser;

    let dns = zone().await;
    let service = Service::start(&dns).await;
    let browser = Browser::launch().await;
    let _ = browser.client().set_window_size(1100, 900).await;
    browser.goto(&service.url("/new")).await;
    browser.keep_screenshot("private-new").await;
    // The button makes the test and opens its page, as a person would.
    browser
        .eval("document.querySelector('form.new-test button').click(); return 0;")
        .await;
    assert!(
        browser
            .wait_until(
                "location.pathname.startsWith('/t/') && document.getElementById('live') !== null",
                Duration::from_secs(10),
            )
            .await,
        "the button leads to the test's page"
    );
    let address = browser
        .eval("return document.querySelector('.private-address').textContent;")
        .await;
    let address = address.as_str().unwrap().to_owned();
    let marker = "return location.href;";
    let before = browser.eval(marker).await;
    assert!(
        browser
            .eval("return document.querySelector('p.waiting') !== null;")
            .await
            .as_bool()
            .unwrap()
    );
    browser.keep_screenshot("private-waiting").await;
    // Marks the document: a reload would lose it.
    browser.eval("window.__same_page = true; return 0;").await;

    let hostile = "Hi <img src=x onerror=window.__pwned=1> there";
    let reply = send(
        &service,
        "pass.test",
        "a@pass.test",
        &[&address],
        &signed("a@pass.test", "pass.test", hostile),
    )
    .await;
    let (id, _) = reply.stored().remove(0);
    let row = format!("document.querySelector('#live tr[data-id=\"{id}\"]') !== null");
    assert!(
        browser.wait_until(&row, Duration::from_secs(10)).await,
        "the result appears on the waiting page"
    );
    let state = browser
        .eval(
            "return {
               same: window.__same_page === true,
               waiting: document.querySelector('p.waiting') !== null,
               subject: document.querySelector('#live td.subject a').textContent,
               class: document.querySelector('#live td.subject a').className,
               pwned: typeof window.__pwned,
               images: document.images.length,
             };",
        )
        .await;
    assert_eq!(state["same"], true, "no reload");
    assert_eq!(state["waiting"], false, "the waiting note is gone");
    assert_eq!(
        state["subject"],
        format!("|OK| spf-pass |OK| dkim-pass {hostile}")
    );
    assert_eq!(state["class"], "verdict ok");
    assert_eq!(state["pwned"], "undefined");
    assert_eq!(state["images"], 0);
    assert_eq!(browser.eval(marker).await, before);
    browser.keep_screenshot("private-result").await;
    browser.quit().await;
}
