//! From what storage holds to the SQL tables' columns: ids as hex strings, times as UTC
//! timestamps, attributes as string maps.

use std::sync::Arc;

use base64::Engine as _;
use datafusion::arrow::array::builder::{MapBuilder, StringBuilder};
use datafusion::arrow::array::cast::AsArray;
use datafusion::arrow::array::types::UInt64Type;
use datafusion::arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, Float64Array, ListArray, MapArray, RecordBatch,
    RecordBatchOptions, StringArray, StructArray, TimestampNanosecondArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use threadline_core::value::{AnyValue, KeyValue};
use threadline_storage::{block, json};

pub(crate) const UTC: &str = "UTC";

pub(crate) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into()))
}

/// `Map<Utf8, Utf8>` exactly as [`MapBuilder`] makes it.
pub(crate) fn map_type() -> DataType {
    new_map_builder().finish().data_type().clone()
}

fn new_map_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
}

/// Nanoseconds since the epoch as a UTC timestamp column.
pub(crate) fn timestamps(values: impl Iterator<Item = u64>) -> TimestampNanosecondArray {
    TimestampNanosecondArray::from_iter_values(values.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
        .with_timezone(UTC)
}

pub(crate) fn millis(nanos: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "durations far below 2^53 ns stay exact")]
    let nanos = nanos as f64;
    nanos / 1e6
}

/// An attribute value as text: strings as they are, numbers and booleans as written in
/// JSON, bytes in base64, arrays and key-value lists as JSON.
pub(crate) fn render(value: &AnyValue) -> String {
    match value {
        AnyValue::String(s) => s.to_string(),
        AnyValue::Empty => String::new(),
        AnyValue::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        other => to_json(other).to_string(),
    }
}

fn to_json(value: &AnyValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        AnyValue::String(s) => Value::String(s.to_string()),
        AnyValue::Bool(b) => Value::Bool(*b),
        AnyValue::Int(i) => Value::from(*i),
        AnyValue::Double(d) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
        AnyValue::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        AnyValue::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        AnyValue::KvList(kvs) => {
            Value::Object(kvs.iter().map(|kv| (kv.key.to_string(), to_json(&kv.value))).collect())
        }
        AnyValue::Empty => Value::Null,
    }
}

/// Appends one map entry per attribute (the last of a repeated key wins in lookups).
fn append_map<'a>(
    builder: &mut MapBuilder<StringBuilder, StringBuilder>,
    entries: impl IntoIterator<Item = (&'a str, String)>,
) -> Result<(), ArrowError> {
    for (key, value) in entries {
        builder.keys().append_value(key);
        builder.values().append_value(value);
    }
    builder.append(true)
}

/// A stored attribute-list column as a `Map<Utf8, Utf8>` column.
fn attributes_map(texts: &StringArray) -> Result<MapArray, ArrowError> {
    let mut builder = new_map_builder();
    for text in texts.iter() {
        append_attributes(&mut builder, &decode(json::attributes, text)?)?;
    }
    Ok(builder.finish())
}

fn append_attributes(
    builder: &mut MapBuilder<StringBuilder, StringBuilder>,
    attributes: &[KeyValue],
) -> Result<(), ArrowError> {
    append_map(builder, attributes.iter().map(|kv| (kv.key.as_str(), render(&kv.value))))
}

/// One stored JSON list, decoded.
fn decode<T>(
    read: fn(&str) -> Result<Vec<T>, String>,
    text: Option<&str>,
) -> Result<Vec<T>, ArrowError> {
    read(text.unwrap_or_default()).map_err(ArrowError::InvalidArgumentError)
}

/// A map column from (key, value) lists, one per row.
pub(crate) fn string_map<'a>(
    rows: impl Iterator<Item = &'a [(String, String)]>,
) -> Result<MapArray, ArrowError> {
    let mut builder = new_map_builder();
    for row in rows {
        append_map(&mut builder, row.iter().map(|(k, v)| (k.as_str(), v.clone())))?;
    }
    Ok(builder.finish())
}

fn hex_ids(ids: &FixedSizeBinaryArray) -> StringArray {
    ids.iter().map(|id| id.map(hex::encode)).collect()
}

