//! Sorted runs: an index of byte-string entries that is written sequentially, for the process
//! table's business-key and trace entries.
//!
//! Those entries begin with random ids and values. In a B-tree larger than what one commit
//! inserts, nearly every such entry rewrites a page of its own, which the commit then writes
//! out: that was the largest part of the process table's cost. Here instead:
//!
//! - each commit's new entries are logged together as one value (`<name>_log`: number →
//!   entries) and kept in memory, by lookup key;
//! - once memory holds [`RunLimits::flush_entries`], they are written out in order as a *run*:
//!   chunks of about [`RunLimits::chunk_bytes`] (`<name>_chunks`: run id ‖ first entry →
//!   entries), listed in `<name>_runs` (run id → (level, entries)); the log is emptied in the
//!   same transaction;
//! - [`RunLimits::fanout`] runs of one level are merged into one run of the next level, a
//!   bounded step per commit ([`RunLimits::merge_step_bytes`] read), so that no commit waits
//!   long for a merge. The run being written is listed only once complete, in the transaction
//!   that drops its inputs.
//!
//! Entries are only ever added. One that no longer holds (its process was folded into another)
//! stays, and readers check every entry against the row it leads to. An entry may also be
//! seen twice (in memory and in a run being flushed, or in two runs being merged).
//!
//! Every run has a filter of the lookup keys its entries start with (each entry less its last
//! [`RunTables::suffix`] bytes), kept in memory and in `<name>_filters` (run id → filter): a
//! lookup reads only the runs whose filter may hold its key, so looking up a key that is in
//! no run (a new process's id) reads no chunk at all. A run whose filter is missing or
//! damaged gets one made again from its chunks on open.
//!
//! One writer at a time ([`RunIndex::session`]); lookups read memory first and then the runs in
//! a transaction begun after, so an entry moving from memory to a run is never missed.

use std::collections::{HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use crate::StoreError;
use crate::codec::{DecodeError, Reader, put_len};
use crate::store::idx;
use crate::trace_filter::TraceFilter;

/// The sizes a sorted-run index works with; the defaults suit a server, tests take small ones
/// to go through every case with few entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Entries kept in memory (and in the log) before they are written out as a run (at
    /// least 1).
    pub flush_entries: usize,
    /// A chunk is closed once its encoded entries reach this size.
    pub chunk_bytes: usize,
    /// Runs of one level merged into one of the next (at least 2).
    pub fanout: usize,
    /// Encoded bytes a merge reads per commit, at most (plus one chunk per input).
    pub merge_step_bytes: usize,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self { flush_entries: 100_000, chunk_bytes: 16 << 10, fanout: 8, merge_step_bytes: 4 << 20 }
    }
}

/// Entries found for one prefix.
pub(crate) type Entries = Vec<Vec<u8>>;

type LogTable = TableDefinition<'static, u64, &'static [u8]>;
type RunsTable = TableDefinition<'static, u64, (u8, u64)>;
type ChunksTable = TableDefinition<'static, &'static [u8], &'static [u8]>;
type FiltersTable = TableDefinition<'static, u64, &'static [u8]>;

/// The table names of one index, and the shape of its entries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunTables {
    pub log: &'static str,
    pub runs: &'static str,
    pub chunks: &'static str,
    pub filters: &'static str,
    /// Bytes of an entry after its lookup key: lookups are by whole keys, and a run's filter
    /// holds the keys of its entries.
    pub suffix: usize,
}

impl RunTables {
    fn log(&self) -> LogTable {
        TableDefinition::new(self.log)
    }

    fn runs(&self) -> RunsTable {
        TableDefinition::new(self.runs)
    }

    fn chunks(&self) -> ChunksTable {
        TableDefinition::new(self.chunks)
    }

    fn filters(&self) -> FiltersTable {
        TableDefinition::new(self.filters)
    }

    /// The lookup key an entry is found by.
    fn key_of<'e>(&self, entry: &'e [u8]) -> &'e [u8] {
        &entry[..entry.len().saturating_sub(self.suffix)]
    }
}

