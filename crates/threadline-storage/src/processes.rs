//! The process table: one row per process, kept current while it runs and final once it
//! finishes, with indexes from process id, business key, trace id and type; and the durable
//! event log, written in the same transaction as the rows the events describe.
//!
//! Rows are keyed by start time and id, so the rows of new processes go where the table
//! ends, and a commit writes few pages however large the table grows; a row is found by id
//! through the id index (id ‖ start time, in sorted runs whose filters answer for the ids
//! they hold). Keyed by id alone, as up to index version 3, every new row went to a page of
//! its own, which the commit then wrote out (see `docs/storage.md`).
//!
//! Every change is committed durably (one fsync per group of changes) before its events are
//! handed back to be published, so a published event is always reflected in a stored row:
//! after a crash the engine can be rebuilt from the rows and only transitions the rows lack
//! are announced again.

use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use threadline_core::hash::{HashMap, HashSet};
use threadline_core::id::TraceId;

use crate::StoreError;
use crate::codec::{DecodeError, Reader, put_len, put_str, put_u64};
use crate::runs::{RunIndex, RunLimits, RunSession, RunTables};
use crate::store::{Store, begin_durable, idx};

/// Start time (8 bytes big-endian) ‖ process id → encoded [`ProcessRecord`].
pub(crate) const PROCESS_ROWS: TableDefinition<'_, &[u8], &[u8]> =
    TableDefinition::new("process_rows");
/// Process id ‖ start time (8 bytes big-endian), in sorted runs: where a process's row is.
/// A row that moved (its start went back) or went (folded into another) leaves its entry,
/// and readers try each entry of an id.
pub(crate) const ID_RUNS: RunTables = RunTables {
    log: "process_ids_log",
    runs: "process_ids_runs",
    chunks: "process_ids_chunks",
    filters: "process_ids_filters",
    suffix: 8,
};
/// Trace id ‖ process id, for every trace of a process but the one whose id it bears (a
/// lookup by trace tries the row of that id first), in sorted runs.
pub(crate) const TRACE_RUNS: RunTables = RunTables {
    log: "process_traces_log",
    runs: "process_traces_runs",
    chunks: "process_traces_chunks",
    filters: "process_traces_filters",
    suffix: 16,
};
/// Length-prefixed key ‖ length-prefixed value ‖ process id, in sorted runs.
pub(crate) const KEY_RUNS: RunTables = RunTables {
    log: "process_keys_log",
    runs: "process_keys_runs",
    chunks: "process_keys_chunks",
    filters: "process_keys_filters",
    suffix: 16,
};
/// The B-trees of index version 1 the sorted runs replace: trace id → process id, and key
/// entry → nothing. Taken into runs (and deleted) on open.
const V1_TRACES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("process_traces");
const V1_KEYS: TableDefinition<'_, &[u8], ()> = TableDefinition::new("process_keys");
/// The tables of index versions 1 to 3 that [`PROCESS_ROWS`] and [`PROCESS_LIVE`] replace:
/// rows by process id, start time ‖ id, and running process ids. Taken in (and deleted) on
/// open.
const V3_ROWS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("processes");
const V3_BY_START: TableDefinition<'_, &[u8], ()> = TableDefinition::new("process_by_start");
const V3_RUNNING: TableDefinition<'_, &[u8], ()> = TableDefinition::new("process_running");
/// Length-prefixed type, start time, process id → nothing.
pub(crate) const PROCESS_BY_TYPE: TableDefinition<'_, &[u8], ()> =
    TableDefinition::new("process_by_type");
/// Running processes: start time ‖ process id (their rows' keys) → nothing. What a restart
/// resumes.
pub(crate) const PROCESS_LIVE: TableDefinition<'_, &[u8], ()> =
    TableDefinition::new("process_live");
/// Event sequence number → encoded [`StoredEvent`].
pub(crate) const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");

pub(crate) const META_APPLIED_SEQ: &str = "applied_seq";
pub(crate) const META_NEXT_EVENT: &str = "next_event_seq";

/// Events kept in the durable log; older ones are pruned.
pub const EVENT_LOG_CAPACITY: u64 = 1_000_000;
/// Row encoding version, first byte of every row.
const ROW_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Running,
    Completed,
    Failed,
}

impl RecordState {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordState::Running => "running",
            RecordState::Completed => "completed",
            RecordState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "running" => RecordState::Running,
            "completed" => RecordState::Completed,
            "failed" => RecordState::Failed,
            _ => return None,
        })
    }
}

/// Where a running process waited when its row was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitingRecord {
    Message { system: String, destination: String, group: String, since: u64 },
    MissingParent { count: u64 },
    Root,
}

/// One row of the process table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRecord {
    pub id: TraceId,
    pub process_type: String,
    pub state: RecordState,
    /// How completion was decided (`structural`, `quiescence`), once completed.
    pub mode: Option<String>,
    pub stuck: bool,
    pub sla_breached: bool,
    pub start_nanos: u64,
    pub end_nanos: u64,
    pub last_activity: u64,
    pub spans: u32,
    pub error_spans: u32,
    /// The process's own trace first, then the traces that joined it.
    pub traces: Vec<TraceId>,
    pub keys: Vec<(String, String)>,
    pub waiting: Vec<WaitingRecord>,
    pub failure: Option<String>,
    /// The spec check of its last completion: `None` when no spec applies.
    pub spec_violations: Option<Vec<String>>,
}

