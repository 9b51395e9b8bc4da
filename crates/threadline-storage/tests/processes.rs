//! The process table: rows kept current, every index following a row's changes, listings
//! with filters and cursors, the event log, and the WAL kept until its effects are applied.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::path::Path;

use threadline_core::id::TraceId;
use threadline_storage::processes::{
    Cursor, ProcessChanges, ProcessFilter, ProcessRecord, RecordState, StoredEvent, WaitingRecord,
};
use threadline_storage::store::{Store, StoreOptions};
use threadline_storage::wal::{FsyncPolicy, WalOptions};
use threadline_testsuite::server::TempDir;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn id(n: u8) -> TraceId {
    TraceId::from_bytes([n; 16]).unwrap()
}

fn record(n: u8, process_type: &str, start: u64) -> ProcessRecord {
    ProcessRecord {
        id: id(n),
        process_type: process_type.into(),
        state: RecordState::Running,
        mode: None,
        stuck: false,
        sla_breached: false,
        start_nanos: start,
        end_nanos: start + 10,
        last_activity: start,
        spans: 3,
        error_spans: 0,
        traces: vec![id(n)],
        keys: vec![("order.id".into(), format!("o-{n}"))],
        waiting: vec![WaitingRecord::Message {
            system: "kafka".into(),
            destination: "orders".into(),
            group: "billing".into(),
            since: start,
        }],
        failure: None,
        spec_violations: None,
    }
}

fn options(track: bool) -> StoreOptions {
    StoreOptions {
        wal: WalOptions { segment_bytes: 64 << 10, fsync: FsyncPolicy::Never },
        track_applied: track,
        ..StoreOptions::default()
    }
}

async fn open(dir: &Path) -> Store {
    Store::open(dir, options(true)).await.unwrap().0
}

fn apply(store: &Store, records: Vec<ProcessRecord>, removed: Vec<(TraceId, TraceId)>) {
    store
        .apply_processes(&ProcessChanges { records, removed, ..ProcessChanges::default() })
        .unwrap();
}

