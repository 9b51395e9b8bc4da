//! Real-time latency of the engine's events through the running server, end to end on
//! loopback: from the moment the last span of a process is acknowledged over OTLP/HTTP to the
//! `completed` event on the SSE stream, and from a running process's SLA deadline to its
//! `sla_breached` event. The settle window (`engine.settle_ms`, 20 ms by default) is part of
//! the first figure by design; the run also reports the figure minus it.
//!
//! Run: `cargo bench -p threadline --bench latency`.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "a benchmark: reports on stdout, percentiles of small samples"
)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use threadline_api_types::ProcessEventView;
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_proto::opentelemetry::proto::common::v1::{AnyValue, KeyValue, any_value};
use threadline_proto::opentelemetry::proto::resource::v1::Resource;
use threadline_proto::opentelemetry::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use threadline_testsuite::server::{Options, TestServer};

const ROUNDS: u64 = 50;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }),
    }
}

fn now_nanos() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()).unwrap()
}

/// A checkout in one request: root, producer, and (when `consumed`) its consumer.
fn flow(n: u64, consumed: bool) -> Vec<u8> {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&0x5eed_u64.to_be_bytes());
    trace_id[8..].copy_from_slice(&n.to_be_bytes());
    let id = |k: u64| (n * 10 + k).to_be_bytes().to_vec();
    let now = now_nanos();
    let span =
        |k: u64, parent: Option<u64>, name: &str, kind: i32, attributes: Vec<KeyValue>| Span {
            trace_id: trace_id.to_vec(),
            span_id: id(k),
            parent_span_id: parent.map(id).unwrap_or_default(),
            name: name.to_owned(),
            kind,
            start_time_unix_nano: now,
            end_time_unix_nano: now + 1_000,
            attributes,
            ..Default::default()
        };
    let messaging = |extra: Vec<KeyValue>| {
        let mut attrs =
            vec![kv("messaging.system", "kafka"), kv("messaging.destination.name", "orders")];
        attrs.extend(extra);
        attrs
    };
    let mut spans = vec![
        span(1, None, "POST /checkout", 2, vec![]),
        span(2, Some(1), "orders send", 4, messaging(vec![])),
    ];
    if consumed {
        spans.push(span(
            3,
            Some(2),
            "orders process",
            5,
            messaging(vec![kv("messaging.consumer.group.name", "payments")]),
        ));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "shop")],
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn next(&mut self) -> ProcessEventView {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return serde_json::from_str(data).unwrap();
                }
                continue;
            }
            let chunk = self.response.chunk().await.unwrap().unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            config: Some("version = 1\n[engine]\ndefault_sla_secs = 1\n".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        client
            .post(server.otlp_http_url())
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
    };

    // Warm up: the channel learns its subscriber.
    post(flow(1, true)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stream =
        reqwest::get(format!("{}/api/v1/events?kind=completed", server.api_url())).await.unwrap();
    let mut events = Events { response: stream, buffer: String::new() };
    let mut completion = Vec::new();
    for n in 2..2 + ROUNDS {
        let response = post(flow(n, true)).await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let acked = Instant::now();
        let event = events.next().await;
        assert_eq!(event.kind, "completed");
        completion.push(acked.elapsed());
    }

    let stream = reqwest::get(format!("{}/api/v1/events?kind=sla_breached", server.api_url()))
        .await
        .unwrap();
    let mut events = Events { response: stream, buffer: String::new() };
    let mut breach = Vec::new();
    for n in 1000..1000 + ROUNDS / 5 {
        // Never consumed: still running at its deadline, start + 1 s.
        let body = flow(n, false);
        let start = now_nanos() - 1_000; // the spans' start, within a microsecond
        post(body).await.unwrap();
        let event = events.next().await;
        assert_eq!(event.kind, "sla_breached");
        let deadline = start + 1_000_000_000;
        breach.push(Duration::from_nanos(now_nanos().saturating_sub(deadline)));
    }

    let report = |name: &str, mut values: Vec<Duration>| {
        values.sort();
        let p = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:<44} p50 {:>8.1} ms   p95 {:>8.1} ms   max {:>8.1} ms   (n = {})",
            p(0.5).as_secs_f64() * 1e3,
            p(0.95).as_secs_f64() * 1e3,
            values.last().unwrap().as_secs_f64() * 1e3,
            values.len()
        );
    };
    let settle = Duration::from_millis(20);
    report("last span acked -> completed event", completion.clone());
    report(
        "  minus the 20 ms settle window",
        completion.iter().map(|d| d.saturating_sub(settle)).collect(),
    );
    report("SLA deadline -> sla_breached event", breach);
}
