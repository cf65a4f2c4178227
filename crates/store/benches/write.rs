//! What storing a message costs the SQLite store alone, without SMTP or verification: CPU time,
//! thread switches and bytes written per message, as concurrent sessions store their results
//! and session rows through the group-commit writer.
//!
//! Run: `cargo bench -p authcheck-store --bench write` (10,000 messages from 20 sessions, three
//! rounds on a new database each); `-- MESSAGES SESSIONS` to change them. Each message is what
//! the load benchmark's message becomes: a result with a 5 KB report, a 1 KB summary and the
//! 4 KB message, and a session row of nine exchanges. The figures are read from `/proc` for the
//! whole process (Linux only), so they include the writer's and SQLite's threads.

use std::time::Instant;

use authcheck_store::{
    Direction, Mailbox, NewResult, NewSession, SessionEvent, SessionFacts, SharedStore,
};
use chrono::Utc;
use serde_json::json;
use serde_json::value::{RawValue, to_raw_value};

/// The service's allocator, so that allocation costs what it costs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REPORT_BYTES: usize = 5 * 1024;
const SUMMARY_BYTES: usize = 1024;
const MESSAGE_BYTES: usize = 4 * 1024;
/// Most session rows written together.
const SESSION_BATCH: usize = 64;

fn main() {
    let mut args = std::env::args().skip(1).filter(|arg| !arg.starts_with('-'));
    let messages: usize = args.next().map_or(10_000, |n| n.parse().expect("MESSAGES"));
    let sessions: usize = args.next().map_or(20, |n| n.parse().expect("SESSIONS"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!("{messages} messages from {sessions} sessions, each round on a new database");
    for round in 1..=3 {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let url = format!("sqlite://{}/bench.db", folder.path().display());
        let store = runtime
            .block_on(authcheck_store::open(&url))
            .expect("open the store");
        let before = Usage::now();
        let started = Instant::now();
        runtime.block_on(store_messages(&store, messages, sessions));
        let elapsed = started.elapsed();
        let used = Usage::now().since(&before);
        runtime.block_on(store.close());
        let per_message = |total: f64| total / messages as f64;
        println!(
            "round {round}: {:.0} msg/s, {:.0} µs CPU, {:.1} thread switches, {:.1} KB written per message",
            messages as f64 / elapsed.as_secs_f64(),
            per_message(used.cpu_seconds * 1e6),
            per_message(used.switches as f64),
            per_message(used.written_bytes as f64 / 1024.0),
        );
    }
}

/// `messages` stored by `sessions` concurrent tasks, each waiting for its commit as an SMTP
/// session does before its 250; their session rows are written in batches by one more task,
/// as the service's session log writes them.
async fn store_messages(store: &SharedStore, messages: usize, sessions: usize) {
    let report = padded_json(REPORT_BYTES);
    let summary = padded_json(SUMMARY_BYTES);
    let message = message();
    let (session_log, mut ended) = tokio::sync::mpsc::channel::<NewSession>(1024);
    let log_writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(SESSION_BATCH);
            while ended.recv_many(&mut batch, SESSION_BATCH).await > 0 {
                let rows = std::mem::take(&mut batch);
                store.insert_sessions(rows).await.expect("sessions stored");
            }
        })
    };
    let tasks: Vec<_> = (0..sessions)
        .map(|session| {
            let (store, session_log) = (store.clone(), session_log.clone());
            let (report, summary, message) = (report.clone(), summary.clone(), message.clone());
            let share = messages / sessions + usize::from(session < messages % sessions);
            tokio::spawn(async move {
                for _ in 0..share {
                    let result = new_result(report.clone(), summary.clone(), message.clone());
                    let ids = store.insert(vec![result]).await.expect("stored");
                    session_log
                        .send(new_session(ids))
                        .await
                        .expect("the session log runs");
                }
            })
        })
        .collect();
    drop(session_log);
    for task in tasks {
        task.await.expect("a storing task");
    }
    log_writer.await.expect("the session log's task");
}

