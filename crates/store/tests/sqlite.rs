//! The shared store suite against SQLite files in temporary folders, plus what only SQLite
//! does: creating the file and its folder, keeping results across reopening, read-only files.

mod suite;

use std::path::Path;
use std::str::FromStr;

use authcheck_store::{ListQuery, Mailbox, SharedStore, StoreError, open};
use suite::{REJECTED_VERDICT, at, insert_one, sample};
use tempfile::TempDir;

fn url_for(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A new empty folder and the URL of a database file inside it (`sqlite:///tmp/...`).
fn fresh_url() -> (TempDir, String) {
    let folder = tempfile::tempdir().unwrap();
    let url = url_for(&folder.path().join("authcheck.db"));
    (folder, url)
}

async fn open_ok(url: &str) -> SharedStore {
    match open(url).await {
        Ok(store) => store,
        Err(error) => panic!("cannot open {url}: {error}"),
    }
}

/// A database at `url` with the schema an older version left: every migration whose version
/// sorts before `first_left_out`, run directly, with no store opened on it yet.
async fn migrated_before(url: &str, first_left_out: &str) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .unwrap()
        .create_if_missing(true);
    let direct = sqlx::SqlitePool::connect_with(options).await.unwrap();
    suite::migrate_before(&direct, "sqlite", first_left_out).await;
    direct
}

macro_rules! on_a_fresh_store {
    ($($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let (_folder, url) = fresh_url();
                suite::$test(open_ok(&url).await).await;
            }
        )*
    };
}

suite::every_case!(on_a_fresh_store);

/// A store whose database rejects results with [`REJECTED_VERDICT`], as a full disk or a
/// crash in the middle of a message would (a second, plain connection installs a trigger).
async fn store_that_rejects(url: &str) -> SharedStore {
    let store = open_ok(url).await;
    let direct = sqlx::SqlitePool::connect(url).await.unwrap();
    sqlx::query(&format!(
        "CREATE TRIGGER reject_for_test BEFORE INSERT ON results \
         WHEN NEW.verdict = '{REJECTED_VERDICT}' \
         BEGIN SELECT RAISE(ABORT, 'rejected by the test'); END"
    ))
    .execute(&direct)
    .await
    .unwrap();
    direct.close().await;
    store
}

#[tokio::test]
async fn failed_insert_stores_none_of_the_message() {
    let (_folder, url) = fresh_url();
    suite::failed_insert_stores_none_of_the_message(store_that_rejects(&url).await).await;
}

#[tokio::test]
async fn rejected_message_costs_concurrent_messages_nothing() {
    let (_folder, url) = fresh_url();
    let store = store_that_rejects(&url).await;
    suite::rejected_message_costs_concurrent_messages_nothing(store).await;
}

#[tokio::test]
async fn concurrent_purges_from_two_handles_agree() {
    let (_folder, url) = fresh_url();
    let first = open_ok(&url).await;
    let second = open_ok(&url).await;
    suite::concurrent_purges_from_two_handles_agree(first, second).await;
}

#[tokio::test]
async fn concurrent_claims_take_each_message_once() {
    let (_folder, url) = fresh_url();
    let (first, second) = (open_ok(&url).await, open_ok(&url).await);
    suite::concurrent_claims_take_each_message_once(first, second).await;
}

#[tokio::test]
async fn concurrent_decisions_keep_the_rate_limit() {
    let (_folder, url) = fresh_url();
    let (first, second) = (open_ok(&url).await, open_ok(&url).await);
    suite::concurrent_decisions_keep_the_rate_limit(first, second).await;
}

