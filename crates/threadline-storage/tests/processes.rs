//! The process table: rows kept current, every index following a row's changes, listings
//! with filters and cursors, the event log, and the WAL kept until its effects are applied.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::collections::BTreeSet;
use std::path::Path;

use proptest::prelude::*;

use threadline_core::id::TraceId;
use threadline_storage::processes::{
    Cursor, ProcessChanges, ProcessFilter, ProcessRecord, RecordState, StoredEvent, WaitingRecord,
};
use threadline_storage::store::{RunLimits, Store, StoreOptions};
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
        .apply_processes(&mut ProcessChanges { records, removed, ..ProcessChanges::default() })
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
            .apply_processes(&mut ProcessChanges {
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
        // Its new home's row gained its key and its trace.
        merged.keys.insert(4, ("order.id".into(), "o-3".into()));
        merged.traces.push(id(3));
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
            .apply_processes(&mut ProcessChanges {
                records: vec![record(1, "checkout", 1)],
                events: vec![event("started", 1), event("completed", 1)],
                ..ProcessChanges::default()
            })
            .unwrap();
        assert_eq!(logged.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        drop(store);
        let store = open(dir.path()).await;
        let logged = store
            .apply_processes(&mut ProcessChanges {
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
                .apply_processes(&mut ProcessChanges {
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

#[test]
fn a_damaged_or_missing_run_filter_is_made_again_from_its_run() {
    runtime().block_on(async {
        let dir = TempDir::new("run-filters").unwrap();
        let store = Store::open(dir.path(), small_runs()).await.unwrap().0;
        for n in 1..=40u8 {
            apply(&store, vec![record(n, "checkout", 100 + u64::from(n))], vec![]);
        }
        let filter_bytes = store.stats().process_index_filter_bytes;
        assert!(filter_bytes > 0, "runs were written, each with a filter");
        drop(store);
        {
            // Every filter of the id index gone, every filter of the key index damaged.
            let filters = |name| redb::TableDefinition::<u64, &[u8]>::new(name);
            let db = redb::Database::create(dir.path().join("index/threadline.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            assert!(tx.delete_table(filters("process_ids_filters")).unwrap());
            {
                let mut keys = tx.open_table(filters("process_keys_filters")).unwrap();
                let runs: Vec<u64> = redb::ReadableTable::iter(&keys)
                    .unwrap()
                    .map(|e| e.unwrap().0.value())
                    .collect();
                assert!(!runs.is_empty());
                for run in runs {
                    keys.insert(run, &[9u8, 1, 2][..]).unwrap();
                }
            }
            tx.commit().unwrap();
        }
        let store = Store::open(dir.path(), small_runs()).await.unwrap().0;
        assert_eq!(store.stats().process_index_filter_bytes, filter_bytes);
        for n in 1..=40u8 {
            assert_eq!(
                store.process(id(n)).unwrap().map(|r| r.start_nanos),
                Some(100 + u64::from(n))
            );
            let by_key = store.processes_by_key("order.id", &format!("o-{n}"), 5).unwrap();
            assert_eq!(by_key.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id(n)]);
        }
        // Rows written after the open are found beside the old ones.
        apply(&store, vec![record(41, "checkout", 5)], vec![]);
        assert_eq!(store.process(id(41)).unwrap().map(|r| r.start_nanos), Some(5));
        assert_eq!(store.process(id(7)).unwrap().map(|r| r.id), Some(id(7)));
    });
}

type Keys = BTreeSet<(String, String)>;

/// What the key and trace lookups must answer, kept beside the store.
#[derive(Default)]
struct Model {
    /// Live processes: keys and traces (their own first).
    rows: std::collections::BTreeMap<TraceId, (Keys, Vec<TraceId>)>,
    /// Every process ever started, folded ones included.
    started: Vec<TraceId>,
    /// Live processes: start time and state, as last written.
    starts: std::collections::BTreeMap<TraceId, (u64, RecordState)>,
    /// At most how many entries were added to the id, business-key and trace indexes.
    id_entries: u64,
    key_entries: u64,
    trace_entries: u64,
}

impl Model {
    /// The live process a trace belongs to.
    fn home(&self, trace: TraceId) -> Option<TraceId> {
        self.rows.iter().find(|(_, (_, traces))| traces.contains(&trace)).map(|(id, _)| *id)
    }

    /// The row of `id` as it is now written, in `state`.
    fn record(&mut self, id: TraceId, state: RecordState) -> ProcessRecord {
        let (keys, traces) = &self.rows[&id];
        let at = self.starts.get_mut(&id).unwrap();
        at.1 = state;
        ProcessRecord {
            id,
            state,
            traces: traces.clone(),
            keys: keys.iter().cloned().collect(),
            waiting: vec![],
            ..record(1, "checkout", at.0)
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Start {
        joined: bool,
        sku: u8,
    },
    /// A key found for a process; `with_row`: in the same group as a new version of its
    /// home's row, which carries no keys (as the engine reports rows).
    AddKey {
        process: usize,
        value: u8,
        with_row: bool,
    },
    Complete {
        process: usize,
    },
    /// A span older than any seen moves the process's start back (its row is re-keyed).
    MoveStart {
        process: usize,
        by: u64,
    },
    /// With `key`, a key for the folded process arrives in the same group.
    Fold {
        from: usize,
        into: usize,
        with_row: bool,
        key: Option<u8>,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0..4u8).prop_map(|(joined, sku)| Op::Start { joined, sku }),
        2 => (any::<usize>(), 0..3u8, any::<bool>())
            .prop_map(|(process, value, with_row)| Op::AddKey { process, value, with_row }),
        1 => any::<usize>().prop_map(|process| Op::Complete { process }),
        1 => (any::<usize>(), 0..30u64).prop_map(|(process, by)| Op::MoveStart { process, by }),
        1 => (any::<usize>(), any::<usize>(), any::<bool>(), proptest::option::of(0..3u8))
            .prop_map(|(from, into, with_row, key)| Op::Fold { from, into, with_row, key }),
        1 => Just(Op::Reopen),
    ]
}

/// Small runs, chunks of an entry or two, merges of three runs taking several commits.
fn small_runs() -> StoreOptions {
    StoreOptions {
        process_index: RunLimits {
            flush_entries: 5,
            chunk_bytes: 40,
            fanout: 3,
            merge_step_bytes: 60,
        },
        ..options(true)
    }
}

fn check(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    let mut by_key: std::collections::BTreeMap<(String, String), Vec<TraceId>> = Default::default();
    for (id, (keys, traces)) in &model.rows {
        for kv in keys {
            by_key.entry(kv.clone()).or_default().push(*id);
        }
        for t in traces {
            let found = store.process_of_trace(*t).unwrap().map(|r| r.id);
            prop_assert_eq!(found, Some(*id), "trace {:?}", t);
        }
        let row = store.process(*id).unwrap().unwrap();
        prop_assert_eq!(&row.keys.iter().cloned().collect::<BTreeSet<_>>(), keys);
        prop_assert_eq!((row.start_nanos, row.state), model.starts[id]);
    }
    // Listed newest start first (then by id, descending), in pages; running ones resumable.
    let mut expected: Vec<(u64, TraceId)> =
        model.starts.iter().map(|(id, (start, _))| (*start, *id)).collect();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    let (mut listed, mut cursor) = (Vec::new(), None);
    loop {
        let (page, next) = store.list_processes(&ProcessFilter::default(), 4, cursor).unwrap();
        listed.extend(page.iter().map(|r| (r.start_nanos, r.id)));
        let Some(next) = next else { break };
        cursor = Some(next);
    }
    prop_assert_eq!(&listed, &expected);
    let running: BTreeSet<TraceId> = model
        .starts
        .iter()
        .filter(|(_, (_, state))| *state == RecordState::Running)
        .map(|(id, _)| *id)
        .collect();
    prop_assert_eq!(
        store.running_processes().unwrap().into_iter().collect::<BTreeSet<_>>(),
        running.clone()
    );
    let started_by = 1_000;
    let early: BTreeSet<TraceId> =
        running.iter().copied().filter(|id| model.starts[id].0 <= started_by).collect();
    let found: BTreeSet<TraceId> =
        store.running_rows(started_by, 10_000).unwrap().iter().map(|r| r.id).collect();
    prop_assert_eq!(found, early);
    for ((k, v), ids) in by_key {
        let found: Vec<TraceId> =
            store.processes_by_key(&k, &v, 10_000).unwrap().iter().map(|r| r.id).collect();
        prop_assert_eq!(found, ids, "{}={}", k, v);
    }
    prop_assert!(store.processes_by_key("order.id", "never", 10).unwrap().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Keys and traces are found as the rows say through flushes to runs, merges of runs cut
    /// into steps, folds and restarts; and merges keep the number of runs down.
    #[test]
    fn key_and_trace_lookups_hold_through_runs_merges_and_restarts(
        ops in proptest::collection::vec(op(), 20..90)
    ) {
        let rt = runtime();
        let dir = TempDir::new("process-runs").unwrap();
        let mut store = Some(rt.block_on(Store::open(dir.path(), small_runs())).unwrap().0);
        let mut model = Model::default();
        let mut next = 1u128;
        for op in ops {
            let s = store.as_ref().unwrap();
            let live: Vec<TraceId> = model.rows.keys().copied().collect();
            match op {
                Op::Start { joined, sku } => {
                    let id = TraceId::from_bytes(next.to_be_bytes()).unwrap();
                    let mut traces = vec![id];
                    if joined {
                        traces.push(TraceId::from_bytes((next | 1 << 100).to_be_bytes()).unwrap());
                    }
                    let keys = [("order.id".to_owned(), format!("o-{next}")), ("sku".to_owned(), format!("s-{sku}"))];
                    // Starts close together, some the same: rows are keyed by start time.
                    model.starts.insert(id, (1_000 + 5 * u64::try_from(next / 2).unwrap(), RecordState::Running));
                    next += 1;
                    model.id_entries += 1;
                    model.key_entries += 2;
                    model.trace_entries += u64::from(joined);
                    model.rows.insert(id, (keys.into_iter().collect(), traces));
                    model.started.push(id);
                    apply(s, vec![model.record(id, RecordState::Running)], vec![]);
                }
                Op::AddKey { process, value, with_row } if !model.started.is_empty() => {
                    // Also to a process folded away: it reaches its new home by its trace.
                    let id = model.started[process % model.started.len()];
                    let kv = ("cart.id".to_owned(), format!("c-{value}"));
                    model.key_entries += 1;
                    let mut records = vec![];
                    if let Some(home) = model.home(id) {
                        if with_row {
                            let state = model.starts[&home].1;
                            records.push(ProcessRecord { keys: vec![], ..model.record(home, state) });
                        }
                        model.rows.get_mut(&home).unwrap().0.insert(kv.clone());
                    }
                    s.apply_processes(&mut ProcessChanges {
                        records,
                        keys: vec![(id, kv.0, kv.1)],
                        ..ProcessChanges::default()
                    }).unwrap();
                }
                Op::Complete { process } if !live.is_empty() => {
                    let id = live[process % live.len()];
                    let record = model.record(id, RecordState::Completed);
                    apply(s, vec![record], vec![]);
                }
                Op::MoveStart { process, by } if !live.is_empty() => {
                    let id = live[process % live.len()];
                    let (start, state) = model.starts[&id];
                    model.starts.insert(id, (start.saturating_sub(by), state));
                    model.id_entries += 1;
                    let record = model.record(id, state);
                    apply(s, vec![record], vec![]);
                }
                Op::Fold { from, into, with_row, key } if live.len() >= 2 => {
                    let from = live[from % live.len()];
                    let into = live.iter().copied().filter(|i| *i != from).nth(into % (live.len() - 1)).unwrap();
                    let (keys, traces) = model.rows.remove(&from).unwrap();
                    model.starts.remove(&from);
                    model.key_entries += keys.len() as u64 + 1;
                    model.trace_entries += traces.len() as u64;
                    let home = model.rows.get_mut(&into).unwrap();
                    home.0.extend(keys);
                    home.1.extend(traces);
                    let keys: Vec<(TraceId, String, String)> =
                        key.map(|v| (from, "cart.id".to_owned(), format!("c-{v}"))).into_iter().collect();
                    for (_, k, v) in &keys {
                        home.0.insert((k.clone(), v.clone()));
                    }
                    let records = if with_row { vec![model.record(into, RecordState::Running)] } else { vec![] };
                    s.apply_processes(&mut ProcessChanges {
                        records,
                        removed: vec![(from, into)],
                        keys,
                        ..ProcessChanges::default()
                    }).unwrap();
                }
                Op::Reopen => {
                    drop(store.take());
                    store = Some(rt.block_on(Store::open(dir.path(), small_runs())).unwrap().0);
                }
                _ => {}
            }
        }
        let s = store.as_ref().unwrap();
        check(s, &model)?;
        // Merges go a step per commit and start over after a restart, so under these tiny
        // limits flushes may outrun them for a while; commits with nothing new finish them.
        // Then each of the two indexes keeps fewer than `fanout` runs a level, and a level
        // holds runs `fanout` times larger than the one below (level 0 `flush_entries`).
        let limits = small_runs().process_index;
        let (flush, fanout) = (limits.flush_entries as u64, limits.fanout as u64);
        let levels = |entries: u64| {
            let (mut levels, mut size) = (1, flush);
            while size < entries {
                (levels, size) = (levels + 1, size * fanout);
            }
            levels
        };
        let bound = (fanout - 1)
            * (levels(model.id_entries) + levels(model.key_entries) + levels(model.trace_entries));
        for _ in 0..3_000 {
            if s.stats().process_index_runs <= bound {
                break;
            }
            s.apply_processes(&mut ProcessChanges::default()).unwrap();
        }
        let runs = s.stats().process_index_runs;
        prop_assert!(
            runs <= bound,
            "{} runs for {} id, {} key and {} trace entries",
            runs, model.id_entries, model.key_entries, model.trace_entries
        );
        check(s, &model)?;
        drop(store.take());
        let s = rt.block_on(Store::open(dir.path(), small_runs())).unwrap().0;
        check(&s, &model)?;
    }
}
