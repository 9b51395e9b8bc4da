//! The composition root: the only place that creates runtimes, binds listeners and wires
//! receivers → queue → store → API. [`run`] is what `threadline serve` calls; [`Server`] lets
//! tests and other commands start and stop a server in-process.
//!
//! Lifecycle: every listener is bound before anything is served (a bad address fails start-up
//! with a clear error); on shutdown `/readyz` turns 503, the ingest listeners stop accepting
//! and finish their in-flight requests, the queue drains into the store, then the API stops.

mod alerts;
mod api;
mod auth;
mod engine_task;
mod jaeger;
mod metrics;
mod pipeline;
mod process_writer;
mod sql;
mod tls;
mod ui;

pub use sql::{SqlFactory, SqlFailure, SqlFailureKind, SqlService};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use threadline_config::Config;
use threadline_ingest::{IngestLimits, IngestStats, Receivers};
use threadline_storage::store::{Store, StoreOptions};
use threadline_storage::wal::{FsyncPolicy, WalOptions};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("binding the {listener} listener to {addr}")]
    Bind {
        listener: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] threadline_storage::StoreError),
    #[error("starting the runtime")]
    Runtime(#[source] std::io::Error),
    #[error("{listener} listener failed: {message}")]
    Serve { listener: &'static str, message: String },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// The addresses the server actually listens on (port 0 in the config picks a free port).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub zipkin: SocketAddr,
    pub api: SocketAddr,
}

/// What shutdown did, for the final log line.
#[derive(Debug, Clone, Copy)]
pub struct ShutdownReport {
    pub accepted_spans: u64,
    pub drained_batches: u64,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    addresses: Addresses,
    shutdown: CancellationToken,
    ingest_tasks: Vec<(&'static str, JoinHandle<Result<(), String>>)>,
    api_stop: CancellationToken,
    api_task: JoinHandle<Result<(), String>>,
    pipeline: std::thread::JoinHandle<u64>,
    maintenance: JoinHandle<()>,
    maintenance_stop: CancellationToken,
    writer: JoinHandle<()>,
    engine_threads: Vec<std::thread::JoinHandle<()>>,
    stats: Arc<IngestStats>,
    ready: Arc<AtomicBool>,
    store: Arc<Store>,
    sql_runtime: Option<tokio::runtime::Runtime>,
}

impl Server {
    /// Opens the data directory (replaying what the WAL holds), binds every listener and
    /// starts serving.
    pub async fn start(
        config: &Config,
        data_dir: &Path,
        specs: &threadline_config::spec::SpecFile,
        sql: Option<&SqlFactory>,
    ) -> Result<Self, ServerError> {
        let (store, opened) = Store::open(data_dir, store_options(&config.storage)?).await?;
        let store = Arc::new(store);
        let resumable = store.running_processes()?;
        tracing::info!(
            resumed_processes = resumable.len(),
            replayed_records = opened.replayed_records,
            replayed_spans = opened.replayed_spans,
            wal_damage = opened.wal_damage.len(),
            unreadable_blocks = opened.unreadable_blocks.len(),
            index_rebuilt_blocks = opened.rebuilt_blocks,
            "storage opened"
        );
        if let Some(problem) = &opened.index_problem {
            tracing::warn!(problem = %problem, "the index was rebuilt");
        }
        let listen = &config.listen;
        let otlp_grpc = bind("otlp_grpc", listen.otlp_grpc).await?;
        let otlp_http = bind("otlp_http", listen.otlp_http).await?;
        let zipkin = bind("zipkin", listen.zipkin).await?;
        let api = bind("api", listen.api).await?;
        let addresses = Addresses {
            otlp_grpc: local_addr(&otlp_grpc, "otlp_grpc", listen.otlp_grpc)?,
            otlp_http: local_addr(&otlp_http, "otlp_http", listen.otlp_http)?,
            zipkin: local_addr(&zipkin, "zipkin", listen.zipkin)?,
            api: local_addr(&api, "api", listen.api)?,
        };

        let retry_after = Duration::from_secs(u64::from(config.ingest.retry_after_secs));
        let (queue, queue_rx) =
            threadline_ingest::queue::span_queue(config.ingest.queue_capacity_spans, retry_after);
        let stats = Arc::new(IngestStats::default());
        let limits = IngestLimits {
            max_request_bytes: config.ingest.max_request_bytes,
            max_decompressed_bytes: config.ingest.max_decompressed_bytes,
            max_concurrent_requests: config.ingest.max_concurrent_requests,
            retry_after,
        };
        let queue_monitor = queue.monitor();
        let receivers = Receivers::new(limits, queue, Arc::clone(&stats));
        let shards = match config.engine.shards {
            0 => default_shards(
                std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            ),
            n => n,
        };
        let recovery_mark = (!opened.replayed.is_empty() || !resumable.is_empty())
            .then(|| opened.replayed.last().map_or(opened.applied_seq, |(seq, _)| *seq));
        let (reports, publisher, writer) =
            process_writer::spawn(Arc::clone(&store), shards, recovery_mark);
        let (engine, engine_threads) = engine_task::spawn(
            engine_config(&config.engine),
            specs.processes.clone(),
            shards,
            reports,
        )
        .map_err(ServerError::Runtime)?;
        resume(&store, &engine, &resumable, &opened.replayed).await;
        // What the WAL held goes to the engine before anything new.
        for (_, batch) in opened.replayed {
            engine.feed(&[batch], None).await;
        }
        if let Some(mark) = recovery_mark {
            engine.mark(mark).await;
        }
        let pipeline = {
            let (store, engine) = (Arc::clone(&store), engine.clone());
            let runtime = tokio::runtime::Handle::current();
            std::thread::Builder::new()
                .name("threadline-pipeline".into())
                .spawn(move || pipeline::run(queue_rx, store, engine, runtime))
                .map_err(ServerError::Runtime)?
        };
        let maintenance_stop = CancellationToken::new();
        let maintenance = tokio::spawn(maintain(Arc::clone(&store), maintenance_stop.clone()));
        let alert_log = alerts::AlertLog::default();
        alerts::start(
            &config.alerts,
            &config.sinks,
            publisher.subscribe(),
            maintenance_stop.clone(),
            alert_log.clone(),
        );

        let shutdown = CancellationToken::new();
        let ready = Arc::new(AtomicBool::new(false));
        let mut ingest_tasks = Vec::new();
        let security = &config.security;
        let grpc_service = tonic::service::interceptor::InterceptedService::new(
            threadline_ingest::grpc::otlp_service(receivers.clone()),
            auth::grpc(security.ingest_token.as_deref().map(Arc::from)),
        );
        let tls = match (&config.tls.cert_file, &config.tls.key_file) {
            (Some(cert), Some(key)) => Some(tls::load(cert, key)?),
            _ => None,
        };
        let mut grpc_server = tonic::transport::Server::builder();
        if let Some(tls) = &tls {
            let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
            grpc_server = grpc_server
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .map_err(|e| tls::TlsError::Config(e.to_string()))?;
        }
        let stop = shutdown.clone();
        ingest_tasks.push((
            "otlp_grpc",
            tokio::spawn(async move {
                grpc_server
                    .layer(tower::util::MapResponseLayer::new(
                        threadline_ingest::grpc::oversize_is_not_retryable::<tonic::body::Body>,
                    ))
                    .add_service(grpc_service)
                    .serve_with_incoming_shutdown(
                        tonic::transport::server::TcpIncoming::from(otlp_grpc),
                        stop.cancelled_owned(),
                    )
                    .await
                    .map_err(|e| e.to_string())
            }),
        ));
        ingest_tasks.push((
            "otlp_http",
            serve_http(
                otlp_http,
                auth::guard(
                    threadline_ingest::http::otlp_router(receivers.clone()),
                    security.ingest_token.as_deref(),
                ),
                shutdown.clone(),
                tls.as_ref(),
            ),
        ));
        ingest_tasks.push((
            "zipkin",
            serve_http(
                zipkin,
                auth::guard(
                    threadline_ingest::http::zipkin_router(receivers),
                    security.ingest_token.as_deref(),
                ),
                shutdown.clone(),
                tls.as_ref(),
            ),
        ));
        // Queries get two threads of their own, so a heavy one never slows ingest or the API.
        let sql_runtime = match sql {
            Some(_) => Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("threadline-sql")
                    .enable_time()
                    .build()
                    .map_err(ServerError::Runtime)?,
            ),
            None => None,
        };
        let sql = sql.zip(sql_runtime.as_ref()).map(|(factory, runtime)| {
            (factory.0)(Arc::clone(&store), &config.query, runtime.handle().clone())
        });
        let api_stop = CancellationToken::new();
        let api_state = api::ApiState {
            stopping: api_stop.clone(),
            alerts: alert_log,
            specs: Arc::new(specs.processes.clone()),
            sql,
            store: Arc::clone(&store),
            events: publisher,
            queue: queue_monitor,
            stats: Arc::clone(&stats),
            ready: Arc::clone(&ready),
            engine,
            owners: Arc::new(
                specs
                    .processes
                    .iter()
                    .filter_map(|p| Some((p.name.clone(), p.owner.clone()?)))
                    .collect(),
            ),
        };
        let api_task = serve_http(
            api,
            auth::guard(api::router(api_state), security.api_token.as_deref()),
            api_stop.clone(),
            tls.as_ref(),
        );

        ready.store(true, Ordering::SeqCst);
        for (listener, addr) in [
            ("otlp_grpc", addresses.otlp_grpc),
            ("otlp_http", addresses.otlp_http),
            ("zipkin", addresses.zipkin),
            ("api", addresses.api),
        ] {
            tracing::info!(listener, %addr, "listening");
        }
        tracing::info!(data_dir = %data_dir.display(), engine_shards = shards, "threadline is ready");
        Ok(Self {
            addresses,
            shutdown,
            ingest_tasks,
            api_stop,
            api_task,
            pipeline,
            maintenance,
            maintenance_stop,
            writer,
            engine_threads,
            stats,
            ready,
            store,
            sql_runtime,
        })
    }

    pub fn addresses(&self) -> Addresses {
        self.addresses
    }

    /// A token whose cancellation starts shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits for the shutdown token, then shuts down in order and drains the queue.
    pub async fn wait(self) -> Result<ShutdownReport, ServerError> {
        self.shutdown.cancelled().await;
        self.ready.store(false, Ordering::SeqCst);
        tracing::info!("shutting down: finishing in-flight requests and draining the queue");
        let mut failure = None;
        for (listener, task) in self.ingest_tasks {
            match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(message))) => failure = Some(ServerError::Serve { listener, message }),
                Ok(Err(join)) => {
                    failure = Some(ServerError::Serve { listener, message: join.to_string() });
                }
                Err(_) => tracing::warn!(listener, "in-flight requests did not finish in time"),
            }
        }
        // Every sender is gone with the ingest listeners, so the pipeline ends once drained.
        let pipeline = self.pipeline;
        let drained_batches =
            tokio::task::spawn_blocking(move || pipeline.join().unwrap_or(0)).await.unwrap_or(0);
        self.maintenance_stop.cancel();
        let _ = self.maintenance.await;
        self.store.collect_garbage(true).await;
        // Everything is in the WAL already; a last block makes the next start quicker.
        if let Err(e) = self.store.flush().await {
            tracing::warn!(error = %threadline_core::error::chain(&e), "writing the last block failed; the WAL keeps it");
        }
        self.api_stop.cancel();
        if let Ok(Err(message)) = self.api_task.await {
            failure = Some(ServerError::Serve { listener: "api", message });
        }
        // Queries still running are cancelled; dropping a runtime here would block.
        if let Some(runtime) = self.sql_runtime {
            runtime.shutdown_background();
        }
        // The pipeline and the API held the last engine handles: the shards end, and with
        // their last reports written, the writer.
        for thread in self.engine_threads {
            if !matches!(tokio::task::spawn_blocking(move || thread.join()).await, Ok(Ok(()))) {
                tracing::error!("an engine shard panicked");
            }
        }
        let _ = self.writer.await;
        let report = ShutdownReport {
            accepted_spans: self.stats.accepted_spans.load(Ordering::Relaxed),
            drained_batches,
        };
        tracing::info!(
            accepted_spans = report.accepted_spans,
            batches = report.drained_batches,
            "shutdown complete"
        );
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }
}