/// The columns of the `spans` table, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpanColumn {
    TraceId,
    SpanId,
    ParentSpanId,
    Service,
    Name,
    Kind,
    StartTime,
    EndTime,
    DurationMs,
    StatusCode,
    StatusMessage,
    Attributes,
    ResourceAttributes,
    ScopeName,
    Events,
    Links,
}

impl SpanColumn {
    pub(crate) const ALL: [SpanColumn; 16] = [
        SpanColumn::TraceId,
        SpanColumn::SpanId,
        SpanColumn::ParentSpanId,
        SpanColumn::Service,
        SpanColumn::Name,
        SpanColumn::Kind,
        SpanColumn::StartTime,
        SpanColumn::EndTime,
        SpanColumn::DurationMs,
        SpanColumn::StatusCode,
        SpanColumn::StatusMessage,
        SpanColumn::Attributes,
        SpanColumn::ResourceAttributes,
        SpanColumn::ScopeName,
        SpanColumn::Events,
        SpanColumn::Links,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            SpanColumn::TraceId => "trace_id",
            SpanColumn::SpanId => "span_id",
            SpanColumn::ParentSpanId => "parent_span_id",
            SpanColumn::Service => "service",
            SpanColumn::Name => "name",
            SpanColumn::Kind => "kind",
            SpanColumn::StartTime => "start_time",
            SpanColumn::EndTime => "end_time",
            SpanColumn::DurationMs => "duration_ms",
            SpanColumn::StatusCode => "status_code",
            SpanColumn::StatusMessage => "status_message",
            SpanColumn::Attributes => "attributes",
            SpanColumn::ResourceAttributes => "resource_attributes",
            SpanColumn::ScopeName => "scope_name",
            SpanColumn::Events => "events",
            SpanColumn::Links => "links",
        }
    }

    /// The stored columns (by name) this column is made from.
    pub(crate) fn sources(self) -> &'static [&'static str] {
        match self {
            SpanColumn::TraceId => &["trace_id"],
            SpanColumn::SpanId => &["span_id"],
            SpanColumn::ParentSpanId => &["parent_span_id"],
            SpanColumn::Service => &["service_name"],
            SpanColumn::Name => &["name"],
            SpanColumn::Kind => &["kind"],
            SpanColumn::StartTime => &["start_time_unix_nano"],
            SpanColumn::EndTime => &["end_time_unix_nano"],
            SpanColumn::DurationMs => &["start_time_unix_nano", "end_time_unix_nano"],
            SpanColumn::StatusCode => &["status_code"],
            SpanColumn::StatusMessage => &["status_message"],
            SpanColumn::Attributes => &["attributes"],
            SpanColumn::ResourceAttributes => &["resource_attributes"],
            SpanColumn::ScopeName => &["scope_name"],
            SpanColumn::Events => &["events"],
            SpanColumn::Links => &["links"],
        }
    }

    fn field(self) -> Field {
        let (data_type, nullable) = match self {
            SpanColumn::ParentSpanId => (DataType::Utf8, true),
            SpanColumn::StartTime | SpanColumn::EndTime => (timestamp_type(), false),
            SpanColumn::DurationMs => (DataType::Float64, false),
            SpanColumn::Attributes | SpanColumn::ResourceAttributes => (map_type(), false),
            SpanColumn::Events => (list_type(event_fields()), false),
            SpanColumn::Links => (list_type(link_fields()), false),
            _ => (DataType::Utf8, false),
        };
        Field::new(self.name(), data_type, nullable)
    }
}

fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", timestamp_type(), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", map_type(), false),
    ])
}

fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("attributes", map_type(), false),
    ])
}

fn list_type(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), false)))
}

/// The schema of the `spans` table.
pub(crate) fn spans_schema() -> SchemaRef {
    Arc::new(Schema::new(SpanColumn::ALL.iter().map(|c| c.field()).collect::<Vec<_>>()))
}

/// Indexes into [`block::schema`] of the stored columns `columns` need, sorted; at least one
/// (a scan with no columns still needs its row count).
pub(crate) fn stored_columns(columns: &[SpanColumn]) -> Vec<usize> {
    let stored = block::schema();
    let mut out: Vec<usize> = columns
        .iter()
        .flat_map(|c| c.sources())
        .filter_map(|name| stored.index_of(name).ok())
        .collect();
    if out.is_empty() {
        out.extend(stored.index_of("start_time_unix_nano").ok());
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn stored<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("stored column {name} was not read")))
}

