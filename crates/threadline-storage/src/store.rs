//! The durable span store: the WAL, an in-memory head of recent spans, and immutable Parquet
//! blocks in an object store, each with a trace filter telling which traces it may hold.
//!
//! Write path: [`Store::append`] writes a group of batches to the WAL as one commit (fsynced
//! per policy) and then into the head, where they are readable at once. [`Store::flush`]
//! freezes the head, writes it as one block, records the block and its trace filter in the
//! index, and only then drops the frozen head and the WAL segments it covered. A span is
//! therefore always readable from the head, a frozen head or a block, and after a crash it is
//! in a block or in the WAL (replayed into the head on open).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use object_store::ObjectStoreExt as _;
use object_store::path::Path as ObjectPath;
use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use threadline_core::id::TraceId;
use threadline_core::span::Span;

use crate::block::{self, BlockError, OpenBlock};
use crate::codec;
use crate::data_dir::DataDir;
pub use crate::runs::RunLimits;
use crate::trace_filter::TraceFilter;
use crate::wal::{Damage, Wal, WalError, WalOptions};
use crate::{StoreError, StoreStats};

/// Compaction merges at least this many small blocks at once...
pub const COMPACT_MIN_BLOCKS: usize = 4;
/// ...and at most this many spans into one block.
pub const COMPACT_MAX_SPANS: u64 = 500_000;

/// Index format version, kept in the index's metadata table. Version 2 keeps the process
/// table's key and trace entries in sorted runs; version 3 replaces the entry per trace and
/// block with a trace filter per block; version 4 keys process rows by start time, finds
/// them by id through an id index in sorted runs, and gives every run a filter. An older
/// index is taken to version 4 on open.
pub const INDEX_VERSION: u64 = 4;

pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
/// Block id → (spans, bytes, min start, max start).
const BLOCKS: TableDefinition<'_, u64, (u64, u64, u64, u64)> = TableDefinition::new("blocks");
/// Block id → its trace filter ([`TraceFilter::to_bytes`]).
const BLOCK_TRACES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("block_traces");
/// Index versions 1 and 2: trace id (16 bytes) then block id (8 bytes, big-endian) → nothing.
/// Deleted on open, once every block has its filter.
const V2_TRACE_BLOCKS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("trace_blocks");
const SERVICES: TableDefinition<'_, &str, ()> = TableDefinition::new("services");

pub(crate) const META_VERSION: &str = "format_version";
const META_FLUSHED_SEQ: &str = "flushed_seq";
const META_NEXT_BLOCK: &str = "next_block_id";

/// A function a compaction calls between committing its merged block to the index and
/// placing it in the block list: for tests that read in that moment.
#[derive(Clone)]
pub struct CompactionHook(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for CompactionHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompactionHook")
    }
}

/// How the store behaves; every field has a documented default.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub wal: WalOptions,
    /// Where blocks go: `None` for `<data dir>/blocks`, or an object store (an `s3://` URL
    /// opened by the caller).
    pub blocks: Option<Arc<dyn ObjectStore>>,
    /// The head is written as a block once it holds this many spans...
    pub flush_spans: usize,
    /// ...or once its oldest span has waited this long.
    pub flush_interval: Duration,
    /// Spans not yet in a block (the head, and heads being written), at most: past it,
    /// [`Store::wait_for_head_room`] holds the writer back until a block is written, so memory
    /// stays bounded when blocks are written slower than spans arrive.
    pub max_head_spans: usize,
    /// Blocks whose newest span started longer ago than this are deleted.
    pub retention: Duration,
    /// When blocks take more bytes than this, the oldest are deleted.
    pub max_block_bytes: Option<u64>,
    /// Blocks smaller than this are merged by [`Store::compact`].
    pub compact_below_bytes: u64,
    /// Memory the index keeps of its file's pages (read cache and write buffer), at most.
    pub index_cache_bytes: usize,
    /// The caller applies each WAL record's effects to the process table and reports how far
    /// with [`crate::processes::ProcessChanges::applied_seq`]: the WAL is then kept until
    /// applied, and a restart hands back every record not yet applied.
    pub track_applied: bool,
    /// Sizes of the process table's sorted-run indexes (business keys, traces).
    pub process_index: RunLimits,
    /// Called by each compaction after its index commit (tests).
    pub after_compaction_commit: Option<CompactionHook>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            wal: WalOptions::default(),
            blocks: None,
            flush_spans: 300_000,
            flush_interval: Duration::from_secs(10),
            max_head_spans: 900_000,
            retention: Duration::from_secs(7 * 24 * 3600),
            max_block_bytes: None,
            compact_below_bytes: 16 << 20,
            index_cache_bytes: 64 << 20,
            track_applied: false,
            process_index: RunLimits::default(),
            after_compaction_commit: None,
        }
    }
}

/// What opening the store found and did.
#[derive(Debug, Default, Clone)]
pub struct Opened {
    /// WAL records replayed into the head (written after the last block).
    pub replayed_records: u64,
    pub replayed_spans: u64,
    /// WAL damage found and cut off.
    pub wal_damage: Vec<Damage>,
    /// WAL records not yet applied to the process table, in order, with their sequence
    /// numbers, for the caller to feed onward (the engine).
    pub replayed: Vec<(u64, Arc<Vec<Span>>)>,
    /// Blocks listed in the index but unreadable: reported and left out of reads.
    pub unreadable_blocks: Vec<String>,
    /// The last WAL record whose effects the process table holds (with `track_applied`).
    pub applied_seq: u64,
    /// Why the index was rebuilt (missing or damaged), if it was.
    pub index_problem: Option<String>,
    /// Blocks found and indexed again when the index was rebuilt.
    pub rebuilt_blocks: usize,
}

/// Spans not yet in a block: the batches as received (shared with the engine, not copied)
/// and, per trace, where its spans are in them.
#[derive(Debug, Default)]
struct Head {
    batches: Vec<Arc<Vec<Span>>>,
    /// Per trace, its last span in `places`.
    traces: threadline_core::hash::HashMap<TraceId, u32>,
    /// Where each span is, as (batch, index in it, the place of the trace's span before it):
    /// a chain per trace in one list, rather than a list per trace to allocate and grow.
    places: Vec<(u32, u32, u32)>,
    spans: usize,
    last_seq: u64,
    opened: Option<Instant>,
}

