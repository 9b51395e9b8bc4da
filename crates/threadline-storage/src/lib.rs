//! Where spans are kept and read back. [`SpanStore`] is the seam the rest of Threadline
//! codes against; [`memory::MemoryStore`] keeps spans in memory per trace (durable storage
//! replaces it behind the same trait). [`data_dir::DataDir`] owns the data directory.

pub mod block;
pub mod codec;
pub mod data_dir;
pub mod memory;
pub mod wal;

use threadline_core::id::TraceId;
use threadline_core::span::Span;

/// A storage failure: what was being done, and the underlying cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {path} is in use by another threadline process")]
    Locked { path: String },
}

/// Counts a store reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    pub traces: usize,
    pub spans: usize,
    /// Spans dropped to stay within the store's limits since start.
    pub evicted_spans: u64,
}

/// Keeps spans and reads them back by trace. Implementations are shared between the
/// ingest pipeline (writes) and the API (reads), so they synchronise internally.
pub trait SpanStore: Send + Sync + std::fmt::Debug {
    /// Stores a batch. Once this returns `Ok`, every span of it is readable.
    fn append(&self, spans: &[Span]) -> Result<(), StoreError>;

    /// Every stored span of a trace, ordered by start time; empty when the trace is unknown.
    fn trace(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError>;

    /// Names of every service seen, sorted.
    fn services(&self) -> Result<Vec<String>, StoreError>;

    fn stats(&self) -> StoreStats;
}
