//! Format versioning: a data directory written by each storage format version (WAL segment,
//! Parquet block, index with process rows and events) is committed under
//! `tests/fixtures/format-vN`, and every later build must open each, read it all back, search
//! it and compact its blocks together with blocks it writes itself.
//!
//! `THREADLINE_WRITE_FIXTURE=1 cargo nextest run -p threadline-storage --test format` writes
//! the fixture of the current version: only ever for a new format version, into a new
//! directory.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::path::{Path, PathBuf};

use redb::ReadableTable as _;

use threadline_core::id::TraceId;
use threadline_core::span::Span;
use threadline_ingest::convert::convert_otlp;
use threadline_storage::processes::{ProcessChanges, ProcessRecord, RecordState, StoredEvent};
use threadline_storage::search::SpanQuery;
use threadline_storage::store::{Store, StoreOptions};
use threadline_testsuite::generate::{self, Shape, otlp_request};
use threadline_testsuite::server::TempDir;

/// Block format versions with a committed fixture; the last is the one this build writes.
const VERSIONS: [u32; 2] = [1, 2];

fn fixture(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/format-v{version}"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn spans(seed: u64) -> Vec<Span> {
    convert_otlp(otlp_request(Shape { traces: 3, services: 3, seed })).spans
}

fn trace(seed: u64, n: usize) -> TraceId {
    TraceId::from_bytes(generate::trace_id(seed, n)).unwrap()
}

