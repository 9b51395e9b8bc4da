//! Span blocks: immutable Parquet files of spans sorted by trace id then start time, written
//! and read through `object_store` (a local directory or an S3-compatible bucket alike).
//!
//! Layout for lookups: rows are sorted by `trace_id`, row groups hold [`ROW_GROUP_ROWS`] rows
//! with min/max statistics and a bloom filter on `trace_id`, pages carry a page index; so a
//! trace is read from the one row group (and the pages within it) that can hold it. Columns
//! are plain-encoded and compressed with zstd (level 1), all but the random span ids. The
//! schema is documented in `docs/storage.md`; every file carries its format version in the
//! Parquet key-value metadata under [`VERSION_KEY`].

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{FixedSizeBinaryBuilder, StringBuilder, UInt32Builder, UInt64Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, DictionaryArray, FixedSizeBinaryArray,
    GenericListArray, ListArray, RecordBatch, StringArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::TryStreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt as _};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter,
};
use parquet::arrow::async_reader::{
    AsyncFileReader, ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder,
};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    KeyValue as ParquetKeyValue, PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader,
};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;
use threadline_core::id::{SpanId, TraceId};
use threadline_core::span::{Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode};
use threadline_core::value::{AnyValue, KeyValue};

use crate::{codec, json};

/// Parquet key-value metadata key holding the block format version.
pub const VERSION_KEY: &str = "threadline.block.version";
/// The block format version this build writes and reads.
pub const BLOCK_VERSION: u32 = 2;
/// Rows per row group: the unit a trace lookup reads.
pub const ROW_GROUP_ROWS: usize = 8192;
/// Uncompressed bytes past which a data page is closed.
const PAGE_BYTES: usize = 256 << 10;
/// The same for the trace id column: 1,024 ids, the unit a trace lookup selects.
const TRACE_ID_PAGE_BYTES: usize = 1024 * 16;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {path}")]
    Parquet {
        path: String,
        #[source]
        source: ParquetError,
    },
    #[error("block {path}")]
    Arrow {
        path: String,
        #[source]
        source: arrow_schema::ArrowError,
    },
    #[error("block {path}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("block {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Summary of a written block, kept in the block manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    pub path: String,
    pub spans: u64,
    pub bytes: u64,
    pub min_start_unix_nano: u64,
    pub max_start_unix_nano: u64,
}

/// The columns of a span block, in order, with the type of the lists (attributes, events,
/// links) left to the format version.
fn columns(lists: &dyn Fn(&str) -> DataType) -> SchemaRef {
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, false);
    let u32f = |name: &str| Field::new(name, DataType::UInt32, false);
    let listf = |name: &str| Field::new(name, lists(name), false);
    Arc::new(Schema::new(vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("parent_span_id", DataType::FixedSizeBinary(8), true),
        utf8("service_name"),
        utf8("name"),
        utf8("kind"),
        Field::new("start_time_unix_nano", DataType::UInt64, false),
        Field::new("end_time_unix_nano", DataType::UInt64, false),
        utf8("status_code"),
        utf8("status_message"),
        utf8("trace_state"),
        u32f("flags"),
        listf("attributes"),
        u32f("dropped_attributes_count"),
        listf("events"),
        u32f("dropped_events_count"),
        listf("links"),
        u32f("dropped_links_count"),
        listf("resource_attributes"),
        u32f("resource_dropped_attributes_count"),
        utf8("resource_schema_url"),
        utf8("scope_name"),
        utf8("scope_version"),
        listf("scope_attributes"),
        u32f("scope_dropped_attributes_count"),
        utf8("scope_schema_url"),
    ]))
}

/// The Arrow schema of a span block, in column order: attribute, event and link lists are
/// JSON text (see [`crate::json`]).
pub fn schema() -> SchemaRef {
    columns(&|_| DataType::Utf8)
}

/// The columns whose type differs between format versions 1 and 2.
const LIST_COLUMNS: [&str; 5] =
    ["attributes", "events", "links", "resource_attributes", "scope_attributes"];

/// Format version 1 kept the lists as nested Parquet lists of structs (every attribute as
/// key, type and one value column per type): exact, but costly to write.
mod v1 {
    use super::*;

