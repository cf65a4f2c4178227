//! Listings stay small whatever was received: fifty stored results whose every text a sender
//! chooses is as long and as costly to escape as it can be (quotes, angle brackets, control
//! characters), with reports of hundreds of signatures and findings, give a list page, the
//! front page and an API list of fifty items under 1 MB each. Results stored before report
//! summaries existed (whose listing falls back to the whole report) are bounded the same way.

mod common;

use authcheck_store::{Mailbox, NewResult};
use authcheck_verifier::diagnosis::{Finding, FindingCode, Severity};
use authcheck_verifier::summary::{MAX_SUMMARY_FINDINGS, MAX_SUMMARY_SIGNATURES};
use authcheck_verifier::{DkimSignatureReport, Report};
use common::{Sample, TestSite};
use serde_json::Value;

/// What a page of fifty results may weigh at most.
const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// `bytes` of text that costs the most to escape in HTML (`&#34;`) and JSON (`\"`), with a
/// control character (`\u001b` in JSON) and an angle bracket to start with.
fn costly(bytes: usize) -> String {
    let mut text = String::from("\u{1b}<");
    text.push_str(&"\"".repeat(bytes.saturating_sub(2)));
    text
}

/// A report whose every sender-chosen text is long and costly, with many signatures and
/// findings.
fn hostile_report() -> Report {
    let mut report = Sample::default().report();
    let signature: DkimSignatureReport = DkimSignatureReport {
        domain: costly(2000),
        selector: costly(2000),
        algorithm: costly(2000),
        ..report.dkim[0].clone()
    };
    report.dkim = vec![signature; 20];
    report.spf.check.domain = costly(2000);
    report.dmarc.from_domain = Some(costly(2000));
    report.dmarc.policy = costly(2000);
    report.authentication_results = costly(20_000);
    report.diagnosis = (0..20)
        .map(|_| Finding {
            code: FindingCode::MailingList,
            severity: Severity::Warning,
            title: costly(2000),
            detail: costly(2000),
            evidence: vec![costly(2000); 3],
            fix: Some(costly(2000)),
        })
        .collect();
    report
}

/// A result with a 5 MiB Subject and every other sender-chosen field long and costly; its
/// stored summary is the report's (`legacy`: the whole report, as results stored before
/// summaries existed have).
fn hostile_result(mailbox: Mailbox, report: &Report, subject: &str, legacy: bool) -> NewResult {
    let sample = Sample {
        mailbox,
        mail_from: format!("{}@sender.example", costly(3000)),
        header_from: Some(format!("{}@sender.example", costly(3000))),
        subject: Some(subject.to_owned()),
        helo: costly(3000),
        ..Sample::default()
    };
    let mut result = sample.new_result();
    result.session.client_ptr = Some(costly(3000));
    result.session.recipient = format!("{}+{}@tester.example", mailbox.as_str(), costly(3000));
    result.raw_message = b"Subject: kept small here\r\n\r\nbody\r\n".to_vec().into();
    result.report = serde_json::value::to_raw_value(report).unwrap();
    result.report_summary = if legacy {
        result.report.clone()
    } else {
        serde_json::value::to_raw_value(&report.summary()).unwrap()
    };
    result
}

#[tokio::test]
async fn fifty_hostile_results_give_pages_and_api_lists_under_a_megabyte() {
    let site = TestSite::start().await;
    let report = hostile_report();
    let subject = costly(5 << 20);
    // spf@ results with stored summaries, dkim@ results as stored before summaries existed.
    for (mailbox, legacy) in [(Mailbox::Spf, false), (Mailbox::Dkim, true)] {
        for _ in 0..50 {
            site.insert(hostile_result(mailbox, &report, &subject, legacy))
                .await;
        }
    }

    for path in ["/spf", "/dkim", "/"] {
        let page = site.get_text(path).await;
        eprintln!("{path}: {} bytes", page.len());
        assert!(
            page.len() < MAX_PAGE_BYTES,
            "{path} is {} bytes",
            page.len()
        );
        assert!(page.contains(" bytes)"), "{path} notes the cut lengths");
    }
    for mailbox in ["spf", "dkim"] {
        let path = format!("/api/v1/results?mailbox={mailbox}&limit=50");
        let text = site.get_text(&path).await;
        eprintln!("{path}: {} bytes", text.len());
        assert!(
            text.len() < MAX_PAGE_BYTES,
            "{path} is {} bytes",
            text.len()
        );
        let listed: Value = serde_json::from_str(&text).expect("JSON");
        let items = listed["results"].as_array().expect("results");
        assert_eq!(items.len(), 50);
        let item = &items[0];
        assert_eq!(
            item["dkim"].as_array().unwrap().len(),
            MAX_SUMMARY_SIGNATURES
        );
        assert_eq!(item["dkim_total"], 20);
        assert_eq!(
            item["diagnosis"].as_array().unwrap().len(),
            MAX_SUMMARY_FINDINGS
        );
        assert_eq!(item["diagnosis_total"], 20);
        assert_eq!(item["spf"]["result"], "pass");
        let subject = item["subject"].as_str().unwrap();
        assert!(subject.ends_with("… (5,242,880 bytes)"), "{mailbox}");
        assert!(
            !subject.contains('\u{1b}'),
            "control characters are not shown"
        );
    }
}
