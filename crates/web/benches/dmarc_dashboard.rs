//! How long `/dmarc/<domain>` takes for a domain with one million stored records (issue 12:
//! under 300 ms), over real HTTP on loopback against a SQLite store in a temporary folder.
//!
//! Run: `cargo bench -p authcheck-web --bench dmarc_dashboard` (add `-- --quick` for one short
//! pass). The store is filled first through `insert_report` with reports built in memory (the
//! parser is skipped: it is not what is measured): 400 days × 5 reporters × 500 records, 500
//! source addresses, a mix of results. The page shows the newest 30 days, as by default.

// The web tests' harness: the site served on loopback over the given store.
#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use authcheck_store::{NewRecord, NewReport, ReportKind, SharedStore};
use common::TestSite;
use criterion::{Criterion, criterion_group, criterion_main};

const DAYS: i64 = 400;
const REPORTERS: usize = 5;
const RECORDS_PER_REPORT: usize = 500;
/// 2023-11-15 00:00 UTC, the last day's start.
const LAST_DAY: i64 = 1_700_006_400;

fn report(day: i64, reporter: usize) -> NewReport {
    let begin = LAST_DAY - (DAYS - 1 - day) * 86_400;
    let records = (0..RECORDS_PER_REPORT)
        .map(|n| {
            let dkim = n % 10 != 0;
            let spf = n % 5 != 0;
            NewRecord {
                source_ip: format!("10.{}.{}.{}", reporter, n / 250, n % 250),
                count: 1 + (n as i64 * 7 + day) % 20,
                disposition: Some(if dkim || spf { "none" } else { "quarantine" }.to_owned()),
                dkim: Some(if dkim { "pass" } else { "fail" }.to_owned()),
                spf: Some(if spf { "pass" } else { "fail" }.to_owned()),
                header_from: "big.example".to_owned(),
                dkim_pass: dkim,
                spf_pass: true,
                reasons: if n % 50 == 0 {
                    vec!["forwarded".to_owned()]
                } else {
                    Vec::new()
                },
                detail: None,
            }
        })
        .collect();
    NewReport {
        kind: ReportKind::Aggregate,
        reporter: format!("reporter-{reporter}.example"),
        report_id: format!("{day}-{reporter}"),
        domain: "big.example".to_owned(),
        date_begin: begin,
        date_end: begin + 86_399,
        received_at: begin + 90_000,
        report: serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
        raw: Vec::new(),
        records,
        policy: Some("p=quarantine; adkim=r; aspf=r; pct=100".to_owned()),
    }
}

async fn filled_store(folder: &std::path::Path) -> SharedStore {
    let url = format!("sqlite://{}", folder.join("bench.db").display());
    let store = authcheck_store::open(&url).await.expect("open the store");
    let started = Instant::now();
    for day in 0..DAYS {
        for reporter in 0..REPORTERS {
            store
                .insert_report(report(day, reporter))
                .await
                .expect("store a report");
        }
    }
    eprintln!(
        "stored {} records in {:.1} s",
        DAYS as usize * REPORTERS * RECORDS_PER_REPORT,
        started.elapsed().as_secs_f64()
    );
    store
}

fn dashboard(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let folder = tempfile::tempdir().unwrap();
    // Dropping the site stops its server, so it lives as long as the benchmark.
    let site =
        runtime.block_on(async { TestSite::start_with(filled_store(folder.path()).await).await });
    let base = site.base.clone();
    let client = reqwest::Client::new();
    let url = format!("{base}/dmarc/big.example");
    let size = runtime.block_on(async {
        let page = client.get(&url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        page.text().await.unwrap().len()
    });
    eprintln!("the page is {size} bytes");

    let mut group = c.benchmark_group("dmarc_dashboard");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("domain page, 1M records, newest 30 days", |b| {
        b.to_async(&runtime).iter(|| async {
            let page = client.get(&url).send().await.unwrap();
            assert_eq!(page.status(), 200);
            page.bytes().await.unwrap()
        })
    });
    let filtered = format!("{base}/dmarc/big.example?from=2022-11-01&to=2023-11-15&result=fail");
    group.bench_function("domain page, 1M records, a year of failures", |b| {
        b.to_async(&runtime).iter(|| async {
            let page = client.get(&filtered).send().await.unwrap();
            assert_eq!(page.status(), 200);
            page.bytes().await.unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, dashboard);
criterion_main!(benches);
