//! Hands the SQL engine (`threadline-query`, DataFusion) to the server when the build has it.

use std::sync::Arc;

use threadline_server::{SqlFactory, SqlFailure, SqlFailureKind, SqlService};

/// The engine for `serve`, or `None` in a build without the `sql` feature.
#[cfg(feature = "sql")]
pub fn factory() -> Option<SqlFactory> {
    Some(SqlFactory(Arc::new(|store, query: &threadline_config::Query, runtime| {
        let limits = threadline_query::SqlLimits {
            max_rows: query.sql_max_rows,
            timeout: std::time::Duration::from_secs(query.sql_timeout_secs),
            memory_bytes: query.sql_memory_mb.saturating_mul(1 << 20),
            max_concurrent: query.sql_max_concurrent,
        };
        Arc::new(Engine(threadline_query::SqlEngine::new(store, limits, runtime)))
            as Arc<dyn SqlService>
    })))
}

#[cfg(not(feature = "sql"))]
pub fn factory() -> Option<SqlFactory> {
    None
}

#[cfg(feature = "sql")]
#[derive(Debug)]
struct Engine(threadline_query::SqlEngine);

#[cfg(feature = "sql")]
impl SqlService for Engine {
    fn run(
        &self,
        query: String,
        max_rows: Option<usize>,
    ) -> futures_util::future::BoxFuture<'_, Result<threadline_api_types::SqlResponse, SqlFailure>>
    {
        use threadline_query::QueryError;
        Box::pin(async move {
            self.0.run(&query, max_rows).await.map_err(|e| {
                let kind = match &e {
                    QueryError::Invalid(_) => SqlFailureKind::Invalid,
                    QueryError::TooExpensive(_) => SqlFailureKind::TooExpensive,
                    QueryError::Timeout(_) => SqlFailureKind::Timeout,
                    QueryError::Busy(_) => SqlFailureKind::Busy,
                    QueryError::Failed(_) => SqlFailureKind::Internal,
                };
                SqlFailure { kind, message: e.to_string() }
            })
        })
    }
}