    fn attribute_fields() -> Fields {
        Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("type", DataType::Utf8, false),
            Field::new("str", DataType::Utf8, true),
            Field::new("int", DataType::Int64, true),
            Field::new("double", DataType::Float64, true),
            Field::new("bool", DataType::Boolean, true),
            Field::new("bytes", DataType::Binary, true),
        ])
    }

    fn list_of(fields: Fields) -> DataType {
        DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), false)))
    }

    fn attributes_type() -> DataType {
        list_of(attribute_fields())
    }

    pub(super) fn schema() -> SchemaRef {
        columns(&|name| match name {
            "events" => list_of(Fields::from(vec![
                Field::new("time_unix_nano", DataType::UInt64, false),
                Field::new("name", DataType::Utf8, false),
                Field::new("attributes", attributes_type(), false),
                Field::new("dropped_attributes_count", DataType::UInt32, false),
            ])),
            "links" => list_of(Fields::from(vec![
                Field::new("trace_id", DataType::FixedSizeBinary(16), false),
                Field::new("span_id", DataType::FixedSizeBinary(8), false),
                Field::new("trace_state", DataType::Utf8, false),
                Field::new("attributes", attributes_type(), false),
                Field::new("dropped_attributes_count", DataType::UInt32, false),
                Field::new("flags", DataType::UInt32, false),
            ])),
            _ => attributes_type(),
        })
    }

    /// `batch` (any projection of a version-1 block) with its lists as version 2 keeps them.
    pub(super) fn upgrade(batch: &RecordBatch) -> Result<RecordBatch, String> {
        let schema = batch.schema();
        let mut fields = Vec::with_capacity(batch.num_columns());
        let mut arrays = Vec::with_capacity(batch.num_columns());
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let name = field.name().as_str();
            if !LIST_COLUMNS.contains(&name) {
                fields.push(Arc::clone(field));
                arrays.push(Arc::clone(array));
                continue;
            }
            let list =
                array.as_list_opt::<i32>().ok_or_else(|| format!("column {name} is not a list"))?;
            let mut out = StringBuilder::new();
            let mut text = String::new();
            for row in 0..list.len() {
                match name {
                    "events" => {
                        let events = events_at(list, row)?;
                        append_json(&mut out, &mut text, |t| json::write_events(t, &events));
                    }
                    "links" => {
                        let links = links_at(list, row)?;
                        append_json(&mut out, &mut text, |t| json::write_links(t, &links));
                    }
                    _ => {
                        let attributes = attributes_at(list, row)?;
                        append_json(&mut out, &mut text, |t| {
                            json::write_attributes(t, &attributes);
                        });
                    }
                }
            }
            fields.push(Arc::new(Field::new(name, DataType::Utf8, false)));
            arrays.push(Arc::new(out.finish()) as ArrayRef);
        }
        RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
        .map_err(|e| e.to_string())
    }

    fn events_at(list: &ListArray, row: usize) -> Result<Vec<Event>, String> {
        let values = list.values().as_struct();
        let (time, name, attributes, dropped) = (
            values.column(0).as_primitive::<UInt64Type>(),
            values.column(1).as_string::<i32>(),
            values.column(2).as_list::<i32>(),
            values.column(3).as_primitive::<UInt32Type>(),
        );
        range(list, row)
            .map(|at| {
                Ok(Event {
                    time_unix_nano: time.value(at),
                    name: name.value(at).to_owned(),
                    attributes: attributes_at(attributes, at)?,
                    dropped_attributes_count: dropped.value(at),
                })
            })
            .collect()
    }

    fn links_at(list: &ListArray, row: usize) -> Result<Vec<Link>, String> {
        let values = list.values().as_struct();
        let (trace, span, state, attributes, dropped, flags) = (
            values.column(0).as_fixed_size_binary(),
            values.column(1).as_fixed_size_binary(),
            values.column(2).as_string::<i32>(),
            values.column(3).as_list::<i32>(),
            values.column(4).as_primitive::<UInt32Type>(),
            values.column(5).as_primitive::<UInt32Type>(),
        );
        range(list, row)
            .map(|at| {
                Ok(Link {
                    trace_id: trace_id_at(trace, at)?,
                    span_id: span_id_at(span, at)?,
                    trace_state: state.value(at).to_owned(),
                    attributes: attributes_at(attributes, at)?,
                    dropped_attributes_count: dropped.value(at),
                    flags: flags.value(at),
                })
            })
            .collect()
    }

    /// The attributes of row `row` of an attribute-list column, decoded.
    fn attributes_at(list: &ListArray, row: usize) -> Result<Vec<KeyValue>, String> {
        let values = list.values().as_struct();
        let key = values.column(0).as_string::<i32>();
        let kind = values.column(1).as_string::<i32>();
        let s = values.column(2).as_string::<i32>();
        let i = values.column(3).as_primitive::<Int64Type>();
        let d = values.column(4).as_primitive::<Float64Type>();
        let b = values.column(5).as_boolean();
        let raw = values.column(6).as_binary::<i32>();
        let mut out = Vec::new();
        for at in range(list, row) {
            let missing =
                || format!("attribute {:?} of type {} has no value", key.value(at), kind.value(at));
            let value = match kind.value(at) {
                "string" => AnyValue::String(opt_str(s, at).ok_or_else(missing)?.into()),
                "int" => {
                    AnyValue::Int(if i.is_null(at) { return Err(missing()) } else { i.value(at) })
                }
                "double" => AnyValue::Double(if d.is_null(at) {
                    return Err(missing());
                } else {
                    d.value(at)
                }),
                "bool" => {
                    AnyValue::Bool(if b.is_null(at) { return Err(missing()) } else { b.value(at) })
                }
                "bytes" => AnyValue::Bytes(opt_bytes(raw, at).ok_or_else(missing)?.to_vec()),
                "array" | "kvlist" => {
                    let bytes = opt_bytes(raw, at).ok_or_else(missing)?;
                    codec::decode_value(bytes)
                        .map_err(|e| format!("attribute {:?}: {e}", key.value(at)))?
                }
                "empty" => AnyValue::Empty,
                other => return Err(format!("unknown attribute type {other:?}")),
            };
            out.push(KeyValue { key: key.value(at).into(), value });
        }
        Ok(out)
    }

    fn opt_str(array: &StringArray, at: usize) -> Option<&str> {
        (!array.is_null(at)).then(|| array.value(at))
    }

    fn opt_bytes(array: &BinaryArray, at: usize) -> Option<&[u8]> {
        (!array.is_null(at)).then(|| array.value(at))
    }
}

fn kind_from(name: &str) -> Option<SpanKind> {
    Some(match name {
        "unspecified" => SpanKind::Unspecified,
        "internal" => SpanKind::Internal,
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        _ => return None,
    })
}

fn status_from(name: &str) -> Option<StatusCode> {
    Some(match name {
        "unset" => StatusCode::Unset,
        "ok" => StatusCode::Ok,
        "error" => StatusCode::Error,
        _ => return None,
    })
}

/// The distinct values behind shared pointers (a span's resource or scope), in order of
/// first use, and for each span the row of its value.
struct Distinct<'a, T> {
    row_of: HashMap<*const T, u32>,
    values: Vec<&'a T>,
    of_span: Vec<u32>,
    /// The previous span's value and row: spans come in runs sharing one.
    last: Option<(*const T, u32)>,
}

