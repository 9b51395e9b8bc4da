//! Spans as Threadline holds them once decoded and validated, whatever the wire format
//! (OTLP protobuf, OTLP JSON, Zipkin): the OpenTelemetry trace data model.

use std::sync::Arc;

use crate::id::{SpanId, TraceId};
use crate::value::{self, KeyValue, Text};

/// The resource attribute naming the service that emitted a span.
pub const SERVICE_NAME: &str = "service.name";
/// The service name used when a resource has none, as the OpenTelemetry SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpanKind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// Lowercase name used in APIs and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub code: StatusCode,
    pub message: String,
}

impl Default for Status {
    fn default() -> Self {
        Self { code: StatusCode::Unset, message: String::new() }
    }
}

/// The entity that produced telemetry: a service instance. Shared by every span of a batch
/// that came under the same resource.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub schema_url: String,
}

impl Resource {
    /// The `service.name` attribute, or `unknown_service` when absent or not a string.
    pub fn service_name(&self) -> &str {
        value::find(&self.attributes, SERVICE_NAME)
            .and_then(|v| v.as_str())
            .unwrap_or(UNKNOWN_SERVICE)
    }
}

/// The instrumentation scope (library) that produced a span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    pub name: String,
    pub version: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub schema_url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
}

/// A link from a span to another span, possibly of another trace: how OpenTelemetry joins
/// asynchronous steps (a consumer starting a new trace links to its producer).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

/// One validated span. Invariants (checked where spans are made from wire data): ids are
/// valid, `end_time_unix_nano >= start_time_unix_nano`, start is not zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    pub flags: u32,
    /// Inline when short, as most span names are.
    pub name: Text,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub events: Vec<Event>,
    pub dropped_events_count: u32,
    pub links: Vec<Link>,
    pub dropped_links_count: u32,
    pub status: Status,
    pub resource: Arc<Resource>,
    pub scope: Arc<Scope>,
}

impl Span {
    pub fn service_name(&self) -> &str {
        self.resource.service_name()
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_time_unix_nano.saturating_sub(self.start_time_unix_nano)
    }
}

/// Why a span from the wire is not accepted. The text names the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error("{field} {error}")]
    Id { field: &'static str, error: crate::id::IdError },
    #[error("links[{index}].{field} {error}")]
    LinkId { index: usize, field: &'static str, error: crate::id::IdError },
    #[error("start_time_unix_nano is zero")]
    MissingStart,
    #[error("end_time_unix_nano ({end}) is before start_time_unix_nano ({start})")]
    EndBeforeStart { start: u64, end: u64 },
    #[error("kind {0} is not a known span kind")]
    Kind(i32),
    #[error("status code {0} is not a known status code")]
    StatusCode(i32),
}

/// Checks the timing invariant of a span: a start is set and the end is not before it.
pub fn check_times(start: u64, end: u64) -> Result<(), SpanError> {
    if start == 0 {
        return Err(SpanError::MissingStart);
    }
    if end < start {
        return Err(SpanError::EndBeforeStart { start, end });
    }
    Ok(())
}
