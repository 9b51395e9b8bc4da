//! The state the engine keeps per process: compact on purpose (spans are stored elsewhere).
//! Span ids are kept as 32-bit fingerprints: within one process a collision is vanishingly
//! unlikely, and it would only make a missing parent look present.

use thin_vec::ThinVec;
use threadline_core::id::{SpanId, TraceId};

pub const PROVISIONAL: u8 = 1;
pub const ROOT_SEEN: u8 = 1 << 1;
pub const STUCK: u8 = 1 << 2;
pub const SLA_BREACHED: u8 = 1 << 3;
pub const STARTED: u8 = 1 << 4;
/// Too many spans to track structure: completion falls back to quiescence.
pub const TRUNCATED: u8 = 1 << 5;
/// The type comes from a spec (attribute or root match), not inferred from the root.
pub const SPEC_TYPE: u8 = 1 << 6;
/// Changed since the last [`crate::engine::Engine::drain_changes`].
pub const DIRTY: u8 = 1 << 7;

/// The fingerprints of the spans a process has seen, in one thin allocation: a list while
/// short (most processes); past [`SpanSet::FEW`] an open-addressed hash table whose first
/// slot holds the count, so a process of many thousand spans costs each span a probe, not a
/// scan of every span before it. Fingerprints are never 0 ([`fingerprint`]): 0 is a free slot.
#[derive(Debug, Clone, Default)]
pub struct SpanSet(ThinVec<u32>);

impl SpanSet {
    /// Fingerprints kept in a list at most.
    const FEW: usize = 32;
    /// Slots of the first table: more than `FEW`, so the length tells a table from a list.
    const FIRST_SLOTS: usize = 128;

    fn is_table(&self) -> bool {
        self.0.len() > Self::FEW
    }

    pub fn len(&self) -> usize {
        if self.is_table() { self.0[0] as usize } else { self.0.len() }
    }

    pub fn contains(&self, fingerprint: u32) -> bool {
        if !self.is_table() {
            return self.0.contains(&fingerprint);
        }
        let slots = &self.0[1..];
        let mask = slots.len() - 1;
        let mut i = slot_of(fingerprint, mask);
        loop {
            match slots[i] {
                0 => return false,
                f if f == fingerprint => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Adds `fingerprint`; false if it was there already.
    pub fn insert(&mut self, fingerprint: u32) -> bool {
        debug_assert_ne!(fingerprint, 0, "0 marks a free slot");
        if !self.is_table() {
            if self.0.contains(&fingerprint) {
                return false;
            }
            if self.0.len() < Self::FEW {
                self.0.push(fingerprint);
                return true;
            }
            self.rebuild(Self::FIRST_SLOTS);
        } else if (self.len() + 1) * 4 > (self.0.len() - 1) * 3 {
            self.rebuild((self.0.len() - 1) * 2);
        }
        self.place(fingerprint)
    }

    /// Every fingerprint, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let all = if self.is_table() { &self.0[1..] } else { &self.0[..] };
        all.iter().copied().filter(|f| *f != 0)
    }

    /// Adds every fingerprint of `other`.
    pub fn extend(&mut self, other: &SpanSet) {
        for f in other.iter() {
            self.insert(f);
        }
    }

    /// Moves every fingerprint into a table of `slots` free slots (a power of two).
    fn rebuild(&mut self, slots: usize) {
        let old = std::mem::take(&mut self.0);
        let mut table = ThinVec::with_capacity(slots + 1);
        table.resize(slots + 1, 0);
        self.0 = table;
        for f in SpanSet(old).iter() {
            self.place(f);
        }
    }

    /// Puts a fingerprint into the table, which has a free slot; false if it was there.
    fn place(&mut self, fingerprint: u32) -> bool {
        let slots = &mut self.0[1..];
        let mask = slots.len() - 1;
        let mut i = slot_of(fingerprint, mask);
        loop {
            match slots[i] {
                0 => break,
                f if f == fingerprint => return false,
                _ => i = (i + 1) & mask,
            }
        }
        slots[i] = fingerprint;
        self.0[0] += 1;
        true
    }
}

/// A fingerprint's home slot: the high half of a multiplicative hash, as span ids made by
/// counting leave a fingerprint's low bits alike.
fn slot_of(fingerprint: u32, mask: usize) -> usize {
    let spread = u64::from(fingerprint).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    #[allow(clippy::cast_possible_truncation, reason = "masked to the table's size")]
    let slot = spread as usize & mask;
    slot
}

/// How often a step of some spec happened in a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSeen {
    pub service: u32,
    pub operation: u32,
    pub count: u32,
    /// Earliest start among its occurrences (telemetry time).
    pub first_start: u64,
    pub error: bool,
}

/// The lifecycle state of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Completed,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Completed => "completed",
            State::Failed => "failed",
        }
    }
}

