//! The durable store through its public API: spans readable from the head, from blocks and
//! after a reopen; WAL replay after an unclean stop; retention; and a missing or damaged
//! index or block detected, reported, and everything else still readable.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::path::Path;
use std::time::Duration;

use threadline_core::id::TraceId;
use threadline_core::span::Span;
use threadline_ingest::convert::convert_otlp;
use threadline_storage::store::{CompactionHook, Opened, Store, StoreOptions};
use threadline_storage::wal::{FsyncPolicy, WalOptions};
use threadline_testsuite::generate::{self, Shape, otlp_request};
use threadline_testsuite::server::TempDir;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn options() -> StoreOptions {
    StoreOptions {
        wal: WalOptions { segment_bytes: 64 << 10, fsync: FsyncPolicy::Never },
        ..StoreOptions::default()
    }
}

fn batch(seed: u64, traces: usize) -> Vec<Span> {
    convert_otlp(otlp_request(Shape { traces, services: 4, seed })).spans
}

fn trace_of(seed: u64, n: usize) -> TraceId {
    TraceId::from_bytes(generate::trace_id(seed, n)).unwrap()
}

fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.start_time_unix_nano, s.span_id, s.end_time_unix_nano));
    spans
}

fn expected(batches: &[Vec<Span>], trace: TraceId) -> Vec<Span> {
    sorted(batches.iter().flatten().filter(|s| s.trace_id == trace).cloned().collect())
}

async fn open(dir: &Path) -> (Store, Opened) {
    Store::open(dir, options()).await.unwrap()
}

#[test]
fn spans_are_readable_from_the_head_from_blocks_and_after_reopening() {
    runtime().block_on(async {
        let dir = TempDir::new("store-basic").unwrap();
        let batches: Vec<Vec<Span>> = (1..=6).map(|seed| batch(seed, 40)).collect();
        {
            let (store, opened) = open(dir.path()).await;
            assert!(opened.index_problem.is_none(), "{:?}", opened.index_problem);
            let refs: Vec<&[Span]> = batches[..3].iter().map(Vec::as_slice).collect();
            store.append(&refs).unwrap();
            assert_eq!(
                store.trace(trace_of(1, 5)).await.unwrap(),
                expected(&batches, trace_of(1, 5))
            );
            assert_eq!(store.flush().await.unwrap(), 3 * 160);
            let stats = store.stats();
            assert_eq!((stats.head_spans, stats.blocks, stats.block_spans), (0, 1, 480));
            // Flushed: the WAL segments it covered are gone.
            assert_eq!(stats.wal_segments, 1, "{stats:?}");
            for b in &batches[3..] {
                store.append(&[b.as_slice()]).unwrap();
            }
            store.flush().await.unwrap();
            for seed in 1..=6 {
                let id = trace_of(seed, 7);
                assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id), "seed {seed}");
            }
            assert_eq!(store.services(), vec!["service-0", "service-1", "service-2", "service-3"]);
        }
        let (store, opened) = open(dir.path()).await;
        assert_eq!(opened.replayed_records, 0);
        assert_eq!(store.stats().blocks, 2);
        for seed in 1..=6 {
            let id = trace_of(seed, 39);
            assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id));
        }
        assert_eq!(store.services().len(), 4);
        assert!(store.trace(TraceId::from_bytes([7; 16]).unwrap()).await.unwrap().is_empty());
    });
}

#[test]
fn a_trace_split_across_blocks_and_the_head_reads_whole() {
    runtime().block_on(async {
        let dir = TempDir::new("store-split").unwrap();
        let (store, _) = open(dir.path()).await;
        let spans = batch(9, 3);
        let id = trace_of(9, 1);
        let of_trace: Vec<Span> = spans.iter().filter(|s| s.trace_id == id).cloned().collect();
        for (i, span) in of_trace.iter().enumerate() {
            store.append(&[std::slice::from_ref(span)]).unwrap();
            if i < 2 {
                store.flush().await.unwrap();
            }
        }
        assert_eq!(store.stats().blocks, 2);
        assert_eq!(store.trace(id).await.unwrap(), sorted(of_trace));
    });
}