impl<'a, T> Distinct<'a, T> {
    fn new(spans: usize) -> Self {
        Self {
            row_of: HashMap::new(),
            values: Vec::new(),
            of_span: Vec::with_capacity(spans),
            last: None,
        }
    }

    fn push(&mut self, value: &'a Arc<T>) {
        let ptr = Arc::as_ptr(value);
        let row = match self.last {
            Some((last, row)) if last == ptr => row,
            _ => {
                let next = self.values.len();
                let row = *self.row_of.entry(ptr).or_insert_with(|| {
                    self.values.push(value);
                    u32::try_from(next).unwrap_or(u32::MAX)
                });
                self.last = Some((ptr, row));
                row
            }
        };
        self.of_span.push(row);
    }

    /// For each span, the row of its value among `values`.
    fn rows(&mut self) -> UInt32Array {
        UInt32Array::from(std::mem::take(&mut self.of_span))
    }
}

/// How [`to_batch`] lays out the resource and scope columns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shared {
    /// One value per span, as the block schema has them (for readers of the batch).
    Gathered,
    /// Text columns as dictionaries over the distinct values, for the Parquet writer, which
    /// stores them as the plain text the schema declares: it then hashes and compares a few
    /// hot values instead of a copy of them per span.
    Dictionary,
}

/// Span kinds in declaration order: a kind's position is its discriminant.
const KINDS: [SpanKind; 6] = [
    SpanKind::Unspecified,
    SpanKind::Internal,
    SpanKind::Server,
    SpanKind::Client,
    SpanKind::Producer,
    SpanKind::Consumer,
];
/// Status codes in declaration order, likewise.
const STATUS_CODES: [StatusCode; 3] = [StatusCode::Unset, StatusCode::Ok, StatusCode::Error];

/// A text column of a few fixed values (span kind, status code), kept as each span's position
/// among them.
struct Fixed {
    values: ArrayRef,
    keys: Vec<u32>,
}

impl Fixed {
    fn new(values: &[&str], spans: usize) -> Self {
        Self {
            values: Arc::new(StringArray::from(values.to_vec())),
            keys: Vec::with_capacity(spans),
        }
    }

    fn push(&mut self, key: u32) {
        self.keys.push(key);
    }

    /// As a dictionary over the values, or ([`Shared::Gathered`]) one text value per span.
    fn finish(self, shared: Shared) -> Result<ArrayRef, arrow_schema::ArrowError> {
        let keys = UInt32Array::from(self.keys);
        Ok(match shared {
            Shared::Dictionary => {
                Arc::new(DictionaryArray::<UInt32Type>::try_new(keys, self.values)?)
            }
            Shared::Gathered => arrow_select::take::take(self.values.as_ref(), &keys, None)?,
        })
    }
}

/// `columns` (one row per distinct value) as one row per span: text columns as dictionaries
/// if `shared` says so, every other column gathered.
fn gather<const N: usize>(
    columns: [ArrayRef; N],
    rows: &UInt32Array,
    shared: Shared,
) -> Result<[ArrayRef; N], arrow_schema::ArrowError> {
    let mut out = columns;
    for column in &mut out {
        *column = if shared == Shared::Dictionary && column.data_type() == &DataType::Utf8 {
            Arc::new(DictionaryArray::<UInt32Type>::try_new(rows.clone(), Arc::clone(column))?)
        } else {
            arrow_select::take::take(column.as_ref(), rows, None)?
        };
    }
    Ok(out)
}

/// The record batch of `spans` in the block schema, in the order given: how spans not yet in
/// a block are read alongside blocks (by SQL, for one).
pub fn record_batch(spans: &[&Span]) -> Result<RecordBatch, BlockError> {
    to_batch(spans, Shared::Gathered)
        .map_err(|source| BlockError::Arrow { path: "(head)".to_owned(), source })
}

/// Appends the JSON `write` makes as the next value of `builder`, through the reused `text`.
fn append_json(builder: &mut StringBuilder, text: &mut String, write: impl FnOnce(&mut String)) {
    text.clear();
    write(text);
    builder.append_value(text.as_str());
}

/// Spans whose strings [`touch`] reads ahead of writing them.
const TOUCH_GROUP: usize = 32;

/// Reads ahead what writing `spans` will read, so that their cache misses overlap in tight
/// loops instead of stalling the writer one at a time (the spans of a block are visited in
/// trace order, scattered over the heap). It goes breadth first, one level of pointers for
/// all the spans before the next: the span structs, then their attribute arrays, then the
/// strings those hold out of line. Each level's misses are independent of one another, so
/// the processor keeps many in flight at once; depth first, each span's chain of misses
/// would fill its reorder window after a few spans.
fn touch(spans: &[&Span]) {
    let mut sum = 0usize;
    for span in spans {
        sum ^= span.attributes.len() ^ span.name.len();
    }
    for span in spans {
        if let Some(first) = span.attributes.first() {
            sum ^= first.key.len();
        }
    }
    for span in spans {
        sum ^= usize::from(span.name.as_bytes().first().copied().unwrap_or(0));
        for kv in &span.attributes {
            sum ^= usize::from(kv.key.as_bytes().first().copied().unwrap_or(0));
            if let AnyValue::String(s) = &kv.value {
                sum ^= usize::from(s.as_bytes().first().copied().unwrap_or(0));
            }
        }
    }
    std::hint::black_box(sum);
}

