//! Properties of decoding: OTLP protobuf and OTLP JSON carrying the same request yield the same
//! spans (and the same rejections), and no input of any kind makes a decoder panic.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use proptest::prelude::*;
use prost::Message as _;
use threadline_ingest::body::{Encoding, decode_otlp, decode_zipkin};
use threadline_ingest::convert::convert_otlp;
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_proto::opentelemetry::proto::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use threadline_proto::opentelemetry::proto::resource::v1::Resource;
use threadline_proto::opentelemetry::proto::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span,
};
use threadline_testsuite::generate;

fn scalar() -> impl Strategy<Value = any_value::Value> {
    prop_oneof![
        any::<String>().prop_map(any_value::Value::StringValue),
        any::<bool>().prop_map(any_value::Value::BoolValue),
        any::<i64>().prop_map(any_value::Value::IntValue),
        // JSON numbers cannot carry NaN or infinities written by a generic JSON writer.
        (-1e300f64..1e300).prop_map(any_value::Value::DoubleValue),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(any_value::Value::BytesValue),
    ]
}

fn value() -> impl Strategy<Value = AnyValue> {
    let leaf = scalar().prop_map(|v| AnyValue { value: Some(v) });
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

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec(("\\PC{0,12}", proptest::option::of(value())), 0..5)
        .prop_map(|kvs| kvs.into_iter().map(|(key, value)| KeyValue { key, value }).collect())
}

/// Ids mostly valid, sometimes of a wrong length or all zeros, so rejections are compared too.
fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), len),
        1 => proptest::collection::vec(any::<u8>(), 0..20),
        1 => Just(vec![0; len]),
    ]
}

fn span_strategy() -> impl Strategy<Value = Span> {
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
        (0..u64::MAX / 2, 0..u64::MAX / 2, attributes(), any::<u32>()),
        proptest::collection::vec((any::<u64>(), "\\PC{0,10}", attributes(), any::<u32>()), 0..3),
        proptest::collection::vec(
            (id(16), id(8), "\\PC{0,10}", attributes(), any::<u32>(), any::<u32>()),
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

fn request_strategy() -> impl Strategy<Value = ExportTraceServiceRequest> {
    proptest::collection::vec(
        (
            attributes(),
            any::<u32>(),
            "\\PC{0,8}",
            "\\PC{0,8}",
            attributes(),
            proptest::collection::vec(span_strategy(), 0..4),
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn protobuf_and_json_decode_to_the_same_spans(request in request_strategy()) {
        let protobuf = request.encode_to_vec();
        let json = generate::otlp_json(&request).to_string();
        let from_protobuf = convert_otlp(decode_otlp(&protobuf, Encoding::Protobuf).unwrap());
        let from_json = convert_otlp(decode_otlp(json.as_bytes(), Encoding::Json).unwrap());
        prop_assert_eq!(&from_protobuf.spans, &from_json.spans);
        prop_assert_eq!(&from_protobuf.rejections, &from_json.rejections);
        // And the protobuf decoding is lossless for what is kept.
        let valid = request.resource_spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans).count();
        prop_assert_eq!(from_protobuf.spans.len() as u64 + from_protobuf.rejections.count, valid as u64);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_otlp(&bytes, Encoding::Protobuf).map(convert_otlp);
        let _ = decode_otlp(&bytes, Encoding::Json).map(convert_otlp);
        let _ = decode_zipkin(&bytes);
    }

    #[test]
    fn arbitrary_json_shapes_never_panic(text in "[\\[\\]{}\":,0-9a-zA-Z ]{0,200}") {
        let _ = decode_otlp(text.as_bytes(), Encoding::Json).map(convert_otlp);
        let _ = decode_zipkin(text.as_bytes()).map(threadline_ingest::zipkin::convert_zipkin);
    }
}