/// The end of a trace's chain of places.
const NO_PLACE: u32 = u32::MAX;

impl Head {
    fn insert(&mut self, batch: &Arc<Vec<Span>>, seq: u64) {
        let b = u32::try_from(self.batches.len()).unwrap_or(u32::MAX);
        self.places.reserve(batch.len());
        for (i, span) in batch.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let place = u32::try_from(self.places.len()).unwrap_or(NO_PLACE);
            let last = self.traces.entry(span.trace_id).or_insert(NO_PLACE);
            self.places.push((b, i, *last));
            *last = place;
        }
        self.spans += batch.len();
        self.batches.push(Arc::clone(batch));
        self.last_seq = seq;
        self.opened.get_or_insert_with(Instant::now);
    }

    /// The spans of a trace, the last received first.
    fn trace(&self, trace_id: TraceId) -> impl Iterator<Item = &Span> {
        let last = self.traces.get(&trace_id).copied().unwrap_or(NO_PLACE);
        std::iter::successors(self.places.get(last as usize), |&&(_, _, before)| {
            self.places.get(before as usize)
        })
        .map(|&(b, i, _)| &self.batches[b as usize][i as usize])
    }

    fn all(&self) -> impl Iterator<Item = &Span> {
        self.batches.iter().flat_map(|b| b.iter())
    }
}

#[derive(Debug, Default)]
struct Heads {
    active: Head,
    /// Heads being written as blocks, oldest first; readable until their block is indexed.
    frozen: Vec<Arc<Head>>,
}

#[derive(Debug, Default, Clone)]
struct Counters {
    spans_in_blocks: u64,
    block_bytes: u64,
    deleted_blocks: u64,
    compacted_blocks: u64,
    read_errors: u64,
    process_commits: u64,
    process_rows_written: u64,
    process_rows_created: u64,
    last_error: Option<String>,
}

/// The durable store of one data directory.
#[derive(Debug)]
pub struct Store {
    _dir: DataDir,
    options: StoreOptions,
    wal: Mutex<Wal>,
    heads: RwLock<Heads>,
    /// Shared with the blocking pool, where a flush writes its index entries.
    pub(crate) index: Arc<Database>,
    /// The process table's business-key and trace entries.
    pub(crate) process_indexes: crate::processes::ProcessIndexes,
    objects: Arc<dyn ObjectStore>,
    blocks: RwLock<HashMap<u64, Arc<BlockEntry>>>,
    /// A merged block from just before its index commit until it replaces its inputs in
    /// `blocks`: lookups take it from here in that moment.
    staged: RwLock<HashMap<u64, Arc<BlockEntry>>>,
    services: RwLock<BTreeSet<String>>,
    counters: Mutex<Counters>,
    /// One flush at a time.
    flushing: tokio::sync::Mutex<()>,
    /// One compaction or retention pass at a time (both remove blocks); flushes go on.
    maintenance: tokio::sync::Mutex<()>,
    /// Signalled whenever a head leaves memory for a block.
    head_written: parking_lot::Condvar,
    head_written_lock: Mutex<()>,
    /// The next block id to hand out; the index records it with every block.
    next_block: std::sync::atomic::AtomicU64,
    applied_seq: std::sync::atomic::AtomicU64,
    /// Block files no longer indexed, deleted once reads that began before have finished.
    doomed: Mutex<Vec<(Instant, String)>>,
}

/// What [`Store::snapshot`] returns.
#[derive(Debug, Clone, Default)]
pub struct SpanSnapshot {
    /// Spans not yet in a block, as received.
    pub head: Vec<Arc<Vec<Span>>>,
    /// Blocks, oldest first.
    pub blocks: Vec<SnapshotBlock>,
}

/// One block of a [`SpanSnapshot`].
#[derive(Debug, Clone)]
pub struct SnapshotBlock {
    pub block: OpenBlock,
    pub spans: u64,
    /// Start time range of its spans, inclusive, in Unix nanoseconds.
    pub min_start_unix_nano: u64,
    pub max_start_unix_nano: u64,
}

/// How long a block no longer indexed stays readable for reads already under way.
pub const DELETE_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct BlockEntry {
    block: OpenBlock,
    /// Which traces the block may hold: a trace lookup reads only blocks that may.
    traces: TraceFilter,
    spans: u64,
    bytes: u64,
    min_start: u64,
    max_start: u64,
}

fn index_err(context: &str) -> impl FnOnce(redb::Error) -> StoreError + '_ {
    move |e| StoreError::Index { context: context.to_owned(), message: e.to_string() }
}

/// Shorthand: anything redb returns converts into `redb::Error`.
pub(crate) fn idx<T, E: Into<redb::Error>>(
    result: Result<T, E>,
    context: &str,
) -> Result<T, StoreError> {
    result.map_err(|e| index_err(context)(e.into()))
}

/// A write transaction whose commit is durable (fsynced) before it returns.
pub(crate) fn begin_durable(
    index: &Database,
    context: &str,
) -> Result<WriteTransaction, StoreError> {
    let mut tx = idx(index.begin_write(), context)?;
    idx(tx.set_durability(redb::Durability::Immediate), context)?;
    Ok(tx)
}

/// Records that block ids up to `id` are taken. Flushes and compactions commit in any order,
/// so the recorded value only grows.
fn record_next_block(
    meta: &mut redb::Table<'_, &str, u64>,
    id: u64,
    context: &str,
) -> Result<(), StoreError> {
    let known = idx(meta.get(META_NEXT_BLOCK), context)?.map_or(1, |v| v.value());
    idx(meta.insert(META_NEXT_BLOCK, known.max(id + 1)), context)?;
    Ok(())
}

fn block_path(id: u64) -> String {
    format!("spans/{id:020}.parquet")
}

/// What the index records of a block a flush wrote.
struct Flushed {
    id: u64,
    /// Spans, bytes, earliest and latest start, as the block list keeps them.
    summary: (u64, u64, u64, u64),
    /// Its trace filter, as stored.
    traces: Vec<u8>,
    services: BTreeSet<String>,
    /// The WAL sequence number the block covers up to.
    last_seq: u64,
}

