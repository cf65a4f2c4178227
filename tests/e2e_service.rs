//! `authcheck serve` end to end: the real binary with a loopback DNS server, test messages over
//! real SMTP, results read back through the JSON API and the pages.

mod support;

use std::time::Duration;

use authcheck_testdns::{Behaviour, TestDns};
use authcheck_testkit::{SignOptions, TestKey, message, publish_keys, sign};
use support::{RawSmtp, Service, ServiceOptions, eventually, send, send_and_fetch};

/// Sender domains, one per SPF outcome, all for client 127.0.0.1.
async fn zone() -> TestDns {
    let dns = TestDns::start().await;
    let allow = "v=spf1 ip4:127.0.0.1 -all";
    for domain in ["pass.test", "bounce.test", "esp.test", "signed.test"] {
        dns.add_txt(domain, allow);
    }
    dns.add_txt("fail.test", "v=spf1 -all");
    dns.add_txt("softfail.test", "v=spf1 ~all");
    dns.add_txt("neutral.test", "v=spf1 ?all");
    dns.add_a("none.test", "192.0.2.1".parse().unwrap());
    dns.add_txt("permerror.test", "v=spf1 -all");
    dns.add_txt("permerror.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.set_behaviour("temperror.test", Behaviour::ServFail);
    dns.add_txt("helo.test", allow);
    dns.add_a("helo.test", "127.0.0.1".parse().unwrap());
    for domain in ["pass.test", "signed.test", "esp.test", "other.test"] {
        publish_keys(&dns, domain);
    }
    dns.set_behaviour("rsa2048._domainkey.dnsfail.test", Behaviour::ServFail);
    dns
}

fn plain(from: &str) -> Vec<u8> {
    message(from, "Test", "Hello.\r\n")
}

fn signed(from: &str, d: &str) -> Vec<u8> {
    sign(&plain(from), &SignOptions::new(d, TestKey::Rsa2048))
}

#[tokio::test]
async fn every_spf_verdict_reaches_the_api() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a@pass.test", plain("a@pass.test"), "|OK| spf-pass"),
        (
            "bounce@bounce.test",
            signed("a@signed.test", "signed.test"),
            "|~OK| spf-pass",
        ),
        (
            "bounce@bounce.test",
            plain("a@other.test"),
            "!! spf-diff !!",
        ),
        ("a@fail.test", plain("a@fail.test"), "!! spf-fail !!"),
        (
            "a@softfail.test",
            plain("a@softfail.test"),
            "!! spf-softfail !!",
        ),
        (
            "a@neutral.test",
            plain("a@neutral.test"),
            "!! spf-neutral !!",
        ),
        ("a@none.test", plain("a@none.test"), "!! spf-none !!"),
        (
            "a@permerror.test",
            plain("a@permerror.test"),
            "!! spf-permerror !!",
        ),
        (
            "a@temperror.test",
            plain("a@temperror.test"),
            "!! spf-temperror !!",
        ),
    ];
    for (mail_from, msg, verdict) in cases {
        let result =
            send_and_fetch(&service, "helo.test", mail_from, "spf@tester.test", &msg).await;
        assert_eq!(
            result["verdict"], verdict,
            "MAIL FROM {mail_from}: {result:#}"
        );
        assert_eq!(result["mailbox"], "spf");
        assert_eq!(result["mail_from"], mail_from);
        assert_eq!(result["prefixed_subject"], format!("{verdict} Test"));
        assert_eq!(result["subject"], "Test");
        assert_eq!(result["client_ip"], "127.0.0.1");
    }
}

