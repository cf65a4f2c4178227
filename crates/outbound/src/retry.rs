//! When to try an undelivered message again: the first retry after `first_retry`, each later
//! one twice as long after the one before, at most [`MAX_RETRY_INTERVAL`] apart, and no attempt
//! after `give_up_after` from when the message was queued. A permanent refusal (5xx, null MX)
//! ends it at once. Times are seconds since the epoch, passed in.

use std::time::Duration;

/// The longest pause between two attempts.
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_retry: Duration,
    pub give_up_after: Duration,
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextAttempt {
    At(i64),
    /// No more attempts: the failure was permanent or time is up.
    GiveUp,
}

impl RetryPolicy {
    /// The pause after the `attempts`-th failed attempt (1 for the first).
    pub fn pause_after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.first_retry
            .saturating_mul(1u32 << doublings)
            .min(MAX_RETRY_INTERVAL.max(self.first_retry))
    }

    /// After the `attempts`-th attempt (1 for the first) of a message queued at `queued_at`
    /// failed at `now`.
    pub fn after_failure(
        &self,
        attempts: u32,
        queued_at: i64,
        now: i64,
        permanent: bool,
    ) -> NextAttempt {
        if permanent {
            return NextAttempt::GiveUp;
        }
        let next = now.saturating_add(self.pause_after(attempts).as_secs() as i64);
        let deadline = queued_at.saturating_add(self.give_up_after.as_secs() as i64);
        if next > deadline {
            NextAttempt::GiveUp
        } else {
            NextAttempt::At(next)
        }
    }

    /// When a message queued at `queued_at` is given up.
    pub fn give_up_at(&self, queued_at: i64) -> i64 {
        queued_at.saturating_add(self.give_up_after.as_secs() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            first_retry: Duration::from_secs(60),
            give_up_after: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn pauses_double_up_to_an_hour() {
        let pauses: Vec<u64> = (1..=8)
            .map(|attempt| policy().pause_after(attempt).as_secs())
            .collect();
        assert_eq!(pauses, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(policy().pause_after(u32::MAX).as_secs(), 3600);
        let long = RetryPolicy {
            first_retry: Duration::from_secs(7200),
            ..policy()
        };
        assert_eq!(long.pause_after(3).as_secs(), 7200);
    }

    #[test]
    fn a_permanent_failure_or_the_deadline_ends_the_retries() {
        let queued = 1_000_000;
        assert_eq!(
            policy().after_failure(1, queued, queued + 5, false),
            NextAttempt::At(queued + 65)
        );
        assert_eq!(
            policy().after_failure(1, queued, queued + 5, true),
            NextAttempt::GiveUp
        );
        assert_eq!(
            policy().after_failure(20, queued, queued + 86_000, false),
            NextAttempt::GiveUp
        );
        assert_eq!(policy().give_up_at(queued), queued + 86_400);
    }
}
