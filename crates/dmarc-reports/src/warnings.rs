//! The warnings one parse collects: each distinct warning once, at most
//! [`Limits::max_warnings`](crate::Limits) of them, and a count of those left out.
//!
//! A stranger chooses how many distinct warnings a report raises (a million unknown entities
//! or values), so keeping them all, or comparing each new one with every one kept, would let a
//! small report cost memory and quadratic time. Each warning costs one hash lookup, and the
//! list a user reads stays short.

use std::collections::HashSet;

use crate::aggregate::Warning;

pub(crate) struct Warnings {
    kept: Vec<Warning>,
    /// The kept warnings again, so a repeat is found in constant time.
    seen: HashSet<Warning>,
    limit: usize,
    /// Warnings raised once the list was full and not among the kept ones (repeats of a left-out
    /// warning are counted again: telling them apart would mean keeping them).
    omitted: u64,
}

impl Warnings {
    pub(crate) fn new(limit: usize) -> Self {
        Warnings {
            kept: Vec::new(),
            seen: HashSet::new(),
            limit,
            omitted: 0,
        }
    }

    pub(crate) fn push(&mut self, warning: Warning) {
        if self.seen.contains(&warning) {
            return;
        }
        if self.kept.len() >= self.limit {
            self.omitted = self.omitted.saturating_add(1);
            return;
        }
        self.seen.insert(warning.clone());
        self.kept.push(warning);
    }

    /// The kept warnings, in the order first raised, and how many more were left out.
    pub(crate) fn finish(self) -> (Vec<Warning>, u64) {
        (self.kept, self.omitted)
    }
}