/// An event as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Position in the log: increasing, never reused.
    pub seq: u64,
    pub kind: String,
    pub process_id: TraceId,
    pub process_type: String,
    pub at: u64,
    pub detail: String,
}

/// A group of changes to apply together.
#[derive(Debug, Default)]
pub struct ProcessChanges {
    pub records: Vec<ProcessRecord>,
    /// Processes folded into another, as (folded, into): the folded row goes, its keys and
    /// traces move to the other.
    pub removed: Vec<(TraceId, TraceId)>,
    /// Business keys found, as (process, key, value): added to the process's row. A row's
    /// keys are only ever added to.
    pub keys: Vec<(TraceId, String, String)>,
    /// Events to log; their `seq` is assigned on commit.
    pub events: Vec<StoredEvent>,
    /// The WAL sequence number whose effects are now all in the table, if it advanced.
    pub applied_seq: Option<u64>,
}

/// Which processes a listing returns.
#[derive(Debug, Clone, Default)]
pub struct ProcessFilter {
    pub process_type: Option<String>,
    pub state: Option<RecordState>,
    /// Start time range, inclusive, in Unix nanoseconds.
    pub start_from: Option<u64>,
    pub start_to: Option<u64>,
    /// Only processes flagged stuck (`Some(true)`) or not (`Some(false)`).
    pub stuck: Option<bool>,
    pub sla_breached: Option<bool>,
    /// Duration range (end − start so far), inclusive, in nanoseconds.
    pub min_duration: Option<u64>,
    pub max_duration: Option<u64>,
}

impl ProcessFilter {
    /// True when `r` passes every condition, its type and start time included.
    pub fn matches(&self, r: &ProcessRecord) -> bool {
        self.process_type.as_ref().is_none_or(|t| *t == r.process_type)
            && self.start_from.is_none_or(|from| r.start_nanos >= from)
            && self.start_to.is_none_or(|to| r.start_nanos <= to)
            && self.keeps(r)
    }

    fn keeps(&self, r: &ProcessRecord) -> bool {
        let duration = r.end_nanos.saturating_sub(r.start_nanos);
        self.state.is_none_or(|s| s == r.state)
            && self.stuck.is_none_or(|f| f == r.stuck)
            && self.sla_breached.is_none_or(|f| f == r.sla_breached)
            && self.min_duration.is_none_or(|m| duration >= m)
            && self.max_duration.is_none_or(|m| duration <= m)
    }
}

/// Where a listing resumes: after this (start time, process id), going back in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub start_nanos: u64,
    pub id: TraceId,
}

fn encode_record(r: &ProcessRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(ROW_VERSION);
    out.extend_from_slice(r.id.as_bytes());
    put_str(&mut out, &r.process_type);
    out.push(match r.state {
        RecordState::Running => 0,
        RecordState::Completed => 1,
        RecordState::Failed => 2,
    });
    put_opt(&mut out, r.mode.as_deref());
    out.push(u8::from(r.stuck) | (u8::from(r.sla_breached) << 1));
    put_u64(&mut out, r.start_nanos);
    put_u64(&mut out, r.end_nanos);
    put_u64(&mut out, r.last_activity);
    put_u64(&mut out, r.spans.into());
    put_u64(&mut out, r.error_spans.into());
    put_len(&mut out, r.traces.len());
    for t in &r.traces {
        out.extend_from_slice(t.as_bytes());
    }
    put_len(&mut out, r.keys.len());
    for (k, v) in &r.keys {
        put_str(&mut out, k);
        put_str(&mut out, v);
    }
    put_len(&mut out, r.waiting.len());
    for w in &r.waiting {
        match w {
            WaitingRecord::Message { system, destination, group, since } => {
                out.push(0);
                put_str(&mut out, system);
                put_str(&mut out, destination);
                put_str(&mut out, group);
                put_u64(&mut out, *since);
            }
            WaitingRecord::MissingParent { count } => {
                out.push(1);
                put_u64(&mut out, *count);
            }
            WaitingRecord::Root => out.push(2),
        }
    }
    put_opt(&mut out, r.failure.as_deref());
    match &r.spec_violations {
        None => out.push(0),
        Some(violations) => {
            out.push(1);
            put_len(&mut out, violations.len());
            for v in violations {
                put_str(&mut out, v);
            }
        }
    }
    out
}

fn put_opt(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

fn opt(r: &mut Reader<'_>) -> Result<Option<String>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        1 => Some(r.string()?),
        _ => return Err(DecodeError::Invalid("bad option marker")),
    })
}