/// Feeds the engine the stored spans of every process that was running when the server last
/// stopped, so they resume; spans still to be replayed from the WAL are left to that replay.
async fn resume(
    store: &Store,
    engine: &engine_task::EngineHandle,
    running: &[threadline_core::id::TraceId],
    replayed: &[(u64, Arc<Vec<threadline_core::span::Span>>)],
) {
    if running.is_empty() {
        return;
    }
    let pending: std::collections::HashSet<_> = replayed
        .iter()
        .flat_map(|(_, spans)| {
            spans.iter().map(|s| (s.trace_id, s.span_id, s.start_time_unix_nano))
        })
        .collect();
    let mut spans_fed = 0usize;
    for id in running {
        let row = match store.process(*id) {
            Ok(Some(row)) => row,
            Ok(None) => continue,
            Err(e) => {
                tracing::error!(process = %id, error = %threadline_core::error::chain(&e), "cannot resume a process");
                continue;
            }
        };
        let mut spans = Vec::new();
        for trace in &row.traces {
            match store.trace(*trace).await {
                Ok(found) => spans.extend(found.into_iter().filter(|s| {
                    !pending.contains(&(s.trace_id, s.span_id, s.start_time_unix_nano))
                })),
                Err(e) => {
                    tracing::error!(trace = %trace, error = %threadline_core::error::chain(&e), "cannot read a trace to resume");
                }
            }
        }
        spans_fed += spans.len();
        if !spans.is_empty() {
            engine.feed(&[Arc::new(spans)], None).await;
        }
    }
    tracing::info!(processes = running.len(), spans = spans_fed, "running processes resumed");
}