#[test]
fn batches_not_yet_in_a_block_come_back_from_the_wal() {
    runtime().block_on(async {
        let dir = TempDir::new("store-replay").unwrap();
        let batches: Vec<Vec<Span>> = (1..=4).map(|seed| batch(seed, 30)).collect();
        {
            let (store, _) = open(dir.path()).await;
            store.append(&[batches[0].as_slice()]).unwrap();
            store.flush().await.unwrap();
            store.append(&[batches[1].as_slice(), batches[2].as_slice()]).unwrap();
            store.append(&[batches[3].as_slice()]).unwrap();
            // Dropped without a flush, as a crash leaves it.
        }
        let (store, opened) = open(dir.path()).await;
        assert_eq!(opened.replayed_records, 3);
        let replayed: Vec<Vec<Span>> =
            opened.replayed.into_iter().map(|(_, b)| b.to_vec()).collect();
        assert_eq!(replayed, batches[1..].to_vec(), "replayed in order, for the engine");
        for seed in 1..=4 {
            let id = trace_of(seed, 11);
            assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id));
        }
    });
}

#[test]
fn retention_deletes_old_blocks_and_their_index_entries() {
    runtime().block_on(async {
        let dir = TempDir::new("store-retention").unwrap();
        let options = StoreOptions { retention: Duration::from_secs(3600), ..options() };
        let (store, _) = Store::open(dir.path(), options).await.unwrap();
        let old = batch(1, 10);
        let new = batch(2, 10);
        store.append(&[old.as_slice()]).unwrap();
        store.flush().await.unwrap();
        store.append(&[new.as_slice()]).unwrap();
        store.flush().await.unwrap();
        let newest_old = old.iter().map(|s| s.start_time_unix_nano).max().unwrap();
        let newest_new = new.iter().map(|s| s.start_time_unix_nano).max().unwrap();
        // "Now" is an hour past the old batch and before the new one has aged out.
        let now = newest_old + 3_600_000_000_000 + 1;
        assert!(newest_new > now - 3_600_000_000_000);
        assert_eq!(store.enforce_retention(now).await.unwrap(), 1);
        assert_eq!(
            store.collect_garbage(true).await,
            1,
            "the expired block's file goes after its grace"
        );
        assert!(store.trace(trace_of(1, 3)).await.unwrap().is_empty());
        assert_eq!(store.trace(trace_of(2, 3)).await.unwrap().len(), 4);
        let stats = store.stats();
        assert_eq!((stats.blocks, stats.deleted_blocks, stats.block_spans), (1, 1, 40));
        let files: Vec<_> = std::fs::read_dir(dir.path().join("blocks/spans")).unwrap().collect();
        assert_eq!(files.len(), 1);
    });
}

#[test]
fn over_the_size_limit_the_oldest_blocks_go_first() {
    runtime().block_on(async {
        let dir = TempDir::new("store-size").unwrap();
        let (store, _) = Store::open(dir.path(), options()).await.unwrap();
        for seed in 1..=3 {
            store.append(&[batch(seed, 20).as_slice()]).unwrap();
            store.flush().await.unwrap();
        }
        drop(store);
        // Room for the two newest blocks exactly.
        let mut files: Vec<_> = std::fs::read_dir(dir.path().join("blocks/spans"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let newest_two: u64 = files[1..].iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
        let limited = StoreOptions { max_block_bytes: Some(newest_two), ..options() };
        let (store, _) = Store::open(dir.path(), limited).await.unwrap();
        assert_eq!(store.enforce_retention(0).await.unwrap(), 1);
        assert!(store.trace(trace_of(1, 0)).await.unwrap().is_empty(), "seed 1 is oldest");
        assert!(!store.trace(trace_of(3, 0)).await.unwrap().is_empty());
    });
}

#[test]
fn a_missing_index_is_rebuilt_from_the_blocks() {
    runtime().block_on(async {
        let dir = TempDir::new("store-noindex").unwrap();
        let batches: Vec<Vec<Span>> = (1..=3).map(|seed| batch(seed, 15)).collect();
        let filter_bytes;
        {
            let (store, _) = open(dir.path()).await;
            store.append(&[batches[0].as_slice()]).unwrap();
            store.flush().await.unwrap();
            store.append(&[batches[1].as_slice()]).unwrap();
            store.flush().await.unwrap();
            store.append(&[batches[2].as_slice()]).unwrap();
            filter_bytes = store.stats().trace_filter_bytes;
        }
        std::fs::remove_file(dir.path().join("index/threadline.redb")).unwrap();
        let (store, opened) = open(dir.path()).await;
        // Filters made again from the blocks are sized by their traces, as when written.
        assert_eq!(store.stats().trace_filter_bytes, filter_bytes);
        assert!(opened.index_problem.as_deref().unwrap().contains("missing"), "{opened:?}");
        assert_eq!(opened.rebuilt_blocks, 2);
        for seed in 1..=3 {
            let id = trace_of(seed, 4);
            assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id), "seed {seed}");
        }
        assert_eq!(store.services().len(), 4);
        // New blocks do not overwrite the ones found.
        store.flush().await.unwrap();
        assert_eq!(store.stats().blocks, 3);
        assert_eq!(store.trace(trace_of(1, 4)).await.unwrap(), expected(&batches, trace_of(1, 4)));
    });
}