fn decode_record(bytes: &[u8]) -> Result<ProcessRecord, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8()?;
    if version != ROW_VERSION {
        return Err(DecodeError::Version(version));
    }
    let id = r.trace_id()?;
    let process_type = r.string()?;
    let state = match r.u8()? {
        0 => RecordState::Running,
        1 => RecordState::Completed,
        2 => RecordState::Failed,
        _ => return Err(DecodeError::Invalid("unknown process state")),
    };
    let mode = opt(&mut r)?;
    let flags = r.u8()?;
    let start_nanos = r.u64()?;
    let end_nanos = r.u64()?;
    let last_activity = r.u64()?;
    let spans = r.u32()?;
    let error_spans = r.u32()?;
    let n = r.len()?;
    let mut traces = Vec::with_capacity(n);
    for _ in 0..n {
        traces.push(r.trace_id()?);
    }
    let n = r.len()?;
    let mut keys = Vec::with_capacity(n);
    for _ in 0..n {
        keys.push((r.string()?, r.string()?));
    }
    let n = r.len()?;
    let mut waiting = Vec::with_capacity(n);
    for _ in 0..n {
        waiting.push(match r.u8()? {
            0 => WaitingRecord::Message {
                system: r.string()?,
                destination: r.string()?,
                group: r.string()?,
                since: r.u64()?,
            },
            1 => WaitingRecord::MissingParent { count: r.u64()? },
            2 => WaitingRecord::Root,
            _ => return Err(DecodeError::Invalid("unknown waiting kind")),
        });
    }
    let failure = opt(&mut r)?;
    let spec_violations = match r.u8()? {
        0 => None,
        1 => {
            let n = r.len()?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(r.string()?);
            }
            Some(v)
        }
        _ => return Err(DecodeError::Invalid("bad spec marker")),
    };
    if r.pos != bytes.len() {
        return Err(DecodeError::Invalid("trailing bytes after the process row"));
    }
    Ok(ProcessRecord {
        id,
        process_type,
        state,
        mode,
        stuck: flags & 1 != 0,
        sla_breached: flags & 2 != 0,
        start_nanos,
        end_nanos,
        last_activity,
        spans,
        error_spans,
        traces,
        keys,
        waiting,
        failure,
        spec_violations,
    })
}

fn encode_event(e: &StoredEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(ROW_VERSION);
    put_str(&mut out, &e.kind);
    out.extend_from_slice(e.process_id.as_bytes());
    put_str(&mut out, &e.process_type);
    put_u64(&mut out, e.at);
    put_str(&mut out, &e.detail);
    out
}

fn decode_event(seq: u64, bytes: &[u8]) -> Result<StoredEvent, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8()?;
    if version != ROW_VERSION {
        return Err(DecodeError::Version(version));
    }
    Ok(StoredEvent {
        seq,
        kind: r.string()?,
        process_id: r.trace_id()?,
        process_type: r.string()?,
        at: r.u64()?,
        detail: r.string()?,
    })
}

fn key_entry(key: &str, value: &str, id: Option<TraceId>) -> Option<Vec<u8>> {
    let klen = u16::try_from(key.len()).ok()?;
    let vlen = u16::try_from(value.len()).ok()?;
    let mut out = Vec::with_capacity(4 + key.len() + value.len() + 16);
    out.extend_from_slice(&klen.to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&vlen.to_be_bytes());
    out.extend_from_slice(value.as_bytes());
    if let Some(id) = id {
        out.extend_from_slice(id.as_bytes());
    }
    Some(out)
}

fn time_entry(start: u64, id: TraceId) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&start.to_be_bytes());
    out[8..].copy_from_slice(id.as_bytes());
    out
}

fn type_prefix(process_type: &str) -> Vec<u8> {
    let len = u16::try_from(process_type.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(2 + process_type.len() + 24);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&process_type.as_bytes()[..usize::from(len)]);
    out
}

fn type_entry(process_type: &str, start: u64, id: TraceId) -> Vec<u8> {
    let mut out = type_prefix(process_type);
    out.extend_from_slice(&time_entry(start, id));
    out
}

fn id_of(bytes: &[u8]) -> Option<TraceId> {
    TraceId::from_slice(bytes.get(bytes.len().checked_sub(16)?..)?).ok()
}

/// The process table and its indexes, open in one write transaction.
struct Tables<'t, 's> {
    tx: &'t redb::WriteTransaction,
    rows: redb::Table<'t, &'static [u8], &'static [u8]>,
    ids: &'t mut RunSession<'s>,
    traces: &'t mut RunSession<'s>,
    keys: &'t mut RunSession<'s>,
    by_type: redb::Table<'t, &'static [u8], ()>,
    live: redb::Table<'t, &'static [u8], ()>,
    /// Rows written in this transaction, and of those, rows new to the table.
    written: u64,
    created: u64,
}

const WRITE_CTX: &str = "writing the process table";

impl Tables<'_, '_> {
    /// The row of process `id`: first under `start` when given (where a row being written
    /// again nearly always is), else where the id index says it may be.
    fn find(&self, id: TraceId, start: Option<u64>) -> Result<Option<ProcessRecord>, StoreError> {
        if let Some(start) = start
            && let Some(row) = row_at(&self.rows, start, id, WRITE_CTX)?
        {
            return Ok(Some(row));
        }
        let entries = self.ids.lookup_in(self.tx, id.as_bytes())?;
        row_under(&self.rows, starts_of(&entries).filter(|at| Some(*at) != start), id, WRITE_CTX)
    }