/// The store's settings from the `[storage]` section of the config.
fn store_options(
    storage: &threadline_config::Storage,
) -> Result<StoreOptions, threadline_storage::StoreError> {
    use threadline_config::Fsync;
    let blocks = match &storage.blocks_url {
        Some(url) => {
            let options: Vec<(String, String)> =
                storage.blocks_options.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            Some(threadline_storage::objects::open(url, &options)?)
        }
        None => None,
    };
    Ok(StoreOptions {
        wal: WalOptions {
            segment_bytes: storage.wal_segment_bytes,
            fsync: match storage.fsync {
                Fsync::Always => FsyncPolicy::Always,
                Fsync::Interval => {
                    FsyncPolicy::Interval(Duration::from_millis(storage.fsync_interval_ms))
                }
                Fsync::Never => FsyncPolicy::Never,
            },
        },
        blocks,
        flush_spans: storage.flush_spans,
        flush_interval: Duration::from_secs(storage.flush_interval_secs),
        max_head_spans: storage.head_limit(),
        retention: Duration::from_secs(storage.retention_hours.saturating_mul(3600)),
        max_block_bytes: (storage.max_block_bytes > 0).then_some(storage.max_block_bytes),
        compact_below_bytes: storage.compact_below_bytes,
        index_cache_bytes: usize::try_from(storage.index_cache_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        track_applied: true,
        process_index: threadline_storage::store::RunLimits::default(),
        after_compaction_commit: None,
    })
}

/// Background upkeep of the store: writes the head as a block when due, fsyncs the WAL on
/// the interval policy, and applies retention once a minute; merging small blocks runs in a
/// task of its own every 10 seconds, so a long merge never holds back writing the head.
/// Failures are logged and retried on the next tick; none of this blocks ingest.
async fn maintain(store: Arc<Store>, stop: CancellationToken) {
    const TICK: Duration = Duration::from_millis(100);
    const RETENTION_EVERY: Duration = Duration::from_secs(60);
    let compaction = tokio::spawn(compact_periodically(Arc::clone(&store), stop.clone()));
    let mut last_retention = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(TICK) => {}
        }
        if let Err(e) = store.sync_wal_if_due() {
            tracing::error!(error = %threadline_core::error::chain(&e), "WAL fsync failed");
        }
        store.collect_garbage(false).await;
        if store.flush_due()
            && let Err(e) = store.flush().await
        {
            tracing::error!(error = %threadline_core::error::chain(&e), "writing a block failed; retrying");
        }
        if last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = tokio::time::Instant::now();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            match store.enforce_retention(now).await {
                Ok(0) => {}
                Ok(deleted) => tracing::info!(blocks = deleted, "retention deleted blocks"),
                Err(e) => {
                    tracing::error!(error = %threadline_core::error::chain(&e), "retention failed");
                }
            }
        }
    }
    let _ = compaction.await;
}