fn stored_text<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, ArrowError> {
    stored(batch, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError(format!("stored column {name} is not text")))
}

/// Builds `columns` of the `spans` table (with `schema`) from stored columns.
pub(crate) fn spans_batch(
    raw: &RecordBatch,
    columns: &[SpanColumn],
    schema: &SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for column in columns {
        let array: ArrayRef = match column {
            SpanColumn::TraceId | SpanColumn::SpanId | SpanColumn::ParentSpanId => {
                Arc::new(hex_ids(stored(raw, column.sources()[0])?.as_fixed_size_binary()))
            }
            SpanColumn::Service
            | SpanColumn::Name
            | SpanColumn::Kind
            | SpanColumn::StatusCode
            | SpanColumn::StatusMessage
            | SpanColumn::ScopeName => Arc::clone(stored(raw, column.sources()[0])?),
            SpanColumn::StartTime | SpanColumn::EndTime => {
                let values = stored(raw, column.sources()[0])?.as_primitive::<UInt64Type>();
                Arc::new(timestamps(values.values().iter().copied()))
            }
            SpanColumn::DurationMs => {
                let start = stored(raw, "start_time_unix_nano")?.as_primitive::<UInt64Type>();
                let end = stored(raw, "end_time_unix_nano")?.as_primitive::<UInt64Type>();
                Arc::new(Float64Array::from_iter_values(
                    start
                        .values()
                        .iter()
                        .zip(end.values())
                        .map(|(s, e)| millis(e.saturating_sub(*s))),
                ))
            }
            SpanColumn::Attributes | SpanColumn::ResourceAttributes => {
                Arc::new(attributes_map(stored_text(raw, column.sources()[0])?)?)
            }
            SpanColumn::Events => Arc::new(events(stored_text(raw, "events")?)?),
            SpanColumn::Links => Arc::new(links(stored_text(raw, "links")?)?),
        };
        arrays.push(array);
    }
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(raw.num_rows())),
    )
}

/// A list column of structs (`fields`) from one row of children per stored row.
fn struct_list(
    fields: Fields,
    lengths: Vec<usize>,
    children: Vec<ArrayRef>,
) -> Result<ListArray, ArrowError> {
    let values = StructArray::try_new(fields.clone(), children, None)?;
    let item = Arc::new(Field::new("item", DataType::Struct(fields), false));
    ListArray::try_new(item, OffsetBuffer::from_lengths(lengths), Arc::new(values), None)
}

fn events(texts: &StringArray) -> Result<ListArray, ArrowError> {
    let (mut lengths, mut times, mut names) = (Vec::new(), Vec::new(), StringBuilder::new());
    let mut attributes = new_map_builder();
    for text in texts.iter() {
        let events = decode(json::events, text)?;
        lengths.push(events.len());
        for event in &events {
            times.push(event.time_unix_nano);
            names.append_value(&event.name);
            append_attributes(&mut attributes, &event.attributes)?;
        }
    }
    struct_list(
        event_fields(),
        lengths,
        vec![
            Arc::new(timestamps(times.into_iter())) as ArrayRef,
            Arc::new(names.finish()),
            Arc::new(attributes.finish()),
        ],
    )
}

fn links(texts: &StringArray) -> Result<ListArray, ArrowError> {
    let (mut lengths, mut traces, mut spans) =
        (Vec::new(), StringBuilder::new(), StringBuilder::new());
    let mut attributes = new_map_builder();
    for text in texts.iter() {
        let links = decode(json::links, text)?;
        lengths.push(links.len());
        for link in &links {
            traces.append_value(link.trace_id.to_hex());
            spans.append_value(link.span_id.to_hex());
            append_attributes(&mut attributes, &link.attributes)?;
        }
    }
    struct_list(
        link_fields(),
        lengths,
        vec![
            Arc::new(traces.finish()) as ArrayRef,
            Arc::new(spans.finish()),
            Arc::new(attributes.finish()),
        ],
    )
}
