//! Spans to an OTLP export request, grouped by resource and scope as an SDK batches them.

use std::sync::Arc;

use threadline_core::span::{Resource, Scope, Span, SpanKind, StatusCode};
use threadline_core::value::{AnyValue, KeyValue};
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_proto::opentelemetry::proto::common::v1 as pb_common;
use threadline_proto::opentelemetry::proto::resource::v1 as pb_resource;
use threadline_proto::opentelemetry::proto::trace::v1 as pb;

fn value(v: &AnyValue) -> pb_common::AnyValue {
    use pb_common::any_value::Value;
    let value = match v {
        AnyValue::String(s) => Some(Value::StringValue(s.to_string())),
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
        .map(|kv| pb_common::KeyValue { key: kv.key.to_string(), value: Some(value(&kv.value)) })
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

fn span(s: &Span) -> pb::Span {
    pb::Span {
        trace_id: s.trace_id.as_bytes().to_vec(),
        span_id: s.span_id.as_bytes().to_vec(),
        trace_state: s.trace_state.clone(),
        parent_span_id: s.parent_span_id.map(|p| p.as_bytes().to_vec()).unwrap_or_default(),
        flags: s.flags,
        name: s.name.to_string(),
        kind: kind(s.kind),
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: attributes(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .iter()
            .map(|e| pb::span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: attributes(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links: s
            .links
            .iter()
            .map(|l| pb::span::Link {
                trace_id: l.trace_id.as_bytes().to_vec(),
                span_id: l.span_id.as_bytes().to_vec(),
                trace_state: l.trace_state.clone(),
                attributes: attributes(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
            .collect(),
        dropped_links_count: s.dropped_links_count,
        status: Some(pb::Status {
            code: match s.status.code {
                StatusCode::Unset => 0,
                StatusCode::Ok => 1,
                StatusCode::Error => 2,
            },
            message: s.status.message.clone(),
        }),
    }
}

/// The spans of one scope.
type ScopeGroup = (Arc<Scope>, Vec<pb::Span>);

/// An export request carrying `spans`: one resource entry per distinct resource, one scope
/// entry per distinct scope within it, spans in the order given.
pub fn request(spans: &[Span]) -> ExportTraceServiceRequest {
    let mut groups: Vec<(Arc<Resource>, Vec<ScopeGroup>)> = Vec::new();
    for s in spans {
        let at = match groups
            .iter()
            .position(|(r, _)| Arc::ptr_eq(r, &s.resource) || **r == *s.resource)
        {
            Some(at) => at,
            None => {
                groups.push((Arc::clone(&s.resource), Vec::new()));
                groups.len() - 1
            }
        };
        let scopes = &mut groups[at].1;
        let at =
            match scopes.iter().position(|(sc, _)| Arc::ptr_eq(sc, &s.scope) || **sc == *s.scope) {
                Some(at) => at,
                None => {
                    scopes.push((Arc::clone(&s.scope), Vec::new()));
                    scopes.len() - 1
                }
            };
        scopes[at].1.push(span(s));
    }
    let resource_spans = groups
        .into_iter()
        .map(|(resource, scopes)| pb::ResourceSpans {
            resource: Some(pb_resource::Resource {
                attributes: attributes(&resource.attributes),
                dropped_attributes_count: resource.dropped_attributes_count,
            }),
            scope_spans: scopes
                .into_iter()
                .map(|(scope, spans)| pb::ScopeSpans {
                    scope: (!scope.name.is_empty()).then(|| pb_common::InstrumentationScope {
                        name: scope.name.clone(),
                        version: scope.version.clone(),
                        attributes: attributes(&scope.attributes),
                        dropped_attributes_count: scope.dropped_attributes_count,
                    }),
                    spans,
                    schema_url: scope.schema_url.clone(),
                })
                .collect(),
            schema_url: resource.schema_url.clone(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}
