//! One shard of the process engine. See the crate documentation for the model; the rules are
//! in `docs/engine.md`.

use std::hash::BuildHasher as _;
use std::sync::Arc;

use thin_vec::ThinVec;
use threadline_core::id::TraceId;
use threadline_core::span::{Resource, Span, SpanKind, StatusCode};
use threadline_core::value::AnyValue;

use crate::config::{EngineConfig, TypePolicy};
use crate::event::{Event, EventKind};
use crate::keys;
use crate::messaging::{self, Role};
use crate::process::{
    ANY_GROUP, DIRTY, Mode, PROVISIONAL, Pending, Process, ROOT_SEEN, SLA_BREACHED, SPEC_TYPE,
    STARTED, STUCK, State, StepSeen, TRUNCATED, fingerprint,
};
pub use crate::process::{Mode as CompletionMode, State as ProcessState};
use crate::sketch::Quantiles;
use crate::slab::Slab;
use crate::stats::Stats;
use crate::timers::Timers;
use threadline_config::spec::{ProcessSpec, Recognize};
use threadline_core::hash::{HashMap, HashSet};

/// Most span fingerprints kept per process; past it the process is marked truncated and
/// completes by quiescence.
const MAX_SPANS_TRACKED: usize = 100_000;
/// Entries the index of business keys found keeps room for between drains: the keys of a
/// drain interval under heavy load, not of every process a burst touched.
const FOUND_AT_KEPT: usize = 4096;

/// Strings interned to small ids (services, operations, groups, channels, types, keys).
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Interner {
    fn new() -> Self {
        let mut interner = Self::default();
        interner.intern("");
        interner
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }
}

#[derive(Debug)]
struct ChannelState {
    system: u32,
    destination: u32,
    /// Consumer groups known to subscribe, learned or declared, in order of discovery.
    subscribers: Vec<u32>,
    dead_letter: bool,
}

/// A spec's step, with interned names.
#[derive(Debug, Clone)]
struct StepRule {
    service: u32,
    operation: u32,
    order: Option<u32>,
    min: u32,
    max: Option<u32>,
    terminal: bool,
    critical: bool,
}

/// What the engine keeps of one spec.
#[derive(Debug, Clone, Default)]
struct TypeRules {
    steps: Vec<StepRule>,
    forbid_errors: bool,
    max_retries: Option<u32>,
}

/// The outcome of checking a completed process against its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecResult {
    pub violations: Vec<String>,
}

/// Where a running process waits now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// A message on a channel not yet processed by a consumer group.
    Message { system: String, destination: String, group: String, since: u64 },
    /// Spans whose parent has not been seen (an operation still running, or not instrumented).
    MissingParent { count: usize },
    /// The root span of the process has not been seen yet.
    Root,
}

/// A read-only view of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessView {
    pub id: TraceId,
    pub process_type: String,
    pub state: State,
    pub mode: Option<Mode>,
    pub stuck: bool,
    pub sla_breached: bool,
    pub start_nanos: u64,
    pub end_nanos: u64,
    pub last_activity: u64,
    pub spans: u32,
    pub error_spans: u32,
    /// The process's own trace first, then the traces that joined it.
    pub traces: Vec<TraceId>,
    pub waiting_for: Vec<Waiting>,
    pub failure: Option<String>,
    /// The spec check of its last completion, for a process of a declared type.
    pub spec: Option<SpecResult>,
}

/// What [`Engine::drain_changes`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Every process changed since the last drain, once, as it is now.
    pub views: Vec<ProcessView>,
    /// Processes folded into another: (folded id, id of the process it joined).
    pub removed: Vec<(TraceId, TraceId)>,
    /// Business keys found on spans: (process id, key, value). A process's keys are every
    /// key ever reported for it or for a process folded into it.
    pub keys: Vec<(TraceId, String, String)>,
}

/// Mergeable aggregates of one process type, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedTypeStats {
    pub name: String,
    pub stats: crate::stats::TypeStats,
    pub in_flight: u64,
    pub stuck: u64,
}

/// Mergeable aggregates of a channel, by names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedChannelStats {
    pub messages: u64,
    pub producers: std::collections::BTreeMap<String, u64>,
    pub groups: std::collections::BTreeMap<String, crate::stats::GroupStats>,
}

/// Mergeable graph aggregates, by names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GraphStats {
    pub operations: std::collections::BTreeMap<(String, String), crate::stats::OperationStats>,
    /// Synchronous calls: (caller service, callee service) → calls.
    pub calls: std::collections::BTreeMap<(String, String), crate::stats::OperationStats>,
    pub channels: std::collections::BTreeMap<(String, String), NamedChannelStats>,
}

impl GraphStats {
    /// Adds another shard's aggregates.
    pub fn merge(&mut self, other: GraphStats) {
        for (key, stats) in other.calls {
            self.calls.entry(key).or_default().merge(&stats);
        }
        for (key, stats) in other.operations {
            self.operations.entry(key).or_default().merge(&stats);
        }
        for (key, stats) in other.channels {
            let mine = self.channels.entry(key).or_default();
            mine.messages += stats.messages;
            for (service, n) in stats.producers {
                *mine.producers.entry(service).or_default() += n;
            }
            for (group, gs) in stats.groups {
                let g = mine.groups.entry(group).or_default();
                g.consumed += gs.consumed;
                g.waits.merge(&gs.waits);
            }
        }
    }
}

/// Type summaries from the (merged) raw aggregates of one or more shards.
pub fn summarize_types(
    stats: Vec<NamedTypeStats>,
    now: u64,
    window_minutes: u64,
) -> Vec<TypeSummary> {
    let mut merged: std::collections::BTreeMap<String, NamedTypeStats> = Default::default();
    for item in stats {
        let entry = merged
            .entry(item.name.clone())
            .or_insert_with(|| NamedTypeStats { name: item.name.clone(), ..Default::default() });
        entry.stats.merge(&item.stats);
        entry.in_flight += item.in_flight;
        entry.stuck += item.stuck;
    }
    merged
        .into_values()
        .map(|t| TypeSummary {
            name: t.name,
            started: t.stats.started,
            completed: t.stats.completed,
            failed: t.stats.failed,
            in_flight: t.in_flight,
            stuck: t.stuck,
            stuck_total: t.stats.stuck,
            sla_breached: t.stats.sla_breached,
            spec_violated: t.stats.spec_violated,
            reopened: t.stats.reopened,
            durations: t.stats.durations.quantiles(),
            #[expect(clippy::cast_precision_loss, reason = "a ratio")]
            sla_compliance: (t.stats.with_sla > 0)
                .then(|| t.stats.within_sla as f64 / t.stats.with_sla as f64),
            completed_per_minute: t.stats.completed_per_minute(now, window_minutes),
        })
        .collect()
}

