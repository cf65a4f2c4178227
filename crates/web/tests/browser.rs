//! The result list in a real headless Chromium: a new result appears at the top without a
//! reload, a hostile Subject is shown as text without running, and a long one leaves the
//! addresses beside it whole.

mod common;

use std::time::Duration;

use authcheck_testkit::browser::Browser;
use common::{Sample, TestSite};
use serde_json::Value;

/// Far longer than a live update needs, so a loaded machine does not fail the test.
const APPEAR_TIMEOUT: Duration = Duration::from_secs(15);

const HOSTILE_SUBJECT: &str = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=1</script>\"><b id=injected>bold</b>";

#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn a_new_hostile_result_appears_live_as_plain_text() {
    let site = TestSite::start().await;
    let browser = Browser::launch().await;
    let shown = site
        .insert(
            Sample {
                subject: Some("already here".into()),
                ..Sample::default()
            }
            .new_result(),
        )
        .await;

    browser.goto(&site.url("/spf")).await;
    let first_row =
        format!("document.querySelector('#live tbody tr[data-id=\"{shown}\"]') !== null");
    assert!(
        browser.wait_until(&first_row, APPEAR_TIMEOUT).await,
        "the list shows the stored result"
    );

    let hostile = Sample {
        subject: Some(HOSTILE_SUBJECT.into()),
        verdict: "!! spf-fail !!".into(),
        ..Sample::default()
    };
    let id = site.insert(hostile.new_result()).await;
    let new_row = format!("document.querySelector('#live tbody tr[data-id=\"{id}\"]') !== null");
    assert!(
        browser.wait_until(&new_row, APPEAR_TIMEOUT).await,
        "the new result appears without a reload"
    );

    let row = browser
        .eval(
            "const row = document.querySelector('#live tbody tr');
             const verdict = row.querySelector('td.subject a');
             return { id: row.dataset.id, subject: verdict.textContent, className: verdict.className,
                      href: verdict.getAttribute('href'), rows: document.querySelectorAll('#live tbody tr').length };",
        )
        .await;
    assert_eq!(row["id"], id.as_str(), "the new result is the top row");
    assert_eq!(
        row["subject"],
        format!("!! spf-fail !! {HOSTILE_SUBJECT}").as_str(),
        "the Subject is shown as text"
    );
    assert_eq!(row["className"], "verdict problem");
    assert_eq!(row["href"], format!("/r/{id}").as_str());
    assert_eq!(row["rows"], 2);

    let injected = browser
        .eval(
            "return { pwned: typeof window.__pwned, images: document.images.length,
                      bold: document.getElementById('injected') !== null,
                      scripts: Array.from(document.scripts).map(s => s.getAttribute('src')) };",
        )
        .await;
    assert_eq!(injected["pwned"], "undefined", "no injected script ran");
    assert_eq!(injected["images"], 0, "no injected img element");
    assert_eq!(injected["bold"], false, "no injected element at all");
    assert_eq!(
        injected["scripts"],
        Value::from(vec!["/static/app.js"]),
        "only the site's own script"
    );

    // The result page the new row links to renders the same Subject as text too.
    browser.goto(&site.url(&format!("/r/{id}"))).await;
    let detail = browser
        .eval("return { pwned: typeof window.__pwned, images: document.images.length, scripts: document.scripts.length };")
        .await;
    assert_eq!(detail["pwned"], "undefined");
    assert_eq!(detail["images"], 0);
    assert_eq!(detail["scripts"], 0);

    browser.quit().await;
}

/// A long Subject takes the room it needs but leaves the sender columns enough for an
/// everyday address on a laptop-sized window: the address is not broken across lines. On a
/// phone-sized one each result is a card, the Subject in view.
#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn addresses_stay_whole_beside_a_long_subject_and_phones_get_cards() {
    let site = TestSite::start().await;
    site.insert(
        Sample {
            mail_from: "newsletter@example.org".into(),
            header_from: Some("updates@example.org".into()),
            subject: Some("Quarterly report and outlook ".repeat(12)),
            ..Sample::default()
        }
        .new_result(),
    )
    .await;
    let browser = Browser::launch().await;
    let _ = browser.client().set_window_size(1000, 900).await;
    browser.goto(&site.url("/spf")).await;
    let (cells, broken) = browser
        .words_broken_across_lines("#live tbody td.mono", 22)
        .await;
    assert_eq!(cells, 2, "MAIL FROM and From");
    assert!(
        broken.is_empty(),
        "addresses broken across lines: {broken:?}"
    );

    // On a phone the result is a card whose Subject is in view, not a table to scroll.
    let _ = browser.client().set_window_size(420, 900).await;
    let scrolling = browser.scrolling_sideways("#live .table-wrap").await;
    assert!(
        scrolling.is_empty(),
        "the list scrolls sideways: {scrolling:?}"
    );
    let phone = browser
        .eval(
            "return { subject_right: document.querySelector('#live tbody td.subject')
                        .getBoundingClientRect().right,
                      width: document.documentElement.clientWidth };",
        )
        .await;
    assert!(
        phone["subject_right"].as_f64() <= phone["width"].as_f64(),
        "the Subject is in view: {phone}"
    );
    browser.quit().await;
}
