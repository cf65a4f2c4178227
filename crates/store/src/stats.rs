//! The rollups behind `/stats`: results counted per UTC hour and day, mailbox and verdict
//! (`stats_hourly`, `stats_daily`), per day and sending host (`stats_hosts`) and per day and
//! sender address or domain (`stats_senders`); sessions per day (`stats_sessions`) and the 4xx
//! and 5xx replies they were given per day, code and enhanced status (`stats_replies`).
//!
//! Writing: [`ResultStats`] and [`SessionStats`] sum a batch's rows by key first, so a batch
//! costs one upsert row per key (a few statements), not one per message; the writers run them
//! in the batch's own transaction, so the rollups always match what was stored.
//!
//! Reading: [`read_stats`] sums rollup rows in SQL, never the results or the sessions; every
//! list is capped ([`MAX_STATS_TOP`]), so a page costs the same whatever the traffic.
//!
//! Keeping: the counts go [`STATS_HISTORY_DAYS`] beyond the results' retention (for the
//! monthly history); the names (hosts, senders) are purged with the results they came from.

use std::collections::BTreeMap;

use authcheck_verifier::{Grade, Mailbox, shown_verdicts, worst_grade};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::StoreResult;
use crate::record::{InsertRow, domain_of, without_nul};
use crate::rollup::{day_number, day_of};
use crate::sessions::SessionRow;
use crate::sql_store::Backend;
use crate::statement::{RowsPerStatement, Statement};
use authcheck_verifier::display::{MAX_DISPLAY_FIELD_BYTES, bounded_display_text};

/// Most rows a top list (hosts, sender domains, sender addresses, reply codes) returns.
pub const MAX_STATS_TOP: u32 = 100;
/// How many days the counts are kept beyond the results' retention.
pub const STATS_HISTORY_DAYS: i64 = 400;
/// Most rows per upsert (at most 8 values each, far inside both databases' limits).
const ROWS_PER_UPSERT: usize = 500;
/// Rows one purge statement deletes, so that a purge never holds the write lock for long.
const PURGE_ROWS: i64 = 2_000;

/// Results by grade: `|OK|`, `|~OK|` and `!! … !!`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GradeCounts {
    pub messages: i64,
    pub ok: i64,
    pub partial: i64,
    pub problem: i64,
}

impl GradeCounts {
    fn one(grade: Grade) -> GradeCounts {
        let mut counts = GradeCounts::default();
        counts.add_grade(grade, 1);
        counts
    }

    fn add_grade(&mut self, grade: Grade, messages: i64) {
        self.messages += messages;
        match grade {
            Grade::Ok => self.ok += messages,
            Grade::PartialOk => self.partial += messages,
            Grade::Problem => self.problem += messages,
        }
    }

    pub fn add(&mut self, other: &GradeCounts) {
        self.messages += other.messages;
        self.ok += other.ok;
        self.partial += other.partial;
        self.problem += other.problem;
    }
}

/// The grade of a stored verdict's text: the worst of its verdicts (a `check@` result shows
/// two); text that is no verdict counts as a problem.
pub fn grade_of(verdict: &str) -> Grade {
    shown_verdicts(verdict)
        .and_then(|verdicts| worst_grade(&verdicts))
        .unwrap_or(Grade::Problem)
}

/// What `/stats` asks for: a range of UTC days (both ends included) and one mailbox or all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsQuery {
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub mailbox: Option<Mailbox>,
    /// Rows per top list; clamped to `1..=MAX_STATS_TOP`.
    pub top: u32,
}

