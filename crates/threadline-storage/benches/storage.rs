//! Durable storage figures (docs/benchmarks.md), each against a baseline measured in the same
//! run on the same data:
//!
//! 1. durable ingest on one core: WAL group commit + head + Parquet blocks + trace filters,
//!    against appending the OTLP protobuf request bytes to a file with the same fsync policy;
//! 2. bytes stored per span in blocks, against the OTLP protobuf size of the same spans;
//! 3. block encoding on one core: CPU per span to encode all the spans as one block, against
//!    encoding the same spans for the WAL (the same fields, no columns, no compression);
//! 4. trace lookups with many blocks stored: latency of `Store::trace`, which finds the blocks
//!    that may hold the trace, against reading the trace from the one block known to hold it;
//! 5. process lookups (by id, by business key) with many processes stored: p50/p99 latency.
//!
//! Run: `cargo bench -p threadline-storage --bench storage`. `THREADLINE_BENCH_PROCESSES`
//! sets the number of stored processes (default 10,000,000); `THREADLINE_BENCH_ONLY=encode`
//! runs part 3 alone (what `callgrind` counts instructions on), `THREADLINE_BENCH_ONLY=traces`
//! part 4 alone, `THREADLINE_BENCH_ONLY=processes` part 5 alone.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    reason = "figures for a report"
)]

use std::io::Write as _;
use std::time::{Duration, Instant};

use prost::Message as _;
use threadline_core::id::TraceId;
use threadline_core::span::Span;
use threadline_ingest::convert::convert_otlp;
use threadline_storage::processes::{ProcessChanges, ProcessRecord, RecordState};
use threadline_storage::store::{Store, StoreOptions};
use threadline_storage::wal::{FsyncPolicy, WalOptions};
use threadline_testsuite::generate::{Shape, otlp_request};
use threadline_testsuite::server::TempDir;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCHES: u64 = 300;

struct Batch {
    protobuf: Vec<u8>,
    spans: std::sync::Arc<Vec<Span>>,
}

fn batches() -> Vec<Batch> {
    (0..BATCHES)
        .map(|seed| {
            let request = otlp_request(Shape { traces: 100, services: 10, seed: seed + 1 });
            let protobuf = request.encode_to_vec();
            Batch { protobuf, spans: std::sync::Arc::new(convert_otlp(request).spans) }
        })
        .collect()
}

/// The floor of durable ingest: the request bytes appended to a file, fsynced per batch.
fn baseline(batches: &[Batch], fsync: bool) -> f64 {
    let dir = TempDir::new("bench-baseline").unwrap();
    let mut file = std::fs::File::create(dir.path().join("raw")).unwrap();
    let spans: usize = batches.iter().map(|b| b.spans.len()).sum();
    let start = Instant::now();
    for batch in batches {
        file.write_all(&(batch.protobuf.len() as u32).to_le_bytes()).unwrap();
        file.write_all(&batch.protobuf).unwrap();
        if fsync {
            file.sync_data().unwrap();
        }
    }
    spans as f64 / start.elapsed().as_secs_f64()
}

/// Our path on one thread: append (one WAL commit per batch), flushing blocks as they fill.
fn durable(
    rt: &tokio::runtime::Runtime,
    batches: &[Batch],
    fsync: FsyncPolicy,
) -> (f64, Store, TempDir) {
    let dir = TempDir::new("bench-durable").unwrap();
    let options = StoreOptions {
        wal: WalOptions { fsync, ..WalOptions::default() },
        flush_spans: 100_000,
        flush_interval: Duration::from_secs(3600),
        ..StoreOptions::default()
    };
    let (store, _) = rt.block_on(Store::open(dir.path(), options)).unwrap();
    let spans: usize = batches.iter().map(|b| b.spans.len()).sum();
    let start = Instant::now();
    let mut in_flush = Duration::ZERO;
    for batch in batches {
        store.append_shared(std::slice::from_ref(&batch.spans)).unwrap();
        if store.flush_due() {
            let t = Instant::now();
            rt.block_on(store.flush()).unwrap();
            in_flush += t.elapsed();
        }
    }
    let t = Instant::now();
    rt.block_on(store.flush()).unwrap();
    in_flush += t.elapsed();
    if std::env::var_os("THREADLINE_BENCH_DETAIL").is_some() {
        println!("  of {:?}: {:?} writing blocks", start.elapsed(), in_flush);
    }
    (spans as f64 / start.elapsed().as_secs_f64(), store, dir)
}

fn id(n: u64) -> TraceId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    bytes[8..].copy_from_slice(&(n + 1).to_be_bytes());
    TraceId::from_bytes(bytes).unwrap()
}

