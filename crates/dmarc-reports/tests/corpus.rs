//! Well-formed reports from real reporters and the RFC 9990 examples (`tests/data/corpus/`),
//! each compared field by field with the parse another implementation expects (the `.json`
//! beside it).
//!
//! The expected parses name values in their own way ("Unspecified" for an absent value, an empty
//! string for an absent selector); [`expected`] maps them to ours. One difference is on purpose:
//! the other implementation reads RFC 7489's `sampled_out` override as "Other", and we keep it.

use authcheck_dmarc_reports::*;
use serde_json::Value;

fn corpus(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/corpus/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An expected free-text value, or `None` when the other parser says it is absent.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) if text.is_empty() => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// An expected closed-set value, compared without case or underscores ("TrustedForwarder" is
/// our "trusted_forwarder"); `None` when the other parser says "Unspecified".
fn expected(value: &Value) -> Option<String> {
    let text = text(value).filter(|t| t != "Unspecified")?;
    Some(match text.as_str() {
        "Relaxed" => "r".to_owned(),
        "Strict" => "s".to_owned(),
        "MailFrom" => "mfrom".to_owned(),
        other => normal(other),
    })
}

fn normal(text: &str) -> String {
    text.to_ascii_lowercase().replace('_', "")
}

fn ours<T: ToString>(value: Option<T>) -> Option<String> {
    value.map(|v| normal(&v.to_string()))
}

fn check(name: &str, expected_name: &str) {
    let report = match parse(&corpus(name), &Limits::default()) {
        Ok(Report::Aggregate(report)) => report,
        other => panic!("{name}: {other:?}"),
    };
    let json: Value = serde_json::from_slice(&corpus(expected_name)).unwrap();
    let meta = &json["report_metadata"];
    assert_eq!(
        report.metadata.org_name,
        meta["org_name"].as_str().unwrap(),
        "{name}"
    );
    assert_eq!(
        report.metadata.email,
        meta["email"].as_str().unwrap(),
        "{name}"
    );
    assert_eq!(
        report.metadata.extra_contact_info,
        text(&meta["extra_contact_info"]),
        "{name}"
    );
    assert_eq!(
        report.metadata.report_id,
        meta["report_id"].as_str().unwrap(),
        "{name}"
    );
    assert_eq!(
        report.metadata.date_range,
        DateRange {
            begin: meta["date_range"]["begin"].as_i64().unwrap(),
            end: meta["date_range"]["end"].as_i64().unwrap(),
        },
        "{name}"
    );
    assert_eq!(
        report.metadata.generator,
        text(&meta["generator"]),
        "{name}"
    );

    let policy = &json["policy_published"];
    assert_eq!(
        report.policy.domain,
        policy["domain"].as_str().unwrap(),
        "{name}"
    );
    assert_eq!(
        ours(report.policy.adkim),
        expected(&policy["adkim"]),
        "{name}"
    );
    assert_eq!(
        ours(report.policy.aspf),
        expected(&policy["aspf"]),
        "{name}"
    );
    assert_eq!(ours(report.policy.p), expected(&policy["p"]), "{name}");
    assert_eq!(ours(report.policy.sp), expected(&policy["sp"]), "{name}");
    if let Some(np) = policy.get("np") {
        assert_eq!(ours(report.policy.np), expected(np), "{name}");
    }
    if let Some(method) = policy.get("discovery_method") {
        assert_eq!(
            ours(report.policy.discovery_method),
            expected(method),
            "{name}"
        );
    }
    assert_eq!(
        report.policy.testing.unwrap_or(false),
        policy["testing"].as_bool().unwrap(),
        "{name}"
    );
    assert_eq!(
        report.policy.fo,
        text(&policy["fo"]).map(|f| f.trim_matches('"').to_owned()),
        "{name}"
    );

    let records = json["record"].as_array().unwrap();
    assert_eq!(report.records.len(), records.len(), "{name}");
    for (record, want) in report.records.iter().zip(records) {
        let row = &want["row"];
        assert_eq!(
            record.source_ip.to_string(),
            row["source_ip"].as_str().unwrap()
        );
        assert_eq!(record.count, row["count"].as_u64().unwrap());
        let evaluated = &row["policy_evaluated"];
        assert_eq!(
            ours(record.policy_evaluated.disposition),
            expected(&evaluated["disposition"]),
            "{name}"
        );
        assert_eq!(
            ours(record.policy_evaluated.dkim),
            expected(&evaluated["dkim"])
        );
        assert_eq!(
            ours(record.policy_evaluated.spf),
            expected(&evaluated["spf"])
        );
        let reasons = evaluated["reason"].as_array().unwrap();
        assert_eq!(
            record.policy_evaluated.reasons.len(),
            reasons.len(),
            "{name}"
        );
        for (reason, want) in record.policy_evaluated.reasons.iter().zip(reasons) {
            let kind = match reason.kind {
                // See the module comment: the other parser folds sampled_out into "other".
                Some(PolicyOverride::SampledOut) => ours(Some(PolicyOverride::Other)),
                kind => ours(kind),
            };
            assert_eq!(kind, expected(&want["type_"]), "{name}");
            assert_eq!(reason.comment, text(&want["comment"]));
        }
        let identifiers = &want["identifiers"];
        assert_eq!(
            record.identifiers.header_from,
            identifiers["header_from"].as_str().unwrap()
        );
        assert_eq!(
            record.identifiers.envelope_from.as_deref(),
            text(&identifiers["envelope_from"]).as_deref(),
            "{name}"
        );
        assert_eq!(
            record.identifiers.envelope_to.as_deref(),
            text(&identifiers["envelope_to"]).as_deref(),
            "{name}"
        );
        let dkim = want["auth_results"]["dkim"].as_array().unwrap();
        assert_eq!(record.auth_results.dkim.len(), dkim.len(), "{name}");
        for (ours_dkim, want) in record.auth_results.dkim.iter().zip(dkim) {
            assert_eq!(ours_dkim.domain, want["domain"].as_str().unwrap());
            assert_eq!(ours_dkim.selector, text(&want["selector"]), "{name}");
            assert_eq!(ours(ours_dkim.result), expected(&want["result"]), "{name}");
        }
        let spf = want["auth_results"]["spf"].as_array().unwrap();
        assert_eq!(record.auth_results.spf.len(), spf.len(), "{name}");
        for (ours_spf, want) in record.auth_results.spf.iter().zip(spf) {
            assert_eq!(ours_spf.domain, want["domain"].as_str().unwrap());
            assert_eq!(ours(ours_spf.scope), expected(&want["scope"]), "{name}");
            assert_eq!(ours(ours_spf.result), expected(&want["result"]), "{name}");
        }
    }
}

