//! The DMARC dashboard end to end: aggregate reports sent over real SMTP to `rua@` a tester
//! domain of `authcheck serve` show on `/dmarc` and `/dmarc/<domain>` in a headless Chromium,
//! the chart drawn (its pass and fail colours cover an area of the screenshot) with its table,
//! the failing source first; a hostile report (script in every field, 150 sources) shows as
//! text in a page of bounded size. `AUTHCHECK_SCREENSHOT_DIR=folder` keeps the screenshots.

mod support;

use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_testkit::browser::Browser;
use authcheck_testkit::png::count_pixels_near;
use support::{Service, send};

/// 2023-11-15 00:00 UTC.
const NOV_15: i64 = 1_700_006_400;
const DAY: i64 = 86_400;
/// The chart's colours (the site's --ok and --problem).
const PASS_GREEN: [u8; 3] = [0x17, 0x72, 0x3a];
const FAIL_RED: [u8; 3] = [0xb3, 0x26, 0x1e];
const HOSTILE: &str = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=1</script>";

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One day's aggregate report about `domain` from `reporter`: `(source, count, passes)` rows.
fn report_xml(reporter: &str, domain: &str, day: i64, rows: &[(String, u64, bool)]) -> String {
    let records: String = rows
        .iter()
        .map(|(ip, count, passes)| {
            let (result, disposition) = if *passes {
                ("pass", "none")
            } else {
                ("fail", "reject")
            };
            format!(
                "<record><row><source_ip>{ip}</source_ip><count>{count}</count>\
                 <policy_evaluated><disposition>{disposition}</disposition><dkim>{result}</dkim>\
                 <spf>{result}</spf></policy_evaluated></row><identifiers>\
                 <header_from>{domain}</header_from></identifiers><auth_results><dkim>\
                 <domain>{domain}</domain><result>{result}</result></dkim><spf>\
                 <domain>{domain}</domain><result>{result}</result></spf></auth_results></record>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?>\r\n<feedback><report_metadata><org_name>{reporter}</org_name>\
         <email>dmarc@reporter.test</email><report_id>{id}</report_id><date_range>\
         <begin>{begin}</begin><end>{end}</end></date_range></report_metadata>\
         <policy_published><domain>{domain}</domain><p>reject</p></policy_published>\
         {records}</feedback>\r\n",
        reporter = xml_text(reporter),
        id = xml_text(&format!("{reporter}-{day}")),
        begin = NOV_15 + day * DAY,
        end = NOV_15 + (day + 1) * DAY - 1,
    )
}

/// `xml` attached to a message to rua@, as reporters send it.
fn report_message(xml: &str) -> Vec<u8> {
    let mut message = b"From: dmarc@reporter.test\r\nTo: rua@tester.test\r\n\
        Subject: Report Domain: example.org\r\nMIME-Version: 1.0\r\n\
        Content-Type: text/xml; name=\"report.xml\"\r\n\
        Content-Disposition: attachment; filename=\"report.xml\"\r\n\r\n"
        .to_vec();
    message.extend_from_slice(xml.as_bytes());
    message
}

async fn send_report(service: &Service, xml: &str) {
    let reply = send(
        service,
        "mail.reporter.test",
        "dmarc@reporter.test",
        &["rua@tester.test"],
        &report_message(xml),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
}

/// Opens the first report listed on the domain page the browser shows, as a person would.
async fn open_first_report(browser: &Browser, service: &Service) {
    let report_link = browser
        .eval("return document.querySelector('table.dmarc-reports a').getAttribute('href');")
        .await;
    browser
        .goto(&service.url(report_link.as_str().unwrap()))
        .await;
}

async fn screenshot(browser: &Browser, name: &str) {
    browser.keep_screenshot(name).await;
}

#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn reports_sent_to_rua_appear_on_the_dashboard_with_their_chart() {
    let dns = TestDns::start().await;
    let service = Service::start(&dns).await;
    let browser = Browser::launch().await;
    browser
        .client()
        .set_window_size(1280, 1400)
        .await
        .expect("size the window");

    browser.goto(&service.url("/dmarc")).await;
    let empty = browser
        .eval("return document.querySelector('main').innerText;")
        .await;
    assert!(
        empty.as_str().unwrap().contains("No reports yet."),
        "{empty}"
    );
    screenshot(&browser, "dmarc-empty").await;

    // Seven days: 40 passing messages a day from one source, and from day 3 on a failing
    // source that grows.
    for day in 0..7 {
        let mut rows = vec![("192.0.2.10".to_owned(), 40, true)];
        if day >= 3 {
            rows.push(("198.51.100.66".to_owned(), 5 * day as u64, false));
        }
        send_report(&service, &report_xml("big.test", "example.org", day, &rows)).await;
    }
    // A hostile reporter about another domain: script in its name, 150 failing sources.
    let many: Vec<(String, u64, bool)> = (0..150)
        .map(|n| (format!("203.0.113.{}", n % 250), 1 + n % 3, n % 2 == 0))
        .collect();
    let long_name = format!("{HOSTILE}{}", "x".repeat(300));
    send_report(
        &service,
        &report_xml(&long_name, "hostile.example", 6, &many),
    )
    .await;

    browser.goto(&service.url("/dmarc")).await;
    let index = browser
        .eval(
            "const link = document.querySelector('table.dmarc-domains a[href=\"/dmarc/example.org\"]');
             return { linked: link !== null, sparklines: document.querySelectorAll('td.sparkline svg').length,
                      records: document.querySelector('pre.record').textContent };",
        )
        .await;
    assert_eq!(index["linked"], true, "{index}");
    assert_eq!(index["sparklines"], 2);
    assert!(
        index["records"]
            .as_str()
            .unwrap()
            .contains("example.org._report._dmarc.tester.test. TXT \"v=DMARC1\""),
        "{index}"
    );
    screenshot(&browser, "dmarc-index").await;

    browser.goto(&service.url("/dmarc/example.org")).await;
    let page = browser
        .eval(
            "const chart = document.querySelector('#volume svg.chart');
             const box = chart.getBoundingClientRect();
             const sources = Array.from(document.querySelectorAll('table.dmarc-sources tbody tr td:first-child'))
                 .map(cell => cell.textContent.trim());
             return { width: box.width, height: box.height, bars: chart.querySelectorAll('rect').length,
                      days: document.querySelectorAll('table.dmarc-days tbody tr').length,
                      sources, summary: document.querySelector('dl.rates').innerText };",
        )
        .await;
    assert!(page["width"].as_f64().unwrap() > 300.0, "{page}");
    assert!(page["height"].as_f64().unwrap() > 100.0, "{page}");
    // Seven pass bars and four fail bars at least (plus legend and frame).
    assert!(page["bars"].as_u64().unwrap() >= 11, "{page}");
    // The newest 30 days of data: the seven report days end the window.
    assert_eq!(page["days"], 30, "{page}");
    assert_eq!(
        page["sources"][0], "198.51.100.66",
        "the failing source first: {page}"
    );
    assert!(page["summary"].as_str().unwrap().contains("370"), "{page}");

    // The chart as drawn: its pass and fail colours cover an area, not a line.
    let png = browser.screenshot_of("#volume svg.chart").await;
    let green = count_pixels_near(&png, PASS_GREEN, 24);
    let red = count_pixels_near(&png, FAIL_RED, 24);
    assert!(green > 2_000, "{green} pass-green pixels");
    assert!(red > 200, "{red} fail-red pixels");
    screenshot(&browser, "dmarc-domain").await;

    // A report of the list opens with its records.
    open_first_report(&browser, &service).await;
    let report = browser
        .eval(
            "return { records: document.querySelectorAll('table.dmarc-records tbody tr').length,
                      raw: document.querySelector('a[href$=\"/raw\"]') !== null };",
        )
        .await;
    assert!(report["records"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["raw"], true, "{report}");
    screenshot(&browser, "dmarc-report").await;

    browser.goto(&service.url("/dmarc/hostile.example")).await;
    let hostile = browser
        .eval(
            "return { pwned: typeof window.__pwned, images: document.images.length,
                      rows: document.querySelectorAll('table.dmarc-sources tbody tr').length,
                      reporter: document.querySelector('table.dmarc-reporters td').textContent,
                      overflow: document.documentElement.scrollWidth - window.innerWidth };",
        )
        .await;
    assert_eq!(hostile["pwned"], "undefined", "{hostile}");
    assert_eq!(hostile["images"], 0);
    assert!(
        hostile["reporter"].as_str().unwrap().starts_with(HOSTILE),
        "{hostile}"
    );
    assert!(hostile["rows"].as_u64().unwrap() <= 100, "{hostile}");
    screenshot(&browser, "dmarc-hostile").await;

    // A report with a thousand errors, each hostile text, lists the first hundred and
    // counts the rest.
    let errors: String = (0..1000)
        .map(|n| format!("<error>{} {n}</error>", xml_text(HOSTILE)))
        .collect();
    let xml = report_xml(
        "Error Reporter",
        "errors.example",
        3,
        &[("192.0.2.9".to_owned(), 1, true)],
    )
    .replace("</date_range>", &format!("</date_range>{errors}"));
    send_report(&service, &xml).await;
    browser.goto(&service.url("/dmarc/errors.example")).await;
    open_first_report(&browser, &service).await;
    let shown = browser
        .eval(
            "return { text: document.body.innerText, pwned: typeof window.__pwned,
                      images: document.images.length,
                      bytes: document.documentElement.outerHTML.length };",
        )
        .await;
    let text = shown["text"].as_str().unwrap();
    assert!(
        text.contains("… and 900 more errors from the reporter"),
        "{text}"
    );
    // The texts are shown as text: the first hundred, numbered 0 to 99.
    assert_eq!(text.matches("</script> 99").count(), 1, "{text}");
    assert!(!text.contains("</script> 100"), "{text}");
    assert_eq!(shown["pwned"], "undefined", "{shown}");
    assert_eq!(shown["images"], 0, "{shown}");
    assert!(shown["bytes"].as_u64().unwrap() < 200_000, "{shown}");
    screenshot(&browser, "dmarc-report-errors").await;

    browser.quit().await;
    let _ = tokio::time::timeout(Duration::from_secs(10), service.stop()).await;
}
