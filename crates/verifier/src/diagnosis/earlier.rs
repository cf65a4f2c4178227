//! What intermediaries saw: earlier `Authentication-Results` fields and ARC sets (sealer `d=`,
//! `s=`, `cv=` and the results recorded in `ARC-Authentication-Results`). Anyone can write
//! these fields, so they are evidence to explain a failure, never a verdict.

use std::collections::BTreeMap;

use super::{Facts, Finding, FindingCode, MAX_EARLIER_RESULTS, Severity, one_line};
use crate::dkim::tags::TagList;
use crate::report::{DkimResult, DmarcResult, SpfResult};

/// The methods whose recorded results are reported.
const METHODS: [&str; 3] = ["spf", "dkim", "dmarc"];

/// One results field: who wrote it and `method=result` pairs in order.
#[derive(Debug, Default)]
struct Recorded {
    authserv_id: String,
    results: Vec<(String, String)>,
}

impl Recorded {
    /// Reads `[i=N;] authserv-id [version]; method=result props; …` (RFC 8601, RFC 8617).
    fn parse(value: &str) -> (Option<u32>, Recorded) {
        let mut parts = value.split(';').map(strip_comments);
        let mut first = parts.next().unwrap_or_default();
        let instance = first
            .trim()
            .strip_prefix("i=")
            .map(|i| i.trim().parse::<u32>().ok());
        if instance.is_some() {
            first = parts.next().unwrap_or_default();
        }
        let instance = instance.flatten();
        let authserv_id = first
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let results = parts
            .filter_map(|part| {
                let (method, result) = part.split_whitespace().next()?.split_once('=')?;
                let method = method.to_ascii_lowercase();
                METHODS
                    .contains(&method.as_str())
                    .then(|| (method, result.to_ascii_lowercase()))
            })
            .collect();
        (
            instance,
            Recorded {
                authserv_id,
                results,
            },
        )
    }

    fn passed(&self, method: &str) -> bool {
        self.results.iter().any(|(m, r)| m == method && r == "pass")
    }

    /// `spf=pass dkim=pass dmarc=pass`, first result per method.
    fn summary(&self) -> String {
        METHODS
            .iter()
            .filter_map(|method| {
                let (_, result) = self.results.iter().find(|(m, _)| m == method)?;
                Some(format!("{method}={result}"))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn any_pass(&self) -> bool {
        METHODS.iter().any(|method| self.passed(method))
    }
}

/// Text with `(comments)` removed (nesting followed), for reading result tokens.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0u32;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether authentication fails here in a way earlier results could explain.
fn fails_here(facts: &Facts<'_>) -> bool {
    let report = facts.report;
    report.dmarc.result == DmarcResult::Fail
        || report.spf.check.result != SpfResult::Pass
        || !report.dkim.iter().any(|s| s.result == DkimResult::Pass)
}

/// What fails here, for the finding's first words.
fn failing_here(facts: &Facts<'_>) -> &'static str {
    if facts.report.dmarc.result == DmarcResult::Fail {
        "DMARC fails here"
    } else if facts
        .report
        .dkim
        .iter()
        .any(|s| s.result == DkimResult::Fail)
    {
        "DKIM fails here"
    } else {
        "Authentication does not pass here"
    }
}

pub(crate) fn diagnose(facts: &Facts<'_>, findings: &mut Vec<Finding>) {
    if !fails_here(facts) {
        return;
    }
    findings.extend(arc_sealer_saw_pass(facts));
    findings.extend(earlier_results_passed(facts));
}

/// The ARC sets, by instance: the seal's `d=`, `s=`, `cv=` and what its AAR recorded.
fn arc_sealer_saw_pass(facts: &Facts<'_>) -> Option<Finding> {
    #[derive(Default)]
    struct Set {
        sealer: String,
        selector: String,
        cv: String,
        recorded: Option<Recorded>,
        aar: String,
    }
    let mut sets: BTreeMap<u32, Set> = BTreeMap::new();
    for value in facts.field_values("ARC-Seal", MAX_EARLIER_RESULTS) {
        let tags = TagList::parse_lenient(&value);
        let Some(instance) = tags.value("i").and_then(|i| i.trim().parse().ok()) else {
            continue;
        };
        let set = sets.entry(instance).or_default();
        set.sealer = tags.value("d").unwrap_or_default().to_ascii_lowercase();
        set.selector = tags.value("s").unwrap_or_default().to_string();
        set.cv = tags.value("cv").unwrap_or_default().to_ascii_lowercase();
    }
    for value in facts.field_values("ARC-Authentication-Results", MAX_EARLIER_RESULTS) {
        let (Some(instance), recorded) = Recorded::parse(&value) else {
            continue;
        };
        let set = sets.entry(instance).or_default();
        set.aar = one_line(&value);
        set.recorded = Some(recorded);
    }
    // The earliest set that saw passing results: the one closest to the original sender.
    let (instance, set) = sets
        .iter()
        .find(|(_, set)| set.recorded.as_ref().is_some_and(Recorded::any_pass))?;
    let recorded = set.recorded.as_ref()?;
    let sealer = if set.sealer.is_empty() {
        recorded.authserv_id.clone()
    } else {
        set.sealer.clone()
    };
    let summary = recorded.summary();
    Some(
        Finding::new(
            FindingCode::ArcSealerSawPass,
            Severity::Warning,
            format!("{sealer} recorded {summary} before it passed the message on"),
            format!(
                "{}, but {sealer} recorded {summary} when the message reached it (ARC set i={instance}, \
                 sealed with s={}, cv={}), then changed or relayed it. A receiver that trusts {sealer} \
                 as an ARC sealer can use these results instead of failing the message. The ARC chain \
                 itself is {} here.",
                failing_here(facts),
                or_unknown(&set.selector),
                or_unknown(&set.cv),
                facts.report.arc.result.as_str()
            ),
        )
        .evidence(format!("ARC-Authentication-Results: {}", set.aar))
        .evidence(format!(
            "ARC-Seal i={instance}: d={} s={} cv={}",
            or_unknown(&set.sealer),
            or_unknown(&set.selector),
            or_unknown(&set.cv)
        ))
        .fix(format!(
            "On the final receiver, add {sealer} to its trusted ARC sealers (Microsoft 365 and \
             others have such a setting), or make {sealer} deliver the message unchanged so the \
             original DKIM signature survives."
        )),
    )
}

fn or_unknown(value: &str) -> &str {
    if value.is_empty() { "?" } else { value }
}

/// A plain `Authentication-Results` field that recorded passes where they fail here.
fn earlier_results_passed(facts: &Facts<'_>) -> Option<Finding> {
    let values = facts.field_values("Authentication-Results", MAX_EARLIER_RESULTS);
    let (value, recorded) = values.iter().find_map(|value| {
        let (_, recorded) = Recorded::parse(value);
        recorded.any_pass().then_some((value, recorded))
    })?;
    let summary = recorded.summary();
    let writer = &recorded.authserv_id;
    Some(
        Finding::new(
            FindingCode::EarlierResultsPassed,
            Severity::Info,
            format!("An earlier server, {writer}, recorded {summary}"),
            format!(
                "{}, but {writer} wrote {summary} in an Authentication-Results field before the \
                 message came here: it passed there and was relayed or changed afterwards. Anyone can \
                 write this field, so it is a clue, not proof.",
                failing_here(facts)
            ),
        )
        .evidence(format!("Authentication-Results: {}", one_line(value))),
    )
}