/// Builds the record batch of `spans` (in the order given).
fn to_batch(spans: &[&Span], shared: Shared) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let n = spans.len();
    let mut trace_id = FixedSizeBinaryBuilder::with_capacity(n, 16);
    let mut span_id = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let mut parent = FixedSizeBinaryBuilder::with_capacity(n, 8);
    let mut name = StringBuilder::with_capacity(n, n * 16);
    let mut kind = Fixed::new(&KINDS.map(SpanKind::as_str), n);
    let mut start = UInt64Builder::with_capacity(n);
    let mut end = UInt64Builder::with_capacity(n);
    let mut status_code = Fixed::new(&STATUS_CODES.map(StatusCode::as_str), n);
    let mut status_message = StringBuilder::with_capacity(n, 0);
    let mut trace_state = StringBuilder::with_capacity(n, 0);
    let mut flags = UInt32Builder::with_capacity(n);
    let mut attributes = StringBuilder::with_capacity(n, n * 256);
    let mut dropped_attributes = UInt32Builder::with_capacity(n);
    let mut events = StringBuilder::with_capacity(n, n * 2);
    let mut dropped_events = UInt32Builder::with_capacity(n);
    let mut links = StringBuilder::with_capacity(n, n * 2);
    let mut dropped_links = UInt32Builder::with_capacity(n);
    let mut text = String::with_capacity(1024);

    // Spans of one export request share their resource and scope: their columns are built
    // once per distinct one, then gathered per span (from a few hot rows rather than by
    // following every span's pointers).
    let mut resources = Distinct::new(n);
    let mut scopes = Distinct::new(n);
    for group in spans.chunks(TOUCH_GROUP) {
        touch(group);
        for &span in group {
            trace_id.append_value(span.trace_id.as_bytes())?;
            span_id.append_value(span.span_id.as_bytes())?;
            match span.parent_span_id {
                Some(p) => parent.append_value(p.as_bytes())?,
                None => parent.append_null(),
            }
            resources.push(&span.resource);
            scopes.push(&span.scope);
            name.append_value(&span.name);
            kind.push(span.kind as u32);
            start.append_value(span.start_time_unix_nano);
            end.append_value(span.end_time_unix_nano);
            status_code.push(span.status.code as u32);
            status_message.append_value(&span.status.message);
            trace_state.append_value(&span.trace_state);
            flags.append_value(span.flags);
            append_json(&mut attributes, &mut text, |t| {
                json::write_attributes(t, &span.attributes);
            });
            dropped_attributes.append_value(span.dropped_attributes_count);
            append_json(&mut events, &mut text, |t| json::write_events(t, &span.events));
            dropped_events.append_value(span.dropped_events_count);
            append_json(&mut links, &mut text, |t| json::write_links(t, &span.links));
            dropped_links.append_value(span.dropped_links_count);
        }
    }

    let (mut service, mut resource_attributes) = (StringBuilder::new(), StringBuilder::new());
    let (mut resource_dropped, mut resource_schema) = (UInt32Builder::new(), StringBuilder::new());
    for r in &resources.values {
        service.append_value(r.service_name());
        append_json(&mut resource_attributes, &mut text, |t| {
            json::write_attributes(t, &r.attributes);
        });
        resource_dropped.append_value(r.dropped_attributes_count);
        resource_schema.append_value(&r.schema_url);
    }
    let resource = gather(
        [
            Arc::new(service.finish()) as ArrayRef,
            Arc::new(resource_attributes.finish()),
            Arc::new(resource_dropped.finish()),
            Arc::new(resource_schema.finish()),
        ],
        &resources.rows(),
        shared,
    )?;
    let (mut scope_name, mut scope_version) = (StringBuilder::new(), StringBuilder::new());
    let (mut scope_attributes, mut scope_dropped) = (StringBuilder::new(), UInt32Builder::new());
    let mut scope_schema = StringBuilder::new();
    for sc in &scopes.values {
        scope_name.append_value(&sc.name);
        scope_version.append_value(&sc.version);
        append_json(&mut scope_attributes, &mut text, |t| {
            json::write_attributes(t, &sc.attributes);
        });
        scope_dropped.append_value(sc.dropped_attributes_count);
        scope_schema.append_value(&sc.schema_url);
    }
    let scope = gather(
        [
            Arc::new(scope_name.finish()) as ArrayRef,
            Arc::new(scope_version.finish()),
            Arc::new(scope_attributes.finish()),
            Arc::new(scope_dropped.finish()),
            Arc::new(scope_schema.finish()),
        ],
        &scopes.rows(),
        shared,
    )?;
    let [service, resource_attributes, resource_dropped, resource_schema] = resource;
    let [scope_name, scope_version, scope_attributes, scope_dropped, scope_schema] = scope;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent.finish()),
        service,
        Arc::new(name.finish()),
        kind.finish(shared)?,
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        status_code.finish(shared)?,
        Arc::new(status_message.finish()),
        Arc::new(trace_state.finish()),
        Arc::new(flags.finish()),
        Arc::new(attributes.finish()),
        Arc::new(dropped_attributes.finish()),
        Arc::new(events.finish()),
        Arc::new(dropped_events.finish()),
        Arc::new(links.finish()),
        Arc::new(dropped_links.finish()),
        resource_attributes,
        resource_dropped,
        resource_schema,
        scope_name,
        scope_version,
        scope_attributes,
        scope_dropped,
        scope_schema,
    ];
    let schema = match shared {
        Shared::Gathered => schema(),
        Shared::Dictionary => Arc::new(Schema::new(
            columns
                .iter()
                .zip(schema().fields())
                .map(|(column, field)| {
                    field.as_ref().clone().with_data_type(column.data_type().clone())
                })
                .collect::<Vec<_>>(),
        )),
    };
    RecordBatch::try_new(schema, columns)
}

/// Text columns that hold a few distinct values.
const FEW_VALUES: [&str; 9] = [
    "service_name",
    "kind",
    "status_code",
    "resource_attributes",
    "resource_schema_url",
    "scope_name",
    "scope_version",
    "scope_attributes",
    "scope_schema_url",
];
/// Counters, nearly always 0.
const COUNTERS: [&str; 6] = [
    "flags",
    "dropped_attributes_count",
    "dropped_events_count",
    "dropped_links_count",
    "resource_dropped_attributes_count",
    "scope_dropped_attributes_count",
];

