//! Interop with an independent OTLP client: the OpenTelemetry Python SDK's gRPC and
//! HTTP/protobuf exporters each send a few thousand spans from several services (links,
//! events, every attribute type); every span the SDK recorded must come back through
//! `/api/v1/traces/{id}` with ids, times, kinds, status, attributes, events, links, resource
//! and scope intact.
//!

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::collections::HashMap;

use serde_json::{Value, json};
use threadline_api_types::{SpanView, TraceResponse};
use threadline_testsuite::server::TestServer;

/// Each flow makes seven spans in two traces.
const FLOWS: usize = 500;

/// The fields the SDK recorded, taken from Threadline's view of the span in the same shape.
fn comparable(span: &SpanView) -> Value {
    let sorted = |kvs: &Vec<threadline_api_types::KeyValueView>| {
        let mut kvs: Vec<Value> = kvs.iter().map(|kv| serde_json::to_value(kv).unwrap()).collect();
        kvs.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
        Value::Array(kvs)
    };
    json!({
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "parentSpanId": span.parent_span_id,
        "name": span.name,
        "kind": span.kind,
        "startTimeUnixNano": span.start_time_unix_nano,
        "endTimeUnixNano": span.end_time_unix_nano,
        "status": { "code": span.status.code, "message": span.status.message },
        "attributes": sorted(&span.attributes),
        "events": span.events.iter().map(|e| json!({
            "name": e.name, "timeUnixNano": e.time_unix_nano, "attributes": sorted(&e.attributes),
        })).collect::<Vec<_>>(),
        "links": span.links.iter().map(|l| json!({
            "traceId": l.trace_id, "spanId": l.span_id, "attributes": sorted(&l.attributes),
        })).collect::<Vec<_>>(),
        "resource": sorted(&span.resource.attributes),
        "scope": { "name": span.scope.name, "version": span.scope.version },
    })
}

async fn check_round_trip(server: &TestServer, recorded: &[Value]) {
    assert_eq!(recorded.len(), FLOWS * 7);
    let mut traces: HashMap<String, HashMap<String, Value>> = HashMap::new();
    let mut kinds = HashMap::new();
    for expected in recorded {
        let trace_id = expected["traceId"].as_str().unwrap().to_owned();
        if !traces.contains_key(&trace_id) {
            let trace: TraceResponse =
                server.api_json(&format!("/api/v1/traces/{trace_id}")).await.unwrap();
            let by_id = trace.spans.iter().map(|s| (s.span_id.clone(), comparable(s))).collect();
            traces.insert(trace_id.clone(), by_id);
        }
        let span_id = expected["spanId"].as_str().unwrap();
        let actual =
            traces[&trace_id].get(span_id).unwrap_or_else(|| panic!("span {span_id} missing"));
        assert_eq!(actual, expected, "span {span_id} differs");
        *kinds.entry(expected["kind"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    // Every trace holds exactly what the SDK recorded: nothing extra, nothing duplicated.
    assert_eq!(traces.values().map(HashMap::len).sum::<usize>(), recorded.len());
    assert_eq!(kinds.len(), 5, "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_exporter_spans_round_trip() {
    let server = TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).unwrap();
    let endpoint = server.otlp_grpc_url();
    let recorded = tokio::task::spawn_blocking(move || {
        threadline_testsuite::python::export_flows("grpc", &endpoint, FLOWS).unwrap()
    })
    .await
    .unwrap();
    check_round_trip(&server, &recorded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_protobuf_exporter_spans_round_trip() {
    let server = TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).unwrap();
    let endpoint = server.otlp_http_url();
    let recorded = tokio::task::spawn_blocking(move || {
        threadline_testsuite::python::export_flows("http", &endpoint, FLOWS).unwrap()
    })
    .await
    .unwrap();
    check_round_trip(&server, &recorded).await;
}
