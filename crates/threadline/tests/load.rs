//! `threadline load` against the running server, over gRPC and HTTP: it reports each second
//! and a total, what it offered was acknowledged, the processes it sent complete, and bad
//! arguments are usage errors.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::time::Duration;

use serde_json::Value;
use threadline_api_types::ProcessListResponse;
use threadline_testsuite::server::TestServer;

fn load(args: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"))
        .arg("load")
        .args(args)
        .env_remove("THREADLINE_INGEST_TOKEN")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_what_it_offered_and_what_was_acknowledged() {
    let server = TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).unwrap();
    let grpc = server.otlp_grpc_url();
    let http = server.otlp_http_url();
    for (protocol, endpoint, rate) in
        [("grpc", grpc.as_str(), None), ("http", http.as_str(), Some("5000"))]
    {
        let mut args =
            vec!["--endpoint", endpoint, "--protocol", protocol, "--duration", "2s", "--json"];
        if let Some(rate) = rate {
            args.extend(["--rate", rate]);
        }
        let (code, stdout, stderr) = tokio::task::spawn_blocking({
            let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            move || load(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        assert_eq!(code, 0, "{stderr}");
        let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(lines.len() >= 3, "{stdout}");
        let total = lines.last().unwrap();
        assert_eq!(total["kind"], "total");
        assert!(total["acknowledgedSpans"].as_u64().unwrap() > 0, "{total}");
        assert_eq!(total["acknowledgedSpans"], total["offeredSpans"], "{total}");
        assert_eq!(total["refusedSpans"], 0);
        assert!(total["ackLatencyP99Ms"].as_f64().unwrap() > 0.0);
        if rate.is_some() {
            // Paced: about 5000 spans a second, never a burst far above it.
            let per_second = total["offeredSpansPerSec"].as_f64().unwrap();
            assert!((3000.0..7000.0).contains(&per_second), "{total}");
        }
    }
    // What it sent are whole processes: they complete.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let done: ProcessListResponse =
            server.api_json("/api/v1/processes?state=completed&limit=5").await.unwrap();
        if done.processes.len() == 5 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for bad in [
        vec!["--protocol", "udp"],
        vec!["--rate", "-5"],
        vec!["--connections", "0"],
        vec!["--duration", "soon"],
        vec!["--rate", "10", "--flat-out"],
    ] {
        let (code, _, stderr) = tokio::task::spawn_blocking(move || load(&bad)).await.unwrap();
        assert_eq!(code, 2, "{stderr}");
    }
    let (code, _, stderr) = tokio::task::spawn_blocking(|| {
        load(&["--endpoint", "http://127.0.0.1:1", "--duration", "1s"])
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
}
