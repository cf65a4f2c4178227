//! The DMARC dashboard's reads, the same SQL on both databases: sums of the daily rollup
//! (never the records), the domain list, the policy history and the report listing. Every
//! listing is capped by [`MAX_DASHBOARD_ROWS`].

use std::collections::HashMap;

use chrono::NaiveDate;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::reports::ReportKind;
use crate::rollup::{
    COUNT_COLUMNS, DmarcCounts, DmarcDay, DmarcDomain, DmarcFilter, DmarcPolicySeen, DmarcReporter,
    DmarcSource, DmarcSourceSeen, MAX_DASHBOARD_ROWS, ReportListing, day_number, day_of,
    push_filter,
};
use crate::sql_store::Backend;
use crate::statement::Statement;
use crate::{StoreError, StoreResult};

/// Which stored reports to list, newest period first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportQuery {
    pub domain: Option<String>,
    /// Only reports whose period begins on or after the first and on or before the last day.
    pub first_day: Option<NaiveDate>,
    pub last_day: Option<NaiveDate>,
    pub reporter: Option<String>,
    pub kind: Option<ReportKind>,
    /// Reports to skip (paging); at most [`MAX_REPORT_OFFSET`].
    pub offset: u32,
    /// At most this many; clamped to `1..=MAX_DASHBOARD_ROWS`.
    pub limit: u32,
}

/// The deepest a report listing pages.
pub const MAX_REPORT_OFFSET: u32 = 100_000;

const DOMAIN_COLUMNS: &str =
    "domain, first_day, last_day, messages, reports, failure_reports FROM dmarc_domains";

pub(crate) struct Dashboard<'p, DB: Database>(pub(crate) &'p Pool<DB>);

fn limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, MAX_DASHBOARD_ROWS))
}

fn counts_from<R: Row>(row: &R, first: usize) -> Result<DmarcCounts, sqlx::Error>
where
    usize: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    let at = |n: usize| -> Result<i64, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, usize>(first + n)?.unwrap_or(0))
    };
    Ok(DmarcCounts {
        messages: at(0)?,
        dmarc_pass: at(1)?,
        dkim_aligned: at(2)?,
        spf_aligned: at(3)?,
        dkim_pass: at(4)?,
        spf_pass: at(5)?,
    })
}

