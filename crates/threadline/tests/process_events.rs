//! The process engine live in the running server: the OpenTelemetry Python SDK emits
//! checkouts whose consumer starts a new trace linked to its producer; `completed` appears on
//! the event stream for each, and the process API shows both traces joined.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::collections::BTreeSet;
use std::time::Duration;

use threadline_api_types::{ProcessEventView, ProcessListResponse, ProcessResponse};
use threadline_testsuite::server::TestServer;
use threadline_testsuite::sse::read_events;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_appears_on_the_event_stream_for_linked_producer_consumer_flows() {
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        threadline_testsuite::server::Options {
            config: Some(threadline_testsuite::python::SETTLE_FOR_SDK_FLUSHES.to_owned()),
            ..Default::default()
        },
    )
    .unwrap();
    let stream = reqwest::get(format!("{}/api/v1/events?kind=started,completed", server.api_url()))
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");

    let endpoint = server.otlp_http_url();
    let recorded = tokio::task::spawn_blocking(move || {
        threadline_testsuite::python::export_flows("http", &endpoint, 3).unwrap()
    })
    .await
    .unwrap();
    let roots: BTreeSet<String> = recorded
        .iter()
        .filter(|s| s["name"] == "POST /checkout")
        .map(|s| s["traceId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(roots.len(), 3);

    let events = read_events(stream, Duration::from_secs(30), |events| {
        roots.iter().all(|id| events.iter().any(|e| e.kind == "completed" && e.process_id == *id))
    })
    .await;
    for id in &roots {
        let of =
            |kind: &str| events.iter().filter(|e| e.process_id == *id && e.kind == kind).count();
        assert_eq!((of("started"), of("completed")), (1, 1), "process {id}: {events:#?}");
    }
    // Consumer traces joined their producers' processes: no process of their own.
    assert!(events.iter().all(|e| roots.contains(&e.process_id)), "{events:#?}");
    let completed = events.iter().find(|e| e.kind == "completed").unwrap();
    assert_eq!(completed.process_type, "frontend: POST /checkout");
    assert_eq!(completed.detail, "structural");

    // The process by a consumer trace's id: both traces, every span on the timeline.
    let consumer_trace = recorded
        .iter()
        .find(|s| s["name"] == "orders process")
        .map(|s| s["traceId"].as_str().unwrap().to_owned())
        .unwrap();
    let response: ProcessResponse =
        server.api_json(&format!("/api/v1/processes/{consumer_trace}")).await.unwrap();
    let process = &response.process;
    assert_eq!(process.state, "completed");
    assert_eq!(process.completion_mode.as_deref(), Some("structural"));
    assert_eq!(process.trace_ids.len(), 2);
    assert!(roots.contains(&process.id));
    assert_eq!(process.trace_ids[1], consumer_trace);
    assert_eq!(response.timeline.len(), 7);
    // The critical path crosses into the consumer trace through the orders channel.
    let waits: Vec<_> = response
        .critical_path
        .iter()
        .filter_map(|s| match s {
            threadline_api_types::SegmentView::ChannelWait {
                destination, consumer_group, ..
            } => Some((destination.as_str(), consumer_group.as_str())),
            threadline_api_types::SegmentView::Operation { .. } => None,
        })
        .collect();
    assert_eq!(waits, [("orders", "payments")], "{:#?}", response.critical_path);
    assert_eq!(process.spans, 7);
    assert!(process.waiting_for.is_empty());

    // Aggregates: the type's counts and the orders channel with its consumer group.
    let types: threadline_api_types::ProcessTypesResponse =
        server.api_json("/api/v1/process-types").await.unwrap();
    let checkout = &types.process_types[0];
    assert_eq!(
        (checkout.name.as_str(), checkout.started, checkout.completed),
        ("frontend: POST /checkout", 3, 3)
    );
    assert!(checkout.durations.p50_nanos.is_some());
    let graph: threadline_api_types::GraphResponse =
        server.api_json("/api/v1/graph").await.unwrap();
    let orders = graph.channels.iter().find(|c| c.destination == "orders").unwrap();
    assert_eq!(orders.messages, 3);
    assert_eq!(orders.consumer_groups[0].group, "payments");
    assert_eq!(orders.consumer_groups[0].consumed, 3);
    assert!(
        graph.operations.iter().any(|o| o.service == "payments" && o.operation == "charge card")
    );
    // The SDK flow's synchronous call: frontend's client span to checkout's server span.
    let call = graph.calls.iter().find(|c| c.caller == "frontend").unwrap();
    assert_eq!((call.callee.as_str(), call.calls, call.errors), ("checkout", 3, 0));

    // And by business key.
    let order = &process.keys["order.id"];
    let found: ProcessListResponse =
        server.api_json(&format!("/api/v1/processes?key=order.id:{order}")).await.unwrap();
    assert_eq!(found.processes.len(), 1);
    assert_eq!(found.processes[0].id, process.id);
}

#[tokio::test]
async fn process_api_errors_are_clear() {
    let server = TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).unwrap();
    let cases = [
        "/api/v1/processes/xyz",
        "/api/v1/processes/0102030405060708090a0b0c0d0e0f10",
        "/api/v1/processes?limit=0",
        "/api/v1/processes?state=done",
        "/api/v1/processes?cursor=zzz",
        "/api/v1/processes?key=order.id",
        "/api/v1/events?after=x",
        "/api/v1/processes?start_from=yesterday",
        "/api/v1/events?kind=finished",
    ];
    let mut answers = Vec::new();
    for path in cases {
        let (status, body) = server.api_get(path).await.unwrap();
        answers.push(format!("{status} {body}"));
    }
    expect_test::expect![[r#"
        400 {"error":{"code":"invalid_argument","message":"process id \"xyz\" must be 32 hex digits, got 3 characters"}}
        404 {"error":{"code":"not_found","message":"process 0102030405060708090a0b0c0d0e0f10 not found"}}
        400 {"error":{"code":"invalid_argument","message":"limit 0 must be between 1 and 1000"}}
        400 {"error":{"code":"invalid_argument","message":"state \"done\" is not one of running, completed, failed"}}
        400 {"error":{"code":"invalid_argument","message":"cursor \"zzz\" is not one this server returned"}}
        400 {"error":{"code":"invalid_argument","message":"key \"order.id\" must be NAME:VALUE, as in order.id:123"}}
        400 {"error":{"code":"invalid_argument","message":"after \"x\" must be an event seq"}}
        400 {"error":{"code":"invalid_argument","message":"Failed to deserialize query string: start_from: invalid digit found in string"}}
        400 {"error":{"code":"invalid_argument","message":"kind \"finished\" is not one of started, completed, failed, sla_breached, stuck, spec_violated, reopened"}}"#]]
    .assert_eq(&answers.join("\n"));
}

const FLOW_SPEC: &str = r#"
version = 1

[[process]]
name = "checkout"
root = { service = "frontend", operation = "POST /checkout" }
sla = "30s"

[process.owner]
team = "checkout"
runbook = "https://wiki.example.com/runbooks/checkout"

[process.forbid]
errors = true

[[process.step]]
service = "payments"
operation = "orders process"

[[process.step]]
service = "fulfilment"
operation = "reserve stock"
terminal = true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn specs_type_check_and_own_processes_in_the_running_server() {
    let dir = threadline_testsuite::server::TempDir::new("specs").unwrap();
    let spec_file = dir.path().join("specs.toml");
    std::fs::write(&spec_file, FLOW_SPEC).unwrap();
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        threadline_testsuite::server::Options {
            args: vec!["--specs".into(), spec_file.to_str().unwrap().into()],
            config: Some(threadline_testsuite::python::SETTLE_FOR_SDK_FLUSHES.to_owned()),
            ..Default::default()
        },
    )
    .unwrap();
    let stream =
        reqwest::get(format!("{}/api/v1/events?type=checkout", server.api_url())).await.unwrap();
    let endpoint = server.otlp_grpc_url();
    // Flow 3 of the script has a failing "charge card" span: errors are forbidden.
    let recorded = tokio::task::spawn_blocking(move || {
        threadline_testsuite::python::export_flows("grpc", &endpoint, 5).unwrap()
    })
    .await
    .unwrap();
    let failing = recorded
        .iter()
        .find(|s| s["name"] == "charge card" && s["status"]["code"] == "error")
        .unwrap();
    let failing_trace = failing["traceId"].as_str().unwrap().to_owned();
    let events = read_events(stream, Duration::from_secs(30), |events| {
        events.iter().filter(|e| e.kind == "completed").count() == 5
            && events.iter().any(|e| e.kind == "spec_violated")
    })
    .await;
    let violated: Vec<&ProcessEventView> =
        events.iter().filter(|e| e.kind == "spec_violated").collect();
    assert_eq!(violated.len(), 1, "{events:#?}");
    assert_eq!(violated[0].detail, "1 spans have error status");
    assert!(events.iter().all(|e| e.process_type == "checkout"));

    let response: ProcessResponse =
        server.api_json(&format!("/api/v1/processes/{failing_trace}")).await.unwrap();
    let process = &response.process;
    assert_eq!(process.id, violated[0].process_id);
    let spec = process.spec.as_ref().unwrap();
    assert!(!spec.passed);
    assert_eq!(spec.violations, ["1 spans have error status"]);
    let owner = process.owner.as_ref().unwrap();
    assert_eq!(owner.team.as_deref(), Some("checkout"));
    assert_eq!(owner.runbook.as_deref(), Some("https://wiki.example.com/runbooks/checkout"));
}

#[test]
fn check_validates_spec_files() {
    let bin: &std::path::Path = env!("CARGO_BIN_EXE_threadline").as_ref();
    let shop = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/shop/specs.toml");
    let output = std::process::Command::new(bin).args(["check", shop]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains(": 4 process types"), "{stdout}");
    assert!(stdout.contains("checkout: by root frontend POST /checkout; SLA 30s"), "{stdout}");

    let dir = threadline_testsuite::server::TempDir::new("check").unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[[process]]\nname = \"x\"\nroot = { service = \"a\" }\nslaa = \"1s\"\n",
    )
    .unwrap();
    let output =
        std::process::Command::new(bin).args(["check", bad.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("bad.toml: line 5, column 1: unknown field `slaa`"), "{stderr}");
}

/// Listings page through every process, newest start first, with the cursor each page gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_are_listed_by_type_and_state_in_pages() {
    use threadline_core::span::SpanKind;
    use threadline_testsuite::spans::span;
    let server = TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).unwrap();
    let spans: Vec<_> = (1..=7u64)
        .map(|t| {
            let name = if t % 2 == 0 { "POST /refund" } else { "POST /checkout" };
            #[allow(clippy::cast_precision_loss, reason = "small numbers")]
            let start = t as f64;
            span(t, 1, "frontend", name).kind(SpanKind::Server).at(start, start + 0.5).build()
        })
        .collect();
    let response = reqwest::Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .body(threadline_testsuite::otlp::protobuf(&spans))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let list = |query: String| {
        let server = &server;
        async move {
            server
                .api_json::<ProcessListResponse>(&format!("/api/v1/processes?{query}"))
                .await
                .unwrap()
        }
    };
    // Every process completes (a lone root span), then is listed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while list("state=completed".into()).await.processes.len() < 7 {
        assert!(tokio::time::Instant::now() < deadline, "not all completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let query = match &cursor {
            Some(c) => format!("type=frontend: POST /checkout&limit=3&cursor={c}"),
            None => "type=frontend: POST /checkout&limit=3".to_owned(),
        };
        let page = list(query).await;
        seen.extend(page.processes.iter().map(|p| p.id.clone()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<String> =
        [7u64, 5, 3, 1].iter().map(|t| threadline_testsuite::spans::trace(*t).to_hex()).collect();
    assert_eq!(seen, expected, "checkouts, newest first, each once");
    assert!(list("state=running".into()).await.processes.is_empty());
    assert_eq!(list("type=frontend: POST /refund".into()).await.processes.len(), 3);
    // Flags and durations (each process lasted 0.5 s).
    assert!(list("stuck=true".into()).await.processes.is_empty());
    assert_eq!(list("stuck=false&sla_breached=false".into()).await.processes.len(), 7);
    assert_eq!(list("min_duration=400ms&max_duration=600ms".into()).await.processes.len(), 7);
    assert!(list("min_duration=1s".into()).await.processes.is_empty());
    let (status, body) = server.api_get("/api/v1/processes?max_duration=long").await.unwrap();
    assert_eq!(status, 400);
    assert!(body.contains("max_duration") && body.contains("must be a duration"), "{body}");
}

/// Search by a span's service, operation and attribute, and sorts other than newest first,
/// in pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_are_searched_by_span_and_sorted() {
    use threadline_core::span::SpanKind;
    use threadline_testsuite::spans::{span, trace};
    let server = TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).unwrap();
    // Process t starts at t s and lasts t/10 s; odd ones pay (card, card, wallet), even ones
    // reserve stock.
    let spans: Vec<_> = (1..=6u64)
        .flat_map(|t| {
            #[allow(clippy::cast_precision_loss, reason = "small numbers")]
            let (start, length) = (t as f64, t as f64 / 10.0);
            let root = span(t, 1, "frontend", "POST /checkout")
                .kind(SpanKind::Server)
                .at(start, start + length)
                .build();
            let child = if t % 2 == 1 {
                span(t, 2, "payments", "charge")
                    .attr("payment.method", if t == 5 { "wallet" } else { "card" })
            } else {
                span(t, 2, "inventory", "reserve")
            };
            [root, child.parent(1).at(start + 0.01, start + 0.02).build()]
        })
        .collect();
    let response = reqwest::Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .body(threadline_testsuite::otlp::protobuf(&spans))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let list = |query: &str| {
        let path = format!("/api/v1/processes?{query}");
        let server = &server;
        async move {
            let page = server.api_json::<ProcessListResponse>(&path).await.unwrap();
            let ids: Vec<u64> = page
                .processes
                .iter()
                .map(|p| (1..=6).find(|t| trace(*t).to_hex() == p.id).unwrap())
                .collect();
            (ids, page.next_cursor)
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while list("state=completed").await.0.len() < 6 {
        assert!(tokio::time::Instant::now() < deadline, "not all completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(list("service=payments").await, (vec![5, 3, 1], None));
    assert_eq!(list("service=payments&attr=payment.method:card").await.0, [3, 1]);
    assert_eq!(list("attr=payment.method=wallet").await.0, [5]);
    assert_eq!(list("operation=reserve").await.0, [6, 4, 2]);
    assert!(list("service=inventory&operation=charge").await.0.is_empty());
    assert!(list("service=payments&state=running").await.0.is_empty());
    assert_eq!(list("service=frontend&start_from=1700000004000000000").await.0, [6, 5, 4]);
    assert_eq!(list("sort=duration").await.0, [6, 5, 4, 3, 2, 1]);
    assert_eq!(list("sort=start&order=asc").await.0, [1, 2, 3, 4, 5, 6]);
    assert_eq!(list("sort=duration&order=asc&service=payments").await.0, [1, 3, 5]);
    // Pages of a sorted search.
    let (first, cursor) = list("sort=duration&order=asc&limit=4").await;
    assert_eq!(first, [1, 2, 3, 4]);
    let cursor = cursor.unwrap();
    assert_eq!(
        list(&format!("sort=duration&order=asc&limit=4&cursor={cursor}")).await,
        (vec![5, 6], None)
    );
    for (query, says) in [
        ("sort=size", "sort \"size\" is not one of start, duration, last_activity"),
        ("order=up", "order \"up\" is not one of desc, asc"),
        ("attr=payment.method", "attr \"payment.method\" must be NAME:VALUE"),
        ("sort=duration&cursor=x", "cursor \"x\" is not one this server returned"),
    ] {
        let (status, body) = server.api_get(&format!("/api/v1/processes?{query}")).await.unwrap();
        assert_eq!(status, 400, "{query}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{query}: {message}");
    }
}

/// Triage: running processes older than a threshold, grouped by where they wait, with owners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_groups_waiting_processes_by_place_with_owners() {
    use threadline_api_types::TriageResponse;
    use threadline_core::span::{Span, SpanKind};
    use threadline_testsuite::spans::span;
    let dir = threadline_testsuite::server::TempDir::new("triage").unwrap();
    let specs = dir.path().join("specs.toml");
    std::fs::write(
        &specs,
        "version = 1\n[[process]]\nname = \"checkout\"\nroot = { service = \"frontend\", operation = \"POST /checkout\" }\n\
         [process.owner]\nteam = \"checkout-team\"\n",
    )
    .unwrap();
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        threadline_testsuite::server::Options {
            args: vec!["--specs".into(), specs.to_str().unwrap().into()],
            ..Default::default()
        },
    )
    .unwrap();
    let now = u64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos(),
    )
    .unwrap();
    let at = |mut s: Span, offset_ms: u64| {
        s.start_time_unix_nano = now - 10_000_000_000 + offset_ms * 1_000_000;
        s.end_time_unix_nano = s.start_time_unix_nano + 1_000_000;
        s
    };
    let mut spans = Vec::new();
    // Three checkouts whose message nobody consumes.
    for t in 1..=3 {
        spans.push(at(span(t, 1, "frontend", "POST /checkout").kind(SpanKind::Server).build(), t));
        spans.push(at(
            span(t, 2, "frontend", "orders publish").parent(1).produces("orders").build(),
            t + 1,
        ));
    }
    // A process whose root never arrives: its first span has a parent nobody sent.
    spans.push(at(span(9, 5, "search", "query").parent(4).kind(SpanKind::Server).build(), 0));
    let response = reqwest::Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .body(threadline_testsuite::otlp::protobuf(&spans))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let triage = loop {
        let triage: TriageResponse = server.api_json("/api/v1/triage?older_than=5s").await.unwrap();
        if triage.processes == 4 {
            break triage;
        }
        assert!(tokio::time::Instant::now() < deadline, "{triage:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(triage.groups.len(), 2, "{triage:#?}");
    // The root-less process started first: its group comes first.
    let first = &triage.groups[0];
    assert_eq!(first.processes, 1);
    assert_eq!(first.oldest, vec![threadline_testsuite::spans::trace(9).to_hex()]);
    let checkouts = &triage.groups[1];
    assert_eq!(checkouts.processes, 3);
    match &checkouts.waiting_for {
        Some(threadline_api_types::WaitingView::Message {
            destination, consumer_group, ..
        }) => {
            assert_eq!((destination.as_str(), consumer_group.as_str()), ("orders", "*"));
        }
        other => panic!("checkouts wait on the orders channel, not {other:?}"),
    }
    assert_eq!(checkouts.types[0].process_type, "checkout");
    assert_eq!(checkouts.types[0].owner.as_ref().unwrap().team.as_deref(), Some("checkout-team"));
    assert_eq!(checkouts.oldest[0], threadline_testsuite::spans::trace(1).to_hex(), "oldest first");

    let recent: TriageResponse = server.api_json("/api/v1/triage?older_than=1h").await.unwrap();
    assert_eq!(recent.processes, 0);
    let (status, body) = server.api_get("/api/v1/triage?older_than=soon").await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("older_than"), "{body}");
}
