//! The protobuf reader (`wire`) against the generated message types: for any bytes, reading
//! them straight into spans must give exactly what decoding them with `prost` and converting
//! the messages gives, and fail exactly where that fails.

use proptest::prelude::*;
use prost::Message as _;
use threadline_ingest::convert::convert_otlp;
use threadline_ingest::wire::decode_request;
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_proto::opentelemetry::proto::common::v1 as common;
use threadline_proto::opentelemetry::proto::resource::v1::Resource;
use threadline_proto::opentelemetry::proto::trace::v1 as pb;
use threadline_testsuite::generate::{self, Shape};

/// Both readings of `bytes`, printed: equal when they agree.
fn both(bytes: &[u8]) -> (String, String) {
    let reference = match ExportTraceServiceRequest::decode(bytes) {
        Ok(request) => format!("{:?}", convert_otlp(request)),
        Err(_) => "error".to_owned(),
    };
    let direct = match decode_request(bytes) {
        Ok(decoded) => format!("{decoded:?}"),
        Err(_) => "error".to_owned(),
    };
    (reference, direct)
}

fn assert_same(bytes: &[u8]) {
    let (reference, direct) = both(bytes);
    assert_eq!(direct, reference, "bytes: {}", hex::encode(bytes));
}

#[test]
fn generated_requests_read_alike() {
    for seed in 1..20 {
        let request = generate::otlp_request(Shape { traces: 5, services: 3, seed });
        let bytes = request.encode_to_vec();
        let (reference, direct) = both(&bytes);
        assert!(!reference.starts_with("error"));
        assert_eq!(direct, reference);
    }
}

#[test]
fn every_truncation_fails_or_reads_alike() {
    let bytes = generate::otlp_request(Shape { traces: 2, services: 2, seed: 3 }).encode_to_vec();
    for end in 0..bytes.len() {
        assert_same(&bytes[..end]);
    }
}

#[test]
fn every_single_byte_change_fails_or_reads_alike() {
    let bytes = generate::otlp_request(Shape { traces: 1, services: 1, seed: 5 }).encode_to_vec();
    for at in 0..bytes.len() {
        for value in [0x00, 0x01, 0x02, 0x07, 0x0a, 0x7f, 0x80, 0xff] {
            let mut changed = bytes.clone();
            changed[at] = value;
            assert_same(&changed);
        }
    }
}

/// A field's key and, for length-delimited fields, its length.
fn key(field: u32, wire_type: u32) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(u64::from(field << 3 | wire_type), &mut out);
    out
}

