//! The memory budget shared by every session: the bytes of message data held in flight,
//! across all connections, never exceed `max_memory_in_flight`. A message being delivered
//! also holds room for the copies its delivery makes (`Delivery::COPIES_WHILE_DELIVERING`).
//!
//! A transaction reserves room as its message grows and gives it back when the message has
//! been delivered, refused or abandoned ([`Reservation`] is a drop guard), so a session that
//! ends in any way — a timeout, a reset connection, a panic — returns what it held.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The bytes all sessions may hold at once, and how many they hold now.
#[derive(Debug)]
pub(crate) struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    pub(crate) fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Whether `bytes` more would fit now; reserves nothing.
    pub(crate) fn has_room_for(&self, bytes: usize) -> bool {
        self.used
            .load(Ordering::Relaxed)
            .checked_add(bytes)
            .is_some_and(|total| total <= self.limit)
    }

    /// An empty reservation against this budget.
    pub(crate) fn reservation(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
        }
    }

    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    #[cfg(test)]
    fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes taken from a [`MemoryBudget`] by one message, given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Reservation {
    /// Grows the reservation to `bytes` in all; false (and unchanged) if the budget lacks room.
    pub(crate) fn grow_to(&mut self, bytes: usize) -> bool {
        let more = bytes.saturating_sub(self.bytes);
        if more == 0 {
            return true;
        }
        if !self.budget.try_take(more) {
            return false;
        }
        self.bytes = bytes;
        true
    }

    /// How many bytes are reserved.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Gives everything back, keeping the (now empty) reservation.
    pub(crate) fn release(&mut self) {
        self.budget.give_back(std::mem::take(&mut self.bytes));
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_limit_and_give_back_when_dropped() {
        let budget = MemoryBudget::new(100);
        let mut first = budget.reservation();
        let mut second = budget.reservation();
        assert!(first.grow_to(60));
        assert!(!second.grow_to(41), "only 40 bytes are left");
        assert_eq!(second.bytes(), 0);
        assert!(second.grow_to(40));
        assert!(!budget.has_room_for(1));
        drop(first);
        assert_eq!(budget.used(), 40);
        assert!(budget.has_room_for(60));
        second.release();
        assert_eq!(budget.used(), 0);
    }
}
