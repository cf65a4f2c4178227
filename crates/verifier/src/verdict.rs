//! The two tester verdicts: one line each for the `spf@` and `dkim@` mailboxes, and both,
//! SPF first, for the full check at `check@` ([`Verdicts::shown_for`]).
//!
//! `|OK|` means the identity passed and aligns with the From domain, `|~OK|` that it passed and
//! the message still passes DMARC through the other identity, `!! ... !!` that something needs
//! fixing. The text is part of the stable report and users filter mail on it, so a [`Verdict`]
//! is a value with exactly one text form: its `Display`, which is also its JSON form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::mailbox::Mailbox;
use crate::report::{DkimResult, DkimSignatureReport, SpfReport, SpfResult, Verdicts};

/// How a verdict reads at a glance; each grade has its own prefix. Grades are ordered from
/// best to worst, so the worst of several verdicts is their `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grade {
    /// `|OK|`: passed and aligned with the From domain.
    Ok,
    /// `|~OK|`: passed unaligned, but the message passes DMARC through the other identity.
    PartialOk,
    /// `!! ... !!`: something needs fixing.
    Problem,
}

/// The identity a verdict judges: the word before the finding, as in `spf-pass`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Method {
    Spf,
    Dkim,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Spf => "spf",
            Method::Dkim => "dkim",
        }
    }
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
    /// The identity judged.
    method: Method,
    finding: Finding,
}

impl Verdict {
    pub fn grade(self) -> Grade {
        self.grade
    }

    /// The verdict with this method and finding, if the tester can give it; `partial` picks
    /// `|~OK|` over `|OK|` for a pass.
    fn new(method: Method, finding: Finding, partial: bool) -> Option<Verdict> {
        let possible = match method {
            Method::Spf => finding != Finding::Invalid,
            Method::Dkim => !matches!(
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

    fn problem(method: Method, finding: Finding) -> Verdict {
        Verdict {
            grade: Grade::Problem,
            method,
            finding,
        }
    }

    fn pass(method: Method, grade: Grade) -> Verdict {
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
        let method = [Method::Spf, Method::Dkim]
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

impl Verdicts {
    /// The verdicts a result for `mailbox` shows, in order: its own for `spf@` and `dkim@`,
    /// both (SPF first) for the full check at `check@`.
    pub fn shown_for(self, mailbox: Mailbox) -> Vec<Verdict> {
        match mailbox {
            Mailbox::Spf => vec![self.spf],
            Mailbox::Dkim => vec![self.dkim],
            Mailbox::Check => vec![self.spf, self.dkim],
        }
    }

    /// The verdict text of a result for `mailbox`, as its Subject prefix and its stored
    /// `verdict` carry it: the verdicts of [`Verdicts::shown_for`] separated by one space, so
    /// `|OK| spf-pass` for `spf@` and `|OK| spf-pass !! dkim-none !!` for `check@`.
    pub fn text_for(self, mailbox: Mailbox) -> String {
        let shown: Vec<String> = self
            .shown_for(mailbox)
            .iter()
            .map(Verdict::to_string)
            .collect();
        shown.join(" ")
    }
}

/// Reads back a verdict text made by [`Verdicts::text_for`]: one verdict, or two separated by
/// one space. `None` for any other text.
pub fn shown_verdicts(text: &str) -> Option<Vec<Verdict>> {
    if let Ok(verdict) = text.parse::<Verdict>() {
        return Some(vec![verdict]);
    }
    // A verdict ends in ` !!` or in its finding and the next starts with `|` or `!!`, so only
    // a space before one of those can separate two.
    text.match_indices(' ')
        .filter(|&(at, _)| text[at + 1..].starts_with(['|', '!']))
        .find_map(|(at, _)| {
            let first = text[..at].parse::<Verdict>().ok()?;
            let second = text[at + 1..].parse::<Verdict>().ok()?;
            Some(vec![first, second])
        })
}

/// The worst grade among `verdicts` (`None` when there are none): how a result that shows
/// several verdicts reads at a glance.
pub fn worst_grade(verdicts: &[Verdict]) -> Option<Grade> {
    verdicts.iter().map(|verdict| verdict.grade()).max()
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
        Some(finding) => Verdict::problem(Method::Spf, finding),
        None if spf.aligned => Verdict::pass(Method::Spf, Grade::Ok),
        None if any_dkim_aligned => Verdict::pass(Method::Spf, Grade::PartialOk),
        None => Verdict::problem(Method::Spf, Finding::Diff),
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
        Verdict::problem(Method::Dkim, Finding::None)
    } else if has(DkimResult::Pass) {
        if signatures
            .iter()
            .any(|signature| signature.result == DkimResult::Pass && signature.aligned)
        {
            Verdict::pass(Method::Dkim, Grade::Ok)
        } else if spf_aligned {
            Verdict::pass(Method::Dkim, Grade::PartialOk)
        } else {
            Verdict::problem(Method::Dkim, Finding::Diff)
        }
    } else if has(DkimResult::Fail) {
        Verdict::problem(Method::Dkim, Finding::Fail)
    } else if has(DkimResult::Invalid) {
        Verdict::problem(Method::Dkim, Finding::Invalid)
    } else {
        Verdict::problem(Method::Dkim, Finding::Temperror)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every verdict the type can hold.
    fn all() -> Vec<Verdict> {
        let mut all = Vec::new();
        for method in [Method::Spf, Method::Dkim] {
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
        let spf_pass = Verdict::pass(Method::Spf, Grade::Ok);
        assert_eq!(spf_pass.to_string(), "|OK| spf-pass");
        let dkim_partial = Verdict::pass(Method::Dkim, Grade::PartialOk);
        assert_eq!(dkim_partial.to_string(), "|~OK| dkim-pass");
        let softfail = Verdict::problem(Method::Spf, Finding::Softfail);
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
    fn a_full_check_shows_both_verdicts_spf_first_and_reads_them_back() {
        let verdicts = Verdicts {
            spf: Verdict::pass(Method::Spf, Grade::Ok),
            dkim: Verdict::problem(Method::Dkim, Finding::None),
        };
        assert_eq!(verdicts.text_for(Mailbox::Spf), "|OK| spf-pass");
        assert_eq!(verdicts.text_for(Mailbox::Dkim), "!! dkim-none !!");
        let both = verdicts.text_for(Mailbox::Check);
        assert_eq!(both, "|OK| spf-pass !! dkim-none !!");
        assert_eq!(
            shown_verdicts(&both),
            Some(vec![verdicts.spf, verdicts.dkim])
        );
        assert_eq!(
            worst_grade(&verdicts.shown_for(Mailbox::Check)),
            Some(Grade::Problem)
        );
        assert_eq!(
            worst_grade(&verdicts.shown_for(Mailbox::Spf)),
            Some(Grade::Ok)
        );
        for first in all() {
            for second in all() {
                let text = format!("{first} {second}");
                assert_eq!(shown_verdicts(&text), Some(vec![first, second]), "{text}");
            }
        }
        for text in [
            "",
            "|OK| spf-pass  |OK| dkim-pass",
            "|OK| spf-pass x",
            "check-pass",
        ] {
            assert_eq!(shown_verdicts(text), None, "{text:?}");
        }
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