fn len_field(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = key(field, 2);
    prost::encoding::encode_varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

fn span(id: u8) -> pb::Span {
    pb::Span {
        trace_id: vec![1; 16],
        span_id: vec![id; 8],
        name: format!("op {id}"),
        start_time_unix_nano: 10,
        end_time_unix_nano: 20,
        ..Default::default()
    }
}

fn kv(key: &str, value: common::any_value::Value) -> common::KeyValue {
    common::KeyValue { key: key.into(), value: Some(common::AnyValue { value: Some(value) }) }
}

#[test]
fn field_order_repeats_and_unknown_fields_read_alike() {
    use common::any_value::Value;
    let resource = Resource {
        attributes: vec![kv("service.name", Value::StringValue("a".into()))],
        dropped_attributes_count: 1,
    }
    .encode_to_vec();
    let resource_again =
        Resource { attributes: vec![kv("host", Value::IntValue(-3))], dropped_attributes_count: 2 }
            .encode_to_vec();
    let scope = common::InstrumentationScope { name: "lib".into(), ..Default::default() };
    let mut with_status = span(3);
    with_status.status = Some(pb::Status { message: "first".into(), code: 2 });
    let mut status_again = span(3);
    status_again.status = Some(pb::Status { message: String::new(), code: 1 });
    status_again.name.clear();
    let mut merged_span = with_status.encode_to_vec();
    // Appending a message to itself merges them: here a second status and more fields.
    merged_span.extend(status_again.encode_to_vec());
    merged_span.extend(key(99, 0));
    merged_span.extend([7]);
    merged_span.extend(key(98, 5));
    merged_span.extend([1, 2, 3, 4]);
    merged_span.extend(key(97, 1));
    merged_span.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    // A group, with a nested group inside, as unknown field 96.
    merged_span.extend(key(96, 3));
    merged_span.extend(key(95, 3));
    merged_span.extend(key(94, 0));
    merged_span.extend([1]);
    merged_span.extend(key(95, 4));
    merged_span.extend(key(96, 4));

    // Spans first, then the scope and schema URL they belong to.
    let mut scope_spans = len_field(2, &span(1).encode_to_vec());
    scope_spans.extend(len_field(2, &merged_span));
    scope_spans.extend(len_field(1, &scope.encode_to_vec()));
    scope_spans.extend(len_field(3, b"https://schema/1"));
    scope_spans.extend(len_field(2, &span(2).encode_to_vec()));

    let mut resource_spans = len_field(2, &scope_spans);
    resource_spans.extend(len_field(1, &resource));
    resource_spans.extend(len_field(1, &resource_again));
    resource_spans.extend(len_field(3, b"https://schema/2"));
    resource_spans.extend(len_field(2, &scope_spans));

    let mut request = len_field(1, &resource_spans);
    request.extend(len_field(2, b"unknown"));
    request.extend(len_field(1, &resource_spans));

    let (reference, direct) = both(&request);
    assert!(reference.contains("host"), "{reference}");
    assert!(reference.contains("https://schema/1"), "{reference}");
    assert_eq!(direct, reference);

    // A group left open, an end-group tag of another field, field number 0, wire types 6
    // and 7, a varint of 11 bytes: each fails in both.
    for bad in [
        [key(96, 3), key(94, 0), vec![1]].concat(),
        [key(96, 3), key(95, 4)].concat(),
        key(95, 4),
        vec![0x00, 0x00],
        key(5, 6),
        key(5, 7),
        [key(99, 0), vec![0xff; 10], vec![0x01]].concat(),
        [key(99, 0), vec![0xff; 9], vec![0x02]].concat(),
    ] {
        let mut body = span(4).encode_to_vec();
        body.extend(bad);
        let bytes = len_field(1, &len_field(2, &len_field(2, &body)));
        let (reference, direct) = both(&bytes);
        assert_eq!(reference, "error", "prost accepted {}", hex::encode(&bytes));
        assert_eq!(direct, reference);
    }
    // The largest valid varint (ten bytes, the last 0x01) reads alike.
    let mut body = span(4).encode_to_vec();
    body.extend([key(99, 0), vec![0xff; 9], vec![0x01]].concat());
    assert_same(&len_field(1, &len_field(2, &len_field(2, &body))));
}

#[test]
fn nesting_depth_limit_is_the_same() {
    // A span is 3 deep, its attribute's value 5, and each array adds 2: the limit of 100
    // falls between 47 and 48 arrays.
    use common::any_value::Value;
    for depth in 44..52 {
        let mut value = common::AnyValue { value: Some(Value::IntValue(1)) };
        for _ in 0..depth {
            value = common::AnyValue {
                value: Some(Value::ArrayValue(common::ArrayValue { values: vec![value] })),
            };
        }
        // On the span, and one level deeper on an event, so that both parities of the
        // deepest message meet the limit.
        let deep = common::KeyValue { key: "deep".into(), value: Some(value) };
        let mut on_span = span(1);
        on_span.attributes.push(deep.clone());
        let mut on_event = span(1);
        on_event.events.push(pb::span::Event { attributes: vec![deep], ..Default::default() });
        for s in [on_span, on_event] {
            let request = ExportTraceServiceRequest {
                resource_spans: vec![pb::ResourceSpans {
                    scope_spans: vec![pb::ScopeSpans { spans: vec![s], ..Default::default() }],
                    ..Default::default()
                }],
            };
            assert_same(&request.encode_to_vec());
        }
    }
}

#[test]
fn errors_name_the_field() {
    let mut s = span(1);
    s.name = "x".into();
    let mut bytes = ExportTraceServiceRequest {
        resource_spans: vec![pb::ResourceSpans {
            scope_spans: vec![pb::ScopeSpans { spans: vec![span(2), s], ..Default::default() }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    // The name "x" becomes a byte that is not UTF-8.
    let at = bytes.iter().rposition(|b| *b == b'x').unwrap();
    bytes[at] = 0xff;
    let error = decode_request(&bytes).unwrap_err().to_string();
    assert_eq!(error, "at resourceSpans[0].scopeSpans[0].spans[1].name: string is not valid UTF-8");
    let truncated = &bytes[..bytes.len() - 3];
    let error = decode_request(truncated).unwrap_err().to_string();
    assert_eq!(error, "at resourceSpans[0]: the message ends inside a field");
}

fn id(lengths: &'static [usize]) -> impl Strategy<Value = Vec<u8>> {
    (prop::sample::select(lengths), any::<u8>(), any::<bool>()).prop_map(|(n, b, zero)| {
        if zero {
            vec![0; n]
        } else {
            (0..n).map(|i| b.wrapping_add(u8::try_from(i).unwrap_or(0)) | 1).collect()
        }
    })
}

fn any_value() -> impl Strategy<Value = Option<common::AnyValue>> {
    use common::any_value::Value;
    let leaf = prop_oneof![
        Just(None),
        ".{0,6}".prop_map(Value::StringValue).prop_map(Some),
        any::<bool>().prop_map(Value::BoolValue).prop_map(Some),
        any::<i64>().prop_map(Value::IntValue).prop_map(Some),
        any::<f64>().prop_map(Value::DoubleValue).prop_map(Some),
        prop::collection::vec(any::<u8>(), 0..4).prop_map(Value::BytesValue).prop_map(Some),
    ];
    let value = leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|values| Some(Value::ArrayValue(
                common::ArrayValue {
                    values: values.into_iter().map(|value| common::AnyValue { value }).collect(),
                }
            ))),
            prop::collection::vec(("[a-c]{1,2}", inner), 0..3).prop_map(|kvs| Some(
                Value::KvlistValue(common::KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, value)| common::KeyValue {
                            key,
                            value: Some(common::AnyValue { value }),
                        })
                        .collect(),
                })
            )),
        ]
    });
    prop_oneof![Just(None), value.prop_map(|value| Some(common::AnyValue { value }))]
}

