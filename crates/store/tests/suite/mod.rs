//! The behaviour every backend must show, as async test bodies that take a freshly opened,
//! empty store. `tests/sqlite.rs` and `tests/postgres.rs` run each of them against their
//! backend.

use authcheck_store::{
    DmarcCounts, DmarcFilter, DmarcOutcome, ListQuery, MAX_LIST_LIMIT, Mailbox, NewRecord,
    NewRejectedReport, NewReport, NewResult, PrivateToken, ReportDomain, ReportInsert, ReportKind,
    ReportQuery, ResultSummary, SelfCheck, SessionFacts, SharedStore, SourceName, StoreError,
    StoredResult, Visibility,
};
use authcheck_verifier::display::MAX_DISPLAY_FIELD_BYTES;
use chrono::NaiveDate;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

/// Calls `$run!(case, ...)` with every case of the suite, so each backend runs all of them and
/// a case added here runs everywhere.
macro_rules! every_case {
    ($run:ident) => {
        $run!(
            round_trip_keeps_every_field,
            absent_optional_fields_stay_absent,
            nul_in_text_is_stored_as_replacement_character,
            unknown_ids_are_absent,
            ids_are_unique_lowercase_hex,
            one_message_stores_all_its_results_in_order,
            list_is_newest_first,
            list_filters_by_mailbox,
            a_full_check_result_keeps_both_verdicts,
            private_tests_are_made_looked_up_and_expire,
            open_private_tests_are_capped,
            private_results_are_listed_only_for_their_test,
            paging_with_before_walks_back_without_gaps,
            unknown_before_id_is_an_error,
            after_seq_gives_only_newer_results,
            after_id_gives_only_newer_results,
            display_fields_are_stored_bounded_and_the_raw_message_whole,
            before_and_after_seq_combine,
            limit_is_clamped,
            sender_filter_matches_addresses_and_domains,
            sender_and_mailbox_filters_combine,
            purge_removes_only_older_results_and_their_messages,
            one_raw_copy_serves_every_result_of_a_message,
            large_purge_lets_new_messages_through,
            health_checks_pass,
            closed_store_is_unavailable,
            dmarc_report_is_stored_once_and_its_duplicate_recognised,
            rejected_dmarc_report_is_kept_with_its_reason,
            dmarc_records_are_stored_in_multi_row_batches,
            dmarc_report_records_are_read_a_page_at_a_time,
            dmarc_source_names_are_cached_until_stale,
            dmarc_retention_purge_removes_old_reports_rejected_and_sources,
            dmarc_retention_purge_removes_the_rollup_days_no_report_covers,
            report_domains_seen_counts_reports_per_domain,
            dmarc_rollup_sums_reports_per_day_source_and_class,
            dmarc_rollup_filters_by_reporter_source_and_outcome,
            dmarc_policies_seen_are_listed_with_their_days,
            dmarc_reports_are_listed_newest_first_and_their_raw_kept,
            dmarc_report_domain_is_stored_as_its_page_looks_it_up,
            dmarc_source_seen_counts_the_days_asked_per_domain,
            sessions_round_trip_and_list_newest_first,
            sessions_filter_by_client_sender_code_and_time,
            sessions_are_stored_bounded,
            sessions_keep_their_direction_and_filter_by_it,
            unlisted_sessions_are_read_by_their_id_only,
            purge_removes_sessions_started_before_the_cutoff,
            self_checks_are_recorded_and_listed_newest_first,
            a_self_check_slot_is_claimed_once,
            the_first_signing_key_kept_is_the_one_every_instance_gets,
            purge_removes_old_self_checks_and_claims,
            a_slot_is_claimed_with_its_messages_or_not_at_all,
            replies_are_limited_per_address_domain_and_client,
            the_queue_cap_and_the_size_cap_refuse_replies,
            a_queued_message_is_claimed_once_per_lease_and_retried_when_due,
            a_reply_to_a_private_test_is_claimed_as_private_without_its_result,
            a_reply_to_a_private_test_stays_private_once_its_result_is_purged,
            a_claim_is_renewed_while_held_and_taken_over_once_it_lapses,
            purge_removes_finished_outgoing_but_keeps_the_queued,
            stats_count_results_by_time_verdict_host_and_sender,
            stats_count_sessions_and_the_refusals_they_got,
            stats_purge_drops_names_with_the_results_and_keeps_counts_longer,
            added_samples_count_as_stored_results_do,
            a_check_result_counts_by_its_worse_verdict,
            a_private_test_result_is_never_counted,
        );
    };
}
pub(crate) use every_case;

mod outgoing;
mod sessions;
pub use outgoing::*;
pub use sessions::*;
mod stats;
pub use stats::*;

/// The verdict that the backends' `install_failing_trigger` makes the database reject.
pub const REJECTED_VERDICT: &str = "rejected-by-test-trigger";

/// Runs on `database` the `backend`'s migrations (`sqlite`, `postgres`) that come before
/// `first_left_out`, leaving it as an older version made it.
pub async fn migrate_before<'a, A>(database: A, backend: &str, first_left_out: &str)
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    let older = tempfile::tempdir().unwrap();
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../migrations")
        .join(backend);
    for entry in std::fs::read_dir(&migrations).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < first_left_out {
            std::fs::copy(&path, older.path().join(name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(older.path())
        .await
        .unwrap()
        .run(database)
        .await
        .unwrap();
}

/// The migration that files DMARC reports under their domain names as pages look them up.
pub const DOMAIN_NAMES_MIGRATION: &str = "20261130000201";

/// SQL for a database from before [`DOMAIN_NAMES_MIGRATION`]: one report on 2023-11-14 under
/// `example.org` and one under ` Example.ORG.`, as an older version stored them, each with its
/// rows in the rollups (the same day, source and result, so that they must merge); `raw` is
/// the database's literal for a one-byte blob.
pub fn reports_under_domains_as_written(raw: &str) -> Vec<String> {
    // Day 19675 is 2023-11-14.
    [("00aa", "1", "example.org"), ("00bb", "2", " Example.ORG.")]
        .iter()
        .flat_map(|(id, report_id, domain)| {
            [
                format!(
                    "INSERT INTO dmarc_reports (id, kind, reporter, report_id, domain, \
                     date_begin, date_end, received_at, report, raw) VALUES ('{id}', \
                     'aggregate', 'R', '{report_id}', '{domain}', 1699920000, 1700006399, \
                     1700100000, '{{}}', {raw})"
                ),
                format!(
                    "INSERT INTO dmarc_daily (domain, day, source_ip, reporter, dmarc_pass, \
                     dkim_aligned, spf_aligned, dkim_pass, spf_pass, disposition, reasons, \
                     messages) VALUES ('{domain}', 19675, '192.0.2.1', 'R', 1, 1, 0, 1, 0, \
                     'none', '', 5)"
                ),
                format!(
                    "INSERT INTO dmarc_daily_policies (domain, day, reporter, policy, reports) \
                     VALUES ('{domain}', 19675, 'R', 'p=reject', 1)"
                ),
                format!(
                    "INSERT INTO dmarc_domains (domain, first_day, last_day, messages, \
                     reports, failure_reports) VALUES ('{domain}', 19675, 19675, 5, 1, 0)"
                ),
            ]
        })
        .collect()
}

/// After the migration, [`reports_under_domains_as_written`] reads as one domain,
/// `example.org`, with both reports and their messages, on every page's query.
pub async fn report_domains_are_merged_under_their_names(store: &SharedStore) {
    let domains = store.dmarc_domains(10).await.unwrap();
    let names: Vec<&str> = domains.iter().map(|d| d.domain.as_str()).collect();
    assert_eq!(names, ["example.org"]);
    assert_eq!((domains[0].messages, domains[0].reports), (10, 2));
    let filter = authcheck_store::DmarcFilter {
        domain: "example.org".into(),
        first_day: domains[0].first_day,
        last_day: domains[0].last_day,
        reporter: None,
        source_ip: None,
        outcome: None,
    };
    let days = store.dmarc_daily(&filter).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].day.to_string(), "2023-11-14");
    assert_eq!(days[0].counts.messages, 10);
    let policies = store.dmarc_policies(&filter, 10).await.unwrap();
    assert_eq!(policies.len(), 1, "{policies:?}");
    assert_eq!(policies[0].reports, 2);
    let seen = store.report_domains_seen().await.unwrap();
    let seen: Vec<(&str, i64)> = seen
        .iter()
        .map(|d| (d.domain.as_str(), d.reports))
        .collect();
    assert_eq!(seen, [("example.org", 2)]);
}

pub fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, 12, 0, 0).unwrap()
}

/// `value` as the serialized report a [`NewResult`] carries.
pub fn raw_json(value: serde_json::Value) -> Box<serde_json::value::RawValue> {
    serde_json::value::to_raw_value(&value).expect("serialize a JSON value")
}

