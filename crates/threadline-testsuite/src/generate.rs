//! Deterministic generators of telemetry: OTLP export requests (protobuf messages, encoded
//! bytes and OTLP JSON) and Zipkin v2 JSON, with several services, parent/child spans, events,
//! links and every attribute type.

use base64::Engine as _;
use prost::Message as _;
use serde_json::{Value, json};
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_proto::opentelemetry::proto::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use threadline_proto::opentelemetry::proto::resource::v1::Resource;
use threadline_proto::opentelemetry::proto::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span,
};

/// Shape of a generated batch.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Traces in the batch; each has one span per service.
    pub traces: usize,
    /// Services (one resource each); a trace's spans form a chain through them.
    pub services: usize,
    /// Seed making ids distinct between batches.
    pub seed: u64,
}

/// 16 bytes of trace id for trace `n` of batch `seed`: never zero.
pub fn trace_id(seed: u64, n: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).to_be_bytes());
    id[8..].copy_from_slice(&(n as u64 + 1).to_be_bytes());
    id
}

fn span_id(seed: u64, trace: usize, service: usize) -> [u8; 8] {
    let mut x = seed ^ ((trace as u64) << 20) ^ (service as u64 + 1);
    x = x.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    x.to_be_bytes()
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }) }
}

fn s(text: &str) -> any_value::Value {
    any_value::Value::StringValue(text.to_owned())
}