#[test]
fn rfc9990_example_with_version_2_and_unknown_elements() {
    check("001.xml", "001.json");
    let Ok(Report::Aggregate(report)) = parse(&corpus("001.xml"), &Limits::default()) else {
        unreachable!("checked above");
    };
    assert_eq!(report.format, AggregateFormat::Rfc9990);
}

#[test]
fn rfc7489_draft_schema_without_version() {
    check("002.xml", "002.json");
    let Ok(Report::Aggregate(report)) = parse(&corpus("002.xml"), &Limits::default()) else {
        unreachable!("checked above");
    };
    assert_eq!(report.format, AggregateFormat::Rfc7489Draft);
    assert_eq!(report.version, None);
}

#[test]
fn rfc7489_version_1_with_override_reasons() {
    check("003.xml", "003.json");
    let Ok(Report::Aggregate(report)) = parse(&corpus("003.xml"), &Limits::default()) else {
        unreachable!("checked above");
    };
    assert_eq!(report.format, AggregateFormat::Rfc7489);
    assert_eq!(report.message_count(), 9);
}

#[test]
fn rfc9990_namespace_np_testing_discovery_method_and_disposition_pass() {
    check("004.xml", "004.json");
    let Ok(Report::Aggregate(report)) = parse(&corpus("004.xml"), &Limits::default()) else {
        unreachable!("checked above");
    };
    assert_eq!(report.format, AggregateFormat::Rfc9990);
    assert_eq!(report.policy.np, Some(Policy::None));
    assert_eq!(report.policy.testing, Some(false));
    assert_eq!(
        report.policy.discovery_method,
        Some(DiscoveryMethod::Treewalk)
    );
    assert_eq!(
        report.records[0].policy_evaluated.disposition,
        Some(Disposition::Pass)
    );
}

#[test]
fn rfc7489_sampled_out_override_is_kept() {
    check("005.xml", "005.json");
    let Ok(Report::Aggregate(report)) = parse(&corpus("005.xml"), &Limits::default()) else {
        unreachable!("checked above");
    };
    assert_eq!(
        report.records[0].policy_evaluated.reasons[0].kind,
        Some(PolicyOverride::SampledOut)
    );
}

#[test]
fn google_zip_attachment_base64() {
    check("100.eml", "100.json");
}

#[test]
fn gzip_attachment_beside_a_text_part_with_an_escaped_quote_in_org_name() {
    check("101.eml", "101.json");
}

#[test]
fn mail_ru_gzip_attachment_with_base64_text_part() {
    check("102.eml", "102.json");
}

#[test]
fn outlook_gzip_attachment_beside_html_with_xsd_namespaces() {
    check("103.eml", "103.json");
}

#[test]
fn amazon_ses_gzip_labelled_octet_stream() {
    check("104.eml", "104.json");
}
