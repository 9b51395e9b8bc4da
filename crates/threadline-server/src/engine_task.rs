//! Runs the process engine as shards, one thread each, driven by the wall clock (ADR 004).
//! A router in the handle sends each span to the shard owning its process; shards hand
//! provisional processes and remote consumptions to each other through their inboxes and tell
//! each other the subscribers they learn. Each shard's inbox is bounded. Every few
//! milliseconds, and at each mark, a shard reports its changed processes and its events to the
//! process writer through a bounded channel. Queries by trace go to the owning shard; by key
//! and aggregates go to every shard and are merged.

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
/// How often a shard reports its changes when it has any.
const REPORT_EVERY: Duration = Duration::from_millis(10);

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
    /// Give up the process holding this trace, for another shard.
    Export(TraceId, oneshot::Sender<Option<Exported>>),
    Import(Box<Exported>),
    Consume(RemoteConsume),
    Learn(String, String, String),
    Process(TraceId, oneshot::Sender<Option<ProcessView>>),
    Stats(oneshot::Sender<EngineStats>),
    Types(oneshot::Sender<Vec<NamedTypeStats>>),
    Graph(oneshot::Sender<GraphStats>),
    /// Every batch up to this WAL sequence number has been fed: report through it.
    Mark(u64),
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
    /// Routes a batch to its shards; waits while a shard's inbox is full (backpressure).
    pub async fn feed(&self, spans: Arc<Vec<Span>>) {
        let mut per_shard: Vec<Vec<(usize, Vec<TraceId>)>> = vec![Vec::new(); self.shards.len()];
        let mut migrations = Vec::new();
        let mut consumptions = Vec::new();
        {
            let mut router = self.router.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // First every pin of the batch, then each span to its trace's final shard, so no
            // span of a moved trace is left behind in the shard it moved from.
            for span in spans.iter() {
                let route = router.route(span);
                if let Some(from) = route.migrate_from {
                    migrations.push((from, route.shard, span.trace_id));
                }
                consumptions.extend(route.remote);
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
        }
        // A moved trace's state reaches its new shard before any of its new spans.
        for (from, to, trace_id) in migrations {
            let exported = self.ask(from, |tx| Command::Export(trace_id, tx)).await.flatten();
            if let Some(exported) = exported {
                let _ = self.shards[to].send(Command::Import(Box::new(exported))).await;
            }
        }
        for (shard, items) in per_shard.into_iter().enumerate() {
            if !items.is_empty() {
                let assigned = Assigned { spans: Arc::clone(&spans), items };
                let _ = self.shards[shard].send(Command::Spans(assigned)).await;
            }
        }
        // Consumptions owned elsewhere follow the spans that caused them.
        for (shard, consume) in consumptions {
            let _ = self.shards[shard].send(Command::Consume(consume)).await;
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
                            Some(at) => Duration::from_nanos(at.saturating_sub(now_nanos())),
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
                                    Command::Mark(seq) => mark = Some(seq),
                                    command => handle(&mut engine, command),
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

fn handle(engine: &mut Engine, command: Command) {
    let now = now_nanos();
    match command {
        Command::Spans(Assigned { spans, items }) => {
            for (index, remote) in items {
                engine.ingest_with(&spans[index], now, &|t| remote.contains(&t));
            }
        }
        Command::Export(trace_id, reply) => {
            let _ = reply.send(engine.export_trace(trace_id));
        }
        Command::Import(exported) => engine.import(*exported, now),
        Command::Consume(consume) => engine.consume_remote(&consume, now),
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
        Command::Mark(_) => {}
    }
}
