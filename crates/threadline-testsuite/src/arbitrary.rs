//! Property-test strategies for core spans: every field varied, attribute values nested, so
//! storage round trips (WAL records, span blocks) are checked over the whole data model.

use std::sync::Arc;

use proptest::prelude::*;
use threadline_core::id::{SpanId, TraceId};
use threadline_core::span::{Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode};
use threadline_core::value::{AnyValue, KeyValue};

/// Doubles without NaN, so spans compare equal after a round trip.
fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::NORMAL | proptest::num::f64::ZERO | proptest::num::f64::INFINITE,
        Just(f64::MIN_POSITIVE / 2.0),
    ]
}

pub fn value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        "\\PC{0,12}".prop_map(|s| AnyValue::String(s.into())),
        any::<bool>().prop_map(AnyValue::Bool),
        any::<i64>().prop_map(AnyValue::Int),
        double().prop_map(AnyValue::Double),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(AnyValue::Bytes),
        Just(AnyValue::Empty),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(AnyValue::Array),
            proptest::collection::vec((key(), inner), 0..4).prop_map(|kvs| {
                AnyValue::KvList(
                    kvs.into_iter()
                        .map(|(key, value)| KeyValue { key: key.into(), value })
                        .collect(),
                )
            }),
        ]
    })
}

/// An attribute key: often one of a few that recur across spans, as real keys do.
pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        prop::sample::select(&["order.id", "http.method", "", "k"][..]).prop_map(str::to_owned),
    ]
}

pub fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    proptest::collection::vec((key(), value()), 0..5).prop_map(|kvs| {
        kvs.into_iter().map(|(key, value)| KeyValue { key: key.into(), value }).collect()
    })
}

pub fn trace_id() -> impl Strategy<Value = TraceId> {
    any::<[u8; 16]>().prop_filter_map("all zeros", |b| TraceId::from_bytes(b).ok())
}

pub fn span_id() -> impl Strategy<Value = SpanId> {
    any::<[u8; 8]>().prop_filter_map("all zeros", |b| SpanId::from_bytes(b).ok())
}

fn kind() -> impl Strategy<Value = SpanKind> {
    prop_oneof![
        Just(SpanKind::Unspecified),
        Just(SpanKind::Internal),
        Just(SpanKind::Server),
        Just(SpanKind::Client),
        Just(SpanKind::Producer),
        Just(SpanKind::Consumer),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    (
        prop_oneof![Just(StatusCode::Unset), Just(StatusCode::Ok), Just(StatusCode::Error)],
        "\\PC{0,8}",
    )
        .prop_map(|(code, message)| Status { code, message })
}

pub fn resource() -> impl Strategy<Value = Arc<Resource>> {
    (attributes(), any::<u32>(), "\\PC{0,6}").prop_map(|(attributes, dropped, schema_url)| {
        Arc::new(Resource { attributes, dropped_attributes_count: dropped, schema_url })
    })
}

pub fn scope() -> impl Strategy<Value = Arc<Scope>> {
    ("\\PC{0,8}", "\\PC{0,4}", attributes(), any::<u32>(), "\\PC{0,6}").prop_map(
        |(name, version, attributes, dropped, schema_url)| {
            Arc::new(Scope {
                name,
                version,
                attributes,
                dropped_attributes_count: dropped,
                schema_url,
            })
        },
    )
}

fn event() -> impl Strategy<Value = Event> {
    (any::<u64>(), "\\PC{0,8}", attributes(), any::<u32>()).prop_map(
        |(time_unix_nano, name, attributes, dropped)| Event {
            time_unix_nano,
            name,
            attributes,
            dropped_attributes_count: dropped,
        },
    )
}

fn link() -> impl Strategy<Value = Link> {
    (trace_id(), span_id(), "\\PC{0,8}", attributes(), any::<u32>(), any::<u32>()).prop_map(
        |(trace_id, span_id, trace_state, attributes, dropped, flags)| Link {
            trace_id,
            span_id,
            trace_state,
            attributes,
            dropped_attributes_count: dropped,
            flags,
        },
    )
}

/// Any valid span (start not zero, end not before start) under the given resource and scope.
pub fn span_with(resource: Arc<Resource>, scope: Arc<Scope>) -> impl Strategy<Value = Span> {
    (
        (trace_id(), span_id(), proptest::option::of(span_id()), "\\PC{0,8}", any::<u32>()),
        ("\\PC{0,12}", kind(), 1..u64::MAX / 2, 0..u64::MAX / 2),
        (attributes(), any::<u32>(), proptest::collection::vec(event(), 0..3), any::<u32>()),
        (proptest::collection::vec(link(), 0..3), any::<u32>(), status()),
    )
        .prop_map(move |(ids, naming, attrs, rest)| {
            let (trace_id, span_id, parent_span_id, trace_state, flags) = ids;
            let (name, kind, start, duration) = naming;
            let (attributes, dropped_attributes_count, events, dropped_events_count) = attrs;
            let (links, dropped_links_count, status) = rest;
            Span {
                trace_id,
                span_id,
                parent_span_id,
                trace_state,
                flags,
                name: name.into(),
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration,
                attributes,
                dropped_attributes_count,
                events,
                dropped_events_count,
                links,
                dropped_links_count,
                status,
                resource: Arc::clone(&resource),
                scope: Arc::clone(&scope),
            }
        })
}

/// A batch of spans under a few shared resources and scopes, as a receiver produces them.
pub fn batch() -> impl Strategy<Value = Vec<Span>> {
    (proptest::collection::vec(resource(), 1..3), scope()).prop_flat_map(|(resources, scope)| {
        let per_resource: Vec<_> = resources
            .into_iter()
            .map(|r| proptest::collection::vec(span_with(r, Arc::clone(&scope)), 0..4))
            .collect();
        per_resource.prop_map(|groups| groups.into_iter().flatten().collect::<Vec<_>>())
    })
}
