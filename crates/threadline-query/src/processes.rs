//! The `processes` table: every row of the process table, running and finished, as the
//! process writer keeps it current. Filters on `type`, `state`, `stuck`, `sla_breached` and
//! `start_time` use the table's indexes.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::builder::{ListBuilder, StringBuilder};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures_util::stream;
use threadline_storage::processes::{
    Cursor, ProcessFilter, ProcessRecord, RecordState, WaitingRecord,
};
use threadline_storage::store::Store;

use crate::convert::{map_type, millis, string_map, timestamp_type, timestamps};
use crate::pushdown;

/// Rows per record batch (and per read of the table).
const PAGE_ROWS: usize = 4096;

const COLUMNS: [&str; 17] = [
    "process_id",
    "type",
    "state",
    "completion",
    "stuck",
    "sla_breached",
    "start_time",
    "end_time",
    "last_activity",
    "duration_ms",
    "spans",
    "error_spans",
    "trace_ids",
    "keys",
    "waiting",
    "failure",
    "spec_violations",
];

fn waiting_fields() -> Fields {
    Fields::from(vec![
        Field::new("kind", DataType::Utf8, false),
        Field::new("system", DataType::Utf8, true),
        Field::new("channel", DataType::Utf8, true),
        Field::new("consumer_group", DataType::Utf8, true),
        Field::new("since", timestamp_type(), true),
        Field::new("missing_parents", DataType::Int64, true),
    ])
}

fn string_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

fn field(name: &str) -> Field {
    let (data_type, nullable) = match name {
        "completion" | "failure" => (DataType::Utf8, true),
        "stuck" | "sla_breached" => (DataType::Boolean, false),
        "start_time" | "end_time" | "last_activity" => (timestamp_type(), false),
        "duration_ms" => (DataType::Float64, false),
        "spans" | "error_spans" => (DataType::Int64, false),
        "trace_ids" => (string_list(), false),
        "spec_violations" => (string_list(), true),
        "keys" => (map_type(), false),
        "waiting" => (
            DataType::List(Arc::new(Field::new("item", DataType::Struct(waiting_fields()), false))),
            false,
        ),
        _ => (DataType::Utf8, false),
    };
    Field::new(name, data_type, nullable)
}

#[derive(Debug)]
pub(crate) struct ProcessesTable {
    store: Arc<Store>,
    schema: SchemaRef,
}

impl ProcessesTable {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        let schema = Arc::new(Schema::new(COLUMNS.iter().map(|c| field(c)).collect::<Vec<_>>()));
        Self { store, schema }
    }
}

fn filter_of(filters: &[Expr]) -> ProcessFilter {
    let range = pushdown::time_range(filters, "start_time");
    ProcessFilter {
        process_type: pushdown::string_eq(filters, "type"),
        state: pushdown::string_eq(filters, "state").and_then(|s| RecordState::parse(&s)),
        start_from: range.from,
        start_to: range.to,
        stuck: pushdown::bool_eq(filters, "stuck"),
        sla_breached: pushdown::bool_eq(filters, "sla_breached"),
        min_duration: None,
        max_duration: None,
    }
}

#[async_trait]
impl TableProvider for ProcessesTable {
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
            let one = std::slice::from_ref(f);
            pushdown::string_eq(one, "type").is_some()
                || pushdown::string_eq(one, "state").is_some()
                || pushdown::bool_eq(one, "stuck").is_some()
                || pushdown::bool_eq(one, "sla_breached").is_some()
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
            projection.cloned().unwrap_or_else(|| (0..COLUMNS.len()).collect());
        let schema = Arc::new(self.schema.project(&indexes)?);
        let partition = ProcessPartition {
            store: Arc::clone(&self.store),
            filter: filter_of(filters),
            columns: indexes.iter().filter_map(|i| COLUMNS.get(*i).copied()).collect(),
            schema: Arc::clone(&schema),
        };
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            vec![Arc::new(partition)],
            None,
            [],
            false,
            limit,
        )?))
    }
}

#[derive(Debug)]
struct ProcessPartition {
    store: Arc<Store>,
    filter: ProcessFilter,
    columns: Vec<&'static str>,
    schema: SchemaRef,
}

/// Where a paged read of the table is.
enum Page {
    First,
    After(Cursor),
    Done,
}

impl PartitionStream for ProcessPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let store = Arc::clone(&self.store);
        let filter = self.filter.clone();
        let columns = Arc::new(self.columns.clone());
        let schema = Arc::clone(&self.schema);
        let pages = stream::unfold(Page::First, move |page| {
            let (store, filter, columns, schema) =
                (Arc::clone(&store), filter.clone(), Arc::clone(&columns), Arc::clone(&schema));
            async move {
                let cursor = match page {
                    Page::Done => return None,
                    Page::First => None,
                    Page::After(cursor) => Some(cursor),
                };
                let read = tokio::task::spawn_blocking(move || {
                    store.list_processes(&filter, PAGE_ROWS, cursor)
                })
                .await;
                let (rows, next) = match read {
                    Ok(Ok(found)) => found,
                    Ok(Err(e)) => {
                        return Some((Err(DataFusionError::External(Box::new(e))), Page::Done));
                    }
                    Err(e) => {
                        return Some((Err(DataFusionError::External(Box::new(e))), Page::Done));
                    }
                };
                let batch =
                    processes_batch(&rows, &columns, &schema).map_err(DataFusionError::from);
                Some((batch, next.map_or(Page::Done, Page::After)))
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), pages))
    }
}