fn writer_properties() -> WriterProperties {
    let trace_id = ColumnPath::from("trace_id");
    let mut builder = WriterProperties::builder()
        // Measured on 300k generated spans: zstd level 1 with plain encoding (no dictionaries)
        // encodes about 13% faster than level 3 with dictionaries, and the block comes out
        // about 10% smaller (zstd finds the repeats a dictionary would).
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        // Dictionaries only where values repeat from a small set ([`FEW_VALUES`], below).
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // Pages are cut by size, not row count: a trace lookup selects rows by the trace id
        // pages ([`TRACE_ID_PAGE_BYTES`], 1,024 ids) and decompresses, in every other
        // column, the pages that hold them. A column whose row group fits in [`PAGE_BYTES`]
        // (all but the attributes) is then one page, compressed in one call instead of
        // eight: each call to zstd resets its context, clearing its tables.
        .set_data_page_row_count_limit(ROW_GROUP_ROWS)
        .set_data_page_size_limit(PAGE_BYTES)
        .set_column_data_page_size_limit(trace_id.clone(), TRACE_ID_PAGE_BYTES)
        // Span ids are random: zstd cannot make them smaller.
        .set_column_compression(ColumnPath::from("span_id"), Compression::UNCOMPRESSED);
    // Columns of a few distinct values, dictionary-encoded (pages of bit-packed or
    // run-length indices), are stored uncompressed: zstd would save little, and every
    // compressed column costs a reader a compressor and a decompressor made anew (`docs/
    // benchmarks.md`: a third of a trace lookup).
    for column in FEW_VALUES {
        let path = ColumnPath::from(column);
        builder = builder
            .set_column_dictionary_enabled(path.clone(), true)
            .set_column_compression(path, Compression::UNCOMPRESSED);
    }
    // Counters likewise, delta-encoded: a run of one value takes a few bytes a page, and
    // needs no dictionary's hashing per value.
    for column in COUNTERS {
        let path = ColumnPath::from(column);
        builder = builder
            .set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED)
            .set_column_compression(path, Compression::UNCOMPRESSED);
    }
    builder
        // Statistics where lookups and queries prune: per page on trace_id, per row group on
        // the top-level scalar columns; none on the nested attribute columns (the bulk).
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from("trace_id"), EnabledStatistics::Page)
        .set_column_statistics_enabled(ColumnPath::from("service_name"), EnabledStatistics::Chunk)
        .set_column_statistics_enabled(ColumnPath::from("name"), EnabledStatistics::Chunk)
        .set_column_statistics_enabled(
            ColumnPath::from("start_time_unix_nano"),
            EnabledStatistics::Chunk,
        )
        .set_column_statistics_enabled(
            ColumnPath::from("end_time_unix_nano"),
            EnabledStatistics::Chunk,
        )
        .set_column_bloom_filter_enabled(trace_id.clone(), true)
        .set_column_bloom_filter_fpp(trace_id, 0.01)
        .set_key_value_metadata(Some(vec![ParquetKeyValue::new(
            VERSION_KEY.to_owned(),
            BLOCK_VERSION.to_string(),
        )]))
        .build()
}

/// Sorts `spans` for lookup (trace id, then start time, then span id) and encodes them as a
/// Parquet file.
pub fn encode(spans: &mut [Span]) -> Result<Bytes, BlockError> {
    let mut refs: Vec<&Span> = spans.iter().collect();
    encode_refs(&mut refs)
}

/// The same from borrowed spans (sorted here), so a caller holding them shared need not copy.
pub fn encode_refs(spans: &mut [&Span]) -> Result<Bytes, BlockError> {
    sort(spans);
    encode_sorted(spans)
}

/// Sorts `spans` in block order on keys taken once per span (comparing integers rather than
/// following two pointers and comparing bytes at every step).
fn sort(spans: &mut [&Span]) {
    let mut keyed: Vec<(u128, u64, u64, &Span)> = spans
        .iter()
        .map(|s| {
            let (trace, span) = (s.trace_id.as_bytes(), s.span_id.as_bytes());
            (u128::from_be_bytes(*trace), s.start_time_unix_nano, u64::from_be_bytes(*span), *s)
        })
        .collect();
    keyed.sort_by_key(|&(trace, start, span, _)| (trace, start, span));
    for (slot, (_, _, _, span)) in spans.iter_mut().zip(keyed) {
        *slot = span;
    }
}

fn encode_sorted(spans: &[&Span]) -> Result<Bytes, BlockError> {
    let path = || "(new)".to_owned();
    // Blocks of the simulated shop take about 26 bytes a span: room for a little more, so
    // that the file is not copied each time it outgrows its buffer.
    let mut out = Vec::with_capacity(spans.len() * 32);
    let mut writer = ArrowWriter::try_new(&mut out, schema(), Some(writer_properties()))
        .map_err(|source| BlockError::Parquet { path: path(), source })?;
    for chunk in spans.chunks(ROW_GROUP_ROWS) {
        let batch = to_batch(chunk, Shared::Dictionary)
            .map_err(|source| BlockError::Arrow { path: path(), source })?;
        writer.write(&batch).map_err(|source| BlockError::Parquet { path: path(), source })?;
    }
    writer.close().map_err(|source| BlockError::Parquet { path: path(), source })?;
    Ok(Bytes::from(out))
}