impl Flushed {
    /// Records the block, its trace filter, the services known and the flushed sequence
    /// number in one durable transaction.
    fn index(&self, index: &Database) -> Result<(), StoreError> {
        let tx = begin_durable(index, "writing the index")?;
        {
            let mut blocks = idx(tx.open_table(BLOCKS), "writing the block list")?;
            idx(blocks.insert(self.id, self.summary), "writing the block list")?;
            let mut traces = idx(tx.open_table(BLOCK_TRACES), "writing a trace filter")?;
            idx(traces.insert(self.id, self.traces.as_slice()), "writing a trace filter")?;
            let mut table = idx(tx.open_table(SERVICES), "writing services")?;
            for service in &self.services {
                idx(table.insert(service.as_str(), ()), "writing services")?;
            }
            let mut meta = idx(tx.open_table(META), "writing index metadata")?;
            record_next_block(&mut meta, self.id, "writing index metadata")?;
            idx(meta.insert(META_FLUSHED_SEQ, self.last_seq), "writing index metadata")?;
        }
        idx(tx.commit(), "committing the index")
    }
}

impl Store {
    /// Opens (or creates) the store in `path`: locks the directory, opens the index and the
    /// blocks it lists, and replays the WAL written after the last block into the head.
    pub async fn open(path: &Path, options: StoreOptions) -> Result<(Self, Opened), StoreError> {
        let dir = DataDir::open(path)?;
        let index_dir = path.join("index");
        std::fs::create_dir_all(&index_dir).map_err(|source| StoreError::Io {
            context: format!("creating {}", index_dir.display()),
            source,
        })?;
        let index_path = index_dir.join("threadline.redb");
        let mut opened = Opened::default();
        let index_missing = !index_path.exists();
        let open_index =
            || Database::builder().set_cache_size(options.index_cache_bytes).create(&index_path);
        let index = match open_index() {
            Ok(index) => index,
            Err(e) => {
                // A damaged index is set aside and rebuilt from the blocks themselves.
                let aside = index_dir.join(format!("threadline.redb.damaged-{}", unix_now_nanos()));
                tracing::error!(index = %index_path.display(), error = %e, aside = %aside.display(),
                    "the index cannot be opened; it is set aside and rebuilt from the blocks");
                std::fs::rename(&index_path, &aside).map_err(|source| StoreError::Io {
                    context: format!("setting aside damaged index {}", index_path.display()),
                    source,
                })?;
                opened.index_problem = Some(format!("{}: {e}", index_path.display()));
                idx(open_index(), "creating the index")?
            }
        };
        if index_missing {
            opened
                .index_problem
                .get_or_insert_with(|| format!("{} is missing", index_path.display()));
        }

        let objects: Arc<dyn ObjectStore> = match &options.blocks {
            Some(store) => Arc::clone(store),
            None => crate::objects::local(&path.join("blocks"))?,
        };

        if opened.index_problem.is_some() {
            opened.rebuilt_blocks = rebuild_index(&index, &objects).await?;
            if opened.rebuilt_blocks > 0 {
                tracing::warn!(blocks = opened.rebuilt_blocks, "index rebuilt from the blocks");
            } else if index_missing {
                // A new data directory: nothing was lost.
                opened.index_problem = None;
            }
        }
        let IndexState {
            version,
            flushed: flushed_seq,
            applied,
            next_block,
            blocks: block_rows,
            mut filters,
            services,
        } = read_index_state(&index, &index_path)?;
        let process_indexes =
            crate::processes::open_indexes(&index, version, options.process_index)?;
        // Without process tracking, what is in blocks needs no replay to the engine.
        let applied_seq = if options.track_applied { applied } else { flushed_seq };
        let mut blocks = HashMap::new();
        let mut counters = Counters::default();
        // Filters made on this open: for blocks of an older index, or whose filter is damaged.
        let mut made: Vec<(u64, Vec<u8>)> = Vec::new();
        for (id, (spans, bytes, min_start, max_start)) in block_rows {
            let path = block_path(id);
            let stored = filters.remove(&id);
            match open_with_filter(&objects, &path, bytes, stored.as_deref()).await {
                Ok((block, traces, remade)) => {
                    if remade {
                        made.push((id, traces.to_bytes()));
                    }
                    counters.spans_in_blocks += spans;
                    counters.block_bytes += bytes;
                    let entry = BlockEntry { block, traces, spans, bytes, min_start, max_start };
                    blocks.insert(id, Arc::new(entry));
                }
                Err(message) => {
                    tracing::error!(block = %path, error = %message, "a block cannot be read; it is left out of reads");
                    opened.unreadable_blocks.push(message);
                }
            }
        }
        store_filters(&index, &made, version)?;

        let mut heads = Heads::default();
        let mut replayed = Vec::new();
        let mut damage_error = None;
        let wal_dir: PathBuf = path.join("wal");
        opened.applied_seq = applied_seq;
        let replay_from = flushed_seq.min(applied_seq);
        let (wal, recovery) = Wal::open(&wal_dir, options.wal, replay_from, |seq, payload| {
            match codec::decode_batch(payload) {
                Ok(spans) => {
                    let spans = Arc::new(spans);
                    // Already in a block: not again into the head.
                    if seq > flushed_seq {
                        heads.active.insert(&spans, seq);
                    }
                    // Already reflected in the process table: not again to the engine.
                    if seq > applied_seq {
                        opened.replayed_spans += spans.len() as u64;
                        replayed.push((seq, spans));
                    }
                }
                // The checksum matched, so this is a record of another version: stop loudly
                // rather than drop it.
                Err(e) => damage_error = Some(format!("WAL record {seq}: {e}")),
            }
        })?;
        if let Some(message) = damage_error {
            return Err(StoreError::Corrupt { message });
        }
        for damage in &recovery.damage {
            tracing::warn!(segment = %damage.segment, offset = damage.offset, bytes = damage.bytes,
                reason = damage.reason, truncated = damage.truncated, "WAL damage found and cut off");
        }
        opened.replayed_records = replayed.len() as u64;
        opened.replayed = replayed;
        opened.wal_damage = recovery.damage;
        let mut service_set: BTreeSet<String> = services.into_iter().collect();
        for span in heads.active.all() {
            if !service_set.contains(span.service_name()) {
                service_set.insert(span.service_name().to_owned());
            }
        }
        let store = Self {
            _dir: dir,
            options,
            wal: Mutex::new(wal),
            heads: RwLock::new(heads),
            index: Arc::new(index),
            process_indexes,
            objects,
            blocks: RwLock::new(blocks),
            staged: RwLock::new(HashMap::new()),
            services: RwLock::new(service_set),
            counters: Mutex::new(counters),
            flushing: tokio::sync::Mutex::new(()),
            maintenance: tokio::sync::Mutex::new(()),
            head_written: parking_lot::Condvar::new(),
            head_written_lock: Mutex::new(()),
            next_block: std::sync::atomic::AtomicU64::new(next_block),
            applied_seq: std::sync::atomic::AtomicU64::new(applied_seq),
            doomed: Mutex::new(Vec::new()),
        };
        Ok((store, opened))
    }