/// One index: its tables, the entries in memory, and its writer's state.
#[derive(Debug)]
pub(crate) struct RunIndex {
    tables: RunTables,
    limits: RunLimits,
    memory: RwLock<Memory>,
    writer: Mutex<Writer>,
    /// A filter for every listed run, by run id, as of the last commit: every run gets one
    /// when it is written or opened, so this also says which runs are listed. A reader whose
    /// transaction lists a run not (yet) here reads that run.
    filters: RwLock<HashMap<u64, Arc<TraceFilter>>>,
}

#[derive(Debug)]
struct Writer {
    next_run: u64,
    merge: Option<Merge>,
}

/// A merge between steps.
#[derive(Debug, Clone)]
struct Merge {
    inputs: Vec<Input>,
    output: u64,
    level: u8,
    written: u64,
    chunk: ChunkBuilder,
    last: Option<Box<[u8]>>,
    /// The output's filter, sized for every input entry. Shared by the merge's copies: a step
    /// in a transaction that fails is taken again from the same place, and adding the same
    /// keys again leaves a filter as it was.
    filter: Arc<Mutex<TraceFilter>>,
}

#[derive(Debug, Clone)]
struct Input {
    run: u64,
    /// Key of the last chunk read from this run.
    after: Option<Vec<u8>>,
    done: bool,
    entries: VecDeque<Box<[u8]>>,
}

/// What a read of one context is done in: the chunks and runs tables of a read or a write
/// transaction.
struct View<C, R> {
    chunks: C,
    runs: R,
}

impl RunIndex {
    /// Opens the index in `tx`, creating its tables: drops chunks of runs never completed
    /// (a merge cut short) and takes the logged entries back into memory.
    pub(crate) fn open(
        tx: &WriteTransaction,
        tables: RunTables,
        limits: RunLimits,
    ) -> Result<Self, StoreError> {
        let limits = RunLimits {
            flush_entries: limits.flush_entries.max(1),
            fanout: limits.fanout.max(2),
            ..limits
        };
        let ctx = "opening a sorted-run index";
        let log = idx(tx.open_table(tables.log()), ctx)?;
        let runs = idx(tx.open_table(tables.runs()), ctx)?;
        let mut chunks = idx(tx.open_table(tables.chunks()), ctx)?;
        let mut listed = Vec::new();
        for entry in idx(runs.iter(), ctx)? {
            listed.push(idx(entry, ctx)?.0.value());
        }
        let mut next_run = listed.last().map_or(1, |r| r + 1);
        // Every run id present in the chunks, by jumping from one to the next.
        let mut from = 0u64;
        loop {
            let found = step(idx(chunks.range(&from.to_be_bytes()[..]..), ctx)?.next(), ctx)?
                .and_then(|(k, _)| run_of(k.value()));
            let Some(run) = found else { break };
            next_run = next_run.max(run.saturating_add(1));
            if listed.binary_search(&run).is_err() {
                let (low, high) = run_range(run);
                idx(chunks.retain_in(low.as_slice()..high.as_slice(), |_, _| false), ctx)?;
            }
            match run.checked_add(1) {
                Some(next) => from = next,
                None => break,
            }
        }
        let mut memory = Memory::default();
        for record in idx(log.iter(), ctx)? {
            let (_, v) = idx(record, ctx)?;
            decode_entries(v.value(), |e| memory.insert(e, tables.suffix))
                .map_err(|e| StoreError::Corrupt { message: format!("{}: {e}", tables.log) })?;
        }
        let filters = open_filters(tx, tables, &listed, &chunks)?;
        Ok(Self {
            tables,
            limits,
            memory: RwLock::new(memory),
            writer: Mutex::new(Writer { next_run, merge: None }),
            filters: RwLock::new(filters),
        })
    }