/// Merges the record batches of several blocks into one block's Parquet bytes, in block
/// order (trace id, start time, span id), without turning rows back into spans: what
/// compaction does, at columnar cost.
pub fn merge(batches: &[RecordBatch]) -> Result<Bytes, BlockError> {
    let path = || "(compacted)".to_owned();
    let arrow = |source| BlockError::Arrow { path: path(), source };
    let all = arrow_select::concat::concat_batches(&schema(), batches).map_err(arrow)?;
    let ids = all.column(0).as_fixed_size_binary();
    let starts = all.column(6).as_primitive::<UInt64Type>();
    let span_ids = all.column(1).as_fixed_size_binary();
    let mut order: Vec<u32> = (0..u32::try_from(all.num_rows()).unwrap_or(u32::MAX)).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        (ids.value(a), starts.value(a), span_ids.value(a)).cmp(&(
            ids.value(b),
            starts.value(b),
            span_ids.value(b),
        ))
    });
    let indices = UInt32Array::from(order);
    let sorted = arrow_select::take::take_record_batch(&all, &indices).map_err(arrow)?;
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema(), Some(writer_properties()))
        .map_err(|source| BlockError::Parquet { path: path(), source })?;
    let mut offset = 0;
    while offset < sorted.num_rows() {
        let len = ROW_GROUP_ROWS.min(sorted.num_rows() - offset);
        writer
            .write(&sorted.slice(offset, len))
            .map_err(|source| BlockError::Parquet { path: path(), source })?;
        offset += len;
    }
    writer.close().map_err(|source| BlockError::Parquet { path: path(), source })?;
    Ok(Bytes::from(out))
}

/// Writes `spans` as a block at `path` in `store`; returns its summary.
pub async fn write(
    store: &dyn ObjectStore,
    path: &str,
    spans: &mut [Span],
) -> Result<BlockInfo, BlockError> {
    let bytes = encode(spans)?;
    let size = bytes.len() as u64;
    store
        .put(&ObjectPath::from(path), bytes.into())
        .await
        .map_err(|source| BlockError::Store { path: path.to_owned(), source })?;
    Ok(BlockInfo {
        path: path.to_owned(),
        spans: spans.len() as u64,
        bytes: size,
        min_start_unix_nano: spans.iter().map(|s| s.start_time_unix_nano).min().unwrap_or(0),
        max_start_unix_nano: spans.iter().map(|s| s.start_time_unix_nano).max().unwrap_or(0),
    })
}

/// An open block: its Parquet metadata, read once and kept for every lookup.
#[derive(Debug, Clone)]
pub struct OpenBlock {
    path: String,
    size: u64,
    /// The format version the file was written in: every batch read from a version-1 file
    /// is upgraded to the version-2 layout, so readers see one layout.
    version: u32,
    metadata: ArrowReaderMetadata,
    store: Arc<dyn ObjectStore>,
}