fn new_result(report: Box<RawValue>, summary: Box<RawValue>, message: Vec<u8>) -> NewResult {
    NewResult {
        mailbox: Mailbox::Spf,
        received_at: Utc::now(),
        session: SessionFacts {
            client_ip: "192.0.2.10".to_owned(),
            client_port: 40001,
            client_ptr: Some("mail.sender.test".to_owned()),
            client_ptr_confirmed: true,
            helo: "mail.sender.test".to_owned(),
            tls_version: None,
            tls_cipher: None,
            mail_from: "loadgen@sender.test".to_owned(),
            recipient: "spf@tester.test".to_owned(),
            size: MESSAGE_BYTES as u64,
        },
        header_from: Some("loadgen@sender.test".to_owned()),
        subject: Some("authcheck load test".to_owned()),
        verdict: "|OK| spf-pass".to_owned(),
        prefixed_subject: "|OK| spf-pass authcheck load test".to_owned(),
        report,
        report_summary: summary,
        raw_message: message.into(),
        private_test: None,
    }
}

fn new_session(result_ids: Vec<String>) -> NewSession {
    let now = Utc::now();
    let event = |command: &str, code: u16, status: Option<&str>, text: &str| SessionEvent {
        at: now,
        command: command.to_owned(),
        code,
        status: status.map(str::to_owned),
        text: text.to_owned(),
    };
    NewSession {
        id: None,
        direction: Direction::Inbound,
        listed: true,
        started_at: now,
        ended_at: now,
        client_ip: "192.0.2.10".to_owned(),
        client_port: 40001,
        client_ptr: Some("mail.sender.test".to_owned()),
        helo: Some("mail.sender.test".to_owned()),
        tls_version: None,
        tls_cipher: None,
        mail_from: Some("loadgen@sender.test".to_owned()),
        ending: "quit".to_owned(),
        events: vec![
            event("(connect)", 220, None, "authcheck.test ESMTP authcheck"),
            event("EHLO mail.sender.test", 250, None, "authcheck.test"),
            event("MAIL FROM:<loadgen@sender.test>", 250, Some("2.1.0"), "OK"),
            event("RCPT TO:<spf@tester.test>", 250, Some("2.1.5"), "OK"),
            event("DATA", 354, None, "End data with <CR><LF>.<CR><LF>"),
            event(
                "(end of data)",
                250,
                Some("2.0.0"),
                "Stored as 0123456789abcdef0123456789abcdef: https://tester.test/r/0123456789abcdef0123456789abcdef",
            ),
            event("QUIT", 221, Some("2.0.0"), "Bye"),
        ],
        events_left_out: 0,
        left_out_at: 0,
        result_ids,
    }
}

/// A JSON object of about `size` bytes of mixed fields, like a report.
fn padded_json(size: usize) -> Box<RawValue> {
    let mut entries = serde_json::Map::new();
    let mut index = 0;
    while serde_json::to_string(&entries).expect("JSON").len() < size {
        entries.insert(
            format!("field_{index}"),
            json!({"result": "pass", "reason": "the signature verifies with the key at s._domainkey.sender.test", "n": index}),
        );
        index += 1;
    }
    to_raw_value(&entries).expect("JSON")
}

fn message() -> Vec<u8> {
    let mut message =
        b"From: loadgen@sender.test\r\nTo: spf@tester.test\r\nSubject: authcheck load test\r\n\r\n"
            .to_vec();
    let line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n";
    while message.len() + line.len() <= MESSAGE_BYTES {
        message.extend_from_slice(line);
    }
    message
}

/// The process's CPU time, thread switches and bytes written so far.
struct Usage {
    cpu_seconds: f64,
    switches: u64,
    written_bytes: u64,
}

impl Usage {
    fn now() -> Usage {
        let switches = std::fs::read_dir("/proc/self/task")
            .expect("/proc/self/task")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
            .map(|status| {
                status
                    .lines()
                    .filter(|line| line.contains("ctxt_switches:"))
                    .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum();
        let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
        let written_bytes = io
            .lines()
            .find_map(|line| line.strip_prefix("write_bytes: "))
            .and_then(|value| value.trim().parse().ok())
            .expect("write_bytes in /proc/self/io");
        Usage {
            cpu_seconds: authcheck_testkit::process::cpu_time("self")
                .expect("/proc/self/stat")
                .as_secs_f64(),
            switches,
            written_bytes,
        }
    }

    fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            cpu_seconds: self.cpu_seconds - earlier.cpu_seconds,
            switches: self.switches.saturating_sub(earlier.switches),
            written_bytes: self.written_bytes.saturating_sub(earlier.written_bytes),
        }
    }
}