    /// Writes `entries` (in order, each once) as one run, in `tx`: for entries of another
    /// layout being taken in.
    pub(crate) fn import(
        &self,
        tx: &WriteTransaction,
        entries: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<(), StoreError> {
        let ctx = "writing a sorted run";
        let mut writer = self.writer.lock();
        let mut chunks = idx(tx.open_table(self.tables.chunks()), ctx)?;
        let mut runs = idx(tx.open_table(self.tables.runs()), ctx)?;
        let run = writer.next_run;
        let entries: Vec<Vec<u8>> = entries.into_iter().collect();
        let mut filter = TraceFilter::sized(entries.len());
        let chunk_bytes = self.limits.chunk_bytes;
        let count = write_chunks(
            &mut chunks,
            run,
            &entries,
            chunk_bytes,
            self.tables.suffix,
            &mut filter,
            ctx,
        )?;
        if count == 0 {
            return Ok(());
        }
        idx(runs.insert(run, (level_for(count, self.limits), count)), ctx)?;
        let mut filters = idx(tx.open_table(self.tables.filters()), ctx)?;
        idx(filters.insert(run, filter.to_bytes().as_slice()), ctx)?;
        // Kept at once: the store does not open unless the caller commits.
        self.filters.write().insert(run, Arc::new(filter));
        writer.next_run += 1;
        Ok(())
    }

    /// Starts the one writer's work for a transaction; other writers wait.
    pub(crate) fn session(&self) -> RunSession<'_> {
        RunSession {
            index: self,
            writer: self.writer.lock(),
            added: Vec::new(),
            pending: Memory::default(),
            after: None,
        }
    }

    /// Entries in memory of lookup key `key`.
    fn in_memory(&self, key: &[u8], out: &mut Vec<Vec<u8>>) {
        self.memory.read().lookup(key, self.tables.suffix, out);
    }

    /// Entries starting with each of `prefixes` (a list per prefix), from memory and then from
    /// the runs as of the transaction `begin` opens, which is begun only after memory was read
    /// (see the module docs); the transaction is returned for reading the rows.
    pub(crate) fn lookup(
        &self,
        prefixes: &[&[u8]],
        begin: impl FnOnce() -> Result<redb::ReadTransaction, StoreError>,
    ) -> Result<(Vec<Entries>, redb::ReadTransaction), StoreError> {
        let ctx = "reading a sorted-run index";
        let mut out = vec![Vec::new(); prefixes.len()];
        for (prefix, found) in prefixes.iter().zip(&mut out) {
            self.in_memory(prefix, found);
        }
        let read = begin()?;
        {
            let view = View {
                chunks: idx(read.open_table(self.tables.chunks()), ctx)?,
                runs: idx(read.open_table(self.tables.runs()), ctx)?,
            };
            let filters = self.filters.read();
            for (prefix, found) in prefixes.iter().zip(&mut out) {
                view.scan(prefix, &filters, found, ctx)?;
            }
        }
        Ok((out, read))
    }

    /// Memory the runs' filters take.
    pub(crate) fn filter_bytes(&self) -> usize {
        self.filters.read().values().map(|f| f.bytes()).sum()
    }

    /// Runs listed: a merge that falls behind shows as this growing.
    pub(crate) fn runs(&self) -> u64 {
        self.filters.read().len() as u64
    }
}

