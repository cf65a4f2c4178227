//! DMARC reports received over real SMTP at `rua@` and `ruf@` a tester domain (`authcheck
//! serve` with a loopback DNS server): each is stored before the 250 that names it, the same
//! report again is answered "already stored" and counted, what cannot be parsed is kept as a
//! rejected report with its reason, and a message to a tester mailbox and a report mailbox at
//! once gets both. Run against PostgreSQL too by `scripts/test` (`AUTHCHECK_E2E_BACKEND`).

mod support;

use std::net::IpAddr;
use std::time::Duration;

use authcheck_store::{ReportKind, SharedStore};
use authcheck_testdns::TestDns;
use support::{Reply, Service, eventually, send};

/// A report fixture of the parser's own test data.
fn fixture(path: &str) -> Vec<u8> {
    let path = format!(
        "{}/../dmarc-reports/tests/data/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The store the service writes, opened beside it.
async fn store_of(service: &Service) -> SharedStore {
    let url = service
        .options
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", service.database_path().display()));
    authcheck_store::open(&url)
        .await
        .expect("open the service's store")
}

/// The id in a reply's `<phrase> <id>` (up to the next space, `;` or the end).
fn id_after(reply: &Reply, phrase: &str) -> String {
    let text = reply.text();
    let rest = text
        .split(phrase)
        .nth(1)
        .unwrap_or_else(|| panic!("{phrase:?} not in {text:?}"));
    rest.split([' ', ';'])
        .next()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| panic!("no id after {phrase:?} in {text:?}"))
        .to_owned()
}

async fn send_report(service: &Service, recipient: &str, message: &[u8]) -> Reply {
    send(
        service,
        "mail.receiver.test",
        "dmarc-noreply@receiver.test",
        &[recipient],
        message,
    )
    .await
}

/// An aggregate report about example.org from big.test with one record per source address,
/// as XML.
fn aggregate_report_xml(report_id: &str, sources: impl IntoIterator<Item = IpAddr>) -> String {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n<report_metadata>\
         <org_name>big.test</org_name><email>dmarc@big.test</email>\
         <report_id>{report_id}</report_id>\
         <date_range><begin>1700006400</begin><end>1700092799</end></date_range>\
         </report_metadata>\n<policy_published><domain>example.org</domain><adkim>r</adkim>\
         <aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>\n"
    );
    for (n, ip) in sources.into_iter().enumerate() {
        let (dkim, spf) = if n % 3 == 0 {
            ("fail", "pass")
        } else {
            ("pass", "fail")
        };
        xml.push_str(&format!(
            "<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>\
             <disposition>none</disposition><dkim>{dkim}</dkim><spf>{spf}</spf>\
             </policy_evaluated></row><identifiers><header_from>example.org</header_from>\
             </identifiers><auth_results><dkim><domain>mail{n}.example.org</domain>\
             <selector>s{n}</selector><result>{dkim}</result></dkim><spf>\
             <domain>bounce{n}.example.org</domain><result>{spf}</result></spf>\
             </auth_results></record>\n",
            count = n % 97 + 1,
        ));
    }
    xml.push_str("</feedback>\n");
    xml
}

/// `xml` as a reporter sends it: attached as it is (7bit), in a message to rua@.
fn report_message(xml: &str) -> Vec<u8> {
    let mut message = b"From: dmarc@big.test\r\n\
        To: rua@tester.test\r\n\
        Subject: Report Domain: example.org Submitter: big.test\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: text/xml; name=\"report.xml\"\r\n\
        Content-Disposition: attachment; filename=\"report.xml\"\r\n\
        Content-Transfer-Encoding: 7bit\r\n\r\n"
        .to_vec();
    message.extend_from_slice(xml.replace('\n', "\r\n").as_bytes());
    message
}

/// A message whose gzip attachment is damaged: a reporter's bug the tester cannot repair.
fn damaged_gzip_report() -> Vec<u8> {
    b"From: dmarc-noreply@receiver.test\r\n\
      To: rua+damaged@tester.test\r\n\
      Subject: Report domain: example.org Submitter: receiver.test Report-ID: <damaged-1>\r\n\
      MIME-Version: 1.0\r\n\
      Content-Type: application/gzip; name=\"receiver.test!example.org!1.xml.gz\"\r\n\
      Content-Transfer-Encoding: base64\r\n\
      \r\n\
      H4sIAAAAAAAAA2dhcmJhZ2UgdGhhdCBpcyBub3QgZGVmbGF0ZQ==\r\n"
        .to_vec()
}

