//! The DMARC report pages and their API, over HTTP against a real SQLite store holding reports
//! parsed by the real parser: the domain list with its DNS records, a domain's dashboard with
//! its chart, table, sources, policy and reporters, the filters, one report, the rejected
//! reports, the note on a result page, and bad or hostile input.

mod common;

use authcheck_dmarc_reports::{Limits, Report, parse};
use authcheck_store::{NewRejectedReport, NewReport, ReportInsert, SourceName};
use chrono::{NaiveDate, TimeZone, Utc};
use common::{PUBLIC_URL, Sample, TestSite};
use reqwest::StatusCode;
use serde_json::Value;

const SCRIPT_PAYLOAD: &str = "<script>window.__pwned=1</script>";

/// 2023-11-15 00:00 UTC.
const NOV_15: i64 = 1_700_006_400;
const DAY: i64 = 86_400;

/// One `<record>`: source, count, disposition, aligned DKIM and SPF results.
struct Row<'a>(&'a str, u64, &'a str, &'a str, &'a str);

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An RFC 7489 aggregate report about `domain`.
fn aggregate_xml(
    reporter: &str,
    report_id: &str,
    domain: &str,
    begin: i64,
    p: &str,
    rows: &[Row],
) -> String {
    let records: String = rows
        .iter()
        .map(|Row(ip, count, disposition, dkim, spf)| {
            format!(
                "<record><row><source_ip>{ip}</source_ip><count>{count}</count>\
                 <policy_evaluated><disposition>{disposition}</disposition><dkim>{dkim}</dkim>\
                 <spf>{spf}</spf>{reason}</policy_evaluated></row>\
                 <identifiers><header_from>{domain}</header_from></identifiers>\
                 <auth_results><dkim><domain>{domain}</domain><selector>s1</selector>\
                 <result>{dkim}</result></dkim><spf><domain>{domain}</domain><scope>mfrom</scope>\
                 <result>pass</result></spf></auth_results></record>",
                reason = if *disposition == "none" && *dkim == "fail" && *spf == "fail" {
                    "<reason><type>forwarded</type><comment>list</comment></reason>"
                } else {
                    ""
                },
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><feedback><version>1.0</version><report_metadata>\
         <org_name>{reporter}</org_name><email>dmarc@reporter.example</email>\
         <report_id>{report_id}</report_id><date_range><begin>{begin}</begin>\
         <end>{end}</end></date_range></report_metadata><policy_published>\
         <domain>{domain}</domain><adkim>r</adkim><aspf>r</aspf><p>{p}</p><pct>100</pct>\
         </policy_published>{records}</feedback>",
        reporter = xml_text(reporter),
        report_id = xml_text(report_id),
        end = begin + DAY - 1,
    )
}

/// The store's rows for a parsed report, received an hour after its period (a failure
/// report: on 2023-11-15).
fn new_report(raw: &[u8]) -> NewReport {
    let report = parse(raw, &Limits::default()).expect("the test report parses");
    let received_at = match &report {
        Report::Aggregate(aggregate) => aggregate.metadata.date_range.end + 3600,
        Report::Failure(_) => NOV_15,
    };
    NewReport::from_parsed(report, raw.to_vec(), received_at)
}

async fn store(site: &TestSite, xml: String) -> String {
    match site
        .store
        .insert_report(new_report(xml.as_bytes()))
        .await
        .unwrap()
    {
        ReportInsert::Stored(id) => id,
        duplicate => panic!("{duplicate:?}"),
    }
}

/// example.org over 40 days of 2023 (so the newest 30 days of data are not the calendar's):
/// each day 10 messages from 192.0.2.1 passing, and on the last 5 days 3 from 198.51.100.7
/// failing and quarantined; one reporter saw p=none, later p=quarantine.
async fn forty_days(site: &TestSite) {
    for day in 0..40 {
        let begin = NOV_15 - 39 * DAY + day * DAY;
        let mut rows = vec![Row("192.0.2.1", 10, "none", "pass", "pass")];
        if day >= 35 {
            rows.push(Row("198.51.100.7", 3, "quarantine", "fail", "fail"));
        }
        let p = if day >= 30 { "quarantine" } else { "none" };
        store(
            site,
            aggregate_xml(
                "Big Receiver",
                &format!("big-{day}"),
                "example.org",
                begin,
                p,
                &rows,
            ),
        )
        .await;
    }
    store(
        site,
        aggregate_xml(
            "Small Receiver",
            "small-1",
            "example.org",
            NOV_15,
            "quarantine",
            &[Row("192.0.2.1", 4, "none", "pass", "fail")],
        ),
    )
    .await;
}

async fn get(site: &TestSite, path: &str) -> (StatusCode, String) {
    let response = reqwest::get(site.url(path))
        .await
        .expect("request the site");
    (response.status(), response.text().await.unwrap())
}

async fn get_json(site: &TestSite, path: &str) -> (StatusCode, Value) {
    let response = reqwest::get(site.url(path)).await.expect("request the API");
    let status = response.status();
    (status, response.json().await.expect("a JSON body"))
}

#[tokio::test]
async fn dmarc_index_lists_domains_with_their_rate_trend_and_the_records_to_publish() {
    let site = TestSite::start().await;
    let (status, empty) = get(&site, "/dmarc").await;
    assert_eq!(status, StatusCode::OK);
    assert!(empty.contains("No reports yet."), "{empty}");
    assert!(empty.contains("rua=mailto:rua@tester.example"));
    assert!(empty.contains("href=\"/dmarc/rejected\""));

    forty_days(&site).await;
    let (status, page) = get(&site, "/dmarc").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("href=\"/dmarc/example.org\""), "{page}");
    // The newest 30 days of data: 30 × 10 + 5 × 3 + 4 messages, 15 failing.
    assert!(page.contains("<td class=\"number\">319</td>"), "{page}");
    assert!(page.contains("95.3%"), "{page}");
    assert!(page.contains("<polyline"), "a trend line");
    // RFC 7489 §7.1 authorization, for each tester domain.
    assert!(
        page.contains("example.org._report._dmarc.tester.example. TXT &#34;v=DMARC1&#34;"),
        "{page}"
    );
    assert!(page.contains("example.org._report._dmarc.second.example. TXT &#34;v=DMARC1&#34;"));
}

#[tokio::test]
async fn domain_page_shows_the_newest_thirty_days_of_its_data_with_chart_table_and_sources() {
    let site = TestSite::start().await;
    forty_days(&site).await;
    site.store
        .record_sources(&[SourceName {
            ip: "198.51.100.7".into(),
            ptr: Some("mail.forwarder.example".into()),
            org_domain: Some("forwarder.example".into()),
            looked_up_at: NOV_15,
        }])
        .await
        .unwrap();
    let (status, page) = get(&site, "/dmarc/Example.ORG").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    // The reports end on 2023-11-15: that is the window's last day, not today.
    assert!(page.contains("2023-10-17 to 2023-11-15"), "{page}");
    assert!(page.contains("<svg"), "a chart");
    assert!(page.contains("<title>Messages per day for example.org, DMARC pass and fail</title>"));
    // The table beside the chart: one row per day, newest first.
    let days = page.matches("<tr><td class=\"time\">2023-").count();
    assert_eq!(days, 30, "{page}");
    assert!(page.contains("<tr><td class=\"time\">2023-11-15</td><td class=\"number\">17</td><td class=\"number\">14</td><td class=\"number\">3</td>"), "{page}");
    // Sources: the failing one first, with its disposition.
    let failing = page.find("198.51.100.7").expect("the failing source");
    let passing = page.find(">192.0.2.1<").expect("the passing source");
    assert!(failing < passing);
    assert!(page.contains("quarantine 15"), "{page}");
    // Its reverse DNS and organizational domain, as looked up at ingest.
    assert!(
        page.contains("<td class=\"mono\">mail.forwarder.example</td>"),
        "{page}"
    );
    assert!(page.contains("<td class=\"mono\">forwarder.example</td>"));
    assert!(
        page.contains("href=\"/dmarc/example.org?source=198.51.100.7\""),
        "{page}"
    );
    // Rates: SPF aligned fails for Small Receiver's 4 and the failing 15.
    assert!(page.contains("aligned 94.0%"), "{page}");
    // Most of the mail passed, not all of it: the headline rate is amber, not green.
    assert!(
        page.contains("<dt>DMARC pass</dt><dd><span class=\"result-softfail\">"),
        "{page}"
    );
    // The policy changed from none to quarantine.
    assert!(page.contains("p=none; adkim=r; aspf=r; pct=100"), "{page}");
    assert!(page.contains("p=quarantine; adkim=r; aspf=r; pct=100"));
    assert!(page.contains("Reporters saw 2 different policies"));
    assert!(page.contains("Big Receiver") && page.contains("Small Receiver"));
    assert!(page.contains("href=\"/dmarc/report/"), "reports are linked");
}

#[tokio::test]
async fn domain_filters_narrow_every_part_of_the_page() {
    let site = TestSite::start().await;
    forty_days(&site).await;
    let (status, page) = get(&site, "/dmarc/example.org?result=fail").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains(">192.0.2.1<"), "only failing sources");
    assert!(
        page.contains("<dt>Messages reported</dt><dd>15</dd>"),
        "{page}"
    );

    let (_, page) = get(&site, "/dmarc/example.org?reporter=Small+Receiver").await;
    assert!(
        page.contains("<dt>Messages reported</dt><dd>4</dd>"),
        "{page}"
    );
    assert!(
        page.contains("<option value=\"Small Receiver\" selected>"),
        "{page}"
    );

    let (_, page) = get(
        &site,
        "/dmarc/example.org?source=198.51.100.7&from=2023-11-14&to=2023-11-14",
    )
    .await;
    assert!(
        page.contains("<dt>Messages reported</dt><dd>3</dd>"),
        "{page}"
    );
    assert!(page.contains("2023-11-14 to 2023-11-14"));

    // A range before any data: empty, not an error.
    let (status, page) = get(&site, "/dmarc/example.org?from=2020-01-01&to=2020-01-31").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No messages in this range."));
}