fn attributes() -> impl Strategy<Value = Vec<common::KeyValue>> {
    prop::collection::vec(
        ("[a-z.]{0,8}", any_value()).prop_map(|(key, value)| common::KeyValue { key, value }),
        0..4,
    )
}

fn arb_span() -> impl Strategy<Value = pb::Span> {
    let ids = (id(&[16, 16, 16, 8, 0]), id(&[8, 8, 8, 16, 0]), id(&[0, 8, 8, 3]));
    let times = (
        prop_oneof![Just(0u64), 1..100u64, Just(u64::MAX)],
        prop_oneof![Just(0u64), 1..100u64, Just(u64::MAX)],
    );
    let enums = (-1..8i32, prop::option::of((-1..5i32, ".{0,4}")));
    let events = prop::collection::vec(
        (any::<u64>(), ".{0,4}", attributes(), any::<u32>()).prop_map(
            |(time_unix_nano, name, attributes, dropped_attributes_count)| pb::span::Event {
                time_unix_nano,
                name,
                attributes,
                dropped_attributes_count,
            },
        ),
        0..2,
    );
    let links = prop::collection::vec(
        (id(&[16, 16, 8]), id(&[8, 8, 0]), ".{0,3}", attributes(), any::<u32>(), any::<u32>())
            .prop_map(
                |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| {
                    pb::span::Link {
                        trace_id,
                        span_id,
                        trace_state,
                        attributes,
                        dropped_attributes_count,
                        flags,
                    }
                },
            ),
        0..2,
    );
    let counts = (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>());
    (ids, times, enums, ".{0,5}", ".{0,3}", attributes(), events, links, counts).prop_map(
        |(
            (trace_id, span_id, parent),
            (start, end),
            (kind, status),
            name,
            state,
            attributes,
            events,
            links,
            (flags, da, de, dl),
        )| {
            pb::Span {
                trace_id,
                span_id,
                trace_state: state,
                parent_span_id: parent,
                flags,
                name,
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes,
                dropped_attributes_count: da,
                events,
                dropped_events_count: de,
                links,
                dropped_links_count: dl,
                status: status.map(|(code, message)| pb::Status { message, code }),
            }
        },
    )
}

fn arb_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope = (".{0,3}", ".{0,3}", attributes(), any::<u32>()).prop_map(
        |(name, version, attributes, dropped_attributes_count)| common::InstrumentationScope {
            name,
            version,
            attributes,
            dropped_attributes_count,
        },
    );
    let scope_spans = (prop::option::of(scope), prop::collection::vec(arb_span(), 0..4), ".{0,3}")
        .prop_map(|(scope, spans, schema_url)| pb::ScopeSpans { scope, spans, schema_url });
    let resource =
        (attributes(), any::<u32>()).prop_map(|(attributes, dropped_attributes_count)| Resource {
            attributes,
            dropped_attributes_count,
        });
    let resource_spans =
        (prop::option::of(resource), prop::collection::vec(scope_spans, 0..3), ".{0,3}").prop_map(
            |(resource, scope_spans, schema_url)| pb::ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            },
        );
    prop::collection::vec(resource_spans, 0..3)
        .prop_map(|resource_spans| ExportTraceServiceRequest { resource_spans })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Any request, valid spans and invalid ones mixed, reads alike.
    #[test]
    fn any_request_reads_alike(request in arb_request()) {
        let bytes = request.encode_to_vec();
        let (reference, direct) = both(&bytes);
        prop_assert_eq!(direct, reference);
    }

    /// The same with a few bytes changed, inserted or cut: both fail, or both read alike.
    #[test]
    fn damaged_requests_fail_or_read_alike(
        request in arb_request(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        let mut bytes = request.encode_to_vec();
        for (at, byte, how) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = at.index(bytes.len());
            match how {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => bytes.truncate(at),
            }
        }
        let (reference, direct) = both(&bytes);
        prop_assert_eq!(direct, reference);
    }
}
