//! Core spans back to OTLP protobuf, so tests can send spans built with [`crate::spans`] to a
//! running server as any instrumented service would.

use prost::Message as _;
use threadline_core::span::{Span, SpanKind, StatusCode};
use threadline_core::value::{AnyValue, KeyValue};
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_proto::opentelemetry::proto::common::v1 as pb_common;
use threadline_proto::opentelemetry::proto::resource::v1::Resource;
use threadline_proto::opentelemetry::proto::trace::v1 as pb;

fn value(v: &AnyValue) -> pb_common::AnyValue {
    use pb_common::any_value::Value;
    let value = match v {
        AnyValue::String(s) => Some(Value::StringValue(s.clone())),
        AnyValue::Bool(b) => Some(Value::BoolValue(*b)),
        AnyValue::Int(i) => Some(Value::IntValue(*i)),
        AnyValue::Double(d) => Some(Value::DoubleValue(*d)),
        AnyValue::Bytes(b) => Some(Value::BytesValue(b.clone())),
        AnyValue::Array(values) => Some(Value::ArrayValue(pb_common::ArrayValue {
            values: values.iter().map(value).collect(),
        })),
        AnyValue::KvList(kvs) => {
            Some(Value::KvlistValue(pb_common::KeyValueList { values: attributes(kvs) }))
        }
        AnyValue::Empty => None,
    };
    pb_common::AnyValue { value }
}

fn attributes(kvs: &[KeyValue]) -> Vec<pb_common::KeyValue> {
    kvs.iter()
        .map(|kv| pb_common::KeyValue { key: kv.key.clone(), value: Some(value(&kv.value)) })
        .collect()
}

fn kind(kind: SpanKind) -> i32 {
    match kind {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// An export request carrying `spans`, one resource entry per span.
pub fn request(spans: &[Span]) -> ExportTraceServiceRequest {
    let resource_spans = spans
        .iter()
        .map(|s| pb::ResourceSpans {
            resource: Some(Resource {
                attributes: attributes(&s.resource.attributes),
                ..Resource::default()
            }),
            scope_spans: vec![pb::ScopeSpans {
                scope: None,
                spans: vec![pb::Span {
                    trace_id: s.trace_id.as_bytes().to_vec(),
                    span_id: s.span_id.as_bytes().to_vec(),
                    parent_span_id: s
                        .parent_span_id
                        .map(|p| p.as_bytes().to_vec())
                        .unwrap_or_default(),
                    name: s.name.clone(),
                    kind: kind(s.kind),
                    start_time_unix_nano: s.start_time_unix_nano,
                    end_time_unix_nano: s.end_time_unix_nano,
                    attributes: attributes(&s.attributes),
                    links: s
                        .links
                        .iter()
                        .map(|l| pb::span::Link {
                            trace_id: l.trace_id.as_bytes().to_vec(),
                            span_id: l.span_id.as_bytes().to_vec(),
                            ..pb::span::Link::default()
                        })
                        .collect(),
                    status: Some(pb::Status {
                        code: match s.status.code {
                            StatusCode::Unset => 0,
                            StatusCode::Ok => 1,
                            StatusCode::Error => 2,
                        },
                        message: s.status.message.clone(),
                    }),
                    ..pb::Span::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// `spans` as an OTLP/HTTP protobuf body.
pub fn protobuf(spans: &[Span]) -> Vec<u8> {
    request(spans).encode_to_vec()
}
