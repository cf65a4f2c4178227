//! The self-check and `/status` end to end: the real binary sends itself a real, DKIM-signed
//! message over SMTP on loopback every second, and `/status`, `/api/v1/status` and `/metrics`
//! show it; a target with nothing listening and one that answers 451 show their failure and
//! the state the written rule gives. Every wait is bounded.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_testkit::browser::{Browser, keep_screenshot, screenshot_dir};
use support::{Service, ServiceOptions, eventually};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(40);

async fn start(dns: &TestDns, args: &[&str]) -> Service {
    let mut options = ServiceOptions::new(dns);
    options.extra_args = args.iter().map(|arg| arg.to_string()).collect();
    Service::start_with(options).await
}

/// The service, checking `target` every three seconds.
async fn start_checking(dns: &TestDns, target: SocketAddr) -> Service {
    let target = target.to_string();
    start(
        dns,
        &[
            "--self-check-interval",
            "3s",
            "--self-check-target",
            &target,
        ],
    )
    .await
}

/// The newest self-check once one is recorded, after checking what a failed check shows
/// everywhere: the state is `degraded` until three have failed in a row, and `/status` lists
/// the check's line.
async fn first_failed_check(service: &Service) -> serde_json::Value {
    // State and checks come from one response, so they agree whatever the timing.
    let status = status_when(service, |checks| !checks.is_empty()).await;
    let checks = checks_of(&status);
    assert_eq!(checks[0]["ok"], false, "{status:#}");
    if checks.len() < 3 {
        assert_eq!(status["state"], "degraded", "{status:#}");
    }
    let line = checks[0]["line"].as_str().unwrap();
    let page = status_page(service).await;
    assert!(page.contains(line), "/status lists {line}:\n{page}");
    checks[0].clone()
}

