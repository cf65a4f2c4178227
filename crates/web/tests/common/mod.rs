//! Shared by the web tests: a site served on loopback over a real SQLite store, and results
//! with full reports to put in it. Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;

use authcheck_store::{Mailbox, NewResult, SessionFacts, SharedStore};
use authcheck_verifier::{
    Alignment, AlignmentMode, ArcReport, ArcResult, DkimReasonCode, DkimResult,
    DkimSignatureReport, DmarcAnswer, DmarcQuery, DmarcRecord, DmarcReport, DmarcResult,
    IdentifierRole, OrganizationalDomain, PolicyTag, Psd, Report, SpfCheck, SpfIdentityKind,
    SpfReport, SpfResult, SpfTermOutcome, SpfTraceStep, Verdicts,
};
use authcheck_web::WebConfig;
use chrono::{DateTime, TimeZone, Utc};

pub const PUBLIC_URL: &str = "https://tester.example";

/// A running site: its base URL (`http://127.0.0.1:PORT`) and the store behind it.
pub struct TestSite {
    pub base: String,
    pub store: SharedStore,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestSite {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestSite {
    /// Serves the router over a fresh in-memory SQLite store on 127.0.0.1.
    pub async fn start() -> TestSite {
        let store = authcheck_store::open("sqlite::memory:")
            .await
            .expect("open an in-memory SQLite store");
        TestSite::start_with(store).await
    }

    pub async fn start_with(store: SharedStore) -> TestSite {
        let config = WebConfig {
            domains: vec!["tester.example".into(), "second.example".into()],
            public_url: PUBLIC_URL.into(),
            hostname: "mx.tester.example".into(),
            status: authcheck_web::StatusInfo::default(),
            replies: authcheck_web::RepliesInfo::default(),
            public_results: true,
            private_tests: authcheck_web::PrivateTestsConfig::default(),
        };
        let app = authcheck_web::router(store.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve the site");
        });
        TestSite {
            base: format!("http://{addr}"),
            store,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stores `result` and returns its id.
    /// The body of a successful `GET path`; fails the test on any other status.
    pub async fn get_text(&self, path: &str) -> String {
        let response = reqwest::get(self.url(path)).await.expect("GET");
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.text().await.expect("a body")
    }

    pub async fn insert(&self, result: NewResult) -> String {
        let ids = self
            .store
            .insert(vec![result])
            .await
            .expect("insert a result");
        ids.into_iter().next().expect("one id per result")
    }
}

/// What varies between test results.
#[derive(Clone, Debug)]
pub struct Sample {
    pub mailbox: Mailbox,
    pub mail_from: String,
    pub header_from: Option<String>,
    pub subject: Option<String>,
    pub helo: String,
    pub verdict: String,
    pub received_at: DateTime<Utc>,
}

impl Default for Sample {
    fn default() -> Self {
        Sample {
            mailbox: Mailbox::Spf,
            mail_from: "bounce@sender.example".into(),
            header_from: Some("alice@sender.example".into()),
            subject: Some("hello tester".into()),
            helo: "mail.sender.example".into(),
            verdict: "|OK| spf-pass".into(),
            received_at: Utc.with_ymd_and_hms(2026, 11, 23, 12, 34, 56).unwrap(),
        }
    }
}

impl Sample {
    pub fn new_result(&self) -> NewResult {
        let subject = self.subject.clone().unwrap_or_default();
        let raw_message = format!(
            "Received: from {helo}\r\n\tby mx.tester.example\r\nFrom: {from}\r\nTo: spf@tester.example\r\n\
             Subject: {subject}\r\nX-Odd: caf\u{e9}\r\n\r\nBody line\r\n",
            helo = self.helo,
            from = self.header_from.clone().unwrap_or_default(),
        );
        NewResult {
            mailbox: self.mailbox,
            received_at: self.received_at,
            session: SessionFacts {
                client_ip: "192.0.2.25".into(),
                client_port: 41234,
                client_ptr: Some("mail.sender.example".into()),
                client_ptr_confirmed: true,
                helo: self.helo.clone(),
                tls_version: Some("TLSv1.3".into()),
                tls_cipher: Some("TLS13_AES_256_GCM_SHA384".into()),
                mail_from: self.mail_from.clone(),
                recipient: format!("{}+tag@tester.example", self.mailbox.as_str()),
                size: raw_message.len() as u64,
            },
            header_from: self.header_from.clone(),
            subject: self.subject.clone(),
            verdict: self.verdict.clone(),
            prefixed_subject: format!("{} {subject}", self.verdict),
            report: serde_json::value::to_raw_value(&self.report()).expect("serialize the report"),
            report_summary: serde_json::value::to_raw_value(&self.report().summary())
                .expect("serialize the summary"),
            raw_message: raw_message.into_bytes().into(),
            private_test: None,
        }
    }

    /// A full report: SPF with a nested include, one DKIM signature, DMARC with a record.
    pub fn report(&self) -> Report {
        let domain = self
            .mail_from
            .rsplit_once('@')
            .map_or("sender.example".to_owned(), |(_, d)| d.to_owned());
        let spf_check = SpfCheck {
            checked: true,
            identity_kind: SpfIdentityKind::Mailfrom,
            identity: self.mail_from.clone(),
            domain: domain.clone(),
            result: SpfResult::Pass,
            reason: "include:_spf.sender.example matched 192.0.2.25".into(),
            explanation: None,
            records: vec!["v=spf1 include:_spf.sender.example -all".into()],
            trace: vec![SpfTraceStep {
                domain: domain.clone(),
                term: "include:_spf.sender.example".into(),
                outcome: SpfTermOutcome::Match,
                detail: "the included record passed".into(),
                nested: vec![SpfTraceStep {
                    domain: "_spf.sender.example".into(),
                    term: "ip4:192.0.2.0/24".into(),
                    outcome: SpfTermOutcome::Match,
                    detail: "192.0.2.25 is in 192.0.2.0/24".into(),
                    nested: vec![],
                }],
            }],
            trace_not_listed: 0,
            dns_lookups: 1,
            dns_lookup_limit: 10,
            void_lookups: 0,
            void_lookup_limit: 2,
            decided_by: Some("include:_spf.sender.example".into()),
        };
        let helo_check = SpfCheck {
            identity_kind: SpfIdentityKind::Helo,
            identity: format!("postmaster@{}", self.helo),
            domain: self.helo.clone(),
            result: SpfResult::None,
            reason: "no SPF record at the HELO name".into(),
            records: vec![],
            trace: vec![],
            decided_by: None,
            ..spf_check.clone()
        };
        Report {
            verdicts: Verdicts {
                spf: self.verdict.parse().expect("the sample's verdict is a tester verdict"),
                dkim: "!! dkim-fail !!".parse().unwrap(),
            },
            spf: SpfReport { check: spf_check, aligned: true, helo: Some(helo_check) },
            dkim: vec![DkimSignatureReport {
                domain: "sender.example".into(),
                selector: "sel2026".into(),
                algorithm: "rsa-sha256".into(),
                canonicalization: "relaxed/relaxed".into(),
                identity: Some("@sender.example".into()),
                signed_headers: vec!["from".into(), "subject".into(), "date".into()],
                signed_headers_not_listed: 0,
                body_length: None,
                timestamp: None,
                expiration: None,
                key_type: Some("rsa".into()),
                key_bits: Some(2048),
                result: DkimResult::Fail,
                reason: "the body hash does not match".into(),
                reason_code: DkimReasonCode::BodyHashMismatch,
                aligned: false,
                warnings: vec!["the signature uses l=".into()],
                header_value: "v=1; a=rsa-sha256; d=sender.example; s=sel2026; b=abc".into(),
            }],
            dkim_not_listed: 0,
            dmarc: DmarcReport {
                from_domain: Some("sender.example".into()),
                organizational_domain: Some("sender.example".into()),
                problem: None,
                record: Some(DmarcRecord {
                    name: "_dmarc.sender.example".into(),
                    text: "v=DMARC1; p=reject; adkim=s".into(),
                    p: "reject".into(),
                    sp: None,
                    np: None,
                    adkim: AlignmentMode::Strict,
                    aspf: AlignmentMode::Relaxed,
                    pct: 100,
                    rua: vec![],
                    psd: Psd::U,
                    testing: false,
                    removed_tags: vec![],
                }),
                spf_alignment: Alignment {
                    mode: AlignmentMode::Relaxed,
                    aligned: true,
                    domain: Some("sender.example".into()),
                },
                dkim_alignment: Alignment { mode: AlignmentMode::Strict, aligned: false, domain: None },
                result: DmarcResult::Pass,
                policy: "none".into(),
                reason: "SPF passes and aligns".into(),
                policy_tag: Some(PolicyTag::P),
                author_domain_exists: None,
                queries: vec![
                    DmarcQuery {
                        name: "_dmarc.sender.example".into(),
                        purpose: "policy and organizational domain of sender.example".into(),
                        answer: DmarcAnswer::Record,
                        detail: "v=DMARC1; p=reject; adkim=s".into(),
                    },
                    DmarcQuery {
                        name: "_dmarc.example".into(),
                        purpose: "policy and organizational domain of sender.example".into(),
                        answer: DmarcAnswer::NoRecord,
                        detail: String::new(),
                    },
                ],
                walk_queries: 2,
                walk_query_limit: 8,
                organizational_domains: vec![OrganizationalDomain {
                    role: IdentifierRole::From,
                    domain: "sender.example".into(),
                    organizational_domain: Some("sender.example".into()),
                    how: "sender.example is the shortest name on the walk from sender.example with a DMARC record, so it is the organizational domain.".into(),
                    rfc7489_organizational_domain: "sender.example".into(),
                }],
                notes: vec![],
                rfc7489: None,
                rfc7489_differences: vec![],
            },
            arc: ArcReport { result: ArcResult::None, sets: 0, reason: "the message has no ARC sets".into() },
            authentication_results: "Authentication-Results: mx.tester.example;\r\n\tspf=pass smtp.mailfrom=sender.example"
                .into(),
            diagnosis: Vec::new(),
        }
    }
}
