//! Message rate limits: at most `limit` new transactions per `window` for each key (a client
//! address or network, a MAIL FROM domain), with bursts up to the whole allowance.
//!
//! Each key keeps one instant, the generic cell rate algorithm's "theoretical arrival time":
//! every message pushes it `window / limit` into the future, and a message is refused while
//! it lies more than `window - window / limit` ahead. A key whose instant has passed is as
//! good as absent, so the table is pruned of those, and it never holds more than `max_keys`:
//! when full of live keys, new keys are refused until some expire (memory stays bounded
//! whatever the number of addresses or domains a client cycles through).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct RateLimiter<K> {
    /// Messages per window; 0 turns the limit off.
    limit: u32,
    window: Duration,
    max_keys: usize,
    table: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub(crate) fn new(limit: u32, window: Duration, max_keys: usize) -> Self {
        RateLimiter {
            limit,
            window,
            max_keys,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// The time one message adds to its key's instant.
    fn interval(&self) -> Duration {
        self.window / self.limit.max(1)
    }

    /// Whether `key` may send one more message at `now`; records nothing.
    pub(crate) fn allows(&self, key: &K, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        match table.get(key) {
            Some(&arrival) => self.fits(arrival, now),
            None => {
                if table.len() >= self.max_keys {
                    table.retain(|_, arrival| *arrival > now);
                }
                table.len() < self.max_keys
            }
        }
    }

    /// Counts one message for `key` at `now`.
    pub(crate) fn record(&self, key: K, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let interval = self.interval();
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.len() >= self.max_keys && !table.contains_key(&key) {
            return;
        }
        let arrival = table.entry(key).or_insert(now);
        *arrival = (*arrival).max(now) + interval;
    }

    fn fits(&self, arrival: Instant, now: Instant) -> bool {
        arrival.saturating_duration_since(now) + self.interval() <= self.window
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(600);

    fn send(limiter: &RateLimiter<&'static str>, key: &'static str, now: Instant) -> bool {
        let allowed = limiter.allows(&key, now);
        if allowed {
            limiter.record(key, now);
        }
        allowed
    }

    #[test]
    fn a_burst_up_to_the_limit_passes_then_one_message_per_interval() {
        let limiter = RateLimiter::new(3, WINDOW, 100);
        let start = Instant::now();
        assert!((0..3).all(|_| send(&limiter, "a", start)));
        assert!(!send(&limiter, "a", start));
        assert!(send(&limiter, "b", start), "other keys are counted apart");
        assert!(!send(
            &limiter,
            "a",
            start + WINDOW / 3 - Duration::from_secs(1)
        ));
        assert!(send(&limiter, "a", start + WINDOW / 3));
        assert!(!send(&limiter, "a", start + WINDOW / 3));
        let later = start + 2 * WINDOW;
        assert!((0..3).all(|_| send(&limiter, "a", later)));
    }

    #[test]
    fn the_table_stays_bounded_and_expired_keys_make_room() {
        let limiter = RateLimiter::new(2, WINDOW, 2);
        let start = Instant::now();
        assert!(send(&limiter, "a", start));
        assert!(send(&limiter, "b", start));
        assert!(
            !send(&limiter, "c", start),
            "the table is full of live keys"
        );
        assert_eq!(limiter.keys(), 2);
        let later = start + WINDOW;
        assert!(send(&limiter, "c", later));
        assert_eq!(limiter.keys(), 1, "expired keys were pruned");
    }

    #[test]
    fn a_limit_of_zero_counts_nothing() {
        let limiter = RateLimiter::new(0, WINDOW, 1);
        let now = Instant::now();
        assert!((0..1000).all(|i| send(&limiter, if i % 2 == 0 { "a" } else { "b" }, now)));
        assert_eq!(limiter.keys(), 0);
    }
}