/// `/api/v1/status` once its checks satisfy `ready`.
async fn status_when(
    service: &Service,
    ready: impl Fn(&[serde_json::Value]) -> bool,
) -> serde_json::Value {
    eventually(WAIT, || async {
        let status = status_json(service).await;
        let checks = status["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|instance| instance["checks"].as_array().cloned().unwrap_or_default())
            .collect::<Vec<_>>();
        ready(&checks).then_some(status)
    })
    .await
    .expect("the self-check was recorded in time")
}

/// `/api/v1/status`, which answers 503 when unhealthy.
async fn status_json(service: &Service) -> serde_json::Value {
    service
        .get("/api/v1/status")
        .await
        .json()
        .await
        .expect("JSON body")
}

/// `/status`, which answers 503 when unhealthy.
async fn status_page(service: &Service) -> String {
    service.get("/status").await.text().await.expect("page")
}

fn checks_of(status: &serde_json::Value) -> Vec<serde_json::Value> {
    status["instances"][0]["checks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_self_check_through_the_own_listener_is_stored_and_status_is_healthy() {
    let dns = TestDns::start().await;
    dns.add_txt("tester.test", "v=spf1 ip4:127.0.0.1 -all");
    let service = start(&dns, &["--self-check-interval", "1s"]).await;

    let status = status_when(&service, |checks| checks.iter().any(|c| c["ok"] == true)).await;
    assert_eq!(status["state"], "healthy", "{status:#}");
    assert_eq!(status["instances"][0]["host"], "authcheck.test");
    let check = checks_of(&status)
        .into_iter()
        .find(|check| check["ok"] == true)
        .unwrap();
    let target = service.smtp.to_string();
    assert_eq!(check["target"], target.as_str());
    assert_eq!(
        check["tls"], "TLSv1.3",
        "STARTTLS is used with the own listener"
    );
    assert_eq!(check["verdicts"], "|OK| spf-pass", "{check:#}");
    let line = check["line"].as_str().unwrap();
    assert!(
        line.contains(&format!("  SELF CHECK  {target}  ")) && line.ends_with("  - OK"),
        "{line}"
    );
    // The result the 250 named is a real stored result, signed with the tester's key.
    let id = check["result_id"].as_str().unwrap();
    let result = service.get_json(&format!("/api/v1/results/{id}")).await;
    assert_eq!(
        result["session"]["mail_from"], "check@tester.test",
        "{result:#}"
    );
    let raw = service.get_text(&format!("/r/{id}/raw")).await;
    assert!(
        raw.contains("d=tester.test") && raw.contains("s=authcheck"),
        "{raw}"
    );

    let page = service.get_text("/status").await;
    assert!(page.contains(r#"id="state">healthy<"#), "{page}");
    assert!(
        page.contains(line),
        "the page shows the line {line}:\n{page}"
    );
    // After the line, the verdicts the check got, coloured by grade, and its result.
    assert!(
        page.contains(&format!(
            r#"{line}</span>  <a class="verdict ok check-verdicts" href="/r/{id}">|OK| spf-pass</a>"#
        )),
        "the page shows the check's verdicts and result:\n{page}"
    );
    assert!(page.contains("Rule: unhealthy when the last 3 self-checks"));
    assert!(page.contains("commits results"), "writer state:\n{page}");
    assert!(
        page.contains(r#"<figure class="chart" id="latency-chart"><svg"#),
        "the latency chart:\n{page}"
    );
    let record = status["dkim_record"]["value"].as_str().unwrap();
    assert!(record.starts_with("v=DKIM1; k=rsa; p="), "{record}");
    assert!(
        page.contains(&format!(
            "authcheck._domainkey.tester.test TXT &quot;{record}&quot;"
        )) || page.contains(&format!(
            "authcheck._domainkey.tester.test TXT &#34;{record}&#34;"
        )),
        "the page shows the DNS record:\n{page}"
    );
    assert!(
        service.data_dir.join("dkim.key").exists(),
        "the key is made next to the SQLite database"
    );

    let metrics = service.get_operator("/metrics").await.text().await.unwrap();
    for name in [
        "authcheck_self_check_last_success_timestamp_seconds",
        "authcheck_self_check_duration_seconds",
        "authcheck_self_check_failures_total",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}:\n{metrics}");
    }
}

#[tokio::test]
async fn a_target_with_nothing_listening_shows_the_connect_failure_and_degraded() {
    let dns = TestDns::start().await;
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let service = start_checking(&dns, closed).await;

    let check = first_failed_check(&service).await;
    assert_eq!(check["failed_step"], "connect", "{check:#}");
    let line = check["line"].as_str().unwrap();
    assert!(
        line.contains(&format!("  SELF CHECK  {closed}  "))
            && line.contains("- FAILED at connect: "),
        "{line}"
    );

    // Three failures in a row: unhealthy, and the page answers 503.
    let status = status_when(&service, |checks| checks.len() >= 3).await;
    assert_eq!(status["state"], "unhealthy", "{status:#}");
    let response = service.get("/status").await;
    assert_eq!(response.status(), 503);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains(r#"id="state">unhealthy<"#)
    );
    let metrics = service.get_operator("/metrics").await.text().await.unwrap();
    let failures = metrics
        .lines()
        .find(|line| line.starts_with("authcheck_self_check_failures_total"))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(failures >= 3.0, "{metrics}");
}

/// A minimal SMTP server that takes MAIL FROM and answers every RCPT TO with `refusal`.
async fn busy_server(refusal: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 busy.test ESMTP\r\n").await;
                // Bounded: a session of a few commands.
                for _ in 0..20 {
                    let Ok(Ok(Some(line))) =
                        tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await
                    else {
                        return;
                    };
                    let command = line.to_ascii_uppercase();
                    let reply: &[u8] = if command.starts_with("EHLO") {
                        b"250-busy.test\r\n250 8BITMIME\r\n"
                    } else if command.starts_with("MAIL") {
                        b"250 2.1.0 OK\r\n"
                    } else if command.starts_with("RCPT") {
                        refusal
                    } else if command.starts_with("QUIT") {
                        let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
                        return;
                    } else {
                        b"250 2.0.0 OK\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_target_answering_451_shows_the_reply_and_degraded() {
    let dns = TestDns::start().await;
    let busy = busy_server(b"451 4.3.0 mailbox busy, try again later\r\n").await;
    let service = start_checking(&dns, busy).await;

    let check = first_failed_check(&service).await;
    assert_eq!(check["failed_step"], "RCPT TO", "{check:#}");
    assert_eq!(
        check["failure"], "451 4.3.0 mailbox busy, try again later",
        "{check:#}"
    );
    let line = check["line"].as_str().unwrap();
    assert!(
        line.ends_with("- FAILED at RCPT TO: 451 4.3.0 mailbox busy, try again later"),
        "{line}"
    );
    // A check that got no result has no verdicts to show.
    let page = status_page(&service).await;
    assert!(page.contains(line), "{page}");
    assert!(!page.contains("check-verdicts"), "{page}");
}

#[tokio::test]
async fn the_self_check_can_be_turned_off() {
    let dns = TestDns::start().await;
    let service = start(&dns, &["--self-check-interval", "off"]).await;
    let status = service.get_json("/api/v1/status").await;
    assert_eq!(
        status["self_check"]["interval_seconds"],
        serde_json::Value::Null
    );
    assert_eq!(status["state"], "healthy", "{status:#}");
    let page = service.get_text("/status").await;
    assert!(page.contains("off (self_check_interval)"), "{page}");
    assert!(
        page.contains("No self-check in the last 24 hours."),
        "{page}"
    );
}

/// In Chromium, each self-check that got its result shows the verdicts it got, coloured as a
/// passing verdict and linked to the result.
#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn the_status_page_in_chromium_shows_the_verdicts_of_each_check() {
    let dns = TestDns::start().await;
    dns.add_txt("tester.test", "v=spf1 ip4:127.0.0.1 -all");
    let service = start(&dns, &["--self-check-interval", "1s"]).await;
    status_when(&service, |checks| checks.iter().any(|c| c["ok"] == true)).await;

    let browser = Browser::launch().await;
    browser.goto(&service.url("/status")).await;
    assert!(
        browser
            .wait_until("document.querySelector('.check-verdicts') !== null", WAIT)
            .await,
        "the page shows a check's verdicts"
    );
    let shown = browser
        .eval(
            "const verdicts = document.querySelector('.check-verdicts');
             const line = document.querySelector('pre.status-lines .line-ok');
             return {
                verdicts: verdicts.textContent,
                verdicts_colour: getComputedStyle(verdicts).color,
                line_colour: getComputedStyle(line).color,
                link: verdicts.getAttribute('href'),
                overflow: document.documentElement.scrollWidth > window.innerWidth + 1,
             };",
        )
        .await;
    assert_eq!(shown["verdicts"], "|OK| spf-pass", "{shown:#}");
    assert_ne!(
        shown["verdicts_colour"], shown["line_colour"],
        "the verdicts are coloured by grade: {shown:#}"
    );
    assert_eq!(shown["overflow"], false, "{shown:#}");
    let png = browser.screenshot_of("main").await;
    assert!(png.starts_with(b"\x89PNG"));
    if screenshot_dir().is_some() {
        keep_screenshot("status-verdicts", &png);
        let lines = browser.screenshot_of("pre.status-lines").await;
        keep_screenshot("status-verdict-lines", &lines);
    }
    let link = shown["link"].as_str().unwrap().to_owned();
    browser.goto(&service.url(&link)).await;
    assert!(
        browser
            .wait_until(
                "document.body.textContent.includes('check@tester.test')",
                WAIT
            )
            .await,
        "the link opens the check's result ({link})"
    );
    browser.quit().await;
}

/// A refusal whose text is markup, as a hostile target could send.
const HOSTILE_REFUSAL: &[u8] =
    b"451 4.3.0 <img src=x onerror=\"window.__pwned=1\"><b id=injected>busy</b> AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n";

#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn the_status_page_in_chromium_shows_a_hostile_refusal_as_text() {
    let dns = TestDns::start().await;
    let busy = busy_server(HOSTILE_REFUSAL).await;
    let service = start(
        &dns,
        &[
            "--self-check-interval",
            "3s",
            "--self-check-target",
            &busy.to_string(),
        ],
    )
    .await;
    status_when(&service, |checks| !checks.is_empty()).await;

    let browser = Browser::launch().await;
    browser.goto(&service.url("/status")).await;
    assert!(
        browser
            .wait_until("document.getElementById('state') !== null", WAIT)
            .await,
        "the page loads"
    );
    let state = browser
        .eval(
            "return {
                state: document.getElementById('state').textContent,
                lines: document.querySelector('pre.status-lines').textContent,
                chart: document.querySelector('#latency-chart svg') !== null,
            };",
        )
        .await;
    assert!(
        ["degraded", "unhealthy"].contains(&state["state"].as_str().unwrap()),
        "{state:#}"
    );
    assert_eq!(
        state["chart"], true,
        "the latency chart is drawn: {state:#}"
    );
    // Long lines scroll inside their box.
    browser
        .assert_hostile_text_inert("#injected", "/status with a hostile reply")
        .await;
    assert!(
        state["lines"]
            .as_str()
            .unwrap()
            .contains("FAILED at RCPT TO: 451 4.3.0 <img src=x"),
        "{state:#}"
    );
    let png = browser.screenshot_of("main").await;
    assert!(png.starts_with(b"\x89PNG"));
    if screenshot_dir().is_some() {
        keep_screenshot("status-hostile", &png);
        let chart = browser.screenshot_of("#latency-chart").await;
        keep_screenshot("status-chart", &chart);
        let lines = browser.screenshot_of("pre.status-lines").await;
        keep_screenshot("status-lines", &lines);
    }
    browser.quit().await;
}

#[tokio::test]
#[cfg_attr(
    not(postgres_tests),
    ignore = "needs PostgreSQL: AUTHCHECK_TEST_POSTGRES_URL was not set when the tests were built (scripts/test sets it)"
)]
async fn two_instances_on_one_postgresql_check_a_target_once_per_interval() {
    let dns = TestDns::start().await;
    let database = support::fresh_postgres_database(&support::postgres_url());
    let options = |extra: Vec<String>| {
        let mut options = ServiceOptions::new(&dns);
        options.database_url = Some(database.clone());
        options.extra_args = extra;
        options
    };
    let first =
        Service::start_with(options(vec!["--self-check-interval".into(), "1s".into()])).await;
    let target = first.smtp.to_string();
    let second = Service::start_with(options(vec![
        "--self-check-interval".into(),
        "1s".into(),
        "--self-check-target".into(),
        target.clone(),
    ]))
    .await;

    // Both instances tick every second against the same target: each second's slot is
    // claimed once, so no two checks share a start second.
    let status = status_when(&first, |checks| checks.len() >= 5).await;
    let checks: Vec<_> = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|instance| instance["checks"].as_array().unwrap().clone())
        .collect();
    let mut seconds: Vec<i64> = checks
        .iter()
        .map(|check| check["started_at"].as_i64().unwrap())
        .collect();
    let count = seconds.len();
    seconds.sort_unstable();
    seconds.dedup();
    assert_eq!(seconds.len(), count, "a slot was checked twice: {status:#}");
    assert!(
        checks
            .iter()
            .all(|check| check["target"] == target.as_str() && check["ok"] == true),
        "{status:#}"
    );

    // Without a key file the key is kept in the database: both instances sign with it, so
    // the operator publishes one record.
    let record_of = |status: serde_json::Value| status["dkim_record"]["value"].clone();
    let first_record = record_of(status_json(&first).await);
    assert!(
        first_record
            .as_str()
            .is_some_and(|record| record.starts_with("v=DKIM1; k=rsa; p=")),
        "{first_record}"
    );
    assert_eq!(record_of(status_json(&second).await), first_record);
}
