//! The protobuf reader (`wire`) against the generated message types: for any bytes, reading
//! them straight into spans must give exactly what decoding them with `prost` and converting
//! the messages gives, and fail exactly where that fails.

use proptest::prelude::*;
use prost::Message as _;
use threadline_ingest::convert::convert_otlp;
use threadline_ingest::wire::decode_request;
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_proto::opentelemetry::proto::common::v1 as pb_common;
use threadline_proto::opentelemetry::proto::resource::v1::Resource;
use threadline_proto::opentelemetry::proto::trace::v1 as pb;
use threadline_testsuite::generate::{self, Shape};

mod common;
use self::common::{Values, attributes, span_strategy};

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
fn a_request_s_spans_take_one_allocation_of_their_exact_number() {
    for (traces, services) in [(1, 1), (5, 3), (40, 10)] {
        let request = generate::otlp_request(Shape { traces, services, seed: 7 });
        let spans = decode_request(&request.encode_to_vec()).unwrap().spans;
        assert!(spans.len() >= traces);
        assert_eq!(spans.capacity(), spans.len(), "{traces} traces over {services} services");
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

fn kv(key: &str, value: pb_common::any_value::Value) -> pb_common::KeyValue {
    pb_common::KeyValue { key: key.into(), value: Some(pb_common::AnyValue { value: Some(value) }) }
}

#[test]
fn field_order_repeats_and_unknown_fields_read_alike() {
    use pb_common::any_value::Value;
    let resource = Resource {
        attributes: vec![kv("service.name", Value::StringValue("a".into()))],
        dropped_attributes_count: 1,
    }
    .encode_to_vec();
    let resource_again =
        Resource { attributes: vec![kv("host", Value::IntValue(-3))], dropped_attributes_count: 2 }
            .encode_to_vec();
    let scope = pb_common::InstrumentationScope { name: "lib".into(), ..Default::default() };
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
    use pb_common::any_value::Value;
    for depth in 44..52 {
        let mut value = pb_common::AnyValue { value: Some(Value::IntValue(1)) };
        for _ in 0..depth {
            value = pb_common::AnyValue {
                value: Some(Value::ArrayValue(pb_common::ArrayValue { values: vec![value] })),
            };
        }
        // On the span, and one level deeper on an event, so that both parities of the
        // deepest message meet the limit.
        let deep = pb_common::KeyValue { key: "deep".into(), value: Some(value) };
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

/// Strings of every length up to a few words, with one character or byte that is not ASCII
/// at each position (valid characters of two to four bytes, a stray continuation byte, a
/// character cut short, an invalid lead byte), as a span name, an attribute key and a string
/// value: read alike, and refused alike.
#[test]
fn strings_with_non_ascii_bytes_anywhere_read_alike() {
    let odd: [&[u8]; 6] =
        ["é".as_bytes(), "€".as_bytes(), "😀".as_bytes(), &[0x80], &"€".as_bytes()[..2], &[0xff]];
    let (mut read, mut refused) = (0, 0);
    for len in 0..=40 {
        for at in 0..=len {
            for bytes in odd {
                let mut text = vec![b'a'; len];
                text.splice(at..at, bytes.iter().copied());
                for place in 0..3 {
                    let [name, attribute_key, value] =
                        [0, 1, 2].map(|p| if p == place { &text[..] } else { b"ok" });
                    let attribute =
                        [len_field(1, attribute_key), len_field(2, &len_field(1, value))].concat();
                    let span = [
                        len_field(1, &[1; 16]),
                        len_field(2, &[2; 8]),
                        len_field(5, name),
                        [key(7, 1), 10u64.to_le_bytes().to_vec()].concat(),
                        [key(8, 1), 20u64.to_le_bytes().to_vec()].concat(),
                        len_field(9, &attribute),
                    ]
                    .concat();
                    let request = len_field(1, &len_field(2, &len_field(2, &span)));
                    assert_same(&request);
                    match decode_request(&request) {
                        Ok(decoded) if decoded.spans.len() == 1 => read += 1,
                        Ok(decoded) => panic!("not one span: {decoded:?}"),
                        Err(_) => refused += 1,
                    }
                }
            }
        }
    }
    // Both kinds were met: the valid characters read, the broken ones refused.
    assert_eq!(read, 3 * 3 * (1..=41).sum::<usize>());
    assert_eq!(refused, read);
}

/// Requests varied where the reader has choices to get right: absent resources and scopes,
/// several scopes per resource, schema URLs that differ where the rest is alike.
fn arb_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    let scope = (".{0,3}", ".{0,3}", attributes(Values::Any), any::<u32>()).prop_map(
        |(name, version, attributes, dropped_attributes_count)| pb_common::InstrumentationScope {
            name,
            version,
            attributes,
            dropped_attributes_count,
        },
    );
    let spans = prop::collection::vec(span_strategy(Values::Any), 0..4);
    let scope_spans = (prop::option::of(scope), spans, ".{0,3}")
        .prop_map(|(scope, spans, schema_url)| pb::ScopeSpans { scope, spans, schema_url });
    let resource = (attributes(Values::Any), any::<u32>()).prop_map(
        |(attributes, dropped_attributes_count)| Resource { attributes, dropped_attributes_count },
    );
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