impl<C, R> View<C, R>
where
    C: ReadableTable<&'static [u8], &'static [u8]>,
    R: ReadableTable<u64, (u8, u64)>,
{
    /// Appends every entry of every listed run that starts with the lookup key `prefix` to
    /// `out`, reading only runs whose filter may hold it.
    fn scan(
        &self,
        prefix: &[u8],
        filters: &HashMap<u64, Arc<TraceFilter>>,
        out: &mut Vec<Vec<u8>>,
        ctx: &str,
    ) -> Result<(), StoreError> {
        for run in idx(self.runs.iter(), ctx)? {
            let run = idx(run, ctx)?.0.value();
            if filters.get(&run).is_some_and(|f| !f.may_contain_bytes(prefix)) {
                continue;
            }
            let (low, high) = run_range(run);
            let mut probe = low.clone();
            probe.extend_from_slice(prefix);
            // The chunk holding the first entry at or after `prefix`: the last one starting
            // at or before it, or else the run's first.
            let from = step(
                idx(self.chunks.range(low.as_slice()..=probe.as_slice()), ctx)?.next_back(),
                ctx,
            )?
            .map_or(low, |(k, _)| k.value().to_vec());
            let mut past = false;
            for chunk in idx(self.chunks.range(from.as_slice()..high.as_slice()), ctx)? {
                let (_, v) = idx(chunk, ctx)?;
                decode_entries(v.value(), |e| {
                    if past {
                        return;
                    }
                    if e.starts_with(prefix) {
                        out.push(e.to_vec());
                    } else if e > prefix {
                        past = true;
                    }
                })
                .map_err(|e| StoreError::Corrupt { message: format!("a sorted-run chunk: {e}") })?;
                if past {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The writer's work in one transaction: entries added, then [`RunSession::finish`] before the
/// commit and [`RunSession::committed`] after it. Dropped without `committed` (the transaction
/// failed), memory keeps what it had and any merge resumes from its previous step.
pub(crate) struct RunSession<'i> {
    index: &'i RunIndex,
    writer: MutexGuard<'i, Writer>,
    /// This session's entries, encoded for the log and as they go into memory.
    added: Vec<u8>,
    pending: Memory,
    after: Option<AfterCommit>,
}

struct AfterCommit {
    flushed: bool,
    merge: Option<Merge>,
    next_run: u64,
    /// Filters of the runs it listed, and the runs it dropped.
    filters: Vec<(u64, Arc<TraceFilter>)>,
    dropped: Vec<u64>,
}

impl RunSession<'_> {
    /// Adds an entry: this session's lookups see it at once, others from
    /// [`RunSession::finish`] on (before the commit: readers check entries against rows, which
    /// they see only once committed).
    pub(crate) fn add(&mut self, entry: Vec<u8>) {
        put_len(&mut self.added, 0);
        put_len(&mut self.added, entry.len());
        self.added.extend_from_slice(&entry);
        self.pending.insert(&entry, self.index.tables.suffix);
    }

    /// Entries starting with `prefix` as `tx` sees them, this session's included.
    pub(crate) fn lookup_in(
        &self,
        tx: &WriteTransaction,
        prefix: &[u8],
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let ctx = "reading a sorted-run index";
        let mut out = Vec::new();
        self.index.in_memory(prefix, &mut out);
        self.pending.lookup(prefix, self.index.tables.suffix, &mut out);
        let filters = self.index.filters.read();
        // The writer's own session: the filters are those of every listed run (it lists runs
        // only in `finish`), so when none may hold the key, no table needs reading.
        if filters.values().all(|f| !f.may_contain_bytes(prefix)) {
            return Ok(out);
        }
        let view = View {
            chunks: idx(tx.open_table(self.index.tables.chunks()), ctx)?,
            runs: idx(tx.open_table(self.index.tables.runs()), ctx)?,
        };
        view.scan(prefix, &filters, &mut out, ctx)?;
        Ok(out)
    }

    /// Logs this transaction's entries, writes memory out as a run once it holds enough, and
    /// takes a merge one step further.
    pub(crate) fn finish(&mut self, tx: &WriteTransaction) -> Result<(), StoreError> {
        let ctx = "writing a sorted-run index";
        let tables = self.index.tables;
        let mut log = idx(tx.open_table(tables.log()), ctx)?;
        let mut runs = idx(tx.open_table(tables.runs()), ctx)?;
        let mut chunks = idx(tx.open_table(tables.chunks()), ctx)?;
        let mut stored_filters = idx(tx.open_table(tables.filters()), ctx)?;
        let (mut filters, mut dropped) = (Vec::new(), Vec::new());
        let mut next_run = self.writer.next_run;
        if !self.added.is_empty() {
            let number = idx(log.last(), ctx)?.map_or(1, |(k, _)| k.value() + 1);
            idx(log.insert(number, self.added.as_slice()), ctx)?;
            let mut memory = self.index.memory.write();
            memory.take(std::mem::take(&mut self.pending));
        }
        let limits = self.index.limits;
        let mut flushed = false;
        {
            let memory = self.index.memory.read();
            if memory.entries >= limits.flush_entries {
                let run = next_run;
                next_run += 1;
                let mut filter = TraceFilter::sized(memory.by_key.len());
                let (chunk_bytes, suffix) = (limits.chunk_bytes, tables.suffix);
                let count = write_chunks(
                    &mut chunks,
                    run,
                    memory.sorted(tables.suffix),
                    chunk_bytes,
                    suffix,
                    &mut filter,
                    ctx,
                )?;
                idx(runs.insert(run, (0, count)), ctx)?;
                idx(stored_filters.insert(run, filter.to_bytes().as_slice()), ctx)?;
                filters.push((run, Arc::new(filter)));
                idx(log.retain(|_, _| false), ctx)?;
                flushed = true;
            }
        }
        let mut merge = self.writer.merge.clone();
        if merge.is_none() {
            merge = plan_merge(&runs, &mut next_run, limits.fanout, ctx)?;
        }
        if let Some(m) = merge.as_mut() {
            let finished =
                m.step(&mut chunks, &mut runs, &mut stored_filters, limits, tables, ctx)?;
            if finished {
                if m.written > 0 {
                    filters.push((m.output, Arc::new(m.filter.lock().clone())));
                }
                dropped.extend(m.inputs.iter().map(|i| i.run));
                merge = None;
            }
        }
        self.after = Some(AfterCommit { flushed, merge, next_run, filters, dropped });
        Ok(())
    }

    /// After the transaction committed: memory lets go of what is now in a run, and the merge
    /// keeps its new place.
    pub(crate) fn committed(mut self) {
        let Some(after) = self.after.take() else { return };
        if after.flushed {
            // One writer at a time, and this session added nothing since the run was written.
            *self.index.memory.write() = Memory::default();
        }
        {
            let mut filters = self.index.filters.write();
            filters.extend(after.filters);
            for run in after.dropped {
                filters.remove(&run);
            }
        }
        self.writer.merge = after.merge;
        self.writer.next_run = after.next_run;
    }
}

/// Entries held in memory, by lookup key: each key's suffixes (the entries' last
/// [`RunTables::suffix`] bytes), one after the other. An entry added twice is held twice
/// (lookups may see an entry twice anyway) and written once.
#[derive(Debug, Default)]
struct Memory {
    by_key: threadline_core::hash::HashMap<Box<[u8]>, Vec<u8>>,
    entries: usize,
}

impl Memory {
    fn insert(&mut self, entry: &[u8], suffix: usize) {
        let (key, rest) = entry.split_at(entry.len().saturating_sub(suffix));
        match self.by_key.get_mut(key) {
            Some(suffixes) => suffixes.extend_from_slice(rest),
            None => {
                self.by_key.insert(key.into(), rest.to_vec());
            }
        }
        self.entries += 1;
    }

    /// Every entry of `other`.
    fn take(&mut self, other: Memory) {
        self.entries += other.entries;
        for (key, suffixes) in other.by_key {
            self.by_key.entry(key).or_default().extend_from_slice(&suffixes);
        }
    }

    /// The entries of lookup key `key`.
    fn lookup(&self, key: &[u8], suffix: usize, out: &mut Vec<Vec<u8>>) {
        if let Some(suffixes) = self.by_key.get(key) {
            out.extend(suffixes.chunks(suffix.max(1)).map(|rest| [key, rest].concat()));
        }
    }

    /// Every entry, in order: what a run is written from.
    fn sorted(&self, suffix: usize) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = Vec::with_capacity(self.entries);
        for (key, suffixes) in &self.by_key {
            out.extend(suffixes.chunks(suffix.max(1)).map(|rest| [&key[..], rest].concat()));
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The oldest `fanout` runs of the lowest level that has that many, as a new merge.
fn plan_merge(
    runs: &redb::Table<'_, u64, (u8, u64)>,
    next_run: &mut u64,
    fanout: usize,
    ctx: &str,
) -> Result<Option<Merge>, StoreError> {
    let mut by_level: std::collections::BTreeMap<u8, Vec<(u64, u64)>> = Default::default();
    for run in idx(runs.iter(), ctx)? {
        let (k, v) = idx(run, ctx)?;
        let (level, entries) = v.value();
        by_level.entry(level).or_default().push((k.value(), entries));
    }
    let Some((&level, ids)) = by_level.iter().find(|(_, ids)| ids.len() >= fanout) else {
        return Ok(None);
    };
    let output = *next_run;
    *next_run += 1;
    let entries: u64 = ids[..fanout].iter().map(|(_, entries)| entries).sum();
    Ok(Some(Merge {
        inputs: ids[..fanout]
            .iter()
            .map(|&(run, _)| Input { run, after: None, done: false, entries: VecDeque::new() })
            .collect(),
        output,
        level: level.saturating_add(1),
        written: 0,
        chunk: ChunkBuilder::default(),
        last: None,
        filter: Arc::new(Mutex::new(TraceFilter::sized(
            usize::try_from(entries).unwrap_or(usize::MAX / crate::trace_filter::BITS_PER_TRACE),
        ))),
    }))
}

impl Merge {
    /// Reads up to `merge_step_bytes` of the inputs and writes what it can; once all is read,
    /// lists the output, drops the inputs and returns true.
    fn step(
        &mut self,
        chunks: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
        runs: &mut redb::Table<'_, u64, (u8, u64)>,
        filters: &mut redb::Table<'_, u64, &'static [u8]>,
        limits: RunLimits,
        tables: RunTables,
        ctx: &str,
    ) -> Result<bool, StoreError> {
        let filter = Arc::clone(&self.filter);
        let mut filter = filter.lock();
        let mut read = 0usize;
        loop {
            // Every input with nothing in hand reads its next chunk before any comparison.
            for input in &mut self.inputs {
                if input.entries.is_empty() && !input.done {
                    read += input.refill(chunks, ctx)?;
                }
            }
            let next = self
                .inputs
                .iter()
                .enumerate()
                .filter_map(|(i, input)| input.entries.front().map(|e| (i, e)))
                .min_by(|a, b| a.1.cmp(b.1))
                .map(|(i, _)| i);
            let Some(i) = next else { break };
            let Some(entry) = self.inputs[i].entries.pop_front() else { break };
            if self.last.as_deref() != Some(&entry[..]) {
                self.chunk.push(&entry);
                filter.insert_bytes(tables.key_of(&entry));
                self.written += 1;
                if self.chunk.bytes.len() >= limits.chunk_bytes {
                    self.chunk.write(chunks, self.output, ctx)?;
                }
                self.last = Some(entry);
            }
            if read >= limits.merge_step_bytes {
                return Ok(false);
            }
        }
        self.chunk.write(chunks, self.output, ctx)?;
        if self.written > 0 {
            idx(runs.insert(self.output, (self.level, self.written)), ctx)?;
            idx(filters.insert(self.output, filter.to_bytes().as_slice()), ctx)?;
        }
        for input in &self.inputs {
            idx(runs.remove(input.run), ctx)?;
            idx(filters.remove(input.run), ctx)?;
            let (low, high) = run_range(input.run);
            idx(chunks.retain_in(low.as_slice()..high.as_slice(), |_, _| false), ctx)?;
        }
        Ok(true)
    }
}

impl Input {
    /// Reads the run's next chunk into `entries`; returns its size.
    fn refill(
        &mut self,
        chunks: &redb::Table<'_, &'static [u8], &'static [u8]>,
        ctx: &str,
    ) -> Result<usize, StoreError> {
        let (low, high) = run_range(self.run);
        let lower = match &self.after {
            Some(after) => Bound::Excluded(after.as_slice()),
            None => Bound::Included(low.as_slice()),
        };
        let next = step(
            idx(chunks.range::<&[u8]>((lower, Bound::Excluded(high.as_slice()))), ctx)?.next(),
            ctx,
        )?
        .map(|(k, v)| (k.value().to_vec(), v.value().to_vec()));
        let Some((key, bytes)) = next else {
            self.done = true;
            return Ok(0);
        };
        decode_entries(&bytes, |e| self.entries.push_back(e.into()))
            .map_err(|e| StoreError::Corrupt { message: format!("a sorted-run chunk: {e}") })?;
        self.after = Some(key);
        Ok(bytes.len())
    }
}

/// Entries being gathered into a chunk: each as the length it shares with the previous entry,
/// then the length and bytes of the rest. A log record is encoded the same way, sharing
/// nothing.
#[derive(Debug, Clone, Default)]
struct ChunkBuilder {
    first: Vec<u8>,
    previous: Vec<u8>,
    bytes: Vec<u8>,
}

impl ChunkBuilder {
    fn push(&mut self, entry: &[u8]) {
        if self.bytes.is_empty() {
            self.first = entry.to_vec();
            self.previous.clear();
        }
        let shared = self.previous.iter().zip(entry).take_while(|(a, b)| a == b).count();
        put_len(&mut self.bytes, shared);
        put_len(&mut self.bytes, entry.len() - shared);
        self.bytes.extend_from_slice(&entry[shared..]);
        self.previous.clear();
        self.previous.extend_from_slice(entry);
    }

    /// Writes the chunk (if it holds any entry) into `run` and starts the next.
    fn write(
        &mut self,
        chunks: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
        run: u64,
        ctx: &str,
    ) -> Result<(), StoreError> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        let mut key = run.to_be_bytes().to_vec();
        key.extend_from_slice(&self.first);
        idx(chunks.insert(key.as_slice(), self.bytes.as_slice()), ctx)?;
        self.bytes.clear();
        Ok(())
    }
}

/// Writes `entries` (in order, each once) as the chunks of `run`, adding their lookup keys
/// (each entry less its last `suffix` bytes) to `filter`; returns how many there were.
fn write_chunks(
    chunks: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    run: u64,
    entries: impl IntoIterator<Item = impl AsRef<[u8]>>,
    chunk_bytes: usize,
    suffix: usize,
    filter: &mut TraceFilter,
    ctx: &str,
) -> Result<u64, StoreError> {
    let mut chunk = ChunkBuilder::default();
    let mut count = 0u64;
    for entry in entries {
        let entry = entry.as_ref();
        chunk.push(entry);
        filter.insert_bytes(&entry[..entry.len().saturating_sub(suffix)]);
        count += 1;
        if chunk.bytes.len() >= chunk_bytes {
            chunk.write(chunks, run, ctx)?;
        }
    }
    chunk.write(chunks, run, ctx)?;
    Ok(count)
}

/// Calls `each` with every entry of an encoded chunk (or log record), in order.
fn decode_entries(bytes: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let mut entry: Vec<u8> = Vec::new();
    while r.pos < bytes.len() {
        // Checked against the entry before, not against the bytes left.
        let shared = r.index()?;
        if shared > entry.len() {
            return Err(DecodeError::Invalid("a shared prefix longer than the entry before"));
        }
        let rest = r.len()?;
        entry.truncate(shared);
        entry.extend_from_slice(r.take(rest)?);
        each(&entry);
    }
    Ok(())
}

/// An iterator's next item, its error as the store's.
fn step<T>(
    item: Option<Result<T, redb::StorageError>>,
    ctx: &str,
) -> Result<Option<T>, StoreError> {
    item.map(|r| idx(r, ctx)).transpose()
}

/// Chunk keys of `run`: from `low` (included) to `high` (excluded).
fn run_range(run: u64) -> (Vec<u8>, Vec<u8>) {
    let low = run.to_be_bytes().to_vec();
    let high = match run.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        None => vec![0xff; 9],
    };
    (low, high)
}

/// Filters of the `listed` runs, from `<name>_filters`; a run whose filter is missing or
/// damaged gets one made from its chunks, and stored. Filters of runs no longer listed go.
fn open_filters(
    tx: &WriteTransaction,
    tables: RunTables,
    listed: &[u64],
    chunks: &redb::Table<'_, &'static [u8], &'static [u8]>,
) -> Result<HashMap<u64, Arc<TraceFilter>>, StoreError> {
    let ctx = "opening a sorted-run index's filters";
    let mut stored = idx(tx.open_table(tables.filters()), ctx)?;
    let mut out = HashMap::new();
    let mut made = Vec::new();
    for &run in listed {
        let found = idx(stored.get(run), ctx)?.map(|v| TraceFilter::from_bytes(v.value()));
        if let Some(Ok(filter)) = found {
            out.insert(run, Arc::new(filter));
            continue;
        }
        let (low, high) = run_range(run);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for chunk in idx(chunks.range(low.as_slice()..high.as_slice()), ctx)? {
            let (_, v) = idx(chunk, ctx)?;
            decode_entries(v.value(), |e| keys.push(tables.key_of(e).to_vec()))
                .map_err(|e| StoreError::Corrupt { message: format!("a sorted-run chunk: {e}") })?;
        }
        keys.dedup();
        let mut filter = TraceFilter::sized(keys.len());
        for key in &keys {
            filter.insert_bytes(key);
        }
        made.push((run, filter.to_bytes()));
        out.insert(run, Arc::new(filter));
    }
    for (run, bytes) in made {
        idx(stored.insert(run, bytes.as_slice()), ctx)?;
    }
    idx(stored.retain(|run, _| out.contains_key(&run)), ctx)?;
    Ok(out)
}

fn run_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(..8)?.try_into().ok()?))
}

/// The level a run of `entries` belongs to: the first whose runs are at least that large.
fn level_for(entries: u64, limits: RunLimits) -> u8 {
    let mut level = 0u8;
    let mut size = limits.flush_entries as u64;
    while size < entries && level < 16 {
        size = size.saturating_mul(limits.fanout as u64);
        level += 1;
    }
    level
}