#[test]
fn a_damaged_or_missing_trace_filter_is_made_again_from_its_block() {
    runtime().block_on(async {
        let dir = TempDir::new("store-filter").unwrap();
        let batches: Vec<Vec<Span>> = (1..=3).map(|seed| batch(seed, 15)).collect();
        {
            let (store, _) = open(dir.path()).await;
            for b in &batches {
                store.append(&[b.as_slice()]).unwrap();
                store.flush().await.unwrap();
            }
            // 15 traces a block, 16 bits each, in buckets of 256 bits.
            assert_eq!(store.stats().trace_filter_bytes, 3 * 32);
        }
        let filters = redb::TableDefinition::<u64, &[u8]>::new("block_traces");
        {
            let db = redb::Database::create(dir.path().join("index/threadline.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut table = tx.open_table(filters).unwrap();
                let ids: Vec<u64> = redb::ReadableTable::iter(&table)
                    .unwrap()
                    .map(|e| e.unwrap().0.value())
                    .collect();
                assert_eq!(ids.len(), 3);
                table.insert(ids[0], b"not a filter".as_slice()).unwrap();
                table.remove(ids[1]).unwrap();
            }
            tx.commit().unwrap();
        }
        let (store, opened) = open(dir.path()).await;
        assert!(opened.unreadable_blocks.is_empty(), "{opened:?}");
        for seed in 1..=3 {
            for n in [0, 7, 14] {
                let id = trace_of(seed, n);
                assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id), "seed {seed}");
            }
        }
        drop(store);
        // Made again once, and stored: the index holds a valid filter for every block.
        let db = redb::Database::create(dir.path().join("index/threadline.redb")).unwrap();
        let read = redb::ReadableDatabase::begin_read(&db).unwrap();
        let table = read.open_table(filters).unwrap();
        let stored: Vec<Vec<u8>> = redb::ReadableTable::iter(&table)
            .unwrap()
            .map(|e| e.unwrap().1.value().to_vec())
            .collect();
        assert_eq!(stored.len(), 3);
        for bytes in stored {
            threadline_storage::trace_filter::TraceFilter::from_bytes(&bytes).unwrap();
        }
    });
}

#[test]
fn a_damaged_index_is_set_aside_and_rebuilt() {
    runtime().block_on(async {
        let dir = TempDir::new("store-badindex").unwrap();
        let spans = batch(5, 10);
        {
            let (store, _) = open(dir.path()).await;
            store.append(&[spans.as_slice()]).unwrap();
            store.flush().await.unwrap();
        }
        std::fs::write(dir.path().join("index/threadline.redb"), b"not an index at all").unwrap();
        let (store, opened) = open(dir.path()).await;
        assert!(opened.index_problem.is_some());
        assert_eq!(opened.rebuilt_blocks, 1);
        assert_eq!(store.trace(trace_of(5, 2)).await.unwrap().len(), 4);
    });
}