/// One verdict's share of the range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCount {
    pub verdict: String,
    pub messages: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsDay {
    pub day: NaiveDate,
    pub counts: GradeCounts,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsMonth {
    /// `YYYY-MM`.
    pub month: String,
    pub counts: GradeCounts,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsHost {
    pub client_ip: String,
    /// A reverse DNS name the address had (the greatest, when it changed within the range).
    pub client_ptr: Option<String>,
    pub counts: GradeCounts,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSender {
    /// A lowercased MAIL FROM address (`<>` for the null sender) or its domain.
    pub name: String,
    pub counts: GradeCounts,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSessionDay {
    pub day: NaiveDate,
    pub sessions: i64,
    /// Sessions given at least one 4xx or 5xx reply.
    pub refused: i64,
}

/// A 4xx or 5xx reply given in the range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReply {
    pub code: u16,
    /// The enhanced status code (RFC 3463), empty when the reply had none.
    pub status: String,
    pub replies: i64,
    pub sessions: i64,
}

/// What the rollups hold for a [`StatsQuery`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The range's results per verdict, the most first.
    pub verdicts: Vec<VerdictCount>,
    /// The range's days with results, oldest first.
    pub days: Vec<StatsDay>,
    /// The range's results per hour of the day (UTC), 24 values from 00 to 23.
    pub hours: Vec<i64>,
    /// Every month the counts are kept for (not only the range), oldest first.
    pub months: Vec<StatsMonth>,
    pub hosts: Vec<StatsHost>,
    pub sender_domains: Vec<StatsSender>,
    pub sender_addresses: Vec<StatsSender>,
    /// The range's days with sessions, oldest first (sessions belong to no mailbox).
    pub sessions: Vec<StatsSessionDay>,
    /// The range's 4xx and 5xx replies, the most first.
    pub replies: Vec<StatsReply>,
}

/// One result as the rollups see it, for [`ResultStore::add_to_stats`](crate::ResultStore::add_to_stats).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsSample {
    pub received_at: DateTime<Utc>,
    pub mailbox: Mailbox,
    pub verdict: String,
    pub client_ip: String,
    pub client_ptr: Option<String>,
    /// The MAIL FROM address as given (empty for the null sender).
    pub mail_from: String,
}

/// The rollup keys of one result, as stored (bounded, lowercased, free of NUL).
pub(crate) struct StatsKeys {
    at: i64,
    mailbox: &'static str,
    verdict: String,
    client_ip: String,
    client_ptr: Option<String>,
    /// Lowercased, `<>` for the null sender.
    address: String,
    domain: Option<String>,
}

fn shown(value: &str) -> String {
    without_nul(&bounded_display_text(value, MAX_DISPLAY_FIELD_BYTES)).into_owned()
}

impl StatsKeys {
    pub(crate) fn of_sample(sample: &StatsSample) -> StatsKeys {
        StatsKeys {
            at: sample.received_at.timestamp(),
            mailbox: sample.mailbox.as_str(),
            verdict: without_nul(&sample.verdict).into_owned(),
            client_ip: without_nul(&sample.client_ip).into_owned(),
            client_ptr: sample.client_ptr.as_deref().map(shown),
            address: address_name(&shown(&sample.mail_from.to_lowercase())),
            domain: domain_of(&sample.mail_from).map(|domain| shown(&domain)),
        }
    }

    /// The keys of a public result; `None` for a private test's, which statistics never
    /// count (they would show its sender to anyone).
    pub(crate) fn of_public_row(row: &InsertRow) -> Option<StatsKeys> {
        row.private_test.is_none().then(|| StatsKeys::of_row(row))
    }

    fn of_row(row: &InsertRow) -> StatsKeys {
        StatsKeys {
            at: row.received_at.timestamp(),
            mailbox: row.mailbox.as_str(),
            verdict: row.verdict.clone(),
            client_ip: row.client_ip.clone(),
            client_ptr: row.client_ptr.clone(),
            address: address_name(&row.mail_from_lower),
            domain: row.mail_from_domain.clone(),
        }
    }
}

fn address_name(lowercased: &str) -> String {
    if lowercased.is_empty() {
        "<>".to_owned()
    } else {
        lowercased.to_owned()
    }
}

/// A new statement at the end of `statements`, to build.
fn next_statement<'s, 'q>(statements: &'s mut Vec<Statement<'q>>) -> &'s mut Statement<'q> {
    statements.push(Statement::default());
    statements.last_mut().expect("just pushed")
}

/// A batch of results summed by rollup key (sorted, so that concurrent writers upsert the
/// same rows in the same order).
#[derive(Default)]
pub(crate) struct ResultStats {
    hourly: BTreeMap<(i64, &'static str, String), i64>,
    daily: BTreeMap<(i64, &'static str, String), i64>,
    hosts: BTreeMap<(i64, &'static str, String), (Option<String>, GradeCounts)>,
    senders: BTreeMap<(i64, &'static str, &'static str, String), GradeCounts>,
}

impl ResultStats {
    pub(crate) fn of(keys: impl IntoIterator<Item = StatsKeys>) -> ResultStats {
        let mut stats = ResultStats::default();
        for key in keys {
            let hour = key.at.div_euclid(3600);
            let day = key.at.div_euclid(86_400);
            let grade = grade_of(&key.verdict);
            *stats
                .hourly
                .entry((hour, key.mailbox, key.verdict.clone()))
                .or_default() += 1;
            *stats
                .daily
                .entry((day, key.mailbox, key.verdict))
                .or_default() += 1;
            let host = stats
                .hosts
                .entry((day, key.mailbox, key.client_ip))
                .or_default();
            if key.client_ptr.is_some() {
                host.0 = key.client_ptr;
            }
            host.1.add(&GradeCounts::one(grade));
            stats
                .senders
                .entry((day, key.mailbox, "address", key.address))
                .or_default()
                .add(&GradeCounts::one(grade));
            if let Some(domain) = key.domain {
                stats
                    .senders
                    .entry((day, key.mailbox, "domain", domain))
                    .or_default()
                    .add(&GradeCounts::one(grade));
            }
        }
        stats
    }

    /// Adds to `statements` the upserts adding these counts.
    pub(crate) fn push_upserts<'q>(
        &'q self,
        rows_per_statement: RowsPerStatement,
        statements: &mut Vec<Statement<'q>>,
    ) {
        let rows_per_upsert = rows_per_statement.of(ROWS_PER_UPSERT);
        for (table, time) in [("stats_hourly", "hour"), ("stats_daily", "day")] {
            let counts = if table == "stats_hourly" {
                &self.hourly
            } else {
                &self.daily
            };
            let rows: Vec<_> = counts.iter().collect();
            for chunk in rows.chunks(rows_per_upsert) {
                let query = next_statement(statements);
                query.push(&format!(
                    "INSERT INTO {table} ({time}, mailbox, verdict, messages) "
                ));
                query.push_values(chunk, |values, ((at, mailbox, verdict), messages)| {
                    values
                        .bind(*at)
                        .bind(*mailbox)
                        .bind(verdict.as_str())
                        .bind(**messages);
                });
                query.push(&format!(
                    " ON CONFLICT ({time}, mailbox, verdict) \
                     DO UPDATE SET messages = {table}.messages + excluded.messages"
                ));
            }
        }
        let hosts: Vec<_> = self.hosts.iter().collect();
        for chunk in hosts.chunks(rows_per_upsert) {
            let query = next_statement(statements);
            query.push(
                "INSERT INTO stats_hosts (day, mailbox, client_ip, client_ptr, messages, ok, \
                 partial, problem) ",
            );
            query.push_values(chunk, |values, ((day, mailbox, ip), (ptr, counts))| {
                values
                    .bind(*day)
                    .bind(*mailbox)
                    .bind(ip.as_str())
                    .bind(ptr.as_deref())
                    .bind(counts.messages)
                    .bind(counts.ok)
                    .bind(counts.partial)
                    .bind(counts.problem);
            });
            query.push(
                " ON CONFLICT (day, mailbox, client_ip) DO UPDATE SET \
                 client_ptr = COALESCE(excluded.client_ptr, stats_hosts.client_ptr), \
                 messages = stats_hosts.messages + excluded.messages, \
                 ok = stats_hosts.ok + excluded.ok, \
                 partial = stats_hosts.partial + excluded.partial, \
                 problem = stats_hosts.problem + excluded.problem",
            );
        }
        let senders: Vec<_> = self.senders.iter().collect();
        for chunk in senders.chunks(rows_per_upsert) {
            let query = next_statement(statements);
            query.push(
                "INSERT INTO stats_senders (day, mailbox, kind, name, messages, ok, partial, \
                 problem) ",
            );
            query.push_values(chunk, |values, ((day, mailbox, kind, name), counts)| {
                values
                    .bind(*day)
                    .bind(*mailbox)
                    .bind(*kind)
                    .bind(name.as_str())
                    .bind(counts.messages)
                    .bind(counts.ok)
                    .bind(counts.partial)
                    .bind(counts.problem);
            });
            query.push(
                " ON CONFLICT (day, mailbox, kind, name) DO UPDATE SET \
                 messages = stats_senders.messages + excluded.messages, \
                 ok = stats_senders.ok + excluded.ok, \
                 partial = stats_senders.partial + excluded.partial, \
                 problem = stats_senders.problem + excluded.problem",
            );
        }
    }
}

/// A batch of sessions summed by day, and their refusals by day, code and status.
#[derive(Default)]
pub(crate) struct SessionStats {
    /// Sessions and refused sessions per day.
    days: BTreeMap<i64, (i64, i64)>,
    /// Replies and sessions per day, code and status.
    replies: BTreeMap<(i64, i64, String), (i64, i64)>,
}

impl SessionStats {
    pub(crate) fn of(rows: &[SessionRow]) -> SessionStats {
        let mut stats = SessionStats::default();
        // The tester's own delivery attempts are no client's sessions.
        for row in rows.iter().filter(|row| row.is_inbound()) {
            let day = row.started_ms.div_euclid(86_400_000);
            let refusals = row.refusals();
            let totals = stats.days.entry(day).or_default();
            totals.0 += 1;
            totals.1 += i64::from(!refusals.is_empty());
            let mut seen: Vec<(i64, &str)> = Vec::new();
            for (code, status) in refusals {
                let key = (i64::from(*code), status.as_str());
                let counts = stats
                    .replies
                    .entry((day, key.0, key.1.to_owned()))
                    .or_default();
                counts.0 += 1;
                if !seen.contains(&key) {
                    counts.1 += 1;
                    seen.push(key);
                }
            }
        }
        stats
    }

    /// Adds to `statements` the upserts adding these counts.
    pub(crate) fn push_upserts<'q>(
        &'q self,
        rows_per_statement: RowsPerStatement,
        statements: &mut Vec<Statement<'q>>,
    ) {
        let rows_per_upsert = rows_per_statement.of(ROWS_PER_UPSERT);
        let days: Vec<_> = self.days.iter().collect();
        for chunk in days.chunks(rows_per_upsert) {
            let query = next_statement(statements);
            query.push("INSERT INTO stats_sessions (day, sessions, refused) ");
            query.push_values(chunk, |values, (day, (sessions, refused))| {
                values.bind(**day).bind(*sessions).bind(*refused);
            });
            query.push(
                " ON CONFLICT (day) DO UPDATE SET \
                 sessions = stats_sessions.sessions + excluded.sessions, \
                 refused = stats_sessions.refused + excluded.refused",
            );
        }
        let replies: Vec<_> = self.replies.iter().collect();
        for chunk in replies.chunks(rows_per_upsert) {
            let query = next_statement(statements);
            query.push("INSERT INTO stats_replies (day, code, status, replies, sessions) ");
            query.push_values(
                chunk,
                |values, ((day, code, status), (replies, sessions))| {
                    values
                        .bind(*day)
                        .bind(*code)
                        .bind(status.as_str())
                        .bind(*replies)
                        .bind(*sessions);
                },
            );
            query.push(
                " ON CONFLICT (day, code, status) DO UPDATE SET \
                 replies = stats_replies.replies + excluded.replies, \
                 sessions = stats_replies.sessions + excluded.sessions",
            );
        }
    }
}

/// The purge of the rollups for results older than `cutoff` (seconds since the epoch): each
/// statement deletes at most [`PURGE_ROWS`] rows; run each until it deletes none.
pub(crate) fn purge_statements(cutoff: i64) -> Vec<Statement<'static>> {
    let names_before = cutoff.div_euclid(86_400);
    let counts_before = names_before - STATS_HISTORY_DAYS;
    let batch = |table: &str, time: &str, key: &str, before: i64| {
        let mut statement = Statement::new(format!("DELETE FROM {table} WHERE {time} < "));
        statement
            .bind(before)
            .push(&format!(
                " AND ({key}) IN (SELECT {key} FROM {table} WHERE {time} < "
            ))
            .bind(before)
            .push(" LIMIT ")
            .bind(PURGE_ROWS)
            .push(")");
        statement
    };
    vec![
        batch(
            "stats_hosts",
            "day",
            "day, mailbox, client_ip",
            names_before,
        ),
        batch(
            "stats_senders",
            "day",
            "day, mailbox, kind, name",
            names_before,
        ),
        batch(
            "stats_hourly",
            "hour",
            "hour, mailbox, verdict",
            counts_before * 24,
        ),
        batch("stats_daily", "day", "day, mailbox, verdict", counts_before),
        batch("stats_sessions", "day", "day", counts_before),
        batch("stats_replies", "day", "day, code, status", counts_before),
    ]
}

fn top(query: &StatsQuery) -> i64 {
    i64::from(query.top.clamp(1, MAX_STATS_TOP))
}

/// ` WHERE day >= … AND day <= …` and the mailbox, if one.
fn push_range(statement: &mut Statement, query: &StatsQuery) {
    statement
        .push(" WHERE day >= ")
        .bind(day_number(query.first_day))
        .push(" AND day <= ")
        .bind(day_number(query.last_day));
    push_mailbox(statement, query);
}

fn push_mailbox(statement: &mut Statement, query: &StatsQuery) {
    if let Some(mailbox) = query.mailbox {
        statement.push(" AND mailbox = ").bind(mailbox.as_str());
    }
}

const GRADE_SUMS: &str = "CAST(SUM(messages) AS BIGINT), CAST(SUM(ok) AS BIGINT), \
    CAST(SUM(partial) AS BIGINT), CAST(SUM(problem) AS BIGINT)";

fn grades_from<R: Row>(row: &R, first: usize) -> Result<GradeCounts, sqlx::Error>
where
    usize: ColumnIndex<R>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
{
    let at = |n: usize| -> Result<i64, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, usize>(first + n)?.unwrap_or(0))
    };
    Ok(GradeCounts {
        messages: at(0)?,
        ok: at(1)?,
        partial: at(2)?,
        problem: at(3)?,
    })
}