/// A batch of `shape.traces` traces across `shape.services` services: each trace is a chain
/// server → client → ... with realistic attributes, one event per span, and a link from each
/// trace's last span to the first span of the previous trace.
pub fn otlp_request(shape: Shape) -> ExportTraceServiceRequest {
    let base_time = 1_700_000_000_000_000_000u64 + shape.seed * 1_000_000_000;
    let resource_spans = (0..shape.services)
        .map(|svc| {
            let spans = (0..shape.traces)
                .map(|t| {
                    let start = base_time + (t as u64) * 1_000_000 + (svc as u64) * 10_000;
                    let parent = if svc == 0 {
                        Vec::new()
                    } else {
                        span_id(shape.seed, t, svc - 1).to_vec()
                    };
                    let links = if svc + 1 == shape.services && t > 0 {
                        vec![span::Link {
                            trace_id: trace_id(shape.seed, t - 1).to_vec(),
                            span_id: span_id(shape.seed, t - 1, 0).to_vec(),
                            attributes: vec![kv("link.kind", s("previous"))],
                            ..Default::default()
                        }]
                    } else {
                        Vec::new()
                    };
                    Span {
                        trace_id: trace_id(shape.seed, t).to_vec(),
                        span_id: span_id(shape.seed, t, svc).to_vec(),
                        parent_span_id: parent,
                        name: format!("GET /api/v1/step{svc}"),
                        kind: if svc == 0 { 2 } else { 3 },
                        start_time_unix_nano: start,
                        end_time_unix_nano: start + 5_000_000,
                        attributes: vec![
                            kv("http.request.method", s("GET")),
                            kv("url.path", s(&format!("/api/v1/step{svc}"))),
                            kv("http.response.status_code", any_value::Value::IntValue(200)),
                            kv("order.id", s(&format!("order-{}-{t}", shape.seed))),
                            kv("sampled.ratio", any_value::Value::DoubleValue(0.25)),
                            kv("retry", any_value::Value::BoolValue(false)),
                            kv("payload", any_value::Value::BytesValue(vec![1, 2, 3])),
                            kv(
                                "tags",
                                any_value::Value::ArrayValue(ArrayValue {
                                    values: vec![
                                        AnyValue { value: Some(s("a")) },
                                        AnyValue { value: Some(s("b")) },
                                    ],
                                }),
                            ),
                            kv(
                                "nested",
                                any_value::Value::KvlistValue(KeyValueList {
                                    values: vec![kv("inner", any_value::Value::IntValue(-7))],
                                }),
                            ),
                        ],
                        events: vec![span::Event {
                            time_unix_nano: start + 1_000,
                            name: "cache.miss".to_owned(),
                            attributes: vec![kv("cache.key", s("k1"))],
                            dropped_attributes_count: 0,
                        }],
                        links,
                        status: Some(Status {
                            code: if t % 10 == 9 { 2 } else { 0 },
                            message: if t % 10 == 9 { "boom".to_owned() } else { String::new() },
                        }),
                        ..Default::default()
                    }
                })
                .collect();
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s(&format!("service-{svc}"))),
                        kv("service.version", s("1.2.3")),
                        kv("host.name", s("node-1")),
                    ],
                    dropped_attributes_count: 0,
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "threadline.testsuite".to_owned(),
                        version: "1.0".to_owned(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// The request as OTLP protobuf bytes.
pub fn otlp_protobuf(shape: Shape) -> Vec<u8> {
    otlp_request(shape).encode_to_vec()
}

/// The request in the OTLP/HTTP JSON encoding (hex ids, 64-bit integers as strings), with
/// every field the protobuf form carries.
pub fn otlp_json(request: &ExportTraceServiceRequest) -> Value {
    json!({
        "resourceSpans": request.resource_spans.iter().map(|rs| json!({
            "resource": rs.resource.as_ref().map(|r| json!({
                "attributes": key_values(&r.attributes),
                "droppedAttributesCount": r.dropped_attributes_count,
            })),
            "schemaUrl": rs.schema_url,
            "scopeSpans": rs.scope_spans.iter().map(|ss| json!({
                "scope": ss.scope.as_ref().map(|sc| json!({
                    "name": sc.name,
                    "version": sc.version,
                    "attributes": key_values(&sc.attributes),
                    "droppedAttributesCount": sc.dropped_attributes_count,
                })),
                "schemaUrl": ss.schema_url,
                "spans": ss.spans.iter().map(span_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()
    })
}

fn span_json(span: &Span) -> Value {
    json!({
        "traceId": hex::encode(&span.trace_id),
        "spanId": hex::encode(&span.span_id),
        "traceState": span.trace_state,
        "parentSpanId": hex::encode(&span.parent_span_id),
        "flags": span.flags,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": span.start_time_unix_nano.to_string(),
        "endTimeUnixNano": span.end_time_unix_nano.to_string(),
        "attributes": key_values(&span.attributes),
        "droppedAttributesCount": span.dropped_attributes_count,
        "events": span.events.iter().map(|e| json!({
            "timeUnixNano": e.time_unix_nano.to_string(),
            "name": e.name,
            "attributes": key_values(&e.attributes),
            "droppedAttributesCount": e.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "droppedEventsCount": span.dropped_events_count,
        "links": span.links.iter().map(|l| json!({
            "traceId": hex::encode(&l.trace_id),
            "spanId": hex::encode(&l.span_id),
            "traceState": l.trace_state,
            "attributes": key_values(&l.attributes),
            "droppedAttributesCount": l.dropped_attributes_count,
            "flags": l.flags,
        })).collect::<Vec<_>>(),
        "droppedLinksCount": span.dropped_links_count,
        "status": span.status.as_ref().map(|st| json!({"code": st.code, "message": st.message})),
    })
}

fn key_values(kvs: &[KeyValue]) -> Vec<Value> {
    kvs.iter()
        .map(|kv| json!({"key": kv.key, "value": kv.value.as_ref().map(any_value_json)}))
        .collect()
}

fn any_value_json(value: &AnyValue) -> Value {
    match &value.value {
        None => json!({}),
        Some(any_value::Value::StringValue(v)) => json!({ "stringValue": v }),
        Some(any_value::Value::BoolValue(v)) => json!({ "boolValue": v }),
        Some(any_value::Value::IntValue(v)) => json!({ "intValue": v.to_string() }),
        Some(any_value::Value::DoubleValue(v)) => json!({ "doubleValue": v }),
        Some(any_value::Value::BytesValue(v)) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(v) })
        }
        Some(any_value::Value::ArrayValue(a)) => {
            json!({ "arrayValue": { "values": a.values.iter().map(any_value_json).collect::<Vec<_>>() } })
        }
        Some(any_value::Value::KvlistValue(l)) => {
            json!({ "kvlistValue": { "values": key_values(&l.values) } })
        }
    }
}

/// The same traces as Zipkin v2 JSON (string tags, microsecond times, 128-bit trace ids).
pub fn zipkin_json(shape: Shape) -> Value {
    let request = otlp_request(shape);
    let spans: Vec<Value> = request
        .resource_spans
        .iter()
        .flat_map(|rs| {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.first())
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            rs.scope_spans.iter().flat_map(move |ss| {
                let service = service.clone();
                ss.spans.iter().map(move |span| {
                    let mut value = json!({
                        "traceId": hex::encode(&span.trace_id),
                        "id": hex::encode(&span.span_id),
                        "name": span.name,
                        "kind": if span.kind == 2 { "SERVER" } else { "CLIENT" },
                        "timestamp": span.start_time_unix_nano / 1000,
                        "duration": (span.end_time_unix_nano - span.start_time_unix_nano) / 1000,
                        "localEndpoint": { "serviceName": service, "ipv4": "10.0.0.1", "port": 8080 },
                        "annotations": [{ "timestamp": span.start_time_unix_nano / 1000 + 1, "value": "cache.miss" }],
                        "tags": { "http.request.method": "GET", "order.id": "order-1", "http.response.status_code": "200" },
                    });
                    if !span.parent_span_id.is_empty() {
                        value["parentId"] = json!(hex::encode(&span.parent_span_id));
                    }
                    value
                })
            })
        })
        .collect();
    Value::Array(spans)
}

/// Number of spans in a generated batch.
pub fn span_count(shape: Shape) -> usize {
    shape.traces * shape.services
}

/// `n` core spans of one trace, for tests below the decoding layer.
pub fn core_spans(n: usize) -> Vec<threadline_core::span::Span> {
    use std::sync::Arc;
    use threadline_core::id::{SpanId, TraceId};
    use threadline_core::span::{Resource, Scope, SpanKind, Status};
    let resource = Arc::new(Resource::default());
    let scope = Arc::new(Scope::default());
    (0..n)
        .map(|i| threadline_core::span::Span {
            trace_id: TraceId::from_bytes(trace_id(0, 0)).expect("non-zero"),
            span_id: SpanId::from_bytes((i as u64 + 1).to_be_bytes()).expect("non-zero"),
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: "op".into(),
            kind: SpanKind::Internal,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![],
            dropped_attributes_count: 0,
            events: vec![],
            dropped_events_count: 0,
            links: vec![],
            dropped_links_count: 0,
            status: Status::default(),
            resource: Arc::clone(&resource),
            scope: Arc::clone(&scope),
        })
        .collect()
}
