//! The statistics end to end: real SMTP sessions against the running service (messages that
//! pass and fail, to one mailbox and to both, a relay attempt, an unknown mailbox), then
//! `/stats` and `/api/v1/stats` count exactly those; and `/stats` in headless Chromium with
//! its charts drawn, empty, realistic and with hostile names.

mod support;

use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_testkit::browser::{Browser, keep_screenshot, screenshot_dir};
use authcheck_testkit::message;
use serde_json::{Value, json};
use support::{RawSmtp, Service, eventually, send};

/// Markup that would add an element or run if it were ever interpreted instead of shown.
const PAYLOAD: &str = "<img src=x onerror=\"window.__pwned=1\"><b id=injected>b</b>";

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    dns.add_txt("pass.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt("fail.test", "v=spf1 -all");
    dns
}

/// A client that asks to relay (550 5.7.1), then for an unknown tester mailbox (550 5.1.1).
async fn refused_session(service: &Service, helo: &str) {
    let (mut smtp, greeting) = RawSmtp::connect(service.smtp).await;
    assert_eq!(greeting.code, 220);
    assert_eq!(smtp.command(&format!("EHLO {helo}")).await.code, 250);
    assert_eq!(smtp.command("MAIL FROM:<relay@pass.test>").await.code, 250);
    let relay = smtp.command("RCPT TO:<victim@elsewhere.example>").await;
    assert_eq!(relay.code, 550, "{relay:?}");
    let unknown = smtp.command("RCPT TO:<nobody@tester.test>").await;
    assert_eq!(unknown.code, 550, "{unknown:?}");
    assert_eq!(smtp.command("QUIT").await.code, 221);
}

