//! Aggregates the engine keeps as it goes: per process type (counts of each event, completed
//! durations, SLA compliance, completions per minute), per service and operation (rate,
//! errors, durations), and per channel and consumer group (messages, consumptions, time
//! waited in the channel). Durations are mergeable sketches, so shards combine exactly.

use threadline_core::hash::HashMap;

use crate::sketch::Sketch;

/// Distinct (service, operation) pairs tracked per shard; past it, operations of a service
/// are counted under the operation name `other`, so label cardinality stays bounded.
pub const MAX_OPERATIONS: usize = 10_000;
/// Minutes of completions kept per type for rates.
const MINUTES: usize = 60;
const MINUTE: u64 = 60_000_000_000;

/// Counts per minute over the last hour, for rates over a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Minutes {
    /// (minute number since the epoch, count), at most the last `MINUTES` minutes seen.
    counts: Vec<(u64, u64)>,
}

impl Minutes {
    pub fn record(&mut self, at: u64) {
        let minute = at / MINUTE;
        // Nearly always the current minute, kept last.
        if let Some((m, count)) = self.counts.last_mut()
            && *m == minute
        {
            *count += 1;
            return;
        }
        match self.counts.iter_mut().find(|(m, _)| *m == minute) {
            Some((_, count)) => *count += 1,
            None => {
                self.counts.push((minute, 1));
                if self.counts.len() > MINUTES {
                    self.counts.sort_unstable();
                    self.counts.remove(0);
                }
            }
        }
    }

    pub fn merge(&mut self, other: &Minutes) {
        for (minute, count) in &other.counts {
            match self.counts.iter_mut().find(|(m, _)| m == minute) {
                Some((_, c)) => *c += count,
                None => self.counts.push((*minute, *count)),
            }
        }
    }

    /// Counts per minute, averaged over the `window` minutes up to `now`.
    pub fn per_minute(&self, now: u64, window: u64) -> f64 {
        let current = now / MINUTE;
        let total: u64 = self
            .counts
            .iter()
            .filter(|(m, _)| *m + window > current && *m <= current)
            .map(|(_, c)| c)
            .sum();
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let rate = total as f64 / window.max(1) as f64;
        rate
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TypeStats {
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub sla_breached: u64,
    pub stuck: u64,
    pub spec_violated: u64,
    pub reopened: u64,
    /// Durations of completed processes (ns).
    pub durations: Sketch,
    /// Completed processes whose type has an SLA, and those of them that met it.
    pub with_sla: u64,
    pub within_sla: u64,
    /// Completions per minute over the last hour.
    minutes: Minutes,
}

impl TypeStats {
    pub fn record_completion(&mut self, at: u64) {
        self.minutes.record(at);
    }

    /// Adds another shard's aggregates of the same type.
    pub fn merge(&mut self, other: &TypeStats) {
        self.started += other.started;
        self.completed += other.completed;
        self.failed += other.failed;
        self.sla_breached += other.sla_breached;
        self.stuck += other.stuck;
        self.spec_violated += other.spec_violated;
        self.reopened += other.reopened;
        self.durations.merge(&other.durations);
        self.with_sla += other.with_sla;
        self.within_sla += other.within_sla;
        self.minutes.merge(&other.minutes);
    }

    /// Completions per minute, averaged over the `window` minutes before `now`.
    pub fn completed_per_minute(&self, now: u64, window: u64) -> f64 {
        self.minutes.per_minute(now, window)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperationStats {
    pub count: u64,
    pub errors: u64,
    pub durations: Sketch,
    /// Spans per minute over the last hour (by engine time of arrival).
    pub minutes: Minutes,
}

impl OperationStats {
    /// Adds another shard's aggregates of the same operation.
    pub fn merge(&mut self, other: &OperationStats) {
        self.count += other.count;
        self.errors += other.errors;
        self.durations.merge(&other.durations);
        self.minutes.merge(&other.minutes);
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelStats {
    /// Messages sent on the channel.
    pub messages: u64,
    /// Producing services and how many messages each sent.
    pub producers: HashMap<u32, u64>,
    /// Per consumer group: consumptions and time waited in the channel.
    pub groups: HashMap<u32, GroupStats>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupStats {
    pub consumed: u64,
    /// From the producer span's end to the consumer span's start (ns).
    pub waits: Sketch,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub types: HashMap<u32, TypeStats>,
    pub operations: HashMap<(u32, u32), OperationStats>,
    pub channels: HashMap<u32, ChannelStats>,
    /// Synchronous calls between services: (caller, callee) → calls.
    pub calls: HashMap<(u32, u32), OperationStats>,
    pub pairing: CallPairing,
}

/// Pairs a CLIENT span with the SERVER span it called (its child, in another service) to
/// count synchronous edges between services. Unpaired spans of either side wait in two
/// generations of maps: when the young one fills, the old one is dropped, so memory is bounded
/// per shard (not per process) and a span waits at least half the capacity for its partner.
#[derive(Debug, Default)]
pub struct CallPairing {
    /// Client span (trace and span id hash) → calling service; young and old generation.
    clients: [HashMap<u64, u32>; 2],
    /// Parent (client) span hash → (called service, server duration, error) seen first.
    servers: [HashMap<u64, (u32, u64, bool)>; 2],
}

/// Unpaired spans of each side held per generation, at most.
const GENERATION: usize = 50_000;

impl CallPairing {
    /// A client span in `service`; returns the call it completes: (callee, duration, error).
    pub fn client(&mut self, key: u64, service: u32) -> Option<(u32, u64, bool)> {
        if let Some(server) = take(&mut self.servers, key) {
            return Some(server);
        }
        insert(&mut self.clients, key, service);
        None
    }

    /// A server span in `service` whose parent span hashes to `parent`; returns the caller
    /// when the client span was seen.
    pub fn server(&mut self, parent: u64, service: u32, duration: u64, error: bool) -> Option<u32> {
        if let Some(caller) = take(&mut self.clients, parent) {
            return Some(caller);
        }
        insert(&mut self.servers, parent, (service, duration, error));
        None
    }
}

fn take<V>(generations: &mut [HashMap<u64, V>; 2], key: u64) -> Option<V> {
    generations[0].remove(&key).or_else(|| generations[1].remove(&key))
}

fn insert<V>(generations: &mut [HashMap<u64, V>; 2], key: u64, value: V) {
    if generations[0].len() >= GENERATION {
        generations.swap(0, 1);
        generations[0] = HashMap::default();
    }
    generations[0].insert(key, value);
}

impl Stats {
    /// Stats of an operation, or of `other` in its service once the cap is reached.
    pub fn operation(&mut self, service: u32, operation: u32, other: u32) -> &mut OperationStats {
        let key = if self.operations.len() >= MAX_OPERATIONS
            && !self.operations.contains_key(&(service, operation))
        {
            (service, other)
        } else {
            (service, operation)
        };
        self.operations.entry(key).or_default()
    }
}