pub fn sample(mailbox: Mailbox, received_at: DateTime<Utc>) -> NewResult {
    NewResult {
        mailbox,
        received_at,
        session: SessionFacts {
            client_ip: "192.0.2.10".to_owned(),
            client_port: 40001,
            client_ptr: None,
            client_ptr_confirmed: false,
            helo: "mail.example.net".to_owned(),
            tls_version: None,
            tls_cipher: None,
            mail_from: "alice@example.net".to_owned(),
            recipient: format!("{}@tester.example", mailbox.as_str()),
            size: 42,
        },
        header_from: Some("alice@example.net".to_owned()),
        subject: Some("hello".to_owned()),
        verdict: "|OK| spf-pass".to_owned(),
        prefixed_subject: "|OK| spf-pass hello".to_owned(),
        report: raw_json(json!({"spf": {"result": "pass", "trace": []}})),
        report_summary: raw_json(json!({"spf": {"result": "pass"}})),
        raw_message: b"Subject: hello\r\n\r\nbody\r\n".to_vec().into(),
        private_test: None,
    }
}

fn from_sender(
    mail_from: &str,
    header_from: Option<&str>,
    received_at: DateTime<Utc>,
) -> NewResult {
    let mut result = sample(Mailbox::Spf, received_at);
    result.session.mail_from = mail_from.to_owned();
    result.header_from = header_from.map(str::to_owned);
    result
}

fn query(limit: u32) -> ListQuery {
    ListQuery {
        limit,
        ..ListQuery::default()
    }
}

pub async fn insert_one(store: &SharedStore, result: NewResult) -> String {
    let mut ids = store.insert(vec![result]).await.expect("insert");
    assert_eq!(ids.len(), 1);
    ids.pop().unwrap()
}

/// Inserts `count` results one message at a time and returns their ids, oldest first.
async fn insert_many(store: &SharedStore, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for n in 0..count {
        let mailbox = if n % 2 == 0 {
            Mailbox::Spf
        } else {
            Mailbox::Dkim
        };
        ids.push(insert_one(store, sample(mailbox, at(1) + Duration::minutes(n as i64))).await);
    }
    ids
}

fn ids_of(results: &[ResultSummary]) -> Vec<&str> {
    results.iter().map(|result| result.id.as_str()).collect()
}

fn newest_first(ids: &[String]) -> Vec<&str> {
    ids.iter().rev().map(String::as_str).collect()
}

pub async fn round_trip_keeps_every_field(store: SharedStore) {
    let raw_message: Vec<u8> = b"Subject: \xe9t\xe9\r\n\r\nNUL:\0 high:\xff\x80 end\r\n".to_vec();
    let report = json!({
        "verdict": "|OK| dkim-pass",
        "dkim": [{"domain": "example.org", "result": "pass", "bits": 2048}],
        "notes": ["ünïcode ✓", null, true, 1.5],
    });
    let result = NewResult {
        mailbox: Mailbox::Dkim,
        // Nanoseconds are not kept: both backends store microseconds.
        received_at: at(5) + Duration::nanoseconds(123_456_789),
        session: SessionFacts {
            client_ip: "2001:db8::25".to_owned(),
            client_port: 65535,
            client_ptr: Some("mx.example.org".to_owned()),
            client_ptr_confirmed: true,
            helo: "mx.example.org".to_owned(),
            tls_version: Some("TLSv1.3".to_owned()),
            tls_cipher: Some("TLS13_AES_256_GCM_SHA384".to_owned()),
            mail_from: "Bounce+X@Example.org".to_owned(),
            recipient: "dkim+tag@tester.example".to_owned(),
            size: u64::from(u32::MAX) + 7,
        },
        header_from: Some("Bob <bob@example.org>".to_owned()),
        subject: Some("Grüße".to_owned()),
        verdict: "|OK| dkim-pass".to_owned(),
        prefixed_subject: "|OK| dkim-pass Grüße".to_owned(),
        report: raw_json(report.clone()),
        report_summary: raw_json(json!({"dkim": [{"result": "pass"}], "text": "Grüße\u{0}"})),
        raw_message: raw_message.clone().into(),
        private_test: None,
    };
    let id = insert_one(&store, result.clone()).await;

    let StoredResult {
        summary: stored,
        report: stored_report,
    } = store.get(&id).await.unwrap().expect("the stored result");
    assert_eq!(stored.id, id);
    assert_eq!(stored.mailbox, Mailbox::Dkim);
    assert_eq!(stored.received_at, at(5) + Duration::microseconds(123_456));
    assert_eq!(stored.session, result.session);
    assert_eq!(stored.header_from, result.header_from);
    assert_eq!(stored.subject, result.subject);
    assert_eq!(stored.verdict, result.verdict);
    assert_eq!(stored.prefixed_subject, result.prefixed_subject);
    assert_eq!(stored_report, report);
    assert_eq!(
        stored.report_summary,
        json!({"dkim": [{"result": "pass"}], "text": "Grüße\u{FFFD}"}),
        "the summary is stored as given, NUL replaced"
    );
    assert_eq!(store.raw_message(&id).await.unwrap(), Some(raw_message));

    let listed = store.list(&query(10)).await.unwrap();
    assert_eq!(listed, vec![stored]);
}

pub async fn absent_optional_fields_stay_absent(store: SharedStore) {
    let mut result = sample(Mailbox::Spf, at(2));
    result.session.mail_from = String::new();
    result.header_from = None;
    result.subject = None;
    let id = insert_one(&store, result.clone()).await;

    let stored = store.get(&id).await.unwrap().unwrap().summary;
    assert_eq!(stored.session.mail_from, "");
    assert_eq!(stored.session.client_ptr, None);
    assert_eq!(stored.session.tls_version, None);
    assert_eq!(stored.header_from, None);
    assert_eq!(stored.subject, None);
}

pub async fn nul_in_text_is_stored_as_replacement_character(store: SharedStore) {
    let mut result = sample(Mailbox::Spf, at(2));
    result.subject = Some("a\0b".to_owned());
    result.report = raw_json(json!({"subject": "a\0b"}));
    let id = insert_one(&store, result).await;

    let stored = store.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.summary.subject.as_deref(), Some("a\u{FFFD}b"));
    assert_eq!(stored.report, json!({"subject": "a\u{FFFD}b"}));
}

pub async fn unknown_ids_are_absent(store: SharedStore) {
    insert_one(&store, sample(Mailbox::Spf, at(1))).await;
    let unknown = "0123456789abcdef0123456789abcdef";
    assert_eq!(store.get(unknown).await.unwrap(), None);
    assert_eq!(store.raw_message(unknown).await.unwrap(), None);
}