#[test]
fn a_damaged_block_is_reported_and_every_other_block_stays_readable() {
    runtime().block_on(async {
        let dir = TempDir::new("store-badblock").unwrap();
        let batches: Vec<Vec<Span>> = (1..=2).map(|seed| batch(seed, 10)).collect();
        {
            let (store, _) = open(dir.path()).await;
            for b in &batches {
                store.append(&[b.as_slice()]).unwrap();
                store.flush().await.unwrap();
            }
        }
        let first = dir.path().join("blocks/spans/00000000000000000001.parquet");
        let bytes = std::fs::read(&first).unwrap();
        std::fs::write(&first, &bytes[..bytes.len() / 2]).unwrap();
        let (store, opened) = open(dir.path()).await;
        assert_eq!(opened.unreadable_blocks.len(), 1, "{opened:?}");
        assert!(opened.unreadable_blocks[0].contains("00000000000000000001.parquet"));
        assert!(store.trace(trace_of(1, 0)).await.unwrap().is_empty());
        let id = trace_of(2, 0);
        assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id));
    });
}

#[test]
fn a_second_store_on_the_same_directory_is_refused() {
    runtime().block_on(async {
        let dir = TempDir::new("store-lock").unwrap();
        let (_store, _) = open(dir.path()).await;
        let error = Store::open(dir.path(), options()).await.unwrap_err();
        assert!(error.to_string().contains("in use"), "{error}");
    });
}

#[test]
fn small_blocks_are_compacted_into_one_and_every_trace_still_reads() {
    runtime().block_on(async {
        let dir = TempDir::new("store-compact").unwrap();
        let batches: Vec<Vec<Span>> = (1..=6).map(|seed| batch(seed, 25)).collect();
        {
            let (store, _) = open(dir.path()).await;
            for b in &batches {
                store.append(&[b.as_slice()]).unwrap();
                store.flush().await.unwrap();
            }
            assert_eq!(store.stats().blocks, 6);
            assert_eq!(store.compact().await.unwrap(), 6);
            let stats = store.stats();
            assert_eq!((stats.blocks, stats.block_spans, stats.compacted_blocks), (1, 600, 6));
            // The merged block's filter is sized by its 150 traces (16 bits each, in 256-bit
            // buckets), not by its 600 spans.
            assert_eq!(stats.trace_filter_bytes, 150_usize.div_ceil(16) as u64 * 32);
            for seed in 1..=6 {
                let id = trace_of(seed, 13);
                assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id), "seed {seed}");
            }
            assert_eq!(store.compact().await.unwrap(), 0, "one block is not a run");
            assert_eq!(
                store.collect_garbage(false).await,
                0,
                "reads under way keep the small blocks a while"
            );
            assert_eq!(store.collect_garbage(true).await, 6);
        }
        let files: Vec<_> = std::fs::read_dir(dir.path().join("blocks/spans")).unwrap().collect();
        assert_eq!(files.len(), 1, "the small blocks' files are gone");
        let (store, opened) = open(dir.path()).await;
        assert!(opened.unreadable_blocks.is_empty());
        for seed in 1..=6 {
            let id = trace_of(seed, 24);
            assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id));
        }
    });
}

#[test]
fn fewer_small_blocks_than_a_run_are_left_alone() {
    runtime().block_on(async {
        let dir = TempDir::new("store-compact-few").unwrap();
        let (store, _) = open(dir.path()).await;
        for seed in 1..=3 {
            store.append(&[batch(seed, 5).as_slice()]).unwrap();
            store.flush().await.unwrap();
        }
        assert_eq!(store.compact().await.unwrap(), 0);
        assert_eq!(store.stats().blocks, 3);
    });
}

