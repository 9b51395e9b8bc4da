//! Runs the process engine as shards, one thread each, driven by the wall clock (ADR 004).
//! A router in the handle sends each span to the shard owning its process (with one shard,
//! the default below eight cores, every batch goes to it whole, unrouted); shards hand
//! provisional processes and remote consumptions to each other through their inboxes and tell
//! each other the subscribers they learn. Each shard's inbox is bounded. Every few
//! milliseconds, and at each mark, a shard reports its changed processes and its events to the
//! process writer through a bounded channel. Queries by trace go to the owning shard; by key
//! and aggregates go to every shard and are merged.
//!
//! The pipeline feeds a group of batches as one list of commands per shard, in the order one
//! engine would apply them. Migrations: when a span pins its trace to another shard, the old
//! shard's list gets an `Export` and the new one's an `Import` holding the other end of its
//! reply, before the spans; nothing waits for a shard to answer. The new shard waits for the
//! export when it reaches the `Import`. In that order of commands the export comes before the
//! `Import`, and everything before the export in the old shard's list comes earlier still, so
//! a wait only ever waits on earlier commands and shards never wait on each other in a cycle;
//! and the pipeline, which sends each list whole before the next, never waits on a shard that
//! waits for a list not yet sent, as every list of a group is sent before the next group.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use threadline_core::id::TraceId;
use threadline_core::span::Span;
use threadline_engine::config::EngineConfig;
use threadline_engine::engine::{
    Changes, Engine, EngineStats, Exported, Graph, GraphStats, NamedTypeStats, ProcessView,
    RemoteConsume, TypeSummary, summarize_graph, summarize_types,
};
use threadline_engine::event::Event;
use threadline_engine::sharded::Router;
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for one shard, at most; the pipeline waits when a shard's inbox is full.
const INBOX: usize = 256;
/// How often a shard reports its changes when it has any. A shard that has reported
/// nothing for as long reports at once, so an idle server publishes an event without delay;
/// under load the writer folds the reports of 100 ms into one commit, and a report per 25 ms
/// wakes it a quarter as often as one per 10 ms did.
const REPORT_EVERY: Duration = Duration::from_millis(25);
/// Timers are fired on ticks of this many nanoseconds of wall time: a shard with thousands
/// of processes has a timer due nearly every instant, and waking for each cost more than the
/// timers' work. A timer fires at most this late.
const TIMER_TICK_NANOS: u64 = 5_000_000;

/// What a shard hands the process writer: its changes since its last report (processes,
/// folds, business keys), its events, and the WAL mark it has processed through, if asked.
#[derive(Debug)]
pub struct Report {
    pub shard: usize,
    pub mark: Option<u64>,
    pub changes: Changes,
    pub events: Vec<Event>,
}

/// The spans of a batch a shard owns, with the linked traces of each that other shards own.
struct Assigned {
    spans: Arc<Vec<Span>>,
    items: Vec<(usize, Vec<TraceId>)>,
}

enum Command {
    Spans(Assigned),
    /// Every span of a batch, for the only shard: it owns every trace, so there is nothing
    /// to route, pin or hand over.
    All(Arc<Vec<Span>>),
    /// Give up the process holding this trace, for the shard holding the other end of the
    /// channel.
    Export(TraceId, oneshot::Sender<Option<Exported>>),
    /// Take in the process another shard gives up. The matching `Export` was sent first, so
    /// waiting for it never waits on this shard (module docs: migrations).
    Import(oneshot::Receiver<Option<Exported>>),
    Consume(Vec<RemoteConsume>),
    Learn(String, String, String),
    Process(TraceId, oneshot::Sender<Option<ProcessView>>),
    Stats(oneshot::Sender<EngineStats>),
    Types(oneshot::Sender<Vec<NamedTypeStats>>),
    Graph(oneshot::Sender<GraphStats>),
    /// Every batch up to this WAL sequence number has been fed: report through it.
    Mark(u64),
    /// Commands to run in order (a group's share for this shard).
    List(Vec<Command>),
}