pub async fn ids_are_unique_lowercase_hex(store: SharedStore) {
    let batch: Vec<NewResult> = (0..50).map(|_| sample(Mailbox::Spf, at(1))).collect();
    let mut ids = store.insert(batch).await.unwrap();
    ids.extend(insert_many(&store, 10).await);
    for id in &ids {
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "{id}"
        );
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

pub async fn one_message_stores_all_its_results_in_order(store: SharedStore) {
    let before = insert_one(&store, sample(Mailbox::Spf, at(1))).await;
    let ids = store
        .insert(vec![
            sample(Mailbox::Spf, at(2)),
            sample(Mailbox::Dkim, at(2)),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);

    let spf = store.get(&ids[0]).await.unwrap().unwrap().summary;
    let dkim = store.get(&ids[1]).await.unwrap().unwrap().summary;
    assert_eq!(spf.mailbox, Mailbox::Spf);
    assert_eq!(dkim.mailbox, Mailbox::Dkim);
    assert!(store.get(&before).await.unwrap().unwrap().summary.seq < spf.seq);
    assert!(spf.seq < dkim.seq);
    assert!(store.raw_message(&ids[1]).await.unwrap().is_some());

    assert_eq!(
        store.insert(Vec::new()).await.unwrap(),
        Vec::<String>::new()
    );
}

/// Needs a store whose database rejects results with [`REJECTED_VERDICT`].
pub async fn failed_insert_stores_none_of_the_message(store: SharedStore) {
    let mut rejected = sample(Mailbox::Dkim, at(2));
    rejected.verdict = REJECTED_VERDICT.to_owned();
    let attempt = store
        .insert(vec![sample(Mailbox::Spf, at(2)), rejected])
        .await;
    assert!(attempt.is_err(), "{attempt:?}");
    assert_eq!(store.list(&query(10)).await.unwrap(), Vec::new());

    // The store is still usable afterwards.
    let id = insert_one(&store, sample(Mailbox::Spf, at(3))).await;
    assert_eq!(
        ids_of(&store.list(&query(10)).await.unwrap()),
        vec![id.as_str()]
    );
}

/// Needs a store whose database rejects results with [`REJECTED_VERDICT`]. Messages stored
/// at the same moment may share a transaction (SQLite's group commit); one bad message among
/// them must cost the others nothing.
pub async fn rejected_message_costs_concurrent_messages_nothing(store: SharedStore) {
    const ROUNDS: usize = 5;
    const MESSAGES: usize = 24;
    const REJECTED: usize = MESSAGES / 2;
    for round in 0..ROUNDS {
        let inserts = (0..MESSAGES).map(|n| {
            let store = store.clone();
            let mut result = sample(Mailbox::Spf, at(2));
            result.subject = Some(format!("round {round} message {n}"));
            if n == REJECTED {
                result.verdict = REJECTED_VERDICT.to_owned();
            }
            tokio::spawn(async move { store.insert(vec![result]).await })
        });
        let outcomes = futures::future::join_all(inserts.collect::<Vec<_>>()).await;
        for (n, outcome) in outcomes.into_iter().enumerate() {
            let outcome = outcome.expect("insert task");
            if n == REJECTED {
                assert!(outcome.is_err(), "round {round}: {outcome:?}");
                continue;
            }
            let ids = outcome.unwrap_or_else(|e| panic!("round {round} message {n}: {e}"));
            let stored = store.get(&ids[0]).await.unwrap().expect("stored result");
            assert_eq!(
                stored.summary.subject.as_deref(),
                Some(format!("round {round} message {n}").as_str())
            );
        }
    }
    let all = store.list(&query(MAX_LIST_LIMIT)).await.unwrap();
    assert_eq!(all.len(), ROUNDS * (MESSAGES - 1));
    assert!(all.iter().all(|result| result.verdict != REJECTED_VERDICT));
}

pub async fn list_is_newest_first(store: SharedStore) {
    let ids = insert_many(&store, 5).await;
    let listed = store.list(&query(50)).await.unwrap();
    assert_eq!(ids_of(&listed), newest_first(&ids));
    assert!(listed.windows(2).all(|pair| pair[0].seq > pair[1].seq));
}

pub async fn list_filters_by_mailbox(store: SharedStore) {
    let ids = insert_many(&store, 6).await;
    let dkim = store
        .list(&ListQuery {
            mailbox: Some(Mailbox::Dkim),
            ..query(50)
        })
        .await
        .unwrap();
    assert_eq!(ids_of(&dkim), vec![&*ids[5], &*ids[3], &*ids[1]]);
    assert!(dkim.iter().all(|result| result.mailbox == Mailbox::Dkim));
}

pub async fn a_full_check_result_keeps_both_verdicts(store: SharedStore) {
    let spf = insert_one(&store, sample(Mailbox::Spf, at(1))).await;
    let mut check = sample(Mailbox::Check, at(2));
    check.verdict = "|OK| spf-pass !! dkim-none !!".to_owned();
    check.prefixed_subject = "|OK| spf-pass !! dkim-none !! hello".to_owned();
    let check = insert_one(&store, check).await;
    let stored = store.get(&check).await.unwrap().expect("stored");
    assert_eq!(stored.summary.mailbox, Mailbox::Check);
    assert_eq!(stored.summary.verdict, "|OK| spf-pass !! dkim-none !!");
    let listed = store
        .list(&ListQuery {
            mailbox: Some(Mailbox::Check),
            ..query(50)
        })
        .await
        .unwrap();
    assert_eq!(ids_of(&listed), vec![check.as_str()]);
    let all = store.list(&query(50)).await.unwrap();
    assert_eq!(ids_of(&all), vec![check.as_str(), spf.as_str()]);
}

pub async fn private_tests_are_made_looked_up_and_expire(store: SharedStore) {
    let (now, hour) = (1_700_000_000, 3600);
    let test = store
        .create_private_test(now, now + hour, 10)
        .await
        .unwrap()
        .expect("room for a test");
    assert_eq!((test.created_at, test.expires_at), (now, now + hour));
    assert_eq!(test.token.as_str().len(), 20);
    let other = store
        .create_private_test(now, now + hour, 10)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(test.token, other.token, "each test has a new token");
    assert_eq!(store.private_test(test.token).await.unwrap(), Some(test));
    let unknown = PrivateToken::parse("aaaaaaaaaaaaaaaaaaaa").unwrap();
    assert_eq!(store.private_test(unknown).await.unwrap(), None);
    // Open until the second it expires, by the clock the caller passes.
    assert!(test.is_open(now + hour - 1));
    assert!(!test.is_open(now + hour));
    assert_eq!(store.purge_private_tests(now + hour - 1).await.unwrap(), 0);
    assert!(store.private_test(test.token).await.unwrap().is_some());
    assert_eq!(store.purge_private_tests(now + hour).await.unwrap(), 2);
    assert_eq!(store.private_test(test.token).await.unwrap(), None);
}

pub async fn open_private_tests_are_capped(store: SharedStore) {
    let now = 1_700_000_000;
    let first = store.create_private_test(now, now + 60, 2).await.unwrap();
    let second = store.create_private_test(now, now + 600, 2).await.unwrap();
    assert!(first.is_some() && second.is_some());
    assert_eq!(
        store
            .create_private_test(now + 1, now + 601, 2)
            .await
            .unwrap(),
        None
    );
    // Once the first has expired (purged or not), there is room again.
    assert!(
        store
            .create_private_test(now + 60, now + 660, 2)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .create_private_test(now + 61, now + 661, 2)
            .await
            .unwrap(),
        None
    );
}

pub async fn private_results_are_listed_only_for_their_test(store: SharedStore) {
    let now = 1_700_000_000;
    let mine = store
        .create_private_test(now, now + 60, 10)
        .await
        .unwrap()
        .unwrap()
        .token;
    let theirs = store
        .create_private_test(now, now + 60, 10)
        .await
        .unwrap()
        .unwrap()
        .token;
    let private = |token, day| {
        let mut result = sample(Mailbox::Check, at(day));
        result.private_test = Some(token);
        result.session.recipient = format!("test-{token}@tester.example");
        result
    };
    let public = insert_one(&store, sample(Mailbox::Check, at(1))).await;
    let my_result = insert_one(&store, private(mine, 2)).await;
    let their_result = insert_one(&store, private(theirs, 3)).await;
    let public_lists = [
        query(50),
        ListQuery {
            mailbox: Some(Mailbox::Check),
            ..query(50)
        },
        ListQuery {
            sender: Some("example.net".into()),
            ..query(50)
        },
        ListQuery {
            after_seq: Some(0),
            ..query(50)
        },
    ];
    for list in public_lists {
        let listed = store.list(&list).await.unwrap();
        assert_eq!(ids_of(&listed), vec![public.as_str()], "{list:?}");
    }
    let mine_only = ListQuery {
        visibility: Visibility::PrivateTest(mine),
        ..query(50)
    };
    let listed = store.list(&mine_only).await.unwrap();
    assert_eq!(ids_of(&listed), vec![my_result.as_str()]);
    assert_eq!(listed[0].private_test, Some(mine));
    let every_private = ListQuery {
        visibility: Visibility::AnyPrivateTest,
        ..query(50)
    };
    let listed = store.list(&every_private).await.unwrap();
    assert_eq!(
        ids_of(&listed),
        vec![their_result.as_str(), my_result.as_str()]
    );
    // Its own id still reads it, and says whose it is.
    let stored = store.get(&my_result).await.unwrap().unwrap();
    assert_eq!(stored.summary.private_test, Some(mine));
    assert_eq!(
        store
            .get(&public)
            .await
            .unwrap()
            .unwrap()
            .summary
            .private_test,
        None
    );
}

pub async fn paging_with_before_walks_back_without_gaps(store: SharedStore) {
    let ids = insert_many(&store, 7).await;
    let mut seen = Vec::new();
    let mut before = None;
    for _page in 0..10 {
        let page = store
            .list(&ListQuery {
                before: before.clone(),
                ..query(3)
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        before = Some(page.last().unwrap().id.clone());
        seen.extend(page.into_iter().map(|result| result.id));
    }
    assert_eq!(seen, newest_first(&ids));
}

pub async fn unknown_before_id_is_an_error(store: SharedStore) {
    insert_many(&store, 2).await;
    let unknown = "ffffffffffffffffffffffffffffffff".to_owned();
    let outcome = store
        .list(&ListQuery {
            before: Some(unknown.clone()),
            ..query(10)
        })
        .await;
    assert!(
        matches!(&outcome, Err(StoreError::UnknownId(id)) if *id == unknown),
        "{outcome:?}"
    );
}

pub async fn after_id_gives_only_newer_results(store: SharedStore) {
    let ids = insert_many(&store, 5).await;
    let newer = store
        .list(&ListQuery {
            after: Some(ids[2].clone()),
            ..query(50)
        })
        .await
        .unwrap();
    assert_eq!(ids_of(&newer), vec![&*ids[4], &*ids[3]]);
    let unknown = store
        .list(&ListQuery {
            after: Some("00".repeat(16)),
            ..query(50)
        })
        .await;
    assert!(
        matches!(&unknown, Err(StoreError::UnknownId(_))),
        "{unknown:?}"
    );
}

pub async fn display_fields_are_stored_bounded_and_the_raw_message_whole(store: SharedStore) {
    let huge = "s".repeat(5 << 20);
    let mut result = sample(Mailbox::Spf, at(3));
    result.subject = Some(huge.clone());
    result.prefixed_subject = format!("|OK| spf-pass {huge}");
    result.header_from = Some(format!("{}@example.net", "f".repeat(3000)));
    result.session.helo = "h".repeat(4000);
    result.session.mail_from = format!("{}@example.net", "m".repeat(3000));
    result.session.recipient = format!("spf+{}@tester.test", "r".repeat(3000));
    result.raw_message = format!("Subject: {huge}\r\n\r\nbody\r\n")
        .into_bytes()
        .into();
    let raw_length = result.raw_message.len();
    let id = insert_one(&store, result).await;

    let listed = store.list(&query(10)).await.unwrap();
    let shown = &listed[0];
    let bounded = |text: &str, length: &str| {
        assert!(
            text.len() <= MAX_DISPLAY_FIELD_BYTES,
            "{} bytes",
            text.len()
        );
        assert!(
            text.ends_with(&format!("… ({length} bytes)")),
            "{}",
            &text[text.len() - 40..]
        );
    };
    bounded(shown.subject.as_deref().unwrap(), "5,242,880");
    bounded(&shown.prefixed_subject, "5,242,894");
    assert!(shown.prefixed_subject.starts_with("|OK| spf-pass sss"));
    bounded(shown.header_from.as_deref().unwrap(), "3,012");
    bounded(&shown.session.helo, "4,000");
    bounded(&shown.session.mail_from, "3,012");
    bounded(&shown.session.recipient, "3,016");
    // The sender filter still finds the result by the domain of the whole address.
    let by_domain = store
        .list(&ListQuery {
            sender: Some("example.net".into()),
            ..query(10)
        })
        .await
        .unwrap();
    assert_eq!(ids_of(&by_domain), vec![id.as_str()]);
    let raw = store.raw_message(&id).await.unwrap().unwrap();
    assert_eq!(raw.len(), raw_length, "the raw message is kept whole");
}

pub async fn after_seq_gives_only_newer_results(store: SharedStore) {
    let ids = insert_many(&store, 5).await;
    let third = store.get(&ids[2]).await.unwrap().unwrap().summary;
    let newer = store
        .list(&ListQuery {
            after_seq: Some(third.seq),
            ..query(50)
        })
        .await
        .unwrap();
    assert_eq!(ids_of(&newer), vec![&*ids[4], &*ids[3]]);

    let newest = store.get(&ids[4]).await.unwrap().unwrap().summary;
    let none = store
        .list(&ListQuery {
            after_seq: Some(newest.seq),
            ..query(50)
        })
        .await
        .unwrap();
    assert_eq!(none, Vec::new());
}

pub async fn before_and_after_seq_combine(store: SharedStore) {
    let ids = insert_many(&store, 6).await;
    let first = store.get(&ids[0]).await.unwrap().unwrap().summary;
    let between = store
        .list(&ListQuery {
            before: Some(ids[4].clone()),
            after_seq: Some(first.seq),
            ..query(50)
        })
        .await
        .unwrap();
    assert_eq!(ids_of(&between), vec![&*ids[3], &*ids[2], &*ids[1]]);
}

pub async fn limit_is_clamped(store: SharedStore) {
    let batch: Vec<NewResult> = (0..MAX_LIST_LIMIT + 5)
        .map(|n| sample(Mailbox::Spf, at(1) + Duration::seconds(i64::from(n))))
        .collect();
    let ids = store.insert(batch).await.unwrap();

    let zero = store.list(&query(0)).await.unwrap();
    assert_eq!(ids_of(&zero), vec![ids.last().unwrap().as_str()]);
    let two = store.list(&query(2)).await.unwrap();
    assert_eq!(two.len(), 2);
    let huge = store.list(&query(u32::MAX)).await.unwrap();
    assert_eq!(huge.len(), MAX_LIST_LIMIT as usize);
    assert_eq!(huge[0].id, *ids.last().unwrap());
}

pub async fn sender_filter_matches_addresses_and_domains(store: SharedStore) {
    let envelope_only = insert_one(&store, from_sender("Alice@Example.NET", None, at(1))).await;
    let header_only = insert_one(
        &store,
        from_sender("bounce@mailer.test", Some("carol@Example.net"), at(2)),
    )
    .await;
    let other = insert_one(
        &store,
        from_sender("dave@other.test", Some("dave@other.test"), at(3)),
    )
    .await;
    let subdomain = insert_one(
        &store,
        from_sender("eve@sub.example.net", Some("eve@sub.example.net"), at(4)),
    )
    .await;
    let null_sender = insert_one(&store, from_sender("", None, at(5))).await;

    let by = |sender: &str| ListQuery {
        sender: Some(sender.to_owned()),
        ..query(50)
    };
    let by_domain = store.list(&by("EXAMPLE.net")).await.unwrap();
    assert_eq!(ids_of(&by_domain), vec![&*header_only, &*envelope_only]);

    let by_envelope = store.list(&by("alice@example.net")).await.unwrap();
    assert_eq!(ids_of(&by_envelope), vec![&*envelope_only]);

    let by_header = store.list(&by("Carol@example.NET")).await.unwrap();
    assert_eq!(ids_of(&by_header), vec![&*header_only]);

    let by_bounce_domain = store.list(&by("mailer.test")).await.unwrap();
    assert_eq!(ids_of(&by_bounce_domain), vec![&*header_only]);

    let by_subdomain = store.list(&by("sub.example.net")).await.unwrap();
    assert_eq!(ids_of(&by_subdomain), vec![&*subdomain]);

    assert_eq!(
        store.list(&by("nobody@example.net")).await.unwrap(),
        Vec::new()
    );

    let blank = store.list(&by("  ")).await.unwrap();
    assert_eq!(
        ids_of(&blank),
        vec![
            &*null_sender,
            &*subdomain,
            &*other,
            &*header_only,
            &*envelope_only
        ]
    );

    // The live feed's check of new results agrees with the SQL on every filter.
    let everything = store.list(&query(50)).await.unwrap();
    for sender in [
        "EXAMPLE.net",
        " alice@example.net ",
        "Carol@example.NET",
        "mailer.test",
        "sub.example.net",
        "example.net.",
        "nobody@example.net",
        "  ",
    ] {
        let listed = store.list(&by(sender)).await.unwrap();
        let matched: Vec<&str> = everything
            .iter()
            .filter(|result| authcheck_store::sender_matches(sender, result))
            .map(|result| result.id.as_str())
            .collect();
        assert_eq!(matched, ids_of(&listed), "sender {sender:?}");
    }
}

pub async fn sender_and_mailbox_filters_combine(store: SharedStore) {
    let spf = insert_one(&store, from_sender("a@one.test", None, at(1))).await;
    let mut dkim_result = from_sender("a@one.test", None, at(2));
    dkim_result.mailbox = Mailbox::Dkim;
    insert_one(&store, dkim_result).await;
    insert_one(&store, from_sender("b@two.test", None, at(3))).await;

    let listed = store
        .list(&ListQuery {
            mailbox: Some(Mailbox::Spf),
            sender: Some("one.test".to_owned()),
            ..query(50)
        })
        .await
        .unwrap();
    assert_eq!(ids_of(&listed), vec![spf.as_str()]);
}

pub async fn purge_removes_only_older_results_and_their_messages(store: SharedStore) {
    let old = store
        .insert(vec![
            sample(Mailbox::Spf, at(1)),
            sample(Mailbox::Dkim, at(2)),
        ])
        .await
        .unwrap();
    let at_cutoff = insert_one(&store, sample(Mailbox::Spf, at(10))).await;
    let new = insert_one(&store, sample(Mailbox::Dkim, at(20))).await;

    assert_eq!(store.purge(at(10)).await.unwrap(), 2);

    for id in &old {
        assert_eq!(store.get(id).await.unwrap(), None);
        assert_eq!(store.raw_message(id).await.unwrap(), None);
    }
    for id in [&at_cutoff, &new] {
        assert!(store.get(id).await.unwrap().is_some());
        assert!(store.raw_message(id).await.unwrap().is_some());
    }
    assert_eq!(
        ids_of(&store.list(&query(50)).await.unwrap()),
        vec![new.as_str(), at_cutoff.as_str()]
    );
    assert_eq!(store.purge(at(10)).await.unwrap(), 0);
}

/// Stores four raw messages (one shared by two old results, two more old ones and a new one),
/// then purges the old results. Each backend's test then counts the raw messages left: one.
pub async fn purge_old_results_of_four_raw_messages(store: &SharedStore) {
    let mut shared = vec![sample(Mailbox::Spf, at(1)), sample(Mailbox::Dkim, at(1))];
    for result in &mut shared {
        result.raw_message = b"Subject: shared\r\n\r\nbody\r\n".to_vec().into();
    }
    store.insert(shared).await.unwrap();
    for (n, time) in [2, 3].into_iter().enumerate() {
        let mut alone = sample(Mailbox::Spf, at(time));
        alone.raw_message = format!("Subject: alone {n}\r\n\r\nbody\r\n")
            .into_bytes()
            .into();
        insert_one(store, alone).await;
    }
    let new = insert_one(store, sample(Mailbox::Dkim, at(20))).await;
    assert_eq!(store.purge(at(10)).await.unwrap(), 4);
    assert!(store.raw_message(&new).await.unwrap().is_some());
}

/// `first` and `second` are two separately opened handles on one database, as two
/// authcheck instances would hold.
pub async fn concurrent_purges_from_two_handles_agree(first: SharedStore, second: SharedStore) {
    let old: Vec<NewResult> = (0..40)
        .map(|n| sample(Mailbox::Spf, at(1) + Duration::minutes(n)))
        .collect();
    first.insert(old).await.unwrap();
    let kept = insert_one(&second, sample(Mailbox::Dkim, at(20))).await;

    let (by_first, by_second) = tokio::join!(first.purge(at(10)), second.purge(at(10)));
    let by_first = by_first.expect("first purge");
    let by_second = by_second.expect("second purge");
    assert_eq!(by_first + by_second, 40);

    for store in [&first, &second] {
        assert_eq!(
            ids_of(&store.list(&query(50)).await.unwrap()),
            vec![kept.as_str()]
        );
    }
}

/// A message to `spf@` and `dkim@`: both results give back the raw message, and the purge
/// removes it with them. (The backends' own tests count the stored copies.)
pub async fn one_raw_copy_serves_every_result_of_a_message(store: SharedStore) {
    let raw = b"Subject: twice\r\n\r\nbody\r\n".to_vec();
    let mut spf = sample(Mailbox::Spf, at(1));
    let mut dkim = sample(Mailbox::Dkim, at(1));
    // Two copies with the same bytes, as a caller might make.
    spf.raw_message = raw.clone().into();
    dkim.raw_message = raw.clone().into();
    let mut other = sample(Mailbox::Spf, at(1));
    other.raw_message = b"Subject: other\r\n\r\n".to_vec().into();
    let ids = store.insert(vec![spf, dkim, other]).await.unwrap();
    assert_eq!(store.raw_message(&ids[0]).await.unwrap(), Some(raw.clone()));
    assert_eq!(store.raw_message(&ids[1]).await.unwrap(), Some(raw));
    assert_eq!(
        store.raw_message(&ids[2]).await.unwrap().as_deref(),
        Some(&b"Subject: other\r\n\r\n"[..])
    );
    assert_eq!(store.purge(at(2)).await.unwrap(), 3);
    for id in &ids {
        assert_eq!(store.raw_message(id).await.unwrap(), None);
    }
}

/// Expired results the purge must delete in [`large_purge_lets_new_messages_through`].
pub const LARGE_PURGE_ROWS: usize = 100_000;

/// Purging 100,000 expired results while messages keep arriving: every new message is stored
/// (none gets the "unavailable" an SMTP client would see as 451), and the purge deletes exactly
/// the expired results.
pub async fn large_purge_lets_new_messages_through(store: SharedStore) {
    const PER_INSERT: usize = 1_000;
    for _ in 0..LARGE_PURGE_ROWS / PER_INSERT {
        let old: Vec<NewResult> = (0..PER_INSERT)
            .map(|_| sample(Mailbox::Spf, at(1)))
            .collect();
        store.insert(old).await.expect("insert expired results");
    }
    let purge = tokio::spawn({
        let store = store.clone();
        async move { store.purge(at(10)).await }
    });
    let mut stored_meanwhile = Vec::new();
    let mut slowest = std::time::Duration::ZERO;
    // Bounded: the purge of 100,000 rows ends long before this many messages.
    for _ in 0..100_000 {
        if purge.is_finished() {
            break;
        }
        let started = std::time::Instant::now();
        let outcome = store.insert(vec![sample(Mailbox::Dkim, at(20))]).await;
        slowest = slowest.max(started.elapsed());
        match outcome {
            Ok(ids) => stored_meanwhile.extend(ids),
            Err(error) => panic!("a message arriving during the purge was refused: {error}"),
        }
    }
    let purged = purge.await.unwrap().expect("purge");
    eprintln!(
        "purged {purged} results while storing {} messages; slowest insert {slowest:?}",
        stored_meanwhile.len()
    );
    assert_eq!(purged, LARGE_PURGE_ROWS as u64);
    assert!(
        !stored_meanwhile.is_empty(),
        "no message arrived during the purge"
    );
    let listed = store.list(&query(MAX_LIST_LIMIT)).await.unwrap();
    assert_eq!(
        listed.len(),
        stored_meanwhile.len().min(MAX_LIST_LIMIT as usize)
    );
    assert!(listed.iter().all(|result| result.received_at == at(20)));
}

pub async fn health_checks_pass(store: SharedStore) {
    insert_many(&store, 2).await;
    store.ping().await.unwrap();
    store.ready().await.unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), Vec::<String>::new());
}

pub async fn closed_store_is_unavailable(store: SharedStore) {
    store.close().await;
    let outcome = store.insert(vec![sample(Mailbox::Spf, at(1))]).await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.ready().await,
        Err(StoreError::Unavailable(_))
    ));
}

