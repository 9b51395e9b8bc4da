//! `threadline demo` as a user runs it: the server comes up with the shop's specs, the shop's
//! processes of every type are live through the API within seconds, and Ctrl-C stops both
//! cleanly.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::time::Duration;

use threadline_api_types::{ProcessListResponse, ProcessTypesResponse};
use threadline_testsuite::server::{Options, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_live_processes_of_every_type() {
    let mut server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            command: Some("demo".into()),
            args: vec!["--seed".into(), "3".into()],
            ..Options::default()
        },
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let types = ["checkout", "refund", "catalog-import", "inventory-sync"];
    loop {
        let overview: ProcessTypesResponse =
            server.api_json("/api/v1/process-types").await.unwrap();
        let live: Vec<&str> = overview
            .process_types
            .iter()
            .filter(|t| t.started > 0)
            .map(|t| t.name.as_str())
            .collect();
        if types.iter().all(|t| live.contains(t)) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "types seen: {live:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Found by type, with the shop's owners and business keys. The listing reads the process
    // table, which the writer fills a moment after the engine counts a process.
    for process_type in types {
        let first = loop {
            let list: ProcessListResponse = server
                .api_json(&format!("/api/v1/processes?type={process_type}&limit=5"))
                .await
                .unwrap();
            if let Some(first) = list.processes.into_iter().next() {
                break first;
            }
            assert!(tokio::time::Instant::now() < deadline, "no {process_type} listed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(first.owner.is_some(), "{process_type}: {first:?}");
        assert!(!first.keys.is_empty(), "{process_type}: {first:?}");
    }
    // The catalog import runs for minutes: it is in flight.
    let running: ProcessListResponse =
        server.api_json("/api/v1/processes?type=catalog-import&state=running").await.unwrap();
    assert!(!running.processes.is_empty());
    server.signal("INT").unwrap();
    let status = server.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", server.log_lines());
    assert!(server.log_lines().iter().any(|l| l.contains("the shop stopped")));
}