fn record(n: u64) -> ProcessRecord {
    ProcessRecord {
        id: id(n),
        process_type: format!("type-{}", n % 8),
        state: if n.is_multiple_of(10) { RecordState::Running } else { RecordState::Completed },
        mode: Some("structural".into()),
        stuck: false,
        sla_breached: n.is_multiple_of(50),
        start_nanos: 1_700_000_000_000_000_000 + n * 1_000_000,
        end_nanos: 1_700_000_000_000_000_000 + n * 1_000_000 + 750_000_000,
        last_activity: 1_700_000_000_000_000_000 + n * 1_000_000 + 750_000_000,
        spans: 12,
        error_spans: 0,
        traces: vec![id(n), id(n + (1 << 40))],
        keys: vec![("order.id".into(), format!("o-{n}"))],
        waiting: vec![],
        failure: None,
        spec_violations: Some(vec![]),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

fn lookups(store: &Store, total: u64) {
    const SAMPLES: u64 = 20_000;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % total
    };
    let mut by_id = Vec::with_capacity(SAMPLES as usize);
    let mut by_key = Vec::with_capacity(SAMPLES as usize);
    for _ in 0..SAMPLES {
        let n = next();
        let start = Instant::now();
        let row = store.process(id(n)).unwrap();
        by_id.push(start.elapsed());
        assert_eq!(row.map(|r| r.id), Some(id(n)));
        let n = next();
        let start = Instant::now();
        let rows = store.processes_by_key("order.id", &format!("o-{n}"), 10).unwrap();
        by_key.push(start.elapsed());
        assert_eq!(rows.len(), 1);
    }
    by_id.sort();
    by_key.sort();
    println!(
        "process by id:  p50 {:?}, p99 {:?}, max {:?} ({SAMPLES} random lookups)",
        percentile(&by_id, 0.5),
        percentile(&by_id, 0.99),
        by_id[by_id.len() - 1]
    );
    println!(
        "process by key: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&by_key, 0.5),
        percentile(&by_key, 0.99),
        by_key[by_key.len() - 1]
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let only = std::env::var("THREADLINE_BENCH_ONLY").unwrap_or_default();
    if only == "processes" {
        process_table(&rt);
        return;
    }
    let batches = batches();
    let spans: usize = batches.iter().map(|b| b.spans.len()).sum();
    let protobuf_bytes: usize = batches.iter().map(|b| b.protobuf.len()).sum();
    println!("{spans} spans in {BATCHES} batches of 1,000; OTLP protobuf {protobuf_bytes} B");
    if only == "encode" {
        block_encoding(&batches, spans, protobuf_bytes);
        return;
    }
    if only == "traces" {
        trace_lookups(&rt, &batches);
        return;
    }

    // Interleave baseline and ours, three rounds; report the median ratio.
    for (label, ours, raw_fsync) in
        [("fsync always", FsyncPolicy::Always, true), ("fsync never ", FsyncPolicy::Never, false)]
    {
        let mut ratios = Vec::new();
        let mut rates = Vec::new();
        let mut bases = Vec::new();
        for _ in 0..3 {
            let base = baseline(&batches, raw_fsync);
            let (rate, _, _) = durable(&rt, &batches, ours);
            ratios.push(rate / base);
            rates.push(rate);
            bases.push(base);
        }
        ratios.sort_by(f64::total_cmp);
        rates.sort_by(f64::total_cmp);
        bases.sort_by(f64::total_cmp);
        println!(
            "durable ingest, {label}: {:.0} spans/s (baseline raw append {:.0} spans/s), ratio {:.2}",
            rates[1], bases[1], ratios[1]
        );
    }

    let (_, store, _dir) = durable(&rt, &batches, FsyncPolicy::Never);
    let stats = store.stats();
    println!(
        "stored: {} B in {} blocks = {:.1} B/span; OTLP protobuf {:.1} B/span; {:.1}x smaller",
        stats.block_bytes,
        stats.blocks,
        stats.block_bytes as f64 / spans as f64,
        protobuf_bytes as f64 / spans as f64,
        protobuf_bytes as f64 / stats.block_bytes as f64
    );
    drop(store);

    block_encoding(&batches, spans, protobuf_bytes);
    trace_lookups(&rt, &batches);

    process_table(&rt);
}

/// Part 5: fills the process table with `THREADLINE_BENCH_PROCESSES` rows in groups, then
/// looks processes up by id and by business key.
fn process_table(rt: &tokio::runtime::Runtime) {
    let total: u64 = std::env::var("THREADLINE_BENCH_PROCESSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = TempDir::new("bench-processes").unwrap();
    let (store, _) = rt.block_on(Store::open(dir.path(), StoreOptions::default())).unwrap();
    let start = Instant::now();
    const GROUP: u64 = 20_000;
    // Time to write each tenth of the rows: whether writing slows as the table grows.
    let mut tenths = Vec::new();
    let mut tenth_start = Instant::now();
    let mut n = 0;
    while n < total {
        let records = (n..(n + GROUP).min(total)).map(record).collect();
        store
            .apply_processes(&mut ProcessChanges { records, ..ProcessChanges::default() })
            .unwrap();
        n += GROUP;
        if n * 10 / total > tenths.len() as u64 {
            tenths.push(tenth_start.elapsed());
            tenth_start = Instant::now();
        }
    }
    let elapsed = start.elapsed();
    let index_bytes = std::fs::metadata(dir.path().join("index/threadline.redb")).unwrap().len();
    println!(
        "stored {total} processes in {elapsed:.1?} ({:.0} rows/s, groups of {GROUP}); index {:.1} GiB",
        total as f64 / elapsed.as_secs_f64(),
        index_bytes as f64 / (1u64 << 30) as f64
    );
    if let (Some(first), Some(last)) = (tenths.first(), tenths.last()) {
        println!(
            "first tenth of the rows written in {first:.1?}, last tenth in {last:.1?} (ratio {:.2})",
            last.as_secs_f64() / first.as_secs_f64()
        );
    }
    lookups(&store, total);
}

/// Part 4: trace lookups among many blocks (a block per 10 batches: 30 blocks of 10,000 spans),
/// each against reading the same trace from the block that holds it, in alternation.
fn trace_lookups(rt: &tokio::runtime::Runtime, batches: &[Batch]) {
    const SAMPLES: usize = 3_000;
    let dir = TempDir::new("bench-traces").unwrap();
    let options = StoreOptions {
        wal: WalOptions { fsync: FsyncPolicy::Never, ..WalOptions::default() },
        flush_spans: 10_000,
        flush_interval: Duration::from_secs(3600),
        ..StoreOptions::default()
    };
    let (store, _) = rt.block_on(Store::open(dir.path(), options)).unwrap();
    for batch in batches {
        store.append_shared(std::slice::from_ref(&batch.spans)).unwrap();
        if store.flush_due() {
            rt.block_on(store.flush()).unwrap();
        }
    }
    rt.block_on(store.flush()).unwrap();
    let snapshot = store.snapshot();
    let mut holder = std::collections::HashMap::new();
    for (at, block) in snapshot.blocks.iter().enumerate() {
        for trace_id in rt.block_on(block.block.trace_ids()).unwrap() {
            holder.insert(trace_id, at);
        }
    }
    let mut traces: Vec<TraceId> = holder.keys().copied().collect();
    traces.sort();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let (mut direct, mut found) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let trace_id = traces[(x % traces.len() as u64) as usize];
        let block = &snapshot.blocks[holder[&trace_id]].block;
        let start = Instant::now();
        let expected = rt.block_on(block.trace(trace_id)).unwrap();
        direct.push(start.elapsed());
        let start = Instant::now();
        let spans = rt.block_on(store.trace(trace_id)).unwrap();
        found.push(start.elapsed());
        assert_eq!(spans.len(), expected.len());
    }
    direct.sort();
    found.sort();
    println!(
        "trace by id among {} blocks: p50 {:?}, p99 {:?}; from the one block holding it: p50 {:?}, p99 {:?}; ratio of p50s {:.2} ({SAMPLES} random lookups)",
        snapshot.blocks.len(),
        percentile(&found, 0.5),
        percentile(&found, 0.99),
        percentile(&direct, 0.5),
        percentile(&direct, 0.99),
        percentile(&found, 0.5).as_secs_f64() / percentile(&direct, 0.5).as_secs_f64()
    );
}

/// Part 3: CPU per span to encode every span as one block, against the WAL's encoding.
fn block_encoding(batches: &[Batch], spans: usize, protobuf_bytes: usize) {
    let (mut block_times, mut wal_times) = (Vec::new(), Vec::new());
    let mut block_bytes = 0;
    for _ in 0..3 {
        let start = Instant::now();
        let mut payload = Vec::new();
        for b in batches {
            payload.clear();
            threadline_storage::codec::encode_batch(&b.spans, &mut payload);
            std::hint::black_box(payload.len());
        }
        wal_times.push(start.elapsed().as_secs_f64() * 1e6 / spans as f64);
        let start = Instant::now();
        let mut refs: Vec<&Span> = batches.iter().flat_map(|b| b.spans.iter()).collect();
        block_bytes = threadline_storage::block::encode_refs(&mut refs).unwrap().len();
        block_times.push(start.elapsed().as_secs_f64() * 1e6 / spans as f64);
    }
    block_times.sort_by(f64::total_cmp);
    wal_times.sort_by(f64::total_cmp);
    println!(
        "block encoding: {:.2} µs/span (baseline WAL encoding {:.2} µs/span), ratio {:.1}",
        block_times[1],
        wal_times[1],
        block_times[1] / wal_times[1]
    );
    println!(
        "one block of all of them: {:.1} B/span; OTLP protobuf {:.1} B/span; {:.1}x smaller",
        block_bytes as f64 / spans as f64,
        protobuf_bytes as f64 / spans as f64,
        protobuf_bytes as f64 / block_bytes as f64
    );
}