#[tokio::test]
async fn reports_sent_to_rua_and_ruf_are_stored_before_the_reply_and_duplicates_are_named() {
    let dns = TestDns::start().await;
    let service = Service::start(&dns).await;
    let store = store_of(&service).await;

    // An aggregate report (Google's, as a zip attachment) to rua@.
    let google = fixture("corpus/100.eml");
    let reply = send_report(&service, "rua@tester.test", &google).await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = id_after(&reply, "DMARC report stored as ");
    let stored = store
        .get_report(&id)
        .await
        .unwrap()
        .expect("the report named in the 250 is in the store");
    assert_eq!(stored.kind, ReportKind::Aggregate);
    assert_eq!(stored.reporter, "google.com");
    assert_eq!(stored.report_id, "5264580628977113351");
    assert_eq!(stored.domain, "stalw.art");
    assert!(stored.records >= 1, "{stored:?}");

    // The same report again: recognised by reporter and report id, answered with the first id.
    let again = send_report(&service, "rua@tester.test", &google).await;
    assert_eq!(again.code, 250, "{again:?}");
    assert_eq!(id_after(&again, "DMARC report already stored as "), id);

    // rua+tag@ is the same mailbox.
    let reply = send_report(
        &service,
        "rua+example.org@tester.test",
        &fixture("corpus/101.eml"),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let tagged = id_after(&reply, "DMARC report stored as ");
    assert_ne!(tagged, id);
    assert!(store.get_report(&tagged).await.unwrap().is_some());

    // A failure report (RFC 6591 ARF) to ruf@.
    let reply = send_report(
        &service,
        "ruf@tester.test",
        &fixture("quirks/arf-original-message.eml"),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let failure = id_after(&reply, "DMARC report stored as ");
    let failure = store.get_report(&failure).await.unwrap().unwrap();
    assert_eq!(failure.kind, ReportKind::Failure);

    // The duplicate is counted for the operator.
    let metrics = service.get_operator("/metrics").await.text().await.unwrap();
    for expected in [
        r#"authcheck_dmarc_reports_total{outcome="stored"} 3"#,
        r#"authcheck_dmarc_reports_total{outcome="duplicate"} 1"#,
        r#"authcheck_dmarc_reports_total{outcome="rejected"} 0"#,
    ] {
        assert!(metrics.contains(expected), "/metrics lacks {expected}");
    }
    store.close().await;
}

#[tokio::test]
async fn a_report_that_cannot_be_parsed_is_kept_as_rejected_with_its_reason() {
    let dns = TestDns::start().await;
    let service = Service::start(&dns).await;
    let store = store_of(&service).await;

    let reply = send_report(&service, "rua+damaged@tester.test", &damaged_gzip_report()).await;
    // 250, not 5xx: the report is kept, and a bounce would reach nobody who can fix it.
    assert_eq!(reply.code, 250, "{reply:?}");
    let text = reply.text();
    assert!(text.contains("kept as rejected report"), "{text}");
    assert!(text.contains("gzip data is damaged"), "{text}");
    let id = id_after(&reply, "kept as rejected report ");

    let rejected = store.list_rejected_reports(10).await.unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].id, id);
    assert_eq!(rejected[0].source, "smtp:rua+damaged@tester.test");
    assert!(
        rejected[0].reason.contains("gzip data is damaged"),
        "{rejected:?}"
    );

    let metrics = service.get_operator("/metrics").await.text().await.unwrap();
    let expected = r#"authcheck_dmarc_reports_total{outcome="rejected"} 1"#;
    assert!(metrics.contains(expected), "/metrics lacks {expected}");
    store.close().await;
}

