//! The two tester verdicts: one line each for the `spf@` and `dkim@` mailboxes.
//!
//! `|OK|` means the identity passed and aligns with the From domain, `|~OK|` that it passed and
//! the message still passes DMARC through the other identity, `!! ... !!` that something needs
//! fixing. The text is part of the stable report and users filter mail on it, so a [`Verdict`]
//! is a value with exactly one text form: its `Display`, which is also its JSON form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::mailbox::Mailbox;
use crate::report::{DkimResult, DkimSignatureReport, SpfReport, SpfResult};

/// How a verdict reads at a glance; each grade has its own prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Grade {
    /// `|OK|`: passed and aligned with the From domain.
    Ok,
    /// `|~OK|`: passed unaligned, but the message passes DMARC through the other identity.
    PartialOk,
    /// `!! ... !!`: something needs fixing.
    Problem,
}

/// What the verdict found: the word after the method, as in `spf-softfail` or `dkim-diff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Finding {
    Pass,
    /// Passed, but for a domain that does not align with the From domain.
    Diff,
    /// No SPF record, or no DKIM signature.
    None,
    Fail,
    Softfail,
    Neutral,
    /// A DKIM signature that cannot be processed.
    Invalid,
    Permerror,
    Temperror,
}

impl Finding {
    fn as_str(self) -> &'static str {
        match self {
            Finding::Pass => "pass",
            Finding::Diff => "diff",
            Finding::None => "none",
            Finding::Fail => "fail",
            Finding::Softfail => "softfail",
            Finding::Neutral => "neutral",
            Finding::Invalid => "invalid",
            Finding::Permerror => "permerror",
            Finding::Temperror => "temperror",
        }
    }

    const ALL: [Finding; 9] = [
        Finding::Pass,
        Finding::Diff,
        Finding::None,
        Finding::Fail,
        Finding::Softfail,
        Finding::Neutral,
        Finding::Invalid,
        Finding::Permerror,
        Finding::Temperror,
    ];
}

/// One tester verdict, e.g. `|OK| spf-pass`, `|~OK| dkim-pass` or `!! spf-softfail !!`.
///
/// Only the verdicts the tester can give exist: the constructors are [`spf_verdict`],
/// [`dkim_verdict`] and parsing a verdict's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Verdict {
    grade: Grade,
    /// The identity judged, which is also the tester mailbox the verdict is shown for.
    method: Mailbox,
    finding: Finding,
}

impl Verdict {
    pub fn grade(self) -> Grade {
        self.grade
    }

    /// The verdict with this method and finding, if the tester can give it; `partial` picks
    /// `|~OK|` over `|OK|` for a pass.
    fn new(method: Mailbox, finding: Finding, partial: bool) -> Option<Verdict> {
        let possible = match method {
            Mailbox::Spf => finding != Finding::Invalid,
            Mailbox::Dkim => !matches!(
                finding,
                Finding::Softfail | Finding::Neutral | Finding::Permerror
            ),
        };
        let grade = match (finding, partial) {
            (Finding::Pass, false) => Grade::Ok,
            (Finding::Pass, true) => Grade::PartialOk,
            (_, false) => Grade::Problem,
            (_, true) => return None,
        };
        possible.then_some(Verdict {
            grade,
            method,
            finding,
        })
    }

    fn problem(method: Mailbox, finding: Finding) -> Verdict {
        Verdict {
            grade: Grade::Problem,
            method,
            finding,
        }
    }

    fn pass(method: Mailbox, grade: Grade) -> Verdict {
        Verdict {
            grade,
            method,
            finding: Finding::Pass,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (method, finding) = (self.method.as_str(), self.finding.as_str());
        match self.grade {
            Grade::Ok => write!(f, "|OK| {method}-{finding}"),
            Grade::PartialOk => write!(f, "|~OK| {method}-{finding}"),
            Grade::Problem => write!(f, "!! {method}-{finding} !!"),
        }
    }
}

/// The text is not one of the verdicts the tester gives.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a tester verdict (such as `|OK| spf-pass` or `!! dkim-fail !!`)")]
pub struct UnknownVerdict(String);

impl FromStr for Verdict {
    type Err = UnknownVerdict;