fn processes_batch(
    rows: &[ProcessRecord],
    columns: &[&str],
    schema: &SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let strings = |f: &dyn Fn(&ProcessRecord) -> Option<String>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let lists = |f: &dyn Fn(&ProcessRecord) -> Option<Vec<String>>| -> ArrayRef {
        let mut builder = ListBuilder::new(StringBuilder::new());
        for row in rows {
            match f(row) {
                Some(items) => {
                    for item in items {
                        builder.values().append_value(item);
                    }
                    builder.append(true);
                }
                None => builder.append(false),
            }
        }
        Arc::new(builder.finish())
    };
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for column in columns {
        let array: ArrayRef = match *column {
            "process_id" => strings(&|r| Some(r.id.to_hex())),
            "type" => strings(&|r| Some(r.process_type.clone())),
            "state" => strings(&|r| Some(r.state.as_str().to_owned())),
            "completion" => strings(&|r| r.mode.clone()),
            "failure" => strings(&|r| r.failure.clone()),
            "stuck" => Arc::new(rows.iter().map(|r| Some(r.stuck)).collect::<BooleanArray>()),
            "sla_breached" => {
                Arc::new(rows.iter().map(|r| Some(r.sla_breached)).collect::<BooleanArray>())
            }
            "start_time" => Arc::new(timestamps(rows.iter().map(|r| r.start_nanos))),
            "end_time" => Arc::new(timestamps(rows.iter().map(|r| r.end_nanos))),
            "last_activity" => Arc::new(timestamps(rows.iter().map(|r| r.last_activity))),
            "duration_ms" => Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| millis(r.end_nanos.saturating_sub(r.start_nanos))),
            )),
            "spans" => {
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| i64::from(r.spans))))
            }
            "error_spans" => Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| i64::from(r.error_spans)),
            )),
            "trace_ids" => lists(&|r| Some(r.traces.iter().map(|t| t.to_hex()).collect())),
            "spec_violations" => lists(&|r| r.spec_violations.clone()),
            "keys" => Arc::new(string_map(rows.iter().map(|r| r.keys.as_slice()))?),
            "waiting" => Arc::new(waiting(rows)?),
            other => {
                return Err(ArrowError::SchemaError(format!("no processes column {other}")));
            }
        };
        arrays.push(array);
    }
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
}

fn waiting(rows: &[ProcessRecord]) -> Result<datafusion::arrow::array::ListArray, ArrowError> {
    let all: Vec<&WaitingRecord> = rows.iter().flat_map(|r| &r.waiting).collect();
    let text = |f: &dyn Fn(&WaitingRecord) -> Option<String>| -> ArrayRef {
        Arc::new(all.iter().map(|w| f(w)).collect::<StringArray>())
    };
    let kind = text(&|w| {
        Some(
            match w {
                WaitingRecord::Message { .. } => "message",
                WaitingRecord::MissingParent { .. } => "missing_parent",
                WaitingRecord::Root => "root",
            }
            .to_owned(),
        )
    });
    let system = text(&|w| match w {
        WaitingRecord::Message { system, .. } => Some(system.clone()),
        _ => None,
    });
    let channel = text(&|w| match w {
        WaitingRecord::Message { destination, .. } => Some(destination.clone()),
        _ => None,
    });
    let group = text(&|w| match w {
        WaitingRecord::Message { group, .. } if !group.is_empty() => Some(group.clone()),
        _ => None,
    });
    let since: ArrayRef = Arc::new(
        all.iter()
            .map(|w| match w {
                WaitingRecord::Message { since, .. } => i64::try_from(*since).ok(),
                _ => None,
            })
            .collect::<datafusion::arrow::array::TimestampNanosecondArray>()
            .with_timezone(crate::convert::UTC),
    );
    let missing: ArrayRef = Arc::new(
        all.iter()
            .map(|w| match w {
                WaitingRecord::MissingParent { count } => i64::try_from(*count).ok(),
                _ => None,
            })
            .collect::<Int64Array>(),
    );
    let values = StructArray::try_new(
        waiting_fields(),
        vec![kind, system, channel, group, since, missing],
        None,
    )?;
    let mut offsets = vec![0i32];
    for row in rows {
        let last = offsets.last().copied().unwrap_or(0);
        offsets.push(last + i32::try_from(row.waiting.len()).unwrap_or(i32::MAX));
    }
    let item = Arc::new(Field::new("item", DataType::Struct(waiting_fields()), false));
    datafusion::arrow::array::ListArray::try_new(
        item,
        datafusion::arrow::buffer::OffsetBuffer::new(offsets.into()),
        Arc::new(values),
        None,
    )
}