#[test]
fn traces_are_found_by_service_operation_tags_time_and_duration() {
    use threadline_storage::search::SpanQuery;
    runtime().block_on(async {
        let dir = TempDir::new("store-search").unwrap();
        let (store, _) = open(dir.path()).await;
        // Seeds 1 and 2 in a block, seed 3 still in memory.
        for seed in 1..=2 {
            store.append(&[batch(seed, 10).as_slice()]).unwrap();
        }
        store.flush().await.unwrap();
        store.append(&[batch(3, 10).as_slice()]).unwrap();
        let all = SpanQuery { start_to: u64::MAX, limit: 1000, ..SpanQuery::default() };

        let found = store.search(&all).await.unwrap();
        assert_eq!(found.len(), 30);
        assert_eq!(found[0], trace_of(3, 9), "the trace that started last comes first");

        let order =
            SpanQuery { tags: vec![("order.id".into(), "order-2-4".into())], ..all.clone() };
        assert_eq!(store.search(&order).await.unwrap(), vec![trace_of(2, 4)]);
        let typed = SpanQuery {
            tags: vec![
                ("http.response.status_code".into(), "200".into()),
                ("order.id".into(), "order-3-1".into()),
            ],
            ..all.clone()
        };
        assert_eq!(store.search(&typed).await.unwrap(), vec![trace_of(3, 1)], "in memory too");
        let limited = SpanQuery { service: Some("service-1".into()), limit: 5, ..all.clone() };
        assert_eq!(store.search(&limited).await.unwrap().len(), 5);
        let nowhere = SpanQuery { service: Some("no-such-service".into()), ..all.clone() };
        assert!(store.search(&nowhere).await.unwrap().is_empty());

        let spans: Vec<Span> = (1..=3).flat_map(|seed| batch(seed, 10)).collect();
        let one = &spans[0];
        let by_name_and_time = SpanQuery {
            operation: Some(one.name.to_string()),
            start_from: one.start_time_unix_nano,
            start_to: one.start_time_unix_nano,
            min_duration: Some(one.duration_nanos()),
            max_duration: Some(one.duration_nanos()),
            ..all.clone()
        };
        assert_eq!(store.search(&by_name_and_time).await.unwrap(), vec![one.trace_id]);
        let too_long = SpanQuery { min_duration: Some(3_600_000_000_000), ..all };
        assert!(store.search(&too_long).await.unwrap().is_empty());
    });
}

#[test]
fn reads_racing_a_compaction_see_every_span() {
    runtime().block_on(async {
        let dir = TempDir::new("store-compact-race").unwrap();
        let (store, _) = open(dir.path()).await;
        let batches: Vec<Vec<Span>> = (1..=6).map(|seed| batch(seed, 30)).collect();
        for b in &batches {
            store.append(&[b.as_slice()]).unwrap();
            store.flush().await.unwrap();
        }
        let store = std::sync::Arc::new(store);
        let reader = {
            let (store, batches) = (std::sync::Arc::clone(&store), batches.clone());
            tokio::spawn(async move {
                for round in 0..40 {
                    for seed in 1..=6 {
                        let id = trace_of(seed, round % 30);
                        assert_eq!(
                            store.trace(id).await.unwrap(),
                            expected(&batches, id),
                            "seed {seed} round {round}"
                        );
                    }
                }
            })
        };
        assert_eq!(store.compact().await.unwrap(), 6);
        reader.await.unwrap();
        assert_eq!(store.stats().read_errors, 0);
    });
}

#[test]
fn a_full_head_holds_the_writer_back_until_a_block_is_written() {
    runtime().block_on(async {
        let dir = TempDir::new("store-head-room").unwrap();
        let options = StoreOptions { flush_spans: 100, max_head_spans: 250, ..options() };
        let (store, _) = Store::open(dir.path(), options).await.unwrap();
        let store = std::sync::Arc::new(store);
        store.append(&[batch(1, 30).as_slice()]).unwrap();
        assert!(store.head_spans() < 250);
        assert!(store.wait_for_head_room(Duration::from_millis(1)), "room left: no wait");
        store.append(&[batch(2, 30).as_slice(), batch(3, 30).as_slice()]).unwrap();
        let full = store.head_spans();
        assert!(full >= 250, "{full} spans in the head");
        let started = std::time::Instant::now();
        assert!(!store.wait_for_head_room(Duration::from_millis(200)), "nothing written yet");
        assert!(started.elapsed() >= Duration::from_millis(200), "it waited the whole time");
        // A writer waiting on another thread goes on as soon as a block is written.
        let waiter = {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || store.wait_for_head_room(Duration::from_secs(60)))
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the waiter waits while the head is full");
        assert_eq!(store.flush().await.unwrap(), full as u64);
        assert!(waiter.join().unwrap(), "the waiter was let go by the flush");
        assert_eq!(store.head_spans(), 0);
    });
}

