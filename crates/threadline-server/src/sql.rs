//! `POST /api/v1/sql`: the server's side of SQL. The query engine itself (DataFusion) lives in
//! `threadline-query`, outside this crate, and is handed in through [`SqlFactory`] by the
//! binary; a build without it answers 501.

use std::fmt;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use threadline_api_types::SqlResponse;
use threadline_storage::store::Store;

/// Why a query gave no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlFailureKind {
    /// Does not parse or plan, is not a query, or fails on its data: 400.
    Invalid,
    /// Needed more memory than allowed: 422.
    TooExpensive,
    /// Ran out of time: 503.
    Timeout,
    /// Too many queries at once: 429.
    Busy,
    /// Storage or the engine failed: 500.
    Internal,
}

#[derive(Debug, Clone)]
pub struct SqlFailure {
    pub kind: SqlFailureKind,
    pub message: String,
}

/// Runs SQL queries over the store.
pub trait SqlService: Send + Sync + fmt::Debug {
    /// Runs `query`, returning at most `max_rows` rows (capped by the server's limit).
    fn run(
        &self,
        query: String,
        max_rows: Option<usize>,
    ) -> BoxFuture<'_, Result<SqlResponse, SqlFailure>>;
}

type Make = dyn Fn(Arc<Store>, &threadline_config::Query, tokio::runtime::Handle) -> Arc<dyn SqlService>
    + Send
    + Sync;

/// Makes the SQL service once the store is open, given the runtime its queries run on.
#[derive(Clone)]
pub struct SqlFactory(pub Arc<Make>);

impl fmt::Debug for SqlFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SqlFactory")
    }
}
