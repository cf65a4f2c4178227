//! The fan-out behind the live pages: one background task per router and per kind of row
//! polls the store for rows newer than the last one it saw and sends them through a broadcast
//! channel to every open event stream, which filters them for its page.
//!
//! The store is the only shared state, so this works with several instances on one PostgreSQL
//! database. The poller starts with the first subscriber and stops when the router is dropped.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use authcheck_store::{SharedStore, StoreError};
use tokio::sync::{OnceCell, broadcast};

/// How often a poller asks the store for new rows: well under the one second within which an
/// open page should show a new one.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Rows a slow client may fall behind by before it misses some (it then just goes on).
const CHANNEL_CAPACITY: usize = 256;

/// How long one event stream stays open. Browsers reconnect by themselves (after
/// [`RECONNECT_DELAY`], resuming from `Last-Event-ID`), and a bounded stream keeps a graceful
/// server shutdown, which waits for open connections, from waiting forever.
pub(crate) const MAX_STREAM_LIFETIME: Duration = Duration::from_secs(30);
pub(crate) const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// A kind of row a live page follows: rows with a store-wide `seq` that grows with each one.
pub(crate) trait FeedSource: Send + Sync + 'static {
    type Row: Send + Sync + 'static;
    /// What the rows are, for the log line when the store cannot be read.
    const ROWS: &'static str;

    fn seq(row: &Self::Row) -> i64;

    /// The `seq` of the newest row now, 0 when there is none.
    fn newest_seq(store: &SharedStore) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Rows stored after `seq`, oldest first; a burst may be returned over several calls.
    fn after(
        store: &SharedStore,
        seq: i64,
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send;
}

/// The new rows of one [`FeedSource`], fanned out to every client of one router.
pub(crate) struct Feed<S: FeedSource> {
    store: SharedStore,
    sender: Arc<broadcast::Sender<Arc<S::Row>>>,
    poller_started: OnceCell<()>,
}

impl<S: FeedSource> Feed<S> {
    pub(crate) fn new(store: SharedStore) -> Self {
        let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
        Feed {
            store,
            sender: Arc::new(sender),
            poller_started: OnceCell::new(),
        }
    }

    /// A receiver of every row stored from now on. The first call finds the newest row before
    /// it returns and then starts the poller from there, so even the very first client gets
    /// every row stored after it subscribed.
    pub(crate) async fn subscribe(&self) -> Result<broadcast::Receiver<Arc<S::Row>>, StoreError> {
        let receiver = self.sender.subscribe();
        self.poller_started
            .get_or_try_init(|| async {
                let newest_seq = S::newest_seq(&self.store).await?;
                tokio::spawn(poll::<S>(
                    self.store.clone(),
                    Arc::downgrade(&self.sender),
                    newest_seq,
                ));
                Ok::<_, StoreError>(())
            })
            .await?;
        Ok(receiver)
    }
}

/// Polls until the router is dropped (the weak sender no longer upgrades).
async fn poll<S: FeedSource>(
    store: SharedStore,
    sender: Weak<broadcast::Sender<Arc<S::Row>>>,
    mut last_seq: i64,
) {
    let mut interval = tokio::time::interval(POLL_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(sender) = sender.upgrade() else {
            return;
        };
        match S::after(&store, last_seq).await {
            Ok(rows) => {
                for row in rows {
                    last_seq = last_seq.max(S::seq(&row));
                    // No receivers just means nobody is watching right now.
                    let _ = sender.send(Arc::new(row));
                }
            }
            Err(error) => {
                tracing::warn!(%error, rows = S::ROWS, "live feed: cannot poll the store for new rows")
            }
        }
    }
}