async fn deliver(service: &Service, from: &str, recipients: &[&str]) {
    let reply = send(
        service,
        "sender.test",
        from,
        recipients,
        &message(from, "counted", "Hello.\r\n"),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
}

/// `/api/v1/stats` with `query`, once its summary counts `sessions` sessions (the session log
/// is written after each session ends).
async fn stats_when(service: &Service, query: &str, sessions: i64) -> Value {
    eventually(Duration::from_secs(10), || async {
        let stats = service.get_json(&format!("/api/v1/stats{query}")).await;
        (stats["summary"]["sessions"].as_i64() == Some(sessions)).then_some(stats)
    })
    .await
    .unwrap_or_else(|| panic!("the statistics did not count {sessions} sessions in time"))
}

fn names(list: &Value) -> Vec<(String, i64)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let name = row["name"]
                .as_str()
                .or(row["client_ip"].as_str())
                .unwrap()
                .to_owned();
            (name, row["counts"]["messages"].as_i64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn stats_count_the_messages_sessions_and_refusals_of_the_test() {
    let dns = zone().await;
    let service = Service::start(&dns).await;

    // Nothing yet: zeros, not errors.
    let empty = service.get_json("/api/v1/stats?period=today").await;
    assert_eq!(empty["summary"]["messages"], 0);
    assert_eq!(empty["period"]["time_zone"], "UTC");

    deliver(&service, "a@pass.test", &["spf@tester.test"]).await;
    deliver(
        &service,
        "b@pass.test",
        &["spf@tester.test", "dkim@tester.test"],
    )
    .await;
    deliver(&service, "c@fail.test", &["spf@tester.test"]).await;
    refused_session(&service, "relay.test").await;

    let stats = stats_when(&service, "?period=today", 4).await;
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(stats["period"]["from"], today.as_str());
    assert_eq!(stats["period"]["to"], today.as_str());
    // Four results: spf@ three times (two pass, one fail), dkim@ once (unsigned: a problem).
    let summary = &stats["summary"];
    assert_eq!(summary["messages"], 4, "{stats:#}");
    assert_eq!(summary["ok"], 2, "{stats:#}");
    assert_eq!(summary["problem"], 2, "{stats:#}");
    assert_eq!(summary["sessions"], 4, "{stats:#}");
    assert_eq!(summary["refused_sessions"], 1, "{stats:#}");
    assert_eq!(summary["refusals"], 2, "{stats:#}");
    let verdicts: Vec<(String, i64)> = stats["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["verdict"].as_str().unwrap().to_owned(),
                v["messages"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        verdicts.contains(&("|OK| spf-pass".to_owned(), 2)),
        "{verdicts:?}"
    );
    assert!(
        verdicts.contains(&("!! spf-fail !!".to_owned(), 1)),
        "{verdicts:?}"
    );
    assert_eq!(stats["days"][0]["day"], today.as_str());
    assert_eq!(stats["days"][0]["messages"], 4);
    let hour = chrono::Utc::now()
        .format("%H")
        .to_string()
        .parse::<usize>()
        .unwrap();
    let hours: Vec<i64> = serde_json::from_value(stats["hours"].clone()).unwrap();
    assert_eq!(hours.iter().sum::<i64>(), 4);
    // The hour may have turned since the messages were sent.
    assert!(hours[hour] + hours[(hour + 23) % 24] == 4, "{hours:?}");
    assert_eq!(names(&stats["hosts"]), [("127.0.0.1".to_owned(), 4)]);
    assert_eq!(
        names(&stats["sender_domains"]),
        [("pass.test".to_owned(), 3), ("fail.test".to_owned(), 1)]
    );
    assert_eq!(
        names(&stats["sender_addresses"]),
        [
            ("b@pass.test".to_owned(), 2),
            ("a@pass.test".to_owned(), 1),
            ("c@fail.test".to_owned(), 1)
        ]
    );
    let replies = stats["replies"].as_array().unwrap();
    let relay = replies
        .iter()
        .find(|reply| reply["status"] == "5.7.1")
        .expect("the relay attempt's refusal is counted");
    assert_eq!(
        relay,
        &json!({"code": 550, "status": "5.7.1", "cause": "relay denied: a recipient not at this tester", "replies": 1, "sessions": 1})
    );
    let unknown = replies
        .iter()
        .find(|reply| reply["status"] == "5.1.1")
        .expect("the unknown mailbox is counted");
    assert_eq!(unknown["cause"], "unknown mailbox");
    assert_eq!(replies.len(), 2, "no other refusal: {replies:?}");

    // One mailbox; other periods.
    let dkim = service
        .get_json("/api/v1/stats?period=today&mailbox=dkim")
        .await;
    assert_eq!(dkim["summary"]["messages"], 1);
    assert_eq!(dkim["period"]["mailbox"], "dkim");
    let week = service.get_json("/api/v1/stats").await;
    assert_eq!(week["summary"]["messages"], 4);
    assert_eq!(week["days"].as_array().unwrap().len(), 7);
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let by_month = service
        .get_json(&format!("/api/v1/stats?month={month}"))
        .await;
    assert_eq!(by_month["summary"]["messages"], 4);
    let long_ago = service
        .get_json("/api/v1/stats?from=2001-01-01&to=2001-01-31")
        .await;
    assert_eq!(long_ago["summary"]["messages"], 0);
    assert_eq!(long_ago["replies"], json!([]));

    // The page: the same numbers, the charts, the causes.
    let page = service.get_text("/stats?period=today").await;
    for expected in [
        "id=\"summary-messages\">4<",
        "id=\"summary-sessions\">4<",
        "id=\"summary-refused\">1 ",
        "relay denied: a recipient not at this tester",
        "unknown mailbox",
        "b@pass.test",
        "127.0.0.1",
        "Hours of the day",
        "UTC",
    ] {
        assert!(page.contains(expected), "/stats lacks {expected:?}");
    }
    assert_eq!(page.matches("<svg").count(), 6, "six charts");
    assert!(
        page.contains("href=\"/stats\""),
        "the navigation links /stats"
    );

    // Bad parameters: a 400 naming the parameter, on the page and in the API.
    for (query, parameter) in [
        ("period=year", "period"),
        ("month=2026-13", "month"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("mailbox=abuse", "mailbox"),
    ] {
        let response = service.get(&format!("/api/v1/stats?{query}")).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["parameter"], parameter, "{query}");
        let page = service.get(&format!("/stats?{query}")).await;
        assert_eq!(page.status(), 400, "{query}");
    }
}

#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn the_stats_page_in_chromium_draws_its_charts_empty_realistic_and_hostile() {
    let dns = zone().await;
    let long = format!("{}.pass.test", "very-long-sender-domain-label".repeat(2));
    dns.add_txt(&long, "v=spf1 ip4:127.0.0.1 -all");
    let service = Service::start(&dns).await;
    let browser = Browser::launch().await;
    let look = |name: &'static str| {
        let browser = &browser;
        async move {
            // A laptop's window, where each chart stands beside its table.
            let _ = browser.client().set_window_size(1000, 900).await;
            let state = browser
                .eval(
                    "let smallest = Infinity;
                     for (const svg of document.querySelectorAll('figure.chart svg')) {
                       const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
                       for (const text of svg.querySelectorAll('text')) {
                         smallest = Math.min(smallest, parseFloat(text.getAttribute('font-size')) * scale);
                       }
                     }
                     return {
                        charts: document.querySelectorAll('figure.chart svg').length,
                        tables: document.querySelectorAll('.chart-and-table table').length,
                        smallest_label: smallest,
                    };",
                )
                .await;
            assert_eq!(state["charts"], 6, "{name}: {state:#}");
            assert!(
                state["smallest_label"].as_f64() >= Some(10.5),
                "{name}: the charts' labels are readable, not scaled down: {state:#}"
            );
            // A phone: each chart's table of numbers fits without scrolling sideways.
            let _ = browser.client().set_window_size(420, 900).await;
            let scrolling = browser
                .scrolling_sideways(".chart-and-table .numbers")
                .await;
            assert!(
                scrolling.is_empty(),
                "{name}: tables that scroll on a phone: {scrolling:?}"
            );
            assert_eq!(
                state["tables"], 6,
                "{name}: each chart has its table: {state:#}"
            );
            browser
                .assert_hostile_text_inert("#injected", &format!("/stats {name}"))
                .await;
            if screenshot_dir().is_some() {
                let _ = browser.client().set_window_size(1280, 6400).await;
                keep_screenshot(name, &browser.screenshot_of("main").await);
            }
        }
    };

    browser.goto(&service.url("/stats")).await;
    look("stats-empty").await;

    // Realistic: several senders, both mailboxes, passes and failures, refusals.
    for n in 0..6 {
        deliver(
            &service,
            &format!("user{n}@pass.test"),
            &["spf@tester.test"],
        )
        .await;
    }
    deliver(
        &service,
        "team@pass.test",
        &["spf@tester.test", "dkim@tester.test"],
    )
    .await;
    deliver(&service, "x@fail.test", &["spf@tester.test"]).await;
    deliver(&service, &format!("someone@{long}"), &["spf@tester.test"]).await;
    refused_session(&service, "relay.test").await;
    // Hostile: markup in the HELO and in the sender's local part.
    let (mut smtp, _) = RawSmtp::connect(service.smtp).await;
    let hostile_from = "\"<b id=injected>b</b>\"@pass.test";
    let reply = smtp
        .send(
            &format!("x{}", PAYLOAD.replace(' ', "")),
            hostile_from,
            &["spf@tester.test"],
            &message("h@pass.test", "hostile", "Hello.\r\n"),
        )
        .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let _ = smtp.command("QUIT").await;
    stats_when(&service, "?period=today", 11).await;

    browser.goto(&service.url("/stats?period=today")).await;
    look("stats-today").await;
    let hostile_shown = browser
        .eval(
            "return [...document.querySelectorAll('#sender-addresses td.name')]
               .some(cell => cell.textContent.includes('<b id=injected>'));",
        )
        .await;
    assert_eq!(hostile_shown, true, "the hostile sender is shown as text");
    browser.quit().await;
}
