//! The pages, the JSON API and the security headers, driven over HTTP against a real SQLite
//! store.

mod common;

use authcheck_store::{Mailbox, NewResult};
use chrono::Duration;
use common::{PUBLIC_URL, Sample, TestSite};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

const SCRIPT_PAYLOAD: &str = "<script>window.__pwned=1</script>";
const ATTRIBUTE_PAYLOAD: &str = "\"><img src=x onerror=alert(1)>";

async fn get(url: &str) -> (StatusCode, HeaderMap, String) {
    let response = reqwest::get(url).await.expect("request the site");
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.text().await.expect("read the body"),
    )
}

async fn get_json(url: &str) -> (StatusCode, Value) {
    let response = reqwest::get(url).await.expect("request the API");
    let status = response.status();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "API answers are JSON"
    );
    (status, response.json().await.expect("a JSON body"))
}

fn assert_security_headers(headers: &HeaderMap) {
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
}

/// Inserts `count` results one second apart, oldest first, and returns their ids newest first.
async fn insert_series(site: &TestSite, count: usize, sample: &Sample) -> Vec<String> {
    let mut ids = Vec::new();
    for index in 0..count {
        let sample = Sample {
            subject: Some(format!("message {index}")),
            received_at: sample.received_at + Duration::seconds(index as i64),
            ..sample.clone()
        };
        ids.push(site.insert(sample.new_result()).await);
    }
    ids.reverse();
    ids
}