#[tokio::test]
async fn bad_and_hostile_input_gets_clear_error_pages() {
    let site = TestSite::start().await;
    forty_days(&site).await;
    for (path, status, text) in [
        (
            "/dmarc/unknown.example",
            StatusCode::NOT_FOUND,
            "No DMARC report about unknown.example",
        ),
        (
            "/dmarc/%3Cscript%3E",
            StatusCode::NOT_FOUND,
            "does not name a domain",
        ),
        (
            "/dmarc/example.org?from=2023-02-30",
            StatusCode::BAD_REQUEST,
            "from: &#34;2023-02-30&#34; is not a date",
        ),
        (
            "/dmarc/example.org?from=2023-11-02&to=2023-11-01",
            StatusCode::BAD_REQUEST,
            "is after to",
        ),
        (
            "/dmarc/example.org?from=2000-01-01&to=2023-11-01",
            StatusCode::BAD_REQUEST,
            "at most 400 days",
        ),
        (
            "/dmarc/example.org?to=-262143-01-01",
            StatusCode::BAD_REQUEST,
            "to: -262143-01-01 is not between the years 1970 and 9999",
        ),
        (
            "/dmarc/example.org?from=%2B262142-12-31",
            StatusCode::BAD_REQUEST,
            "from: +262142-12-31 is not between the years 1970 and 9999",
        ),
        (
            "/dmarc/example.org?source=%3Cscript%3E",
            StatusCode::BAD_REQUEST,
            "is not an IP address",
        ),
        (
            "/dmarc/example.org?result=maybe",
            StatusCode::BAD_REQUEST,
            "use pass or fail",
        ),
        (
            "/dmarc/report/zzzz",
            StatusCode::NOT_FOUND,
            "Report not found",
        ),
        (
            "/dmarc/report/00000000000000000000000000000000",
            StatusCode::NOT_FOUND,
            "Report not found",
        ),
        (
            "/dmarc/report/00000000000000000000000000000000/raw",
            StatusCode::NOT_FOUND,
            "Report not found",
        ),
    ] {
        let (got, page) = get(&site, path).await;
        assert_eq!(got, status, "{path}: {page}");
        assert!(page.contains(text), "{path}: {page}");
        assert!(!page.contains("<script>"), "{path}");
    }
}