/// The graph from the (merged) raw aggregates of one or more shards.
pub fn summarize_graph(stats: GraphStats, now: u64, window_minutes: u64) -> Graph {
    Graph {
        calls: stats
            .calls
            .into_iter()
            .map(|((caller, callee), stats)| CallSummary {
                caller,
                callee,
                calls: stats.count,
                errors: stats.errors,
                per_minute: stats.minutes.per_minute(now, window_minutes),
                durations: stats.durations.quantiles(),
            })
            .collect(),
        operations: stats
            .operations
            .into_iter()
            .map(|((service, operation), stats)| OperationSummary {
                service,
                operation,
                count: stats.count,
                errors: stats.errors,
                per_minute: stats.minutes.per_minute(now, window_minutes),
                durations: stats.durations.quantiles(),
            })
            .collect(),
        channels: stats
            .channels
            .into_iter()
            .map(|((system, destination), stats)| ChannelSummary {
                system,
                destination,
                messages: stats.messages,
                producers: stats.producers.into_iter().collect(),
                groups: stats
                    .groups
                    .into_iter()
                    .map(|(group, gs)| GroupSummary {
                        group,
                        consumed: gs.consumed,
                        waits: gs.waits.quantiles(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Aggregates of one process type.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeSummary {
    pub name: String,
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    /// Running now.
    pub in_flight: u64,
    /// Flagged stuck now.
    pub stuck: u64,
    /// `stuck` events since start.
    pub stuck_total: u64,
    pub sla_breached: u64,
    pub spec_violated: u64,
    pub reopened: u64,
    /// Quantiles of completed durations (ns).
    pub durations: Quantiles,
    /// Share of completed processes that met their SLA, when the type has one.
    pub sla_compliance: Option<f64>,
    pub completed_per_minute: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OperationSummary {
    pub service: String,
    pub operation: String,
    pub count: u64,
    pub errors: u64,
    /// Spans per minute over the window asked for.
    pub per_minute: f64,
    /// Span durations (ns).
    pub durations: Quantiles,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSummary {
    pub system: String,
    pub destination: String,
    pub messages: u64,
    /// Producing services and the messages each sent.
    pub producers: Vec<(String, u64)>,
    pub groups: Vec<GroupSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub group: String,
    pub consumed: u64,
    /// Time messages waited in the channel for this group (ns).
    pub waits: Quantiles,
}

/// Synchronous calls from one service to another (a CLIENT span and its SERVER child).
#[derive(Debug, Clone, PartialEq)]
pub struct CallSummary {
    pub caller: String,
    pub callee: String,
    pub calls: u64,
    /// Calls whose server span has an error status.
    pub errors: u64,
    pub per_minute: f64,
    /// Server-side durations of the calls (ns).
    pub durations: Quantiles,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub calls: Vec<CallSummary>,
    pub operations: Vec<OperationSummary>,
    pub channels: Vec<ChannelSummary>,
}

/// A process leaving one shard for another, with the names its interned ids stand for.
#[derive(Debug, Clone)]
pub struct Exported {
    process: Process,
    /// Per pending message, in order: its channel and the groups it awaits (`None`: any).
    pending: Vec<(String, String, Option<Vec<String>>)>,
    /// Early consumptions: message fingerprint and group name.
    consumed: Vec<(u32, String)>,
    /// Service and operation of each step seen, in order.
    steps: Vec<(String, String)>,
    type_name: Option<String>,
}

/// A consumption of a message that lives in another shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConsume {
    pub trace_id: TraceId,
    pub message: threadline_core::id::SpanId,
    pub system: String,
    pub destination: String,
    pub group: String,
    pub consumer_start: u64,
}

/// Counters of the shard, for status and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    pub processes: usize,
    pub running: usize,
    pub timers: usize,
    pub spans: u64,
    /// Spans of processes not tracked because `max_in_flight` was reached with every held
    /// process running.
    pub untracked_spans: u64,
    /// Finished processes dropped before `retain_finished` ended, to make room for new ones.
    pub evicted_finished: u64,
}

impl EngineStats {
    /// Adds another shard's counters.
    pub fn add(&mut self, other: &EngineStats) {
        self.processes += other.processes;
        self.running += other.running;
        self.timers += other.timers;
        self.spans += other.spans;
        self.untracked_spans += other.untracked_spans;
        self.evicted_finished += other.evicted_finished;
    }
}

/// One shard of the process engine.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    policies: HashMap<u32, TypePolicy>,
    rules: HashMap<u32, TypeRules>,
    /// (root service, root operation or 0 for any, type).
    root_rules: Vec<(u32, u32, u32)>,
    /// (attribute key, value, type).
    attribute_rules: Vec<(String, String, u32)>,
    /// (service, operation) pairs that some spec names as a step.
    step_operations: HashSet<(u32, u32)>,
    /// Business-key attribute names declared by specs, besides the default rule.
    key_names: HashSet<String>,
    slots: Slab,
    free: Vec<u32>,
    generations: Vec<u32>,
    by_trace: HashMap<TraceId, u32>,
    /// Business keys found since the last `drain_changes`: (process id, key, value). The
    /// engine keeps no keys itself; the process table does.
    found_keys: Vec<(TraceId, String, String)>,
    /// Where each of `found_keys` is, by process and a hash of key and value: a process's
    /// spans carry the same keys, most of them within one drain, and a key found again is
    /// known without copying it.
    found_at: HashMap<(TraceId, u64), usize>,
    /// The resource of the last span seen and its service's name id: spans come in runs from
    /// one resource, whose attributes need not be searched for every span. Held (not just
    /// its address), so it can never be mistaken for a later resource at the same address.
    last_service: Option<(Arc<Resource>, u32)>,
    timers: Timers,
    channels: Vec<ChannelState>,
    channel_ids: HashMap<(u32, u32), u32>,
    strings: Interner,
    /// Reused to spell a type named after its root span (`service: operation`).
    type_name: String,
    events: Vec<Event>,
    stats: Stats,
    /// Finished processes in order of finishing (slot, generation, finish time): the eviction
    /// order when `max_in_flight` is reached. Stale entries are skipped when popped.
    finished: std::collections::VecDeque<(u32, u32, u64)>,
    /// Finished processes dropped early to make room.
    evicted: u64,
    /// Interned `other`: the operation name past the stats' cardinality cap.
    other: u32,
    /// Subscribers learned since the last `drain_learned`.
    learned: Vec<(String, String, String)>,
    /// Processes changed since the last `drain_changes` (slot, generation).
    dirty: Vec<(u32, u32)>,
    /// Processes folded into another since the last `drain_changes`: (folded, into).
    removed: Vec<(TraceId, TraceId)>,
    /// Changed processes dropped (finished and retained long enough) before being drained.
    unreported: Vec<ProcessView>,
    now: u64,
    running: usize,
    spans: u64,
    untracked: u64,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Self {
        let mut strings = Interner::new();
        let other = strings.intern("other");
        Self {
            config,
            policies: HashMap::default(),
            rules: HashMap::default(),
            root_rules: Vec::new(),
            attribute_rules: Vec::new(),
            step_operations: HashSet::default(),
            key_names: HashSet::default(),
            slots: Slab::default(),
            free: Vec::new(),
            generations: Vec::new(),
            by_trace: HashMap::default(),
            found_keys: Vec::new(),
            found_at: HashMap::default(),
            last_service: None,
            timers: Timers::default(),
            channels: Vec::new(),
            channel_ids: HashMap::default(),
            strings,
            type_name: String::new(),
            events: Vec::new(),
            stats: Stats::default(),
            finished: std::collections::VecDeque::new(),
            evicted: 0,
            other,
            learned: Vec::new(),
            dirty: Vec::new(),
            removed: Vec::new(),
            unreported: Vec::new(),
            now: 0,
            running: 0,
            spans: 0,
            untracked: 0,
        }
    }

    /// Sets the policy of a process type (by its name).
    pub fn set_policy(&mut self, process_type: &str, policy: TypePolicy) {
        let id = self.strings.intern(process_type);
        self.policies.insert(id, policy);
    }

    /// Loads process specs: their types, policies (falling back to the default policy for
    /// what a spec leaves out), steps, business keys and declared channel subscribers.
    pub fn load_specs(&mut self, specs: &[ProcessSpec]) {
        for spec in specs {
            let type_id = self.strings.intern(&spec.name);
            let default = &self.config.default_policy;
            let policy = TypePolicy {
                sla_nanos: spec.sla_nanos.or(default.sla_nanos),
                stuck_after_nanos: spec.stuck_after_nanos.unwrap_or(default.stuck_after_nanos),
                idle_timeout_nanos: spec.idle_timeout_nanos.unwrap_or(default.idle_timeout_nanos),
            };
            self.policies.insert(type_id, policy);
            match &spec.recognize {
                Recognize::Root { service, operation } => {
                    let service = self.strings.intern(service);
                    let operation = operation.as_deref().map_or(0, |o| self.strings.intern(o));
                    self.root_rules.push((service, operation, type_id));
                }
                Recognize::Attribute { key, value } => {
                    self.attribute_rules.push((key.clone(), value.clone(), type_id));
                }
            }
            let mut rules = TypeRules {
                steps: Vec::new(),
                forbid_errors: spec.forbid.errors,
                max_retries: spec.forbid.max_retries,
            };
            for step in &spec.steps {
                let service = self.strings.intern(&step.service);
                let operation = self.strings.intern(&step.operation);
                self.step_operations.insert((service, operation));
                rules.steps.push(StepRule {
                    service,
                    operation,
                    order: step.order,
                    min: step.min,
                    max: step.max,
                    terminal: step.terminal,
                    critical: step.critical,
                });
            }
            self.rules.insert(type_id, rules);
            self.key_names.extend(spec.keys.iter().cloned());
            for channel in &spec.channels {
                let groups: Vec<&str> = channel.subscribers.iter().map(String::as_str).collect();
                self.declare_subscribers(&channel.system, &channel.destination, &groups);
            }
        }
    }

    /// Declares the consumer groups subscribed to a channel (as a spec does), in addition to
    /// those learned from telemetry.
    pub fn declare_subscribers(&mut self, system: &str, destination: &str, groups: &[&str]) {
        let channel = self.channel(system, destination);
        for group in groups {
            let group = self.strings.intern(group);
            let subscribers = &mut self.channels[channel as usize].subscribers;
            if !subscribers.contains(&group) {
                subscribers.push(group);
            }
        }
    }

    /// Events produced since the last call, in order of occurrence.
    pub fn drain_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// What changed since the last call, for a process table to stay current: processes
    /// changed (new spans, state or flags) as they are now, processes folded into another,
    /// and business keys found.
    pub fn drain_changes(&mut self) -> Changes {
        let dirty = std::mem::take(&mut self.dirty);
        let mut views = std::mem::take(&mut self.unreported);
        views.reserve(dirty.len());
        for (slot, generation) in dirty {
            let Some(Some(p)) = self.slots.get_mut(slot as usize) else { continue };
            if p.generation != generation || !p.has(DIRTY) {
                continue;
            }
            p.clear(DIRTY);
            let id = p.id;
            if let Some(view) = self.process(id) {
                views.push(view);
            }
        }
        Changes {
            views,
            removed: std::mem::take(&mut self.removed),
            keys: {
                self.found_at.clear();
                // A burst of keys between two drains (or one long drain interval) leaves no
                // index the size of the burst behind.
                self.found_at.shrink_to(FOUND_AT_KEPT);
                std::mem::take(&mut self.found_keys)
            },
        }
    }

    /// True when [`Engine::drain_changes`] or [`Engine::drain_events`] has something.
    pub fn has_changes(&self) -> bool {
        !self.dirty.is_empty()
            || !self.removed.is_empty()
            || !self.found_keys.is_empty()
            || !self.unreported.is_empty()
            || !self.events.is_empty()
    }

    fn touch(&mut self, slot: u32) {
        let Some(Some(p)) = self.slots.get_mut(slot as usize) else { return };
        if !p.has(DIRTY) {
            p.set(DIRTY);
            self.dirty.push((slot, p.generation));
        }
    }

    /// When the next timer is due, for a driver that sleeps until then.
    pub fn next_wake(&self) -> Option<u64> {
        self.timers.next_due()
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            processes: self.slots.len() - self.free.len(),
            running: self.running,
            timers: self.timers.len(),
            spans: self.spans,
            untracked_spans: self.untracked,
            evicted_finished: self.evicted,
        }
    }

    /// Fires every timer due at or before `now`, each at its own due time.
    pub fn advance(&mut self, now: u64) {
        while let Some(wake) = self.timers.pop_due(now) {
            self.now = self.now.max(wake.at);
            let Some(Some(process)) = self.slots.get_mut(wake.slot as usize) else { continue };
            if process.generation != wake.generation || process.armed != wake.at {
                continue;
            }
            process.armed = u64::MAX;
            self.evaluate(wake.slot, wake.at);
        }
        self.now = self.now.max(now);
    }

    /// Takes one span in at engine time `now`.
    pub fn ingest(&mut self, span: &Span, now: u64) {
        self.ingest_with(span, now, &|_| false);
    }

    /// Takes one span in, in a shard of several: links to traces for which `remote` is true
    /// belong to other shards and are left to them (see [`Engine::consume_remote`]).
    pub fn ingest_with(&mut self, span: &Span, now: u64, remote: &dyn Fn(TraceId) -> bool) {
        self.advance(now);
        self.spans += 1;
        let trace_slot = self.by_trace.get(&span.trace_id).copied();

        // A span linking to other traces may join its trace to their process; a batch
        // consumer linking to several processes joins none of them.
        // A link to a trace of another shard: the router saw several linked traces (else it
        // would have sent the span there), so this span joins no process.
        let links_elsewhere =
            span.links.iter().any(|l| l.trace_id != span.trace_id && remote(l.trace_id));
        // The process the links lead to, and whether they lead to more than one.
        let (mut target, mut several) = (None, false);
        for link in &span.links {
            if link.trace_id == span.trace_id || remote(link.trace_id) {
                continue;
            }
            let Some(slot) = self.slot_for_trace(link.trace_id, now) else { continue };
            match target {
                None => target = Some(slot),
                Some(first) => several |= first != slot,
            }
        }
        let join = target.filter(|_| !links_elsewhere && !several);
        let slot = match (trace_slot, join) {
            (Some(own), Some(target)) if own != target => Some(self.merge(target, own)),
            (Some(own), _) => Some(own),
            (None, Some(target)) => {
                self.by_trace.insert(span.trace_id, target);
                if let Some(p) = self.slots[target as usize].as_mut() {
                    p.extra_mut().traces.push(span.trace_id);
                }
                Some(target)
            }
            (None, None) => self.create(span.trace_id, now),
        };
        let Some(slot) = slot else {
            return;
        };
        let joined_by_link = join.is_some();
        let role = messaging::role(span);
        self.record(slot, span, &role, joined_by_link, now);

        // Consumption of messages produced in other processes (links).
        if let Role::Consumer { channel, group } = role {
            let channel_id = self.channel(channel.system, channel.destination);
            let group_id = self.learn_subscriber(channel_id, group);
            for link in span.links.iter().filter(|l| !remote(l.trace_id)) {
                let message = fingerprint(link.span_id);
                let target = if link.trace_id == span.trace_id {
                    Some(slot)
                } else {
                    self.by_trace.get(&link.trace_id).copied()
                };
                if let Some(target) = target {
                    self.consume(target, message, group_id, now, span.start_time_unix_nano);
                }
            }
            if let Some(parent) = span.parent_span_id {
                self.consume(slot, fingerprint(parent), group_id, now, span.start_time_unix_nano);
            }
        }
        self.rearm(slot);
    }

    /// Aggregates per process type, rates over the last `window_minutes` before `now`.
    pub fn type_summaries(&self, now: u64, window_minutes: u64) -> Vec<TypeSummary> {
        summarize_types(self.type_stats(), now, window_minutes)
    }

    /// Raw, mergeable aggregates per process type, by name (for merging shards).
    pub fn type_stats(&self) -> Vec<NamedTypeStats> {
        let mut by_type: HashMap<u32, NamedTypeStats> = HashMap::default();
        let named = |type_id: u32| NamedTypeStats {
            name: if type_id == 0 {
                "unknown".to_owned()
            } else {
                self.strings.name(type_id).to_owned()
            },
            ..NamedTypeStats::default()
        };
        for (type_id, stats) in &self.stats.types {
            by_type.entry(*type_id).or_insert_with(|| named(*type_id)).stats = stats.clone();
        }
        for p in self.slots.iter().flatten() {
            if p.state == State::Running && !p.has(PROVISIONAL) {
                let entry = by_type.entry(p.type_id).or_insert_with(|| named(p.type_id));
                entry.in_flight += 1;
                entry.stuck += u64::from(p.has(STUCK));
            }
        }
        by_type.into_values().collect()
    }

    /// The service and channel graph: operations with their rate, errors and durations, and
    /// channels with their producers, consumer groups and the time messages wait in them.
    pub fn graph(&self, now: u64, window_minutes: u64) -> Graph {
        summarize_graph(self.graph_stats(), now, window_minutes)
    }

    /// Raw, mergeable graph aggregates, by name (for merging shards).
    pub fn graph_stats(&self) -> GraphStats {
        let name = |id: u32| self.strings.name(id).to_owned();
        GraphStats {
            operations: self
                .stats
                .operations
                .iter()
                .map(|((service, operation), stats)| {
                    ((name(*service), name(*operation)), stats.clone())
                })
                .collect(),
            calls: self
                .stats
                .calls
                .iter()
                .map(|((caller, callee), stats)| ((name(*caller), name(*callee)), stats.clone()))
                .collect(),
            channels: self
                .stats
                .channels
                .iter()
                .map(|(channel, stats)| {
                    let state = &self.channels[*channel as usize];
                    let named = NamedChannelStats {
                        messages: stats.messages,
                        producers: stats.producers.iter().map(|(s, n)| (name(*s), *n)).collect(),
                        groups: stats.groups.iter().map(|(g, gs)| (name(*g), gs.clone())).collect(),
                    };
                    ((name(state.system), name(state.destination)), named)
                })
                .collect(),
        }
    }

    /// A consumption seen by another shard: consumer group `group` processed the message sent
    /// by span `message` of trace `trace` on a channel, starting at `consumer_start`.
    pub fn consume_remote(&mut self, remote: &RemoteConsume, now: u64) {
        self.advance(now);
        let channel = self.channel(&remote.system, &remote.destination);
        let group = self.learn_subscriber(channel, &remote.group);
        let Some(slot) = self.slot_for_trace(remote.trace_id, now) else { return };
        self.consume(slot, fingerprint(remote.message), group, now, remote.consumer_start);
        self.rearm(slot);
    }

    /// Takes the process holding `trace_id` out of this shard, to hand it to another.
    pub fn export_trace(&mut self, trace_id: TraceId) -> Option<Exported> {
        let slot = *self.by_trace.get(&trace_id)?;
        let process = self.slots[slot as usize].as_ref()?.clone();
        if process.state == State::Running {
            self.running -= 1;
        }
        // It lives on in the importing shard, which reports it from there.
        if let Some(p) = self.slots[slot as usize].as_mut() {
            p.clear(DIRTY);
        }
        self.remove(slot);
        self.trim_finished();
        let name = |id: u32| self.strings.name(id).to_owned();
        let pending = process
            .pending
            .iter()
            .map(|m| {
                let channel = &self.channels[m.channel as usize];
                let groups = if m.awaiting & ANY_GROUP != 0 {
                    None
                } else {
                    Some(self.awaited_groups(m).into_iter().map(str::to_owned).collect())
                };
                (name(channel.system), name(channel.destination), groups)
            })
            .collect();
        let extra = process.extra.as_deref();
        let consumed = extra
            .map(|e| e.consumed.iter().map(|(m, g)| (*m, name(*g))).collect())
            .unwrap_or_default();
        let steps = extra
            .map(|e| e.steps.iter().map(|s| (name(s.service), name(s.operation))).collect())
            .unwrap_or_default();
        let type_name = (process.type_id != 0).then(|| name(process.type_id));
        Some(Exported { process, pending, consumed, steps, type_name })
    }

    /// Takes in a process exported by another shard, joining it to a process here that holds
    /// one of its traces, if any. Interned ids are translated by name.
    pub fn import(&mut self, exported: Exported, now: u64) {
        self.advance(now);
        let Exported { mut process, pending, consumed, steps, type_name } = exported;
        // Dirty in the shard it came from; dirty here once placed.
        process.clear(DIRTY);
        for (message, (system, destination, groups)) in process.pending.iter_mut().zip(pending) {
            let channel = self.channel(&system, &destination);
            message.channel = channel;
            if let Some(groups) = groups {
                let mut awaiting = 0u64;
                for group in groups {
                    let id = self.learn_subscriber(channel, &group);
                    awaiting |= group_bit(&self.channels, channel, id);
                }
                message.awaiting = if awaiting == 0 { ANY_GROUP } else { awaiting };
            }
        }
        process.type_id = type_name.map_or(0, |name| self.strings.intern(&name));
        if let Some(extra) = process.extra.as_mut() {
            extra.consumed = consumed.iter().map(|(m, g)| (*m, self.strings.intern(g))).collect();
            for (step, (service, operation)) in extra.steps.iter_mut().zip(&steps) {
                step.service = self.strings.intern(service);
                step.operation = self.strings.intern(operation);
            }
        }
        let traces: Vec<TraceId> =
            std::iter::once(process.id).chain(process.joined_traces().iter().copied()).collect();
        let existing = traces.iter().find_map(|t| self.by_trace.get(t).copied());
        let running = process.state == State::Running;
        let slot = match existing {
            Some(into) => {
                if let Some(target) =
                    self.slots[into as usize].as_ref().filter(|p| p.id != process.id)
                {
                    self.removed.push((process.id, target.id));
                }
                let channels = &self.channels;
                let mut reopened = false;
                if let Some(p) = self.slots[into as usize].as_mut() {
                    p.absorb(process, &|channel, group| group_bit(channels, channel, group));
                    // Spans that reach a completed process late reopen it, as here.
                    if p.state == State::Completed {
                        p.state = State::Running;
                        p.mode = None;
                        p.last_activity = p.last_activity.max(now);
                        reopened = true;
                    }
                }
                if reopened {
                    self.running += 1;
                    self.emit(into, EventKind::Reopened, now, String::new());
                }
                into
            }
            None => {
                let Some(slot) = self.create(process.id, now) else { return };
                process.generation = self.slots[slot as usize].as_ref().map_or(0, |p| p.generation);
                process.armed = u64::MAX;
                if !running {
                    self.running -= 1;
                }
                self.slots[slot as usize] = Some(process);
                slot
            }
        };
        for trace in traces {
            self.by_trace.insert(trace, slot);
        }
        self.touch(slot);
        self.rearm(slot);
    }

    /// Subscribers learned since the last call, as (system, destination, group), for the
    /// other shards.
    pub fn drain_learned(&mut self) -> Vec<(String, String, String)> {
        std::mem::take(&mut self.learned)
    }

    /// A read-only view of the process holding `trace_id` (its own or a joined trace).
    pub fn process(&self, trace_id: TraceId) -> Option<ProcessView> {
        let slot = *self.by_trace.get(&trace_id)?;
        self.slots.get(slot as usize)?.as_ref().map(|p| self.view(p))
    }

    /// Every process held, as views (for tests and the API's listings).
    pub fn processes(&self) -> Vec<ProcessView> {
        let mut views: Vec<ProcessView> =
            self.slots.iter().flatten().map(|p| self.view(p)).collect();
        views.sort_by_key(|v| v.id);
        views
    }

    fn view(&self, p: &Process) -> ProcessView {
        let mut joined = p.joined_traces().to_vec();
        joined.sort_unstable();
        let mut traces = vec![p.id];
        traces.extend(joined);
        let mut waiting_for: Vec<Waiting> = Vec::new();
        if p.state == State::Running {
            let mut pending: Vec<&Pending> = p.pending.iter().collect();
            pending.sort_by_key(|m| (m.since, m.message));
            for m in pending {
                let channel = &self.channels[m.channel as usize];
                let groups: Vec<&str> =
                    if m.awaiting & ANY_GROUP != 0 { vec!["*"] } else { self.awaited_groups(m) };
                for group in groups {
                    waiting_for.push(Waiting::Message {
                        system: self.strings.name(channel.system).to_owned(),
                        destination: self.strings.name(channel.destination).to_owned(),
                        group: group.to_owned(),
                        since: m.since,
                    });
                }
            }
            if !p.dangling.is_empty() {
                waiting_for.push(Waiting::MissingParent { count: p.dangling.len() });
            }
            if !p.has(ROOT_SEEN) {
                waiting_for.push(Waiting::Root);
            }
        }
        ProcessView {
            id: p.id,
            process_type: self.type_name(p).to_owned(),
            state: p.state,
            mode: p.mode,
            stuck: p.has(STUCK),
            sla_breached: p.has(SLA_BREACHED),
            start_nanos: if p.start_nanos == u64::MAX { 0 } else { p.start_nanos },
            end_nanos: p.end_nanos,
            last_activity: p.last_activity,
            spans: p.spans,
            error_spans: p.error_spans,
            traces,
            waiting_for,
            failure: p.failure().map(str::to_owned),
            spec: p
                .extra
                .as_ref()
                .and_then(|e| e.violations.as_ref())
                .map(|v| SpecResult { violations: v.iter().map(|s| s.to_string()).collect() }),
        }
    }

    fn type_name(&self, p: &Process) -> &str {
        if p.type_id == 0 { "unknown" } else { self.strings.name(p.type_id) }
    }

    fn policy(&self, p: &Process) -> &TypePolicy {
        self.policies.get(&p.type_id).unwrap_or(&self.config.default_policy)
    }

    /// The slot of the process holding `trace_id`, creating a provisional placeholder when
    /// the trace is not known yet (a link to a producer whose spans have not arrived).
    fn slot_for_trace(&mut self, trace_id: TraceId, now: u64) -> Option<u32> {
        match self.by_trace.get(&trace_id) {
            Some(slot) => Some(*slot),
            None => self.create(trace_id, now),
        }
    }

    fn create(&mut self, trace_id: TraceId, now: u64) -> Option<u32> {
        if self.slots.len() - self.free.len() >= self.config.max_in_flight {
            // Finished processes kept for late spans give way first, oldest first.
            if !self.evict_oldest_finished() {
                self.untracked += 1;
                return None;
            }
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push_empty();
                self.generations.push(0);
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let generation = self.generations[slot as usize].wrapping_add(1);
        self.generations[slot as usize] = generation;
        self.slots[slot as usize] = Some(Process::new(trace_id, generation, now));
        self.by_trace.insert(trace_id, slot);
        self.running += 1;
        self.rearm(slot);
        Some(slot)
    }

    /// Folds the process in `from` into the one in `into`; returns `into`.
    fn merge(&mut self, into: u32, from: u32) -> u32 {
        let Some(absorbed) = self.slots[from as usize].take() else { return into };
        self.free.push(from);
        if let Some(target) = self.slots[into as usize].as_ref() {
            self.removed.push((absorbed.id, target.id));
        }
        self.touch(into);
        if absorbed.state == State::Running {
            self.running -= 1;
        }
        for trace in std::iter::once(absorbed.id).chain(absorbed.joined_traces().iter().copied()) {
            self.by_trace.insert(trace, into);
        }
        let channels = &self.channels;
        if let Some(p) = self.slots[into as usize].as_mut() {
            p.absorb(absorbed, &|channel, group| group_bit(channels, channel, group));
        }
        into
    }

    fn channel(&mut self, system: &str, destination: &str) -> u32 {
        let system = self.strings.intern(system);
        let destination_id = self.strings.intern(destination);
        if let Some(id) = self.channel_ids.get(&(system, destination_id)) {
            return *id;
        }
        let id = u32::try_from(self.channels.len()).unwrap_or(u32::MAX);
        let dead_letter = messaging::is_dead_letter(self.strings.name(destination_id));
        self.channels.push(ChannelState {
            system,
            destination: destination_id,
            subscribers: Vec::new(),
            dead_letter,
        });
        self.channel_ids.insert((system, destination_id), id);
        id
    }

    fn learn_subscriber(&mut self, channel: u32, group: &str) -> u32 {
        let group_id = self.strings.intern(group);
        let state = &mut self.channels[channel as usize];
        if !state.subscribers.contains(&group_id) {
            state.subscribers.push(group_id);
            self.learned.push((
                self.strings.name(state.system).to_owned(),
                self.strings.name(state.destination).to_owned(),
                group.to_owned(),
            ));
        }
        group_id
    }

    fn consume(&mut self, slot: u32, message: u32, group: u32, now: u64, consumer_start: u64) {
        let channels = &self.channels;
        let Some(p) = self.slots[slot as usize].as_mut() else { return };
        let found =
            p.consume(message, group, &|channel, group| group_bit(channels, channel, group));
        if let Some((channel, sent_at)) = found {
            let stats =
                self.stats.channels.entry(channel).or_default().groups.entry(group).or_default();
            stats.consumed += 1;
            stats.waits.add(consumer_start.saturating_sub(sent_at));
            p.last_activity = p.last_activity.max(now);
            self.rearm(slot);
        }
    }

    /// Applies one span to its process.
    fn record(&mut self, slot: u32, span: &Span, role: &Role<'_>, joined_by_link: bool, now: u64) {
        self.touch(slot);
        let service = match &self.last_service {
            Some((resource, id)) if Arc::ptr_eq(resource, &span.resource) => *id,
            _ => {
                let id = self.strings.intern(span.service_name());
                self.last_service = Some((Arc::clone(&span.resource), id));
                id
            }
        };
        // Business keys, copied only when new: most spans repeat their process's keys.
        if let Some(id) = self.slots[slot as usize].as_ref().map(|p| p.id) {
            for kv in &span.attributes {
                if !keys::is_default_key(&kv.key) && !self.key_names.contains(kv.key.as_str()) {
                    continue;
                }
                let value = match &kv.value {
                    AnyValue::String(s) => std::borrow::Cow::Borrowed(s.as_str()),
                    AnyValue::Int(i) => std::borrow::Cow::Owned(i.to_string()),
                    _ => continue,
                };
                self.found_key(id, &kv.key, value);
            }
        }
        let producer = match role {
            Role::Producer { channel } => Some(self.channel(channel.system, channel.destination)),
            _ => None,
        };
        let subscribers =
            producer.map(|c| self.channels[c as usize].subscribers.clone()).unwrap_or_default();
        let dead_letter = producer
            .filter(|c| self.channels[*c as usize].dead_letter)
            .map(|c| self.strings.name(self.channels[c as usize].destination).to_owned());
        // Types: a spec's attribute or root match, else inferred from the root span.
        let attribute_type = self
            .attribute_rules
            .iter()
            .find(|(key, value, _)| {
                threadline_core::value::find(&span.attributes, key).and_then(AnyValue::as_str)
                    == Some(value.as_str())
            })
            .map(|rule| rule.2);
        // Operation names are interned while under the stats' cardinality cap.
        let operation = if self.stats.operations.len() < crate::stats::MAX_OPERATIONS {
            Some(self.strings.intern(&span.name))
        } else {
            self.strings.get(&span.name)
        };
        let root_type = self
            .root_rules
            .iter()
            .find(|(s, o, _)| *s == service && (*o == 0 || Some(*o) == operation))
            .map(|rule| rule.2);
        let step = operation.filter(|op| self.step_operations.contains(&(service, *op)));
        let other = self.other;
        let op_stats = self.stats.operation(service, operation.unwrap_or(other), other);
        op_stats.count += 1;
        op_stats.minutes.record(now);
        op_stats.durations.add(span.duration_nanos());
        if span.status.code == StatusCode::Error {
            op_stats.errors += 1;
        }
        // Synchronous calls between services: a CLIENT span and its SERVER child elsewhere.
        let call_key = |trace: TraceId, span_id: threadline_core::id::SpanId| {
            foldhash::fast::FixedState::with_seed(0x63616c6c).hash_one((trace, span_id))
        };
        let call = match span.kind {
            SpanKind::Client => self
                .stats
                .pairing
                .client(call_key(span.trace_id, span.span_id), service)
                .map(|(callee, duration, error)| (service, callee, duration, error)),
            SpanKind::Server => span.parent_span_id.and_then(|parent| {
                let failed = span.status.code == StatusCode::Error;
                self.stats
                    .pairing
                    .server(call_key(span.trace_id, parent), service, span.duration_nanos(), failed)
                    .map(|caller| (caller, service, span.duration_nanos(), failed))
            }),
            _ => None,
        };
        if let Some((caller, callee, duration, error)) = call
            && caller != callee
        {
            let edge = self.stats.calls.entry((caller, callee)).or_default();
            edge.count += 1;
            edge.errors += u64::from(error);
            edge.durations.add(duration);
            edge.minutes.record(now);
        }
        if let Some(channel) = producer {
            let channel_stats = self.stats.channels.entry(channel).or_default();
            channel_stats.messages += 1;
            *channel_stats.producers.entry(service).or_default() += 1;
        }

        let Some(p) = self.slots[slot as usize].as_mut() else { return };
        let reopened = p.state == State::Completed;
        if reopened {
            p.state = State::Running;
            p.mode = None;
            self.running += 1;
        }
        p.spans += 1;
        p.last_activity = p.last_activity.max(now);
        p.start_nanos = p.start_nanos.min(span.start_time_unix_nano);
        p.end_nanos = p.end_nanos.max(span.end_time_unix_nano);
        let failed_span = span.status.code == StatusCode::Error;
        if failed_span {
            p.error_spans += 1;
        }
        if let Some(type_id) = attribute_type
            && !p.has(SPEC_TYPE)
        {
            p.type_id = type_id;
            p.set(SPEC_TYPE);
        }
        if let Some(operation) = step {
            let start = span.start_time_unix_nano;
            let steps = &mut p.extra_mut().steps;
            match steps.iter_mut().find(|s| s.service == service && s.operation == operation) {
                Some(seen) => {
                    seen.count += 1;
                    seen.first_start = seen.first_start.min(start);
                    seen.error |= failed_span;
                }
                None => steps.push(StepSeen {
                    service,
                    operation,
                    count: 1,
                    first_start: start,
                    error: failed_span,
                }),
            }
        }

        // Structure: parents seen, parents missing, the process root.
        let me = fingerprint(span.span_id);
        if p.seen.len() >= MAX_SPANS_TRACKED {
            p.set(TRUNCATED);
        } else if p.seen.insert(me) {
            p.dangling.retain(|d| *d != me);
            if p.dangling.is_empty() {
                // Most processes resolve every parent: give the memory back.
                p.dangling = ThinVec::new();
            }
        }
        let mut became_definite = false;
        match span.parent_span_id {
            Some(parent) => {
                let parent = fingerprint(parent);
                if !p.seen.contains(parent) && !p.dangling.contains(&parent) {
                    p.dangling.push(parent);
                }
            }
            None if !joined_by_link && span.trace_id == p.id => {
                p.set(ROOT_SEEN);
                if !p.has(SPEC_TYPE) {
                    if let Some(type_id) = root_type {
                        p.type_id = type_id;
                        p.set(SPEC_TYPE);
                    } else {
                        // Named after its root's service and operation, made only when used.
                        self.type_name.clear();
                        self.type_name.push_str(span.service_name());
                        self.type_name.push_str(": ");
                        self.type_name.push_str(&span.name);
                        p.type_id = self.strings.intern(&self.type_name);
                    }
                }
                if p.has(PROVISIONAL) {
                    p.clear(PROVISIONAL);
                    became_definite = true;
                }
                if failed_span {
                    p.set_failure(if span.status.message.is_empty() {
                        "root span has error status".to_owned()
                    } else {
                        format!("root span has error status: {}", span.status.message)
                    });
                }
            }
            None => {}
        }

        // Messages sent by this span.
        if let Some(channel) = producer {
            let message = me;
            // Groups that consumed it before the producer arrived owe nothing more.
            let early: Vec<u32> = match p.extra.as_mut() {
                Some(extra) => {
                    let groups = extra
                        .consumed
                        .iter()
                        .filter(|(m, _)| *m == message)
                        .map(|(_, g)| *g)
                        .collect();
                    extra.consumed.retain(|(m, _)| *m != message);
                    groups
                }
                None => Vec::new(),
            };
            let mut awaiting = 0u64;
            for (i, group) in subscribers.iter().take(63).enumerate() {
                if !early.contains(group) {
                    awaiting |= 1 << i;
                }
            }
            // No subscriber known for the channel: the first consumer of any group settles it.
            if subscribers.is_empty() && early.is_empty() {
                awaiting = ANY_GROUP;
            }
            if awaiting != 0 && !p.pending.iter().any(|m| m.message == message) {
                p.pending.reserve_exact(1);
                p.pending.push(Pending {
                    message,
                    channel,
                    awaiting,
                    since: now,
                    sent_at: span.end_time_unix_nano,
                });
            }
            if let Some(destination) = dead_letter {
                p.set_failure(format!("message sent to dead-letter channel {destination}"));
            }
        }

        if reopened {
            self.emit(slot, EventKind::Reopened, now, String::new());
        }
        if became_definite {
            self.emit_started(slot, now);
        }
        self.check_critical_steps(slot);
        let Some(p) = self.slots[slot as usize].as_mut() else { return };
        if p.failure().is_some() && p.state == State::Running && !p.has(PROVISIONAL) {
            self.finish(slot, State::Failed, None, now);
        }
        self.rearm(slot);
    }

    /// Notes a business key found on a span of process `id`: reported once per drain.
    fn found_key(&mut self, id: TraceId, key: &str, value: std::borrow::Cow<'_, str>) {
        let hash = foldhash::fast::FixedState::with_seed(0x6b6579).hash_one((key, &*value));
        match self.found_at.entry((id, hash)) {
            std::collections::hash_map::Entry::Occupied(at) => {
                let (_, k, v) = &self.found_keys[*at.get()];
                if k == key && *v == *value {
                    return;
                }
                // Another key of the same hash: kept too (a repeat is harmless, a loss not).
            }
            std::collections::hash_map::Entry::Vacant(at) => {
                at.insert(self.found_keys.len());
            }
        }
        self.found_keys.push((id, key.to_owned(), value.into_owned()));
    }

    /// Fails a process of a declared type whose critical step has an error status.
    fn check_critical_steps(&mut self, slot: u32) {
        let Some(p) = self.slots[slot as usize].as_mut() else { return };
        if !p.has(SPEC_TYPE) || p.failure().is_some() {
            return;
        }
        let Some(rules) = self.rules.get(&p.type_id) else { return };
        let failed = p.extra.as_ref().and_then(|extra| {
            extra.steps.iter().find(|seen| {
                seen.error
                    && rules.steps.iter().any(|r| {
                        r.critical && r.service == seen.service && r.operation == seen.operation
                    })
            })
        });
        if let Some(seen) = failed {
            let reason = format!(
                "critical step {} {} has error status",
                self.strings.name(seen.service),
                self.strings.name(seen.operation)
            );
            p.set_failure(reason);
        }
    }

    /// Structurally complete, and every terminal step of its spec seen.
    fn complete_structurally(&self, p: &Process) -> bool {
        if !p.structurally_complete() {
            return false;
        }
        let Some(rules) = self.rules.get(&p.type_id).filter(|_| p.has(SPEC_TYPE)) else {
            return true;
        };
        let seen = p.extra.as_ref().map_or(&[][..], |e| &e.steps);
        rules.steps.iter().filter(|r| r.terminal).all(|r| {
            seen.iter().any(|s| s.service == r.service && s.operation == r.operation && s.count > 0)
        })
    }

    /// Every way a finished process of a declared type departs from its spec.
    fn spec_violations(&self, p: &Process) -> Vec<String> {
        let Some(rules) = self.rules.get(&p.type_id) else { return Vec::new() };
        let seen = p.extra.as_ref().map_or(&[][..], |e| &e.steps);
        let name = |r: &StepRule| {
            format!("{} {}", self.strings.name(r.service), self.strings.name(r.operation))
        };
        let count_of = |r: &StepRule| {
            seen.iter().find(|s| s.service == r.service && s.operation == r.operation)
        };
        let mut violations = Vec::new();
        for rule in &rules.steps {
            let count = count_of(rule).map_or(0, |s| s.count);
            if count < rule.min {
                if count == 0 {
                    violations.push(format!("missing step {}", name(rule)));
                } else {
                    violations.push(format!(
                        "step {} happened {count} times, fewer than {}",
                        name(rule),
                        rule.min
                    ));
                }
            }
            if let Some(max) = rule.max
                && count > max
            {
                violations
                    .push(format!("step {} happened {count} times, more than {max}", name(rule)));
            }
            if let Some(retries) = rules.max_retries
                && count > retries.saturating_add(1)
            {
                violations.push(format!(
                    "step {} retried {} times, more than {retries}",
                    name(rule),
                    count - 1
                ));
            }
        }
        let mut ordered: Vec<(u32, u64, &StepRule)> = rules
            .steps
            .iter()
            .filter_map(|r| Some((r.order?, count_of(r)?.first_start, r)))
            .collect();
        ordered.sort_by_key(|(order, start, _)| (*order, *start));
        for pair in ordered.windows(2) {
            let ((order_a, start_a, a), (order_b, start_b, b)) = (pair[0], pair[1]);
            if order_a < order_b && start_b < start_a {
                violations.push(format!(
                    "step {} (order {order_b}) happened before step {} (order {order_a})",
                    name(b),
                    name(a)
                ));
            }
        }
        if rules.forbid_errors && p.error_spans > 0 {
            violations.push(format!("{} spans have error status", p.error_spans));
        }
        violations
    }

    fn emit_started(&mut self, slot: u32, at: u64) {
        let Some(p) = self.slots[slot as usize].as_mut() else { return };
        if !p.has(STARTED) {
            p.set(STARTED);
            self.emit(slot, EventKind::Started, at, String::new());
        }
    }

    fn emit(&mut self, slot: u32, kind: EventKind, at: u64, detail: String) {
        self.touch(slot);
        let Some(p) = self.slots[slot as usize].as_ref() else { return };
        // Every occurrence passes here once: the one place aggregates count events.
        let sla = self.policy(p).sla_nanos;
        let stats = self.stats.types.entry(p.type_id).or_default();
        match kind {
            EventKind::Started => stats.started += 1,
            EventKind::Completed => {
                stats.completed += 1;
                stats.durations.add(p.duration_nanos());
                stats.record_completion(at);
                if sla.is_some() {
                    stats.with_sla += 1;
                    if !p.has(SLA_BREACHED) {
                        stats.within_sla += 1;
                    }
                }
            }
            EventKind::Failed => stats.failed += 1,
            EventKind::SlaBreached => stats.sla_breached += 1,
            EventKind::Stuck => stats.stuck += 1,
            EventKind::SpecViolated => stats.spec_violated += 1,
            EventKind::Reopened => stats.reopened += 1,
        }
        self.events.push(Event {
            kind,
            process_id: p.id,
            process_type: self.type_name(p).to_owned(),
            at,
            detail,
        });
    }

    fn finish(&mut self, slot: u32, state: State, mode: Option<Mode>, at: u64) {
        let Some(p) = self.slots[slot as usize].as_mut() else { return };
        p.state = state;
        p.mode = mode;
        p.moment = at;
        self.finished.push_back((slot, p.generation, at));
        p.unstick();
        self.running -= 1;
        let Some(p) = self.slots[slot as usize].as_ref() else { return };
        let sla = self.policy(p).sla_nanos;
        let Some(p) = self.slots[slot as usize].as_mut() else { return };
        // A process whose whole telemetry arrived after its deadline breached all the same.
        let late_breach = sla.is_some_and(|sla| p.duration_nanos() > sla) && !p.has(SLA_BREACHED);
        if late_breach {
            p.set(SLA_BREACHED);
        }
        let failure = p.failure().unwrap_or("").to_owned();
        if late_breach {
            self.emit(slot, EventKind::SlaBreached, at, "finished after its deadline".to_owned());
        }
        match state {
            State::Completed => {
                let detail = mode.map_or("", Mode::as_str).to_owned();
                self.emit(slot, EventKind::Completed, at, detail);
            }
            State::Failed => self.emit(slot, EventKind::Failed, at, failure),
            State::Running => {}
        }
        // On completion, a process of a declared type is checked against its spec.
        let Some(p) = self.slots[slot as usize].as_ref() else { return };
        if state == State::Completed && p.has(SPEC_TYPE) {
            let violations = self.spec_violations(p);
            let detail = violations.join("; ");
            let Some(p) = self.slots[slot as usize].as_mut() else { return };
            p.extra_mut().violations =
                Some(violations.into_iter().map(String::into_boxed_str).collect());
            if !detail.is_empty() {
                self.emit(slot, EventKind::SpecViolated, at, detail);
            }
        }
    }

    /// Applies every rule due at time `t` to one process, then re-arms its timer.
    fn evaluate(&mut self, slot: u32, t: u64) {
        let Some(p) = self.slots[slot as usize].as_ref() else { return };
        let policy = self.policy(p).clone();
        let (settle, join, retain) = (
            self.config.settle_nanos,
            self.config.join_window_nanos,
            self.config.retain_finished_nanos,
        );

        if p.state != State::Running {
            if t >= p.moment.saturating_add(retain) {
                self.remove(slot);
                self.trim_finished();
            } else {
                self.rearm(slot);
            }
            return;
        }
        if p.has(PROVISIONAL) && t >= p.moment.saturating_add(join) {
            if let Some(p) = self.slots[slot as usize].as_mut() {
                p.clear(PROVISIONAL);
            }
            self.emit_started(slot, t);
            let Some(p) = self.slots[slot as usize].as_ref() else { return };
            if p.failure().is_some() {
                self.finish(slot, State::Failed, None, t);
                self.rearm(slot);
                return;
            }
        }
        let Some(p) = self.slots[slot as usize].as_ref() else { return };
        if p.has(PROVISIONAL) {
            self.rearm(slot);
            return;
        }
        if let Some(sla) = policy.sla_nanos
            && !p.has(SLA_BREACHED)
            && p.start_nanos != u64::MAX
            && t >= p.start_nanos.saturating_add(sla)
        {
            let deadline = p.start_nanos.saturating_add(sla);
            if let Some(p) = self.slots[slot as usize].as_mut() {
                p.set(SLA_BREACHED);
            }
            self.emit(slot, EventKind::SlaBreached, t, format!("deadline {deadline}"));
        }
        let Some(p) = self.slots[slot as usize].as_ref() else { return };
        if self.complete_structurally(p) && t >= p.last_activity.saturating_add(settle) {
            self.finish(slot, State::Completed, Some(Mode::Structural), t);
            self.rearm(slot);
            return;
        }
        if let Some(oldest) = p.oldest_blocking()
            && p.stuck_on() != Some(oldest.message)
            && !p.has(STUCK)
            && t >= oldest.since.saturating_add(policy.stuck_after_nanos)
        {
            let message = oldest.message;
            let detail = self.describe_wait(oldest);
            let Some(p) = self.slots[slot as usize].as_mut() else { return };
            p.set(STUCK);
            p.extra_mut().stuck_on = Some(message);
            self.emit(slot, EventKind::Stuck, t, detail);
        }
        let Some(p) = self.slots[slot as usize].as_ref() else { return };
        if !p.has_blocking_pending()
            && t >= p.last_activity.saturating_add(policy.idle_timeout_nanos)
        {
            self.finish(slot, State::Completed, Some(Mode::Quiescence), t);
        }
        self.rearm(slot);
    }

    /// Names of the consumer groups a message still waits for.
    fn awaited_groups(&self, pending: &Pending) -> Vec<&str> {
        let channel = &self.channels[pending.channel as usize];
        channel
            .subscribers
            .iter()
            .take(63)
            .enumerate()
            .filter(|(i, _)| pending.awaiting & (1 << i) != 0)
            .map(|(_, g)| self.strings.name(*g))
            .collect()
    }

    fn describe_wait(&self, pending: &Pending) -> String {
        let channel = &self.channels[pending.channel as usize];
        let groups = self.awaited_groups(pending);
        format!(
            "waiting on {} {} for consumer group {} since {}",
            self.strings.name(channel.system),
            self.strings.name(channel.destination),
            groups.join(", "),
            pending.since
        )
    }

    /// The next time any rule of this process can change its state.
    fn due(&self, p: &Process) -> u64 {
        if p.state != State::Running {
            return p.moment.saturating_add(self.config.retain_finished_nanos);
        }
        if p.has(PROVISIONAL) {
            return p.moment.saturating_add(self.config.join_window_nanos);
        }
        let policy = self.policy(p);
        let mut wake = p.last_activity.saturating_add(policy.idle_timeout_nanos);
        if p.has_blocking_pending() {
            wake = u64::MAX;
        }
        if let Some(sla) = policy.sla_nanos
            && !p.has(SLA_BREACHED)
            && p.start_nanos != u64::MAX
        {
            wake = wake.min(p.start_nanos.saturating_add(sla));
        }
        if self.complete_structurally(p) {
            wake = wake.min(p.last_activity.saturating_add(self.config.settle_nanos));
        }
        if let Some(oldest) = p.oldest_blocking()
            && !p.has(STUCK)
        {
            wake = wake.min(oldest.since.saturating_add(policy.stuck_after_nanos));
        }
        wake
    }

    /// Makes sure a wake-up is armed no later than the process's next due rule.
    fn rearm(&mut self, slot: u32) {
        let Some(p) = self.slots[slot as usize].as_ref() else { return };
        let wake = self.due(p);
        if wake == u64::MAX || wake >= p.armed {
            return;
        }
        let generation = p.generation;
        // Never in the past: a rule already due fires at the next advance.
        let at = wake.max(self.now);
        if let Some(p) = self.slots[slot as usize].as_mut() {
            p.armed = at;
        }
        self.timers.arm(at, slot, generation);
    }

    /// Drops entries of the finish order that no longer name a finished process (removed,
    /// reopened, or its slot reused), so the order stays as long as the processes it names.
    fn trim_finished(&mut self) {
        while let Some(&(slot, generation, at)) = self.finished.front() {
            let current = self.slots.get(slot as usize).and_then(|p| p.as_ref());
            let live = current.is_some_and(|p| {
                p.generation == generation && p.state != State::Running && p.moment == at
            });
            if live {
                break;
            }
            self.finished.pop_front();
        }
    }

    /// Removes the process that finished longest ago, if one is still held; returns whether
    /// a slot was freed.
    fn evict_oldest_finished(&mut self) -> bool {
        while let Some((slot, generation, at)) = self.finished.pop_front() {
            let current = self.slots.get(slot as usize).and_then(|p| p.as_ref());
            if current.is_some_and(|p| {
                p.generation == generation && p.state != State::Running && p.moment == at
            }) {
                self.remove(slot);
                self.evicted += 1;
                return true;
            }
        }
        false
    }

    fn remove(&mut self, slot: u32) {
        // A change not yet drained is kept: the process table gets its final state.
        let unreported = self.slots[slot as usize].as_ref().filter(|p| p.has(DIRTY)).map(|p| p.id);
        if let Some(view) = unreported.and_then(|id| self.process(id)) {
            self.unreported.push(view);
        }
        let Some(p) = self.slots[slot as usize].take() else { return };
        for trace in std::iter::once(p.id).chain(p.joined_traces().iter().copied()) {
            if self.by_trace.get(&trace) == Some(&slot) {
                self.by_trace.remove(&trace);
            }
        }
        self.free.push(slot);
    }
}

/// The bit of `group` in the subscriber mask of `channel` (0 past the 63rd subscriber).
fn group_bit(channels: &[ChannelState], channel: u32, group: u32) -> u64 {
    channels
        .get(channel as usize)
        .and_then(|c| c.subscribers.iter().position(|g| *g == group))
        .filter(|i| *i < 63)
        .map_or(0, |i| 1 << i)
}