/// Merges small blocks every 10 seconds until `stop`.
async fn compact_periodically(store: Arc<Store>, stop: CancellationToken) {
    const COMPACT_EVERY: Duration = Duration::from_secs(10);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(COMPACT_EVERY) => {}
        }
        match store.compact().await {
            Ok(0) => {}
            Ok(merged) => tracing::info!(blocks = merged, "small blocks compacted"),
            Err(e) => {
                tracing::error!(error = %threadline_core::error::chain(&e), "compaction failed");
            }
        }
    }
}

/// Cores per engine shard by default. A shard's engine takes a span in about a fifth of the
/// CPU time the rest of the server spends on it (decoding, WAL, blocks, process table), so one
/// shard keeps up with four cores' worth of ingest; a second shard on fewer cores only adds
/// routing between shards and wakeups (`docs/benchmarks.md`: 7-12% more spans per CPU-second
/// with one shard than two on two cores).
const CORES_PER_SHARD: usize = 4;

/// Engine shards for `[engine] shards = 0`: one per [`CORES_PER_SHARD`] cores, at least one.
fn default_shards(cores: usize) -> usize {
    cores.div_ceil(CORES_PER_SHARD).max(1)
}

/// The engine's settings from the `[engine]` section of the config.
fn engine_config(engine: &threadline_config::Engine) -> threadline_engine::config::EngineConfig {
    use threadline_engine::config::{EngineConfig, MILLISECOND, SECOND, TypePolicy};
    EngineConfig {
        default_policy: TypePolicy {
            sla_nanos: engine.default_sla_secs.map(|s| s.saturating_mul(SECOND)),
            stuck_after_nanos: engine.stuck_after_secs.saturating_mul(SECOND),
            idle_timeout_nanos: engine.idle_timeout_secs.saturating_mul(SECOND),
        },
        settle_nanos: engine.settle_ms.saturating_mul(MILLISECOND),
        join_window_nanos: engine.join_window_ms.saturating_mul(MILLISECOND),
        max_in_flight: engine.max_in_flight,
        retain_finished_nanos: engine.retain_finished_secs.saturating_mul(SECOND),
    }
}

