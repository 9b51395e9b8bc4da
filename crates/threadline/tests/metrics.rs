//! `GET /metrics` through the running server, read by the reference Prometheus parser (the
//! Python client's, from the test command's virtualenv): per-type counters and a duration
//! histogram that add up, operation and channel series, Threadline's own health, and label
//! values escaped.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use threadline_api_types::ProcessListResponse;
use threadline_core::span::{Span, SpanKind};
use threadline_testsuite::otlp;
use threadline_testsuite::server::TestServer;
use threadline_testsuite::spans::span;

fn checkout(t: u64, root_name: &str) -> Vec<Span> {
    vec![
        span(t, 1, "frontend", root_name).kind(SpanKind::Server).at(0.0, 0.4).build(),
        span(t, 2, "frontend", "orders publish").parent(1).produces("orders").at(0.1, 0.11).build(),
        span(t + 1000, 3, "billing", "orders process")
            .consumes("orders", "billing")
            .link(t, 2)
            .at(0.2, 0.3)
            .build(),
    ]
}

/// Samples as parsed by prometheus_client: (name, labels, value).
fn parse(text: &str) -> Vec<(String, serde_json::Map<String, Value>, f64)> {
    let python = threadline_testsuite::python::python().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/interop/parse_metrics.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the parser refused the exposition: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (
                v["name"].as_str().unwrap().to_owned(),
                v["labels"].as_object().unwrap().clone(),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn value(
    samples: &[(String, serde_json::Map<String, Value>, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name && labels.iter().all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_add_up() {
    let server = TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).unwrap();
    let mut spans = Vec::new();
    for t in 1..=3 {
        spans.extend(checkout(t, "POST /checkout"));
    }
    // A root whose name needs escaping in a label value.
    spans.extend(checkout(10, "GET /q?\"x\"\\y"));
    let response = reqwest::Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .body(otlp::protobuf(&spans))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list: ProcessListResponse =
            server.api_json("/api/v1/processes?state=completed").await.unwrap();
        if list.processes.len() == 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all completed: {list:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let response = reqwest::get(format!("{}/metrics", server.api_url())).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = response.text().await.unwrap();
    let samples = parse(&text);

    let checkout = [("type", "frontend: POST /checkout")];
    assert_eq!(value(&samples, "threadline_processes_started_total", &checkout), Some(3.0));
    assert_eq!(value(&samples, "threadline_processes_completed_total", &checkout), Some(3.0));
    assert_eq!(value(&samples, "threadline_processes_in_flight", &checkout), Some(0.0));
    assert_eq!(value(&samples, "threadline_process_duration_seconds_count", &checkout), Some(3.0));
    // Every checkout took 0.4 s (root start to its last span's end): all in the 0.5 s bucket.
    let bucket = |le: &str| {
        value(&samples, "threadline_process_duration_seconds_bucket", &[checkout[0], ("le", le)])
    };
    assert_eq!((bucket("0.25"), bucket("0.5"), bucket("+Inf")), (Some(0.0), Some(3.0), Some(3.0)));
    let sum = value(&samples, "threadline_process_duration_seconds_sum", &checkout).unwrap();
    assert!((sum - 1.2).abs() < 1e-6, "sum {sum}");
    let escaped = [("type", "frontend: GET /q?\"x\"\\y")];
    assert_eq!(
        value(&samples, "threadline_processes_completed_total", &escaped),
        Some(1.0),
        "{text}"
    );

    let billing = [("system", "kafka"), ("destination", "orders"), ("group", "billing")];
    assert_eq!(value(&samples, "threadline_channel_consumed_total", &billing), Some(4.0));
    assert_eq!(value(&samples, "threadline_channel_wait_seconds_count", &billing), Some(4.0));
    assert_eq!(
        value(
            &samples,
            "threadline_operation_spans_total",
            &[("service", "billing"), ("operation", "orders process")]
        ),
        Some(4.0)
    );
    assert_eq!(value(&samples, "threadline_ingest_accepted_spans_total", &[]), Some(12.0));
    assert_eq!(value(&samples, "threadline_store_write_failing", &[]), Some(0.0));
    // Four processes, each a row of the table; each commit wrote at least one row.
    let table =
        |what: &str| value(&samples, &format!("threadline_process_table_{what}_total"), &[]);
    assert_eq!(table("rows_created"), Some(4.0), "{text}");
    let (written, commits) = (table("rows_written").unwrap(), table("commits").unwrap());
    assert!(
        written >= 4.0 && commits >= 1.0 && commits <= written,
        "{written} rows in {commits} commits"
    );
    assert!(value(&samples, "threadline_ingest_queue_capacity_spans", &[]).unwrap() > 0.0);
}
