//! The `spans` table: every stored span, from the blocks and from the spans not yet in a
//! block, read at the moment the query is planned. A filter on `start_time` skips blocks
//! outside the range; `trace_id = '…'` reads that trace alone (`Store::trace`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};
use threadline_core::id::TraceId;
use threadline_core::span::Span;
use threadline_storage::block;
use threadline_storage::store::{SnapshotBlock, Store};

use crate::convert::{SpanColumn, spans_batch, spans_schema, stored_columns};
use crate::pushdown::{self, TimeRange};

/// Rows per record batch read.
const BATCH_ROWS: usize = 8192;

#[derive(Debug)]
pub(crate) struct SpansTable {
    store: Arc<Store>,
    schema: SchemaRef,
    partitions: usize,
}

impl SpansTable {
    pub(crate) fn new(store: Arc<Store>, partitions: usize) -> Self {
        Self { store, schema: spans_schema(), partitions: partitions.max(1) }
    }
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl TableProvider for SpansTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(pushdown::support(filters, |f| {
            pushdown::string_eq(std::slice::from_ref(f), "trace_id").is_some()
                || pushdown::is_time_bound(f, "start_time")
        }))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let indexes: Vec<usize> =
            projection.cloned().unwrap_or_else(|| (0..SpanColumn::ALL.len()).collect());
        let columns: Vec<SpanColumn> =
            indexes.iter().filter_map(|i| SpanColumn::ALL.get(*i).copied()).collect();
        let schema = Arc::new(self.schema.project(&indexes)?);
        let read = Read { columns: Arc::new(columns), schema: Arc::clone(&schema) };
        let mut partitions: Vec<Arc<dyn PartitionStream>> = Vec::new();
        if let Some(trace) = pushdown::string_eq(filters, "trace_id") {
            // Not a trace id: no span has it.
            if let Ok(trace_id) = TraceId::from_hex(&trace.to_ascii_lowercase()) {
                partitions.push(Arc::new(TracePartition {
                    store: Arc::clone(&self.store),
                    trace_id,
                    read: read.clone(),
                }));
            }
        } else {
            let range = pushdown::time_range(filters, "start_time");
            let snapshot = self.store.snapshot();
            let blocks: Vec<SnapshotBlock> = snapshot
                .blocks
                .into_iter()
                .filter(|b| range.overlaps(b.min_start_unix_nano, b.max_start_unix_nano))
                .collect();
            // Newest blocks first, dealt round-robin so the partitions share the work.
            let mut groups: Vec<Vec<SnapshotBlock>> = vec![Vec::new(); self.partitions];
            for (i, block) in blocks.into_iter().rev().enumerate() {
                groups[i % self.partitions].push(block);
            }
            partitions.push(Arc::new(HeadPartition {
                batches: snapshot.head,
                range,
                read: read.clone(),
            }));
            for blocks in groups.into_iter().filter(|g| !g.is_empty()) {
                partitions.push(Arc::new(BlockPartition { blocks, read: read.clone() }));
            }
        }
        Ok(Arc::new(StreamingTableExec::try_new(schema, partitions, None, [], false, limit)?))
    }
}

/// What every partition of one scan produces.
#[derive(Debug, Clone)]
struct Read {
    columns: Arc<Vec<SpanColumn>>,
    schema: SchemaRef,
}

impl Read {
    fn spans(&self, spans: &[&Span]) -> Result<datafusion::arrow::array::RecordBatch> {
        let raw = block::record_batch(spans).map_err(external)?;
        Ok(spans_batch(&raw, &self.columns, &self.schema)?)
    }

    fn stream(
        &self,
        batches: impl futures_util::Stream<Item = Result<datafusion::arrow::array::RecordBatch>>
        + Send
        + 'static,
    ) -> SendableRecordBatchStream {
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), batches))
    }
}

/// Spans not yet in a block.
#[derive(Debug)]
struct HeadPartition {
    batches: Vec<Arc<Vec<Span>>>,
    range: TimeRange,
    read: Read,
}

impl PartitionStream for HeadPartition {
    fn schema(&self) -> &SchemaRef {
        &self.read.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (batches, range, read) = (self.batches.clone(), self.range, self.read.clone());
        let chunks = stream::iter(batches).flat_map(move |batch| {
            let read = read.clone();
            let spans: Vec<usize> = (0..batch.len())
                .filter(|&i| range.contains(batch[i].start_time_unix_nano))
                .collect();
            let chunks: Vec<Vec<usize>> = spans.chunks(BATCH_ROWS).map(<[usize]>::to_vec).collect();
            stream::iter(chunks).map(move |chunk| {
                let refs: Vec<&Span> = chunk.iter().map(|&i| &batch[i]).collect();
                read.spans(&refs)
            })
        });
        self.read.stream(chunks)
    }
}

/// Blocks, read one after another, only the columns the query uses.
#[derive(Debug)]
struct BlockPartition {
    blocks: Vec<SnapshotBlock>,
    read: Read,
}

impl PartitionStream for BlockPartition {
    fn schema(&self) -> &SchemaRef {
        &self.read.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let stored = stored_columns(&self.read.columns);
        let read = self.read.clone();
        let batches = stream::iter(self.blocks.clone())
            .map(move |b| {
                b.block
                    .read_columns(&stored, BATCH_ROWS)
                    .map(|batches| batches.map_err(external))
                    .map_err(external)
            })
            .try_flatten()
            .map(move |raw| {
                let raw = raw?;
                spans_batch(&raw, &read.columns, &read.schema).map_err(DataFusionError::from)
            });
        self.read.stream(batches)
    }
}

/// One trace, from the blocks whose trace filters may hold it.
#[derive(Debug)]
struct TracePartition {
    store: Arc<Store>,
    trace_id: TraceId,
    read: Read,
}

impl PartitionStream for TracePartition {
    fn schema(&self) -> &SchemaRef {
        &self.read.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (store, trace_id, read) = (Arc::clone(&self.store), self.trace_id, self.read.clone());
        let batch = stream::once(async move {
            let spans = store.trace(trace_id).await.map_err(external)?;
            let refs: Vec<&Span> = spans.iter().collect();
            read.spans(&refs)
        });
        self.read.stream(batch)
    }
}