    /// Removes a row and its type and running entries; returns it.
    fn remove_row(&mut self, id: TraceId) -> Result<Option<ProcessRecord>, StoreError> {
        let ctx = WRITE_CTX;
        let old = self.find(id, None)?;
        if let Some(old) = &old {
            // Its id, key and trace entries stay: readers check entries against rows.
            let key = time_entry(old.start_nanos, id);
            idx(self.rows.remove(&key[..]), ctx)?;
            idx(
                self.by_type.remove(type_entry(&old.process_type, old.start_nanos, id).as_slice()),
                ctx,
            )?;
            idx(self.live.remove(&key[..]), ctx)?;
        }
        Ok(old)
    }

    fn get(&self, id: TraceId) -> Result<Option<ProcessRecord>, StoreError> {
        self.find(id, None)
    }

    /// Writes a row (its keys joined to the stored row's: keys are never lost), touching only
    /// the index entries that changed since its previous version.
    fn upsert(&mut self, record: &ProcessRecord) -> Result<(), StoreError> {
        let ctx = WRITE_CTX;
        let id = record.id;
        let old = self.find(id, Some(record.start_nanos))?;
        let mut merged;
        let record = match &old {
            // A row's keys and traces are only ever added to: what the stored row has and
            // this version lacks is kept.
            Some(old)
                if old.keys.iter().any(|kv| !record.keys.contains(kv))
                    || old.traces.iter().any(|t| !record.traces.contains(t)) =>
            {
                merged = record.clone();
                Additions { keys: old.keys.clone(), traces: old.traces.clone() }.apply(&mut merged);
                &merged
            }
            _ => record,
        };
        if old.as_ref() == Some(record) {
            // Callers report a process whenever anything about it moved, which often
            // leaves its row as it was: then there is nothing to write.
            return Ok(());
        }
        let key = time_entry(record.start_nanos, id);
        idx(self.rows.insert(&key[..], encode_record(record).as_slice()), ctx)?;
        self.written += 1;
        let Some(old) = old else {
            self.created += 1;
            return self.insert_entries(record);
        };
        // A row's keys and traces are only ever added to (merged above): old entries hold.
        for t in record.traces.iter().filter(|t| **t != id && !old.traces.contains(t)) {
            self.traces.add(trace_entry(*t, id));
        }
        for (k, v) in record.keys.iter().filter(|kv| !old.keys.contains(kv)) {
            if let Some(entry) = key_entry(k, v, Some(id)) {
                self.keys.add(entry);
            }
        }
        let moved = old.start_nanos != record.start_nanos;
        let old_key = time_entry(old.start_nanos, id);
        if moved {
            idx(self.rows.remove(&old_key[..]), ctx)?;
            self.ids.add(id_entry(id, record.start_nanos).to_vec());
        }
        if moved || old.process_type != record.process_type {
            idx(
                self.by_type.remove(type_entry(&old.process_type, old.start_nanos, id).as_slice()),
                ctx,
            )?;
            idx(
                self.by_type.insert(
                    type_entry(&record.process_type, record.start_nanos, id).as_slice(),
                    (),
                ),
                ctx,
            )?;
        }
        let (was, is) = (old.state == RecordState::Running, record.state == RecordState::Running);
        if was && (moved || !is) {
            idx(self.live.remove(&old_key[..]), ctx)?;
        }
        if is && (moved || !was) {
            idx(self.live.insert(&key[..], ()), ctx)?;
        }
        Ok(())
    }

    /// Every index entry of a new row.
    fn insert_entries(&mut self, record: &ProcessRecord) -> Result<(), StoreError> {
        let ctx = WRITE_CTX;
        let id = record.id;
        self.ids.add(id_entry(id, record.start_nanos).to_vec());
        for t in record.traces.iter().filter(|t| **t != id) {
            self.traces.add(trace_entry(*t, id));
        }
        for (k, v) in &record.keys {
            if let Some(entry) = key_entry(k, v, Some(id)) {
                self.keys.add(entry);
            }
        }
        idx(
            self.by_type
                .insert(type_entry(&record.process_type, record.start_nanos, id).as_slice(), ()),
            ctx,
        )?;
        if record.state == RecordState::Running {
            idx(self.live.insert(&time_entry(record.start_nanos, id)[..], ()), ctx)?;
        }
        Ok(())
    }
}

