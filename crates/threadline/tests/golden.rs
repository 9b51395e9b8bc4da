//! Golden answers of every API endpoint: the running binary is fed by the OpenTelemetry Python
//! SDK, and each answer, with what changes from run to run named instead of shown (ids by what
//! they identify, times and durations as placeholders), must equal its snapshot in
//! `tests/golden/`. A change to any answer's shape shows up here as a diff to review
//! (`UPDATE_EXPECT=1` rewrites the snapshots).

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use threadline_api_types::ProcessListResponse;
use threadline_testsuite::server::{Options, TempDir, TestServer};

const SPECS: &str = r#"version = 1

[[process]]
name = "checkout"
root = { service = "frontend", operation = "POST /checkout" }
keys = ["order.id"]
sla = "30s"

[process.owner]
team = "checkout"
runbook = "https://wiki.example.com/runbooks/checkout"

[[process.step]]
service = "checkout"
operation = "orders publish"
order = 1

[[process.step]]
service = "payments"
operation = "charge card"
order = 2
"#;

const FLOWS: usize = 4;

/// Names for the ids the SDK made up, from what they identify.
struct Names {
    ids: HashMap<String, String>,
}

impl Names {
    /// From the spans the SDK recorded: a trace by its order and whether it is the
    /// consumer's; a span by its operation and order.
    fn new(recorded: &[Value]) -> Self {
        let mut order_of_trace: HashMap<String, String> = HashMap::new();
        let mut consumer_traces = Vec::new();
        for span in recorded {
            let trace = span["traceId"].as_str().unwrap().to_owned();
            for kv in span["attributes"].as_array().unwrap() {
                if kv["key"] == "order.id" {
                    order_of_trace
                        .insert(trace.clone(), kv["value"]["stringValue"].as_str().unwrap().into());
                }
            }
            if !span["links"].as_array().unwrap().is_empty() {
                let linked = span["links"][0]["traceId"].as_str().unwrap().to_owned();
                consumer_traces.push((trace, linked));
            }
        }
        let mut ids = HashMap::new();
        for (trace, order) in &order_of_trace {
            ids.insert(trace.clone(), format!("<trace {order}>"));
        }
        for (trace, linked) in consumer_traces {
            ids.insert(trace, format!("<trace {} consumer>", order_of_trace[&linked]));
        }
        for span in recorded {
            let trace = &ids[span["traceId"].as_str().unwrap()];
            let order = trace
                .trim_start_matches("<trace ")
                .trim_end_matches('>')
                .trim_end_matches(" consumer");
            ids.insert(
                span["spanId"].as_str().unwrap().to_owned(),
                format!("<span {} of {order}>", span["name"].as_str().unwrap()),
            );
        }
        Self { ids }
    }

    fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (id, name) in &self.ids {
            if out.contains(id.as_str()) {
                out = out.replace(id.as_str(), name);
            }
        }
        out
    }
}

/// Keys whose values change from run to run: times, durations, rates, latencies.
fn varies(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "unixnano",
        "nanos",
        "time",
        "duration",
        "timestamp",
        "elapsedms",
        "since",
        "persecond",
        "rate",
        "bytes",
        "p50",
        "p95",
        "p99",
    ]
    .iter()
    .any(|v| k.ends_with(v))
        || k == "seq"
}

fn normalize(value: &Value, names: &Names, key: Option<&str>) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (names.text(k), normalize(v, names, Some(k))))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| normalize(v, names, key)).collect())
        }
        Value::Null => Value::Null,
        _ if key.is_some_and(varies) => json!("<varies>"),
        Value::String(s) if is_uuid(s) => json!("<uuid>"),
        Value::String(s) => Value::String(names.text(s)),
        other => other.clone(),
    }
}

