//! Names for the sending sources of aggregate reports: the reverse DNS (PTR) name of each
//! source address and that name's organizational domain, looked up once with the service's
//! resolver and cached in the store (`dmarc_sources`), so that pages show them without a
//! lookup.
//!
//! The lookups happen after the report is committed and its sender answered, on a background
//! task: a report naming 10,000 addresses must not hold its SMTP reply for 10,000 lookups.
//! What a stranger's report can make the service do is bounded: at most
//! [`LOOKUPS_PER_REPORT`] addresses of one report are looked up (the rest keep no name until
//! a later report names them), [`CONCURRENT_LOOKUPS`] at a time, each within
//! [`LOOKUP_TIME_LIMIT`]; reports waiting for their lookups queue up to [`QUEUED_REPORTS`],
//! and past that a report's sources wait for the next report that names them. A name is
//! looked up again once it is older than [`NAME_MAX_AGE`].

use std::net::IpAddr;
use std::time::Duration;

use authcheck_store::{SharedStore, SourceName, StoreResult};
use authcheck_verifier::Dns;
use authcheck_verifier::dns::LookupError;
use authcheck_verifier::domain::psl_organizational_domain;
use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Most source addresses of one report that are looked up.
pub const LOOKUPS_PER_REPORT: usize = 1_000;
/// Lookups under way at once.
pub const CONCURRENT_LOOKUPS: usize = 8;
/// How long one PTR lookup may take; past it the address is stored without a name.
pub const LOOKUP_TIME_LIMIT: Duration = Duration::from_secs(5);
/// Reports whose lookups wait for the background task.
pub const QUEUED_REPORTS: usize = 64;
/// How old a cached name may get before a report naming the address has it looked up again.
pub const NAME_MAX_AGE: Duration = Duration::from_secs(30 * 86_400);
/// Names stored per store write, so that a long run of lookups keeps what it found.
const NAMES_PER_WRITE: usize = 100;

/// The handle through which stored reports hand over their source addresses.
#[derive(Clone)]
pub struct SourceNamer {
    queue: mpsc::Sender<Vec<IpAddr>>,
}

impl SourceNamer {
    /// Starts the background task on the current runtime; it ends when the last handle is
    /// dropped.
    pub fn start(store: SharedStore, dns: Dns) -> SourceNamer {
        let (queue, mut reports) = mpsc::channel::<Vec<IpAddr>>(QUEUED_REPORTS);
        tokio::spawn(async move {
            while let Some(sources) = reports.recv().await {
                if let Err(error) = name_sources(&store, &dns, sources).await {
                    tracing::warn!(%error, "could not store the names of a report's sources; they are looked up with the next report that names them");
                }
            }
        });
        SourceNamer { queue }
    }

    /// Queues the lookups for one report's distinct `sources`, without waiting.
    pub fn look_up(&self, mut sources: Vec<IpAddr>) {
        if sources.is_empty() {
            return;
        }
        sources.truncate(LOOKUPS_PER_REPORT);
        if self.queue.try_send(sources).is_err() {
            tracing::debug!(
                "the source name lookups are {QUEUED_REPORTS} reports behind; this report's sources are named with a later report"
            );
        }
    }
}

/// What [`name_sources`] did with the addresses it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Named {
    /// Named fresh enough already: not looked up.
    pub known: u64,
    /// Looked up and stored with their PTR name.
    pub named: u64,
    /// Looked up and stored without a name: they have no PTR record.
    pub without_name: u64,
    /// Looked up without an answer (timeout, SERVFAIL, no resolver): tried again with a later
    /// report naming them.
    pub failed: u64,
}

impl Named {
    /// Lookups that got an answer, with a name or without.
    pub fn answered(&self) -> u64 {
        self.named + self.without_name
    }

    pub fn add(&mut self, other: Named) {
        self.known += other.known;
        self.named += other.named;
        self.without_name += other.without_name;
        self.failed += other.failed;
    }
}

/// Looks up the names of those of `sources` (at most [`LOOKUPS_PER_REPORT`]) that have no
/// fresh name in the store, and stores them.
pub async fn name_sources(
    store: &SharedStore,
    dns: &Dns,
    sources: Vec<IpAddr>,
) -> StoreResult<Named> {
    let ips: Vec<String> = sources
        .iter()
        .take(LOOKUPS_PER_REPORT)
        .map(IpAddr::to_string)
        .collect();
    let stale_before = Utc::now().timestamp() - NAME_MAX_AGE.as_secs() as i64;
    let due = store.sources_to_look_up(&ips, stale_before).await?;
    let mut counts = Named {
        known: (ips.len() - due.len()) as u64,
        ..Named::default()
    };
    let mut due = due.into_iter().filter_map(|ip| ip.parse::<IpAddr>().ok());
    let mut lookups = JoinSet::new();
    let mut names = Vec::with_capacity(NAMES_PER_WRITE);
    loop {
        while lookups.len() < CONCURRENT_LOOKUPS {
            let Some(ip) = due.next() else { break };
            let dns = dns.clone();
            lookups.spawn(async move { name_of(&dns, ip).await });
        }
        let Some(done) = lookups.join_next().await else {
            break;
        };
        match done {
            Ok(Some(name)) => {
                if name.ptr.is_some() {
                    counts.named += 1;
                } else {
                    counts.without_name += 1;
                }
                names.push(name);
            }
            Ok(None) | Err(_) => counts.failed += 1,
        }
        if names.len() >= NAMES_PER_WRITE {
            store.record_sources(&std::mem::take(&mut names)).await?;
        }
    }
    if !names.is_empty() {
        store.record_sources(&names).await?;
    }
    Ok(counts)
}

/// The first PTR name of `ip` and its organizational domain (from the Public Suffix List: a
/// name shown beside an address, where RFC 9989's DNS tree walk would cost more lookups than
/// it is worth). An address without a PTR record is stored without a name, so it is not
/// looked up again for every report; `None` when the lookup failed or took too long, so the
/// next report naming it tries again.
async fn name_of(dns: &Dns, ip: IpAddr) -> Option<SourceName> {
    let ptr = match tokio::time::timeout(LOOKUP_TIME_LIMIT, dns.ptr(ip)).await {
        Ok(Ok(names)) => names.into_iter().next(),
        Ok(Err(LookupError::NxDomain(_) | LookupError::NoRecords(..))) => None,
        Ok(Err(_)) | Err(_) => return None,
    };
    let ptr = ptr
        .map(|name| name.trim_end_matches('.').to_ascii_lowercase())
        .filter(|name| !name.is_empty());
    Some(SourceName {
        ip: ip.to_string(),
        org_domain: ptr.as_deref().map(psl_organizational_domain),
        ptr,
        looked_up_at: Utc::now().timestamp(),
    })
}