/// The row of the process `trace_id` belongs to, with `read` reading a row by process id: the
/// process named after it if there is one, else the first that its trace entries (`entries`)
/// lead to and that lists it.
fn row_of_trace(
    read: impl Fn(TraceId) -> Result<Option<ProcessRecord>, StoreError>,
    entries: &[Vec<u8>],
    trace_id: TraceId,
) -> Result<Option<ProcessRecord>, StoreError> {
    if let Some(row) = read(trace_id)? {
        return Ok(Some(row));
    }
    for id in entries.iter().filter_map(|e| id_of(e)) {
        if let Some(row) = read(id)?
            && row.traces.contains(&trace_id)
        {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// The row stored under `start` for process `id`.
fn row_at(
    rows: &impl ReadableTable<&'static [u8], &'static [u8]>,
    start: u64,
    id: TraceId,
    ctx: &'static str,
) -> Result<Option<ProcessRecord>, StoreError> {
    idx(rows.get(&time_entry(start, id)[..]), ctx)?
        .map(|v| decode_record(v.value()))
        .transpose()
        .map_err(|e| corrupt("a process row", &e))
}

/// The row of process `id` under the first of `starts` that has one.
fn row_under(
    rows: &impl ReadableTable<&'static [u8], &'static [u8]>,
    starts: impl Iterator<Item = u64>,
    id: TraceId,
    ctx: &'static str,
) -> Result<Option<ProcessRecord>, StoreError> {
    for start in starts {
        if let Some(row) = row_at(rows, start, id, ctx)? {
            return Ok(Some(row));
        }
    }
    Ok(None)
}

/// The start times id entries give, each once.
fn starts_of(entries: &[Vec<u8>]) -> impl Iterator<Item = u64> + '_ {
    let mut seen = Vec::new();
    entries.iter().filter_map(move |e| {
        let start = u64::from_be_bytes(e.get(16..24)?.try_into().ok()?);
        if e.len() != 24 || seen.contains(&start) {
            return None;
        }
        seen.push(start);
        Some(start)
    })
}

fn id_entry(id: TraceId, start: u64) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..16].copy_from_slice(id.as_bytes());
    out[16..].copy_from_slice(&start.to_be_bytes());
    out
}

fn trace_entry(trace_id: TraceId, process: TraceId) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(trace_id.as_bytes());
    out.extend_from_slice(process.as_bytes());
    out
}

/// The process table's sorted-run indexes.
#[derive(Debug)]
pub(crate) struct ProcessIndexes {
    pub ids: RunIndex,
    pub keys: RunIndex,
    pub traces: RunIndex,
}

/// Opens the id, key and trace indexes. An index of `version` 1 first has its B-trees taken
/// into runs, and is then of the current version; rows kept by id (up to version 3) are
/// taken into the rows by start time.
pub(crate) fn open_indexes(
    index: &redb::Database,
    version: u64,
    limits: RunLimits,
) -> Result<ProcessIndexes, StoreError> {
    let ctx = "opening the process indexes";
    let tx = idx(index.begin_write(), ctx)?;
    let ids = RunIndex::open(&tx, ID_RUNS, limits)?;
    let keys = RunIndex::open(&tx, KEY_RUNS, limits)?;
    let traces = RunIndex::open(&tx, TRACE_RUNS, limits)?;
    if version == 1 {
        upgrade_v1(&tx, &keys, &traces)?;
    }
    upgrade_rows(&tx, &ids)?;
    idx(tx.commit(), ctx)?;
    Ok(ProcessIndexes { ids, keys, traces })
}

/// Takes rows kept by process id (index versions 1 to 3) into the rows by start time, with an
/// id entry each, and deletes the tables of that layout. Done by what is found rather than by
/// the version, so an upgrade cut short is finished on the next open.
fn upgrade_rows(tx: &redb::WriteTransaction, ids: &RunIndex) -> Result<(), StoreError> {
    let ctx = "taking process rows kept by id into rows by start time";
    let exists = idx(tx.list_tables(), ctx)?.any(|t| t.name() == V3_ROWS.name());
    if exists {
        let old = idx(tx.open_table(V3_ROWS), ctx)?;
        let mut rows = idx(tx.open_table(PROCESS_ROWS), ctx)?;
        let mut live = idx(tx.open_table(PROCESS_LIVE), ctx)?;
        let mut entries = Vec::new();
        for entry in idx(old.iter(), ctx)? {
            let (_, v) = idx(entry, ctx)?;
            let record = decode_record(v.value()).map_err(|e| corrupt("a process row", &e))?;
            let key = time_entry(record.start_nanos, record.id);
            idx(rows.insert(&key[..], v.value()), ctx)?;
            if record.state == RecordState::Running {
                idx(live.insert(&key[..], ()), ctx)?;
            }
            entries.push(id_entry(record.id, record.start_nanos).to_vec());
        }
        entries.sort_unstable();
        ids.import(tx, entries)?;
    }
    idx(tx.delete_table(V3_ROWS), ctx)?;
    idx(tx.delete_table(V3_BY_START), ctx)?;
    idx(tx.delete_table(V3_RUNNING), ctx)?;
    Ok(())
}

/// Takes the key and trace B-trees of index version 1 into one run each, deletes them, and
/// records the current version.
fn upgrade_v1(
    tx: &redb::WriteTransaction,
    keys: &RunIndex,
    traces: &RunIndex,
) -> Result<(), StoreError> {
    let ctx = "taking a version-1 index to the current version";
    {
        let v1 = idx(tx.open_table(V1_KEYS), ctx)?;
        let mut entries = Vec::new();
        for entry in idx(v1.iter(), ctx)? {
            entries.push(idx(entry, ctx)?.0.value().to_vec());
        }
        keys.import(tx, entries)?;
    }
    {
        let v1 = idx(tx.open_table(V1_TRACES), ctx)?;
        let mut entries = Vec::new();
        for entry in idx(v1.iter(), ctx)? {
            let (k, v) = idx(entry, ctx)?;
            entries.push([k.value(), v.value()].concat());
        }
        traces.import(tx, entries)?;
    }
    idx(tx.delete_table(V1_KEYS), ctx)?;
    idx(tx.delete_table(V1_TRACES), ctx)?;
    {
        let mut meta = idx(tx.open_table(crate::store::META), ctx)?;
        idx(meta.insert(crate::store::META_VERSION, crate::store::INDEX_VERSION), ctx)?;
    }
    Ok(())
}