#[test]
fn rows_are_found_by_id_trace_and_key_and_follow_their_changes() {
    runtime().block_on(async {
        let dir = TempDir::new("proc-rows").unwrap();
        let store = open(dir.path()).await;
        apply(&store, vec![record(1, "checkout", 100), record(2, "refund", 200)], vec![]);
        assert_eq!(store.process(id(1)).unwrap().unwrap(), record(1, "checkout", 100));
        assert_eq!(store.process_of_trace(id(2)).unwrap().unwrap().id, id(2));
        assert_eq!(
            store.processes_by_key("order.id", "o-1", 10).unwrap(),
            vec![record(1, "checkout", 100)]
        );
        assert!(
            store.processes_by_key("order.id", "o-", 10).unwrap().is_empty(),
            "exact values only"
        );
        assert!(store.processes_by_key("order", "id", 10).unwrap().is_empty());

        // The process grows: a joined trace, a new key, an earlier start, a new type, done.
        let mut grown = record(1, "checkout-v2", 50);
        grown.traces.push(id(9));
        grown.keys = vec![("order.id".into(), "o-1".into()), ("merchant.id".into(), "m-7".into())];
        grown.state = RecordState::Completed;
        grown.mode = Some("structural".into());
        grown.waiting.clear();
        grown.spec_violations = Some(vec!["missing step payment/charge".into()]);
        apply(&store, vec![grown.clone()], vec![]);
        assert_eq!(store.process_of_trace(id(9)).unwrap().unwrap(), grown);
        assert_eq!(store.processes_by_key("merchant.id", "m-7", 10).unwrap(), vec![grown.clone()]);
        let by_old_type =
            ProcessFilter { process_type: Some("checkout".into()), ..ProcessFilter::default() };
        assert!(store.list_processes(&by_old_type, 10, None).unwrap().0.is_empty());
        assert_eq!(store.running_processes().unwrap(), vec![id(2)]);

        // Process 2 folds into process 1: its row goes, its trace and its key now lead to
        // process 1.
        let mut merged = grown.clone();
        merged.traces.push(id(2));
        apply(&store, vec![merged.clone()], vec![(id(2), id(1))]);
        assert_eq!(store.process(id(2)).unwrap(), None);
        assert_eq!(store.process_of_trace(id(2)).unwrap().unwrap().id, id(1));
        let found = store.processes_by_key("order.id", "o-2", 10).unwrap();
        assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id(1)]);
        assert!(store.running_processes().unwrap().is_empty());
        merged.keys = vec![
            ("merchant.id".into(), "m-7".into()),
            ("order.id".into(), "o-1".into()),
            ("order.id".into(), "o-2".into()),
        ];

        // Keys arrive on their own, also for a process folded away meanwhile (by its trace).
        store
            .apply_processes(&ProcessChanges {
                keys: vec![
                    (id(1), "refund.ref".into(), "R-1".into()),
                    (id(2), "cart.id".into(), "c-2".into()),
                ],
                ..ProcessChanges::default()
            })
            .unwrap();
        assert_eq!(store.processes_by_key("refund.ref", "R-1", 10).unwrap()[0].id, id(1));
        assert_eq!(store.processes_by_key("cart.id", "c-2", 10).unwrap()[0].id, id(1));
        merged.keys.insert(0, ("cart.id".into(), "c-2".into()));
        merged.keys.push(("refund.ref".into(), "R-1".into()));
        // A row written without keys keeps the ones it had.
        let mut keyless = merged.clone();
        keyless.keys.clear();
        keyless.spans = 9;
        apply(&store, vec![keyless], vec![]);
        merged.spans = 9;
        assert_eq!(store.process(id(1)).unwrap().unwrap(), merged);

        // A fold reported on its own (the process it went into not written in the same
        // group): the trace the folded process was named after leads to its new home.
        apply(&store, vec![record(3, "refund", 300)], vec![]);
        assert_eq!(store.process_of_trace(id(3)).unwrap().unwrap().id, id(3));
        apply(&store, vec![], vec![(id(3), id(1))]);
        assert_eq!(store.process(id(3)).unwrap(), None);
        assert_eq!(store.process_of_trace(id(3)).unwrap().unwrap().id, id(1));
        let of_traces = store.processes_of_traces(&[id(3), id(9), id(2), id(5)]).unwrap();
        assert_eq!(of_traces.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id(1)]);
        assert_eq!(store.process_of_trace(id(5)).unwrap(), None);
        merged.keys.insert(4, ("order.id".into(), "o-3".into()));
        assert_eq!(store.process(id(1)).unwrap().unwrap(), merged);

        // Rows survive a restart.
        drop(store);
        let store = open(dir.path()).await;
        assert_eq!(store.process(id(1)).unwrap().unwrap(), merged);
        assert_eq!(store.process_of_trace(id(3)).unwrap().unwrap().id, id(1));
    });
}

#[test]
fn a_row_that_comes_out_the_same_is_not_written_again() {
    runtime().block_on(async {
        let dir = TempDir::new("proc-same").unwrap();
        let store = open(dir.path()).await;
        apply(&store, vec![record(1, "checkout", 100), record(2, "refund", 200)], vec![]);
        // Reported again unchanged, and with a key the row already has: nothing to write.
        let mut again = record(1, "checkout", 100);
        again.keys.clear();
        apply(&store, vec![record(1, "checkout", 100), again], vec![]);
        let stats = store.stats();
        assert_eq!(
            (stats.process_commits, stats.process_rows_written, stats.process_rows_created),
            (2, 2, 2)
        );
        // A change is written.
        let mut done = record(2, "refund", 200);
        done.state = RecordState::Completed;
        apply(&store, vec![done.clone()], vec![]);
        assert_eq!(store.stats().process_rows_written, 3);
        assert_eq!(store.process(id(2)).unwrap().unwrap(), done);
        assert_eq!(store.process(id(1)).unwrap().unwrap(), record(1, "checkout", 100));
    });
}

