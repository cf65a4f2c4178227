//! The pages in headless Chromium, end to end: `/spf` is open while a message arrives over SMTP
//! at the real service; the result appears without a reload. Every field a message controls is
//! filled with script and markup; none of it runs, none of it becomes an element, and the page
//! keeps its layout.

mod support;

use std::time::Duration;

use authcheck_testdns::TestDns;
use authcheck_testkit::browser::Browser;
use authcheck_testkit::{SignOptions, TestKey, publish_keys, sign};
use serde_json::Value;
use support::{Service, send};

/// Script and markup that would set `window.__pwned` or add an element if it were ever
/// interpreted instead of shown as text.
const PAYLOAD: &str =
    "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=1</script><b id=injected>b</b>";

const APPEAR: Duration = Duration::from_secs(5);

async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    dns.add_txt("pass.test", "v=spf1 ip4:127.0.0.1 -all");
    publish_keys(&dns, "pass.test");
    // A failing domain whose explanation (exp=) is markup: it is shown on the result page.
    dns.add_txt("exp.test", "v=spf1 -all exp=why.exp.test");
    dns.add_txt("why.exp.test", PAYLOAD);
    dns
}

/// A message whose every header field that the pages show carries the payload.
fn hostile_message() -> Vec<u8> {
    let plain = format!(
        "From: \"{PAYLOAD}\" <a@pass.test>\r\nTo: spf@tester.test\r\nSubject: {PAYLOAD}\r\n\
         X-<b>Name</b>: {PAYLOAD}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <x@pass.test>\r\n\r\n{PAYLOAD}\r\n"
    );
    // A signature whose tags (s=, and a made-up tag) carry markup, next to a valid one.
    let mut options = SignOptions::new("pass.test", TestKey::Ed25519);
    options.selector = Some("<i>sel</i>".into());
    let once = sign(plain.as_bytes(), &options);
    sign(&once, &SignOptions::new("pass.test", TestKey::Ed25519))
}

/// The elements the payloads' markup would make.
const INJECTED: &str = "#injected, b, i";

#[tokio::test]
#[cfg_attr(
    not(browser_tests),
    ignore = "needs Chromium: /usr/bin/chromium and /usr/bin/chromedriver were not installed when the tests were built (scripts/setup-test-deps installs them)"
)]
async fn a_result_appears_live_and_hostile_fields_stay_text() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let browser = Browser::launch().await;

    browser.goto(&service.url("/spf")).await;
    assert!(
        browser
            .wait_until("document.querySelector('#live') !== null", APPEAR)
            .await,
        "the list page loads"
    );
    let before = browser
        .eval("return document.querySelectorAll('#live tbody tr').length;")
        .await;
    assert_eq!(before, 0);

    let hostile_mail_from = "\"<img src=x onerror=window.__pwned=1>\"@pass.test";
    let reply = send(
        &service,
        &format!("x{PAYLOAD}"),
        hostile_mail_from,
        &["spf@tester.test"],
        &hostile_message(),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = reply.stored()[0].0.clone();

    let row = format!("document.querySelector('#live tbody tr[data-id=\"{id}\"]') !== null");
    assert!(
        browser.wait_until(&row, APPEAR).await,
        "the new result appears without a reload"
    );
    let subject = browser
        .eval("return document.querySelector('#live tbody tr td.subject a').textContent;")
        .await;
    assert_eq!(
        subject,
        Value::from(format!("|OK| spf-pass {PAYLOAD}")),
        "the Subject is shown as text"
    );
    browser
        .assert_hostile_text_inert(INJECTED, "/spf after the live update")
        .await;
    let scripts = browser
        .eval("return Array.from(document.scripts).map(s => s.getAttribute('src'));")
        .await;
    assert_eq!(
        scripts,
        Value::from(vec!["/static/app.js"]),
        "only the site's own script"
    );

    // The same page loaded afresh renders the row on the server side.
    browser.goto(&service.url("/spf")).await;
    browser
        .assert_hostile_text_inert(INJECTED, "/spf reloaded")
        .await;

    // The result page shows every hostile field: From, Subject, MAIL FROM, header names and
    // values, DKIM tags, the HELO.
    browser.goto(&service.url(&format!("/r/{id}"))).await;
    browser.assert_hostile_text_inert(INJECTED, "/r/{id}").await;
    let text = browser.eval("return document.body.textContent;").await;
    let text = text.as_str().unwrap_or_default();
    assert!(
        text.contains("<script>window.__pwned=1</script>"),
        "the payload is shown as text"
    );
    assert!(
        text.contains("X-<b>Name</b>"),
        "a hostile header name is shown as text"
    );
    assert!(
        text.contains("<i>sel</i>"),
        "a hostile DKIM selector is shown as text"
    );
    assert!(
        text.contains(hostile_mail_from),
        "a hostile MAIL FROM is shown as text"
    );

    // A failing SPF check shows the domain's explanation, which is markup here.
    let reply = send(
        &service,
        "helo.test",
        "a@exp.test",
        &["spf@tester.test"],
        &hostile_message(),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let failed = &reply.stored()[0].0;
    browser.goto(&service.url(&format!("/r/{failed}"))).await;
    browser
        .assert_hostile_text_inert(INJECTED, "/r/{id} with an SPF explanation")
        .await;
    let text = browser.eval("return document.body.textContent;").await;
    assert!(
        text.as_str().unwrap_or_default().contains("onerror"),
        "the explanation is shown as text"
    );

    browser.quit().await;
}
