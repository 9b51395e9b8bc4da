//! Runs the process engine on a thread of its own, driven by the wall clock: spans come in
//! through a bounded channel, timers fire when due, events go out on a bounded broadcast
//! channel, and queries are answered in turn with the rest, so the engine itself stays a
//! single-threaded, deterministic state machine.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use threadline_core::id::TraceId;
use threadline_core::span::Span;
use threadline_engine::config::EngineConfig;
use threadline_engine::engine::{Engine, EngineStats, Graph, ProcessView, TypeSummary};
use threadline_engine::event::Event;
use tokio::sync::{broadcast, mpsc, oneshot};

/// Batches waiting for the engine, at most; the pipeline waits when it is full.
const INBOX_BATCHES: usize = 256;
/// Events kept for subscribers that fall behind; past it they are told how many they missed.
const EVENT_BUFFER: usize = 16_384;

enum Command {
    Spans(Arc<Vec<Span>>),
    Process(TraceId, oneshot::Sender<Option<ProcessView>>),
    ByKey(String, String, oneshot::Sender<Vec<ProcessView>>),
    Stats(oneshot::Sender<EngineStats>),
    Types(u64, oneshot::Sender<Vec<TypeSummary>>),
    Graph(oneshot::Sender<Graph>),
}

/// Talks to the engine thread. Cloned freely; the thread ends when every handle is gone.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    inbox: mpsc::Sender<Command>,
    events: broadcast::Sender<Arc<Event>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Spans(_) => "Spans",
            Command::Process(..) => "Process",
            Command::ByKey(..) => "ByKey",
            Command::Stats(_) => "Stats",
            Command::Types(..) => "Types",
            Command::Graph(_) => "Graph",
        })
    }
}

impl EngineHandle {
    /// Feeds a batch; waits while the engine's inbox is full (backpressure to ingest).
    pub async fn feed(&self, spans: Arc<Vec<Span>>) {
        let _ = self.inbox.send(Command::Spans(spans)).await;
    }

    pub async fn process(&self, trace_id: TraceId) -> Option<ProcessView> {
        let (tx, rx) = oneshot::channel();
        self.inbox.send(Command::Process(trace_id, tx)).await.ok()?;
        rx.await.ok().flatten()
    }

    pub async fn by_key(&self, key: String, value: String) -> Vec<ProcessView> {
        let (tx, rx) = oneshot::channel();
        if self.inbox.send(Command::ByKey(key, value, tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    pub async fn stats(&self) -> EngineStats {
        let (tx, rx) = oneshot::channel();
        if self.inbox.send(Command::Stats(tx)).await.is_err() {
            return EngineStats::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Aggregates per process type, rates over the last `window_minutes`.
    pub async fn process_types(&self, window_minutes: u64) -> Vec<TypeSummary> {
        let (tx, rx) = oneshot::channel();
        if self.inbox.send(Command::Types(window_minutes, tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    pub async fn graph(&self) -> Option<Graph> {
        let (tx, rx) = oneshot::channel();
        self.inbox.send(Command::Graph(tx)).await.ok()?;
        rx.await.ok()
    }

    /// A live feed of events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }
}

/// Nanoseconds since the Unix epoch, the engine's time base (as span timestamps).
fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Starts the engine thread.
pub fn spawn(
    config: EngineConfig,
    specs: Vec<threadline_config::spec::ProcessSpec>,
) -> std::io::Result<(EngineHandle, std::thread::JoinHandle<()>)> {
    let (inbox, mut rx) = mpsc::channel(INBOX_BATCHES);
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let publish = events.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    let thread = std::thread::Builder::new().name("threadline-engine".into()).spawn(move || {
        let mut engine = Engine::new(config);
        engine.load_specs(&specs);
        runtime.block_on(async move {
            loop {
                let sleep = match engine.next_wake() {
                    Some(at) => Duration::from_nanos(at.saturating_sub(now_nanos())),
                    None => Duration::from_secs(3600),
                };
                tokio::select! {
                    command = rx.recv() => {
                        let Some(command) = command else { break };
                        handle(&mut engine, command);
                    }
                    () = tokio::time::sleep(sleep) => engine.advance(now_nanos()),
                }
                for event in engine.drain_events() {
                    // No subscriber is not an error: events are also counted elsewhere.
                    let _ = publish.send(Arc::new(event));
                }
            }
        });
    })?;
    Ok((EngineHandle { inbox, events }, thread))
}

fn handle(engine: &mut Engine, command: Command) {
    match command {
        Command::Spans(spans) => {
            let now = now_nanos();
            for span in spans.iter() {
                engine.ingest(span, now);
            }
        }
        Command::Process(trace_id, reply) => {
            engine.advance(now_nanos());
            let _ = reply.send(engine.process(trace_id));
        }
        Command::ByKey(key, value, reply) => {
            engine.advance(now_nanos());
            let views = engine
                .find_by_key(&key, &value)
                .into_iter()
                .filter_map(|id| engine.process(id))
                .collect();
            let _ = reply.send(views);
        }
        Command::Stats(reply) => {
            let _ = reply.send(engine.stats());
        }
        Command::Types(window, reply) => {
            let now = now_nanos();
            engine.advance(now);
            let _ = reply.send(engine.type_summaries(now, window));
        }
        Command::Graph(reply) => {
            let _ = reply.send(engine.graph());
        }
    }
}