#[tokio::test]
async fn a_message_to_a_tester_mailbox_and_a_report_mailbox_gets_both() {
    let dns = TestDns::start().await;
    let service = Service::start(&dns).await;
    let store = store_of(&service).await;

    let reply = send(
        &service,
        "mail.receiver.test",
        "dmarc-noreply@receiver.test",
        &["spf@tester.test", "rua@tester.test"],
        &fixture("corpus/102.eml"),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    // The test result, as the reply to a test message names it ...
    let results = reply.stored();
    assert_eq!(results.len(), 1, "{reply:?}");
    let result = service
        .get_json(&format!("/api/v1/results/{}", results[0].0))
        .await;
    assert_eq!(result["mailbox"], "spf");
    // ... and the report.
    let report = id_after(&reply, "DMARC report stored as ");
    assert!(store.get_report(&report).await.unwrap().is_some());
    // Other local parts are still refused.
    let (mut smtp, _) = support::RawSmtp::connect(service.smtp).await;
    smtp.command("EHLO mail.receiver.test").await;
    smtp.command("MAIL FROM:<a@receiver.test>").await;
    let refused = smtp.command("RCPT TO:<dmarc@tester.test>").await;
    assert_eq!(refused.code, 550, "{refused:?}");
    store.close().await;
}

/// After the 250, each source address of a stored report gets its PTR name and organizational
/// domain, looked up once with the service's resolver and cached in the store; a report with
/// more addresses than the per-report cap gets only the cap's worth of lookups.
#[tokio::test]
async fn source_addresses_are_named_after_the_reply_within_the_per_report_cap() {
    let dns = TestDns::start().await;
    let named: IpAddr = "192.0.2.25".parse().unwrap();
    dns.add_ptr(named, "mail-25.outbound.sender.co.uk");
    let service = Service::start(&dns).await;
    let store = store_of(&service).await;

    let mut sources = vec![named];
    // 1,200 more: more than the 1,000 looked up for one report.
    sources.extend((0..1_200u32).map(|n| IpAddr::from([10, 20, (n / 256) as u8, (n % 256) as u8])));
    let reply = send_report(
        &service,
        "rua@tester.test",
        &report_message(&aggregate_report_xml("many-sources", sources.clone())),
    )
    .await;
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = id_after(&reply, "DMARC report stored as ");
    assert_eq!(store.get_report(&id).await.unwrap().unwrap().records, 1_201);

    let ips: Vec<String> = sources.iter().map(IpAddr::to_string).collect();
    let names = eventually(Duration::from_secs(20), || async {
        let names = store.source_names(&ips).await.unwrap();
        (names.len() >= 1_000).then_some(names)
    })
    .await
    .expect("the sources are named within 20 s");
    // Given a moment more, no more than the cap are looked up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.source_names(&ips).await.unwrap().len(), 1_000);
    let with_ptr = names
        .iter()
        .find(|name| name.ip == "192.0.2.25")
        .expect("the first source is among those looked up");
    assert_eq!(
        with_ptr.ptr.as_deref(),
        Some("mail-25.outbound.sender.co.uk")
    );
    assert_eq!(with_ptr.org_domain.as_deref(), Some("sender.co.uk"));
    // An address without a PTR record is kept without a name, so it is not asked again.
    let without = names.iter().find(|name| name.ip == "10.20.0.0").unwrap();
    assert_eq!(
        (without.ptr.as_deref(), without.org_domain.as_deref()),
        (None, None)
    );
    store.close().await;
}

/// Source addresses for `count` records, all distinct.
fn many_sources(count: u32) -> impl Iterator<Item = IpAddr> {
    (0..count).map(|n| IpAddr::from([10, (n >> 16) as u8, (n >> 8) as u8, n as u8]))
}

/// The size of the reports [`peak_memory_while_a_50_mb_report_is_received_and_stored`] sends.
const LARGE_REPORT_BYTES: usize = 50_000_000;

/// An aggregate report of about [`LARGE_REPORT_BYTES`] of XML.
fn large_report_xml() -> String {
    // One record is about 444 bytes of XML.
    let records = (LARGE_REPORT_BYTES / 444) as u32;
    let xml = aggregate_report_xml("large", many_sources(records));
    assert!(
        xml.len().abs_diff(LARGE_REPORT_BYTES) < LARGE_REPORT_BYTES / 10,
        "{} bytes",
        xml.len()
    );
    xml
}

/// `xml` gzipped and attached in base64, as most large reporters send it.
fn gzip_report_message(xml: &str) -> Vec<u8> {
    use base64::Engine;
    use std::io::Write;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(xml.as_bytes()).unwrap();
    let compressed = gzip.finish().unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(compressed);
    let mut message = b"From: dmarc@big.test\r\n\
        To: rua@tester.test\r\n\
        Subject: Report Domain: example.org Submitter: big.test\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: application/gzip; name=\"report.xml.gz\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    for line in encoded.as_bytes().chunks(76) {
        message.extend_from_slice(line);
        message.extend_from_slice(b"\r\n");
    }
    message
}

/// Sends `message` to a fresh service taking messages of up to 64 MiB and prints its peak
/// RSS before and after the report is stored.
async fn measure_peak_memory(what: &str, message: &[u8]) {
    let dns = TestDns::start().await;
    let mut options = support::ServiceOptions::new(&dns);
    options.extra_args = vec!["--max-message-size".into(), "64MiB".into()];
    let service = Service::start_with(options).await;
    let store = store_of(&service).await;
    let before = service.peak_rss_kib();
    let started = std::time::Instant::now();
    let (mut smtp, _) = support::RawSmtp::connect(service.smtp).await;
    smtp.patience(Duration::from_secs(600));
    let reply = smtp
        .send(
            "mail.big.test",
            "dmarc@big.test",
            &["rua@tester.test"],
            message,
        )
        .await;
    let took = started.elapsed();
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = id_after(&reply, "DMARC report stored as ");
    let records = store.get_report(&id).await.unwrap().unwrap().records;
    let after = service.peak_rss_kib();
    println!(
        "{what}: message {} bytes, {records} records stored in {took:.1?}; peak RSS {} MiB \
         before, {} MiB after",
        message.len(),
        before / 1024,
        after / 1024
    );
    store.close().await;
}

/// The memory a 50 MB aggregate report costs the service while it is received over SMTP,
/// parsed and stored, as XML attached as it is and as the gzip of it: a measurement, not a
/// pass/fail check (README, "Memory for large DMARC reports"). Run with
/// `cargo test --release -p authcheck --test e2e_dmarc_receive -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement that takes a minute: run it with --ignored --nocapture"]
async fn peak_memory_while_a_50_mb_report_is_received_and_stored() {
    let xml = large_report_xml();
    measure_peak_memory("XML", &report_message(&xml)).await;
    measure_peak_memory("gzip", &gzip_report_message(&xml)).await;
}
