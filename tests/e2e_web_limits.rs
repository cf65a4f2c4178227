//! The real `authcheck serve`'s web side against hostile senders and clients: ten messages
//! with a 5 MiB Subject leave every listing page, the API list and the live feed small; a
//! client that stalls in its request line is closed within the header timeout; `/metrics`
//! answers only on the operators' listener, with the probes beside it.

mod support;

use std::time::{Duration, Instant};

use authcheck_testdns::TestDns;
use support::{PATIENCE, Service, ServiceOptions, http, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A list page of 50 rows (and the front page, and the API list) stays under this, whatever
/// was received.
const MAX_PAGE_BYTES: usize = 1024 * 1024;

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    dns.add_txt("pass.test", "v=spf1 ip4:127.0.0.0/8 -all");
    dns.add_txt("helo.test", "v=spf1 ip4:127.0.0.0/8 -all");
    dns
}

/// A message whose Subject holds `subject_bytes` bytes, folded into lines of 78 as
/// RFC 5322 asks.
fn message_with_subject(subject_bytes: usize) -> Vec<u8> {
    let mut message = b"From: Mallory <mallory@pass.test>\r\nTo: spf@tester.test\r\n\
        Message-ID: <huge@pass.test>\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\nSubject:"
        .to_vec();
    let word = "Subject-filler-words-to-make-a-huge-header-field-that-never-ends-\u{1b}[31m";
    let mut written = 0;
    while written < subject_bytes {
        message.extend_from_slice(b" ");
        message.extend_from_slice(word.as_bytes());
        message.extend_from_slice(b"\r\n");
        written += word.len() + 1;
    }
    message.extend_from_slice(b" end\r\n\r\nA body.\r\n");
    message
}

#[tokio::test]
async fn ten_messages_with_a_5_mib_subject_leave_every_page_small() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let message = message_with_subject(5 << 20);
    let mut ids = Vec::new();
    for _ in 0..10 {
        let reply = send(
            &service,
            "helo.test",
            "mallory@pass.test",
            &["spf@tester.test"],
            &message,
        )
        .await;
        assert_eq!(reply.code, 250, "{reply:?}");
        ids.push(reply.stored()[0].0.clone());
    }

    let spf = service.get_text("/spf").await;
    let front = service.get_text("/").await;
    let api = service
        .get_text("/api/v1/results?mailbox=spf&limit=200")
        .await;
    let result = service.get_text(&format!("/r/{}", ids[0])).await;
    eprintln!(
        "/spf {} bytes, / {} bytes, API list {} bytes, result page {} bytes",
        spf.len(),
        front.len(),
        api.len(),
        result.len()
    );
    for (path, body) in [
        ("/spf", &spf),
        ("/", &front),
        ("/api/v1/results", &api),
        ("/r/ID", &result),
    ] {
        assert!(
            body.len() < MAX_PAGE_BYTES,
            "{path} is {} bytes",
            body.len()
        );
    }
    // Each shows the subject cut, with the length received.
    for (path, body) in [("/spf", &spf), ("/", &front), ("/r/ID", &result)] {
        assert!(
            body.contains("Subject-filler-words"),
            "{path} shows the subject's start"
        );
        assert!(
            body.contains(" bytes)"),
            "{path} notes the subject's length"
        );
    }
    let listed: serde_json::Value = serde_json::from_str(&api).expect("JSON");
    let results = listed["results"].as_array().expect("results");
    assert_eq!(results.len(), 10);
    let subject = results[0]["subject"].as_str().expect("a subject");
    assert!(
        subject.len() <= 256 && subject.contains("… (5,24") && subject.ends_with(" bytes)"),
        "{subject:?}"
    );
    assert!(
        !subject.contains('\u{1b}'),
        "control characters are not shown: {subject:?}"
    );
    // List items carry the report's summary, not the report.
    assert_eq!(results[0]["spf"]["result"], "pass");
    assert!(results[0]["spf"].get("trace").is_none());

    // The whole message is still there for whoever wants it.
    let raw = service
        .get(&format!("/r/{}/raw", ids[0]))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        raw.len() > 5 << 20,
        "the raw download is whole: {} bytes",
        raw.len()
    );

    // The live feed catching up from the oldest result sends the nine newer ones, small.
    let mut events = http()
        .get(service.url(&format!("/events?mailbox=spf&after={}", ids[0])))
        .send()
        .await
        .expect("the event stream");
    let mut received = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while received
        .windows(13)
        .filter(|w| w == b"event: result")
        .count()
        < 9
    {
        let chunk = tokio::time::timeout_at(deadline.into(), events.chunk())
            .await
            .expect("nine events in time")
            .expect("read the stream")
            .expect("the stream stays open");
        received.extend_from_slice(&chunk);
    }
    assert!(
        received.len() < MAX_PAGE_BYTES,
        "live feed sent {} bytes",
        received.len()
    );
}

#[tokio::test]
async fn a_client_stalling_in_its_request_line_is_closed_within_the_header_timeout() {
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec!["--http-header-timeout".into(), "1s".into()];
    let service = Service::start_with(options).await;
    for addr in [service.http, service.metrics.expect("operators' listener")] {
        let mut client = TcpStream::connect(addr).await.expect("connect");
        client
            .write_all(b"GET / HT")
            .await
            .expect("a partial request line");
        let started = Instant::now();
        let mut buffer = [0u8; 1024];
        let outcome = tokio::time::timeout(PATIENCE, async {
            loop {
                match client.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // an error response before the close
                }
            }
        })
        .await;
        let waited = started.elapsed();
        assert!(outcome.is_ok(), "{addr}: the stalled connection stays open");
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
            "{addr}: closed after {waited:?}, expected about 1 s"
        );
    }
    // The site still answers.
    assert!(service.get("/livez").await.status().is_success());
}

#[tokio::test]
async fn metrics_are_served_only_on_the_operators_listener_and_the_probes_on_both() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    assert_eq!(
        service.get("/metrics").await.status(),
        404,
        "not on the public site"
    );
    let metrics = service.get_operator("/metrics").await;
    assert_eq!(metrics.status(), 200);
    for header in ["content-security-policy", "x-content-type-options"] {
        assert!(
            metrics.headers().contains_key(header),
            "/metrics lacks {header}"
        );
    }
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("authcheck_store_errors_total")
    );
    for path in ["/livez", "/readyz", "/healthz"] {
        let on_site = service.get(path).await;
        assert_eq!(on_site.status(), 200, "{path} on the site");
        assert!(on_site.headers().contains_key("content-security-policy"));
        assert_eq!(
            service.get_operator(path).await.status(),
            200,
            "{path} for operators"
        );
    }

    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec!["--metrics-listen".into(), "off".into()];
    let without = Service::start_with(options).await;
    assert_eq!(without.metrics, None, "no operators' listener when off");
    assert_eq!(without.get("/metrics").await.status(), 404);
}