    fn from_str(text: &str) -> Result<Verdict, UnknownVerdict> {
        let unknown = || UnknownVerdict(text.to_owned());
        let (name, partial) = if let Some(name) = text.strip_prefix("|OK| ") {
            (name, false)
        } else if let Some(name) = text.strip_prefix("|~OK| ") {
            (name, true)
        } else {
            let name = text
                .strip_prefix("!! ")
                .and_then(|rest| rest.strip_suffix(" !!"))
                .ok_or_else(unknown)?;
            (name, false)
        };
        let (method, finding) = name.split_once('-').ok_or_else(unknown)?;
        let method = [Mailbox::Spf, Mailbox::Dkim]
            .into_iter()
            .find(|candidate| candidate.as_str() == method)
            .ok_or_else(unknown)?;
        let finding = Finding::ALL
            .into_iter()
            .find(|candidate| candidate.as_str() == finding)
            .ok_or_else(unknown)?;
        let verdict = Verdict::new(method, finding, partial).ok_or_else(unknown)?;
        // `|OK| spf-fail` names a real method and finding but is not a verdict.
        if verdict.to_string() == text {
            Ok(verdict)
        } else {
            Err(unknown())
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Verdict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Verdict, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The verdict for the `spf@` mailbox.
///
/// `any_dkim_aligned`: some DKIM signature passed with a `d=` aligned with the From domain.
pub fn spf_verdict(spf: &SpfReport, any_dkim_aligned: bool) -> Verdict {
    let failure = match spf.check.result {
        SpfResult::Pass => None,
        SpfResult::Fail => Some(Finding::Fail),
        SpfResult::Softfail => Some(Finding::Softfail),
        SpfResult::Neutral => Some(Finding::Neutral),
        SpfResult::None => Some(Finding::None),
        SpfResult::Permerror => Some(Finding::Permerror),
        SpfResult::Temperror => Some(Finding::Temperror),
    };
    match failure {
        Some(finding) => Verdict::problem(Mailbox::Spf, finding),
        None if spf.aligned => Verdict::pass(Mailbox::Spf, Grade::Ok),
        None if any_dkim_aligned => Verdict::pass(Mailbox::Spf, Grade::PartialOk),
        None => Verdict::problem(Mailbox::Spf, Finding::Diff),
    }
}

/// The verdict for the `dkim@` mailbox.
///
/// `spf_aligned`: SPF passed for a domain aligned with the From domain.
pub fn dkim_verdict(signatures: &[DkimSignatureReport], spf_aligned: bool) -> Verdict {
    let has = |result: DkimResult| {
        signatures
            .iter()
            .any(|signature| signature.result == result)
    };
    if signatures.is_empty() {
        Verdict::problem(Mailbox::Dkim, Finding::None)
    } else if has(DkimResult::Pass) {
        if signatures
            .iter()
            .any(|signature| signature.result == DkimResult::Pass && signature.aligned)
        {
            Verdict::pass(Mailbox::Dkim, Grade::Ok)
        } else if spf_aligned {
            Verdict::pass(Mailbox::Dkim, Grade::PartialOk)
        } else {
            Verdict::problem(Mailbox::Dkim, Finding::Diff)
        }
    } else if has(DkimResult::Fail) {
        Verdict::problem(Mailbox::Dkim, Finding::Fail)
    } else if has(DkimResult::Invalid) {
        Verdict::problem(Mailbox::Dkim, Finding::Invalid)
    } else {
        Verdict::problem(Mailbox::Dkim, Finding::Temperror)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every verdict the type can hold.
    fn all() -> Vec<Verdict> {
        let mut all = Vec::new();
        for method in [Mailbox::Spf, Mailbox::Dkim] {
            for finding in Finding::ALL {
                for partial in [false, true] {
                    all.extend(Verdict::new(method, finding, partial));
                }
            }
        }
        all
    }

    #[test]
    fn every_verdict_reads_back_from_its_text_and_its_json() {
        let all = all();
        // README, "The verdicts": nine for SPF, seven for DKIM.
        assert_eq!(all.len(), 16);
        for verdict in all {
            let text = verdict.to_string();
            assert_eq!(text.parse::<Verdict>(), Ok(verdict));
            let json = serde_json::to_value(verdict).unwrap();
            assert_eq!(json, serde_json::Value::String(text));
            assert_eq!(serde_json::from_value::<Verdict>(json).unwrap(), verdict);
        }
    }

    #[test]
    fn the_text_is_the_prefix_and_the_name() {
        let spf_pass = Verdict::pass(Mailbox::Spf, Grade::Ok);
        assert_eq!(spf_pass.to_string(), "|OK| spf-pass");
        let dkim_partial = Verdict::pass(Mailbox::Dkim, Grade::PartialOk);
        assert_eq!(dkim_partial.to_string(), "|~OK| dkim-pass");
        let softfail = Verdict::problem(Mailbox::Spf, Finding::Softfail);
        assert_eq!(softfail.to_string(), "!! spf-softfail !!");
    }

    #[test]
    fn the_grade_follows_the_prefix() {
        let grade = |text: &str| text.parse::<Verdict>().unwrap().grade();
        assert_eq!(grade("|OK| spf-pass"), Grade::Ok);
        assert_eq!(grade("|~OK| dkim-pass"), Grade::PartialOk);
        assert_eq!(grade("!! spf-softfail !!"), Grade::Problem);
    }

    #[test]
    fn text_the_tester_never_gives_is_refused() {
        for text in [
            "",
            "|OK| spf-fail",
            "!! spf-pass !!",
            "|~OK| dkim-diff",
            "!! dkim-softfail !!",
            "!! spf-invalid !!",
            "|OK| dmarc-pass",
            "|OK|  spf-pass",
            "|OK| spf-pass ",
            "!! spf-fail",
            "|ok| spf-pass",
        ] {
            assert!(text.parse::<Verdict>().is_err(), "{text:?} was accepted");
        }
        assert!(serde_json::from_str::<Verdict>("\"|OK| spf-fail\"").is_err());
    }
}