fn dmarc_report(reporter: &str, report_id: &str, records: usize) -> NewReport {
    NewReport {
        kind: ReportKind::Aggregate,
        reporter: reporter.to_owned(),
        report_id: report_id.to_owned(),
        domain: "example.org".to_owned(),
        date_begin: 1_700_006_400,
        date_end: 1_700_092_799,
        received_at: 1_700_100_000,
        report: raw_json(json!({ "kind": "aggregate", "records": records })),
        raw: b"<feedback/>".to_vec(),
        records: (0..records)
            .map(|n| NewRecord {
                source_ip: format!("192.0.2.{n}"),
                count: n as i64 + 1,
                disposition: Some("none".to_owned()),
                dkim: Some("pass".to_owned()),
                spf: None,
                header_from: "example.org".to_owned(),
                ..NewRecord::default()
            })
            .collect(),
        policy: Some("p=none".to_owned()),
    }
}

pub async fn dmarc_report_is_stored_once_and_its_duplicate_recognised(store: SharedStore) {
    let ReportInsert::Stored(id) = store
        .insert_report(dmarc_report("Receiver\0Inc", "r-1", 3))
        .await
        .unwrap()
    else {
        panic!("a new report is stored");
    };
    let again = store
        .insert_report(dmarc_report("Receiver\0Inc", "r-1", 5))
        .await
        .unwrap();
    assert_eq!(again, ReportInsert::Duplicate(id.clone()));
    // Another reporter may use the same report id.
    let other = store
        .insert_report(dmarc_report("Other", "r-1", 1))
        .await
        .unwrap();
    assert!(matches!(other, ReportInsert::Stored(ref other_id) if *other_id != id));

    let stored = store.get_report(&id).await.unwrap().unwrap();
    assert_eq!(stored.reporter, "Receiver\u{FFFD}Inc");
    assert_eq!(stored.report_id, "r-1");
    assert_eq!(stored.kind, ReportKind::Aggregate);
    assert_eq!(stored.domain, "example.org");
    assert_eq!(
        (stored.date_begin, stored.date_end),
        (1_700_006_400, 1_700_092_799)
    );
    // The duplicate wrote nothing: three records, as first stored.
    assert_eq!(stored.records, 3);
    assert_eq!(stored.report["records"], 3);
    assert_eq!(store.get_report("0000").await.unwrap(), None);
}

