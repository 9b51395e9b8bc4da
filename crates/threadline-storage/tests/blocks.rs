//! Span blocks: lossless round trips over the whole span model, lookups by trace across row
//! groups, and damaged or foreign files refused with the block named.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use proptest::prelude::*;
use threadline_core::id::TraceId;
use threadline_core::span::Span;
use threadline_ingest::convert::convert_otlp;
use threadline_storage::block::{self, BlockError, OpenBlock, ROW_GROUP_ROWS};
use threadline_testsuite::arbitrary;
use threadline_testsuite::generate::{Shape, otlp_request};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Realistic spans: `traces` traces across 5 services.
fn realistic(traces: usize, seed: u64) -> Vec<Span> {
    convert_otlp(otlp_request(Shape { traces, services: 5, seed })).spans
}

async fn write_and_open(store: &Arc<dyn ObjectStore>, path: &str, spans: &mut [Span]) -> OpenBlock {
    let info = block::write(store.as_ref(), path, spans).await.unwrap();
    OpenBlock::open(Arc::clone(store), path, info.bytes).await.unwrap()
}

fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.trace_id, s.start_time_unix_nano, s.span_id));
    spans
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn blocks_round_trip_every_span_field(batches in proptest::collection::vec(arbitrary::batch(), 1..4)) {
        let spans: Vec<Span> = batches.into_iter().flatten().collect();
        prop_assume!(!spans.is_empty());
        runtime().block_on(async {
            let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
            let mut written = spans.clone();
            let block = write_and_open(&store, "b/1.parquet", &mut written).await;
            let read = block.all().await.unwrap();
            prop_assert_eq!(&read, &sorted(spans.clone()));
            let first = spans[0].trace_id;
            let expected: Vec<Span> = sorted(spans).into_iter().filter(|s| s.trace_id == first).collect();
            prop_assert_eq!(block.trace(first).await.unwrap(), expected);
            Ok(())
        })?;
    }
}

#[test]
fn a_trace_is_found_in_a_block_of_many_row_groups() {
    runtime().block_on(async {
        let spans = realistic(ROW_GROUP_ROWS * 3 / 5 + 100, 7);
        assert!(spans.len() > ROW_GROUP_ROWS * 3);
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let block = write_and_open(&store, "b/many.parquet", &mut spans.clone()).await;
        assert_eq!(block.rows(), spans.len() as u64);
        for n in [0usize, 1, 2000, ROW_GROUP_ROWS * 3 / 5 + 99] {
            let id = TraceId::from_bytes(threadline_testsuite::generate::trace_id(7, n)).unwrap();
            let expected: Vec<Span> =
                sorted(spans.iter().filter(|s| s.trace_id == id).cloned().collect());
            assert_eq!(expected.len(), 5);
            assert_eq!(block.trace(id).await.unwrap(), expected, "trace {n}");
        }
        let unknown = TraceId::from_bytes([0xab; 16]).unwrap();
        assert!(block.trace(unknown).await.unwrap().is_empty());
    });
}

#[test]
fn every_trace_of_a_block_of_many_batches_reads_back() {
    // Batches as clients send them (each with its own resources), many row groups and
    // pages: every trace is found whole wherever it falls.
    runtime().block_on(async {
        let spans: Vec<Span> = (1..=160u64)
            .flat_map(|seed| {
                convert_otlp(otlp_request(Shape { traces: 40, services: 4, seed })).spans
            })
            .collect();
        assert!(spans.len() > ROW_GROUP_ROWS * 3);
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let block = write_and_open(&store, "b/batches.parquet", &mut spans.clone()).await;
        let mut by_trace: std::collections::BTreeMap<TraceId, Vec<Span>> = Default::default();
        for span in &spans {
            by_trace.entry(span.trace_id).or_default().push(span.clone());
        }
        // Every third trace: each position in pages and row groups comes up.
        for (id, expected) in by_trace.into_iter().step_by(3) {
            assert_eq!(block.trace(id).await.unwrap(), sorted(expected), "trace {id}");
        }
    });
}

#[test]
fn a_damaged_block_is_refused_with_its_name() {
    runtime().block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut spans = realistic(50, 1);
        let info = block::write(store.as_ref(), "b/d.parquet", &mut spans).await.unwrap();
        let bytes =
            store.get(&ObjectPath::from("b/d.parquet")).await.unwrap().bytes().await.unwrap();

        // Cut off the footer.
        let cut = bytes.slice(..bytes.len() - 10);
        store.put(&ObjectPath::from("b/cut.parquet"), cut.clone().into()).await.unwrap();
        let error = OpenBlock::open(Arc::clone(&store), "b/cut.parquet", cut.len() as u64)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("b/cut.parquet"), "{error}");

        // Damage the data pages: opening works (the footer is whole), reading fails cleanly.
        let mut damaged = bytes.to_vec();
        for byte in &mut damaged[100..600] {
            *byte ^= 0x5a;
        }
        store.put(&ObjectPath::from("b/bad.parquet"), damaged.into()).await.unwrap();
        match OpenBlock::open(Arc::clone(&store), "b/bad.parquet", info.bytes).await {
            Err(error) => assert!(error.to_string().contains("b/bad.parquet"), "{error}"),
            Ok(block) => {
                let error = block.all().await.unwrap_err();
                assert!(error.to_string().contains("b/bad.parquet"), "{error}");
            }
        }
    });
}

#[test]
fn a_parquet_file_of_another_schema_or_version_is_refused() {
    runtime().block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        // A valid Parquet file without the version key.
        let batch = arrow_array::RecordBatch::try_from_iter([(
            "x",
            Arc::new(arrow_array::Int32Array::from(vec![1, 2])) as arrow_array::ArrayRef,
        )])
        .unwrap();
        let mut bytes = Vec::new();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let size = bytes.len() as u64;
        store.put(&ObjectPath::from("b/foreign.parquet"), bytes.into()).await.unwrap();
        let error =
            OpenBlock::open(Arc::clone(&store), "b/foreign.parquet", size).await.unwrap_err();
        assert!(matches!(error, BlockError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains("threadline.block.version"), "{error}");
    });
}