/// Keys and traces a row gains besides its new version.
#[derive(Debug, Default)]
struct Additions {
    keys: Vec<(String, String)>,
    traces: Vec<TraceId>,
}

impl Additions {
    fn apply(self, record: &mut ProcessRecord) {
        for kv in self.keys {
            if !record.keys.contains(&kv) {
                record.keys.push(kv);
            }
        }
        record.keys.sort();
        for t in self.traces {
            if !record.traces.contains(&t) {
                record.traces.push(t);
            }
        }
    }
}

/// Moves each business key of `changes` into the row of its process (after `home`, which
/// follows processes folded away in the group) when the group has one; the keys left are
/// of processes with no row in the group.
fn join_keys(changes: &mut ProcessChanges, home: impl Fn(TraceId) -> TraceId) {
    if changes.keys.is_empty() {
        return;
    }
    let rows: HashMap<TraceId, usize> =
        changes.records.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    let mut joined: HashMap<usize, Additions> = HashMap::default();
    changes.keys.retain_mut(|(id, key, value)| {
        let Some(&i) = rows.get(&home(*id)) else { return true };
        joined.entry(i).or_default().keys.push((std::mem::take(key), std::mem::take(value)));
        false
    });
    for (i, more) in joined {
        more.apply(&mut changes.records[i]);
    }
}

fn corrupt(what: &str, e: &DecodeError) -> StoreError {
    StoreError::Corrupt { message: format!("{what}: {e}") }
}

impl Store {
    /// Applies a group of process changes and logs their events in one durable transaction;
    /// returns the events with their log positions, to publish now that they are kept.
    /// Blocking: call it from a thread that may wait on the disk.
    ///
    /// The group is worked on in place, without copies: business keys of a process with a
    /// row in the group move into that row, and on success the events move out into the
    /// returned list. A group whose transaction failed holds the same changes as before, and
    /// can be applied again.
    pub fn apply_processes(
        &self,
        changes: &mut ProcessChanges,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let ctx = WRITE_CTX;
        let folded: HashMap<TraceId, TraceId> = changes.removed.iter().copied().collect();
        // A key for a process folded away in this same group goes to its new home.
        let home = |mut id: TraceId| {
            for _ in 0..folded.len() {
                match folded.get(&id) {
                    Some(next) => id = *next,
                    None => break,
                }
            }
            id
        };
        join_keys(changes, home);
        let indexes = &self.process_indexes;
        let (mut ids, mut keys, mut traces) =
            (indexes.ids.session(), indexes.keys.session(), indexes.traces.session());
        let tx = begin_durable(&self.index, ctx)?;
        let (written, created);
        {
            let mut tables = Tables {
                tx: &tx,
                rows: idx(tx.open_table(PROCESS_ROWS), ctx)?,
                ids: &mut ids,
                traces: &mut traces,
                keys: &mut keys,
                by_type: idx(tx.open_table(PROCESS_BY_TYPE), ctx)?,
                live: idx(tx.open_table(PROCESS_LIVE), ctx)?,
                written: 0,
                created: 0,
            };
            let mut events = idx(tx.open_table(EVENTS), ctx)?;
            let mut meta = idx(tx.open_table(crate::store::META), ctx)?;
            // Keys and traces to add, per process: keys found, and the keys and traces of
            // processes folded into it.
            let mut added: HashMap<TraceId, Additions> = HashMap::default();
            for (from, into) in &changes.removed {
                if let Some(old) = tables.remove_row(*from)? {
                    let to = added.entry(*into).or_default();
                    to.keys.extend(old.keys);
                    // Its traces, the one it was named after included, belong to its new home.
                    to.traces.extend(old.traces.iter().chain([from]).filter(|t| *t != into));
                }
            }
            // Keys of processes with no row in this group go to their stored rows.
            for (id, key, value) in &changes.keys {
                added.entry(home(*id)).or_default().keys.push((key.clone(), value.clone()));
            }
            for record in &changes.records {
                match added.remove(&record.id) {
                    Some(more) => {
                        let mut record = record.clone();
                        more.apply(&mut record);
                        tables.upsert(&record)?;
                    }
                    None => tables.upsert(record)?,
                }
            }
            // Additions to a process with no new row here: made to its stored row, found by id
            // or, for a process folded away meanwhile, by its trace.
            for (id, more) in added {
                let row = match tables.get(id)? {
                    Some(row) => Some(row),
                    None => {
                        let entries = tables.traces.lookup_in(&tx, id.as_bytes())?;
                        row_of_trace(|id| tables.get(id), &entries, id)?
                    }
                };
                if let Some(mut row) = row {
                    more.apply(&mut row);
                    tables.upsert(&row)?;
                }
            }
            let mut next = idx(meta.get(META_NEXT_EVENT), ctx)?.map_or(1, |v| v.value());
            for event in &mut changes.events {
                event.seq = next;
                idx(events.insert(next, encode_event(event).as_slice()), ctx)?;
                next += 1;
            }
            idx(meta.insert(META_NEXT_EVENT, next), ctx)?;
            // The log keeps its newest events only.
            let prune_below = next.saturating_sub(EVENT_LOG_CAPACITY);
            if prune_below > 1 {
                idx(events.retain_in(..prune_below, |_, _| false), ctx)?;
            }
            (written, created) = (tables.written, tables.created);
            if let Some(seq) = changes.applied_seq {
                idx(meta.insert(META_APPLIED_SEQ, seq), ctx)?;
            }
        }
        ids.finish(&tx)?;
        keys.finish(&tx)?;
        traces.finish(&tx)?;
        idx(tx.commit(), ctx)?;
        ids.committed();
        keys.committed();
        traces.committed();
        if let Some(seq) = changes.applied_seq {
            self.set_applied_seq(seq);
        }
        self.count_process_writes(written, created);
        Ok(std::mem::take(&mut changes.events))
    }