pub async fn rejected_dmarc_report_is_kept_with_its_reason(store: SharedStore) {
    for (n, reason) in ["first reason", "second reason"].into_iter().enumerate() {
        store
            .insert_rejected_report(NewRejectedReport {
                received_at: 1_700_000_000 + n as i64,
                source: format!("report-{n}.xml"),
                reason: reason.to_owned(),
                raw: vec![0, 1, 2],
            })
            .await
            .unwrap();
    }
    let listed = store.list_rejected_reports(10).await.unwrap();
    let reasons: Vec<_> = listed
        .iter()
        .map(|r| (r.source.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("report-1.xml", "second reason"),
            ("report-0.xml", "first reason")
        ]
    );
    assert_eq!(store.list_rejected_reports(1).await.unwrap().len(), 1);
}

/// A report of 2,500 records spans three multi-row statements (1,000 records each) in one
/// transaction; every record is stored, NUL in a record's text included.
pub async fn dmarc_records_are_stored_in_multi_row_batches(store: SharedStore) {
    let mut report = dmarc_report("Receiver", "batched", 2_500);
    report.records[1_999].header_from = "nul\0.example".to_owned();
    let ReportInsert::Stored(id) = store.insert_report(report).await.unwrap() else {
        panic!("a new report is stored");
    };
    assert_eq!(store.get_report(&id).await.unwrap().unwrap().records, 2_500);
    let empty = store
        .insert_report(dmarc_report("Receiver", "no-records", 0))
        .await
        .unwrap();
    let ReportInsert::Stored(empty) = empty else {
        panic!("a report without records is stored");
    };
    assert_eq!(store.get_report(&empty).await.unwrap().unwrap().records, 0);
}

fn source(ip: &str, ptr: Option<&str>, looked_up_at: i64) -> SourceName {
    SourceName {
        ip: ip.to_owned(),
        ptr: ptr.map(str::to_owned),
        org_domain: ptr.map(|name| {
            name.split_once('.')
                .map_or(name, |(_, rest)| rest)
                .to_owned()
        }),
        looked_up_at,
    }
}