impl OpenBlock {
    /// Reads the footer and page index of the block at `path` (of `size` bytes), checking its
    /// format version and schema.
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        path: &str,
        size: u64,
    ) -> Result<Self, BlockError> {
        let mut reader =
            BlockReader { store: Arc::clone(&store), path: ObjectPath::from(path), size };
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::load_async(&mut reader, options)
            .await
            .map_err(|source| BlockError::Parquet { path: path.to_owned(), source })?;
        let invalid = |message: String| BlockError::Invalid { path: path.to_owned(), message };
        let version = metadata
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kvs| kvs.iter().find(|kv| kv.key == VERSION_KEY))
            .and_then(|kv| kv.value.clone())
            .ok_or_else(|| invalid(format!("no {VERSION_KEY} in the file metadata")))?;
        let (version, expected) = match version.as_str() {
            "1" => (1, v1::schema()),
            "2" => (2, schema()),
            other => {
                return Err(invalid(format!(
                    "block format version {other}; this build reads versions 1 to {BLOCK_VERSION}"
                )));
            }
        };
        if metadata.schema().fields() != expected.fields() {
            return Err(invalid(format!(
                "schema differs from the version-{version} span block schema"
            )));
        }
        Ok(Self { path: path.to_owned(), size, version, metadata, store })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// `batch`, read from this block, in the current layout.
    fn upgrade(&self, batch: RecordBatch) -> Result<RecordBatch, BlockError> {
        upgrade(self.version, &self.path, batch)
    }

    pub fn rows(&self) -> u64 {
        u64::try_from(self.metadata.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    fn builder(&self) -> ParquetRecordBatchStreamBuilder<BlockReader> {
        let reader = BlockReader {
            store: Arc::clone(&self.store),
            path: ObjectPath::from(self.path.as_str()),
            size: self.size,
        };
        ParquetRecordBatchStreamBuilder::new_with_metadata(reader, self.metadata.clone())
    }

    /// Every span of `trace_id` in this block, in block order (start time within the trace).
    pub async fn trace(&self, trace_id: TraceId) -> Result<Vec<Span>, BlockError> {
        let wanted = *trace_id.as_bytes();
        let row_groups: Vec<usize> = self
            .metadata
            .metadata()
            .row_groups()
            .iter()
            .enumerate()
            .filter(|(_, rg)| match rg.column(0).statistics() {
                Some(Statistics::FixedLenByteArray(stats)) => {
                    match (stats.min_opt(), stats.max_opt()) {
                        (Some(min), Some(max)) => {
                            min.data() <= &wanted[..] && &wanted[..] <= max.data()
                        }
                        _ => true,
                    }
                }
                _ => true,
            })
            .map(|(i, _)| i)
            .collect();
        if row_groups.is_empty() {
            return Ok(Vec::new());
        }
        let builder = self.builder();
        let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), [0]);
        let predicate = ArrowPredicateFn::new(mask, move |batch: RecordBatch| {
            let ids = batch.column(0).as_fixed_size_binary();
            let matches: BooleanArray =
                ids.iter().map(|id| Some(id == Some(&wanted[..]))).collect();
            Ok(matches)
        });
        let stream = builder
            .with_row_groups(row_groups)
            .with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
            .build()
            .map_err(|source| BlockError::Parquet { path: self.path.clone(), source })?;
        self.collect(stream).await
    }

    /// The distinct trace ids in the block, read from its `trace_id` column alone.
    pub async fn trace_ids(&self) -> Result<Vec<TraceId>, BlockError> {
        let builder = self.builder();
        let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), [0]);
        let stream = builder
            .with_projection(mask)
            .build()
            .map_err(|source| BlockError::Parquet { path: self.path.clone(), source })?;
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|source| BlockError::Parquet { path: self.path.clone(), source })?;
        trace_ids_of(&batches)
            .map_err(|message| BlockError::Invalid { path: self.path.clone(), message })
    }

    /// Traces with a span matching `query`, with that span's start: reads the columns the
    /// conditions need (and attributes only for the rows that pass the rest).
    pub async fn search(
        &self,
        query: &crate::search::SpanQuery,
    ) -> Result<Vec<(TraceId, u64)>, BlockError> {
        let builder = self.builder();
        let columns: &[usize] =
            if query.tags.is_empty() { &[0, 3, 4, 6, 7] } else { &[0, 3, 4, 6, 7, 12, 18] };
        let mask = parquet::arrow::ProjectionMask::roots(
            builder.parquet_schema(),
            columns.iter().copied(),
        );
        let stream = builder
            .with_projection(mask)
            .build()
            .map_err(|source| BlockError::Parquet { path: self.path.clone(), source })?;
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|source| BlockError::Parquet { path: self.path.clone(), source })?;
        let invalid = |message: String| BlockError::Invalid { path: self.path.clone(), message };
        let mut found = Vec::new();
        for batch in batches {
            let batch = self.upgrade(batch)?;
            let ids = column(&batch, "trace_id").map_err(invalid)?.as_fixed_size_binary();
            let service = column(&batch, "service_name").map_err(invalid)?.as_string::<i32>();
            let name = column(&batch, "name").map_err(invalid)?.as_string::<i32>();
            let start = column(&batch, "start_time_unix_nano")
                .map_err(invalid)?
                .as_primitive::<UInt64Type>();
            let end =
                column(&batch, "end_time_unix_nano").map_err(invalid)?.as_primitive::<UInt64Type>();
            let attributes = batch.column_by_name("attributes").map(|c| c.as_string::<i32>());
            let resource =
                batch.column_by_name("resource_attributes").map(|c| c.as_string::<i32>());
            for row in 0..batch.num_rows() {
                let matched = query.matches_fields(
                    service.value(row),
                    name.value(row),
                    start.value(row),
                    end.value(row),
                    || {
                        let decode = |column: Option<&StringArray>| {
                            column.and_then(|c| json::attributes(c.value(row)).ok())
                        };
                        let mut all = decode(attributes).unwrap_or_default();
                        all.extend(decode(resource).unwrap_or_default());
                        all
                    },
                );
                if matched {
                    found.push((trace_id_at(ids, row).map_err(invalid)?, start.value(row)));
                }
            }
        }
        Ok(found)
    }

    /// The block's rows as a stream of record batches holding only `columns` (indexes into
    /// [`schema`], in the order given there), at most `batch_size` rows each.
    pub fn read_columns(
        &self,
        columns: &[usize],
        batch_size: usize,
    ) -> Result<BoxStream<'static, Result<RecordBatch, BlockError>>, BlockError> {
        let builder = self.builder();
        let mask = parquet::arrow::ProjectionMask::roots(
            builder.parquet_schema(),
            columns.iter().copied(),
        );
        let path = self.path.clone();
        let stream = builder
            .with_projection(mask)
            .with_batch_size(batch_size.max(1))
            .build()
            .map_err(|source| BlockError::Parquet { path: path.clone(), source })?;
        let version = self.version;
        Ok(stream
            .map(move |batch| {
                let batch =
                    batch.map_err(|source| BlockError::Parquet { path: path.clone(), source })?;
                upgrade(version, &path, batch)
            })
            .boxed())
    }

    /// Every row of the block as Arrow record batches in the current layout (for compaction).
    pub async fn batches(&self) -> Result<Vec<RecordBatch>, BlockError> {
        let stream = self
            .builder()
            .with_batch_size(ROW_GROUP_ROWS)
            .build()
            .map_err(|source| BlockError::Parquet { path: self.path.clone(), source })?;
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|source| BlockError::Parquet { path: self.path.clone(), source })?;
        batches.into_iter().map(|batch| self.upgrade(batch)).collect()
    }

    /// Every span in the block, in block order.
    pub async fn all(&self) -> Result<Vec<Span>, BlockError> {
        let stream = self
            .builder()
            .build()
            .map_err(|source| BlockError::Parquet { path: self.path.clone(), source })?;
        self.collect(stream).await
    }

    async fn collect(
        &self,
        stream: ParquetRecordBatchStream<BlockReader>,
    ) -> Result<Vec<Span>, BlockError> {
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|source| BlockError::Parquet { path: self.path.clone(), source })?;
        let mut spans = Vec::new();
        for batch in batches {
            let batch = self.upgrade(batch)?;
            from_batch(&batch, &mut spans)
                .map_err(|message| BlockError::Invalid { path: self.path.clone(), message })?;
        }
        Ok(spans)
    }
}

/// `batch`, read from a block of format `version` at `path`, in the current layout.
fn upgrade(version: u32, path: &str, batch: RecordBatch) -> Result<RecordBatch, BlockError> {
    if version == 1 {
        v1::upgrade(&batch)
            .map_err(|message| BlockError::Invalid { path: path.to_owned(), message })
    } else {
        Ok(batch)
    }
}

/// Reads a block's byte ranges from the object store.
struct BlockReader {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
}