    /// The stored row of a process, by its id.
    pub fn process(&self, id: TraceId) -> Result<Option<ProcessRecord>, StoreError> {
        Ok(self.rows_by_id(&[id], "reading the process table")?.pop().flatten())
    }

    /// The stored rows of processes `ids` (each `None` when it has none), read in one
    /// transaction, begun after the id index's memory was read (see `runs.rs`).
    fn rows_by_id(
        &self,
        ids: &[TraceId],
        ctx: &'static str,
    ) -> Result<Vec<Option<ProcessRecord>>, StoreError> {
        let prefixes: Vec<&[u8]> = ids.iter().map(|t| &t.as_bytes()[..]).collect();
        let (entries, read) =
            self.process_indexes.ids.lookup(&prefixes, || idx(self.index.begin_read(), ctx))?;
        let rows = idx(read.open_table(PROCESS_ROWS), ctx)?;
        ids.iter()
            .zip(&entries)
            .map(|(&id, entries)| row_under(&rows, starts_of(entries), id, ctx))
            .collect()
    }

    /// The stored rows of the processes `trace_ids` belong to, each once, in the order of the
    /// first trace naming it.
    pub fn processes_of_traces(
        &self,
        trace_ids: &[TraceId],
    ) -> Result<Vec<ProcessRecord>, StoreError> {
        let ctx = "reading the process table";
        let prefixes: Vec<&[u8]> = trace_ids.iter().map(|t| &t.as_bytes()[..]).collect();
        let (entries, _) =
            self.process_indexes.traces.lookup(&prefixes, || idx(self.index.begin_read(), ctx))?;
        // Every process a trace may belong to: the one named after it, and those its entries
        // lead to; read together.
        let mut candidates: Vec<TraceId> = trace_ids.to_vec();
        candidates.extend(entries.iter().flatten().filter_map(|e| id_of(e)));
        candidates.sort_unstable();
        candidates.dedup();
        let rows = self.rows_by_id(&candidates, ctx)?;
        let rows: HashMap<TraceId, ProcessRecord> =
            candidates.into_iter().zip(rows).filter_map(|(id, row)| Some((id, row?))).collect();
        let mut seen = HashSet::default();
        let mut out = Vec::new();
        for (&trace_id, entries) in trace_ids.iter().zip(&entries) {
            if let Some(row) = row_of_trace(|id| Ok(rows.get(&id).cloned()), entries, trace_id)?
                && seen.insert(row.id)
            {
                out.push(row);
            }
        }
        Ok(out)
    }

    /// The stored row of the process a trace belongs to.
    pub fn process_of_trace(&self, trace_id: TraceId) -> Result<Option<ProcessRecord>, StoreError> {
        Ok(self.processes_of_traces(&[trace_id])?.pop())
    }