/// Names looked up once are not looked up again until stale; a lookup that found no name is
/// remembered too; 2,500 addresses span several statements.
/// A page of a report's records is read by position, whatever the report's size; a report
/// stored without record details (before they existed) has none to read.
pub async fn dmarc_report_records_are_read_a_page_at_a_time(store: SharedStore) {
    let mut report = dmarc_report("Receiver", "big", 2_500);
    for (n, record) in report.records.iter_mut().enumerate() {
        record.detail = Some(json!({ "n": n }).to_string());
    }
    let ReportInsert::Stored(id) = store.insert_report(report).await.unwrap() else {
        panic!("stored");
    };
    let numbers = |records: Vec<serde_json::Value>| -> Vec<u64> {
        records.iter().map(|r| r["n"].as_u64().unwrap()).collect()
    };
    let page = store.report_records(&id, 1_000, 100).await.unwrap();
    assert_eq!(numbers(page), (1_000..1_100).collect::<Vec<_>>());
    let last = store.report_records(&id, 2_450, 100).await.unwrap();
    assert_eq!(numbers(last), (2_450..2_500).collect::<Vec<_>>());
    let capped = store.report_records(&id, 0, 5_000).await.unwrap();
    assert_eq!(capped.len(), authcheck_store::MAX_RECORDS_READ as usize);
    assert!(
        store
            .report_records(&id, 2_500, 100)
            .await
            .unwrap()
            .is_empty()
    );

    let ReportInsert::Stored(old_style) = store
        .insert_report(dmarc_report("Receiver", "old-style", 3))
        .await
        .unwrap()
    else {
        panic!("stored");
    };
    assert!(
        store
            .report_records(&old_style, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .report_records("no-such-report", 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn dmarc_source_names_are_cached_until_stale(store: SharedStore) {
    let ips: Vec<String> = (0..2_500)
        .map(|n| format!("2001:db8::{n:x}"))
        .chain(["192.0.2.1".to_owned(), "192.0.2.2".to_owned()])
        .collect();
    assert_eq!(store.sources_to_look_up(&ips, 0).await.unwrap(), ips);

    let mut names: Vec<SourceName> = ips[..2_500]
        .iter()
        .map(|ip| source(ip, Some("mail.sender.example"), 1_000))
        .collect();
    names.push(source("192.0.2.1", Some("mx1.example.net"), 2_000));
    names.push(source("192.0.2.2", None, 2_000));
    store.record_sources(&names).await.unwrap();
    assert!(
        store
            .sources_to_look_up(&ips, 1_000)
            .await
            .unwrap()
            .is_empty()
    );
    // Older than 1,500: only the first 2,500 are due again.
    assert_eq!(
        store.sources_to_look_up(&ips, 1_500).await.unwrap(),
        &ips[..2_500]
    );

    let mut found = store
        .source_names(&[
            "192.0.2.1".to_owned(),
            "192.0.2.2".to_owned(),
            "198.51.100.9".to_owned(),
        ])
        .await
        .unwrap();
    found.sort_by(|a, b| a.ip.cmp(&b.ip));
    assert_eq!(
        found,
        [
            source("192.0.2.1", Some("mx1.example.net"), 2_000),
            source("192.0.2.2", None, 2_000)
        ]
    );
    // Looked up again: the new name replaces the old.
    store
        .record_sources(&[source("192.0.2.1", Some("mx2.example.org"), 3_000)])
        .await
        .unwrap();
    let found = store.source_names(&["192.0.2.1".to_owned()]).await.unwrap();
    assert_eq!(found, [source("192.0.2.1", Some("mx2.example.org"), 3_000)]);
}

/// The clock is the cutoff: reports and rejected reports received before it go (the reports'
/// records with them), in batches; newer ones and their records stay; so do source names
/// looked up since.
pub async fn dmarc_retention_purge_removes_old_reports_rejected_and_sources(store: SharedStore) {
    const DAY: i64 = 86_400;
    // More than one purge batch (100 reports) of old reports.
    let mut old_ids = Vec::new();
    for n in 0..150 {
        let mut report = dmarc_report("Receiver", &format!("old-{n}"), 2);
        report.received_at = 10 * DAY + n;
        let ReportInsert::Stored(id) = store.insert_report(report).await.unwrap() else {
            panic!("stored");
        };
        old_ids.push(id);
    }
    let mut report = dmarc_report("Receiver", "new", 3);
    report.received_at = 20 * DAY;
    let ReportInsert::Stored(new_id) = store.insert_report(report).await.unwrap() else {
        panic!("stored");
    };
    for (n, received_at) in [10 * DAY, 20 * DAY].into_iter().enumerate() {
        store
            .insert_rejected_report(NewRejectedReport {
                received_at,
                source: format!("rejected-{n}"),
                reason: "unreadable".to_owned(),
                raw: vec![1],
            })
            .await
            .unwrap();
    }
    store
        .record_sources(&[
            source("192.0.2.1", Some("old.example"), 10 * DAY),
            source("192.0.2.2", Some("new.example"), 20 * DAY),
        ])
        .await
        .unwrap();

    assert_eq!(store.purge_reports(15 * DAY).await.unwrap(), 151);
    for id in &old_ids {
        assert_eq!(store.get_report(id).await.unwrap(), None);
    }
    assert_eq!(store.get_report(&new_id).await.unwrap().unwrap().records, 3);
    let rejected = store.list_rejected_reports(10).await.unwrap();
    assert_eq!(
        rejected
            .iter()
            .map(|r| r.source.as_str())
            .collect::<Vec<_>>(),
        ["rejected-1"]
    );
    let ips = ["192.0.2.1".to_owned(), "192.0.2.2".to_owned()];
    assert_eq!(
        store.sources_to_look_up(&ips, 0).await.unwrap(),
        ["192.0.2.1"]
    );
    // The same report id may come again once the first copy is gone.
    let again = store
        .insert_report(dmarc_report("Receiver", "old-0", 1))
        .await
        .unwrap();
    assert!(matches!(again, ReportInsert::Stored(_)), "{again:?}");
    // Nothing older is left.
    assert_eq!(store.purge_reports(15 * DAY).await.unwrap(), 0);
}

pub async fn report_domains_seen_counts_reports_per_domain(store: SharedStore) {
    assert!(store.report_domains_seen().await.unwrap().is_empty());
    for (n, (domain, received_at)) in [
        ("example.org", 100),
        ("example.org", 300),
        ("b.example", 200),
        ("", 400),
    ]
    .into_iter()
    .enumerate()
    {
        let mut report = dmarc_report("Receiver", &format!("r-{n}"), 1);
        report.domain = domain.to_owned();
        report.received_at = received_at;
        store.insert_report(report).await.unwrap();
    }
    assert_eq!(
        store.report_domains_seen().await.unwrap(),
        [
            ReportDomain {
                domain: "b.example".to_owned(),
                reports: 1,
                last_received: 200
            },
            ReportDomain {
                domain: "example.org".to_owned(),
                reports: 2,
                last_received: 300
            },
        ]
    );
}

/// 2023-11-15 00:00 UTC.
const NOV_15: i64 = 1_700_006_400;
const DAY: i64 = 86_400;

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn record(ip: &str, count: i64, dkim: &str, spf: &str, disposition: &str) -> NewRecord {
    NewRecord {
        source_ip: ip.to_owned(),
        count,
        disposition: Some(disposition.to_owned()),
        dkim: Some(dkim.to_owned()),
        spf: Some(spf.to_owned()),
        header_from: "example.org".to_owned(),
        dkim_pass: dkim == "pass",
        spf_pass: true,
        reasons: Vec::new(),
        detail: None,
    }
}

fn aggregate(
    reporter: &str,
    report_id: &str,
    domain: &str,
    (begin, end): (i64, i64),
    records: Vec<NewRecord>,
) -> NewReport {
    NewReport {
        kind: ReportKind::Aggregate,
        reporter: reporter.to_owned(),
        report_id: report_id.to_owned(),
        domain: domain.to_owned(),
        date_begin: begin,
        date_end: end,
        received_at: end + 3600,
        report: raw_json(json!({ "kind": "aggregate" })),
        raw: format!("<feedback>{report_id}</feedback>").into_bytes(),
        records,
        policy: Some("p=none; adkim=r; aspf=r".to_owned()),
    }
}

fn whole(domain: &str, first: &str, last: &str) -> DmarcFilter {
    DmarcFilter {
        domain: domain.to_owned(),
        first_day: date(first),
        last_day: date(last),
        reporter: None,
        source_ip: None,
        outcome: None,
    }
}

async fn store_reports(store: &SharedStore, reports: Vec<NewReport>) {
    for report in reports {
        let outcome = store.insert_report(report).await.unwrap();
        assert!(matches!(outcome, ReportInsert::Stored(_)), "{outcome:?}");
    }
}

/// Two reporters about example.org: one day from A (10 passing, 4 failing and rejected from a
/// forwarder), two days from B shared half and half; and one report about another domain.
fn two_reporters() -> Vec<NewReport> {
    let mut forwarded = record("198.51.100.9", 4, "fail", "fail", "reject");
    forwarded.reasons = vec!["local_policy".to_owned(), "forwarded".to_owned()];
    vec![
        aggregate(
            "A",
            "a-1",
            "example.org",
            (NOV_15, NOV_15 + DAY - 1),
            vec![
                record("192.0.2.1", 6, "pass", "fail", "none"),
                record("192.0.2.1", 4, "pass", "pass", "none"),
                forwarded,
            ],
        ),
        aggregate(
            "B",
            "b-1",
            "example.org",
            (NOV_15 + DAY / 2, NOV_15 + DAY + DAY / 2),
            vec![record("192.0.2.1", 8, "fail", "pass", "none")],
        ),
        aggregate(
            "A",
            "a-2",
            "other.example",
            (NOV_15, NOV_15 + DAY),
            vec![record("192.0.2.1", 100, "fail", "fail", "quarantine")],
        ),
    ]
}

pub async fn dmarc_rollup_sums_reports_per_day_source_and_class(store: SharedStore) {
    store_reports(&store, two_reporters()).await;
    // The duplicate adds nothing to the rollup.
    let again = store
        .insert_report(two_reporters().remove(0))
        .await
        .unwrap();
    assert!(matches!(again, ReportInsert::Duplicate(_)));

    let days = store
        .dmarc_daily(&whole("example.org", "2023-11-01", "2023-11-30"))
        .await
        .unwrap();
    let messages: Vec<_> = days
        .iter()
        .map(|day| (day.day, day.counts.messages, day.counts.dmarc_pass))
        .collect();
    assert_eq!(
        messages,
        [(date("2023-11-15"), 18, 14), (date("2023-11-16"), 4, 4)]
    );
    let first = days[0].counts;
    assert_eq!(
        first,
        DmarcCounts {
            messages: 18,
            dmarc_pass: 14,
            dkim_aligned: 10,
            spf_aligned: 8,
            dkim_pass: 10,
            spf_pass: 18,
        }
    );

    let sources = store
        .dmarc_sources(&whole("example.org", "2023-11-01", "2023-11-30"), 10)
        .await
        .unwrap();
    let listed: Vec<_> = sources
        .iter()
        .map(|s| {
            (
                s.source_ip.as_str(),
                s.counts.messages,
                s.counts.dmarc_fail(),
                s.reporters,
            )
        })
        .collect();
    // The failing source first, although it sent fewer messages.
    assert_eq!(listed, [("198.51.100.9", 4, 4, 1), ("192.0.2.1", 18, 0, 2)]);
    assert_eq!(sources[0].dispositions, [("reject".to_owned(), 4)]);
    assert_eq!(
        sources[0].reasons,
        [("forwarded,local_policy".to_owned(), 4)]
    );
    assert_eq!(sources[1].dispositions, [("none".to_owned(), 18)]);
    assert!(sources[1].reasons.is_empty());
    assert_eq!(
        store
            .dmarc_sources(&whole("example.org", "2023-11-01", "2023-11-30"), 1)
            .await
            .unwrap()
            .len(),
        1
    );

    let reporters = store
        .dmarc_reporters(&whole("example.org", "2023-11-01", "2023-11-30"), 10)
        .await
        .unwrap();
    let reporters: Vec<_> = reporters
        .iter()
        .map(|r| (r.reporter.as_str(), r.counts.messages))
        .collect();
    assert_eq!(reporters, [("A", 14), ("B", 8)]);

    let domains = store.dmarc_domains(10).await.unwrap();
    let domains: Vec<_> = domains
        .iter()
        .map(|d| {
            (
                d.domain.as_str(),
                d.first_day,
                d.last_day,
                d.messages,
                d.reports,
            )
        })
        .collect();
    assert_eq!(
        domains,
        [
            ("example.org", date("2023-11-15"), date("2023-11-16"), 22, 2),
            (
                "other.example",
                date("2023-11-15"),
                date("2023-11-15"),
                100,
                1
            ),
        ]
    );
    assert_eq!(
        store
            .dmarc_domain("other.example")
            .await
            .unwrap()
            .unwrap()
            .messages,
        100
    );
    assert_eq!(store.dmarc_domain("unknown.example").await.unwrap(), None);
}

/// The clock is the cutoff (2023-11-20 00:00 UTC): the rollup's days before it go with the
/// reports that made them, and the domains' totals follow; a day that a report still stored
/// covers stays, so does an archive imported after the fact; a domain with nothing left goes.
pub async fn dmarc_retention_purge_removes_the_rollup_days_no_report_covers(store: SharedStore) {
    let pass = |count| vec![record("192.0.2.1", count, "pass", "pass", "none")];
    let mut failure = aggregate(
        "F",
        "f-1",
        "example.org",
        (NOV_15 + 60, NOV_15 + 60),
        vec![],
    );
    failure.kind = ReportKind::Failure;
    failure.policy = None;
    let mut archive = aggregate(
        "A",
        "archive-1",
        "archive.example",
        (NOV_15, NOV_15 + DAY - 1),
        pass(7),
    );
    archive.received_at = NOV_15 + 30 * DAY;
    let mut stricter = aggregate(
        "B",
        "b-2",
        "example.org",
        (NOV_15 + 10 * DAY, NOV_15 + 11 * DAY - 1),
        pass(3),
    );
    stricter.policy = Some("p=reject".to_owned());
    store_reports(
        &store,
        vec![
            // Received 2023-11-16: gone with its day.
            aggregate(
                "A",
                "a-1",
                "example.org",
                (NOV_15, NOV_15 + DAY - 1),
                pass(100),
            ),
            failure,
            // Received 2023-11-21, covering the 19th and 20th: it stays, and so do its days.
            aggregate(
                "B",
                "b-1",
                "example.org",
                (NOV_15 + 4 * DAY, NOV_15 + 6 * DAY - 1),
                pass(10),
            ),
            stricter,
            aggregate(
                "A",
                "gone-1",
                "gone.example",
                (NOV_15, NOV_15 + DAY - 1),
                pass(5),
            ),
            archive,
        ],
    )
    .await;
    let before = store.dmarc_domain("example.org").await.unwrap().unwrap();
    assert_eq!(
        (before.messages, before.reports, before.failure_reports),
        (113, 3, 1)
    );

    assert_eq!(store.purge_reports(NOV_15 + 5 * DAY).await.unwrap(), 3);

    let november = whole("example.org", "2023-11-01", "2023-11-30");
    let days: Vec<_> = store
        .dmarc_daily(&november)
        .await
        .unwrap()
        .iter()
        .map(|day| (day.day, day.counts.messages))
        .collect();
    assert_eq!(
        days,
        [
            (date("2023-11-19"), 5),
            (date("2023-11-20"), 5),
            (date("2023-11-25"), 3)
        ]
    );
    let domain = store.dmarc_domain("example.org").await.unwrap().unwrap();
    assert_eq!(
        (
            domain.first_day,
            domain.last_day,
            domain.messages,
            domain.reports,
            domain.failure_reports
        ),
        (date("2023-11-19"), date("2023-11-25"), 13, 2, 0)
    );
    let policies: Vec<_> = store
        .dmarc_policies(&november, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|policy| (policy.policy, policy.first_day))
        .collect();
    assert_eq!(
        policies,
        [
            ("p=none; adkim=r; aspf=r".to_owned(), date("2023-11-19")),
            ("p=reject".to_owned(), date("2023-11-25"))
        ]
    );
    assert_eq!(store.dmarc_domain("gone.example").await.unwrap(), None);
    let listed: Vec<_> = store
        .dmarc_domains(10)
        .await
        .unwrap()
        .into_iter()
        .map(|domain| (domain.domain, domain.messages))
        .collect();
    assert_eq!(
        listed,
        [
            ("example.org".to_owned(), 13),
            ("archive.example".to_owned(), 7)
        ]
    );
    let archive = store
        .dmarc_daily(&whole("archive.example", "2023-11-01", "2023-11-30"))
        .await
        .unwrap();
    assert_eq!(archive.len(), 1);

    // Nothing more is older; a domain that went comes back with its new report alone.
    assert_eq!(store.purge_reports(NOV_15 + 5 * DAY).await.unwrap(), 0);
    assert_eq!(
        store.dmarc_domain("example.org").await.unwrap().unwrap(),
        domain
    );
    store_reports(
        &store,
        vec![aggregate(
            "A",
            "gone-2",
            "gone.example",
            (NOV_15 + 9 * DAY, NOV_15 + 10 * DAY - 1),
            pass(2),
        )],
    )
    .await;
    let back = store.dmarc_domain("gone.example").await.unwrap().unwrap();
    assert_eq!(
        (back.first_day, back.messages, back.reports),
        (date("2023-11-24"), 2, 1)
    );
}

pub async fn dmarc_rollup_filters_by_reporter_source_and_outcome(store: SharedStore) {
    store_reports(&store, two_reporters()).await;
    let total = |days: Vec<authcheck_store::DmarcDay>| -> i64 {
        days.iter().map(|day| day.counts.messages).sum()
    };
    let mut filter = whole("example.org", "2023-11-01", "2023-11-30");
    filter.reporter = Some("B".to_owned());
    assert_eq!(total(store.dmarc_daily(&filter).await.unwrap()), 8);
    filter.reporter = None;
    filter.source_ip = Some("198.51.100.9".to_owned());
    assert_eq!(total(store.dmarc_daily(&filter).await.unwrap()), 4);
    filter.source_ip = None;
    filter.outcome = Some(DmarcOutcome::Pass);
    assert_eq!(total(store.dmarc_daily(&filter).await.unwrap()), 18);
    filter.outcome = Some(DmarcOutcome::Fail);
    assert_eq!(total(store.dmarc_daily(&filter).await.unwrap()), 4);
    // The day range includes both ends.
    let second_day = whole("example.org", "2023-11-16", "2023-11-16");
    assert_eq!(total(store.dmarc_daily(&second_day).await.unwrap()), 4);
    let before = whole("example.org", "2023-10-01", "2023-11-14");
    assert!(store.dmarc_daily(&before).await.unwrap().is_empty());
    assert!(store.dmarc_sources(&before, 10).await.unwrap().is_empty());
}

pub async fn dmarc_policies_seen_are_listed_with_their_days(store: SharedStore) {
    let mut stricter = aggregate(
        "A",
        "a-3",
        "example.org",
        (NOV_15 + 5 * DAY, NOV_15 + 6 * DAY),
        vec![record("192.0.2.1", 1, "pass", "pass", "none")],
    );
    stricter.policy = Some("p=reject; adkim=s".to_owned());
    let mut reports = two_reporters();
    reports.push(stricter);
    store_reports(&store, reports).await;
    let policies = store
        .dmarc_policies(&whole("example.org", "2023-11-01", "2023-11-30"), 10)
        .await
        .unwrap();
    let policies: Vec<_> = policies
        .iter()
        .map(|p| {
            (
                p.policy.as_str(),
                p.first_day,
                p.last_day,
                p.reports,
                p.reporters,
            )
        })
        .collect();
    assert_eq!(
        policies,
        [
            (
                "p=none; adkim=r; aspf=r",
                date("2023-11-15"),
                date("2023-11-15"),
                2,
                2
            ),
            (
                "p=reject; adkim=s",
                date("2023-11-20"),
                date("2023-11-20"),
                1,
                1
            ),
        ]
    );
}

pub async fn dmarc_reports_are_listed_newest_first_and_their_raw_kept(store: SharedStore) {
    store_reports(&store, two_reporters()).await;
    let all = |domain: Option<&str>| ReportQuery {
        domain: domain.map(str::to_owned),
        limit: 10,
        ..ReportQuery::default()
    };
    let listed = store.list_reports(&all(Some("example.org"))).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|r| r.report_id.as_str()).collect();
    assert_eq!(ids, ["b-1", "a-1"]);
    assert_eq!(store.list_reports(&all(None)).await.unwrap().len(), 3);
    let mut by_reporter = all(Some("example.org"));
    by_reporter.reporter = Some("A".to_owned());
    assert_eq!(store.list_reports(&by_reporter).await.unwrap().len(), 1);
    let mut later = all(Some("example.org"));
    later.first_day = Some(date("2023-11-16"));
    assert!(store.list_reports(&later).await.unwrap().is_empty());
    let mut paged = all(Some("example.org"));
    paged.offset = 1;
    paged.limit = 1;
    let page = store.list_reports(&paged).await.unwrap();
    assert_eq!(page[0].report_id, "a-1");

    assert_eq!(
        store.raw_report(&listed[1].id).await.unwrap(),
        Some(b"<feedback>a-1</feedback>".to_vec())
    );
    assert_eq!(store.raw_report("00").await.unwrap(), None);
}

pub async fn dmarc_source_seen_counts_the_days_asked_per_domain(store: SharedStore) {
    store_reports(&store, two_reporters()).await;
    let seen = store
        .dmarc_source_seen("192.0.2.1", date("2023-11-01"), date("2023-12-31"), 10)
        .await
        .unwrap();
    let seen: Vec<_> = seen
        .iter()
        .map(|s| (s.domain.as_str(), s.counts.messages, s.counts.dmarc_pass))
        .collect();
    assert_eq!(seen, [("other.example", 100, 0), ("example.org", 18, 18)]);
    // Only days from the first day on count.
    let recent = store
        .dmarc_source_seen("192.0.2.1", date("2023-11-16"), date("2023-12-31"), 10)
        .await
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].counts.messages, 4);
    // Nor days after the last.
    let earlier = store
        .dmarc_source_seen("192.0.2.1", date("2023-11-01"), date("2023-11-15"), 10)
        .await
        .unwrap();
    let earlier: Vec<_> = earlier
        .iter()
        .map(|s| (s.domain.as_str(), s.counts.messages))
        .collect();
    assert_eq!(earlier, [("other.example", 100), ("example.org", 14)]);
    assert!(
        store
            .dmarc_source_seen("203.0.113.1", date("2023-11-01"), date("2023-12-31"), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

fn self_check(instance: &str, started_at: i64, ok: bool) -> SelfCheck {
    SelfCheck {
        instance: instance.into(),
        target: "127.0.0.1:25".into(),
        started_at,
        ok,
        failed_step: (!ok).then(|| "RCPT TO".into()),
        failure: (!ok).then(|| "451 4.3.0 try again \0later".into()),
        tls: ok.then(|| "TLSv1.3".into()),
        duration_ms: Some(123),
        result_id: ok.then(|| "0123456789abcdef0123456789abcdef".into()),
        verdicts: ok.then(|| "|OK| spf-pass".into()),
    }
}

pub async fn self_checks_are_recorded_and_listed_newest_first(store: SharedStore) {
    let now = at(10).timestamp();
    store
        .insert_self_check(self_check("a.example", now - 90_000, true))
        .await
        .unwrap();
    store
        .insert_self_check(self_check("a.example", now - 600, true))
        .await
        .unwrap();
    store
        .insert_self_check(self_check("b.example", now, false))
        .await
        .unwrap();
    let listed = store.self_checks_since(now - 86_400).await.unwrap();
    assert_eq!(listed.len(), 2, "the check older than a day is not listed");
    let mut failed = self_check("b.example", now, false);
    failed.failure = Some("451 4.3.0 try again \u{fffd}later".into());
    assert_eq!(
        listed[0], failed,
        "newest first, every field kept, NUL replaced"
    );
    assert_eq!(listed[1], self_check("a.example", now - 600, true));
}

pub async fn a_self_check_slot_is_claimed_once(store: SharedStore) {
    let now = at(10).timestamp();
    assert!(store.claim_self_check("mx:25", 7, "a", now).await.unwrap());
    assert!(!store.claim_self_check("mx:25", 7, "b", now).await.unwrap());
    assert!(!store.claim_self_check("mx:25", 7, "a", now).await.unwrap());
    assert!(store.claim_self_check("mx:25", 8, "b", now).await.unwrap());
    assert!(
        store
            .claim_self_check("other:25", 7, "b", now)
            .await
            .unwrap()
    );
}

pub async fn the_first_signing_key_kept_is_the_one_every_instance_gets(store: SharedStore) {
    let now = at(10).timestamp();
    assert_eq!(
        store.signing_key("dkim").await.unwrap(),
        None,
        "none kept yet"
    );
    let first = "-----BEGIN PRIVATE KEY-----\nfirst\n-----END PRIVATE KEY-----\n";
    let second = "-----BEGIN PRIVATE KEY-----\nsecond\n-----END PRIVATE KEY-----\n";
    // Two instances starting together, each with a key it made in case none is kept yet.
    let (a, b) = tokio::join!(
        store.signing_key_or_keep("dkim", first, now),
        store.signing_key_or_keep("dkim", second, now),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both instances sign with one key");
    assert!(a == first || a == second);
    let later = store
        .signing_key_or_keep("dkim", "another", now + 60)
        .await
        .unwrap();
    assert_eq!(later, a, "a restart reads the kept key");
    assert_eq!(store.signing_key("dkim").await.unwrap().as_ref(), Some(&a));
    store.purge(at(31)).await.unwrap();
    assert_eq!(
        store
            .signing_key_or_keep("dkim", "another", now)
            .await
            .unwrap(),
        a,
        "the purge keeps the key"
    );
}

pub async fn purge_removes_old_self_checks_and_claims(store: SharedStore) {
    let old = at(1).timestamp();
    let new = at(10).timestamp();
    store
        .insert_self_check(self_check("a", old, true))
        .await
        .unwrap();
    store
        .insert_self_check(self_check("a", new, true))
        .await
        .unwrap();
    assert!(store.claim_self_check("mx:25", 1, "a", old).await.unwrap());
    // A retention of one day, the day after: the checks go, the claim (which may be a week's)
    // stays, or its work would be done again.
    store.purge(at(2)).await.unwrap();
    assert_eq!(store.self_checks_since(0).await.unwrap().len(), 1);
    assert!(store.slot_claimed("mx:25", 1).await.unwrap());
    assert!(
        !store.claim_self_check("mx:25", 1, "b", new).await.unwrap(),
        "a claim outlives a retention shorter than its interval"
    );
    store.purge(at(5)).await.unwrap();
    let listed = store.self_checks_since(0).await.unwrap();
    assert_eq!(listed, vec![self_check("a", new, true)]);
    assert!(store.slot_claimed("mx:25", 1).await.unwrap());
    let claims_cutoff = at(2).timestamp() + authcheck_store::CLAIMS_KEPT_BEYOND_RETENTION;
    store
        .purge(chrono::DateTime::from_timestamp(claims_cutoff, 0).unwrap())
        .await
        .unwrap();
    assert!(!store.slot_claimed("mx:25", 1).await.unwrap());
    assert!(
        store.claim_self_check("mx:25", 1, "b", new).await.unwrap(),
        "the old claim went with a later purge"
    );
}

/// A report for `Example.ORG.` (any case, final dot) is stored and counted under
/// `example.org`, the name its page looks up.
pub async fn dmarc_report_domain_is_stored_as_its_page_looks_it_up(store: SharedStore) {
    let xml = "<feedback><report_metadata><org_name>R</org_name><report_id>dot-1</report_id>\
               <date_range><begin>1700006400</begin><end>1700092799</end></date_range>\
               </report_metadata><policy_published><domain> Example.ORG. </domain><p>none</p>\
               </policy_published><record><row><source_ip>192.0.2.1</source_ip><count>2</count>\
               </row><identifiers><header_from>example.org</header_from></identifiers></record>\
               </feedback>";
    let report =
        authcheck_dmarc_reports::parse(xml.as_bytes(), &authcheck_dmarc_reports::Limits::default())
            .unwrap();
    let row = NewReport::from_parsed(report, xml.as_bytes().to_vec(), 1_700_100_000);
    assert_eq!(row.domain, "example.org");
    let ReportInsert::Stored(id) = store.insert_report(row).await.unwrap() else {
        panic!("a new report is stored");
    };
    assert_eq!(
        store.get_report(&id).await.unwrap().unwrap().domain,
        "example.org"
    );
    let domains = store.dmarc_domains(10).await.unwrap();
    let names: Vec<_> = domains.iter().map(|d| d.domain.as_str()).collect();
    assert_eq!(names, ["example.org"]);
    assert!(store.dmarc_domain("example.org").await.unwrap().is_some());
}