/// Talks to the engine shards. Cloned freely; the shards end when every handle is gone.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    router: Arc<Mutex<Router>>,
    shards: Vec<mpsc::Sender<Command>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl EngineHandle {
    /// Routes a group of batches to the shards, in order, as one list of commands per shard
    /// (a shard wakes once per group, not once per command); with `mark`, every shard then
    /// reports through that WAL sequence number. Waits while a shard's inbox is full
    /// (backpressure), never for a shard to answer.
    pub async fn feed(&self, batches: &[Arc<Vec<Span>>], mark: Option<u64>) {
        let mut lists: Vec<Vec<Command>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        for spans in batches {
            self.route_batch(spans, &mut lists);
        }
        if let Some(seq) = mark {
            for list in &mut lists {
                list.push(Command::Mark(seq));
            }
        }
        for (shard, list) in lists.into_iter().enumerate() {
            if !list.is_empty() {
                let _ = self.shards[shard].send(Command::List(list)).await;
            }
        }
    }

    /// Appends one batch's commands to each shard's list.
    fn route_batch(&self, spans: &Arc<Vec<Span>>, lists: &mut [Vec<Command>]) {
        if let [only] = lists {
            only.push(Command::All(Arc::clone(spans)));
            return;
        }
        let mut per_shard: Vec<Vec<(usize, Vec<TraceId>)>> = vec![Vec::new(); lists.len()];
        let mut consumptions: Vec<Vec<RemoteConsume>> = vec![Vec::new(); lists.len()];
        let mut router = self.router.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // First every pin of the batch, then each span to its trace's final shard, so no span
        // of a moved trace is left behind in the shard it moved from. A moved trace's state
        // reaches its new shard before any of its new spans: the new shard takes it in, in
        // list order, before the spans that follow.
        for span in spans.iter() {
            let route = router.route(span);
            if let Some(from) = route.migrate_from {
                let (tx, rx) = oneshot::channel();
                lists[from].push(Command::Export(span.trace_id, tx));
                lists[route.shard].push(Command::Import(rx));
            }
            for (shard, consume) in route.remote {
                consumptions[shard].push(consume);
            }
        }
        for (index, span) in spans.iter().enumerate() {
            let shard = router.shard_of(span.trace_id);
            let remote: Vec<TraceId> = span
                .links
                .iter()
                .map(|l| l.trace_id)
                .filter(|t| *t != span.trace_id && router.shard_of(*t) != shard)
                .collect();
            per_shard[shard].push((index, remote));
        }
        drop(router);
        for (shard, items) in per_shard.into_iter().enumerate() {
            if !items.is_empty() {
                lists[shard].push(Command::Spans(Assigned { spans: Arc::clone(spans), items }));
            }
        }
        // Consumptions owned elsewhere follow the spans that caused them.
        for (shard, consume) in consumptions.into_iter().enumerate() {
            if !consume.is_empty() {
                lists[shard].push(Command::Consume(consume));
            }
        }
    }

    fn owner(&self, trace_id: TraceId) -> usize {
        self.router.lock().unwrap_or_else(std::sync::PoisonError::into_inner).shard_of(trace_id)
    }

    async fn ask<T>(
        &self,
        shard: usize,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.shards[shard].send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    pub async fn process(&self, trace_id: TraceId) -> Option<ProcessView> {
        let owner = self.owner(trace_id);
        if let Some(view) = self.ask(owner, |tx| Command::Process(trace_id, tx)).await.flatten() {
            return Some(view);
        }
        // A process on its way between shards: look everywhere else once.
        for shard in (0..self.shards.len()).filter(|s| *s != owner) {
            if let Some(view) = self.ask(shard, |tx| Command::Process(trace_id, tx)).await.flatten()
            {
                return Some(view);
            }
        }
        None
    }

    pub async fn stats(&self) -> EngineStats {
        let mut total = EngineStats::default();
        for shard in 0..self.shards.len() {
            if let Some(s) = self.ask(shard, Command::Stats).await {
                total.add(&s);
            }
        }
        total
    }

    /// Aggregates per process type over every shard, rates over the last `window_minutes`.
    pub async fn process_types(&self, window_minutes: u64) -> Vec<TypeSummary> {
        summarize_types(self.type_stats().await, now_nanos(), window_minutes)
    }

    /// Every shard's raw, mergeable aggregates per process type.
    pub async fn type_stats(&self) -> Vec<NamedTypeStats> {
        let mut all = Vec::new();
        for shard in 0..self.shards.len() {
            all.extend(self.ask(shard, Command::Types).await.unwrap_or_default());
        }
        all
    }

    pub async fn graph(&self, window_minutes: u64) -> Option<Graph> {
        let mut merged = GraphStats::default();
        for shard in 0..self.shards.len() {
            merged.merge(self.ask(shard, Command::Graph).await?);
        }
        Some(summarize_graph(merged, now_nanos(), window_minutes))
    }

    /// Tells every shard that all batches through WAL record `seq` have been fed; each
    /// reports its changes with that mark once it has processed them.
    pub async fn mark(&self, seq: u64) {
        for shard in &self.shards {
            let _ = shard.send(Command::Mark(seq)).await;
        }
    }
}

/// Nanoseconds since the Unix epoch, the engine's time base (as span timestamps).
fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Starts `shards` engine threads (at least one).
pub fn spawn(
    config: EngineConfig,
    specs: Vec<threadline_config::spec::ProcessSpec>,
    shards: usize,
    reports: mpsc::Sender<Report>,
) -> std::io::Result<(EngineHandle, Vec<std::thread::JoinHandle<()>>)> {
    let shards = shards.max(1);
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..shards {
        let (tx, rx) = mpsc::channel(INBOX);
        senders.push(tx);
        receivers.push(rx);
    }
    // Shards reach each other through weak senders, so the handles alone keep them alive.
    let peers: Vec<mpsc::WeakSender<Command>> =
        senders.iter().map(mpsc::Sender::downgrade).collect();
    let mut threads = Vec::new();
    for (index, mut rx) in receivers.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
        let (config, specs, peers, reports) =
            (config.clone(), specs.clone(), peers.clone(), reports.clone());
        let thread = std::thread::Builder::new().name(format!("threadline-engine-{index}")).spawn(
            move || {
                let mut engine = Engine::new(config);
                engine.load_specs(&specs);
                runtime.block_on(async move {
                    let mut last_report = tokio::time::Instant::now();
                    loop {
                        let mut sleep = match engine.next_wake() {
                            Some(at) => Duration::from_nanos(
                                at.div_ceil(TIMER_TICK_NANOS)
                                    .saturating_mul(TIMER_TICK_NANOS)
                                    .saturating_sub(now_nanos()),
                            ),
                            None => Duration::from_secs(3600),
                        };
                        if engine.has_changes() {
                            sleep = sleep.min(REPORT_EVERY.saturating_sub(last_report.elapsed()));
                        }
                        let mut mark = None;
                        tokio::select! {
                            command = rx.recv() => {
                                let Some(command) = command else { break };
                                match command {
                                    Command::List(list) => {
                                        for command in list {
                                            run(&mut engine, command, &mut mark).await;
                                        }
                                    }
                                    command => run(&mut engine, command, &mut mark).await,
                                }
                            }
                            () = tokio::time::sleep(sleep) => engine.advance(now_nanos()),
                        }
                        for (system, destination, group) in engine.drain_learned() {
                            for (peer, sender) in peers.iter().enumerate() {
                                if peer != index {
                                    send_to(
                                        sender,
                                        Command::Learn(
                                            system.clone(),
                                            destination.clone(),
                                            group.clone(),
                                        ),
                                    );
                                }
                            }
                        }
                        let due = engine.has_changes() && last_report.elapsed() >= REPORT_EVERY;
                        if mark.is_some() || due {
                            let changes = engine.drain_changes();
                            let events = engine.drain_events();
                            let report = Report { shard: index, mark, changes, events };
                            // Waits while the writer is behind: backpressure up to ingest.
                            if reports.send(report).await.is_err() {
                                break;
                            }
                            last_report = tokio::time::Instant::now();
                        }
                    }
                });
            },
        )?;
        threads.push(thread);
    }
    let router = Arc::new(Mutex::new(Router::new(shards)));
    Ok((EngineHandle { router, shards: senders }, threads))
}

