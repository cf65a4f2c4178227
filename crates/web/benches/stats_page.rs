//! How long `/stats` takes over seven days of results at 10 messages a second (issue 13: under
//! 300 ms), over real HTTP on loopback against a SQLite store in a temporary folder.
//!
//! Run: `cargo bench -p authcheck-web --bench stats_page` (add `-- --quick` for one short
//! pass). The page reads only the statistics' rollups, so the store is filled through
//! `add_to_stats`, the rollup write of `insert` without the results themselves (6 million
//! stored results would take hours and gigabytes to write, and the page never reads them):
//! 168 hours × 36,000 results (10 a second), half to `spf@` and half to `dkim@`, from 2,000
//! sending hosts and 5,000 sender addresses in 1,000 domains, every one of them seen every
//! day, with eight verdicts; and 5,000 SMTP sessions stored through `insert_sessions`, a
//! third of them refused in one of three ways.

// The web tests' harness: the site served on loopback over the given store.
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use authcheck_store::{Mailbox, NewSession, SessionEvent, SharedStore, StatsSample};
use chrono::{DateTime, Utc};
use common::TestSite;
use criterion::{Criterion, criterion_group, criterion_main};

const HOURS: i64 = 7 * 24;
const RESULTS_PER_HOUR: u64 = 10 * 3600;
const HOSTS: u64 = 2_000;
const ADDRESSES: u64 = 5_000;
const DOMAINS: u64 = 1_000;
const SESSIONS: i64 = 5_000;
const VERDICTS: [&str; 8] = [
    "|OK| spf-pass",
    "|OK| spf-pass",
    "|OK| dkim-pass",
    "|~OK| dkim-pass",
    "!! spf-softfail !!",
    "!! spf-fail !!",
    "!! dkim-none !!",
    "!! dkim-fail !!",
];

/// The `n`th result of the hour starting at `start`: keys spread by a multiplicative hash so
/// that every host, address and domain turns up every hour.
fn sample(start: DateTime<Utc>, n: u64) -> StatsSample {
    let spread = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
    let address = spread % ADDRESSES;
    let host = spread % HOSTS;
    StatsSample {
        received_at: start + chrono::Duration::milliseconds((n * 100) as i64),
        mailbox: if n.is_multiple_of(2) {
            Mailbox::Spf
        } else {
            Mailbox::Dkim
        },
        verdict: VERDICTS[(spread % 8) as usize].to_owned(),
        client_ip: format!("10.{}.{}.{}", host / 65_536, host / 256 % 256, host % 256),
        client_ptr: Some(format!("mail{host}.sender{}.example", host % DOMAINS)),
        mail_from: format!("user{address}@sender{}.example", address % DOMAINS),
    }
}

fn session(started_at: DateTime<Utc>, n: i64) -> NewSession {
    let event = |command: &str, code: u16, status: Option<&str>| SessionEvent {
        at: started_at,
        command: command.to_owned(),
        code,
        status: status.map(str::to_owned),
        text: "text".to_owned(),
    };
    let mut events = vec![
        event("(connect)", 220, None),
        event("EHLO mail.example", 250, None),
    ];
    match n % 6 {
        0 => events.push(event("RCPT TO:<x@elsewhere.example>", 550, Some("5.7.1"))),
        1 => events.push(event("RCPT TO:<nobody@tester.example>", 550, Some("5.1.1"))),
        2 => events.push(event("(timeout)", 421, Some("4.4.2"))),
        _ => events.push(event("QUIT", 221, Some("2.0.0"))),
    }
    NewSession {
        id: None,
        direction: authcheck_store::Direction::Inbound,
        listed: true,
        started_at,
        ended_at: started_at,
        client_ip: format!("10.9.{}.{}", n / 256 % 256, n % 256),
        client_port: 40_000,
        client_ptr: None,
        helo: Some("mail.example".to_owned()),
        tls_version: None,
        tls_cipher: None,
        mail_from: Some("a@sender1.example".to_owned()),
        ending: "quit".to_owned(),
        events,
        events_left_out: 0,
        left_out_at: 0,
        result_ids: Vec::new(),
    }
}

async fn filled_store(folder: &std::path::Path) -> SharedStore {
    let url = format!("sqlite://{}", folder.join("bench.db").display());
    let store = authcheck_store::open(&url).await.expect("open the store");
    let started = Instant::now();
    let this_hour = Utc::now().timestamp().div_euclid(3600) * 3600;
    for hour in 0..HOURS {
        let start = DateTime::from_timestamp(this_hour - (HOURS - 1 - hour) * 3600, 0).unwrap();
        let samples = (0..RESULTS_PER_HOUR).map(|n| sample(start, n)).collect();
        store.add_to_stats(samples).await.expect("add an hour");
    }
    let sessions: Vec<NewSession> = (0..SESSIONS)
        .map(|n| {
            let at = this_hour - (HOURS - 1) * 3600 + n * (HOURS * 3600 / SESSIONS);
            session(DateTime::from_timestamp(at, 0).unwrap(), n)
        })
        .collect();
    for batch in sessions.chunks(250) {
        store
            .insert_sessions(batch.to_vec())
            .await
            .expect("store sessions");
    }
    eprintln!(
        "added {} results and {SESSIONS} sessions to the statistics in {:.1} s",
        HOURS as u64 * RESULTS_PER_HOUR,
        started.elapsed().as_secs_f64()
    );
    store
}

fn stats_page(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let folder = tempfile::tempdir().unwrap();
    // Dropping the site stops its server, so it lives as long as the benchmark.
    let site =
        runtime.block_on(async { TestSite::start_with(filled_store(folder.path()).await).await });
    let base = site.base.clone();
    let client = reqwest::Client::new();
    let page = format!("{base}/stats");
    let (size, messages) = runtime.block_on(async {
        let html = client.get(&page).send().await.unwrap();
        assert_eq!(html.status(), 200);
        let size = html.text().await.unwrap().len();
        let json: serde_json::Value = client
            .get(format!("{base}/api/v1/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (size, json["summary"]["messages"].as_i64().unwrap())
    });
    eprintln!("the page is {size} bytes and counts {messages} results");
    assert!(
        messages >= 6 * 24 * RESULTS_PER_HOUR as i64,
        "the week is filled"
    );

    let mut group = c.benchmark_group("stats_page");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (name, path) in [
        ("/stats, 7 days at 10 msg/s, all mailboxes", "/stats"),
        (
            "/stats, 30 days, spf@ only",
            "/stats?period=30d&mailbox=spf",
        ),
        ("/api/v1/stats, 7 days", "/api/v1/stats"),
    ] {
        let url = format!("{base}{path}");
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter(|| async {
                let page = client.get(&url).send().await.unwrap();
                assert_eq!(page.status(), 200);
                page.bytes().await.unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, stats_page);
criterion_main!(benches);