/// What decided that a process completed, so users know how far to trust it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Nothing pending, no missing parent, root (and terminal steps) seen, then settled.
    Structural,
    /// No telemetry for the idle timeout while the structure was incomplete.
    Quiescence,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Structural => "structural",
            Mode::Quiescence => "quiescence",
        }
    }
}

/// In [`Pending::awaiting`]: the channel had no known subscriber when the message was sent,
/// so the first consumer of any group settles it.
pub const ANY_GROUP: u64 = 1 << 63;

/// A message sent and not yet processed by every subscriber of its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Fingerprint of the producer span id.
    pub message: u32,
    pub channel: u32,
    /// Consumer groups still to process it: bit `i` is the channel's `i`-th subscriber
    /// (the first 63 subscribers of a channel are tracked), or [`ANY_GROUP`].
    pub awaiting: u64,
    /// Engine time the message was seen sent.
    pub since: u64,
    /// End of the producer span (telemetry time), where channel waits start.
    pub sent_at: u64,
}

impl Pending {
    /// Whether the message waits on known subscribers (what makes a process stuck rather
    /// than merely incomplete).
    pub fn is_blocking(&self) -> bool {
        self.awaiting & !ANY_GROUP != 0
    }
}

/// What few processes need: kept out of line so the common process stays small.
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// Consumptions (message, group) seen before their message's producer span.
    pub consumed: Vec<(u32, u32)>,
    /// Traces joined to this process besides its own.
    pub traces: Vec<TraceId>,
    pub failure: Option<Box<str>>,
    /// The message the current `stuck` occurrence is about.
    pub stuck_on: Option<u32>,
    /// Occurrences of operations that some spec names as a step.
    pub steps: Vec<StepSeen>,
    /// The spec check of the last completion: `None` before any.
    pub violations: Option<Vec<Box<str>>>,
}

/// Per-process state. Collections are `ThinVec`s (one pointer each, nothing allocated while
/// empty) and rare fields live in [`Extra`]: most processes are small and many are in flight.
#[derive(Debug, Clone)]
pub struct Process {
    pub id: TraceId,
    /// Earliest span start and latest span end, from the telemetry (ns since the epoch).
    pub start_nanos: u64,
    pub end_nanos: u64,
    /// Engine times.
    pub last_activity: u64,
    /// When the process was first seen while it runs; when it finished once it has (a
    /// finished process is never provisional, so the join window no longer needs the former).
    pub moment: u64,
    /// The wake-up currently armed in the shard's timers (`u64::MAX`: none).
    pub armed: u64,
    pub generation: u32,
    /// Interned type name; 0 until known.
    pub type_id: u32,
    pub spans: u32,
    pub error_spans: u32,
    pub state: State,
    pub flags: u8,
    pub mode: Option<Mode>,
    pub seen: SpanSet,
    /// Parents referenced by spans seen but not seen themselves.
    pub dangling: ThinVec<u32>,
    pub pending: ThinVec<Pending>,
    pub extra: Option<Box<Extra>>,
}

