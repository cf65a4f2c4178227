//! The SMTP session log end to end: real SMTP sessions against the running service (a relay
//! attempt, a client that times out, a delivered message, hostile names) read back from
//! `/logs`, `/logs/raw` and `/api/v1/sessions`, and `/logs` in headless Chromium taking a new
//! session live.

mod support;

use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_testkit::browser::{Browser, screenshot_dir};
use authcheck_testkit::message;
use serde_json::Value;
use support::{RawSmtp, Service, ServiceOptions, eventually, send};

/// Markup that would add an element or run if it were ever interpreted instead of shown.
const PAYLOAD: &str = "<img src=x onerror=\"window.__pwned=1\"><b id=injected>b</b>";

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    dns.add_txt("pass.test", "v=spf1 ip4:127.0.0.1 -all");
    dns
}

/// A service whose SMTP clients time out after one second of silence.
async fn service(dns: &TestDns) -> Service {
    let mut options = ServiceOptions::new(dns);
    options
        .extra_args
        .extend(["--command-timeout".to_owned(), "1s".to_owned()]);
    Service::start_with(options).await
}

/// A client that asks to relay: 550 5.7.1, then QUIT.
async fn relay_attempt(service: &Service, helo: &str) {
    let (mut smtp, greeting) = RawSmtp::connect(service.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(smtp.command(&format!("EHLO {helo}")).await.code, 250);
    assert_eq!(smtp.command("MAIL FROM:<relay@pass.test>").await.code, 250);
    let refused = smtp.command("RCPT TO:<victim@elsewhere.example>").await;
    assert_eq!(refused.code, 550, "{refused:?}");
    assert_eq!(smtp.command("QUIT").await.code, 221);
}

/// The sessions the API lists, once there are at least `count`.
async fn sessions(service: &Service, count: usize) -> Vec<Value> {
    eventually(Duration::from_secs(10), || async {
        let list = service.get_json("/api/v1/sessions").await;
        let sessions = list["sessions"].as_array().cloned().unwrap_or_default();
        (sessions.len() >= count).then_some(sessions)
    })
    .await
    .unwrap_or_else(|| panic!("{count} sessions were not listed in time"))
}

#[tokio::test]
async fn logs_show_a_relay_attempt_a_timeout_and_a_delivered_message() {
    let dns = zone().await;
    let service = service(&dns).await;

    relay_attempt(&service, "relay.test").await;

    let (mut silent, greeting) = RawSmtp::connect(service.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(silent.command("EHLO silent.test").await.code, 250);
    let timeout = silent.read_reply().await;
    assert_eq!(timeout.code, 421, "{timeout:?}");
    assert!(timeout.text().starts_with("4.4.2"), "{timeout:?}");

    let reply = send(
        &service,
        "sender.test",
        "a@pass.test",
        &["spf@tester.test"],
        &message("a@pass.test", "logged", "Hello.\r\n"),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let result_id = reply.stored()[0].0.clone();

    // The JSON API: newest first, with codes, ending and the result's link.
    let listed = sessions(&service, 3).await;
    let delivered = &listed[0];
    assert_eq!(delivered["helo"], "sender.test");
    assert_eq!(delivered["mail_from"], "a@pass.test");
    assert_eq!(delivered["ending"], "quit");
    assert_eq!(delivered["client_ip"], "127.0.0.1");
    assert_eq!(delivered["results"][0]["id"], result_id.as_str());
    assert!(
        delivered["results"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/r/{result_id}"))
    );
    let timed_out = &listed[1];
    assert_eq!(timed_out["ending"], "timeout");
    assert_eq!(timed_out["codes"], serde_json::json!([220, 250, 421]));
    let last = timed_out["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["command"], "(timeout)");
    assert_eq!(last["status"], "4.4.2");
    let relay = &listed[2];
    assert_eq!(relay["helo"], "relay.test");
    let refusal = relay["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["code"] == 550)
        .expect("the 550 is in the transcript");
    assert_eq!(refusal["command"], "RCPT TO:<victim@elsewhere.example>");
    assert_eq!(refusal["status"], "5.7.1");
    assert_eq!(refusal["text"], "relaying denied");

    // The page: every session with its codes and transcript, the result linked.
    let page = service.get_text("/logs").await;
    for expected in [
        "relay.test",
        "silent.test",
        "sender.test",
        "RCPT TO:&#60;victim@elsewhere.example&#62;",
        "relaying denied",
        "(timeout)",
        ">421<",
        ">550<",
        &format!("href=\"/r/{result_id}\""),
    ] {
        assert!(page.contains(expected), "/logs lacks {expected:?}");
    }
    let today = service.get_text("/logs?day=today").await;
    assert!(today.contains("silent.test") && today.contains("relay.test"));
    let week = service.get_text("/logs?days=7").await;
    assert!(week.contains("silent.test") && week.contains("relay.test"));

    // Filters: by reply code, by sender, by client.
    let refused = service.get_text("/logs?code=550").await;
    assert!(refused.contains("relay.test"));
    assert!(!refused.contains("silent.test") && !refused.contains("sender.test"));
    let timeouts = service.get_text("/logs?code=421").await;
    assert!(timeouts.contains("silent.test") && !timeouts.contains("relay.test"));
    let by_sender = service.get_text("/logs?sender=pass.test").await;
    assert!(by_sender.contains("relay.test") && by_sender.contains("sender.test"));
    assert!(!by_sender.contains("silent.test"));
    let elsewhere = service.get_text("/logs?client=192.0.2.1").await;
    assert!(!elsewhere.contains("relay.test") && elsewhere.contains("No sessions."));
    let api = service.get_json("/api/v1/sessions?code=421").await;
    assert_eq!(api["sessions"].as_array().unwrap().len(), 1);

    // The raw log: one event per line, in the documented format.
    let raw = service.get("/logs/raw").await;
    assert_eq!(raw.status(), 200);
    assert_eq!(
        raw.headers()["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    let raw = raw.text().await.unwrap();
    for line in raw.lines() {
        let (time, rest) = line.split_once(' ').expect("a time, then fields");
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{line}"
        );
        assert!(rest.starts_with("session="), "{line}");
        assert!(rest.contains(" client=127.0.0.1 event="), "{line}");
    }
    for expected in [
        "event=command command=\"RCPT TO:<victim@elsewhere.example>\" code=550 status=5.7.1 text=\"relaying denied\"",
        "event=reply on=\"timeout\" code=421 status=4.4.2",
        "event=end reason=timeout helo=\"silent.test\"",
        "event=end reason=quit helo=\"relay.test\" mail_from=\"relay@pass.test\"",
        &format!("results={result_id}"),
    ] {
        assert!(
            raw.contains(expected),
            "/logs/raw lacks {expected:?}:\n{raw}"
        );
    }
    let week = service.get_text("/logs/raw?days=7").await;
    assert_eq!(week, raw, "today's sessions are the week's");
    let long_ago = service.get("/logs/raw?date=2001-01-01").await;
    assert_eq!(long_ago.status(), 200);
    assert_eq!(long_ago.text().await.unwrap(), "");
}

#[tokio::test]
async fn hostile_names_stay_text_on_one_line_and_bad_parameters_get_a_400() {
    let dns = zone().await;
    let service = service(&dns).await;
    let helo = format!("x{PAYLOAD}\"quoted\"\\{}", "h".repeat(3000));
    let (mut smtp, _) = RawSmtp::connect(service.smtp).await;
    assert_eq!(smtp.command(&format!("EHLO {helo}")).await.code, 250);
    let mail = smtp
        .command(&format!("MAIL FROM:<\"{PAYLOAD}\"@pass.test>"))
        .await;
    assert_eq!(smtp.command("QUIT").await.code, 221, "after {mail:?}");
    sessions(&service, 1).await;

    let page = service.get_text("/logs").await;
    assert!(
        !page.contains("<b id=injected>"),
        "markup from the client is escaped"
    );
    assert!(page.contains("&#60;b id=injected&#62;"));
    assert!(
        page.len() < 100_000,
        "the page stays small: {} bytes",
        page.len()
    );

    let raw = service.get_text("/logs/raw").await;
    let ehlo = raw
        .lines()
        .find(|line| line.contains("event=command command=\"EHLO"))
        .expect("the EHLO line");
    assert!(ehlo.contains("\\\"quoted\\\"\\\\h"), "{ehlo}");
    assert!(ehlo.len() < 1000, "the line is cut: {} bytes", ehlo.len());

    for (path, parameter) in [
        ("/logs?code=abc", "code:"),
        ("/logs?code=55", "code:"),
        ("/logs?client=not-an-address", "client:"),
        ("/logs?day=yesterday", "day:"),
        ("/logs?days=30", "days:"),
        ("/logs?before=zz", "before:"),
        ("/logs?before=0123456789abcdef0123456789abcdef", "before:"),
        ("/logs?direction=sideways", "direction:"),
    ] {
        let response = service.get(path).await;
        assert_eq!(response.status(), 400, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains(parameter), "{path}: {body}");
    }
    let raw = service.get("/logs/raw?date=30-11-2026").await;
    assert_eq!(raw.status(), 400);
    assert!(raw.text().await.unwrap().starts_with("date:"));
    let api = service.get("/api/v1/sessions?limit=1000").await;
    assert_eq!(api.status(), 400);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["parameter"], "limit");
    let api = service.get("/api/v1/sessions?direction=up").await;
    assert_eq!(api.status(), 400);
    let body: Value = api.json().await.unwrap();
    assert_eq!(body["parameter"], "direction");
    for unknown in ["/logs/0123456789abcdef0123456789abcdef", "/logs/zz%3Cb%3E"] {
        let response = service.get(unknown).await;
        assert_eq!(response.status(), 404, "{unknown}");
        let body = response.text().await.unwrap();
        assert!(body.contains("Session not found"), "{unknown}: {body}");
    }
}

#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn a_new_session_appears_live_on_the_log_page() {
    let dns = zone().await;
    let service = service(&dns).await;
    // Many sessions before the page opens, one of them with a long hostile HELO.
    for n in 0..30 {
        relay_attempt(&service, &format!("relay{n}.test")).await;
    }
    // smtp-proto takes the HELO name up to the first space, so this one has none.
    relay_attempt(&service, &format!("x<b>{}", "long-helo-".repeat(24))).await;
    relay_attempt(&service, &format!("x{PAYLOAD}")).await;
    sessions(&service, 32).await;

    let browser = Browser::launch().await;
    browser.goto(&service.url("/logs")).await;
    let count = "return document.querySelectorAll('#sessions details.session').length;";
    assert_eq!(browser.eval(count).await, 32);

    relay_attempt(&service, "live.test").await;
    assert!(
        browser
            .wait_until(
                "document.querySelector('#sessions details.session summary .helo')?.textContent === 'live.test'",
                Duration::from_secs(10),
            )
            .await,
        "the new session appears at the top without a reload"
    );
    assert_eq!(browser.eval(count).await, 33);
    let state = browser
        .eval(
            "document.querySelector('#sessions details.session').open = true;
             return {
               transcript: document.querySelectorAll('#sessions details.session')[0]
                 .querySelectorAll('table.transcript tbody tr').length,
             };",
        )
        .await;
    browser
        .assert_hostile_text_inert("#injected, #sessions b", "/logs with a session opened")
        .await;
    assert_eq!(state["transcript"], 5, "connect, EHLO, MAIL, RCPT, QUIT");
    // A delivered message's reply holds a long unbroken URL; on a laptop-sized window it must
    // not squeeze the commands beside it to a few letters a line: a word of a command of up
    // to 24 characters stays on one line.
    let stored = send(
        &service,
        "mail.pass.test",
        "alice@pass.test",
        &["spf@tester.test", "dkim@tester.test"],
        &message("alice@pass.test", "Wrapping", "Hello.\r\n"),
    )
    .await;
    assert_eq!(stored.code, 250, "{stored:?}");
    assert!(
        browser
            .wait_until(
                "document.querySelector('#sessions details.session summary .helo')?.textContent === 'mail.pass.test'",
                Duration::from_secs(10),
            )
            .await,
        "the delivering session appears at the top"
    );
    let _ = browser.client().set_window_size(1000, 900).await;
    browser
        .eval("document.querySelector('#sessions details.session').open = true; return 0;")
        .await;
    let (commands, broken) = browser
        .words_broken_across_lines(
            "#sessions .session-list > details.session:first-child table.transcript td.command",
            24,
        )
        .await;
    assert_eq!(
        commands, 8,
        "connect, EHLO, MAIL, 2 RCPT, DATA, end of data, QUIT"
    );
    assert!(
        broken.is_empty(),
        "words of commands broken across lines: {broken:?}"
    );
    // On a phone each event is a card, its reply text in view rather than scrolled away.
    let _ = browser.client().set_window_size(420, 900).await;
    let scrolling = browser
        .scrolling_sideways("#sessions .session-list > details.session:first-child .table-wrap")
        .await;
    assert!(
        scrolling.is_empty(),
        "the transcript scrolls sideways: {scrolling:?}"
    );
    let phone = browser
        .eval(
            "const texts = document.querySelectorAll(
               '#sessions .session-list > details.session:first-child table.transcript tbody tr td:last-child');
             return { rightmost: Math.max(...Array.from(texts).map(t => t.getBoundingClientRect().right)),
                      width: document.documentElement.clientWidth };",
        )
        .await;
    assert!(
        phone["rightmost"].as_f64() <= phone["width"].as_f64(),
        "the replies' texts are in view: {phone}"
    );
    if screenshot_dir().is_some() {
        browser
            .eval(
                "document.querySelectorAll('#sessions details.session')[1].open = true; return 0;",
            )
            .await;
        let _ = browser.client().set_window_size(1280, 1800).await;
        browser.keep_screenshot("logs").await;
    }
    browser.quit().await;
}