#[tokio::test]
async fn write_ahead_log_is_folded_back_while_results_keep_coming() {
    const MESSAGES: usize = 1_000;
    // SQLite's own limit before it folds the log back is 1,000 pages; allow some slack.
    const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;
    let (folder, url) = fresh_url();
    let store = open_ok(&url).await;
    let log = folder.path().join("authcheck.db-wal");
    let mut largest = 0;
    for n in 0..MESSAGES {
        let mut result = sample(Mailbox::Spf, at(1));
        result.raw_message = format!("Subject: {n}\r\n\r\n{}", "body line\r\n".repeat(400))
            .into_bytes()
            .into();
        insert_one(&store, result).await;
        largest = largest.max(std::fs::metadata(&log).map_or(0, |meta| meta.len()));
    }
    eprintln!("largest write-ahead log: {largest} bytes");
    assert!(
        largest < MAX_LOG_BYTES,
        "the write-ahead log grew to {largest} bytes over {MESSAGES} messages"
    );
    let all = store
        .list(&ListQuery {
            limit: 1,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    store.close().await;
}

#[tokio::test]
async fn missing_folders_and_file_are_created() {
    let folder = tempfile::tempdir().unwrap();
    let database = folder
        .path()
        .join("data")
        .join("nested")
        .join("authcheck.db");
    let store = open_ok(&url_for(&database)).await;
    assert!(database.is_file());
    insert_one(&store, sample(Mailbox::Spf, at(1))).await;
}

#[tokio::test]
async fn relative_paths_are_relative_to_the_working_directory() {
    let folder = tempfile::tempdir().unwrap();
    let working_directory = std::env::current_dir().unwrap();
    let up = "../".repeat(working_directory.components().count() - 1);
    let absolute = folder.path().join("data").join("authcheck.db");
    let relative = format!("{up}{}", absolute.strip_prefix("/").unwrap().display());
    let store = open_ok(&format!("sqlite://{relative}")).await;
    insert_one(&store, sample(Mailbox::Spf, at(1))).await;
    assert!(absolute.is_file());
}

#[tokio::test]
async fn reopening_the_file_keeps_results() {
    let (_folder, url) = fresh_url();
    let store = open_ok(&url).await;
    let id = insert_one(&store, sample(Mailbox::Dkim, at(3))).await;
    let before = store.get(&id).await.unwrap().unwrap();
    store.close().await;
    drop(store);

    let reopened = open_ok(&url).await;
    assert_eq!(reopened.get(&id).await.unwrap(), Some(before.clone()));
    assert!(reopened.raw_message(&id).await.unwrap().is_some());
    let newer = insert_one(&reopened, sample(Mailbox::Spf, at(4))).await;
    assert!(reopened.get(&newer).await.unwrap().unwrap().summary.seq > before.summary.seq);
}

#[tokio::test]
async fn in_memory_database_works() {
    let store = open_ok("sqlite::memory:").await;
    let id = insert_one(&store, sample(Mailbox::Spf, at(1))).await;
    assert!(store.get(&id).await.unwrap().is_some());

    let other = open_ok("sqlite::memory:").await;
    assert_eq!(other.get(&id).await.unwrap(), None);
}

#[tokio::test]
async fn read_only_database_is_unavailable_for_writes() {
    let (_folder, url) = fresh_url();
    let store = open_ok(&url).await;
    let id = insert_one(&store, sample(Mailbox::Spf, at(1))).await;
    store.close().await;

    // Tests run as root, which file permissions do not stop, so open the file read-only
    // the way SQLite does for a read-only mount.
    let read_only = open_ok(&format!("{url}?mode=ro")).await;
    assert!(read_only.get(&id).await.unwrap().is_some());
    let outcome = read_only.insert(vec![sample(Mailbox::Spf, at(2))]).await;
    assert!(
        matches!(&outcome, Err(StoreError::Unavailable(message)) if message.contains("readonly")),
        "{outcome:?}"
    );
    let readiness = read_only.ready().await;
    assert!(
        matches!(&readiness, Err(StoreError::Unavailable(_))),
        "{readiness:?}"
    );
    let listed = read_only
        .list(&ListQuery {
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn database_file_uses_the_write_ahead_log() {
    let (_folder, url) = fresh_url();
    let store = open_ok(&url).await;
    insert_one(&store, sample(Mailbox::Spf, at(1))).await;
    // The journal mode is recorded in the file, so a separate connection sees it.
    let direct = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    direct.close().await;
}

#[tokio::test]
async fn uncreatable_folder_is_a_configuration_error() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("not-a-folder");
    std::fs::write(&file, b"").unwrap();
    let outcome = open(&url_for(&file.join("data").join("authcheck.db"))).await;
    assert!(
        matches!(&outcome, Err(StoreError::Config(message)) if message.contains("cannot create the folder")),
        "{:?}",
        outcome.err()
    );
}

#[tokio::test]
async fn file_that_is_not_a_database_is_a_configuration_error() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("authcheck.db");
    std::fs::write(
        &file,
        b"this is a text file, not a database, and long enough to tell",
    )
    .unwrap();
    let outcome = open(&url_for(&file)).await;
    assert!(
        matches!(&outcome, Err(StoreError::Config(_))),
        "{:?}",
        outcome.err()
    );
}

#[tokio::test]
async fn unsupported_schemes_are_configuration_errors() {
    for url in [
        "mysql://user:secret@localhost/db",
        "data/authcheck.db",
        "",
        "sqlite://",
    ] {
        let outcome = open(url).await;
        match outcome {
            Err(StoreError::Config(message)) => {
                assert!(!message.contains("secret"), "{message}");
                assert!(message.contains("sqlite://"), "{message}");
            }
            other => panic!("{url}: {:?}", other.err()),
        }
    }
}

#[tokio::test]
async fn a_message_to_two_mailboxes_is_stored_once() {
    let (_folder, url) = fresh_url();
    let store = open_ok(&url).await;
    let mut spf = sample(Mailbox::Spf, at(1));
    spf.raw_message = vec![b'x'; 100_000].into();
    let mut dkim = sample(Mailbox::Dkim, at(1));
    dkim.raw_message = spf.raw_message.clone();
    store.insert(vec![spf, dkim]).await.unwrap();
    let direct = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (copies, bytes): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), SUM(LENGTH(message)) FROM messages")
            .fetch_one(&direct)
            .await
            .unwrap();
    assert_eq!((copies, bytes), (1, 100_000));
    direct.close().await;
}

/// A table this version writes is missing (a database from another version, or tampered
/// with): no retry can cure that, so writes fail as a configuration error that says so.
#[tokio::test]
async fn a_write_to_a_missing_table_is_a_configuration_error() {
    let (_folder, url) = fresh_url();
    let store = open_ok(&url).await;
    let direct = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE stats_hourly")
        .execute(&direct)
        .await
        .unwrap();
    direct.close().await;
    let outcome = store.insert(vec![sample(Mailbox::Spf, at(1))]).await;
    assert!(
        matches!(&outcome, Err(StoreError::Config(message))
            if message.contains("does not have the tables") && message.contains("stats_hourly")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn purge_deletes_the_raw_messages_no_result_keeps() {
    let (_folder, url) = fresh_url();
    let store = open_ok(&url).await;
    suite::purge_old_results_of_four_raw_messages(&store).await;
    let direct = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM messages")
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(left, 1);
    direct.close().await;
}

/// A database written by the version before raw messages were shared: its results keep their
/// raw download after the migration.
#[tokio::test]
async fn results_stored_before_the_shared_copies_keep_their_raw_message() {
    let (_folder, url) = fresh_url();
    let direct = migrated_before(&url, "20261129000001").await;
    sqlx::query(
        "INSERT INTO results (id, mailbox, received_at, client_ip, client_port, \
         client_ptr_confirmed, helo, mail_from, mail_from_lower, recipient, size, verdict, \
         prefixed_subject, report) VALUES ('0123456789abcdef0123456789abcdef', 'spf', \
         '2026-03-01T12:00:00.000000Z', '192.0.2.1', 25, 0, 'h', 'a@b', 'a@b', \
         'spf@t', 5, '|OK| spf-pass', '|OK| spf-pass', '{\"spf\": {\"result\": \"pass\"}}')",
    )
    .execute(&direct)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO raw_messages (result_id, message) \
         VALUES ('0123456789abcdef0123456789abcdef', x'4869')",
    )
    .execute(&direct)
    .await
    .unwrap();
    direct.close().await;

    let store = open_ok(&url).await;
    let old = "0123456789abcdef0123456789abcdef";
    assert!(store.get(old).await.unwrap().is_some());
    assert_eq!(store.raw_message(old).await.unwrap(), Some(b"Hi".to_vec()));
    // It has no stored summary: listings get its report to make one from.
    let everything = ListQuery {
        limit: 10,
        ..ListQuery::default()
    };
    let listed = store.list(&everything).await.unwrap();
    assert_eq!(
        listed[0].report_summary,
        serde_json::json!({"spf": {"result": "pass"}})
    );
    assert_eq!(store.purge(at(2)).await.unwrap(), 1);
    assert_eq!(store.raw_message(old).await.unwrap(), None);
}

/// A database from before outgoing messages carried their private mark: a queued reply to a
/// private test's sender is marked from its result by the migration, so its sessions stay
/// unlisted even once the retention purge deletes that result; a public reply is not.
#[tokio::test]
async fn replies_queued_before_the_private_mark_are_marked_from_their_results() {
    let (_folder, url) = fresh_url();
    let direct = migrated_before(&url, "20261130000191").await;
    sqlx::query("INSERT INTO messages (id, message) VALUES ('m1', x'4869')")
        .execute(&direct)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO private_tests (token, created_at, expires_at) \
         VALUES ('aaaaaaaaaaaaaaaaaaaa', 1700000000, 1800000000)",
    )
    .execute(&direct)
    .await
    .unwrap();
    for (id, private_test, reply) in [
        (
            "0123456789abcdef0123456789abcdef",
            "'aaaaaaaaaaaaaaaaaaaa'",
            "to-private",
        ),
        ("1123456789abcdef0123456789abcdef", "NULL", "to-public"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO results (id, mailbox, received_at, client_ip, client_port, \
             client_ptr_confirmed, helo, mail_from, mail_from_lower, recipient, size, verdict, \
             prefixed_subject, report, message_id, private_test) VALUES ('{id}', 'check', \
             '2026-03-01T12:00:00.000000Z', '192.0.2.1', 25, 0, 'h', 'a@b', 'a@b', \
             'check@t', 5, '|OK| spf-pass |OK| dkim-pass', 'x', '{{}}', 'm1', {private_test})"
        ))
        .execute(&direct)
        .await
        .unwrap();
        sqlx::query(&format!(
            "INSERT INTO outgoing (id, kind, recipient, recipient_domain, client, message, \
             created_at, give_up_at, next_attempt_at, state) VALUES ('{reply}', 'reply', \
             'a@b', 'b', '192.0.2.1', x'4869', 1700000000, 4000000000, 1700000000, 'queued')"
        ))
        .execute(&direct)
        .await
        .unwrap();
        sqlx::query(&format!(
            "INSERT INTO reply_decisions (result_id, decided_at, reply_id) \
             VALUES ('{id}', 1700000000, '{reply}')"
        ))
        .execute(&direct)
        .await
        .unwrap();
    }
    direct.close().await;

    let store = open_ok(&url).await;
    // The results go with the retention; the queued replies wait on.
    assert_eq!(store.purge(at(2)).await.unwrap(), 2);
    let claimed = store
        .claim_outgoing("test", 1700000001, 1700000100, 10)
        .await
        .unwrap();
    let marks: Vec<(&str, bool)> = claimed
        .iter()
        .map(|message| (message.id.as_str(), message.private))
        .collect();
    assert_eq!(marks, [("to-private", true), ("to-public", false)]);
}

/// A database whose reports were stored under their domain as written (`Example.ORG.`): the
/// migration files them under the name their page looks up, merged with those stored so.
#[tokio::test]
async fn report_domains_stored_as_written_are_merged_under_the_name_pages_look_up() {
    let (_folder, url) = fresh_url();
    let direct = migrated_before(&url, suite::DOMAIN_NAMES_MIGRATION).await;
    for statement in suite::reports_under_domains_as_written("x'00'") {
        sqlx::query(&statement).execute(&direct).await.unwrap();
    }
    direct.close().await;
    suite::report_domains_are_merged_under_their_names(&open_ok(&url).await).await;
}

/// A database with DMARC reports stored before the daily rollup existed: the migration adds
/// them to it, on their first day, so the dashboard shows them.
#[tokio::test]
async fn reports_stored_before_the_rollup_are_added_to_it() {
    let (_folder, url) = fresh_url();
    let direct = migrated_before(&url, "20261130000041").await;
    sqlx::query(
        "INSERT INTO dmarc_reports (id, kind, reporter, report_id, domain, date_begin, date_end, \
         received_at, report, raw) VALUES ('00aa', 'aggregate', 'R', '1', 'old.example', \
         1700006400, 1700092799, 1700100000, '{}', x'00')",
    )
    .execute(&direct)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO dmarc_records (report, source_ip, count, disposition, dkim, spf, header_from) \
         VALUES ('00aa', '192.0.2.1', 7, 'none', 'pass', 'fail', 'old.example'), \
                ('00aa', '192.0.2.2', 3, 'reject', 'fail', 'fail', 'old.example')",
    )
    .execute(&direct)
    .await
    .unwrap();
    direct.close().await;

    let store = open_ok(&url).await;
    let domain = store.dmarc_domain("old.example").await.unwrap().unwrap();
    assert_eq!((domain.messages, domain.reports), (10, 1));
    let filter = authcheck_store::DmarcFilter {
        domain: "old.example".into(),
        first_day: domain.first_day,
        last_day: domain.last_day,
        reporter: None,
        source_ip: None,
        outcome: None,
    };
    let days = store.dmarc_daily(&filter).await.unwrap();
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].day.to_string(), "2023-11-15");
    assert_eq!(
        (days[0].counts.messages, days[0].counts.dmarc_pass),
        (10, 7)
    );
}

