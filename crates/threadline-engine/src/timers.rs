//! The shard's one timer structure: a min-heap of wake-ups, one live entry per process at a
//! time. Entries are never removed early; a process whose wake time moved simply ignores the
//! stale entry when it pops (its `armed` time no longer matches), which keeps every update
//! O(log n) and the heap no larger than a few entries per process.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Ordered by time, then slot, so simultaneous wake-ups pop in a deterministic order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wake {
    pub at: u64,
    pub slot: u32,
    /// The slot's generation when armed: a reused slot ignores its predecessor's timers.
    pub generation: u32,
}

#[derive(Debug, Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Wake>>,
}

impl Timers {
    pub fn arm(&mut self, at: u64, slot: u32, generation: u32) {
        self.heap.push(Reverse(Wake { at, slot, generation }));
    }

    /// The earliest wake-up due at or before `now`, if any.
    pub fn pop_due(&mut self, now: u64) -> Option<Wake> {
        match self.heap.peek() {
            Some(Reverse(wake)) if wake.at <= now => self.heap.pop().map(|Reverse(w)| w),
            _ => None,
        }
    }

    /// When the next wake-up is due.
    pub fn next_due(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(w)| w.at)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }
}