#[tokio::test]
async fn every_dkim_verdict_reaches_the_api() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let mut tampered = signed("a@signed.test", "signed.test");
    let last = tampered.len() - 3;
    tampered[last] = b'X';
    let mut unknown_selector = SignOptions::new("signed.test", TestKey::Rsa2048);
    unknown_selector.selector = Some("missing".into());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bounce@bounce.test",
            signed("a@signed.test", "signed.test"),
            "|OK| dkim-pass",
        ),
        (
            "a@pass.test",
            signed("a@pass.test", "esp.test"),
            "|~OK| dkim-pass",
        ),
        (
            "bounce@bounce.test",
            signed("a@other.test", "esp.test"),
            "!! dkim-diff !!",
        ),
        ("a@pass.test", plain("a@pass.test"), "!! dkim-none !!"),
        ("a@pass.test", tampered, "!! dkim-fail !!"),
        (
            "a@pass.test",
            sign(&plain("a@signed.test"), &unknown_selector),
            "!! dkim-invalid !!",
        ),
        (
            "a@pass.test",
            signed("a@dnsfail.test", "dnsfail.test"),
            "!! dkim-temperror !!",
        ),
    ];
    for (mail_from, msg, verdict) in cases {
        let result =
            send_and_fetch(&service, "helo.test", mail_from, "dkim@tester.test", &msg).await;
        assert_eq!(result["verdict"], verdict, "{result:#}");
        assert_eq!(result["mailbox"], "dkim");
    }
}

#[tokio::test]
async fn one_message_to_both_mailboxes_gives_two_results() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let message = signed("a@pass.test", "pass.test");
    let reply = send(
        &service,
        "helo.test",
        "a@pass.test",
        &["spf@tester.test", "DKIM+mine@Tester.Test"],
        &message,
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let stored = reply.stored();
    assert_eq!(stored.len(), 2, "{reply:?}");
    // The store keeps one copy of the message; each result still downloads it.
    for (id, _) in &stored {
        let raw = service.get(&format!("/r/{id}/raw")).await;
        assert_eq!(raw.status(), 200, "/r/{id}/raw");
        assert_eq!(raw.bytes().await.unwrap().as_ref(), message.as_slice());
    }
    for (id, url) in &stored {
        assert_eq!(url, &format!("{}/r/{id}", service.public_url));
        assert!(id.len() >= 24, "ids carry at least 96 random bits: {id}");
    }
    let spf = service
        .get_json(&format!("/api/v1/results/{}", stored[0].0))
        .await;
    let dkim = service
        .get_json(&format!("/api/v1/results/{}", stored[1].0))
        .await;
    assert_eq!(spf["verdict"], "|OK| spf-pass");
    assert_eq!(dkim["verdict"], "|OK| dkim-pass");
    assert_eq!(
        dkim["session"]["recipient"], "DKIM+mine@Tester.Test",
        "the +tag is kept"
    );
}

