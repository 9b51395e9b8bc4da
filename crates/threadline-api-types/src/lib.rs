//! The JSON shapes of Threadline's HTTP API, version 1 (`/api/v1`). Serde lives here, not in
//! the core types, so the API can stay stable while the domain model changes.
//!
//! Conventions: lowerCamelCase names; 64-bit nanosecond times as decimal strings (JavaScript
//! numbers lose precision past 2^53), as in OTLP JSON; ids as lowercase hex; attribute values
//! in OTLP JSON's `AnyValue` shape so every type survives (`{"intValue": "42"}`).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use threadline_core::span::{Event, Link, Resource, Scope, Span};
use threadline_core::value::{AnyValue, KeyValue};

/// The single error shape of the API: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    /// A stable machine-readable code: `invalid_argument`, `not_found`, `unavailable`, ...
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self { error: ErrorDetail { code: code.to_owned(), message: message.into() } }
    }
}

/// `GET /api/v1/services`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServicesResponse {
    pub services: Vec<String>,
}

/// `GET /api/v1/traces/{trace_id}`: every span of the trace, ordered by start time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TraceResponse {
    pub trace_id: String,
    pub spans: Vec<SpanView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    /// `unspecified`, `internal`, `server`, `client`, `producer` or `consumer`.
    pub kind: String,
    pub service_name: String,
    pub start_time_unix_nano: String,
    pub end_time_unix_nano: String,
    pub duration_nanos: String,
    pub attributes: Vec<KeyValueView>,
    pub dropped_attributes_count: u32,
    pub events: Vec<EventView>,
    pub dropped_events_count: u32,
    pub links: Vec<LinkView>,
    pub dropped_links_count: u32,
    pub status: StatusView,
    pub resource: ResourceView,
    pub scope: ScopeView,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusView {
    /// `unset`, `ok` or `error`.
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceView {
    pub attributes: Vec<KeyValueView>,
    pub dropped_attributes_count: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schema_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScopeView {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    pub attributes: Vec<KeyValueView>,
    pub dropped_attributes_count: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schema_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub time_unix_nano: String,
    pub name: String,
    pub attributes: Vec<KeyValueView>,
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LinkView {
    pub trace_id: String,
    pub span_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_state: String,
    pub attributes: Vec<KeyValueView>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyValueView {
    pub key: String,
    pub value: ValueView,
}

/// An attribute value in OTLP JSON's shape: exactly one field is set; none is the empty value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ValueView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bool_value: Option<bool>,
    /// Decimal string, as in OTLP JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int_value: Option<String>,
    /// A number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub double_value: Option<DoubleView>,
    /// Standard base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_value: Option<ArrayView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvlist_value: Option<KvListView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DoubleView {
    Number(f64),
    Special(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ArrayView {
    pub values: Vec<ValueView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KvListView {
    pub values: Vec<KeyValueView>,
}

impl From<&AnyValue> for ValueView {
    fn from(value: &AnyValue) -> Self {
        let mut view = ValueView::default();
        match value {
            AnyValue::String(s) => view.string_value = Some(s.to_string()),
            AnyValue::Bool(b) => view.bool_value = Some(*b),
            AnyValue::Int(i) => view.int_value = Some(i.to_string()),
            AnyValue::Double(d) => {
                view.double_value = Some(if d.is_nan() {
                    DoubleView::Special("NaN".to_owned())
                } else if d.is_infinite() {
                    let sign = if d.is_sign_negative() { "-" } else { "" };
                    DoubleView::Special(format!("{sign}Infinity"))
                } else {
                    DoubleView::Number(*d)
                });
            }
            AnyValue::Bytes(b) => {
                view.bytes_value = Some(base64::engine::general_purpose::STANDARD.encode(b));
            }
            AnyValue::Array(values) => {
                view.array_value =
                    Some(ArrayView { values: values.iter().map(Into::into).collect() });
            }
            AnyValue::KvList(values) => {
                view.kvlist_value = Some(KvListView { values: key_values(values) });
            }
            AnyValue::Empty => {}
        }
        view
    }
}

fn key_values(attributes: &[KeyValue]) -> Vec<KeyValueView> {
    attributes
        .iter()
        .map(|kv| KeyValueView { key: kv.key.to_string(), value: (&kv.value).into() })
        .collect()
}

impl From<&Span> for SpanView {
    fn from(span: &Span) -> Self {
        Self {
            trace_id: span.trace_id.to_hex(),
            span_id: span.span_id.to_hex(),
            parent_span_id: span.parent_span_id.map(|id| id.to_hex()),
            trace_state: span.trace_state.clone(),
            flags: span.flags,
            name: span.name.to_string(),
            kind: span.kind.as_str().to_owned(),
            service_name: span.service_name().to_owned(),
            start_time_unix_nano: span.start_time_unix_nano.to_string(),
            end_time_unix_nano: span.end_time_unix_nano.to_string(),
            duration_nanos: span.duration_nanos().to_string(),
            attributes: key_values(&span.attributes),
            dropped_attributes_count: span.dropped_attributes_count,
            events: span.events.iter().map(Into::into).collect(),
            dropped_events_count: span.dropped_events_count,
            links: span.links.iter().map(Into::into).collect(),
            dropped_links_count: span.dropped_links_count,
            status: StatusView {
                code: span.status.code.as_str().to_owned(),
                message: span.status.message.clone(),
            },
            resource: (&*span.resource).into(),
            scope: (&*span.scope).into(),
        }
    }
}

impl From<&Event> for EventView {
    fn from(event: &Event) -> Self {
        Self {
            time_unix_nano: event.time_unix_nano.to_string(),
            name: event.name.clone(),
            attributes: key_values(&event.attributes),
            dropped_attributes_count: event.dropped_attributes_count,
        }
    }
}

impl From<&Link> for LinkView {
    fn from(link: &Link) -> Self {
        Self {
            trace_id: link.trace_id.to_hex(),
            span_id: link.span_id.to_hex(),
            trace_state: link.trace_state.clone(),
            attributes: key_values(&link.attributes),
            dropped_attributes_count: link.dropped_attributes_count,
            flags: link.flags,
        }
    }
}

impl From<&Resource> for ResourceView {
    fn from(resource: &Resource) -> Self {
        Self {
            attributes: key_values(&resource.attributes),
            dropped_attributes_count: resource.dropped_attributes_count,
            schema_url: resource.schema_url.clone(),
        }
    }
}

impl From<&Scope> for ScopeView {
    fn from(scope: &Scope) -> Self {
        Self {
            name: scope.name.clone(),
            version: scope.version.clone(),
            attributes: key_values(&scope.attributes),
            dropped_attributes_count: scope.dropped_attributes_count,
            schema_url: scope.schema_url.clone(),
        }
    }
}

/// `GET /api/v1/status`: the server's own state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    pub ready: bool,
    pub ingest: IngestStatus,
    pub store: StoreStatus,
    pub engine: EngineStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EngineStatus {
    /// Processes held in memory (running and recently finished).
    pub processes: u64,
    pub running: u64,
    pub spans: u64,
    /// Spans of processes not tracked because `engine.max_in_flight` processes were running.
    pub untracked_spans: u64,
    /// Finished processes dropped before `engine.retain_finished_secs` to make room.
    pub evicted_finished: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngestStatus {
    /// Spans accepted by a receiver and not yet taken by the store.
    pub queue_depth_spans: u64,
    pub queue_capacity_spans: u64,
    pub accepted_spans: u64,
    /// Spans refused one by one as invalid (reported to clients as partial success).
    pub rejected_spans: u64,
    /// Requests refused for overload (429 / 503 / `UNAVAILABLE`).
    pub refused_requests: u64,
    /// Requests that failed after acceptance (the store refused them).
    pub failed_requests: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// Spans not yet written to a block: in memory, durable in the WAL.
    pub head_spans: u64,
    pub blocks: u64,
    pub block_spans: u64,
    pub block_bytes: u64,
    /// Blocks deleted by retention since start.
    pub deleted_blocks: u64,
    /// Small blocks merged by compaction since start.
    pub compacted_blocks: u64,
    /// Block reads that failed (a damaged block) since start.
    pub read_errors: u64,
    pub wal_segments: u64,
    pub wal_bytes: u64,
    /// The last write error (a full disk, a failed fsync), until a write succeeds again.
    pub last_error: Option<String>,
}

/// A process as the API shows it (`GET /api/v1/processes/{id}` and listings).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSummary {
    /// The trace id of the process's first trace.
    pub id: String,
    pub process_type: String,
    /// `running`, `completed` or `failed`.
    pub state: String,
    /// What decided completion: `structural` or `quiescence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_mode: Option<String>,
    pub stuck: bool,
    pub sla_breached: bool,
    pub start_time_unix_nano: String,
    pub end_time_unix_nano: String,
    pub duration_nanos: String,
    pub spans: u32,
    pub error_spans: u32,
    /// Its own trace first, then the traces joined to it through links.
    pub trace_ids: Vec<String>,
    pub keys: std::collections::BTreeMap<String, String>,
    /// What a running process waits for now, longest-waiting first.
    pub waiting_for: Vec<WaitingView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// For a process of a declared type: the spec check of its last completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<SpecCheckView>,
    /// Who owns the process type, from its spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpecCheckView {
    pub passed: bool,
    pub violations: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct OwnerView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pager: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

/// One thing a running process waits for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitingView {
    /// A message not yet processed by a consumer group (`*`: any consumer, none known yet).
    #[serde(rename_all = "camelCase")]
    Message { system: String, destination: String, consumer_group: String, since_unix_nano: String },
    /// Spans whose parent has not arrived.
    #[serde(rename_all = "camelCase")]
    MissingParent { count: u64 },
    /// The root span has not arrived.
    Root,
}

/// `GET /api/v1/triage`: running processes older than a threshold, grouped by where they
/// wait, the group with the oldest process first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TriageResponse {
    pub older_than_nanos: String,
    /// Running processes older than the threshold, in every group.
    pub processes: u64,
    pub groups: Vec<TriageGroup>,
}

/// Running processes waiting at one place.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TriageGroup {
    /// Where they wait: the first thing each waits for (`null`: nothing known, still running).
    pub waiting_for: Option<WaitingView>,
    pub processes: u64,
    pub oldest_start_unix_nano: String,
    /// Per process type: how many, and who owns the type.
    pub types: Vec<TriageType>,
    /// Ids of the oldest processes of the group, at most 10.
    pub oldest: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TriageType {
    pub process_type: String,
    pub processes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerView>,
}

/// `GET /api/v1/processes/{id}`: the process and its timeline (every span of its traces,
/// by start time).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessResponse {
    pub process: ProcessSummary,
    pub timeline: Vec<SpanView>,
    /// The work and channel waits that decided when the process ended, in time order.
    pub critical_path: Vec<SegmentView>,
}

/// One piece of a critical path.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SegmentView {
    /// A span's own work.
    #[serde(rename_all = "camelCase")]
    Operation {
        trace_id: String,
        span_id: String,
        service: String,
        name: String,
        start_time_unix_nano: String,
        end_time_unix_nano: String,
        duration_nanos: String,
    },
    /// A message waiting in a channel between its producer and consumer spans.
    #[serde(rename_all = "camelCase")]
    ChannelWait {
        system: String,
        destination: String,
        consumer_group: String,
        producer_span_id: String,
        consumer_span_id: String,
        start_time_unix_nano: String,
        end_time_unix_nano: String,
        duration_nanos: String,
    },
}

/// `GET /api/v1/processes?key=...`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessListResponse {
    pub processes: Vec<ProcessSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One engine event, as sent on `GET /api/v1/events`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessEventView {
    /// Position in the durable event log (also the SSE `id`, for `Last-Event-ID`).
    #[serde(default)]
    pub seq: u64,
    /// `started`, `completed`, `failed`, `sla_breached`, `stuck`, `spec_violated`, `reopened`.
    pub kind: String,
    pub process_id: String,
    pub process_type: String,
    pub at_unix_nano: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// `GET /api/v1/process-types`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessTypesResponse {
    pub window_minutes: u64,
    pub process_types: Vec<ProcessTypeView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProcessTypeView {
    pub name: String,
    pub started: u64,
    pub completed: u64,
    pub failed: u64,
    pub in_flight: u64,
    /// Running and stuck now.
    pub stuck: u64,
    pub sla_breached: u64,
    pub spec_violated: u64,
    pub reopened: u64,
    pub completed_per_minute: f64,
    /// Duration quantiles, within 1%.
    pub durations: QuantilesView,
    /// Share of completed processes that met their SLA, when the type has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_compliance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerView>,
}

/// `GET /api/v1/graph`: services' operations and the channels between services.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GraphResponse {
    /// Synchronous calls between services.
    pub calls: Vec<CallView>,
    pub operations: Vec<OperationView>,
    pub channels: Vec<ChannelView>,
}

/// Calls from one service to another: a CLIENT span and its SERVER child.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CallView {
    pub caller: String,
    pub callee: String,
    pub calls: u64,
    pub errors: u64,
    pub per_minute: f64,
    /// Duration quantiles, within 1%.
    pub durations: QuantilesView,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OperationView {
    pub service: String,
    pub operation: String,
    pub count: u64,
    pub errors: u64,
    /// Spans per minute over the last `window_minutes`.
    pub per_minute: f64,
    /// Duration quantiles, within 1%.
    pub durations: QuantilesView,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub system: String,
    pub destination: String,
    pub messages: u64,
    pub producers: Vec<ProducerView>,
    pub consumer_groups: Vec<ConsumerGroupView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProducerView {
    pub service: String,
    pub messages: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerGroupView {
    pub group: String,
    pub consumed: u64,
    /// Quantiles of the time messages waited in the channel for this group, within 1%.
    pub waits: QuantilesView,
}

/// Quantiles of a distribution of durations, nanoseconds as decimal strings; absent while
/// there is nothing to measure.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct QuantilesView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_nanos: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_nanos: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_nanos: Option<String>,
}

/// `POST /api/v1/sql` request body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SqlRequest {
    /// One `SELECT` (or `WITH`, `EXPLAIN`, `SHOW`) statement.
    pub query: String,
    /// Rows wanted at most; the server's `query.sql_max_rows` caps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<usize>,
}

/// `POST /api/v1/sql` result: columns in order, rows as arrays in column order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SqlResponse {
    pub columns: Vec<SqlColumn>,
    /// Values as JSON: numbers, strings, booleans, null; timestamps as RFC 3339 strings,
    /// lists as arrays, maps and structs as objects.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// True when the result had more rows than returned.
    pub truncated: bool,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SqlColumn {
    pub name: String,
    /// The Arrow data type, as in `Utf8`, `Int64`, `Timestamp(ns, "UTC")`.
    #[serde(rename = "type")]
    pub data_type: String,
}

/// `GET /api/v1/specs`: the process specs the server runs with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpecsResponse {
    pub specs: Vec<SpecView>,
}

/// One process type's spec.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpecView {
    pub name: String,
    /// How a process of this type is recognised, in words: `root span checkout: POST
    /// /checkout` or `attribute process.type = refund`.
    pub recognize: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_nanos: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_after_nanos: Option<String>,
    /// Attribute names that are business keys of this type (besides `*.id`).
    pub keys: Vec<String>,
    pub steps: Vec<StepView>,
    /// Any span with an error status is a violation.
    pub forbid_errors: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerView>,
}

/// An expected step of a spec.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    pub service: String,
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<u32>,
    pub min: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    pub terminal: bool,
    pub critical: bool,
}

/// `GET /api/v1/alerts`: the newest alert notifications, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertsResponse {
    pub alerts: Vec<AlertView>,
}

/// One alert notification: a rule firing or resolving.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    /// Increasing with every notification since the server started.
    pub seq: u64,
    pub rule: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub process_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    /// The event kind the rule is about.
    pub event: String,
    pub starts_at_unix_nano: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at_unix_nano: Option<String>,
    pub summary: String,
}
