//! The summary of a [`Report`] that listings carry: the SPF, DKIM, DMARC and ARC results, the
//! Authentication-Results field and the diagnosis titles, each bounded, so that a listing of
//! fifty results stays small however large the reports of hostile messages are.
//!
//! Its JSON keeps the report's own names and shapes (`spf.result`, `dkim[i].domain`,
//! `dmarc.policy`, `diagnosis[i].code`, ...), so that a program reading those paths reads the
//! same values from a listing as from the single result; fields the summary leaves out are only
//! in the report. It is made once, when the result is stored; [`ReportSummary::from_stored`]
//! also reads it from a whole report, for results stored before summaries existed.

use serde::{Deserialize, Serialize};

use crate::diagnosis::{FindingCode, Severity};
use crate::display::bounded_display_text;
use crate::report::{ArcResult, DkimResult, DmarcResult, Report, SpfResult};

/// DKIM signatures a summary lists; `dkim_total` counts them all.
pub const MAX_SUMMARY_SIGNATURES: usize = 3;
/// Diagnosis findings a summary lists (the most serious first); `diagnosis_total` counts them.
pub const MAX_SUMMARY_FINDINGS: usize = 8;
/// Bytes kept of a name (domain, selector, algorithm) or a title in a summary.
pub const MAX_SUMMARY_TEXT_BYTES: usize = 128;
/// Bytes kept of the Authentication-Results field in a summary.
pub const MAX_SUMMARY_AUTHENTICATION_RESULTS_BYTES: usize = 1024;