#[tokio::test]
async fn relaying_and_unknown_mailboxes_are_refused() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let (mut smtp, _) = RawSmtp::connect(service.smtp).await;
    assert_eq!(smtp.command("EHLO helo.test").await.code, 250);
    assert_eq!(smtp.command("MAIL FROM:<a@pass.test>").await.code, 250);
    for relay in [
        "someone@example.com",
        "spf@other.test",
        "spf@[127.0.0.1]",
        "spf%other.test@tester.test",
    ] {
        let reply = smtp.command(&format!("RCPT TO:<{relay}>")).await;
        assert_eq!(reply.code, 550, "{relay}: {reply:?}");
        assert!(reply.text().starts_with("5.7.1"), "{relay}: {reply:?}");
    }
    let reply = smtp.command("RCPT TO:<postmaster@tester.test>").await;
    assert_eq!(reply.code, 550, "{reply:?}");
    assert!(reply.text().starts_with("5.1.1"), "{reply:?}");
    let list = service.get_json("/api/v1/results?mailbox=spf").await;
    assert_eq!(list["results"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn an_oversize_message_is_refused_and_not_stored() {
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec!["--max-message-size".into(), "4096".into()];
    let service = Service::start_with(options).await;
    let big = message(
        "a@pass.test",
        "Big",
        &"x".repeat(78).repeat(100).replace("xx", "x\r\n"),
    );
    let (mut smtp, _) = RawSmtp::connect(service.smtp).await;
    let ehlo = smtp.command("EHLO helo.test").await;
    assert!(ehlo.lines.iter().any(|l| l == "SIZE 4096"), "{ehlo:?}");
    assert_eq!(
        smtp.command("MAIL FROM:<a@pass.test> SIZE=999999")
            .await
            .code,
        552
    );
    let reply = smtp
        .send("helo.test", "a@pass.test", &["spf@tester.test"], &big)
        .await;
    assert_eq!(reply.code, 552, "{reply:?}");
    assert!(reply.text().starts_with("5.3.4"), "{reply:?}");
    let list = service.get_json("/api/v1/results").await;
    assert_eq!(
        list["results"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let (mut smtp, _) = RawSmtp::connect(service.smtp).await;
    let ehlo = smtp.command("EHLO helo.test").await;
    assert!(ehlo.lines.iter().any(|l| l == "PIPELINING"), "{ehlo:?}");
    smtp.write(b"MAIL FROM:<a@pass.test>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<spf@tester.test>\r\nDATA\r\n")
        .await;
    let codes = [
        smtp.read_reply().await.code,
        smtp.read_reply().await.code,
        smtp.read_reply().await.code,
        smtp.read_reply().await.code,
    ];
    assert_eq!(codes, [250, 550, 250, 354]);
    smtp.write(&support::dot_stuffed(&plain("a@pass.test")))
        .await;
    let reply = smtp.read_reply().await;
    assert_eq!(reply.code, 250, "{reply:?}");
}

#[tokio::test]
async fn bdat_chunks_make_one_message() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let msg = signed("a@pass.test", "pass.test");
    let (first, second) = msg.split_at(msg.len() / 2);
    let (mut smtp, _) = RawSmtp::connect(service.smtp).await;
    let ehlo = smtp.command("EHLO helo.test").await;
    assert!(ehlo.lines.iter().any(|l| l == "CHUNKING"), "{ehlo:?}");
    assert_eq!(smtp.command("MAIL FROM:<a@pass.test>").await.code, 250);
    assert_eq!(smtp.command("RCPT TO:<dkim@tester.test>").await.code, 250);
    smtp.write(format!("BDAT {}\r\n", first.len()).as_bytes())
        .await;
    smtp.write(first).await;
    assert_eq!(smtp.read_reply().await.code, 250);
    smtp.write(format!("BDAT {} LAST\r\n", second.len()).as_bytes())
        .await;
    smtp.write(second).await;
    let reply = smtp.read_reply().await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = &reply.stored()[0].0;
    let result = service.get_json(&format!("/api/v1/results/{id}")).await;
    assert_eq!(
        result["verdict"], "|OK| dkim-pass",
        "the chunks were joined byte for byte"
    );
    let raw = service
        .get(&format!("/r/{id}/raw"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(raw.as_ref(), msg.as_slice());
}

#[tokio::test]
async fn the_null_reverse_path_checks_the_helo_identity() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let result = send_and_fetch(
        &service,
        "helo.test",
        "",
        "spf@tester.test",
        &plain("a@helo.test"),
    )
    .await;
    assert_eq!(result["mail_from"], "");
    assert_eq!(result["spf"]["domain"], "helo.test");
    assert_eq!(result["spf"]["result"], "pass");
    assert_eq!(result["verdict"], "|OK| spf-pass");
}

#[tokio::test]
async fn starttls_is_offered_and_recorded() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let mut client =
        mail_send::SmtpClientBuilder::new("127.0.0.1".to_string(), service.smtp.port())
            .unwrap()
            .implicit_tls(false)
            .allow_invalid_certs()
            .helo_host("helo.test")
            .connect()
            .await
            .expect("STARTTLS with the self-signed certificate");
    let msg = plain("a@pass.test");
    client
        .mail_from("a@pass.test", &Default::default())
        .await
        .unwrap();
    client
        .rcpt_to("spf@tester.test", &Default::default())
        .await
        .unwrap();
    client
        .data(&msg)
        .await
        .expect("the message is accepted over TLS");
    let _ = client.quit().await;
    let list = service.get_json("/api/v1/results?mailbox=spf").await;
    let result = &list["results"][0];
    assert!(
        result["session"]["tls_version"]
            .as_str()
            .unwrap_or("")
            .starts_with("TLS"),
        "{result:#}"
    );
    assert!(result["session"]["tls_cipher"].is_string(), "{result:#}");
}

#[tokio::test]
async fn results_survive_a_restart() {
    let dns = zone().await;
    let dir = tempfile::tempdir().unwrap();
    let mut options = ServiceOptions::new(&dns);
    options.data_dir = Some(dir.path().to_path_buf());
    let service = Service::start_with(options.clone()).await;
    let result = send_and_fetch(
        &service,
        "helo.test",
        "a@pass.test",
        "spf@tester.test",
        &plain("a@pass.test"),
    )
    .await;
    let id = result["id"].as_str().unwrap().to_string();
    let status = service.stop().await;
    assert!(status.success(), "SIGTERM gives a clean exit: {status}");
    let service = Service::start_with(options).await;
    let again = service.get_json(&format!("/api/v1/results/{id}")).await;
    assert_eq!(again["verdict"], "|OK| spf-pass");
    assert_eq!(again["id"], id.as_str());
}

#[tokio::test]
async fn the_retention_purge_deletes_old_results() {
    let dns = zone().await;
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec!["--retention".into(), "2s".into()];
    let service = Service::start_with(options).await;
    let result = send_and_fetch(
        &service,
        "helo.test",
        "a@pass.test",
        "spf@tester.test",
        &plain("a@pass.test"),
    )
    .await;
    let path = format!("/api/v1/results/{}", result["id"].as_str().unwrap());
    let gone = eventually(Duration::from_secs(20), || async {
        (service.get(&path).await.status() == reqwest::StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the result outlived its retention");
}

#[tokio::test]
async fn pages_show_the_result_and_the_raw_message() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let msg = message("a@pass.test", "<script>alert(1)</script>", "Hello.\r\n");
    let result = send_and_fetch(
        &service,
        "helo.test",
        "a@pass.test",
        "spf@tester.test",
        &msg,
    )
    .await;
    let id = result["id"].as_str().unwrap();
    // The DMARC tree walk from the From domain, as the API gives it.
    assert_eq!(result["dmarc"]["queries"][0]["name"], "_dmarc.pass.test");
    assert_eq!(result["dmarc"]["queries"][1]["name"], "_dmarc.test");
    assert_eq!(result["dmarc"]["walk_queries"], 2);

    let page = service.get_text("/spf").await;
    assert!(page.contains(id), "the list links the result");
    assert!(page.contains("alert(1)"), "the hostile Subject is shown");
    assert!(
        !page.contains("<script>alert(1)"),
        "the hostile Subject is not markup"
    );

    let response = service.get(&format!("/r/{id}")).await;
    assert!(response.headers().contains_key("content-security-policy"));
    let detail = response.text().await.unwrap();
    assert!(detail.contains("|OK| spf-pass"));
    assert!(detail.contains("Authentication-Results"));
    assert!(detail.contains("DNS tree walk (RFC 9989)"));
    assert!(detail.contains("<td class=\"mono\">_dmarc.pass.test</td><td>no record</td>"));

    let raw = service.get(&format!("/r/{id}/raw")).await;
    assert_eq!(raw.headers()["content-type"], "message/rfc822");
    assert_eq!(raw.bytes().await.unwrap().as_ref(), msg.as_slice());

    let missing = service
        .get("/api/v1/results/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert!(body["error"].is_string());

    assert_eq!(
        service.get("/healthz").await.status(),
        reqwest::StatusCode::OK
    );
}

#[tokio::test]
async fn bad_configuration_stops_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (args, setting) in [
        (vec!["serve", "--smtp-listen", "nowhere"], "smtp_listen"),
        (vec!["serve", "--retention", "forever"], "retention"),
        (
            vec!["serve", "--database-url", "mysql://db/x"],
            "database_url",
        ),
        (vec!["serve", "--tls-cert", "missing.pem"], "tls_key"),
    ] {
        let (status, _, stderr) = support::run_cli(&args, None, dir.path()).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{args:?}: one line: {stderr:?}"
        );
        assert!(stderr.contains(setting), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn metrics_count_messages_replies_and_timings() {
    let dns = zone().await;
    let service = Service::start(&dns).await;
    let text = service.get_operator("/metrics").await.text().await.unwrap();
    for expected in [
        "authcheck_store_errors_total 0",
        r#"authcheck_dns_failures_total{type="TXT"} 0"#,
    ] {
        assert!(
            text.contains(expected),
            "error counters start at 0: /metrics lacks {expected}:\n{text}"
        );
    }
    // temperror.test answers SERVFAIL: a DNS failure.
    send_and_fetch(
        &service,
        "helo.test",
        "a@temperror.test",
        "spf@tester.test",
        &plain("a@temperror.test"),
    )
    .await;
    send_and_fetch(
        &service,
        "helo.test",
        "a@pass.test",
        "spf@tester.test",
        &plain("a@pass.test"),
    )
    .await;
    let response = service.get_operator("/metrics").await;
    assert!(response.status().is_success());
    let text = response.text().await.unwrap();
    for expected in [
        r#"authcheck_messages_total{mailbox="spf",verdict="|OK| spf-pass"} 1"#,
        r#"authcheck_smtp_replies_total{code="250"}"#,
        r#"authcheck_smtp_replies_total{code="354"} 2"#,
        "authcheck_verification_seconds_bucket",
        "authcheck_dns_query_seconds_bucket",
        "authcheck_smtp_connections_open",
    ] {
        assert!(
            text.contains(expected),
            "/metrics lacks {expected}:\n{text}"
        );
    }
    let txt_failures = text
        .lines()
        .find_map(|line| line.strip_prefix(r#"authcheck_dns_failures_total{type="TXT"} "#))
        .and_then(|count| count.trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no TXT DNS failure count:\n{text}"));
    assert!(txt_failures >= 1, "the SERVFAIL is counted:\n{text}");
}

#[tokio::test]
async fn migrate_and_purge_work_on_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/fresh/authcheck.db", dir.path().display());
    let (status, stdout, stderr) =
        support::run_cli(&["migrate", "--database-url", &url], None, dir.path()).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("migrations applied"), "{stdout}");
    assert!(dir.path().join("fresh/authcheck.db").exists());
    let (status, stdout, stderr) = support::run_cli(
        &["purge", "--database-url", &url, "--retention", "1h"],
        None,
        dir.path(),
    )
    .await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("deleted 0 results"), "{stdout}");
}

#[tokio::test]
async fn json_logs_carry_the_message_outcome() {
    let dns = zone().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut options = ServiceOptions::new(&dns);
    options.extra_args = vec!["--log-format".into(), "json".into()];
    options.env = vec![("RUST_LOG".into(), "info".into())];
    options.stderr_to = Some(log.clone());
    let service = Service::start_with(options).await;
    let result = send_and_fetch(
        &service,
        "helo.test",
        "a@pass.test",
        "spf@tester.test",
        &plain("a@pass.test"),
    )
    .await;
    let id = result["id"].as_str().unwrap().to_string();
    service.stop().await;
    let text = std::fs::read_to_string(&log).unwrap();
    let outcome = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["message"] == "message verified and stored")
        .unwrap_or_else(|| panic!("no JSON outcome line in:\n{text}"));
    assert_eq!(outcome["client_ip"], "127.0.0.1");
    assert_eq!(outcome["helo"], "helo.test");
    assert_eq!(outcome["mail_from"], "a@pass.test");
    assert_eq!(outcome["spf"], "|OK| spf-pass");
    assert_eq!(outcome["ids"], id.as_str());
    assert!(outcome["millis"].is_u64());
}