/// The SDK's `service.instance.id`, new in every run.
fn is_uuid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn pretty(value: &Value) -> String {
    format!("{}\n", serde_json::to_string_pretty(value).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_as_its_snapshot() {
    let dir = TempDir::new("golden").unwrap();
    let specs = dir.path().join("specs.toml");
    std::fs::write(&specs, SPECS).unwrap();
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            args: vec!["--specs".into(), specs.to_str().unwrap().into()],
            config: Some(threadline_testsuite::python::SETTLE_FOR_SDK_FLUSHES.to_owned()),
            ..Options::default()
        },
    )
    .unwrap();
    let endpoint = server.otlp_http_url();
    let recorded = tokio::task::spawn_blocking(move || {
        threadline_testsuite::python::export_flows("http", &endpoint, FLOWS).unwrap()
    })
    .await
    .unwrap();
    let names = Names::new(&recorded);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let list = loop {
        let list: ProcessListResponse =
            server.api_json("/api/v1/processes?state=completed").await.unwrap();
        let failed: ProcessListResponse =
            server.api_json("/api/v1/processes?state=failed").await.unwrap();
        if list.processes.len() + failed.processes.len() == FLOWS {
            break list;
        }
        assert!(tokio::time::Instant::now() < deadline, "not every process ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let process = list.processes.iter().find(|p| p.keys["order.id"] == "order-http-0").unwrap();
    let root_trace = &process.trace_ids[0];
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let start_rfc3339 = "2020-01-01T00:00:00Z";
    let gets = [
        ("healthz", "/healthz".to_owned()),
        ("readyz", "/readyz".to_owned()),
        ("api_v1_status", "/api/v1/status".to_owned()),
        ("api_v1_services", "/api/v1/services".to_owned()),
        ("api_v1_processes", "/api/v1/processes?type=checkout".to_owned()),
        ("api_v1_processes_by_key", "/api/v1/processes?key=order.id:order-http-1".to_owned()),
        ("api_v1_processes_by_service_sorted", "/api/v1/processes?service=payments&sort=start&order=asc".to_owned()),
        ("api_v1_process", format!("/api/v1/processes/{}", process.id)),
        ("api_v1_trace", format!("/api/v1/traces/{root_trace}")),
        ("api_v1_process_types", "/api/v1/process-types".to_owned()),
        ("api_v1_graph", "/api/v1/graph".to_owned()),
        ("api_v1_triage", "/api/v1/triage?older_than=0s".to_owned()),
        ("api_v1_specs", "/api/v1/specs".to_owned()),
        ("api_v1_error_not_found", "/api/v1/processes/00000000000000000000000000000001".to_owned()),
        ("api_v1_error_bad_parameter", "/api/v1/processes?state=done".to_owned()),
        ("jaeger_services", "/api/services".to_owned()),
        ("jaeger_operations_of_service", "/api/services/payments/operations".to_owned()),
        ("jaeger_operations", "/api/operations?service=checkout&spanKind=producer".to_owned()),
        ("jaeger_search", "/api/traces?service=frontend&operation=POST%20/checkout&tags=%7B%22order.id%22%3A%22order-http-2%22%7D".to_owned()),
        ("jaeger_trace", format!("/api/traces/{root_trace}")),
        ("jaeger_dependencies", format!("/api/dependencies?endTs={now_ms}&lookback=3600000")),
        ("jaeger_v3_services", "/api/v3/services".to_owned()),
        ("jaeger_v3_operations", "/api/v3/operations?service=payments".to_owned()),
        ("jaeger_v3_trace", format!("/api/v3/traces/{root_trace}")),
        (
            "jaeger_v3_search",
            format!("/api/v3/traces?query.service_name=checkout&query.start_time_min={start_rfc3339}&query.num_traces=1"),
        ),
    ];
    let golden = |name: &str| {
        expect_test::expect_file![format!(
            "{}/tests/golden/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        )]
    };
    for (name, path) in gets {
        let (status, body) = server.api_get(&path).await.unwrap();
        let body: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        golden(name)
            .assert_eq(&pretty(&json!({"status": status, "body": normalize(&body, &names, None)})));
    }

    // The event log, replayed from the start.
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/events?after=0", server.api_url()))
        .send()
        .await
        .unwrap();
    let events = threadline_testsuite::sse::read_events(response, Duration::from_secs(10), |e| {
        e.iter().filter(|e| e.kind == "completed" || e.kind == "failed").count() == FLOWS
    })
    .await;
    let mut events: Vec<Value> =
        events.iter().map(|e| normalize(&serde_json::to_value(e).unwrap(), &names, None)).collect();
    events.sort_by_key(|e| (e["processId"].to_string(), e["seq"].as_u64()));
    golden("api_v1_events").assert_eq(&pretty(&Value::Array(events)));

    // SQL.
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/sql", server.api_url()))
        .json(&json!({"query": "SELECT p.keys['order.id'] AS order_id, p.state, s.service, s.name, s.kind, \
                       s.status_code, s.attributes['messaging.destination.name'] AS channel \
                       FROM processes p JOIN spans s ON array_has(p.trace_ids, s.trace_id) \
                       ORDER BY order_id, s.start_time"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    golden("api_v1_sql").assert_eq(&pretty(&normalize(&answer, &names, None)));

    // /metrics: every series name and label set (values vary).
    let (status, text) = server.api_get("/metrics").await.unwrap();
    assert_eq!(status, 200);
    let mut series: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_owned()))
        .filter(|s| !s.contains("_bucket{"))
        .collect();
    series.sort();
    series.dedup();
    expect_test::expect_file![format!("{}/tests/golden/metrics.txt", env!("CARGO_MANIFEST_DIR"))]
        .assert_eq(&(series.join("\n") + "\n"));
}
