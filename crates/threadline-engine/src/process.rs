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
    pub seen: ThinVec<u32>,
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
            seen: ThinVec::new(),
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
        self.dangling.retain(|d| !seen.contains(d));
        for d in dangling {
            if !self.seen.contains(&d) && !self.dangling.contains(&d) {
                self.dangling.push(d);
            }
        }
        self.seen.extend(seen);
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
    high ^ low.rotate_left(16)
}