/// Reads everything `/stats` shows for `query` from the rollups.
pub(crate) async fn read_stats<DB>(pool: &Pool<DB>, query: &StatsQuery) -> StoreResult<Stats>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Decode<'q, DB> + Type<DB>,
    for<'q> String: Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Decode<'q, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    let fetch = |statement: Statement<'static>| async move {
        statement
            .query::<DB>()
            .fetch_all(pool)
            .await
            .map_err(DB::failure)
    };
    let read = |error: sqlx::Error| DB::failure(error);
    let (first, last) = (day_number(query.first_day), day_number(query.last_day));
    let mut stats = Stats::default();

    // Every kept day by verdict (a few thousand rows at most): the history, and the range.
    let mut daily = Statement::new(
        "SELECT day, verdict, CAST(SUM(messages) AS BIGINT) FROM stats_daily WHERE 1 = 1",
    );
    push_mailbox(&mut daily, query);
    daily.push(" GROUP BY day, verdict ORDER BY day");
    let mut months: BTreeMap<(i32, u32), GradeCounts> = BTreeMap::new();
    let mut days: BTreeMap<i64, GradeCounts> = BTreeMap::new();
    let mut verdicts: BTreeMap<String, i64> = BTreeMap::new();
    for row in fetch(daily).await? {
        let day: i64 = row.try_get(0).map_err(read)?;
        let verdict: String = row.try_get(1).map_err(read)?;
        let messages: Option<i64> = row.try_get(2).map_err(read)?;
        let messages = messages.unwrap_or(0);
        let grade = grade_of(&verdict);
        let date = day_of(day);
        months
            .entry((date.year(), date.month()))
            .or_default()
            .add_grade(grade, messages);
        if (first..=last).contains(&day) {
            days.entry(day).or_default().add_grade(grade, messages);
            *verdicts.entry(verdict).or_default() += messages;
        }
    }
    stats.months = months
        .into_iter()
        .map(|((year, month), counts)| StatsMonth {
            month: format!("{year:04}-{month:02}"),
            counts,
        })
        .collect();
    stats.days = days
        .into_iter()
        .map(|(day, counts)| StatsDay {
            day: day_of(day),
            counts,
        })
        .collect();
    let mut verdicts: Vec<VerdictCount> = verdicts
        .into_iter()
        .map(|(verdict, messages)| VerdictCount { verdict, messages })
        .collect();
    verdicts.sort_by(|a, b| b.messages.cmp(&a.messages).then(a.verdict.cmp(&b.verdict)));
    stats.verdicts = verdicts;

    let mut hourly = Statement::new(
        "SELECT hour % 24, CAST(SUM(messages) AS BIGINT) FROM stats_hourly WHERE hour >= ",
    );
    hourly
        .bind(first * 24)
        .push(" AND hour < ")
        .bind((last + 1) * 24);
    push_mailbox(&mut hourly, query);
    hourly.push(" GROUP BY hour % 24");
    stats.hours = vec![0; 24];
    for row in fetch(hourly).await? {
        let hour: i64 = row.try_get(0).map_err(read)?;
        let messages: Option<i64> = row.try_get(1).map_err(read)?;
        if let Some(slot) = usize::try_from(hour)
            .ok()
            .and_then(|h| stats.hours.get_mut(h))
        {
            *slot += messages.unwrap_or(0);
        }
    }

    let mut hosts = Statement::new(format!(
        "SELECT client_ip, MAX(client_ptr), {GRADE_SUMS} FROM stats_hosts"
    ));
    push_range(&mut hosts, query);
    hosts
        .push(" GROUP BY client_ip ORDER BY SUM(messages) DESC, client_ip LIMIT ")
        .bind(top(query));
    for row in fetch(hosts).await? {
        stats.hosts.push(StatsHost {
            client_ip: row.try_get(0).map_err(read)?,
            client_ptr: row.try_get(1).map_err(read)?,
            counts: grades_from(&row, 2).map_err(read)?,
        });
    }

    for kind in ["domain", "address"] {
        let mut senders = Statement::new(format!("SELECT name, {GRADE_SUMS} FROM stats_senders"));
        push_range(&mut senders, query);
        senders
            .push(" AND kind = ")
            .bind(kind)
            .push(" GROUP BY name ORDER BY SUM(messages) DESC, name LIMIT ")
            .bind(top(query));
        let mut list = Vec::new();
        for row in fetch(senders).await? {
            list.push(StatsSender {
                name: row.try_get(0).map_err(read)?,
                counts: grades_from(&row, 1).map_err(read)?,
            });
        }
        if kind == "domain" {
            stats.sender_domains = list;
        } else {
            stats.sender_addresses = list;
        }
    }

    let mut sessions =
        Statement::new("SELECT day, sessions, refused FROM stats_sessions WHERE day >= ");
    sessions
        .bind(first)
        .push(" AND day <= ")
        .bind(last)
        .push(" ORDER BY day");
    for row in fetch(sessions).await? {
        stats.sessions.push(StatsSessionDay {
            day: day_of(row.try_get(0).map_err(read)?),
            sessions: row.try_get(1).map_err(read)?,
            refused: row.try_get(2).map_err(read)?,
        });
    }

    let mut replies = Statement::new(
        "SELECT code, status, CAST(SUM(replies) AS BIGINT), CAST(SUM(sessions) AS BIGINT) \
         FROM stats_replies WHERE day >= ",
    );
    replies
        .bind(first)
        .push(" AND day <= ")
        .bind(last)
        .push(" GROUP BY code, status ORDER BY SUM(replies) DESC, code, status LIMIT ")
        .bind(top(query));
    for row in fetch(replies).await? {
        let code: i64 = row.try_get(0).map_err(read)?;
        let replies: Option<i64> = row.try_get(2).map_err(read)?;
        let sessions: Option<i64> = row.try_get(3).map_err(read)?;
        stats.replies.push(StatsReply {
            code: u16::try_from(code).unwrap_or(0),
            status: row.try_get(1).map_err(read)?,
            replies: replies.unwrap_or(0),
            sessions: sessions.unwrap_or(0),
        });
    }
    Ok(stats)
}
