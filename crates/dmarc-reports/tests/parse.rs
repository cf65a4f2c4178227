//! One test per quirk of real reports (issue 12), each reading its own fixture from
//! `tests/data/quirks/`, plus the safety cases (entity expansion, zip and gzip bombs, deep
//! nesting, too many records) and the rejection texts a user reads.

use std::io::Write;
use std::net::IpAddr;

use authcheck_dmarc_reports::*;
use flate2::Compression;
use flate2::write::GzEncoder;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/quirks/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn aggregate(name: &str) -> AggregateReport {
    match parse(&fixture(name), &Limits::default()) {
        Ok(Report::Aggregate(report)) => report,
        other => panic!("{name}: expected an aggregate report, got {other:?}"),
    }
}

fn failure(name: &str) -> FailureReport {
    match parse(&fixture(name), &Limits::default()) {
        Ok(Report::Failure(report)) => report,
        other => panic!("{name}: expected a failure report, got {other:?}"),
    }
}

fn rejection(bytes: &[u8], limits: &Limits) -> Rejection {
    match parse(bytes, limits) {
        Err(rejection) => rejection,
        Ok(report) => panic!("expected a rejection, got {report:?}"),
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The report every container fixture wraps.
fn assert_container_report(report: &AggregateReport, report_id: &str) {
    assert_eq!(report.metadata.report_id, report_id);
    assert_eq!(report.metadata.org_name, "Example Receiver");
    assert_eq!(report.policy.domain, "example.org");
    assert_eq!(report.records.len(), 1);
    assert_eq!(report.records[0].source_ip, ip("192.0.2.10"));
    assert_eq!(report.records[0].count, 3);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

// ---- Containers, detected by content -------------------------------------------------------

#[test]
fn plain_xml_file() {
    let report = aggregate("report.xml");
    assert_container_report(&report, "container-1");
    assert_eq!(report.format, AggregateFormat::Rfc7489);
}

#[test]
fn gzip_file() {
    assert_container_report(&aggregate("report.xml.gz"), "container-1");
}

#[test]
fn zip_file_with_the_one_xml_member() {
    assert_container_report(&aggregate("report.zip"), "container-1");
}

#[test]
fn gzip_with_trailing_bytes_after_the_archive() {
    assert_container_report(&aggregate("gzip-trailing-bytes.xml.gz"), "container-1");
}

#[test]
fn zip_with_trailing_bytes_after_the_archive() {
    assert_container_report(&aggregate("zip-trailing-bytes.zip"), "container-1");
}

#[test]
fn gzip_labelled_as_zip_in_a_base64_attachment() {
    assert_container_report(&aggregate("gzip-labelled-as-zip.eml"), "gzip-labelled-zip");
}

#[test]
fn attachment_not_base64_encoded() {
    assert_container_report(&aggregate("attachment-not-base64.eml"), "not-base64");
}

#[test]
fn report_inline_as_the_message_body() {
    assert_container_report(&aggregate("inline-report.eml"), "inline");
}

#[test]
fn report_beside_a_text_part() {
    assert_container_report(&aggregate("report-beside-text-part.eml"), "beside-text");
}

// ---- Tolerance -------------------------------------------------------------------------------

#[test]
fn result_values_in_any_case() {
    let report = aggregate("result-values-any-case.xml");
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let first = &report.records[0];
    assert_eq!(
        first.policy_evaluated.disposition,
        Some(Disposition::Quarantine)
    );
    assert_eq!(first.policy_evaluated.dkim, Some(DmarcResult::Pass));
    assert_eq!(first.policy_evaluated.spf, Some(DmarcResult::Fail));
    let dkim: Vec<_> = first.auth_results.dkim.iter().map(|d| d.result).collect();
    assert_eq!(dkim, [Some(DkimResult::Pass), Some(DkimResult::Fail)]);
    let spf: Vec<_> = first
        .auth_results
        .spf
        .iter()
        .map(|s| (s.scope, s.result))
        .collect();
    assert_eq!(
        spf,
        [
            (Some(SpfScope::MailFrom), Some(SpfResult::SoftFail)),
            (Some(SpfScope::Helo), Some(SpfResult::Fail)),
        ]
    );
    let second = &report.records[1];
    assert_eq!(second.source_ip, ip("2001:db8::25"));
    assert_eq!(
        second.policy_evaluated.disposition,
        Some(Disposition::Reject)
    );
    assert_eq!(
        second.auth_results.spf[0].result,
        Some(SpfResult::TempError)
    );
}

#[test]
fn empty_org_name() {
    let report = aggregate("empty-org-name.xml");
    assert_eq!(report.metadata.org_name, "");
    assert_eq!(report.reporter(), "receiver.example");
    assert_eq!(report.warnings, [Warning::EmptyOrgName]);
    assert_eq!(report.records.len(), 1);
}

#[test]
fn empty_reason() {
    let report = aggregate("empty-reason.xml");
    let reasons = &report.records[0].policy_evaluated.reasons;
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons
            .iter()
            .all(|r| r.kind.is_none() && r.comment.is_none())
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn empty_auth_results() {
    let report = aggregate("empty-auth-results.xml");
    assert_eq!(report.records.len(), 2);
    for record in &report.records {
        assert!(record.auth_results.dkim.is_empty());
        assert!(record.auth_results.spf.is_empty());
    }
}

#[test]
fn empty_envelope_from() {
    let report = aggregate("empty-envelope-from.xml");
    assert_eq!(report.records.len(), 2);
    for record in &report.records {
        assert_eq!(record.identifiers.envelope_from, None);
        assert_eq!(record.identifiers.header_from, "example.org");
    }
}

#[test]
fn stray_text_between_elements() {
    let report = aggregate("stray-text-between-elements.xml");
    assert_eq!(report.policy.domain, "example.org");
    assert_eq!(report.policy.p, Some(Policy::Reject));
    assert_eq!(report.records.len(), 1);
    assert_eq!(report.records[0].count, 3);
    assert_eq!(report.warnings, [Warning::StrayText]);
}

#[test]
fn xsi_attributes() {
    let report = aggregate("xsi-attributes.xml");
    assert_eq!(report.version.as_deref(), Some("1.0"));
    assert_eq!(report.records[0].source_ip, ip("192.0.2.10"));
    assert_eq!(report.records[0].count, 3);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn unclosed_xs_schema_element() {
    for name in [
        "unclosed-xs-schema.xml",
        "unclosed-xs-schema-inside-feedback.xml",
    ] {
        let report = aggregate(name);
        assert_eq!(report.policy.domain, "example.org", "{name}");
        assert_eq!(report.records.len(), 1, "{name}");
        assert_eq!(report.records[0].count, 3, "{name}");
    }
}

#[test]
fn invalid_utf8_is_replaced_and_the_report_kept() {
    let report = aggregate("invalid-utf8.xml");
    assert_eq!(report.metadata.org_name, "Empf\u{FFFD}nger GmbH");
    assert_eq!(report.metadata.report_id, "invalid-utf8");
    assert_eq!(report.records.len(), 1);
    assert_eq!(report.warnings, [Warning::InvalidUtf8Replaced]);
}

#[test]
fn report_spanning_several_days_is_split_per_day_keeping_its_range() {
    let report = aggregate("multi-day-range.xml");
    // 2023-11-14 23:00 UTC to 2023-11-17 23:00 UTC: one hour, two whole days, 23 hours.
    assert_eq!(
        report.metadata.date_range,
        DateRange {
            begin: 1_700_002_800,
            end: 1_700_262_000
        }
    );
    let shares = day_shares(report.metadata.date_range);
    let days: Vec<_> = shares
        .iter()
        .map(|s| (s.day.to_string(), s.seconds))
        .collect();
    assert_eq!(
        days,
        [
            ("2023-11-14".to_owned(), 3_600),
            ("2023-11-15".to_owned(), 86_400),
            ("2023-11-16".to_owned(), 86_400),
            ("2023-11-17".to_owned(), 82_800),
        ]
    );
    let counts: Vec<u64> = split_count(report.records[0].count, &shares)
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(counts, [1, 24, 24, 23]);
}

// ---- Failure reports -------------------------------------------------------------------------

fn assert_arf(report: &FailureReport) {
    assert_eq!(report.format, FailureFormat::Rfc6591);
    let feedback = report.feedback.as_ref().expect("feedback fields");
    assert_eq!(feedback.feedback_type, Some(FeedbackType::AuthFailure));
    assert_eq!(feedback.auth_failure, [AuthFailure::Dmarc]);
    assert_eq!(feedback.source_ip, Some(ip("198.51.100.7")));
    assert_eq!(feedback.reported_domain, ["example.org"]);
    assert_eq!(feedback.delivery_result, Some(DeliveryResult::Reject));
    assert_eq!(feedback.dkim_domain.as_deref(), Some("example.org"));
    assert_eq!(feedback.dkim_selector.as_deref(), Some("s1"));
    assert_eq!(
        feedback.original_mail_from.as_deref(),
        Some("<bounce@sender.example>")
    );
    assert_eq!(feedback.original_rcpt_to, ["<victim@receiver.example>"]);
    // A folded field is read whole.
    assert_eq!(
        feedback.authentication_results,
        [
            "mx.receiver.example; dmarc=fail (p=reject dis=reject) header.from=example.org; \
          spf=fail smtp.mailfrom=sender.example; dkim=fail header.d=example.org"
        ]
    );
    assert_eq!(
        report.reporter.as_deref(),
        Some("dmarc-failures@receiver.example")
    );
    assert!(report.text.contains("authentication failure report"));
    let original = report
        .original_headers
        .as_deref()
        .expect("original headers");
    assert!(original.contains("Subject: Your payslip"), "{original}");
    assert!(
        !original.contains("Please open the attachment"),
        "{original}"
    );
}

#[test]
fn arf_failure_report_with_the_original_message() {
    assert_arf(&failure("arf-original-message.eml"));
}

#[test]
fn arf_failure_report_with_the_original_headers_only() {
    assert_arf(&failure("arf-headers-only.eml"));
}

#[test]
fn arf_failure_report_with_base64_encoded_parts() {
    assert_arf(&failure("arf-base64-parts.eml"));
}

#[test]
fn arf_failure_report_as_a_base64_attachment() {
    let report = failure("arf-as-base64-attachment.eml");
    assert_arf(&report);
    assert_eq!(
        report.message_id.as_deref(),
        Some("arf-attached@receiver.example")
    );
}

#[test]
fn arf_failure_report_with_crlf_line_ends() {
    let report = failure("arf-crlf-line-ends.eml");
    assert_arf(&report);
    assert!(!report.original_headers.unwrap().contains("\r\n\r\n"));
}

#[test]
fn arf_failure_report_with_an_mbox_from_line() {
    let report = failure("arf-mbox-from-line.eml");
    assert_arf(&report);
    assert_eq!(report.subject.as_deref(), Some("FW: Your payslip"));
}

#[test]
fn rfc9991_failure_report() {
    let report = failure("rfc9991-failure-report.eml");
    assert_eq!(report.format, FailureFormat::Rfc9991);
    let feedback = report.feedback.unwrap();
    assert_eq!(
        feedback.identity_alignment,
        Some(vec![AlignedIdentity::Dkim])
    );
    assert_eq!(feedback.auth_failure, [AuthFailure::Dmarc]);
    assert_eq!(feedback.source_ip, Some(ip("2001:db8::7")));
    assert_eq!(feedback.delivery_result, Some(DeliveryResult::Policy));
    assert!(
        report
            .original_headers
            .unwrap()
            .contains("From: \"Payroll\" <payroll@example.org>")
    );
}

#[test]
fn plain_text_failure_report_without_an_arf_part_is_kept_with_its_text() {
    let report = failure("failure-report-plain-text.eml");
    assert_eq!(report.format, FailureFormat::PlainText);
    assert_eq!(report.feedback, None);
    assert!(report.text.contains("Source IP: 198.51.100.7"));
    assert_eq!(
        report.subject.as_deref(),
        Some("DMARC failure report for example.org")
    );
}

// ---- Safety ----------------------------------------------------------------------------------

#[test]
fn entity_expansion_billion_laughs_is_refused_without_expanding() {
    let rejection = rejection(&fixture("billion-laughs.xml"), &Limits::default());
    assert_eq!(rejection, Rejection::DocumentTypeDeclaration);
}

#[test]
fn undefined_entity_is_kept_as_written() {
    let xml = String::from_utf8(fixture("report.xml"))
        .unwrap()
        .replace("Example Receiver", "Example &rcv; &amp; Co &#x41;");
    let Ok(Report::Aggregate(report)) = parse(xml.as_bytes(), &Limits::default()) else {
        panic!("not parsed");
    };
    assert_eq!(report.metadata.org_name, "Example &rcv; & Co A");
    assert_eq!(
        report.warnings,
        [Warning::UnknownEntity {
            name: "rcv".to_owned()
        }]
    );
}

/// 200,000 distinct warnings (unknown entities and unknown values) keep the first
/// `max_warnings` and count the rest; with a list de-duplicated by scanning, this took minutes.
#[test]
fn many_distinct_warnings_are_bounded_and_counted() {
    const DISTINCT: usize = 200_000;
    let entities: String = (0..DISTINCT / 2).map(|n| format!("&a{n};")).collect();
    let values: String = (0..DISTINCT / 2).map(|n| format!("<p>x{n}</p>")).collect();
    let xml = String::from_utf8(fixture("report.xml"))
        .unwrap()
        .replace("<feedback>", &format!("<feedback>{entities}"))
        .replace("<policy_published>", &format!("<policy_published>{values}"));
    let limits = Limits::default();
    let Ok(Report::Aggregate(report)) = parse(xml.as_bytes(), &limits) else {
        panic!("not parsed");
    };
    assert_eq!(report.warnings.len(), limits.max_warnings);
    // The unknown entities are also stray text between elements: one more distinct warning.
    let raised = DISTINCT as u64 + 1;
    assert_eq!(report.warnings_omitted, raised - limits.max_warnings as u64);
    assert_eq!(
        report.warnings[0],
        Warning::UnknownEntity {
            name: "a0".to_owned()
        }
    );
    // A repeat of a kept warning is neither kept twice nor counted.
    let repeated = xml.replace("<feedback>", "<feedback>&a0;&a0;&a1;");
    let Ok(Report::Aggregate(again)) = parse(repeated.as_bytes(), &limits) else {
        panic!("not parsed");
    };
    assert_eq!(again.warnings, report.warnings);
    assert_eq!(again.warnings_omitted, report.warnings_omitted);
}

#[test]
fn many_reporter_errors_are_bounded_and_counted() {
    let errors: String = (0..5_000).map(|n| format!("<error>e{n}</error>")).collect();
    let xml = String::from_utf8(fixture("report.xml"))
        .unwrap()
        .replace("<date_range>", &format!("{errors}<date_range>"));
    let limits = Limits::default();
    let Ok(Report::Aggregate(report)) = parse(xml.as_bytes(), &limits) else {
        panic!("not parsed");
    };
    assert_eq!(report.metadata.errors.len(), limits.max_errors);
    assert_eq!(report.metadata.errors[0], "e0");
    assert_eq!(
        report.metadata.errors_omitted,
        (5_000 - limits.max_errors) as u64
    );
}

#[test]
fn many_distinct_failure_report_warnings_are_bounded_and_counted() {
    const DISTINCT: usize = 200_000;
    let identities: Vec<String> = (0..DISTINCT).map(|n| format!("a{n}")).collect();
    let message = String::from_utf8(fixture("rfc9991-failure-report.eml"))
        .unwrap()
        .replace(
            "Identity-Alignment: dkim",
            &format!("Identity-Alignment: dkim, {}", identities.join(", ")),
        );
    let limits = Limits::default();
    let Ok(Report::Failure(report)) = parse(message.as_bytes(), &limits) else {
        panic!("not parsed");
    };
    assert_eq!(report.warnings.len(), limits.max_warnings);
    assert_eq!(
        report.warnings_omitted,
        (DISTINCT - limits.max_warnings) as u64
    );
    assert_eq!(
        report.feedback.unwrap().identity_alignment,
        Some(vec![AlignedIdentity::Dkim])
    );
}

#[test]
fn zip_bomb_is_refused_by_its_compression_ratio() {
    let rejection = rejection(&fixture("zip-bomb.zip"), &Limits::default());
    assert_eq!(rejection, Rejection::CompressionRatioTooHigh { limit: 200 });
}

fn gzip_bomb(decompressed: usize) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(b"<?xml version=\"1.0\"?>\n<feedback>")
        .unwrap();
    let spaces = vec![b' '; 1024 * 1024];
    for _ in 0..decompressed / spaces.len() {
        encoder.write_all(&spaces).unwrap();
    }
    encoder.write_all(b"</feedback>").unwrap();
    encoder.finish().unwrap()
}

#[test]
fn gzip_bomb_is_refused_by_its_compression_ratio() {
    let bomb = gzip_bomb(32 * 1024 * 1024);
    assert!(bomb.len() < 64 * 1024, "{} bytes", bomb.len());
    let rejection = rejection(&bomb, &Limits::default());
    assert_eq!(rejection, Rejection::CompressionRatioTooHigh { limit: 200 });
}

#[test]
fn gzip_bomb_is_refused_by_its_decompressed_size() {
    let limits = Limits {
        max_decompressed_bytes: 4 * 1024 * 1024,
        max_compression_ratio: u64::MAX,
        ..Limits::default()
    };
    let rejection = rejection(&gzip_bomb(8 * 1024 * 1024), &limits);
    assert_eq!(
        rejection,
        Rejection::DecompressedTooLarge {
            limit: 4 * 1024 * 1024
        }
    );
}

#[test]
fn deep_nesting_is_refused() {
    let depth = 100_000;
    let xml = format!(
        "<feedback>{}{}</feedback>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    let rejection = rejection(xml.as_bytes(), &Limits::default());
    assert_eq!(rejection, Rejection::XmlTooDeep { limit: 32 });
}

#[test]
fn too_many_records_are_refused() {
    let xml = String::from_utf8(fixture("report.xml")).unwrap();
    let start = xml.find("  <record>").unwrap();
    let end = xml.find("</feedback>").unwrap();
    let many = format!(
        "{}{}{}",
        &xml[..start],
        xml[start..end].repeat(11),
        &xml[end..]
    );
    let limits = Limits {
        max_records: 10,
        ..Limits::default()
    };
    assert_eq!(
        rejection(many.as_bytes(), &limits),
        Rejection::TooManyRecords { limit: 10 }
    );
    let Ok(Report::Aggregate(report)) = parse(many.as_bytes(), &Limits::default()) else {
        panic!("eleven records fit the default limit");
    };
    assert_eq!(report.records.len(), 11);
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let limits = Limits {
        max_input_bytes: 100,
        ..Limits::default()
    };
    assert_eq!(
        rejection(&fixture("report.xml"), &limits),
        Rejection::InputTooLarge {
            size: fixture("report.xml").len(),
            limit: 100
        }
    );
}

// ---- Rejections a user reads -----------------------------------------------------------------

#[test]
fn truncated_report_is_refused_not_shortened() {
    let xml = String::from_utf8(fixture("report.xml")).unwrap();
    let cut = &xml.as_bytes()[..xml.find("</row>").unwrap()];
    let rejection = rejection(cut, &Limits::default());
    assert!(
        matches!(rejection, Rejection::Truncated { .. }),
        "{rejection:?}"
    );
    assert!(rejection.to_string().contains("cut short"), "{rejection}");
}

#[test]
fn report_without_report_id_names_the_missing_field() {
    let xml = String::from_utf8(fixture("report.xml"))
        .unwrap()
        .replace("<report_id>container-1</report_id>", "");
    let rejection = rejection(xml.as_bytes(), &Limits::default());
    assert_eq!(
        rejection.to_string(),
        "the report has no <report_id>, which every aggregate report must have"
    );
}

#[test]
fn bad_source_ip_is_quoted_in_the_reason() {
    let xml = String::from_utf8(fixture("report.xml"))
        .unwrap()
        .replace("192.0.2.10", "192.0.2.999");
    assert_eq!(
        rejection(xml.as_bytes(), &Limits::default()).to_string(),
        "<source_ip> is \"192.0.2.999\", which is not a valid IP address"
    );
}

#[test]
fn xml_that_is_not_a_dmarc_report_is_refused() {
    let rejection = rejection(
        b"<?xml version=\"1.0\"?><rss><channel/></rss>",
        &Limits::default(),
    );
    assert_eq!(rejection, Rejection::NotAggregateReport);
}

#[test]
fn damaged_gzip_is_refused_as_corrupt() {
    let mut gz = fixture("report.xml.gz");
    let middle = gz.len() / 2;
    gz[middle..middle + 16].fill(0xff);
    let rejection = rejection(&gz, &Limits::default());
    assert!(
        matches!(
            rejection,
            Rejection::Corrupt {
                container: "gzip",
                ..
            }
        ),
        "{rejection:?}"
    );
}

#[test]
fn message_with_an_unrelated_attachment_is_refused() {
    let message = b"From: someone@example.net\r\nSubject: hello\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
--x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--x--\r\n";
    assert_eq!(
        rejection(message, &Limits::default()),
        Rejection::NoReportInMessage {
            content_type: "application/pdf".to_owned()
        }
    );
}

#[test]
fn bytes_that_are_no_report_at_all_are_refused() {
    assert_eq!(
        rejection(b"%PDF-1.4\n\x00\x01\x02", &Limits::default()),
        Rejection::UnrecognisedFormat
    );
    assert_eq!(rejection(b"  \r\n", &Limits::default()), Rejection::Empty);
}

#[test]
fn two_different_reports_in_one_message_are_refused() {
    let one = String::from_utf8(fixture("report.xml")).unwrap();
    let two = one.replace("container-1", "container-2");
    let message = format!(
        "From: r@receiver.example\nSubject: two\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=x\n\n\
--x\nContent-Type: application/xml\n\n{one}\n--x\nContent-Type: application/xml\n\n{two}\n--x--\n"
    );
    assert_eq!(
        rejection(message.as_bytes(), &Limits::default()),
        Rejection::SeveralReports { count: 2 }
    );
}

// ---- Checks against the time a report was received -----------------------------------------

/// `report.xml` with its period from `begin` to `end`.
fn report_dated(begin: &str, end: &str) -> Report {
    let xml = String::from_utf8(fixture("report.xml")).unwrap();
    let start = xml.find("<begin>").unwrap();
    let stop = xml.find("</end>").unwrap() + "</end>".len();
    let xml = format!(
        "{}<begin>{begin}</begin><end>{end}</end>{}",
        &xml[..start],
        &xml[stop..]
    );
    parse(xml.as_bytes(), &Limits::default()).unwrap()
}

#[test]
fn a_period_that_could_not_have_been_written_when_received_is_refused() {
    const DAY: i64 = 86_400;
    // 2023-11-16 00:00 UTC.
    let received = 1_700_092_800;
    let limits = Limits::default();
    let check = |begin: i64, end: i64| {
        report_dated(&begin.to_string(), &end.to_string()).check_received(received, &limits)
    };
    // Yesterday, and a day in a reporter's time zone ending a few hours ahead of UTC.
    assert_eq!(check(received - DAY, received - 1), Ok(()));
    assert_eq!(check(received - 10 * 3600, received + 14 * 3600), Ok(()));
    // A week, and a whole month, are periods some reporters use.
    assert_eq!(check(received - 31 * DAY, received), Ok(()));

    let in_9999 = check(253_370_764_800, 253_370_851_199).unwrap_err();
    assert!(matches!(in_9999, Rejection::PeriodInFuture { .. }));
    assert_eq!(
        in_9999.to_string(),
        "the report's period ends 9999-01-01 23:59 UTC, later than it could have been \
         written: it was received 2023-11-16 00:00 UTC"
    );
    assert!(matches!(
        check(received, received + DAY + 1),
        Err(Rejection::PeriodInFuture { .. })
    ));
    assert!(matches!(
        check(received - DAY, received - 2 * DAY),
        Err(Rejection::PeriodBackwards { .. })
    ));
    assert!(matches!(
        check(0, 86_399),
        Err(Rejection::PeriodTooEarly { .. })
    ));
    assert!(matches!(
        check(-8_000_000_000_000, 0),
        Err(Rejection::PeriodTooEarly { .. })
    ));
    let year = check(received - 365 * DAY, received).unwrap_err();
    assert_eq!(
        year.to_string(),
        "the report covers 365 days; a report covers at most 31 (usually one day)"
    );
}

#[test]
fn a_failure_report_dated_in_the_future_is_refused() {
    let message = String::from_utf8(fixture("rfc9991-failure-report.eml")).unwrap();
    let report = parse(message.as_bytes(), &Limits::default()).unwrap();
    let Report::Failure(failure) = &report else {
        panic!("a failure report");
    };
    let date = failure.date.expect("the fixture has a Date");
    let limits = Limits::default();
    assert_eq!(report.check_received(date + 60, &limits), Ok(()));
    assert!(matches!(
        report.check_received(date - 3 * 86_400, &limits),
        Err(Rejection::PeriodInFuture { .. })
    ));
}
