//! The SMTP session log's writer: the listener hands every finished session to
//! [`TesterDelivery`](crate::delivery::TesterDelivery), which queues it here without waiting;
//! one task takes what has queued up, looks up the clients' PTR names and stores the batch in
//! one call (on SQLite, inside the group commit beside the results).
//!
//! No SMTP reply ever waits for a session row: a session is queued after its connection is
//! closed, and when the queue is full (the store is far behind) the record is dropped and
//! counted in `authcheck_session_log_dropped_total` rather than held in memory.

use std::net::IpAddr;
use std::time::Duration;

use authcheck_smtp::SessionRecord;
use authcheck_store::{NewSession, SessionEvent, SharedStore};
use futures::future::join_all;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::delivery::PtrLookup;

/// Sessions that may wait for the writer; past this they are dropped and counted.
const QUEUE_DEPTH: usize = 4096;
/// The most sessions stored in one call.
const MAX_BATCH: usize = 256;
/// How long the PTR lookup of a session's client may take; past it the session is stored
/// without a PTR name.
const PTR_TIME_LIMIT: Duration = Duration::from_secs(2);

/// The sending end, held by the delivery.
pub struct SessionLog {
    queue: mpsc::Sender<SessionRecord>,
}

impl SessionLog {
    /// Starts the writer task; it ends once every [`SessionLog`] is dropped and the queue is
    /// written.
    pub fn start(store: SharedStore, ptr: PtrLookup) -> (SessionLog, JoinHandle<()>) {
        let (queue, receiver) = mpsc::channel(QUEUE_DEPTH);
        let writer = tokio::spawn(write_sessions(store, receiver, ptr));
        (SessionLog { queue }, writer)
    }

    /// Queues `record` without waiting.
    pub fn record(&self, record: SessionRecord) {
        if self.queue.try_send(record).is_err() {
            metrics::counter!("authcheck_session_log_dropped_total").increment(1);
        }
    }
}

async fn write_sessions(
    store: SharedStore,
    mut queue: mpsc::Receiver<SessionRecord>,
    ptr: PtrLookup,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let records = std::mem::take(&mut batch);
        let names = join_all(
            records
                .iter()
                .map(|record| ptr.name_of(record.client.ip(), PTR_TIME_LIMIT)),
        )
        .await;
        let sessions: Vec<NewSession> = records
            .into_iter()
            .zip(names)
            .map(|(record, name)| new_session(record, name))
            .collect();
        let count = sessions.len();
        if let Err(error) = store.insert_sessions(sessions).await {
            metrics::counter!("authcheck_session_log_dropped_total").increment(count as u64);
            tracing::warn!(%error, sessions = count, "could not store SMTP session log entries");
        }
    }
}

/// The store's form of a session record.
pub fn new_session(record: SessionRecord, client_ptr: Option<String>) -> NewSession {
    let (tls_version, tls_cipher) = match record.tls {
        Some(tls) => (Some(tls.version), Some(tls.cipher)),
        None => (None, None),
    };
    NewSession {
        started_at: record.started_at,
        ended_at: record.ended_at,
        client_ip: record.client.ip().to_string(),
        client_port: record.client.port(),
        client_ptr,
        helo: record.helo,
        tls_version,
        tls_cipher,
        mail_from: record.mail_from,
        ending: record.ending.as_str().to_owned(),
        events: record
            .events
            .into_iter()
            .map(|event| SessionEvent {
                at: event.at,
                command: event.command,
                code: event.code,
                status: event.status,
                text: event.text,
            })
            .collect(),
        events_left_out: u32::try_from(record.events_left_out).unwrap_or(u32::MAX),
        left_out_at: u32::try_from(record.left_out_at).unwrap_or(u32::MAX),
        result_ids: record.result_ids,
    }
}

/// Loopback clients (tests, local tools) have no PTR name worth a query.
pub fn worth_looking_up(ip: IpAddr) -> bool {
    !ip.is_loopback() && !ip.is_unspecified()
}