    /// Processes with a business key of this value, at most `limit`, by id.
    pub fn processes_by_key(
        &self,
        key: &str,
        value: &str,
        limit: usize,
    ) -> Result<Vec<ProcessRecord>, StoreError> {
        let ctx = "reading the key index";
        let Some(prefix) = key_entry(key, value, None) else { return Ok(Vec::new()) };
        let (mut found, _) =
            self.process_indexes.keys.lookup(&[&prefix], || idx(self.index.begin_read(), ctx))?;
        let mut ids: Vec<TraceId> = found
            .pop()
            .unwrap_or_default()
            .iter()
            .filter(|e| e.len() == prefix.len() + 16)
            .filter_map(|e| id_of(e))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::new();
        let mut rest = &ids[..];
        // Read as many as may still be wanted at a time: most entries lead to their row.
        while out.len() < limit && !rest.is_empty() {
            let (batch, after) = rest.split_at((limit - out.len()).min(rest.len()));
            rest = after;
            let rows = self.rows_by_id(batch, ctx)?;
            // An entry left by a process folded away leads to no row; the check covers any
            // other entry that no longer holds.
            out.extend(
                rows.into_iter()
                    .flatten()
                    .filter(|row| row.keys.iter().any(|(k, v)| k == key && v == value)),
            );
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Processes matching `filter`, newest start first, at most `limit`, resuming after
    /// `cursor`; returns the cursor for the next page when there may be more.
    pub fn list_processes(
        &self,
        filter: &ProcessFilter,
        limit: usize,
        cursor: Option<Cursor>,
    ) -> Result<(Vec<ProcessRecord>, Option<Cursor>), StoreError> {
        let ctx = "listing processes";
        let read = idx(self.index.begin_read(), ctx)?;
        let rows = idx(read.open_table(PROCESS_ROWS), ctx)?;
        let by_type = idx(read.open_table(PROCESS_BY_TYPE), ctx)?;
        let prefix = filter.process_type.as_deref().map(type_prefix).unwrap_or_default();
        let bound = |start: u64, id: &[u8; 16]| {
            let mut key = prefix.clone();
            key.extend_from_slice(&start.to_be_bytes());
            key.extend_from_slice(id);
            key
        };
        let low = bound(filter.start_from.unwrap_or(0), &[0; 16]);
        let mut high = bound(filter.start_to.unwrap_or(u64::MAX), &[0xff; 16]);
        let mut high_inclusive = true;
        if let Some(c) = cursor {
            // Strictly before the cursor: it was the last row of the previous page.
            let after = bound(c.start_nanos, c.id.as_bytes());
            if after <= high {
                high = after;
                high_inclusive = false;
            }
        }
        if low > high {
            return Ok((Vec::new(), None));
        }
        let range = (
            Bound::Included(low.as_slice()),
            if high_inclusive {
                Bound::Included(high.as_slice())
            } else {
                Bound::Excluded(high.as_slice())
            },
        );
        let mut out = Vec::new();
        let mut last = None;
        let mut keep = |record: ProcessRecord| {
            if !filter.keeps(&record) {
                return true;
            }
            if out.len() == limit {
                return false;
            }
            last = Some(Cursor { start_nanos: record.start_nanos, id: record.id });
            out.push(record);
            true
        };
        let decode = |bytes: &[u8]| decode_record(bytes).map_err(|e| corrupt("a process row", &e));
        let mut more = false;
        if filter.process_type.is_some() {
            // Type entries end with their row's key.
            for entry in idx(by_type.range::<&[u8]>(range), ctx)?.rev() {
                let (k, _) = idx(entry, ctx)?;
                let k = k.value();
                let Some(row_key) = k.get(k.len().saturating_sub(24)..) else { continue };
                let Some(row) = idx(rows.get(row_key), ctx)? else { continue };
                if !keep(decode(row.value())?) {
                    more = true;
                    break;
                }
            }
        } else {
            for entry in idx(rows.range::<&[u8]>(range), ctx)?.rev() {
                let (_, row) = idx(entry, ctx)?;
                if !keep(decode(row.value())?) {
                    more = true;
                    break;
                }
            }
        }
        Ok((out, if more { last } else { None }))
    }

    /// Ids of every running process in the table: what a restart resumes.
    pub fn running_processes(&self) -> Result<Vec<TraceId>, StoreError> {
        let ctx = "reading running processes";
        let read = idx(self.index.begin_read(), ctx)?;
        let live = idx(read.open_table(PROCESS_LIVE), ctx)?;
        let mut out = Vec::new();
        for entry in idx(live.iter(), ctx)? {
            let (k, _) = idx(entry, ctx)?;
            if let Some(id) = id_of(k.value()) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Rows of running processes that started at or before `started_before`, at most `limit`,
    /// oldest start first.
    pub fn running_rows(
        &self,
        started_before: u64,
        limit: usize,
    ) -> Result<Vec<ProcessRecord>, StoreError> {
        let ctx = "reading running processes";
        let read = idx(self.index.begin_read(), ctx)?;
        let live = idx(read.open_table(PROCESS_LIVE), ctx)?;
        let rows = idx(read.open_table(PROCESS_ROWS), ctx)?;
        let mut out = Vec::new();
        let mut high = [0xff; 24];
        high[..8].copy_from_slice(&started_before.to_be_bytes());
        for entry in idx(live.range(..=&high[..]), ctx)? {
            let (k, _) = idx(entry, ctx)?;
            let Some(row) = idx(rows.get(k.value()), ctx)? else { continue };
            out.push(decode_record(row.value()).map_err(|e| corrupt("a process row", &e))?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Logged events after `seq`, oldest first, at most `limit`.
    pub fn events_after(&self, seq: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let ctx = "reading the event log";
        let read = idx(self.index.begin_read(), ctx)?;
        let events = idx(read.open_table(EVENTS), ctx)?;
        let mut out = Vec::new();
        for entry in idx(events.range(seq.saturating_add(1)..), ctx)? {
            let (k, v) = idx(entry, ctx)?;
            out.push(decode_event(k.value(), v.value()).map_err(|e| corrupt("an event", &e))?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}
