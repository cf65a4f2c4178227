//! What a report must say to be kept, judged against the time it was received: the domain it
//! is about (one rule for that name, [`domain_name`], which the store and the pages use too)
//! and a period a real reporter could have written.
//!
//! A stranger chooses both. A period in the year 9999 would put its domain at the top of the
//! dashboard for good (the retention purge removes days before a cutoff, never after), and a
//! domain that is no name cannot be linked to. Such a report is refused with a
//! [`Rejection`], so it is listed with the other reports that could not be read.

use crate::aggregate::DateRange;
use crate::limits::Limits;
use crate::rejection::Rejection;
use crate::{Report, days};

/// Longest value of a bad field quoted in a rejection.
const QUOTED_CHARS: usize = 100;

/// `text` as the name a domain is stored and looked up by: trimmed, lowercase, without a final
/// dot; `None` if it cannot be a domain name (empty, too long, or other characters than
/// letters, digits, `.`, `-` and `_`).
pub fn domain_name(text: &str) -> Option<String> {
    let domain = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    valid.then_some(domain)
}

impl Report {
    /// The domain the report is about, by [`domain_name`]'s rule: an aggregate report's
    /// published policy domain, or a failure report's first `Reported-Domain`.
    pub fn domain(&self) -> Option<String> {
        match self {
            Report::Aggregate(report) => domain_name(&report.policy.domain),
            Report::Failure(report) => report
                .feedback
                .as_ref()
                .and_then(|feedback| feedback.reported_domain.first())
                .and_then(|domain| domain_name(domain)),
        }
    }

    /// Refuses a report that names no domain, or whose period (a failure report's date) does
    /// not fit its being received at `received_at` (seconds since the epoch): later than
    /// [`Limits::max_future_seconds`] after it, before [`Limits::earliest_report_time`],
    /// backwards, or longer than [`Limits::max_period_seconds`].
    pub fn check_received(&self, received_at: i64, limits: &Limits) -> Result<(), Rejection> {
        if self.domain().is_none() {
            return Err(match self {
                Report::Aggregate(report) => Rejection::InvalidField {
                    field: "policy_published><domain",
                    value: report.policy.domain.chars().take(QUOTED_CHARS).collect(),
                    expected: "domain name",
                },
                Report::Failure(_) => Rejection::NoReportedDomain,
            });
        }
        let range = match self {
            Report::Aggregate(report) => report.metadata.date_range,
            Report::Failure(report) => {
                let date = report.date.unwrap_or(received_at);
                DateRange {
                    begin: date,
                    end: date,
                }
            }
        };
        if range.end < range.begin {
            return Err(Rejection::PeriodBackwards {
                begin: range.begin,
                end: range.end,
            });
        }
        if range.end > received_at.saturating_add(limits.max_future_seconds) {
            return Err(Rejection::PeriodInFuture {
                end: range.end,
                received_at,
            });
        }
        if range.begin < limits.earliest_report_time {
            return Err(Rejection::PeriodTooEarly {
                begin: range.begin,
                earliest: limits.earliest_report_time,
            });
        }
        if range.end - range.begin > limits.max_period_seconds {
            return Err(Rejection::PeriodTooLong {
                days: (range.end - range.begin) / days::SECONDS_PER_DAY,
                limit_days: limits.max_period_seconds / days::SECONDS_PER_DAY,
            });
        }
        Ok(())
    }
}