    /// Makes a group of batches durable (one WAL commit) and readable. Blocking: call it from
    /// a thread that may wait on the disk. On error nothing of the group is kept.
    pub fn append(&self, batches: &[&[Span]]) -> Result<(), StoreError> {
        self.append_numbered(batches).map(drop)
    }

    /// Makes a group of batches durable and readable, keeping the batches themselves (shared,
    /// not copied) until they are in a block; returns each batch's WAL sequence number.
    pub fn append_shared(&self, batches: &[Arc<Vec<Span>>]) -> Result<Vec<u64>, StoreError> {
        let mut wal = self.wal.lock();
        let seqs: Vec<u64> = batches
            .iter()
            .map(|spans| wal.append_with(|out| codec::encode_batch(spans, out)))
            .collect();
        if let Err(e) = wal.commit() {
            let error = StoreError::from(e);
            self.counters.lock().last_error = Some(threadline_core::error::chain(&error));
            return Err(error);
        }
        let mut new_services = Vec::new();
        {
            let mut heads = self.heads.write();
            for (batch, seq) in batches.iter().zip(seqs.iter().copied()) {
                heads.active.insert(batch, seq);
            }
        }
        {
            let known = self.services.read();
            for spans in batches {
                // Spans of a request share their resource: one look per run of them.
                let mut last = None;
                for span in spans.iter() {
                    if last.is_some_and(|r| Arc::ptr_eq(r, &span.resource)) {
                        continue;
                    }
                    last = Some(&span.resource);
                    let name = span.service_name();
                    if !known.contains(name) && !new_services.iter().any(|s: &String| s == name) {
                        new_services.push(name.to_owned());
                    }
                }
            }
        }
        if !new_services.is_empty() {
            self.services.write().extend(new_services);
        }
        self.counters.lock().last_error = None;
        Ok(seqs)
    }

    pub(crate) fn count_process_writes(&self, written: u64, created: u64) {
        let mut counters = self.counters.lock();
        counters.process_commits += 1;
        counters.process_rows_written += written;
        counters.process_rows_created += created;
    }