impl Process {
    pub fn new(id: TraceId, generation: u32, now: u64) -> Self {
        Self {
            id,
            start_nanos: u64::MAX,
            end_nanos: 0,
            last_activity: now,
            moment: now,
            armed: u64::MAX,
            generation,
            type_id: 0,
            spans: 0,
            error_spans: 0,
            state: State::Running,
            flags: PROVISIONAL,
            mode: None,
            seen: SpanSet::default(),
            dangling: ThinVec::new(),
            pending: ThinVec::new(),
            extra: None,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn set(&mut self, flag: u8) {
        self.flags |= flag;
    }

    pub fn clear(&mut self, flag: u8) {
        self.flags &= !flag;
    }

    pub fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    pub fn failure(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.failure.as_deref())
    }

    pub fn set_failure(&mut self, reason: String) {
        if self.failure().is_none() {
            self.extra_mut().failure = Some(reason.into_boxed_str());
        }
    }

    pub fn stuck_on(&self) -> Option<u32> {
        self.extra.as_ref().and_then(|e| e.stuck_on)
    }

    /// Clears the stuck flag and the message it was about.
    pub fn unstick(&mut self) {
        self.clear(STUCK);
        if let Some(extra) = self.extra.as_mut() {
            extra.stuck_on = None;
        }
    }

    pub fn joined_traces(&self) -> &[TraceId] {
        self.extra.as_ref().map_or(&[], |e| &e.traces)
    }

    /// Nothing pending, no missing parent, root seen: the process looks finished.
    pub fn structurally_complete(&self) -> bool {
        !self.has(PROVISIONAL)
            && !self.has(TRUNCATED)
            && self.has(ROOT_SEEN)
            && self.dangling.is_empty()
            && self.pending.is_empty()
    }

    pub fn has_blocking_pending(&self) -> bool {
        self.pending.iter().any(Pending::is_blocking)
    }

    /// The blocking message waited on longest.
    pub fn oldest_blocking(&self) -> Option<&Pending> {
        self.pending.iter().filter(|p| p.is_blocking()).min_by_key(|p| (p.since, p.message))
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_nanos.saturating_sub(self.start_nanos)
    }

    /// Records a consumption of `message` by `group`; `bit` gives a group's bit in a
    /// channel's subscriber mask. Returns the message's channel and send time when it was
    /// pending here.
    pub fn consume(
        &mut self,
        message: u32,
        group: u32,
        bit: &dyn Fn(u32, u32) -> u64,
    ) -> Option<(u32, u64)> {
        if let Some(i) = self.pending.iter().position(|p| p.message == message) {
            let pending = &mut self.pending[i];
            let found = (pending.channel, pending.sent_at);
            if pending.awaiting & ANY_GROUP != 0 {
                pending.awaiting = 0;
            } else {
                pending.awaiting &= !bit(pending.channel, group);
            }
            if pending.awaiting == 0 {
                self.pending.swap_remove(i);
                if self.stuck_on() == Some(message) {
                    self.unstick();
                }
            }
            return Some(found);
        }
        let extra = self.extra_mut();
        if !extra.consumed.contains(&(message, group)) {
            extra.consumed.push((message, group));
        }
        None
    }

    /// Folds `other` (a process joining through a link) into this one.
    pub fn absorb(&mut self, other: Process, bit: &dyn Fn(u32, u32) -> u64) {
        let Process {
            id,
            type_id,
            flags,
            start_nanos,
            end_nanos,
            moment,
            last_activity,
            spans,
            error_spans,
            seen,
            dangling,
            pending,
            extra,
            ..
        } = other;
        let other_extra = extra.map(|e| *e).unwrap_or_default();
        {
            let mine = self.extra_mut();
            mine.traces.push(id);
            mine.traces.extend(other_extra.traces);
            if mine.failure.is_none() {
                mine.failure = other_extra.failure;
            }
            for step in other_extra.steps {
                match mine
                    .steps
                    .iter_mut()
                    .find(|s| s.service == step.service && s.operation == step.operation)
                {
                    Some(seen) => {
                        seen.count += step.count;
                        seen.first_start = seen.first_start.min(step.first_start);
                        seen.error |= step.error;
                    }
                    None => mine.steps.push(step),
                }
            }
        }
        self.flags |= flags & (TRUNCATED | SLA_BREACHED);
        if flags & SPEC_TYPE != 0 && !self.has(SPEC_TYPE) {
            self.type_id = type_id;
            self.set(SPEC_TYPE);
        }
        self.start_nanos = self.start_nanos.min(start_nanos);
        self.end_nanos = self.end_nanos.max(end_nanos);
        self.moment = self.moment.min(moment);
        self.last_activity = self.last_activity.max(last_activity);
        self.spans += spans;
        self.error_spans += error_spans;
        self.dangling.retain(|d| !seen.contains(*d));
        for d in dangling {
            if !self.seen.contains(d) && !self.dangling.contains(&d) {
                self.dangling.push(d);
            }
        }
        self.seen.extend(&seen);
        self.pending.extend(pending);
        // Consumptions recorded on either side before their producer joined.
        let mut early = std::mem::take(&mut self.extra_mut().consumed);
        early.extend(other_extra.consumed);
        for (message, group) in early {
            self.consume(message, group, bit);
        }
    }
}

/// The 32-bit fingerprint of a span id.
pub fn fingerprint(id: SpanId) -> u32 {
    let b = id.as_bytes();
    let high = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let low = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    // Never 0: a free slot in a [`SpanSet`].
    (high ^ low.rotate_left(16)).max(1)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::SpanSet;

    proptest! {
        /// A span set holds exactly what went in, as a list and past it as a table, also
        /// for fingerprints alike in their low bits (span ids made by counting).
        #[test]
        fn a_span_set_is_a_set(
            inserts in prop::collection::vec(
                prop_oneof![1u32..200, (1u32..5000).prop_map(|n| n << 16), 1u32..],
                0..3000,
            ),
            merged in prop::collection::vec(1u32..400, 0..100),
        ) {
            let mut set = SpanSet::default();
            let mut model = BTreeSet::new();
            for f in &inserts {
                prop_assert_eq!(set.insert(*f), model.insert(*f));
                prop_assert_eq!(set.len(), model.len());
            }
            let mut other = SpanSet::default();
            for f in &merged {
                other.insert(*f);
                model.insert(*f);
            }
            set.extend(&other);
            prop_assert_eq!(set.len(), model.len());
            prop_assert_eq!(set.iter().collect::<BTreeSet<u32>>(), model.clone());
            for f in inserts.iter().chain(&merged) {
                prop_assert!(set.contains(*f));
            }
            for f in 1u32..500 {
                prop_assert_eq!(set.contains(f), model.contains(&f));
            }
        }
    }
}