#[test]
fn listings_filter_by_type_state_and_time_newest_first_with_cursors() {
    runtime().block_on(async {
        let dir = TempDir::new("proc-list").unwrap();
        let store = open(dir.path()).await;
        let mut records = Vec::new();
        for n in 1..=20u8 {
            let mut r = record(n, if n % 2 == 0 { "even" } else { "odd" }, u64::from(n) * 1000);
            if n % 5 == 0 {
                r.state = RecordState::Failed;
            }
            records.push(r);
        }
        apply(&store, records, vec![]);
        let ids =
            |rows: &[ProcessRecord]| rows.iter().map(|r| r.id.as_bytes()[0]).collect::<Vec<_>>();

        let all = ProcessFilter::default();
        let (page, cursor) = store.list_processes(&all, 8, None).unwrap();
        assert_eq!(ids(&page), vec![20, 19, 18, 17, 16, 15, 14, 13]);
        assert_eq!(cursor, Some(Cursor { start_nanos: 13_000, id: id(13) }));
        let (page, cursor) = store.list_processes(&all, 8, cursor).unwrap();
        assert_eq!(ids(&page), vec![12, 11, 10, 9, 8, 7, 6, 5]);
        let (page, cursor) = store.list_processes(&all, 8, cursor).unwrap();
        assert_eq!(ids(&page), vec![4, 3, 2, 1]);
        assert_eq!(cursor, None);

        let even = ProcessFilter { process_type: Some("even".into()), ..ProcessFilter::default() };
        assert_eq!(ids(&store.list_processes(&even, 3, None).unwrap().0), vec![20, 18, 16]);
        let failed = ProcessFilter { state: Some(RecordState::Failed), ..ProcessFilter::default() };
        assert_eq!(ids(&store.list_processes(&failed, 10, None).unwrap().0), vec![20, 15, 10, 5]);
        let window = ProcessFilter {
            process_type: Some("odd".into()),
            start_from: Some(5_000),
            start_to: Some(11_000),
            ..ProcessFilter::default()
        };
        assert_eq!(ids(&store.list_processes(&window, 10, None).unwrap().0), vec![11, 9, 7, 5]);
        // Every record lasts 10 ns; none is stuck; every fifth is failed.
        let long = ProcessFilter { min_duration: Some(11), ..ProcessFilter::default() };
        assert!(store.list_processes(&long, 10, None).unwrap().0.is_empty());
        let exact = ProcessFilter {
            min_duration: Some(10),
            max_duration: Some(10),
            stuck: Some(false),
            ..ProcessFilter::default()
        };
        assert_eq!(store.list_processes(&exact, 100, None).unwrap().0.len(), 20);
        let stuck = ProcessFilter { stuck: Some(true), ..ProcessFilter::default() };
        assert!(store.list_processes(&stuck, 10, None).unwrap().0.is_empty());
    });
}

#[test]
fn events_are_logged_in_order_and_read_back_after_a_position() {
    runtime().block_on(async {
        let dir = TempDir::new("proc-events").unwrap();
        let store = open(dir.path()).await;
        let event = |kind: &str, n: u8| StoredEvent {
            seq: 0,
            kind: kind.into(),
            process_id: id(n),
            process_type: "checkout".into(),
            at: u64::from(n),
            detail: String::new(),
        };
        let logged = store
            .apply_processes(&ProcessChanges {
                records: vec![record(1, "checkout", 1)],
                events: vec![event("started", 1), event("completed", 1)],
                ..ProcessChanges::default()
            })
            .unwrap();
        assert_eq!(logged.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        drop(store);
        let store = open(dir.path()).await;
        let logged = store
            .apply_processes(&ProcessChanges {
                events: vec![event("started", 2)],
                ..ProcessChanges::default()
            })
            .unwrap();
        assert_eq!(logged[0].seq, 3, "positions continue after a restart");
        let after = store.events_after(1, 10).unwrap();
        assert_eq!(
            after.iter().map(|e| (e.seq, e.kind.as_str())).collect::<Vec<_>>(),
            vec![(2, "completed"), (3, "started")]
        );
        assert_eq!(after[0].process_id, id(1));
    });
}

#[test]
fn the_wal_is_kept_until_the_engine_has_applied_it() {
    runtime().block_on(async {
        let dir = TempDir::new("proc-applied").unwrap();
        let spans = threadline_testsuite::generate::core_spans(10);
        {
            let store = open(dir.path()).await;
            let seqs = store.append_numbered(&[&spans[..5], &spans[5..]]).unwrap();
            assert_eq!(seqs.len(), 2);
            // The first batch's effects are in the table; the second's are not yet.
            store
                .apply_processes(&ProcessChanges {
                    applied_seq: Some(seqs[0]),
                    ..ProcessChanges::default()
                })
                .unwrap();
            store.flush().await.unwrap();
        }
        let (store, opened) = Store::open(dir.path(), options(true)).await.unwrap();
        assert_eq!(opened.replayed.len(), 1, "only what the table lacks goes back to the engine");
        assert_eq!(*opened.replayed[0].1, spans[5..].to_vec());
        assert_eq!(store.stats().head_spans, 0, "what is in a block is not put back in the head");
        assert_eq!(store.trace(spans[0].trace_id).await.unwrap().len(), 10);
    });
}