#[test]
fn blocks_written_while_a_compaction_runs_keep_their_own_ids_and_spans() {
    runtime().block_on(async {
        let dir = TempDir::new("store-flush-during-compaction").unwrap();
        let batches: Vec<Vec<Span>> = (1..=12).map(|seed| batch(seed, 30)).collect();
        let total = batches.iter().map(Vec::len).sum::<usize>() as u64;
        let merged;
        {
            let (store, _) = open(dir.path()).await;
            for b in &batches[..6] {
                store.append(&[b.as_slice()]).unwrap();
                store.flush().await.unwrap();
            }
            let store = std::sync::Arc::new(store);
            let compaction = {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move { store.compact().await.unwrap() })
            };
            for b in &batches[6..] {
                store.append(&[b.as_slice()]).unwrap();
                store.flush().await.unwrap();
            }
            merged = compaction.await.unwrap();
            assert!(merged >= 4, "a run was merged: {merged}");
            let stats = store.stats();
            assert_eq!(stats.block_spans, total);
            assert_eq!(stats.blocks, 12 - merged as u64 + 1);
            for seed in 1..=12 {
                let id = trace_of(seed, 7);
                assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id), "seed {seed}");
            }
        }
        // After a reopen every block is listed once, with every span, and new blocks get new ids.
        let (store, opened) = open(dir.path()).await;
        assert!(opened.unreadable_blocks.is_empty(), "{:?}", opened.unreadable_blocks);
        assert_eq!(store.stats().block_spans, total);
        let more = batch(13, 30);
        store.append(&[more.as_slice()]).unwrap();
        store.flush().await.unwrap();
        assert_eq!(store.stats().blocks, 12 - merged as u64 + 2);
        assert_eq!(store.stats().block_spans, total + more.len() as u64);
        for seed in 1..=12 {
            let id = trace_of(seed, 21);
            assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id), "seed {seed}");
        }
    });
}

#[test]
fn a_merged_block_is_read_in_the_moment_between_its_index_commit_and_the_block_list() {
    // The compaction stops right after its index commit (which names the merged block and no
    // longer the small ones) until every trace has been read in that moment.
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let dir = TempDir::new("store-compact-moment").unwrap();
        let (at_hook, reached) = std::sync::mpsc::sync_channel::<()>(1);
        let (go_on, wait) = std::sync::mpsc::sync_channel::<()>(1);
        let wait = std::sync::Mutex::new(wait);
        let hook = CompactionHook(std::sync::Arc::new(move || {
            let _ = at_hook.send(());
            let _ = wait.lock().unwrap().recv();
        }));
        let options = StoreOptions { after_compaction_commit: Some(hook), ..options() };
        let (store, _) = Store::open(dir.path(), options).await.unwrap();
        let batches: Vec<Vec<Span>> = (1..=4).map(|seed| batch(seed, 10)).collect();
        for b in &batches {
            store.append(&[b.as_slice()]).unwrap();
            store.flush().await.unwrap();
        }
        let store = std::sync::Arc::new(store);
        let compaction = tokio::spawn({
            let store = std::sync::Arc::clone(&store);
            async move { store.compact().await.unwrap() }
        });
        tokio::task::spawn_blocking(move || reached.recv().unwrap()).await.unwrap();
        for seed in 1..=4 {
            for n in 0..10 {
                let id = trace_of(seed, n);
                assert_eq!(store.trace(id).await.unwrap(), expected(&batches, id), "{seed}/{n}");
            }
        }
        go_on.send(()).unwrap();
        assert_eq!(compaction.await.unwrap(), 4);
        assert_eq!(store.stats().read_errors, 0);
    });
}