impl<'p, DB> Dashboard<'p, DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn fetch(&self, statement: Statement<'_>) -> StoreResult<Vec<DB::Row>> {
        statement
            .query::<DB>()
            .fetch_all(self.0)
            .await
            .map_err(DB::failure)
    }

    fn domain_from(row: &DB::Row) -> Result<DmarcDomain, sqlx::Error> {
        Ok(DmarcDomain {
            domain: row.try_get(0)?,
            first_day: day_of(row.try_get(1)?),
            last_day: day_of(row.try_get(2)?),
            messages: row.try_get(3)?,
            reports: row.try_get(4)?,
            failure_reports: row.try_get(5)?,
        })
    }

    pub(crate) async fn domains(&self, max: u32) -> StoreResult<Vec<DmarcDomain>> {
        let mut query = Statement::new(format!(
            "SELECT {DOMAIN_COLUMNS} ORDER BY last_day DESC, messages DESC, domain LIMIT "
        ));
        query.bind(limit(max));
        let rows = self.fetch(query).await?;
        rows.iter()
            .map(Self::domain_from)
            .collect::<Result<_, _>>()
            .map_err(DB::failure)
    }

    pub(crate) async fn domain(&self, domain: &str) -> StoreResult<Option<DmarcDomain>> {
        let mut query = Statement::new(format!("SELECT {DOMAIN_COLUMNS} WHERE domain = "));
        query.bind(domain);
        let rows = self.fetch(query).await?;
        rows.first()
            .map(Self::domain_from)
            .transpose()
            .map_err(DB::failure)
    }

    pub(crate) async fn daily(&self, filter: &DmarcFilter) -> StoreResult<Vec<DmarcDay>> {
        let mut query = Statement::new(format!("SELECT day, {COUNT_COLUMNS} FROM dmarc_daily"));
        push_filter(&mut query, filter);
        query.push(" GROUP BY day ORDER BY day");
        let rows = self.fetch(query).await?;
        rows.iter()
            .map(|row| {
                Ok(DmarcDay {
                    day: day_of(row.try_get(0)?),
                    counts: counts_from(row, 1)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DB::failure)
    }

    /// The sources of `filter`, those with the most DMARC failures first, then the most
    /// messages.
    pub(crate) async fn sources(
        &self,
        filter: &DmarcFilter,
        max: u32,
    ) -> StoreResult<Vec<DmarcSource>> {
        let mut query = Statement::new(format!(
            "SELECT source_ip, COUNT(DISTINCT reporter), {COUNT_COLUMNS} FROM dmarc_daily"
        ));
        push_filter(&mut query, filter);
        query
            .push(
                " GROUP BY source_ip \
                 ORDER BY SUM(messages) - SUM(dmarc_pass * messages) DESC, SUM(messages) DESC, \
                 source_ip LIMIT ",
            )
            .bind(limit(max));
        let rows = self.fetch(query).await?;
        let mut sources = rows
            .iter()
            .map(|row| {
                Ok(DmarcSource {
                    source_ip: row.try_get(0)?,
                    reporters: row.try_get(1)?,
                    counts: counts_from(row, 2)?,
                    dispositions: Vec::new(),
                    reasons: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(DB::failure)?;
        if sources.is_empty() {
            return Ok(sources);
        }
        // Dispositions and reasons of just these sources.
        let mut query = Statement::new(
            "SELECT source_ip, disposition, reasons, CAST(SUM(messages) AS BIGINT) FROM dmarc_daily",
        );
        push_filter(&mut query, filter);
        query
            .push(" AND source_ip IN (")
            .bind_list(sources.iter().map(|source| source.source_ip.as_str()))
            .push(") GROUP BY source_ip, disposition, reasons");
        let rows = self.fetch(query).await?;
        let index: HashMap<String, usize> = sources
            .iter()
            .enumerate()
            .map(|(n, source)| (source.source_ip.clone(), n))
            .collect();
        for row in &rows {
            let ip: String = row.try_get(0).map_err(DB::failure)?;
            let disposition: String = row.try_get(1).map_err(DB::failure)?;
            let reasons: String = row.try_get(2).map_err(DB::failure)?;
            let messages: i64 = row.try_get(3).map_err(DB::failure)?;
            let Some(&n) = index.get(&ip) else { continue };
            let source = &mut sources[n];
            add_to(&mut source.dispositions, disposition, messages);
            if !reasons.is_empty() {
                add_to(&mut source.reasons, reasons, messages);
            }
        }
        for source in &mut sources {
            source
                .dispositions
                .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            source
                .reasons
                .sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        Ok(sources)
    }

    pub(crate) async fn reporters(
        &self,
        filter: &DmarcFilter,
        max: u32,
    ) -> StoreResult<Vec<DmarcReporter>> {
        let mut query =
            Statement::new(format!("SELECT reporter, {COUNT_COLUMNS} FROM dmarc_daily"));
        push_filter(&mut query, filter);
        query
            .push(" GROUP BY reporter ORDER BY SUM(messages) DESC, reporter LIMIT ")
            .bind(limit(max));
        let rows = self.fetch(query).await?;
        rows.iter()
            .map(|row| {
                Ok(DmarcReporter {
                    reporter: row.try_get(0)?,
                    counts: counts_from(row, 1)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DB::failure)
    }

    /// The policies reporters saw for `filter`'s domain, days and reporter, in the order they
    /// were first seen.
    pub(crate) async fn policies(
        &self,
        filter: &DmarcFilter,
        max: u32,
    ) -> StoreResult<Vec<DmarcPolicySeen>> {
        let mut query = Statement::new(
            "SELECT policy, MIN(day), MAX(day), CAST(SUM(reports) AS BIGINT), \
             COUNT(DISTINCT reporter) FROM dmarc_daily_policies WHERE domain = ",
        );
        query
            .bind(filter.domain.as_str())
            .push(" AND day >= ")
            .bind(day_number(filter.first_day))
            .push(" AND day <= ")
            .bind(day_number(filter.last_day));
        if let Some(reporter) = &filter.reporter {
            query.push(" AND reporter = ").bind(reporter.as_str());
        }
        query
            .push(" GROUP BY policy ORDER BY MIN(day), policy LIMIT ")
            .bind(limit(max));
        let rows = self.fetch(query).await?;
        rows.iter()
            .map(|row| {
                Ok(DmarcPolicySeen {
                    policy: row.try_get(0)?,
                    first_day: day_of(row.try_get(1)?),
                    last_day: day_of(row.try_get(2)?),
                    reports: row.try_get(3)?,
                    reporters: row.try_get(4)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DB::failure)
    }

    /// What reporters saw of `source_ip` from `first_day` to `last_day`, per domain, most
    /// messages first.
    pub(crate) async fn source_seen(
        &self,
        source_ip: &str,
        first_day: NaiveDate,
        last_day: NaiveDate,
        max: u32,
    ) -> StoreResult<Vec<DmarcSourceSeen>> {
        let mut query = Statement::new(format!("SELECT domain, {COUNT_COLUMNS} FROM dmarc_daily"));
        query
            .push(" WHERE source_ip = ")
            .bind(source_ip)
            .push(" AND day >= ")
            .bind(day_number(first_day))
            .push(" AND day <= ")
            .bind(day_number(last_day))
            .push(" GROUP BY domain ORDER BY SUM(messages) DESC, domain LIMIT ")
            .bind(limit(max));
        let rows = self.fetch(query).await?;
        rows.iter()
            .map(|row| {
                Ok(DmarcSourceSeen {
                    domain: row.try_get(0)?,
                    counts: counts_from(row, 1)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(DB::failure)
    }

    pub(crate) async fn reports(
        &self,
        report_query: &ReportQuery,
    ) -> StoreResult<Vec<ReportListing>> {
        let mut query = Statement::new(
            "SELECT id, kind, reporter, report_id, domain, date_begin, date_end, received_at \
             FROM dmarc_reports WHERE 1 = 1",
        );
        if let Some(domain) = &report_query.domain {
            query.push(" AND domain = ").bind(domain.as_str());
        }
        if let Some(day) = report_query.first_day {
            query
                .push(" AND date_begin >= ")
                .bind(day_number(day) * 86_400);
        }
        if let Some(day) = report_query.last_day {
            query
                .push(" AND date_begin < ")
                .bind((day_number(day) + 1) * 86_400);
        }
        if let Some(reporter) = &report_query.reporter {
            query.push(" AND reporter = ").bind(reporter.as_str());
        }
        if let Some(kind) = report_query.kind {
            query.push(" AND kind = ").bind(kind.as_str());
        }
        query
            .push(" ORDER BY date_begin DESC, seq DESC LIMIT ")
            .bind(limit(report_query.limit))
            .push(" OFFSET ")
            .bind(i64::from(report_query.offset.min(MAX_REPORT_OFFSET)));
        let rows = self.fetch(query).await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get(1).map_err(DB::failure)?;
                Ok(ReportListing {
                    id: row.try_get(0).map_err(DB::failure)?,
                    kind: ReportKind::parse(&kind).ok_or_else(|| {
                        StoreError::Config(format!("a stored report has the unknown kind {kind}"))
                    })?,
                    reporter: row.try_get(2).map_err(DB::failure)?,
                    report_id: row.try_get(3).map_err(DB::failure)?,
                    domain: row.try_get(4).map_err(DB::failure)?,
                    date_begin: row.try_get(5).map_err(DB::failure)?,
                    date_end: row.try_get(6).map_err(DB::failure)?,
                    received_at: row.try_get(7).map_err(DB::failure)?,
                })
            })
            .collect()
    }
}

fn add_to(counts: &mut Vec<(String, i64)>, name: String, messages: i64) {
    match counts.iter_mut().find(|(known, _)| *known == name) {
        Some((_, total)) => *total += messages,
        None => counts.push((name, messages)),
    }
}