    pub(crate) fn set_applied_seq(&self, seq: u64) {
        self.applied_seq.fetch_max(seq, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes a group of batches durable and readable; returns the WAL sequence number of each
    /// batch. See [`Store::append`].
    pub fn append_numbered(&self, batches: &[&[Span]]) -> Result<Vec<u64>, StoreError> {
        let shared: Vec<Arc<Vec<Span>>> = batches.iter().map(|b| Arc::new(b.to_vec())).collect();
        self.append_shared(&shared)
    }

    /// Fsyncs the WAL when the interval policy says it is time; for a periodic caller.
    pub fn sync_wal_if_due(&self) -> Result<(), StoreError> {
        Ok(self.wal.lock().sync_if_due()?)
    }

    /// Spans in memory not yet in a block: the head and the heads being written.
    pub fn head_spans(&self) -> usize {
        let heads = self.heads.read();
        heads.active.spans + heads.frozen.iter().map(|h| h.spans).sum::<usize>()
    }

    /// Waits (blocking) while the spans not yet in a block are at
    /// [`StoreOptions::max_head_spans`] or more, until a block is written or `timeout` passes.
    /// Returns false on timeout: blocks are not being written (a failing disk or block
    /// store), and the caller decides whether to go on.
    pub fn wait_for_head_room(&self, timeout: Duration) -> bool {
        // The usual case, once per group of batches: room, and no lock to take.
        if self.head_spans() < self.options.max_head_spans {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let mut lock = self.head_written_lock.lock();
        while self.head_spans() >= self.options.max_head_spans {
            if self.head_written.wait_until(&mut lock, deadline).timed_out() {
                return self.head_spans() < self.options.max_head_spans;
            }
        }
        true
    }

    /// True when the head is big or old enough to be written as a block.
    pub fn flush_due(&self) -> bool {
        let heads = self.heads.read();
        heads.active.spans >= self.options.flush_spans
            || heads.active.opened.is_some_and(|t| t.elapsed() >= self.options.flush_interval)
    }

    /// Writes the head as a block (if it holds spans), indexes it, and releases the WAL
    /// segments it covered. Returns the spans written.
    pub async fn flush(&self) -> Result<u64, StoreError> {
        let _guard = self.flushing.lock().await;
        let frozen = {
            let mut wal = self.wal.lock();
            let mut heads = self.heads.write();
            // A head whose block failed before goes first: the flushed sequence number may
            // never pass records that are in no block.
            if let Some(oldest) = heads.frozen.first() {
                Arc::clone(oldest)
            } else {
                if heads.active.spans == 0 {
                    return Ok(0);
                }
                wal.seal()?;
                let head = Arc::new(std::mem::take(&mut heads.active));
                heads.frozen.push(Arc::clone(&head));
                head
            }
        };
        let (id, entry) = match self.write_block(&frozen).await {
            Ok(written) => written,
            Err(e) => {
                // The frozen head stays readable and in the WAL; the next flush retries it.
                self.counters.lock().last_error = Some(threadline_core::error::chain(&e));
                return Err(e);
            }
        };
        let count = entry.spans;
        {
            // The block appears and its head goes at once: a snapshot sees each span once.
            let mut heads = self.heads.write();
            self.blocks.write().insert(id, entry);
            heads.frozen.retain(|h| !Arc::ptr_eq(h, &frozen));
        }
        {
            let _lock = self.head_written_lock.lock();
            self.head_written.notify_all();
        }
        let applied = if self.options.track_applied {
            self.applied_seq.load(std::sync::atomic::Ordering::SeqCst)
        } else {
            frozen.last_seq
        };
        self.wal.lock().remove_through(frozen.last_seq.min(applied))?;
        // Freeing a head's spans (a few hundred thousand allocations) takes milliseconds: on
        // the blocking pool, not on the async worker this flush runs on.
        drop(tokio::task::spawn_blocking(move || drop(frozen)));
        Ok(count)
    }

    /// Writes `head` as a block and indexes it; returns the block for the in-memory list.
    async fn write_block(&self, head: &Arc<Head>) -> Result<(u64, Arc<BlockEntry>), StoreError> {
        let id = self.next_block_id()?;
        let path = block_path(id);
        let shared = Arc::clone(head);
        let (bytes, traces) = tokio::task::spawn_blocking(move || {
            let mut spans: Vec<&Span> = shared.all().collect();
            let bytes = block::encode_refs(&mut spans)?;
            Ok::<_, BlockError>((bytes, TraceFilter::build(shared.traces.keys())))
        })
        .await
        .map_err(|e| StoreError::Corrupt { message: format!("block encoder stopped: {e}") })??;
        let size = bytes.len() as u64;
        self.objects.put(&ObjectPath::from(path.as_str()), bytes.into()).await.map_err(
            |source| StoreError::Block(BlockError::Store { path: path.clone(), source }),
        )?;
        let block = OpenBlock::open(Arc::clone(&self.objects), &path, size).await?;
        let min_start = head.all().map(|s| s.start_time_unix_nano).min().unwrap_or(0);
        let max_start = head.all().map(|s| s.start_time_unix_nano).max().unwrap_or(0);
        let count = head.spans as u64;
        let flushed = Flushed {
            id,
            summary: (count, size, min_start, max_start),
            traces: traces.to_bytes(),
            services: self.services.read().clone(),
            last_seq: head.last_seq,
        };
        // On the blocking pool: the commit waits on the disk, which would stall the tasks of
        // an async worker (docs/benchmarks.md).
        let index = Arc::clone(&self.index);
        let written = tokio::task::spawn_blocking(move || flushed.index(&index))
            .await
            .map_err(|e| StoreError::Corrupt { message: format!("block indexer stopped: {e}") })
            .and_then(|indexed| indexed);
        if let Err(e) = written {
            // Not indexed: the object is an orphan; remove it so a retry starts clean.
            let _ = self.objects.delete(&ObjectPath::from(path.as_str())).await;
            return Err(e);
        }
        let mut counters = self.counters.lock();
        counters.spans_in_blocks += count;
        counters.block_bytes += size;
        let entry = BlockEntry { block, traces, spans: count, bytes: size, min_start, max_start };
        Ok((id, Arc::new(entry)))
    }

    /// Deletes blocks past the retention age (by their newest span's start, against
    /// `now_unix_nano`) and, over the size limit, the oldest blocks. Returns blocks deleted.
    pub async fn enforce_retention(&self, now_unix_nano: u64) -> Result<usize, StoreError> {
        let _guard = self.maintenance.lock().await;
        let cutoff = now_unix_nano
            .saturating_sub(u64::try_from(self.options.retention.as_nanos()).unwrap_or(u64::MAX));
        let mut doomed: Vec<(u64, Arc<BlockEntry>)> = {
            let blocks = self.blocks.read();
            let mut all: Vec<_> = blocks.iter().map(|(id, b)| (*id, Arc::clone(b))).collect();
            all.sort_by_key(|(_, b)| b.max_start);
            let mut total: u64 = all.iter().map(|(_, b)| b.bytes).sum();
            let mut doomed = Vec::new();
            for (id, entry) in all {
                let over_size = self.options.max_block_bytes.is_some_and(|max| total > max);
                if entry.max_start < cutoff || over_size {
                    total -= entry.bytes;
                    doomed.push((id, entry));
                }
            }
            doomed
        };
        for (id, entry) in &mut doomed {
            {
                let tx = idx(self.index.begin_write(), "writing the index")?;
                {
                    let mut blocks = idx(tx.open_table(BLOCKS), "writing the block list")?;
                    idx(blocks.remove(*id), "writing the block list")?;
                    let mut traces = idx(tx.open_table(BLOCK_TRACES), "writing a trace filter")?;
                    idx(traces.remove(*id), "writing a trace filter")?;
                }
                idx(tx.commit(), "committing the index")?;
            }
            self.blocks.write().remove(id);
            self.delete_later(block_path(*id));
            let mut counters = self.counters.lock();
            counters.spans_in_blocks -= entry.spans;
            counters.block_bytes -= entry.bytes;
            counters.deleted_blocks += 1;
        }
        Ok(doomed.len())
    }

    /// Every stored span of a trace, ordered by start time; empty when the trace is unknown.
    pub async fn trace(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        let mut spans = Vec::new();
        {
            let heads = self.heads.read();
            for head in heads.frozen.iter().map(|h| &**h).chain([&heads.active]) {
                spans.extend(head.trace(trace_id).cloned());
            }
        }
        // The blocks whose filters may hold the trace. A compaction swaps its inputs for the
        // merged block under the block list's lock, after staging the merged block: both
        // lists read together therefore hold every span once or twice, never not at all.
        let entries: Vec<Arc<BlockEntry>> = {
            let (blocks, staged) = (self.blocks.read(), self.staged.read());
            blocks
                .values()
                .chain(staged.values())
                .filter(|entry| entry.traces.may_contain(&trace_id))
                .cloned()
                .collect()
        };
        for entry in entries {
            match entry.block.trace(trace_id).await {
                Ok(found) => spans.extend(found),
                // One damaged block costs only its own spans: the rest of the trace is read.
                Err(e) => {
                    let message = threadline_core::error::chain(&e);
                    tracing::error!(error = %message, "reading a trace from a block failed");
                    self.counters.lock().read_errors += 1;
                }
            }
        }
        spans.sort_by_key(|s| (s.start_time_unix_nano, s.span_id, s.end_time_unix_nano));
        // A span can be seen twice while its head is being indexed as a block.
        spans.dedup_by(|a, b| a == b);
        Ok(spans)
    }

    /// Traces with a span matching `query`, the ones that started last first, at most
    /// `query.limit`: recent spans in memory, then blocks overlapping the time range, newest
    /// first, until enough are found.
    pub async fn search(
        &self,
        query: &crate::search::SpanQuery,
    ) -> Result<Vec<TraceId>, StoreError> {
        let mut found: Vec<(TraceId, u64)> = {
            let heads = self.heads.read();
            heads
                .frozen
                .iter()
                .map(|h| &**h)
                .chain([&heads.active])
                .flat_map(Head::all)
                .filter(|s| query.matches(s))
                .map(|s| (s.trace_id, s.start_time_unix_nano))
                .collect()
        };
        let mut candidates: Vec<Arc<BlockEntry>> = self
            .blocks
            .read()
            .values()
            .filter(|b| b.max_start >= query.start_from && b.min_start <= query.start_to)
            .cloned()
            .collect();
        candidates.sort_by_key(|b| std::cmp::Reverse(b.max_start));
        for entry in candidates {
            let distinct =
                found.iter().map(|(id, _)| *id).collect::<std::collections::HashSet<_>>().len();
            if distinct >= query.limit {
                break;
            }
            match entry.block.search(query).await {
                Ok(more) => found.extend(more),
                Err(e) => {
                    tracing::error!(error = %threadline_core::error::chain(&e), "searching a block failed");
                    self.counters.lock().read_errors += 1;
                }
            }
        }
        Ok(crate::search::newest(found, query.limit))
    }

    /// Merges the oldest run of small blocks (at least [`COMPACT_MIN_BLOCKS`] blocks under
    /// `compact_below_bytes`, at most [`COMPACT_MAX_SPANS`] spans together) into one block, so
    /// lookups touch fewer files. Returns how many blocks were merged (0: nothing to do).
    /// Reads never miss a span: the merged block is indexed before the small ones go.
    pub async fn compact(&self) -> Result<usize, StoreError> {
        let _guard = self.maintenance.lock().await;
        let run: Vec<(u64, Arc<BlockEntry>)> = {
            let blocks = self.blocks.read();
            let mut small: Vec<(u64, Arc<BlockEntry>)> = blocks
                .iter()
                .filter(|(_, b)| b.bytes < self.options.compact_below_bytes)
                .map(|(id, b)| (*id, Arc::clone(b)))
                .collect();
            small.sort_by_key(|(id, _)| *id);
            let mut run = Vec::new();
            let mut spans = 0;
            for (id, entry) in small {
                if !run.is_empty() && spans + entry.spans > COMPACT_MAX_SPANS {
                    break;
                }
                spans += entry.spans;
                run.push((id, entry));
            }
            run
        };
        if run.len() < COMPACT_MIN_BLOCKS {
            return Ok(0);
        }
        let mut batches = Vec::new();
        let mut trace_ids: Vec<TraceId> = Vec::new();
        for (old, entry) in &run {
            let read = entry.block.batches().await?;
            // From the batches in hand, one block at a time (a block's rows are in trace order).
            trace_ids.extend(block::trace_ids_of(&read).map_err(|message| {
                StoreError::Block(BlockError::Invalid { path: block_path(*old), message })
            })?);
            batches.extend(read);
        }
        let traces = TraceFilter::build(trace_ids.iter());
        let bytes =
            tokio::task::spawn_blocking(move || block::merge(&batches)).await.map_err(|e| {
                StoreError::Corrupt { message: format!("block compaction stopped: {e}") }
            })??;
        let id = self.next_block_id()?;
        let path = block_path(id);
        let size = bytes.len() as u64;
        self.objects.put(&ObjectPath::from(path.as_str()), bytes.into()).await.map_err(
            |source| StoreError::Block(BlockError::Store { path: path.clone(), source }),
        )?;
        let block = OpenBlock::open(Arc::clone(&self.objects), &path, size).await?;
        let spans: u64 = run.iter().map(|(_, b)| b.spans).sum();
        let min_start = run.iter().map(|(_, b)| b.min_start).min().unwrap_or(0);
        let max_start = run.iter().map(|(_, b)| b.max_start).max().unwrap_or(0);
        let filter = traces.to_bytes();
        let entry =
            Arc::new(BlockEntry { block, traces, spans, bytes: size, min_start, max_start });
        self.staged.write().insert(id, Arc::clone(&entry));
        let ctx = "indexing a compacted block";
        let index = Arc::clone(&self.index);
        let old: Vec<u64> = run.iter().map(|(id, _)| *id).collect();
        // On the blocking pool, as a flush's index commit: it waits on the disk.
        let written = tokio::task::spawn_blocking(move || {
            let tx = begin_durable(&index, ctx)?;
            {
                let mut blocks = idx(tx.open_table(BLOCKS), ctx)?;
                let mut traces = idx(tx.open_table(BLOCK_TRACES), ctx)?;
                idx(blocks.insert(id, (spans, size, min_start, max_start)), ctx)?;
                idx(traces.insert(id, filter.as_slice()), ctx)?;
                for old in old {
                    idx(blocks.remove(old), ctx)?;
                    idx(traces.remove(old), ctx)?;
                }
                let mut meta = idx(tx.open_table(META), ctx)?;
                record_next_block(&mut meta, id, ctx)?;
            }
            idx(tx.commit(), ctx)
        })
        .await
        .map_err(|e| StoreError::Corrupt { message: format!("block indexer stopped: {e}") })
        .and_then(|indexed| indexed);
        if let Err(e) = written {
            self.staged.write().remove(&id);
            let _ = self.objects.delete(&ObjectPath::from(path.as_str())).await;
            return Err(e);
        }
        if let Some(hook) = &self.options.after_compaction_commit {
            (hook.0)();
        }
        {
            let mut blocks = self.blocks.write();
            blocks.insert(id, entry);
            for (old, _) in &run {
                blocks.remove(old);
            }
        }
        self.staged.write().remove(&id);
        let old_bytes: u64 = run.iter().map(|(_, b)| b.bytes).sum();
        {
            let mut counters = self.counters.lock();
            counters.block_bytes = counters.block_bytes - old_bytes + size;
            counters.compacted_blocks += run.len() as u64;
        }
        for (old, _) in &run {
            self.delete_later(block_path(*old));
        }
        Ok(run.len())
    }

    /// Schedules a block file for deletion after [`DELETE_GRACE`]: a read that found it in
    /// the block list just before it left may still be reading it.
    fn delete_later(&self, path: String) {
        self.doomed.lock().push((Instant::now() + DELETE_GRACE, path));
    }

    /// Deletes the block files whose grace has passed (`all`: every one, as on shutdown).
    /// Returns how many were deleted.
    pub async fn collect_garbage(&self, all: bool) -> usize {
        let due: Vec<String> = {
            let mut doomed = self.doomed.lock();
            let now = Instant::now();
            let (due, keep): (Vec<_>, Vec<_>) =
                doomed.drain(..).partition(|(at, _)| all || *at <= now);
            *doomed = keep;
            due.into_iter().map(|(_, path)| path).collect()
        };
        let mut deleted = 0;
        for path in due {
            match self.objects.delete(&ObjectPath::from(path.as_str())).await {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(block = %path, error = %e, "deleting an unindexed block failed; it is no longer read");
                }
            }
        }
        deleted
    }

    /// Hands out a block id: a flush and a compaction may each need one at the same time.
    /// An id whose block fails is simply never used.
    fn next_block_id(&self) -> Result<u64, StoreError> {
        Ok(self.next_block.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    }

    /// Every stored span at this moment, each exactly once: the batches not yet in a block
    /// (shared, not copied) and the blocks, for full scans. A block in the snapshot stays
    /// readable for at least [`DELETE_GRACE`] after a compaction or retention removes it.
    pub fn snapshot(&self) -> SpanSnapshot {
        let heads = self.heads.read();
        let blocks = self.blocks.read();
        let mut head: Vec<Arc<Vec<Span>>> = Vec::new();
        for h in heads.frozen.iter().map(|h| &**h).chain([&heads.active]) {
            head.extend(h.batches.iter().cloned());
        }
        let mut blocks: Vec<(u64, SnapshotBlock)> = blocks
            .iter()
            .map(|(id, b)| {
                let block = SnapshotBlock {
                    block: b.block.clone(),
                    spans: b.spans,
                    min_start_unix_nano: b.min_start,
                    max_start_unix_nano: b.max_start,
                };
                (*id, block)
            })
            .collect();
        blocks.sort_by_key(|(id, _)| *id);
        SpanSnapshot { head, blocks: blocks.into_iter().map(|(_, b)| b).collect() }
    }

    /// Names of every service seen, sorted.
    pub fn services(&self) -> Vec<String> {
        self.services.read().iter().cloned().collect()
    }

    pub fn stats(&self) -> StoreStats {
        let (head_spans, head_traces) = {
            let heads = self.heads.read();
            let spans = heads.active.spans + heads.frozen.iter().map(|h| h.spans).sum::<usize>();
            (spans as u64, heads.active.traces.len() as u64)
        };
        let (wal_segments, wal_bytes) = self.wal.lock().disk_usage();
        let counters = self.counters.lock().clone();
        let crate::processes::ProcessIndexes { ids, keys, traces } = &self.process_indexes;
        StoreStats {
            head_spans,
            head_traces,
            blocks: self.blocks.read().len() as u64,
            trace_filter_bytes: self.blocks.read().values().map(|b| b.traces.bytes() as u64).sum(),
            block_spans: counters.spans_in_blocks,
            block_bytes: counters.block_bytes,
            deleted_blocks: counters.deleted_blocks,
            compacted_blocks: counters.compacted_blocks,
            read_errors: counters.read_errors,
            process_commits: counters.process_commits,
            process_rows_written: counters.process_rows_written,
            process_rows_created: counters.process_rows_created,
            process_index_runs: [ids, keys, traces].iter().map(|i| i.runs()).sum(),
            process_index_filter_bytes: [ids, keys, traces]
                .iter()
                .map(|i| i.filter_bytes() as u64)
                .sum(),
            wal_segments: wal_segments as u64,
            wal_bytes,
            last_error: counters.last_error,
        }
    }
}

fn unix_now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Lists every block in the object store and indexes it again: the block list, the traces
/// in each, the services, and the next block id. The flushed sequence number stays 0, so the
/// whole WAL that is left is replayed (spans found in both are read once).
async fn rebuild_index(
    index: &Database,
    objects: &Arc<dyn ObjectStore>,
) -> Result<usize, StoreError> {
    use futures_util::TryStreamExt as _;
    let listed: Vec<object_store::ObjectMeta> =
        objects.list(Some(&ObjectPath::from("spans"))).try_collect().await.map_err(|source| {
            StoreError::Block(BlockError::Store { path: "spans/".into(), source })
        })?;
    let mut count = 0;
    let mut next_id = 1;
    let mut services = BTreeSet::new();
    for meta in listed {
        let path = meta.location.to_string();
        let Some(id) = path
            .strip_prefix("spans/")
            .and_then(|p| p.strip_suffix(".parquet"))
            .and_then(|p| p.parse::<u64>().ok())
        else {
            continue;
        };
        next_id = next_id.max(id + 1);
        let block = match OpenBlock::open(Arc::clone(objects), &path, meta.size).await {
            Ok(block) => block,
            Err(e) => {
                tracing::error!(block = %path, error = %threadline_core::error::chain(&e),
                    "a block cannot be read while rebuilding the index; it is left out");
                continue;
            }
        };
        let spans = match block.all().await {
            Ok(spans) => spans,
            Err(e) => {
                tracing::error!(block = %path, error = %threadline_core::error::chain(&e),
                    "a block cannot be read while rebuilding the index; it is left out");
                continue;
            }
        };
        let min = spans.iter().map(|s| s.start_time_unix_nano).min().unwrap_or(0);
        let max = spans.iter().map(|s| s.start_time_unix_nano).max().unwrap_or(0);
        let tx = idx(index.begin_write(), "rebuilding the index")?;
        {
            let mut blocks = idx(tx.open_table(BLOCKS), "rebuilding the index")?;
            idx(
                blocks.insert(id, (spans.len() as u64, meta.size, min, max)),
                "rebuilding the index",
            )?;
            // A block's spans are in trace order: each trace once, so the filter is sized by
            // traces, not spans.
            let mut trace_ids: Vec<TraceId> = spans.iter().map(|s| s.trace_id).collect();
            trace_ids.dedup();
            let filter = TraceFilter::build(trace_ids.iter());
            let mut traces = idx(tx.open_table(BLOCK_TRACES), "rebuilding the index")?;
            idx(traces.insert(id, filter.to_bytes().as_slice()), "rebuilding the index")?;
            for span in &spans {
                if !services.contains(span.service_name()) {
                    services.insert(span.service_name().to_owned());
                }
            }
        }
        idx(tx.commit(), "rebuilding the index")?;
        count += 1;
    }
    let tx = idx(index.begin_write(), "rebuilding the index")?;
    {
        let mut table = idx(tx.open_table(SERVICES), "rebuilding the index")?;
        for service in &services {
            idx(table.insert(service.as_str(), ()), "rebuilding the index")?;
        }
        let mut meta = idx(tx.open_table(META), "rebuilding the index")?;
        idx(meta.insert(META_NEXT_BLOCK, next_id), "rebuilding the index")?;
    }
    idx(tx.commit(), "rebuilding the index")?;
    Ok(count)
}

/// Opens a listed block with its trace filter: the stored one, or, when none is stored (an
/// index of an older version) or it is damaged, one made from the block (then `true`).
async fn open_with_filter(
    objects: &Arc<dyn ObjectStore>,
    path: &str,
    bytes: u64,
    stored: Option<&[u8]>,
) -> Result<(OpenBlock, TraceFilter, bool), String> {
    use threadline_core::error::chain;
    let block = OpenBlock::open(Arc::clone(objects), path, bytes).await.map_err(|e| chain(&e))?;
    match stored.map(TraceFilter::from_bytes) {
        Some(Ok(traces)) => return Ok((block, traces, false)),
        Some(Err(e)) => {
            tracing::warn!(block = %path, error = %e, "a trace filter is damaged; it is made again from the block");
        }
        None => {}
    }
    let ids = block.trace_ids().await.map_err(|e| chain(&e))?;
    let traces = TraceFilter::build(ids.iter());
    Ok((block, traces, true))
}

struct IndexState {
    /// The format version the index was written in.
    version: u64,
    flushed: u64,
    applied: u64,
    next_block: u64,
    blocks: Vec<(u64, (u64, u64, u64, u64))>,
    /// Stored trace filters by block id, as stored.
    filters: HashMap<u64, Vec<u8>>,
    services: Vec<String>,
}

/// Reads the flushed sequence number, the block list and the services from the index,
/// creating its tables (and version) on first open.
fn read_index_state(index: &Database, path: &Path) -> Result<IndexState, StoreError> {
    let tx = idx(index.begin_write(), "opening the index")?;
    let version;
    {
        let mut meta = idx(tx.open_table(META), "opening the index")?;
        let found = idx(meta.get(META_VERSION), "opening the index")?.map(|v| v.value());
        version = match found {
            None => {
                idx(meta.insert(META_VERSION, INDEX_VERSION), "opening the index")?;
                INDEX_VERSION
            }
            Some(v @ 1..=INDEX_VERSION) => v,
            Some(other) => {
                return Err(StoreError::Corrupt {
                    message: format!(
                        "{}: index format version {other}; this build reads versions 1 to {INDEX_VERSION}",
                        path.display()
                    ),
                });
            }
        };
        idx(tx.open_table(BLOCKS), "opening the index")?;
        idx(tx.open_table(BLOCK_TRACES), "opening the index")?;
        idx(tx.open_table(SERVICES), "opening the index")?;
        use crate::processes as p;
        idx(tx.open_table(p::PROCESS_ROWS), "opening the index")?;
        idx(tx.open_table(p::PROCESS_BY_TYPE), "opening the index")?;
        idx(tx.open_table(p::PROCESS_LIVE), "opening the index")?;
        idx(tx.open_table(p::EVENTS), "opening the index")?;
    }
    idx(tx.commit(), "opening the index")?;
    let read = idx(index.begin_read(), "reading the index")?;
    let meta = idx(read.open_table(META), "reading the index")?;
    let flushed = idx(meta.get(META_FLUSHED_SEQ), "reading the index")?.map_or(0, |v| v.value());
    let applied = idx(meta.get(crate::processes::META_APPLIED_SEQ), "reading the index")?
        .map_or(0, |v| v.value());
    let next_block = idx(meta.get(META_NEXT_BLOCK), "reading the index")?.map_or(1, |v| v.value());
    let mut blocks = Vec::new();
    for entry in idx(
        idx(read.open_table(BLOCKS), "reading the block list")?.iter(),
        "reading the block list",
    )? {
        let (id, row) = idx(entry, "reading the block list")?;
        blocks.push((id.value(), row.value()));
    }
    let mut filters = HashMap::new();
    for entry in idx(
        idx(read.open_table(BLOCK_TRACES), "reading trace filters")?.iter(),
        "reading trace filters",
    )? {
        let (id, bytes) = idx(entry, "reading trace filters")?;
        filters.insert(id.value(), bytes.value().to_vec());
    }
    let mut services = Vec::new();
    for entry in
        idx(idx(read.open_table(SERVICES), "reading services")?.iter(), "reading services")?
    {
        let (name, _) = idx(entry, "reading services")?;
        services.push(name.value().to_owned());
    }
    Ok(IndexState { version, flushed, applied, next_block, blocks, filters, services })
}

/// Stores the trace filters made on open; an index of an older version then loses its entry
/// per trace and block (which the filters replace) and is of the current version.
fn store_filters(
    index: &Database,
    made: &[(u64, Vec<u8>)],
    version: u64,
) -> Result<(), StoreError> {
    let ctx = "storing trace filters";
    let upgrade = version < INDEX_VERSION;
    if made.is_empty() && !upgrade {
        return Ok(());
    }
    let tx = begin_durable(index, ctx)?;
    {
        let mut traces = idx(tx.open_table(BLOCK_TRACES), ctx)?;
        for (id, bytes) in made {
            idx(traces.insert(*id, bytes.as_slice()), ctx)?;
        }
    }
    // Also when an upgrade was cut short after the version was recorded: the filters were
    // made again above, and the old entries go now.
    idx(tx.delete_table(V2_TRACE_BLOCKS), ctx)?;
    if upgrade {
        let mut meta = idx(tx.open_table(META), ctx)?;
        idx(meta.insert(META_VERSION, INDEX_VERSION), ctx)?;
    }
    idx(tx.commit(), ctx)
}

impl From<WalError> for StoreError {
    fn from(e: WalError) -> Self {
        StoreError::Wal(e)
    }
}

impl From<BlockError> for StoreError {
    fn from(e: BlockError) -> Self {
        StoreError::Block(e)
    }
}
