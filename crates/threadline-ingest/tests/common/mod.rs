//! Arbitrary OTLP export requests for property tests: valid spans and invalid ones mixed
//! (ids of wrong lengths or all zeros, unknown kinds and status codes, ends before starts).

#![allow(dead_code, reason = "each test file uses part of it")]

use proptest::prelude::*;
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_proto::opentelemetry::proto::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use threadline_proto::opentelemetry::proto::resource::v1::Resource;
use threadline_proto::opentelemetry::proto::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span,
};

/// What values may hold: `Json` only what OTLP JSON written by a generic JSON writer can
/// carry (finite doubles, no empty values); `Any` everything protobuf can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    Json,
    Any,
}

fn scalar(values: Values) -> BoxedStrategy<any_value::Value> {
    // JSON numbers cannot carry NaN or infinities written by a generic JSON writer.
    let double = match values {
        Values::Json => (-1e300f64..1e300).boxed(),
        Values::Any => any::<f64>().boxed(),
    };
    prop_oneof![
        any::<String>().prop_map(any_value::Value::StringValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        double.prop_map(any_value::Value::DoubleValue),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(any_value::Value::BytesValue),
    ]
    .boxed()
}

fn value(values: Values) -> impl Strategy<Value = AnyValue> {
    let leaf = match values {
        Values::Json => scalar(values).prop_map(|v| AnyValue { value: Some(v) }).boxed(),
        Values::Any => {
            proptest::option::of(scalar(values)).prop_map(|value| AnyValue { value }).boxed()
        }
    };
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue { values }))
            }),
            proptest::collection::vec(("[a-z.]{1,8}", inner), 0..4).prop_map(|kvs| AnyValue {
                value: Some(any_value::Value::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, value)| KeyValue { key, value: Some(value) })
                        .collect(),
                })),
            }),
        ]
    })
}

pub fn attributes(values: Values) -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(("\\PC{0,12}", proptest::option::of(value(values))), 0..5)
        .prop_map(|kvs| kvs.into_iter().map(|(key, value)| KeyValue { key, value }).collect())
}

/// Ids mostly valid, sometimes of a wrong length or all zeros, so rejections are compared too.
pub fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), len),
        1 => proptest::collection::vec(any::<u8>(), 0..20),
        1 => Just(vec![0; len]),
    ]
}

pub fn span_strategy(values: Values) -> impl Strategy<Value = Span> {
    (
        (
            id(16),
            id(8),
            prop_oneof![Just(Vec::new()), id(8)],
            "\\PC{0,10}",
            any::<u32>(),
            "\\PC{0,20}",
            0..7i32,
        ),
        (0..u64::MAX / 2, 0..u64::MAX / 2, attributes(values), any::<u32>()),
        proptest::collection::vec(
            (any::<u64>(), "\\PC{0,10}", attributes(values), any::<u32>()),
            0..3,
        ),
        proptest::collection::vec(
            (id(16), id(8), "\\PC{0,10}", attributes(values), any::<u32>(), any::<u32>()),
            0..3,
        ),
        (any::<u32>(), any::<u32>(), proptest::option::of((0..4i32, "\\PC{0,10}"))),
    )
        .prop_map(
            |(
                (trace_id, span_id, parent, state, flags, name, kind),
                (start, end, attrs, dropped),
                events,
                links,
                (de, dl, status),
            )| Span {
                trace_id,
                span_id,
                trace_state: state,
                parent_span_id: parent,
                flags,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: attrs,
                dropped_attributes_count: dropped,
                events: events
                    .into_iter()
                    .map(|(time_unix_nano, name, attributes, dropped_attributes_count)| {
                        span::Event { time_unix_nano, name, attributes, dropped_attributes_count }
                    })
                    .collect(),
                dropped_events_count: de,
                links: links
                    .into_iter()
                    .map(
                        |(
                            trace_id,
                            span_id,
                            trace_state,
                            attributes,
                            dropped_attributes_count,
                            flags,
                        )| span::Link {
                            trace_id,
                            span_id,
                            trace_state,
                            attributes,
                            dropped_attributes_count,
                            flags,
                        },
                    )
                    .collect(),
                dropped_links_count: dl,
                status: status.map(|(code, message)| Status { code, message }),
            },
        )
}

pub fn request_strategy(values: Values) -> impl Strategy<Value = ExportTraceServiceRequest> {
    proptest::collection::vec(
        (
            attributes(values),
            any::<u32>(),
            "\\PC{0,8}",
            "\\PC{0,8}",
            attributes(values),
            proptest::collection::vec(span_strategy(values), 0..4),
        ),
        0..3,
    )
    .prop_map(|groups| ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(resource_attributes, dropped, name, version, scope_attributes, spans)| {
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: resource_attributes,
                        dropped_attributes_count: dropped,
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name,
                            version,
                            attributes: scope_attributes,
                            dropped_attributes_count: dropped / 2,
                        }),
                        spans,
                        schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
                    }],
                    schema_url: String::new(),
                }
            })
            .collect(),
    })
}
