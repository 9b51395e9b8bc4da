//! The OpenAPI document at `/api/v1/openapi.json` is valid OpenAPI 3.1 and true: every
//! documented path answers (no "no route"), and real responses, from spans the Python SDK
//! sent, match their documented schemas (checked by independent validators).

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::io::Write as _;
use std::time::Duration;

use serde_json::{Value, json};
use threadline_api_types::ProcessListResponse;
use threadline_testsuite::server::{TempDir, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_valid_and_matches_the_responses() {
    let server = TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).unwrap();
    let endpoint = server.otlp_http_url();
    tokio::task::spawn_blocking(move || {
        threadline_testsuite::python::export_flows("http", &endpoint, 2).unwrap()
    })
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let process = loop {
        let list: ProcessListResponse =
            server.api_json("/api/v1/processes?state=completed").await.unwrap();
        if list.processes.len() >= 2 {
            break list.processes[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let (status, doc) = server.api_get("/api/v1/openapi.json").await.unwrap();
    assert_eq!(status, 200);
    let doc_json: Value = serde_json::from_str(&doc).unwrap();
    // Every documented path answers, with its path parameters filled in.
    for (path, methods) in doc_json["paths"].as_object().unwrap() {
        let concrete =
            path.replace("{trace_id}", &process.trace_ids[0]).replace("{id}", &process.id);
        if concrete == "/api/v1/events" {
            continue; // a stream: checked elsewhere
        }
        if methods.get("get").is_some() {
            let (status, body) = server.api_get(&concrete).await.unwrap();
            assert_eq!(status, 200, "{concrete}: {body}");
        }
    }
    let sql = |query: &'static str| {
        reqwest::Client::new()
            .post(format!("{}/api/v1/sql", server.api_url()))
            .json(&json!({ "query": query }))
            .send()
    };

    let mut checks = Vec::new();
    for (schema, path) in [
        ("Status", "/api/v1/status".to_owned()),
        ("Services", "/api/v1/services".to_owned()),
        ("Trace", format!("/api/v1/traces/{}", process.trace_ids[0])),
        ("ProcessList", "/api/v1/processes?limit=5".to_owned()),
        ("ProcessList", "/api/v1/processes?key=order.id:order-http-0".to_owned()),
        ("ProcessDetail", format!("/api/v1/processes/{}", process.id)),
        ("ProcessTypes", "/api/v1/process-types".to_owned()),
        ("Graph", "/api/v1/graph".to_owned()),
        ("Triage", "/api/v1/triage?older_than=0s".to_owned()),
        ("Alerts", "/api/v1/alerts".to_owned()),
        ("Specs", "/api/v1/specs".to_owned()),
        ("Error", "/api/v1/processes?limit=0".to_owned()),
    ] {
        let (_, body) = server.api_get(&path).await.unwrap();
        checks.push(
            json!({ "schema": schema, "body": serde_json::from_str::<Value>(&body).unwrap() }),
        );
    }
    for (schema, query) in [
        (
            "SqlResult",
            "SELECT s.service, s.start_time, s.attributes, p.keys, p.trace_ids, p.waiting \
             FROM spans s JOIN processes p ON s.trace_id = p.trace_ids[1] LIMIT 3",
        ),
        ("Error", "SELECT nope"),
    ] {
        let body: Value = sql(query).await.unwrap().json().await.unwrap();
        checks.push(json!({ "schema": schema, "body": body }));
    }
    let dir = TempDir::new("openapi").unwrap();
    let doc_path = dir.path().join("openapi.json");
    std::fs::write(&doc_path, &doc).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/interop/check_openapi.py");
    let mut child = std::process::Command::new(threadline_testsuite::python::python().unwrap())
        .arg(script)
        .arg(&doc_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for check in &checks {
            writeln!(stdin, "{check}").unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("14 responses match"),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
