//! SQL over stored spans and processes, with DataFusion; the only crate that depends on it, so
//! the rest of the workspace compiles without it.
//!
//! [`SqlEngine::run`] plans and runs one read-only statement over two tables, `spans` (the
//! span blocks and the spans not yet in a block) and `processes` (the process table, kept
//! current by the engine), on a runtime the caller gives it (the server's SQL runtime, so
//! that a heavy query never slows ingest or the API). Every query is bounded: rows returned, run time, operator memory, and how many
//! run at once. The table schemas are documented in `docs/sql.md`.

mod convert;
mod json;
mod processes;
mod pushdown;
mod spans;

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::common::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures_util::StreamExt as _;
use threadline_api_types::{SqlColumn, SqlResponse};
use threadline_storage::store::Store;
use tokio::sync::Semaphore;

/// Limits on every query.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    /// Rows returned at most; a longer result is cut and marked truncated.
    pub max_rows: usize,
    /// Planning and running together; a query still running then is cancelled.
    pub timeout: Duration,
    /// Memory the operators of one query may hold (sorts, joins, aggregations).
    pub memory_bytes: usize,
    /// Queries running at once; more are refused.
    pub max_concurrent: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            max_rows: 10_000,
            timeout: Duration::from_secs(10),
            memory_bytes: 512 << 20,
            max_concurrent: 4,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The statement does not parse or plan, is not a query, or fails on its own data
    /// (a bad cast, a division by zero).
    #[error("{0}")]
    Invalid(String),
    /// The query needed more memory than `query.sql_memory_mb` allows.
    #[error("{0}")]
    TooExpensive(String),
    #[error("the query ran longer than the {} s limit (query.sql_timeout_secs) and was cancelled", .0.as_secs())]
    Timeout(Duration),
    #[error("{0} queries are running already (query.sql_max_concurrent); try again shortly")]
    Busy(usize),
    /// Reading storage failed, or a fault of the engine itself.
    #[error("{0}")]
    Failed(String),
}

/// Runs SQL queries over one store.
#[derive(Debug)]
pub struct SqlEngine {
    store: Arc<Store>,
    limits: SqlLimits,
    permits: Arc<Semaphore>,
    runtime: tokio::runtime::Handle,
}

impl SqlEngine {
    /// Queries run on `runtime` (with time enabled), which should be one of their own.
    pub fn new(store: Arc<Store>, limits: SqlLimits, runtime: tokio::runtime::Handle) -> Self {
        Self {
            store,
            limits,
            permits: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            runtime,
        }
    }

    pub fn limits(&self) -> SqlLimits {
        self.limits
    }

    /// Runs `sql`, returning at most `max_rows` rows (capped by the limit). Dropping the
    /// future cancels the query.
    pub async fn run(&self, sql: &str, max_rows: Option<usize>) -> Result<SqlResponse, QueryError> {
        let permit = Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| QueryError::Busy(self.limits.max_concurrent))?;
        let limits = SqlLimits {
            max_rows: max_rows.unwrap_or(self.limits.max_rows).min(self.limits.max_rows),
            ..self.limits
        };
        let (store, sql) = (Arc::clone(&self.store), sql.to_owned());
        let mut task = AbortOnDrop(self.runtime.spawn(async move {
            let _permit = permit;
            let started = Instant::now();
            match tokio::time::timeout(limits.timeout, execute(store, &sql, limits)).await {
                Ok(Ok(mut response)) => {
                    response.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
                    Ok(response)
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(QueryError::Timeout(limits.timeout)),
            }
        }));
        match (&mut task.0).await {
            Ok(result) => result,
            // Cancelled when the runtime shuts down.
            Err(e) => Err(QueryError::Failed(format!("the query stopped: {e}"))),
        }
    }
}

/// Cancels the query when whoever waits for it goes away.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn execute(
    store: Arc<Store>,
    sql: &str,
    limits: SqlLimits,
) -> Result<SqlResponse, QueryError> {
    let partitions = 2;
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_target_partitions(partitions)
        .with_batch_size(8192);
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        // Never spill to disk: the memory limit is the bound.
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .map_err(classify)?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    ctx.register_table("spans", Arc::new(spans::SpansTable::new(Arc::clone(&store), partitions)))
        .map_err(classify)?;
    ctx.register_table("processes", Arc::new(processes::ProcessesTable::new(store)))
        .map_err(classify)?;
    let options =
        SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    let frame = ctx.sql_with_options(sql, options).await.map_err(classify)?;
    let mut stream = frame.execute_stream().await.map_err(classify)?;
    let columns = stream
        .schema()
        .fields()
        .iter()
        .map(|f| SqlColumn { name: f.name().clone(), data_type: f.data_type().to_string() })
        .collect();
    let mut rows = Vec::new();
    let mut truncated = false;
    'batches: while let Some(batch) = stream.next().await {
        let batch = batch.map_err(classify)?;
        for row in 0..batch.num_rows() {
            if rows.len() == limits.max_rows {
                truncated = true;
                break 'batches;
            }
            rows.push(json::row(&batch, row));
        }
    }
    Ok(SqlResponse { columns, rows, truncated, elapsed_ms: 0.0 })
}

/// Sorts DataFusion's errors into the user's fault, too much work, and ours.
fn classify(error: DataFusionError) -> QueryError {
    let message = error.to_string();
    match error.find_root() {
        DataFusionError::ResourcesExhausted(_) => QueryError::TooExpensive(message),
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_)
        | DataFusionError::Configuration(_)
        | DataFusionError::Execution(_)
        | DataFusionError::ArrowError(..) => QueryError::Invalid(message),
        _ => QueryError::Failed(message),
    }
}