#[tokio::test]
async fn hostile_report_fields_are_escaped_and_long_lists_capped() {
    let site = TestSite::start().await;
    let long_reporter = format!("{SCRIPT_PAYLOAD}{}", "R".repeat(5_000));
    // 150 sources, each failing: the page lists 100 of them.
    let rows: Vec<String> = (0..150)
        .map(|n| format!("10.0.{}.{}", n / 100, n % 100))
        .collect();
    let rows: Vec<Row> = rows
        .iter()
        .map(|ip| Row(ip, 1, "reject", "fail", "fail"))
        .collect();
    let id = store(
        &site,
        aggregate_xml(
            &long_reporter,
            SCRIPT_PAYLOAD,
            "hostile.example",
            NOV_15,
            "reject",
            &rows,
        ),
    )
    .await;
    for path in [
        "/dmarc",
        "/dmarc/hostile.example",
        &format!("/dmarc/report/{id}"),
    ] {
        let (status, page) = get(&site, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!page.contains(SCRIPT_PAYLOAD), "{path}");
        assert!(page.len() < 400_000, "{path}: {} bytes", page.len());
    }
    let (_, page) = get(&site, "/dmarc/hostile.example").await;
    assert_eq!(page.matches("<tr class=\"failing\">").count(), 100);
    assert!(page.contains("Only the first 100 sources are listed"));
    let (_, report) = get(&site, &format!("/dmarc/report/{id}")).await;
    assert!(report.contains("Records 1 to 100 of 150."), "{report}");
    let (_, second) = get(&site, &format!("/dmarc/report/{id}?page=2")).await;
    assert!(second.contains("Records 101 to 150 of 150."));
    let (status, _) = get(&site, &format!("/dmarc/report/{id}?page=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn report_page_shows_records_and_downloads_the_file_as_received() {
    let site = TestSite::start().await;
    let xml = aggregate_xml(
        "Receiver",
        "r-1",
        "example.org",
        NOV_15,
        "none",
        &[Row("192.0.2.1", 2, "none", "fail", "fail")],
    );
    let id = store(&site, xml.clone()).await;
    let (status, page) = get(&site, &format!("/dmarc/report/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("RFC 7489"), "{page}");
    assert!(page.contains("p=none; adkim=r; aspf=r; pct=100"));
    assert!(page.contains("example.org (s=s1): fail"), "{page}");
    assert!(page.contains("example.org (mfrom): pass"));
    assert!(page.contains("forwarded (list)"));
    assert!(page.contains("href=\"/dmarc/example.org\""));
    let raw = reqwest::get(site.url(&format!("/dmarc/report/{id}/raw")))
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::OK);
    assert!(
        raw.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(raw.bytes().await.unwrap(), xml.as_bytes());
}

/// A report with 1,000 reporter errors (stored whole, as before the parser kept at most 100):
/// its page and API object list 100 and count the rest.
#[tokio::test]
async fn a_report_with_many_errors_lists_the_first_hundred_and_counts_the_rest() {
    let site = TestSite::start().await;
    let errors: String = (0..1_000).map(|n| format!("<error>e{n}</error>")).collect();
    let xml = aggregate_xml(
        "Receiver",
        "errors",
        "example.org",
        NOV_15,
        "none",
        &[Row("192.0.2.1", 2, "none", "pass", "pass")],
    )
    .replace("<date_range>", &format!("{errors}<date_range>"));
    let limits = Limits {
        max_errors: 10_000,
        ..Limits::default()
    };
    let report = parse(xml.as_bytes(), &limits).unwrap();
    let row = NewReport::from_parsed(report, xml.into_bytes(), NOV_15 + 2 * DAY);
    let ReportInsert::Stored(id) = site.store.insert_report(row).await.unwrap() else {
        panic!("stored");
    };
    let (status, page) = get(&site, &format!("/dmarc/report/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("<li>e").count(), 100);
    assert!(page.contains("<li>e99</li>"));
    assert!(page.contains("… and 900 more errors from the reporter"));
    let (status, one) = get_json(&site, &format!("/api/v1/dmarc/reports/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        one["report"]["metadata"]["errors"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    assert_eq!(one["errors_not_listed"], 900);
    assert_eq!(one["warnings_not_listed"], 0);
}

/// A report of `count` records, the n-th (from 0) from 10.0.(n / 250).(n % 250).
fn numbered_report(report_id: &str, count: usize) -> String {
    let ips: Vec<String> = (0..count)
        .map(|n| format!("10.0.{}.{}", n / 250, n % 250))
        .collect();
    let rows: Vec<Row> = ips
        .iter()
        .map(|ip| Row(ip, 1, "none", "pass", "pass"))
        .collect();
    aggregate_xml(
        "Receiver",
        report_id,
        "paged.example",
        NOV_15,
        "none",
        &rows,
    )
}

/// The records' addresses a report page lists, in order.
fn listed_sources(page: &str) -> Vec<String> {
    let cell = "<td class=\"mono\">";
    page.match_indices(&format!("{cell}10.0."))
        .map(|(at, _)| {
            let rest = &page[at + cell.len()..];
            rest[..rest.find('<').unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn report_pages_show_the_right_records_whether_stored_apart_or_inside_the_report() {
    let site = TestSite::start().await;
    let apart = store(&site, numbered_report("apart", 250)).await;
    // As reports stored before records kept their own details: the whole report in its JSON.
    let xml = numbered_report("inside", 250);
    let report = parse(xml.as_bytes(), &Limits::default()).unwrap();
    let mut row = new_report(xml.as_bytes());
    row.report = serde_json::value::to_raw_value(&report).unwrap();
    for record in &mut row.records {
        record.detail = None;
    }
    let ReportInsert::Stored(inside) = site.store.insert_report(row).await.unwrap() else {
        panic!("stored");
    };
    let ip = |n: usize| format!("10.0.{}.{}", n / 250, n % 250);
    for id in [apart, inside] {
        for (page, first, last, note) in [
            ("", 0, 100, "Records 1 to 100 of 250."),
            ("?page=2", 100, 200, "Records 101 to 200 of 250."),
            ("?page=3", 200, 250, "Records 201 to 250 of 250."),
            // Past the last page: the last.
            ("?page=9", 200, 250, "Records 201 to 250 of 250."),
        ] {
            let (status, html) = get(&site, &format!("/dmarc/report/{id}{page}")).await;
            assert_eq!(status, StatusCode::OK, "{id}{page}");
            assert!(html.contains(note), "{id}{page}: {html}");
            assert_eq!(
                listed_sources(&html),
                (first..last).map(ip).collect::<Vec<_>>(),
                "{id}{page}"
            );
        }
    }

    // The API lists the first 1,000 records and counts the rest.
    let big = store(&site, numbered_report("big", 1_200)).await;
    let (status, one) = get_json(&site, &format!("/api/v1/dmarc/reports/{big}")).await;
    assert_eq!(status, StatusCode::OK);
    let records = one["report"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 1_000);
    assert_eq!(records[999]["source_ip"], ip(999));
    assert_eq!(one["records_total"], 1_200);
    assert_eq!(one["records_not_listed"], 200);
}

#[tokio::test]
async fn failure_report_page_shows_the_failure_details_and_reported_headers() {
    let site = TestSite::start().await;
    let raw = std::fs::read(format!(
        "{}/../dmarc-reports/tests/data/quirks/arf-original-message.eml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let ReportInsert::Stored(id) = site.store.insert_report(new_report(&raw)).await.unwrap() else {
        panic!("stored");
    };
    let (status, page) = get(&site, &format!("/dmarc/report/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("DMARC failure report"), "{page}");
    assert!(page.contains("Authentication failure"));
    assert!(page.contains("<dt>Auth-Failure</dt>"), "{page}");
    assert!(
        page.contains("Reported message&#x27;s header fields")
            || page.contains("Reported message's header fields")
    );
    assert!(
        !page.contains("The report does not include them."),
        "{page}"
    );
}

#[tokio::test]
async fn rejected_reports_are_listed_with_their_reason() {
    let site = TestSite::start().await;
    site.store
        .insert_rejected_report(NewRejectedReport {
            received_at: NOV_15,
            source: format!("smtp:rua@tester.example {SCRIPT_PAYLOAD}"),
            reason: "the XML declares a DTD entity; entity expansion is refused".into(),
            raw: b"<!DOCTYPE".to_vec(),
        })
        .await
        .unwrap();
    let (status, page) = get(&site, "/dmarc/rejected").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("entity expansion is refused"), "{page}");
    assert!(page.contains("2023-11-15 00:00 UTC"));
    assert!(!page.contains(SCRIPT_PAYLOAD));
}

#[tokio::test]
async fn result_page_says_what_reporters_saw_of_the_sending_address() {
    let site = TestSite::start().await;
    forty_days(&site).await;
    // Received among the days reported (198.51.100.7 is reported from 2023-11-11 to 11-15):
    // the note counts the reports after the test too, and its link shows the same days.
    let sample = Sample {
        header_from: Some("alice@example.org".into()),
        received_at: Utc.with_ymd_and_hms(2023, 11, 12, 12, 0, 0).unwrap(),
        ..Sample::default()
    };
    let mut result = sample.new_result();
    result.session.client_ip = "198.51.100.7".into();
    let id = site.insert(result).await;
    let (_, page) = get(&site, &format!("/r/{id}")).await;
    // The last day is today, but at most 400 days from the first.
    let last_day = Utc::now()
        .date_naive()
        .min(NaiveDate::from_ymd_opt(2024, 11, 15).unwrap());
    assert!(
        page.contains(&format!(
            "reporters saw this address 15 times from 2023-10-13 (30 days before this test) to {last_day}, 0.0% DMARC pass"
        )),
        "{page}"
    );
    let link = format!("/dmarc/example.org?from=2023-10-13&to={last_day}&source=198.51.100.7");
    assert!(
        page.contains(&format!("href=\"{}\"", link.replace('&', "&#38;"))),
        "{page}"
    );
    let (status, dashboard) = get(&site, &link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        dashboard.contains("<dt>Messages reported</dt><dd>15</dd>"),
        "{dashboard}"
    );

    // An address no report mentions: no note.
    let other = site.insert(Sample::default().new_result()).await;
    let (_, page) = get(&site, &format!("/r/{other}")).await;
    assert!(!page.contains("DMARC reports about this address"));
}

#[tokio::test]
async fn api_gives_domains_daily_series_sources_and_reports() {
    let site = TestSite::start().await;
    forty_days(&site).await;
    let (status, domains) = get_json(&site, "/api/v1/dmarc/domains").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(domains["domains"][0]["domain"], "example.org");
    assert_eq!(domains["domains"][0]["messages"], 419);
    assert_eq!(
        domains["domains"][0]["url"],
        format!("{PUBLIC_URL}/dmarc/example.org")
    );

    let (status, daily) = get_json(&site, "/api/v1/dmarc/domains/example.org/daily").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(daily["from"], "2023-10-17");
    assert_eq!(daily["to"], "2023-11-15");
    let days = daily["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days[29]["day"], "2023-11-15");
    assert_eq!(days[29]["messages"], 17);
    assert_eq!(days[29]["dmarc_fail"], 3);

    let (_, sources) = get_json(&site, "/api/v1/dmarc/domains/example.org/sources?limit=1").await;
    let sources = sources["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0]["source_ip"], "198.51.100.7");
    assert_eq!(sources[0]["dispositions"][0]["name"], "quarantine");

    let (_, listed) = get_json(&site, "/api/v1/dmarc/reports?domain=example.org&limit=2").await;
    let reports = listed["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert_eq!(listed["next_offset"], 2);
    let id = reports[0]["id"].as_str().unwrap();
    let (status, one) = get_json(&site, &format!("/api/v1/dmarc/reports/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["report"]["kind"], "aggregate");
    assert_eq!(one["records_not_listed"], 0);
    assert_eq!(
        one["raw_url"],
        format!("{PUBLIC_URL}/dmarc/report/{id}/raw")
    );

    for (path, status, parameter) in [
        (
            "/api/v1/dmarc/domains/unknown.example/daily",
            StatusCode::NOT_FOUND,
            Value::Null,
        ),
        (
            "/api/v1/dmarc/domains/example.org/daily?to=soon",
            StatusCode::BAD_REQUEST,
            "to".into(),
        ),
        (
            "/api/v1/dmarc/domains/example.org/sources?limit=0",
            StatusCode::BAD_REQUEST,
            "limit".into(),
        ),
        (
            "/api/v1/dmarc/domains/example.org/daily?to=-262143-01-01",
            StatusCode::BAD_REQUEST,
            "to".into(),
        ),
        (
            "/api/v1/dmarc/domains/example.org/sources?from=%2B262142-12-31",
            StatusCode::BAD_REQUEST,
            "from".into(),
        ),
        (
            "/api/v1/dmarc/reports?kind=weekly",
            StatusCode::BAD_REQUEST,
            "kind".into(),
        ),
        (
            "/api/v1/dmarc/reports/ffff",
            StatusCode::NOT_FOUND,
            Value::Null,
        ),
    ] {
        let (got, body) = get_json(&site, path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}");
        assert_eq!(
            body.get("parameter").cloned().unwrap_or(Value::Null),
            parameter,
            "{path}"
        );
    }
}
