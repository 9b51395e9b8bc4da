//! The Jaeger query API as Grafana's Jaeger data source and Jaeger UI use it, on spans the
//! OpenTelemetry Python SDK sent: services → operations → search (by service, operation,
//! tags, duration) → trace by id, checking the fields those clients read; and the `/api/v3`
//! variants in OTLP JSON.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::time::Duration;

use serde_json::Value;
use threadline_testsuite::server::TestServer;

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let (status, body) = server.api_get(path).await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jaeger_client_flow_reads_what_it_expects() {
    let server = TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).unwrap();
    let endpoint = server.otlp_http_url();
    let recorded = tokio::task::spawn_blocking(move || {
        threadline_testsuite::python::export_flows("http", &endpoint, 2).unwrap()
    })
    .await
    .unwrap();
    let root = recorded.iter().find(|s| s["name"] == "POST /checkout").unwrap().clone();
    let root_trace = root["traceId"].as_str().unwrap().to_owned();
    let order = root["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "order.id")
        .unwrap()["value"]["stringValue"]
        .as_str()
        .unwrap()
        .to_owned();

    // Services, then a service's operations (the engine's aggregates follow ingest closely).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let operations = loop {
        let (status, ops) = get(&server, "/api/services/frontend/operations").await;
        assert_eq!(status, 200);
        if ops["data"].as_array().is_some_and(|d| d.len() >= 2) {
            break ops;
        }
        assert!(tokio::time::Instant::now() < deadline, "{ops}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (_, services) = get(&server, "/api/services").await;
    assert_eq!(
        services["data"],
        serde_json::json!(["checkout", "frontend", "fulfilment", "payments"])
    );
    assert_eq!(services["errors"], Value::Null);
    let names: Vec<&str> =
        operations["data"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(names.contains(&"POST /checkout") && names.contains(&"POST checkout/api"), "{names:?}");
    let (_, ops) = get(&server, "/api/operations?service=frontend").await;
    assert!(ops["data"].as_array().unwrap().iter().any(|o| o["name"] == "POST /checkout"));

    // Search, as Grafana sends it: service, operation, tags as JSON, time range in µs.
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
    let tags = format!("%7B%22order.id%22%3A%22{order}%22%7D");
    let path = format!(
        "/api/traces?service=frontend&operation=POST%20%2Fcheckout&tags={tags}&start={}&end={}&limit=20&minDuration=1us",
        now - 3_600_000_000,
        now + 60_000_000
    );
    let (status, found) = get(&server, &path).await;
    assert_eq!(status, 200, "{found}");
    let traces = found["data"].as_array().unwrap();
    assert_eq!(traces.len(), 1, "{found}");
    assert_eq!(traces[0]["traceID"], root_trace.as_str());
    let (_, all) = get(&server, "/api/traces?service=frontend&lookback=1h").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let (_, none) = get(&server, "/api/traces?service=frontend&minDuration=1h").await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);

    // The trace, with the fields the clients read.
    let (status, trace) = get(&server, &format!("/api/traces/{root_trace}")).await;
    assert_eq!(status, 200);
    let trace = &trace["data"][0];
    let spans = trace["spans"].as_array().unwrap();
    let processes = trace["processes"].as_object().unwrap();
    for span in spans {
        for field in [
            "traceID",
            "spanID",
            "operationName",
            "references",
            "startTime",
            "duration",
            "tags",
            "logs",
            "processID",
        ] {
            assert!(!span[field].is_null(), "span without {field}: {span}");
        }
        let process = &processes[span["processID"].as_str().unwrap()];
        assert!(process["serviceName"].is_string(), "{process}");
    }
    let root_span = spans.iter().find(|s| s["operationName"] == "POST /checkout").unwrap();
    let tag = |span: &Value, key: &str| {
        span["tags"].as_array().unwrap().iter().find(|t| t["key"] == key).cloned()
    };
    assert_eq!(tag(root_span, "span.kind").unwrap()["value"], "server");
    assert_eq!(
        tag(root_span, "http.response.status_code").unwrap(),
        serde_json::json!({"key": "http.response.status_code", "type": "int64", "value": 200})
    );
    assert_eq!(tag(root_span, "cart.total").unwrap()["type"], "float64");
    assert_eq!(tag(root_span, "user.vip").unwrap()["type"], "bool");
    assert_eq!(
        root_span["logs"][0]["fields"][0],
        serde_json::json!({"key": "event", "type": "string", "value": "cart.validated"})
    );
    assert_eq!(root_span["references"], serde_json::json!([]));
    let root_process = &processes[root_span["processID"].as_str().unwrap()];
    assert_eq!(root_process["serviceName"], "frontend");
    assert!(
        root_process["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "service.version" && t["value"] == "2.1.0")
    );
    let client = spans.iter().find(|s| s["operationName"] == "POST checkout/api").unwrap();
    assert_eq!(client["references"][0]["refType"], "CHILD_OF");
    assert_eq!(client["references"][0]["spanID"], root_span["spanID"]);
    assert!(client["startTime"].as_u64().unwrap() >= root_span["startTime"].as_u64().unwrap());

    // The consumer's own trace links to the producer: a FOLLOWS_FROM reference.
    let consumer = recorded
        .iter()
        .find(|s| s["kind"] == "consumer" || !s["links"].as_array().unwrap().is_empty())
        .unwrap();
    let (_, consumer_trace) =
        get(&server, &format!("/api/traces/{}", consumer["traceId"].as_str().unwrap())).await;
    let linked = consumer_trace["data"][0]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["references"].as_array().unwrap().clone())
        .find(|r| r["refType"] == "FOLLOWS_FROM")
        .unwrap();
    assert_eq!(linked["traceID"], root_trace.as_str());

    // The v3 API: OTLP JSON.
    let (_, v3_services) = get(&server, "/api/v3/services").await;
    assert_eq!(v3_services["services"], services["data"]);
    let (_, v3_ops) = get(&server, "/api/v3/operations?service=frontend").await;
    assert!(v3_ops["operations"].as_array().unwrap().iter().any(|o| o["name"] == "POST /checkout"));
    let (status, v3_trace) = get(&server, &format!("/api/v3/traces/{root_trace}")).await;
    assert_eq!(status, 200);
    let otlp_spans: Vec<&Value> = v3_trace["result"]["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .flat_map(|ss| ss["spans"].as_array().unwrap())
        .collect();
    assert_eq!(otlp_spans.len(), spans.len());
    let otlp_root = otlp_spans.iter().find(|s| s["name"] == "POST /checkout").unwrap();
    assert_eq!(otlp_root["kind"], 2);
    assert_eq!(otlp_root["parentSpanId"], "");
    let status_code = otlp_root["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "http.response.status_code")
        .unwrap();
    assert_eq!(status_code["value"], serde_json::json!({"intValue": "200"}));
    let (status, v3_found) =
        get(&server, "/api/v3/traces?query.service_name=frontend&query.start_time_min=1970-01-01T00:00:00Z&query.num_traces=10").await;
    assert_eq!(status, 200, "{v3_found}");
    let mut trace_ids: Vec<&str> = v3_found["result"]["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
        .flat_map(|ss| ss["spans"].as_array().unwrap())
        .map(|s| s["traceId"].as_str().unwrap())
        .collect();
    trace_ids.sort_unstable();
    trace_ids.dedup();
    assert_eq!(trace_ids.len(), 2);
    let (status, v3_bad) =
        get(&server, "/api/v3/traces?query.service_name=frontend&query.start_time_min=yesterday")
            .await;
    assert_eq!(status, 400);
    assert!(
        v3_bad["error"]["message"].as_str().unwrap().contains("query.start_time_min"),
        "{v3_bad}"
    );

    // Dependencies and errors in Jaeger's envelope.
    let (_, deps) = get(&server, "/api/dependencies?endTs=0&lookback=3600000").await;
    assert!(
        deps["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["parent"] == "frontend" && d["child"] == "checkout"),
        "{deps}"
    );
    let (status, missing) = get(&server, "/api/traces/0102030405060708090a0b0c0d0e0f10").await;
    assert_eq!(status, 404);
    assert_eq!(missing["errors"][0]["code"], 404);
    let (status, bad) = get(&server, "/api/traces?service=frontend&minDuration=soon").await;
    assert_eq!(status, 400);
    assert!(bad["errors"][0]["msg"].as_str().unwrap().contains("minDuration"), "{bad}");
    let (status, _) = get(&server, "/api/traces").await;
    assert_eq!(status, 400, "service is required");
}