fn row() -> ProcessRecord {
    ProcessRecord {
        id: trace(1, 0),
        process_type: "checkout".into(),
        state: RecordState::Completed,
        mode: Some("structural".into()),
        stuck: false,
        sla_breached: true,
        start_nanos: 1_700_000_000_000_000_000,
        end_nanos: 1_700_000_001_000_000_000,
        last_activity: 1_700_000_001_000_000_000,
        spans: 3,
        error_spans: 1,
        traces: vec![trace(1, 0), trace(2, 0)],
        keys: vec![("order.id".into(), "o-1".into())],
        waiting: vec![],
        failure: None,
        spec_violations: Some(vec!["step payment/charge missing".into()]),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn options() -> StoreOptions {
    StoreOptions { track_applied: true, ..StoreOptions::default() }
}

async fn write_fixture(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let (store, _) = Store::open(dir, options()).await.unwrap();
    let seqs = store.append_numbered(&[&spans(1)]).unwrap();
    store
        .apply_processes(&mut ProcessChanges {
            records: vec![row()],
            events: vec![StoredEvent {
                seq: 0,
                kind: "completed".into(),
                process_id: trace(1, 0),
                process_type: "checkout".into(),
                at: 7,
                detail: "structural".into(),
            }],
            applied_seq: Some(seqs[0]),
            ..ProcessChanges::default()
        })
        .unwrap();
    store.flush().await.unwrap();
    // A batch only in the WAL, not yet applied.
    store.append(&[&spans(2)]).unwrap();
    drop(store);
    std::fs::remove_file(dir.join("LOCK")).unwrap();
}

fn expected_trace(seed: u64) -> Vec<Span> {
    let mut s: Vec<Span> =
        spans(seed).into_iter().filter(|s| s.trace_id == trace(seed, 1)).collect();
    s.sort_by_key(|s| (s.start_time_unix_nano, s.span_id));
    s
}

#[test]
fn every_format_version_opens_and_reads_back() {
    runtime().block_on(async {
        let current = *VERSIONS.last().unwrap();
        assert_eq!(current, threadline_storage::block::BLOCK_VERSION);
        if std::env::var_os("THREADLINE_WRITE_FIXTURE").is_some() {
            write_fixture(&fixture(current)).await;
        }
        for version in VERSIONS {
            let dir = TempDir::new(&format!("format-v{version}")).unwrap();
            copy_dir(&fixture(version), dir.path());
            let (store, opened) = Store::open(dir.path(), options()).await.unwrap();
            assert!(
                opened.wal_damage.is_empty() && opened.unreadable_blocks.is_empty(),
                "v{version}: {opened:?}"
            );
            assert_eq!(opened.index_problem, None);
            assert_eq!(opened.replayed.len(), 1);
            assert_eq!(*opened.replayed[0].1, spans(2));
            let stats = store.stats();
            assert_eq!((stats.blocks, stats.block_spans, stats.head_spans), (1, 9, 9));
            for seed in [1, 2] {
                assert_eq!(store.trace(trace(seed, 1)).await.unwrap(), expected_trace(seed));
            }
            assert_eq!(store.process(trace(1, 0)).unwrap(), Some(row()));
            assert_eq!(store.process_of_trace(trace(2, 0)).unwrap(), Some(row()));
            assert_eq!(store.processes_by_key("order.id", "o-1", 5).unwrap(), vec![row()]);
            let events = store.events_after(0, 10).unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!((events[0].seq, events[0].kind.as_str(), events[0].at), (1, "completed", 7));

            // The old block is searched by attribute, then compacted with blocks of this
            // version into one block of this version, and every trace reads back the same.
            store.flush().await.unwrap();
            for seed in [3, 4] {
                store.append(&[&spans(seed)]).unwrap();
                store.flush().await.unwrap();
            }
            let query = |seed: u64| SpanQuery {
                tags: vec![("order.id".into(), format!("order-{seed}-1"))],
                start_to: u64::MAX,
                limit: 10,
                ..SpanQuery::default()
            };
            assert_eq!(store.search(&query(1)).await.unwrap(), vec![trace(1, 1)], "v{version}");
            assert_eq!(store.stats().blocks, 4);
            assert_eq!(store.compact().await.unwrap(), 4, "v{version}");
            assert_eq!(store.stats().blocks, 1);
            for seed in 1..=4 {
                assert_eq!(store.trace(trace(seed, 1)).await.unwrap(), expected_trace(seed));
                assert_eq!(store.search(&query(seed)).await.unwrap(), vec![trace(seed, 1)]);
            }

            // Opened again (an older index was taken to the current version the first time),
            // the process rows are still found by trace and by key.
            drop(store);
            let (store, _) = Store::open(dir.path(), options()).await.unwrap();
            assert_eq!(store.process_of_trace(trace(2, 0)).unwrap(), Some(row()));
            assert_eq!(store.processes_by_key("order.id", "o-1", 5).unwrap(), vec![row()]);
            drop(store);

            // The index is of the current version, and the entry per trace and block of
            // versions 1 and 2 is gone (a filter per block replaced it).
            let db = redb::Database::create(dir.path().join("index/threadline.redb")).unwrap();
            let read = redb::ReadableDatabase::begin_read(&db).unwrap();
            let tables: Vec<String> = read
                .list_tables()
                .unwrap()
                .map(|t| redb::TableHandle::name(&t).to_owned())
                .collect();
            assert!(!tables.iter().any(|t| t == "trace_blocks"), "v{version}: {tables:?}");
            // Process rows are kept by start time since version 4: the tables of rows by id
            // are gone.
            for old in ["processes", "process_by_start", "process_running"] {
                assert!(!tables.iter().any(|t| t == old), "v{version}: {tables:?}");
            }
            let meta = redb::TableDefinition::<&str, u64>::new("meta");
            let found =
                read.open_table(meta).unwrap().get("format_version").unwrap().unwrap().value();
            assert_eq!(found, threadline_storage::store::INDEX_VERSION, "v{version}");
        }
    });
}

#[test]
fn an_index_of_a_later_version_is_refused_by_name() {
    runtime().block_on(async {
        let dir = TempDir::new("index-later").unwrap();
        drop(Store::open(dir.path(), options()).await.unwrap());
        {
            let db = redb::Database::create(dir.path().join("index/threadline.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let meta = redb::TableDefinition::<&str, u64>::new("meta");
                let mut meta = tx.open_table(meta).unwrap();
                let current = meta.get("format_version").unwrap().unwrap().value();
                assert_eq!(current, threadline_storage::store::INDEX_VERSION);
                meta.insert("format_version", current + 1).unwrap();
            }
            tx.commit().unwrap();
        }
        let Err(e) = Store::open(dir.path(), options()).await else {
            panic!("an index of a later version opened");
        };
        let text = e.to_string();
        let next = threadline_storage::store::INDEX_VERSION + 1;
        assert!(text.contains(&format!("index format version {next}")), "{text}");
    });
}
