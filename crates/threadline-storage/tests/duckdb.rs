//! Span blocks are plain Parquet that other tools read: DuckDB (from the test command's
//! virtualenv, an independent reader) counts them, lists services, reads one trace in order
//! and looks attributes up by key with its JSON functions, as docs/storage.md shows.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use serde_json::{Value, json};
use threadline_core::id::TraceId;
use threadline_core::span::Span;
use threadline_ingest::convert::convert_otlp;
use threadline_storage::store::{Store, StoreOptions};
use threadline_testsuite::generate::{self, Shape, otlp_request};
use threadline_testsuite::server::TempDir;

#[test]
fn duckdb_reads_the_blocks() {
    let dir = TempDir::new("duckdb").unwrap();
    let spans: Vec<Span> = (1..=2)
        .flat_map(|seed| convert_otlp(otlp_request(Shape { traces: 20, services: 3, seed })).spans)
        .collect();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (store, _) = Store::open(dir.path(), StoreOptions::default()).await.unwrap();
        store.append(&[&spans[..60], &spans[60..]]).unwrap();
        store.flush().await.unwrap();
    });
    let trace = TraceId::from_bytes(generate::trace_id(2, 7)).unwrap();
    let pattern = dir.path().join("blocks/spans/*.parquet");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/interop/query_blocks.py");
    let output = std::process::Command::new(threadline_testsuite::python::python().unwrap())
        .args([script, pattern.to_str().unwrap(), &trace.to_hex()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: Value = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(result["spans"], 120);
    assert_eq!(result["services"], json!(["service-0", "service-1", "service-2"]));
    let mut expected: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace).collect();
    expected.sort_by_key(|s| s.start_time_unix_nano);
    let rows = result["trace"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len());
    for (row, span) in rows.iter().zip(&expected) {
        assert_eq!(row[0].as_str().unwrap().to_lowercase(), span.span_id.to_hex());
        assert_eq!(row[1], span.name.as_str());
        assert_eq!(row[2], span.kind.as_str());
        assert_eq!(row[3].as_u64(), Some(span.start_time_unix_nano));
        assert_eq!(row[4], span.attributes.len());
        assert_eq!(row[5], span.events.len());
        assert_eq!(row[6], span.links.len());
    }
    // Attributes are a JSON object per span: DuckDB's JSON functions find them by key, with
    // the type they were sent as.
    let attrs = result["attributes"].as_array().unwrap();
    let find = |key: &str| attrs.iter().find(|a| a[0] == key).unwrap().clone();
    assert_eq!(find("order.id"), json!(["order.id", "VARCHAR", "\"order-2-7\""]));
    assert_eq!(
        find("http.response.status_code"),
        json!(["http.response.status_code", "UBIGINT", "200"])
    );
    assert_eq!(find("sampled.ratio"), json!(["sampled.ratio", "DOUBLE", "0.25"]));
    assert_eq!(find("retry"), json!(["retry", "BOOLEAN", "false"]));
    let with_order = expected.iter().filter(|s| s.attributes.iter().any(|kv| kv.key == "order.id"));
    assert_eq!(result["order_spans"], with_order.count());
    // The counters (delta-encoded) and the status code (a dictionary) read back as written.
    let sum = |f: fn(&Span) -> u32| spans.iter().map(|s| u64::from(f(s))).sum::<u64>();
    let errors = spans.iter().filter(|s| s.status.code.as_str() == "error").count() as u64;
    assert_eq!(
        result["counters"],
        json!([
            sum(|s| s.flags),
            sum(|s| s.dropped_attributes_count),
            sum(|s| s.dropped_events_count),
            sum(|s| s.dropped_links_count),
            errors
        ])
    );
}
