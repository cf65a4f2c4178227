//! Splitting a report's period into UTC days, for daily charts.
//!
//! Reporters choose their own periods: a UTC day (`end` inclusive or exclusive), a day in their
//! time zone (so two UTC days), or several days. Daily figures share a report's counts among
//! the days it covers in proportion to the time it spent in each; the report keeps its original
//! range. The period is read as `[begin, end)`, so `00:00`–`00:00` is one day, not two.

use chrono::{DateTime, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::aggregate::DateRange;

pub(crate) const SECONDS_PER_DAY: i64 = 86_400;

/// The longest period split day by day (it bounds the work a stranger's range can cause); a
/// report covering more is counted on its first day.
pub const MAX_SPLIT_DAYS: i64 = 366;

/// One UTC day's part of a report's period.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DayShare {
    pub day: NaiveDate,
    /// Seconds of the period that fall on this day.
    pub seconds: i64,
    /// This day's share of the period, between 0 and 1; the shares add up to 1.
    pub fraction: f64,
}

/// The UTC days a period covers and each one's share. A period that is empty or backwards
/// (begin ≥ end) or longer than [`MAX_SPLIT_DAYS`] counts wholly on its first day.
pub fn day_shares(range: DateRange) -> Vec<DayShare> {
    let first_day = range.begin.div_euclid(SECONDS_PER_DAY);
    let whole = || {
        vec![DayShare {
            day: day(first_day),
            seconds: (range.end - range.begin).max(0),
            fraction: 1.0,
        }]
    };
    if range.end <= range.begin {
        return whole();
    }
    let last_day = (range.end - 1).div_euclid(SECONDS_PER_DAY);
    if last_day - first_day >= MAX_SPLIT_DAYS {
        return whole();
    }
    let total = (range.end - range.begin) as f64;
    (first_day..=last_day)
        .map(|d| {
            let start = range.begin.max(d * SECONDS_PER_DAY);
            let end = range.end.min((d + 1) * SECONDS_PER_DAY);
            DayShare {
                day: day(d),
                seconds: end - start,
                fraction: (end - start) as f64 / total,
            }
        })
        .collect()
}

/// Shares `count` among the days so that the parts are whole numbers adding up to exactly
/// `count` (largest remainder; ties go to the earlier day).
pub fn split_count(count: u64, shares: &[DayShare]) -> Vec<(NaiveDate, u64)> {
    let total: i64 = shares.iter().map(|s| s.seconds).sum();
    if total <= 0 {
        return shares
            .first()
            .map(|s| vec![(s.day, count)])
            .unwrap_or_default();
    }
    let total = total as u128;
    let mut parts: Vec<(NaiveDate, u64, u128)> = shares
        .iter()
        .map(|s| {
            let exact = count as u128 * s.seconds as u128;
            (s.day, (exact / total) as u64, exact % total)
        })
        .collect();
    let assigned: u64 = parts.iter().map(|p| p.1).sum();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| parts[b].2.cmp(&parts[a].2).then(a.cmp(&b)));
    for &index in order.iter().take((count - assigned) as usize) {
        parts[index].1 += 1;
    }
    parts.into_iter().map(|(day, n, _)| (day, n)).collect()
}

/// A time as a UTC date and time for people, or the number itself if chrono cannot show it.
pub(crate) fn shown_time(seconds: i64) -> String {
    DateTime::from_timestamp(seconds, 0).map_or_else(
        || format!("{seconds} seconds after 1970"),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn day(days_since_epoch: i64) -> NaiveDate {
    DateTime::from_timestamp(days_since_epoch * SECONDS_PER_DAY, 0)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    #[test]
    fn a_utc_day_with_inclusive_or_exclusive_end_is_one_day() {
        for end in [1_669_593_599, 1_669_593_600] {
            let shares = day_shares(DateRange {
                begin: 1_669_507_200,
                end,
            });
            assert_eq!(shares.len(), 1, "end {end}");
            assert_eq!(shares[0].day, date("2022-11-27"));
            assert_eq!(shares[0].fraction, 1.0);
        }
    }

    #[test]
    fn a_day_in_another_time_zone_is_shared_between_two_utc_days() {
        // 2022-11-08 23:00 UTC to 2022-11-09 23:00 UTC.
        let shares = day_shares(DateRange {
            begin: 1_667_948_400,
            end: 1_668_034_800,
        });
        let days: Vec<_> = shares.iter().map(|s| (s.day, s.seconds)).collect();
        assert_eq!(
            days,
            [(date("2022-11-08"), 3600), (date("2022-11-09"), 82_800)]
        );
        assert_eq!(
            split_count(24, &shares),
            [(date("2022-11-08"), 1), (date("2022-11-09"), 23)]
        );
    }

    #[test]
    fn split_counts_always_add_up_to_the_count() {
        let shares = day_shares(DateRange {
            begin: 1_667_948_400,
            end: 1_667_948_400 + 3 * 86_400 + 7,
        });
        assert_eq!(shares.len(), 4);
        for count in [0, 1, 2, 3, 5, 7, 1000, 999_999] {
            let parts = split_count(count, &shares);
            assert_eq!(parts.iter().map(|p| p.1).sum::<u64>(), count);
        }
    }

    #[test]
    fn a_backwards_or_huge_range_counts_on_its_first_day() {
        let backwards = day_shares(DateRange {
            begin: 1_669_507_200,
            end: 1_669_500_000,
        });
        assert_eq!(backwards.len(), 1);
        let huge = day_shares(DateRange {
            begin: 0,
            end: 1_700_000_000,
        });
        assert_eq!(huge.len(), 1);
        assert_eq!(huge[0].day, date("1970-01-01"));
        assert_eq!(split_count(9, &huge), [(date("1970-01-01"), 9)]);
    }
}
