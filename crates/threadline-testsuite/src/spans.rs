//! A builder of core spans for engine tests: short numeric ids, times in seconds, messaging
//! attributes in one call.

use std::sync::Arc;

use threadline_core::id::{SpanId, TraceId};
use threadline_core::span::{Link, Resource, Scope, Span, SpanKind, Status, StatusCode};
use threadline_core::value::{AnyValue, KeyValue};

/// Nanoseconds per second.
pub const S: u64 = 1_000_000_000;
/// The epoch of simulated time in tests: 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000 * S;

pub fn trace(n: u64) -> TraceId {
    let mut bytes = [0u8; 16];
    bytes[8..].copy_from_slice(&n.to_be_bytes());
    TraceId::from_bytes(bytes).expect("n > 0")
}

pub fn span_id(n: u64) -> SpanId {
    SpanId::from_bytes(n.to_be_bytes()).expect("n > 0")
}

/// Builds one span of trace `trace(t)` with id `span_id(id)`.
#[derive(Debug, Clone)]
pub struct SpanBuilder {
    span: Span,
}

/// A span of service `service` named `name`, from `T0` to `T0 + 1ms`.
pub fn span(t: u64, id: u64, service: &str, name: &str) -> SpanBuilder {
    SpanBuilder {
        span: Span {
            trace_id: trace(t),
            span_id: span_id(id),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 1,
            name: name.into(),
            kind: SpanKind::Internal,
            start_time_unix_nano: T0,
            end_time_unix_nano: T0 + 1_000_000,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Status::default(),
            resource: Arc::new(Resource {
                attributes: vec![KeyValue::new("service.name", service)],
                ..Resource::default()
            }),
            scope: Arc::new(Scope::default()),
        },
    }
}

impl SpanBuilder {
    pub fn parent(mut self, id: u64) -> Self {
        self.span.parent_span_id = Some(span_id(id));
        self
    }

    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.span.kind = kind;
        self
    }

    /// Start and end, in seconds after `T0` (fractions allowed).
    pub fn at(mut self, start_secs: f64, end_secs: f64) -> Self {
        self.span.start_time_unix_nano = secs(start_secs);
        self.span.end_time_unix_nano = secs(end_secs);
        self
    }

    pub fn attr(mut self, key: &str, value: impl Into<AnyValue>) -> Self {
        self.span.attributes.push(KeyValue::new(key, value));
        self
    }

    pub fn link(mut self, t: u64, id: u64) -> Self {
        self.span.links.push(Link {
            trace_id: trace(t),
            span_id: span_id(id),
            trace_state: String::new(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            flags: 1,
        });
        self
    }

    pub fn error(mut self, message: &str) -> Self {
        self.span.status = Status { code: StatusCode::Error, message: message.to_owned() };
        self
    }

    /// An error status when `condition` holds.
    pub fn error_if(self, condition: bool, message: &str) -> Self {
        if condition { self.error(message) } else { self }
    }

    /// A PRODUCER span sending to `topic` on Kafka.
    pub fn produces(self, topic: &str) -> Self {
        self.kind(SpanKind::Producer)
            .attr("messaging.system", "kafka")
            .attr("messaging.destination.name", topic)
            .attr("messaging.operation.type", "send")
    }

    /// A CONSUMER span of consumer group `group` processing from `topic` on Kafka.
    pub fn consumes(self, topic: &str, group: &str) -> Self {
        self.kind(SpanKind::Consumer)
            .attr("messaging.system", "kafka")
            .attr("messaging.destination.name", topic)
            .attr("messaging.operation.type", "process")
            .attr("messaging.consumer.group.name", group)
    }

    pub fn build(self) -> Span {
        self.span
    }
}

/// Nanoseconds of `T0 + secs`.
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "test times")]
pub fn secs(secs: f64) -> u64 {
    T0 + (secs * 1e9).round() as u64
}