async fn bind(listener: &'static str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { listener, addr, source })
}

fn local_addr(
    socket: &TcpListener,
    listener: &'static str,
    addr: SocketAddr,
) -> Result<SocketAddr, ServerError> {
    socket.local_addr().map_err(|source| ServerError::Bind { listener, addr, source })
}

fn serve_http(
    listener: TcpListener,
    router: axum::Router,
    stop: CancellationToken,
    tls: Option<&tls::Tls>,
) -> JoinHandle<Result<(), String>> {
    match tls {
        None => tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
                .map_err(|e| e.to_string())
        }),
        Some(tls) => {
            let listener = tls::TlsListener { inner: listener, acceptor: tls.acceptor.clone() };
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                    .map_err(|e| e.to_string())
            })
        }
    }
}

/// Settings for [`run`]: the validated config and the resolved data directory.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub data_dir: PathBuf,
    /// Validated process specs (from `config.specs`).
    pub specs: threadline_config::spec::SpecFile,
    /// The SQL engine, when the build has one.
    pub sql: Option<SqlFactory>,
}

/// Work to run beside the server once it listens (the demo's shop): given the addresses and
/// the token cancelled when shutdown starts.
pub type Companion = Box<
    dyn FnOnce(Addresses, CancellationToken) -> futures_util::future::BoxFuture<'static, ()> + Send,
>;

/// Runs a server until SIGINT or SIGTERM, then shuts it down cleanly. Creates the runtime.
pub fn run(settings: &Settings) -> Result<ShutdownReport, ServerError> {
    run_with(settings, None)
}

/// [`run`], with `companion` running beside the server until shutdown starts; shutdown waits
/// for it to finish.
pub fn run_with(
    settings: &Settings,
    companion: Option<Companion>,
) -> Result<ShutdownReport, ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("threadline")
        .build()
        .map_err(ServerError::Runtime)?;
    runtime.block_on(async {
        let server = Server::start(
            &settings.config,
            &settings.data_dir,
            &settings.specs,
            settings.sql.as_ref(),
        )
        .await?;
        // A signal stops the companion first (so it sends nothing into a closing server),
        // then the server.
        let signal = CancellationToken::new();
        let companion =
            companion.map(|start| tokio::spawn(start(server.addresses(), signal.clone())));
        let stop = signal.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            stop.cancel();
        });
        let server_token = server.shutdown_token();
        tokio::spawn(async move {
            signal.cancelled().await;
            if let Some(task) = companion {
                let _ = task.await;
            }
            server_token.cancel();
        });
        server.wait().await
    })
}

async fn wait_for_signal() {
    let mut terminate = match tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::terminate(),
    ) {
        Ok(signal) => signal,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "received signal"),
        _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "received signal"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_engine_shard_per_four_cores_and_never_none() {
        let shards: Vec<usize> = [0, 1, 2, 4, 5, 8, 9, 64].map(super::default_shards).to_vec();
        assert_eq!(shards, [1, 1, 1, 1, 2, 2, 3, 16]);
    }
}