/// What a listing shows of one report; see the module documentation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReportSummary {
    pub spf: SpfSummary,
    /// The first [`MAX_SUMMARY_SIGNATURES`] signatures, in header order.
    pub dkim: Vec<DkimSummary>,
    /// How many DKIM signatures the message has.
    #[serde(default)]
    pub dkim_total: Option<usize>,
    /// Read from a whole report only: the signatures it counted without listing them.
    #[serde(default, skip_serializing)]
    dkim_not_listed: usize,
    pub dmarc: DmarcSummary,
    pub arc: ArcSummary,
    /// The Authentication-Results field, cut at
    /// [`MAX_SUMMARY_AUTHENTICATION_RESULTS_BYTES`].
    pub authentication_results: String,
    /// The first [`MAX_SUMMARY_FINDINGS`] findings, most serious first.
    #[serde(default)]
    pub diagnosis: Vec<FindingSummary>,
    /// How many findings the report has.
    #[serde(default)]
    pub diagnosis_total: Option<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SpfSummary {
    pub result: SpfResult,
    pub domain: String,
    pub aligned: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DkimSummary {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub result: DkimResult,
    pub aligned: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DmarcSummary {
    pub result: DmarcResult,
    /// The policy a receiver would apply: `none`, `quarantine` or `reject`.
    pub policy: String,
    pub from_domain: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArcSummary {
    pub result: ArcResult,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FindingSummary {
    pub code: FindingCode,
    pub severity: Severity,
    pub title: String,
}

impl Report {
    /// This report's summary, bounded.
    pub fn summary(&self) -> ReportSummary {
        ReportSummary {
            spf: SpfSummary {
                result: self.spf.check.result,
                domain: self.spf.check.domain.clone(),
                aligned: self.spf.aligned,
            },
            dkim: self
                .dkim
                .iter()
                .take(MAX_SUMMARY_SIGNATURES)
                .map(|signature| DkimSummary {
                    domain: signature.domain.clone(),
                    selector: signature.selector.clone(),
                    algorithm: signature.algorithm.clone(),
                    result: signature.result,
                    aligned: signature.aligned,
                })
                .collect(),
            dkim_total: Some(self.dkim.len() + self.dkim_not_listed as usize),
            dkim_not_listed: 0,
            dmarc: DmarcSummary {
                result: self.dmarc.result,
                policy: self.dmarc.policy.clone(),
                from_domain: self.dmarc.from_domain.clone(),
            },
            arc: ArcSummary {
                result: self.arc.result,
            },
            authentication_results: self.authentication_results.clone(),
            diagnosis: self
                .diagnosis
                .iter()
                .take(MAX_SUMMARY_FINDINGS)
                .map(|finding| FindingSummary {
                    code: finding.code,
                    severity: finding.severity,
                    title: finding.title.clone(),
                })
                .collect(),
            diagnosis_total: Some(self.diagnosis.len()),
        }
        .bounded()
    }
}

impl ReportSummary {
    /// The summary in `stored`: a summary as [`Report::summary`] made it, or a whole report
    /// (results stored before summaries existed); bounded either way. `None` when it is
    /// neither (a report of a shape this version no longer reads).
    pub fn from_stored(stored: &serde_json::Value) -> Option<ReportSummary> {
        ReportSummary::deserialize(stored)
            .ok()
            .map(ReportSummary::bounded)
    }

    /// Cuts every list and text to the summary's bounds; the totals count what was there.
    fn bounded(mut self) -> ReportSummary {
        let name = |text: &mut String| {
            if let std::borrow::Cow::Owned(shown) =
                bounded_display_text(text, MAX_SUMMARY_TEXT_BYTES)
            {
                *text = shown;
            }
        };
        self.dkim_total = Some(
            self.dkim_total
                .unwrap_or(self.dkim.len() + self.dkim_not_listed),
        );
        self.dkim.truncate(MAX_SUMMARY_SIGNATURES);
        for signature in &mut self.dkim {
            name(&mut signature.domain);
            name(&mut signature.selector);
            name(&mut signature.algorithm);
        }
        self.diagnosis_total = Some(self.diagnosis_total.unwrap_or(self.diagnosis.len()));
        self.diagnosis.truncate(MAX_SUMMARY_FINDINGS);
        for finding in &mut self.diagnosis {
            name(&mut finding.title);
        }
        name(&mut self.spf.domain);
        name(&mut self.dmarc.policy);
        if let Some(domain) = &mut self.dmarc.from_domain {
            name(domain);
        }
        if let std::borrow::Cow::Owned(shown) = bounded_display_text(
            &self.authentication_results,
            MAX_SUMMARY_AUTHENTICATION_RESULTS_BYTES,
        ) {
            self.authentication_results = shown;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report with `signatures` DKIM signatures whose `d=` is `domain`.
    fn report(signatures: usize, domain: &str) -> serde_json::Value {
        let signature = serde_json::json!({
            "domain": domain, "selector": "s1", "algorithm": "rsa-sha256", "result": "pass",
            "reason": "verified", "aligned": true, "header_value": "v=1; ...",
        });
        serde_json::json!({
            "verdicts": {"spf": "|OK| spf-pass", "dkim": "|OK| dkim-pass"},
            "spf": {"result": "pass", "domain": "example.com", "aligned": true, "trace": []},
            "dkim": vec![signature; signatures],
            "dmarc": {"result": "pass", "policy": "reject", "from_domain": "example.com"},
            "arc": {"result": "none", "sets": 0},
            "authentication_results": "Authentication-Results: mx.test; spf=pass",
        })
    }

    #[test]
    fn a_whole_report_reads_as_its_bounded_summary() {
        let summary = ReportSummary::from_stored(&report(7, &"d".repeat(500))).unwrap();
        assert_eq!(summary.dkim.len(), MAX_SUMMARY_SIGNATURES);
        assert_eq!(summary.dkim_total, Some(7));
        assert_eq!(
            summary.diagnosis_total,
            Some(0),
            "older reports have no diagnosis"
        );
        assert!(summary.dkim[0].domain.len() <= MAX_SUMMARY_TEXT_BYTES);
        assert!(summary.dkim[0].domain.ends_with("d… (500 bytes)"));
        assert_eq!(summary.dmarc.policy, "reject");
        assert_eq!(summary.spf.result, SpfResult::Pass);
    }

    #[test]
    fn a_stored_summary_reads_back_unchanged() {
        let summary = ReportSummary::from_stored(&report(7, &"d".repeat(500))).unwrap();
        let stored = serde_json::to_value(&summary).unwrap();
        assert_eq!(ReportSummary::from_stored(&stored), Some(summary));
        assert_eq!(
            ReportSummary::from_stored(&serde_json::json!({"x": 1})),
            None
        );
    }
}