/// Sends to another shard without blocking this one (two full inboxes must not wait on each
/// other): the send finishes on this shard's runtime.
fn send_to(peer: &mpsc::WeakSender<Command>, command: Command) {
    if let Some(sender) = peer.upgrade() {
        tokio::spawn(async move {
            let _ = sender.send(command).await;
        });
    }
}

/// Runs one command; a `Mark` is noted for the report that follows.
async fn run(engine: &mut Engine, command: Command, mark: &mut Option<u64>) {
    match command {
        Command::Mark(seq) => *mark = Some(seq),
        Command::Import(exported) => {
            if let Ok(Some(exported)) = exported.await {
                engine.import(exported, now_nanos());
            }
        }
        command => handle(engine, command),
    }
}

fn handle(engine: &mut Engine, command: Command) {
    let now = now_nanos();
    match command {
        Command::Spans(Assigned { spans, items }) => {
            for (index, remote) in items {
                engine.ingest_with(&spans[index], now, &|t| remote.contains(&t));
            }
        }
        Command::All(spans) => {
            for span in spans.iter() {
                engine.ingest(span, now);
            }
        }
        Command::Export(trace_id, reply) => {
            let _ = reply.send(engine.export_trace(trace_id));
        }
        Command::Consume(consumptions) => {
            for consume in &consumptions {
                engine.consume_remote(consume, now);
            }
        }
        Command::Learn(system, destination, group) => {
            engine.declare_subscribers(&system, &destination, &[group.as_str()]);
        }
        Command::Process(trace_id, reply) => {
            engine.advance(now);
            let _ = reply.send(engine.process(trace_id));
        }
        Command::Stats(reply) => {
            let _ = reply.send(engine.stats());
        }
        Command::Types(reply) => {
            engine.advance(now);
            let _ = reply.send(engine.type_stats());
        }
        Command::Graph(reply) => {
            let _ = reply.send(engine.graph_stats());
        }
        // Run by `run`; a list inside a list is never made.
        Command::Mark(_) | Command::Import(_) | Command::List(_) => {}
    }
}