/// A database from before `check@`: the results table is rebuilt to accept it, and the
/// results stored before keep their id, order, raw message and listing; new ones follow them.
#[tokio::test]
async fn results_stored_before_check_survive_the_rebuilt_table() {
    let (_folder, url) = fresh_url();
    let direct = migrated_before(&url, "20261130000081").await;
    sqlx::query("INSERT INTO messages (id, message) VALUES ('m1', x'4869')")
        .execute(&direct)
        .await
        .unwrap();
    for (seq, id) in [
        (7, "0123456789abcdef0123456789abcdef"),
        (9, "1123456789abcdef0123456789abcdef"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO results (seq, id, mailbox, received_at, client_ip, client_port, \
             client_ptr_confirmed, helo, mail_from, mail_from_lower, recipient, size, verdict, \
             prefixed_subject, report, message_id) VALUES ({seq}, '{id}', 'dkim', \
             '2026-03-01T12:00:00.000000Z', '192.0.2.1', 25, 0, 'h', 'a@b', 'a@b', \
             'dkim@t', 5, '|OK| dkim-pass', '|OK| dkim-pass', '{{}}', 'm1')"
        ))
        .execute(&direct)
        .await
        .unwrap();
    }
    direct.close().await;

    let store = open_ok(&url).await;
    let newer = insert_one(&store, sample(Mailbox::Check, at(3))).await;
    let listed = store
        .list(&ListQuery {
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    let seqs: Vec<(i64, &str)> = listed.iter().map(|r| (r.seq, r.id.as_str())).collect();
    assert_eq!(
        seqs,
        [
            (10, newer.as_str()),
            (9, "1123456789abcdef0123456789abcdef"),
            (7, "0123456789abcdef0123456789abcdef")
        ]
    );
    assert_eq!(listed[0].mailbox, Mailbox::Check);
    assert_eq!(
        store
            .raw_message("0123456789abcdef0123456789abcdef")
            .await
            .unwrap(),
        Some(b"Hi".to_vec())
    );
}

#[tokio::test]
async fn results_and_sessions_stored_before_the_statistics_are_counted_by_the_migration() {
    let (_folder, url) = fresh_url();
    let direct = migrated_before(&url, "20261130000101").await;
    for (id, verdict, from, domain) in [
        ("01", "|OK| spf-pass", "a@old.example", "'old.example'"),
        ("02", "!! spf-fail !!", "b@old.example", "'old.example'"),
        ("03", "|OK| spf-pass |~OK| dkim-pass", "", "NULL"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO results (id, mailbox, received_at, client_ip, client_port, \
             client_ptr, client_ptr_confirmed, helo, mail_from, mail_from_lower, \
             mail_from_domain, recipient, size, verdict, prefixed_subject, report) VALUES \
             ('{id}', 'spf', '2026-03-01T12:30:00.000000Z', '192.0.2.1', 25, 'mx.old.example', \
             0, 'h', '{from}', '{from}', {domain}, 'spf@t', 5, '{verdict}', '{verdict}', '{{}}')"
        ))
        .execute(&direct)
        .await
        .unwrap();
    }
    // 2026-03-01 12:00 UTC, a relay attempt refused twice.
    let refused = r#"[{"at":"2026-03-01T12:00:00Z","command":"RCPT TO:<x@y>","code":550,"status":"5.7.1","text":"relaying denied"},{"at":"2026-03-01T12:00:00Z","command":"RCPT TO:<z@y>","code":550,"status":"5.7.1","text":"relaying denied"}]"#;
    sqlx::query(
        "INSERT INTO smtp_sessions (id, started_ms, ended_ms, client_ip, client_port, ending, \
         codes, result_ids, events, events_left_out, left_out_at) VALUES \
         ('s1', 1772366400000, 1772366400000, '192.0.2.9', 25, 'quit', ' 550 ', '', $1, 0, 0), \
         ('s2', 1772366400000, 1772366400000, '192.0.2.9', 25, 'quit', ' 250 ', '', '[]', 0, 0)",
    )
    .bind(refused)
    .execute(&direct)
    .await
    .unwrap();
    direct.close().await;

    let store = open_ok(&url).await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let stats = store
        .stats(&authcheck_store::StatsQuery {
            first_day: day,
            last_day: day,
            mailbox: None,
            top: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        stats.days[0].counts,
        authcheck_store::GradeCounts {
            messages: 3,
            ok: 1,
            partial: 1,
            problem: 1
        }
    );
    assert_eq!(stats.hours[12], 3);
    assert_eq!(stats.hosts[0].client_ip, "192.0.2.1");
    assert_eq!(stats.hosts[0].client_ptr.as_deref(), Some("mx.old.example"));
    let addresses: Vec<(&str, i64)> = stats
        .sender_addresses
        .iter()
        .map(|s| (s.name.as_str(), s.counts.messages))
        .collect();
    assert_eq!(
        addresses,
        [("<>", 1), ("a@old.example", 1), ("b@old.example", 1)]
    );
    assert_eq!(stats.sender_domains[0].name, "old.example");
    assert_eq!(stats.sender_domains[0].counts.messages, 2);
    assert_eq!(stats.sessions[0].sessions, 2);
    assert_eq!(stats.sessions[0].refused, 1);
    assert_eq!(
        (
            stats.replies[0].code,
            stats.replies[0].status.as_str(),
            stats.replies[0].replies,
            stats.replies[0].sessions
        ),
        (550, "5.7.1", 2, 1)
    );
}
