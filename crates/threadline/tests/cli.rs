//! The client commands against a running server: `expect` met, not met for each reason
//! (missing step, wrong order, ended in another state, timeout with where it waits, never
//! seen), usage and connection errors (exit 2); `process show` and `search`, as tables and
//! JSON.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::time::Duration;

use threadline_api_types::ProcessListResponse;
use threadline_core::span::{Span, SpanKind};
use threadline_testsuite::otlp;
use threadline_testsuite::server::{Options, TempDir, TestServer};
use threadline_testsuite::spans::span;

const SPECS: &str = "version = 1\n[[process]]\nname = \"checkout\"\n\
                     root = { service = \"frontend\", operation = \"POST /checkout\" }\n";

fn checkout(t: u64, order: &str, consumed: bool, failed: bool) -> Vec<Span> {
    let mut spans = vec![
        span(t, 1, "frontend", "POST /checkout")
            .kind(SpanKind::Server)
            .attr("order.id", order)
            .error_if(failed, "card declined")
            .at(0.0, 0.4)
            .build(),
        span(t, 2, "frontend", "orders publish").parent(1).produces("orders").at(0.1, 0.11).build(),
    ];
    if consumed {
        spans.push(
            span(t + 1000, 3, "billing", "orders process")
                .consumes("orders", "billing")
                .link(t, 2)
                .at(0.2, 0.3)
                .build(),
        );
    }
    spans
}

/// Runs the binary with `args`; returns exit code, stdout, stderr.
async fn run(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"))
            .args(&args)
            .env_remove("THREADLINE_SERVER")
            .env_remove("THREADLINE_API_TOKEN")
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn args(server: &TestServer, rest: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
    out.push("--server".into());
    out.push(server.api_url());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_show_and_search_against_a_running_server() {
    let dir = TempDir::new("cli").unwrap();
    let specs = dir.path().join("specs.toml");
    std::fs::write(&specs, SPECS).unwrap();
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            args: vec!["--specs".into(), specs.to_str().unwrap().into()],
            ..Options::default()
        },
    )
    .unwrap();
    let mut spans = checkout(1, "o-1", true, false);
    spans.extend(checkout(2, "o-2", false, false));
    spans.extend(checkout(3, "o-3", true, true));
    let response = reqwest::Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .body(otlp::protobuf(&spans))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Met: state and steps in order (service:name or name).
    let (code, stdout, stderr) = run(args(
        &server,
        &[
            "expect",
            "--type",
            "checkout",
            "--key",
            "order.id=o-1",
            "--state",
            "completed",
            "--steps",
            "POST /checkout,orders publish,billing:orders process",
            "--within",
            "10s",
        ],
    ))
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.starts_with("met: "), "{stdout}");
    assert!(stdout.contains("completed"), "{stdout}");

    let not_met = |rest: &'static [&'static str]| {
        let args = args(&server, rest);
        async move {
            let (code, stdout, stderr) = run(args).await;
            assert_eq!(code, 1, "{stdout}{stderr}");
            stderr
        }
    };
    let stderr = not_met(&[
        "expect",
        "--type",
        "checkout",
        "--key",
        "order.id=o-1",
        "--steps",
        "ship parcel",
        "--within",
        "5s",
    ])
    .await;
    assert!(stderr.contains("missing step ship parcel"), "{stderr}");
    let stderr = not_met(&[
        "expect",
        "--type",
        "checkout",
        "--key",
        "order.id=o-1",
        "--steps",
        "orders process,orders publish",
        "--within",
        "5s",
    ])
    .await;
    assert!(
        stderr.contains("wrong order: orders publish happened before orders process"),
        "{stderr}"
    );
    let stderr =
        not_met(&["expect", "--type", "checkout", "--key", "order.id=o-3", "--within", "5s"]).await;
    assert!(stderr.contains("ended failed (expected completed)"), "{stderr}");
    assert!(stderr.contains("card declined"), "{stderr}");
    let stderr =
        not_met(&["expect", "--type", "checkout", "--key", "order.id=o-2", "--within", "1s"]).await;
    assert!(stderr.contains("timeout after 1s"), "{stderr}");
    assert!(stderr.contains("is running, waiting for kafka orders"), "{stderr}");
    let stderr =
        not_met(&["expect", "--type", "checkout", "--key", "order.id=o-404", "--within", "300ms"])
            .await;
    assert!(
        stderr.contains("no process of type checkout with order.id=o-404 was seen"),
        "{stderr}"
    );

    // Usage and connection errors: exit 2.
    let (code, _, stderr) =
        run(args(&server, &["expect", "--type", "checkout", "--state", "done"])).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--state \"done\""), "{stderr}");
    let (code, _, stderr) = run(vec![
        "expect".into(),
        "--server".into(),
        "http://127.0.0.1:1".into(),
        "--type".into(),
        "x".into(),
    ])
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
    let (code, _, stderr) =
        run(args(&server, &["expect", "--type", "checkout", "--within", "soon"])).await;
    assert_eq!(code, 2, "{stderr}");

    // process show, by key, as a table and as JSON.
    let (code, stdout, stderr) =
        run(args(&server, &["process", "show", "--key", "order.id=o-2"])).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("running"), "{stdout}");
    assert!(stdout.contains("waiting for: kafka orders"), "{stdout}");
    assert!(stdout.contains("frontend         orders publish"), "{stdout}");
    let (code, stdout, _) = run(args(
        &server,
        &["process", "show", "--json", &threadline_testsuite::spans::trace(1).to_hex()],
    ))
    .await;
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["process"]["state"], "completed");
    let (code, _, stderr) =
        run(args(&server, &["process", "show", "0102030405060708090a0b0c0d0e0f10"])).await;
    assert_eq!(code, 1, "{stderr}");

    // search, as JSON: every checkout with its state.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let list: ProcessListResponse =
            server.api_json("/api/v1/processes?type=checkout").await.unwrap();
        if list.processes.len() == 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, stdout, _) = run(args(&server, &["search", "--type", "checkout", "--json"])).await;
    assert_eq!(code, 0);
    let found: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let mut states: Vec<&str> = found.iter().map(|p| p["state"].as_str().unwrap()).collect();
    states.sort_unstable();
    assert_eq!(states, vec!["completed", "failed", "running"]);
    let (code, stdout, _) = run(args(&server, &["search", "--key", "order.id=o-3"])).await;
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), 2, "header and one row: {stdout}");
    assert!(stdout.contains("failed"), "{stdout}");
    // By a span's service, oldest first; a bad sort is a usage error.
    let (code, stdout, _) =
        run(args(&server, &["search", "--service", "billing", "--asc", "--json"])).await;
    assert_eq!(code, 0);
    let found: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let orders: Vec<&str> = found.iter().map(|p| p["keys"]["order.id"].as_str().unwrap()).collect();
    assert_eq!(orders, ["o-1", "o-3"]);
    let (code, _, stderr) = run(args(&server, &["search", "--sort", "size"])).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("sort \"size\" is not one of"), "{stderr}");
}