#[tokio::test]
async fn front_page_explains_the_addresses_and_shows_both_mailboxes() {
    let site = TestSite::start().await;
    site.insert(
        Sample {
            subject: Some("spf probe".into()),
            ..Sample::default()
        }
        .new_result(),
    )
    .await;
    let dkim = Sample {
        mailbox: Mailbox::Dkim,
        subject: Some("dkim probe".into()),
        verdict: "|~OK| dkim-pass".into(),
        ..Sample::default()
    };
    site.insert(dkim.new_result()).await;

    let (status, headers, body) = get(&site.url("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_security_headers(&headers);
    assert_eq!(headers["cache-control"], "no-store");
    for address in [
        "spf@tester.example",
        "dkim@tester.example",
        "spf@second.example",
        "dkim@second.example",
    ] {
        assert!(body.contains(address), "front page names {address}");
    }
    assert!(body.contains("|OK|") && body.contains("|~OK|") && body.contains("!! … !!"));
    assert!(body.contains("swaks --to spf@tester.example"));
    assert!(body.contains("|OK| spf-pass spf probe"));
    assert!(body.contains("|~OK| dkim-pass dkim probe"));
    assert!(!body.contains("<script"), "the front page needs no script");
}

#[tokio::test]
async fn mailbox_page_lists_its_results_newest_first_with_links_and_colours() {
    let site = TestSite::start().await;
    let base = Sample::default();
    let older = site
        .insert(
            Sample {
                verdict: "!! spf-fail !!".into(),
                ..base.clone()
            }
            .new_result(),
        )
        .await;
    let newer = site
        .insert(
            Sample {
                verdict: "|~OK| spf-pass".into(),
                received_at: base.received_at + Duration::minutes(1),
                ..base.clone()
            }
            .new_result(),
        )
        .await;
    let other_mailbox = site
        .insert(
            Sample {
                mailbox: Mailbox::Dkim,
                ..base.clone()
            }
            .new_result(),
        )
        .await;

    let (status, headers, body) = get(&site.url("/spf")).await;
    assert_eq!(status, StatusCode::OK);
    assert_security_headers(&headers);
    assert_eq!(headers["cache-control"], "no-store");
    let newer_at = body
        .find(&format!("href=\"/r/{newer}\""))
        .expect("the newer result links to its page");
    let older_at = body
        .find(&format!("href=\"/r/{older}\""))
        .expect("the older result links to its page");
    assert!(newer_at < older_at, "newest first");
    assert!(
        !body.contains(&other_mailbox),
        "a dkim@ result is not on the spf@ page"
    );
    assert!(body.contains("class=\"verdict partial\""));
    assert!(body.contains("class=\"verdict problem\""));
    assert!(body.contains("2026-11-23 12:35:56 UTC"));
    assert!(body.contains("bounce@sender.example") && body.contains("alice@sender.example"));
    assert!(
        body.contains("<script src=\"/static/app.js\""),
        "the list page loads the live-update script"
    );
    assert!(body.contains(&format!("data-after=\"{newer}\"")));

    let (status, _, body) = get(&site.url("/dkim")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&other_mailbox) && !body.contains(&newer));
}

#[tokio::test]
async fn mailbox_page_pages_through_older_results() {
    let site = TestSite::start().await;
    let ids = insert_series(&site, 53, &Sample::default()).await;

    let (_, _, first) = get(&site.url("/spf")).await;
    assert_eq!(first.matches("<tr data-id=").count(), 50);
    assert!(first.contains(&ids[0]) && first.contains(&ids[49]) && !first.contains(&ids[50]));
    let older_link = format!("/spf?before={}", ids[49]);
    assert!(
        first.contains(&format!("href=\"{older_link}\"")),
        "the first page links to older results"
    );

    let (status, _, second) = get(&site.url(&older_link)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second.matches("<tr data-id=").count(), 3);
    assert!(second.contains(&ids[50]) && second.contains(&ids[52]));
    assert!(
        !second.contains("?before="),
        "the last page has no older link"
    );
    assert!(
        !second.contains("id=\"live\""),
        "only the newest page updates live"
    );
}

#[tokio::test]
async fn mailbox_page_filters_by_sender_address_or_domain() {
    let site = TestSite::start().await;
    let ours = site.insert(Sample::default().new_result()).await;
    let theirs = site
        .insert(
            Sample {
                mail_from: "bounce@other.example".into(),
                header_from: Some("bob@other.example".into()),
                ..Sample::default()
            }
            .new_result(),
        )
        .await;

    for filter in [
        "sender.example",
        "ALICE@sender.example",
        "bounce@sender.example",
    ] {
        let (status, _, body) = get(&site.url(&format!("/spf?sender={filter}"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains(&ours) && !body.contains(&theirs),
            "filter {filter}"
        );
    }
    let (_, _, body) = get(&site.url("/spf?sender=other.example")).await;
    assert!(body.contains(&theirs) && !body.contains(&ours));
    assert!(
        body.contains("value=\"other.example\""),
        "the form keeps the filter"
    );
    assert!(
        body.contains("data-sender=\"other.example\""),
        "live updates keep the filter"
    );
}

#[tokio::test]
async fn bad_page_parameters_get_a_400_page() {
    let site = TestSite::start().await;
    site.insert(Sample::default().new_result()).await;
    let unknown = "0123456789abcdef0123456789abcdef";
    for query in [
        format!("before={unknown}"),
        "before=not-an-id".to_owned(),
        format!("sender={}", "a".repeat(400)),
    ] {
        let (status, headers, body) = get(&site.url(&format!("/spf?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_security_headers(&headers);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(body.contains("Bad request"), "{query}");
    }
    let (_, _, body) = get(&site.url(&format!("/dkim?before={unknown}"))).await;
    assert!(
        body.contains("before: no result with id"),
        "the page names the parameter"
    );
}

#[tokio::test]
async fn result_page_shows_the_whole_report_session_and_header_fields() {
    let site = TestSite::start().await;
    let id = site.insert(Sample::default().new_result()).await;

    let (status, headers, body) = get(&site.url(&format!("/r/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_security_headers(&headers);
    assert_eq!(headers["cache-control"], "no-store");
    for expected in [
        id.as_str(),
        "|OK| spf-pass hello tester",
        "!! dkim-fail !!",
        // SPF, its nested trace, and the HELO check
        "v=spf1 include:_spf.sender.example -all",
        "1 of 10",
        "0 of 2",
        "include:_spf.sender.example matched 192.0.2.25",
        "postmaster@mail.sender.example",
        "no SPF record at the HELO name",
        // DKIM
        "sel2026",
        "rsa-sha256",
        "relaxed/relaxed",
        "@sender.example",
        "from:subject:date",
        "rsa, 2048 bits",
        "the body hash does not match",
        "the signature uses l=",
        // DMARC and ARC
        "_dmarc.sender.example",
        "v=DMARC1; p=reject; adkim=s",
        "strict, not aligned",
        "relaxed, aligned",
        "SPF passes and aligns",
        // DMARC tree walk: each name asked, its answer, the organizational domains
        "DNS tree walk (RFC 9989)",
        "2 of at most 8 queries",
        "<td class=\"mono\">_dmarc.example</td><td>no record</td>",
        "sender.example is the shortest name on the walk",
        "the message has no ARC sets",
        "spf=pass smtp.mailfrom=sender.example",
        // Session
        "192.0.2.25 port 41234",
        "mail.sender.example (forward-confirmed)",
        "TLSv1.3 TLS13_AES_256_GCM_SHA384",
        "spf+tag@tester.example",
        "2026-11-23 12:34:56 UTC",
        // Header fields, folded and non-ASCII
        "from mail.sender.example\n\tby mx.tester.example",
        "caf\u{e9}",
        &format!("href=\"/r/{id}/raw\""),
    ] {
        assert!(
            body.contains(expected),
            "the result page shows {expected:?}"
        );
    }
    let outer = body
        .find("include:_spf.sender.example</span>")
        .expect("the include step");
    let nested = body[outer..]
        .find("<ul><li><span class=\"mono term\">ip4:192.0.2.0/24")
        .map(|at| outer + at);
    assert!(
        nested.is_some(),
        "the included record's steps are a nested list"
    );
    // Alignment is a fact of the MAIL FROM check, listed with its other facts (so that their
    // labels line up); the HELO check has none.
    let spf = &body[body.find("<h2>SPF</h2>").expect("the SPF section")..];
    let (mail_from_check, helo_check) = spf
        .split_once("<h3>HELO check</h3>")
        .expect("the HELO check");
    let mail_from_facts = &mail_from_check[..mail_from_check.find("</dl>").unwrap()];
    assert!(
        mail_from_facts.contains("<dt>Aligned with From</dt><dd>yes</dd>"),
        "{mail_from_facts}"
    );
    let helo_check = &helo_check[..helo_check.find("</section>").unwrap()];
    assert!(!helo_check.contains("Aligned with From"), "{helo_check}");
}

#[tokio::test]
async fn raw_message_downloads_exactly_as_received() {
    let site = TestSite::start().await;
    let result = Sample::default().new_result();
    let expected = result.raw_message.clone();
    let id = site.insert(result).await;

    let response = reqwest::get(site.url(&format!("/r/{id}/raw")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "message/rfc822");
    assert_eq!(
        response.headers()["content-disposition"],
        format!("attachment; filename=\"{id}.eml\"").as_str()
    );
    assert_security_headers(response.headers());
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        expected.as_slice()
    );
}

#[tokio::test]
async fn unknown_results_and_paths_are_404_pages() {
    let site = TestSite::start().await;
    for path in [
        "/r/0123456789abcdef0123456789abcdef",
        "/r/0123456789abcdef0123456789abcdef/raw",
        "/r/<nope>",
    ] {
        let (status, headers, body) = get(&site.url(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_security_headers(&headers);
        assert!(body.contains("does not exist or has expired"), "{path}");
    }
    let (status, headers, body) = get(&site.url("/no/such/page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_security_headers(&headers);
    assert!(body.contains("Not found"));
}

#[tokio::test]
async fn hostile_message_fields_are_escaped_on_every_page() {
    let site = TestSite::start().await;
    let hostile = Sample {
        subject: Some(format!("{SCRIPT_PAYLOAD} {ATTRIBUTE_PAYLOAD}")),
        header_from: Some(format!("{ATTRIBUTE_PAYLOAD}@sender.example")),
        mail_from: format!("{SCRIPT_PAYLOAD}@sender.example"),
        helo: ATTRIBUTE_PAYLOAD.into(),
        verdict: "!! spf-fail !!".into(),
        ..Sample::default()
    };
    let id = site.insert(hostile.new_result()).await;

    for path in [
        "/".to_owned(),
        "/spf".to_owned(),
        format!("/r/{id}"),
        format!("/spf?sender={id}"),
    ] {
        let (status, _, body) = get(&site.url(&path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            !body.contains("<script>window"),
            "{path} must not contain a live script tag"
        );
        assert!(
            !body.contains("<img src=x"),
            "{path} must not contain a live img tag"
        );
        assert!(
            !body.contains("\"><img"),
            "{path} must not let a value close an attribute"
        );
    }
    let (_, _, list) = get(&site.url("/spf")).await;
    assert!(
        list.contains("&#60;script&#62;window.__pwned=1&#60;/script&#62;"),
        "the Subject is shown as text"
    );
    let (_, _, detail) = get(&site.url(&format!("/r/{id}"))).await;
    assert!(
        detail.contains("&#60;img src=x onerror=alert(1)&#62;"),
        "the HELO is shown as text"
    );

    let (_, _, filtered) =
        get(&site.url(&format!("/spf?sender={}", urlencode(ATTRIBUTE_PAYLOAD)))).await;
    assert!(
        !filtered.contains("\"><img"),
        "the sender filter is escaped back into the form"
    );
}

fn urlencode(text: &str) -> String {
    text.bytes().map(|byte| format!("%{byte:02X}")).collect()
}

#[tokio::test]
async fn a_report_from_another_version_is_shown_as_raw_json() {
    let site = TestSite::start().await;
    let result = NewResult {
        report: serde_json::value::to_raw_value(
            &serde_json::json!({ "future_field": "<b>kept</b>" }),
        )
        .unwrap(),
        ..Sample::default().new_result()
    };
    let id = site.insert(result).await;
    let (status, _, body) = get(&site.url(&format!("/r/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("future_field") && body.contains("&#60;b&#62;kept&#60;/b&#62;"));
}

#[tokio::test]
async fn api_result_objects_have_every_documented_field() {
    let site = TestSite::start().await;
    let id = site.insert(Sample::default().new_result()).await;

    let response = reqwest::get(site.url(&format!("/api/v1/results/{id}")))
        .await
        .unwrap();
    assert_security_headers(response.headers());
    assert_eq!(response.headers()["cache-control"], "no-store");
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["id"], id.as_str());
    assert_eq!(result["received_at"], "2026-11-23T12:34:56.000000Z");
    assert_eq!(result["mailbox"], "spf");
    assert_eq!(result["client_ip"], "192.0.2.25");
    assert_eq!(result["helo"], "mail.sender.example");
    assert_eq!(result["mail_from"], "bounce@sender.example");
    assert_eq!(result["header_from"], "alice@sender.example");
    assert_eq!(result["subject"], "hello tester");
    assert_eq!(result["verdict"], "|OK| spf-pass");
    assert_eq!(result["prefixed_subject"], "|OK| spf-pass hello tester");
    assert_eq!(result["spf"]["result"], "pass");
    assert_eq!(result["spf"]["domain"], "sender.example");
    assert_eq!(result["spf"]["aligned"], true);
    assert_eq!(
        result["spf"]["trace"][0]["nested"][0]["term"],
        "ip4:192.0.2.0/24"
    );
    assert_eq!(result["dkim"][0]["domain"], "sender.example");
    assert_eq!(result["dkim"][0]["selector"], "sel2026");
    assert_eq!(result["dkim"][0]["algorithm"], "rsa-sha256");
    assert_eq!(result["dkim"][0]["result"], "fail");
    assert_eq!(result["dkim"][0]["reason"], "the body hash does not match");
    assert_eq!(result["dkim"][0]["aligned"], false);
    assert_eq!(result["dmarc"]["result"], "pass");
    assert_eq!(result["dmarc"]["queries"][1]["name"], "_dmarc.example");
    assert_eq!(result["dmarc"]["queries"][1]["answer"], "no_record");
    assert_eq!(result["dmarc"]["walk_queries"], 2);
    assert_eq!(
        result["dmarc"]["organizational_domains"][0]["organizational_domain"],
        "sender.example"
    );
    assert_eq!(result["arc"]["result"], "none");
    assert!(
        result["authentication_results"]
            .as_str()
            .unwrap()
            .starts_with("Authentication-Results:")
    );
    let session = &result["session"];
    assert_eq!(session["client_ip"], "192.0.2.25");
    assert_eq!(session["client_port"], 41234);
    assert_eq!(session["client_ptr"], "mail.sender.example");
    assert_eq!(session["client_ptr_confirmed"], true);
    assert_eq!(session["helo"], "mail.sender.example");
    assert_eq!(session["tls_version"], "TLSv1.3");
    assert_eq!(session["tls_cipher"], "TLS13_AES_256_GCM_SHA384");
    assert_eq!(session["mail_from"], "bounce@sender.example");
    assert_eq!(session["recipient"], "spf+tag@tester.example");
    assert!(session["size"].as_u64().unwrap() > 0);
    assert_eq!(result["url"], format!("{PUBLIC_URL}/r/{id}").as_str());

    let (status, listed) = get_json(&site.url("/api/v1/results?mailbox=spf")).await;
    assert_eq!(status, StatusCode::OK);
    let item = &listed["results"][0];
    // A listed result has every key of the single result; its report parts are the
    // summary: the same paths with fewer fields, each with the single result's value.
    for key in result.as_object().unwrap().keys() {
        assert!(item.get(key).is_some(), "the listed result lacks {key}");
    }
    assert_within(item, &result, "");
    for path in [
        "/spf/result",
        "/spf/domain",
        "/spf/aligned",
        "/dkim/0/domain",
        "/dkim/0/selector",
        "/dkim/0/algorithm",
        "/dkim/0/result",
        "/dkim/0/aligned",
        "/dmarc/result",
        "/dmarc/policy",
        "/arc/result",
        "/authentication_results",
        "/session/recipient",
    ] {
        assert!(
            item.pointer(path).is_some(),
            "the listed result lacks {path}"
        );
    }
    assert_eq!(item["dkim_total"], 1);
    assert!(
        item["spf"].get("trace").is_none(),
        "the listed result has no trace"
    );
    assert_eq!(listed["next_before"], Value::Null);
}

/// Every value in `part` (but the `*_total` counts) is at the same place in `whole`.
fn assert_within(part: &Value, whole: &Value, path: &str) {
    match part {
        Value::Object(fields) => {
            for (key, value) in fields {
                if key.ends_with("_total") {
                    continue;
                }
                let inner = whole
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}/{key} is not in the single result"));
                assert_within(value, inner, &format!("{path}/{key}"));
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                assert_within(value, &whole[i], &format!("{path}/{i}"));
            }
        }
        leaf => assert_eq!(leaf, whole, "{path}"),
    }
}

#[tokio::test]
async fn api_pages_with_before_and_next_before() {
    let site = TestSite::start().await;
    let ids = insert_series(&site, 5, &Sample::default()).await;
    site.insert(
        Sample {
            mailbox: Mailbox::Dkim,
            ..Sample::default()
        }
        .new_result(),
    )
    .await;

    let ids_of = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, first) = get_json(&site.url("/api/v1/results?mailbox=spf&limit=2")).await;
    assert_eq!(ids_of(&first), ids[0..2]);
    assert_eq!(first["next_before"], ids[1].as_str());

    let (_, second) = get_json(&site.url(&format!(
        "/api/v1/results?mailbox=spf&limit=2&before={}",
        ids[1]
    )))
    .await;
    assert_eq!(ids_of(&second), ids[2..4]);
    assert_eq!(second["next_before"], ids[3].as_str());

    let (_, last) = get_json(&site.url(&format!(
        "/api/v1/results?mailbox=spf&limit=2&before={}",
        ids[3]
    )))
    .await;
    assert_eq!(ids_of(&last), ids[4..5]);
    assert_eq!(last["next_before"], Value::Null);

    let (_, default_limit) = get_json(&site.url("/api/v1/results")).await;
    assert_eq!(
        default_limit["results"].as_array().unwrap().len(),
        6,
        "no mailbox lists both"
    );
}

#[tokio::test]
async fn api_filters_by_sender() {
    let site = TestSite::start().await;
    let ours = site.insert(Sample::default().new_result()).await;
    site.insert(
        Sample {
            mail_from: "x@other.example".into(),
            header_from: Some("y@other.example".into()),
            ..Sample::default()
        }
        .new_result(),
    )
    .await;
    let (_, page) = get_json(&site.url("/api/v1/results?sender=SENDER.example")).await;
    let results = page["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["id"], ours.as_str());
}

#[tokio::test]
async fn api_rejects_bad_parameters_naming_them() {
    let site = TestSite::start().await;
    let unknown = "0123456789abcdef0123456789abcdef";
    for (query, parameter) in [
        ("mailbox=smtp", "mailbox"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        (&format!("before={unknown}") as &str, "before"),
        ("before=zz", "before"),
    ] {
        let (status, body) = get_json(&site.url(&format!("/api/v1/results?{query}"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["parameter"], parameter, "{query}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{parameter}:")),
            "{query}: {body}"
        );
    }
    let (status, body) = get_json(&site.url("/api/v1/results?limit=200")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "200 is the largest allowed limit: {body}"
    );

    let (status, body) = get_json(&site.url(&format!("/api/v1/results/{unknown}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["error"],
        format!("no result with id {unknown}").as_str()
    );
}

#[tokio::test]
async fn healthz_follows_the_database_and_a_closed_store_gives_503() {
    let site = TestSite::start().await;
    let (status, _, body) = get(&site.url("/healthz")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));

    site.store.close().await;
    let (status, headers, _) = get(&site.url("/healthz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_security_headers(&headers);
    let (status, _, body) = get(&site.url("/spf")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("try again"));
    let (status, body) = get_json(&site.url("/api/v1/results")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().unwrap().contains("unavailable"));
}

#[tokio::test]
async fn static_assets_are_served_with_their_types_and_no_inline_code_exists() {
    let site = TestSite::start().await;
    let (status, headers, script) = get(&site.url("/static/app.js")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert_security_headers(&headers);
    assert!(script.contains("EventSource") && !script.contains("innerHTML"));
    let (status, headers, _) = get(&site.url("/static/style.css")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );

    let id = site.insert(Sample::default().new_result()).await;
    for path in ["/".to_owned(), "/spf".to_owned(), format!("/r/{id}")] {
        let (_, _, body) = get(&site.url(&path)).await;
        assert!(
            !body.contains("<style") && !body.contains(" style="),
            "{path} has no inline style"
        );
        assert!(!body.contains("<script>"), "{path} has no inline script");
    }
}
