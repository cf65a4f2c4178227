//! How the service's periodic tasks (the self-check, the outgoing queue, the weekly summary)
//! repeat: one tick per period, a late tick delayed rather than bunched with the next
//! ([`ticker`]), the task handed the time of its run, and a stop that ends the wait or the run
//! in progress, so shutting down never waits for a slow SMTP server ([`repeat`]; the outgoing
//! queue keeps its own loop on the same ticker, as its attempts run on beside the next tick).
//! Each task keeps what it does, and what it logs, in its own module; its behaviour over time
//! is tested there through that time.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Runs `task` at `first_run`, then every `period`, until `stop` changes.
pub async fn repeat<Task, Run>(
    first_run: Instant,
    period: Duration,
    mut stop: watch::Receiver<bool>,
    mut task: Task,
) where
    Task: FnMut(DateTime<Utc>) -> Run,
    Run: Future<Output = ()>,
{
    let mut ticker = ticker(first_run, period);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        tokio::select! {
            () = task(Utc::now()) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Ticks at `first_run`, then every `period`; a tick the task made late comes late, rather
/// than bunched with the next.
pub fn ticker(first_run: Instant, period: Duration) -> Interval {
    let mut ticker = tokio::time::interval_at(first_run, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}