fn external(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for BlockReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.store.get_range(&self.path, range).await.map_err(external) }.boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(external) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let mut reader = ParquetMetaDataReader::new().with_prefetch_hint(Some(64 << 10));
            if let Some(options) = options {
                reader = reader
                    .with_column_index_policy(options.column_index_policy())
                    .with_offset_index_policy(options.offset_index_policy());
            }
            let size = self.size;
            Ok(Arc::new(reader.load_and_finish(self, size).await?))
        }
        .boxed()
    }
}

fn index(offset: i32) -> usize {
    usize::try_from(offset).unwrap_or(0)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    batch.column_by_name(name).ok_or_else(|| format!("missing column {name}"))
}

/// The trace ids of a block's batches (`trace_id` first, as the block schema has it), each
/// once where its rows follow each other, as they do in a block.
pub fn trace_ids_of(batches: &[RecordBatch]) -> Result<Vec<TraceId>, String> {
    let mut ids: Vec<TraceId> = Vec::new();
    for batch in batches {
        let column = batch.column(0).as_fixed_size_binary();
        for at in 0..column.len() {
            let id = trace_id_at(column, at)?;
            if ids.last() != Some(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

fn trace_id_at(array: &FixedSizeBinaryArray, at: usize) -> Result<TraceId, String> {
    TraceId::from_slice(array.value(at)).map_err(|e| format!("trace id {e}"))
}

fn span_id_at(array: &FixedSizeBinaryArray, at: usize) -> Result<SpanId, String> {
    SpanId::from_slice(array.value(at)).map_err(|e| format!("span id {e}"))
}

/// Decodes every row of `batch` (in the current layout) onto `out`. Rows sharing a resource
/// or scope share one `Arc` when they follow each other.
fn from_batch(batch: &RecordBatch, out: &mut Vec<Span>) -> Result<(), String> {
    let fsb = |name| column(batch, name).map(|c| c.as_fixed_size_binary());
    let text = |name| column(batch, name).map(|c| c.as_string::<i32>());
    let u64s = |name| column(batch, name).map(|c| c.as_primitive::<UInt64Type>());
    let u32s = |name| column(batch, name).map(|c| c.as_primitive::<UInt32Type>());
    let (trace_id, span_id, parent) = (fsb("trace_id")?, fsb("span_id")?, fsb("parent_span_id")?);
    let (name, kind, status_code, status_message, trace_state) = (
        text("name")?,
        text("kind")?,
        text("status_code")?,
        text("status_message")?,
        text("trace_state")?,
    );
    let (start, end, flags) =
        (u64s("start_time_unix_nano")?, u64s("end_time_unix_nano")?, u32s("flags")?);
    let (attributes, events, links) = (text("attributes")?, text("events")?, text("links")?);
    let (dropped_attributes, dropped_events, dropped_links) = (
        u32s("dropped_attributes_count")?,
        u32s("dropped_events_count")?,
        u32s("dropped_links_count")?,
    );
    let (resource_attributes, resource_dropped, resource_schema) = (
        text("resource_attributes")?,
        u32s("resource_dropped_attributes_count")?,
        text("resource_schema_url")?,
    );
    let (scope_name, scope_version, scope_attributes, scope_dropped, scope_schema) = (
        text("scope_name")?,
        text("scope_version")?,
        text("scope_attributes")?,
        u32s("scope_dropped_attributes_count")?,
        text("scope_schema_url")?,
    );

    let mut last_resource: Option<Arc<Resource>> = None;
    let mut last_scope: Option<Arc<Scope>> = None;
    for row in 0..batch.num_rows() {
        let resource = Resource {
            attributes: json::attributes(resource_attributes.value(row))?,
            dropped_attributes_count: resource_dropped.value(row),
            schema_url: resource_schema.value(row).to_owned(),
        };
        let resource = match &last_resource {
            Some(last) if **last == resource => Arc::clone(last),
            _ => Arc::new(resource),
        };
        last_resource = Some(Arc::clone(&resource));
        let scope = Scope {
            name: scope_name.value(row).to_owned(),
            version: scope_version.value(row).to_owned(),
            attributes: json::attributes(scope_attributes.value(row))?,
            dropped_attributes_count: scope_dropped.value(row),
            schema_url: scope_schema.value(row).to_owned(),
        };
        let scope = match &last_scope {
            Some(last) if **last == scope => Arc::clone(last),
            _ => Arc::new(scope),
        };
        last_scope = Some(Arc::clone(&scope));
        out.push(Span {
            trace_id: trace_id_at(trace_id, row)?,
            span_id: span_id_at(span_id, row)?,
            parent_span_id: if parent.is_null(row) { None } else { Some(span_id_at(parent, row)?) },
            trace_state: trace_state.value(row).to_owned(),
            flags: flags.value(row),
            name: name.value(row).into(),
            kind: kind_from(kind.value(row))
                .ok_or_else(|| format!("unknown span kind {:?}", kind.value(row)))?,
            start_time_unix_nano: start.value(row),
            end_time_unix_nano: end.value(row),
            attributes: json::attributes(attributes.value(row))?,
            dropped_attributes_count: dropped_attributes.value(row),
            events: json::events(events.value(row))?,
            dropped_events_count: dropped_events.value(row),
            links: json::links(links.value(row))?,
            dropped_links_count: dropped_links.value(row),
            status: Status {
                code: status_from(status_code.value(row))
                    .ok_or_else(|| format!("unknown status code {:?}", status_code.value(row)))?,
                message: status_message.value(row).to_owned(),
            },
            resource,
            scope,
        });
    }
    Ok(())
}

fn range(list: &GenericListArray<i32>, row: usize) -> std::ops::Range<usize> {
    let offsets = list.value_offsets();
    index(offsets[row])..index(offsets[row + 1])
}
