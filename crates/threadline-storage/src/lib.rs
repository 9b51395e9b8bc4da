//! Where spans are kept and read back: [`store::Store`] over one data directory, built from
//! the write-ahead log ([`wal`], records in the [`codec`] encoding), Parquet span blocks
//! ([`block`]) in an object store, and an index. [`data_dir::DataDir`] owns the directory.

pub mod block;
pub mod codec;
pub mod data_dir;
pub mod json;
pub mod objects;
pub mod processes;
mod runs;
pub mod search;
pub mod store;
pub mod trace_filter;
pub mod wal;

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
    #[error("write-ahead log")]
    Wal(#[source] wal::WalError),
    #[error("span block")]
    Block(#[source] block::BlockError),
    #[error("index, {context}: {message}")]
    Index { context: String, message: String },
    #[error("{message}")]
    Corrupt { message: String },
    #[error("{message}")]
    Config { message: String },
}

/// Counts a store reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Spans not yet in a block (readable from memory, durable in the WAL).
    pub head_spans: u64,
    pub head_traces: u64,
    pub blocks: u64,
    /// Memory taken by the blocks' trace filters (about 2 bytes per trace a block holds).
    pub trace_filter_bytes: u64,
    pub block_spans: u64,
    pub block_bytes: u64,
    /// Blocks deleted by retention since start.
    pub deleted_blocks: u64,
    /// Small blocks merged into bigger ones since start.
    pub compacted_blocks: u64,
    /// Block reads that failed (damaged blocks) since start.
    pub read_errors: u64,
    /// Process table transactions committed since start.
    pub process_commits: u64,
    /// Process rows written since start (each new row and each rewrite of a row).
    pub process_rows_written: u64,
    /// Of those, rows written for the first time.
    pub process_rows_created: u64,
    /// Sorted runs in the process table's id, key and trace indexes: steady under load unless
    /// their merges fall behind.
    pub process_index_runs: u64,
    /// Memory taken by those runs' filters (about 2 bytes per entry).
    pub process_index_filter_bytes: u64,
    pub wal_segments: u64,
    pub wal_bytes: u64,
    /// The last write error, cleared by the next successful write.
    pub last_error: Option<String>,
}
