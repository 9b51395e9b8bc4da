//! Crash safety: the server is killed with SIGKILL again and again while clients send spans;
//! after each restart every span the server acknowledged is readable, whether it had reached
//! a block or was still only in the WAL. In-flight processes resume after a kill and their
//! completion is announced once.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
#![allow(clippy::print_stderr, reason = "the test reports how much it checked")]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use threadline_api_types::{ProcessListResponse, ProcessResponse, StatusResponse, TraceResponse};
use threadline_core::span::{Span, SpanKind};
use threadline_testsuite::generate::{self, Shape};
use threadline_testsuite::otlp;
use threadline_testsuite::server::{Options, TempDir, TestServer};
use threadline_testsuite::spans::{span, trace};
use threadline_testsuite::sse::read_events;

const CLIENTS: u64 = 4;
const ROUNDS: u64 = 4;
const TRACES: usize = 40;
const SERVICES: usize = 4;

fn shape(seed: u64) -> Shape {
    Shape { traces: TRACES, services: SERVICES, seed }
}

fn start(home: &Path) -> TestServer {
    TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            // Small and frequent blocks, so kills land before, during and after block writes.
            // The generated spans start in 2023: retention must not take them. Two engine
            // shards, so recovery hands processes to more than one, whatever the machine.
            config: Some(
                "version = 1\n[storage]\nflush_spans = 2000\nflush_interval_secs = 1\n\
                 retention_hours = 1000000\n[engine]\nshards = 2\n"
                    .into(),
            ),
            home: Some(home.to_owned()),
            ..Options::default()
        },
    )
    .unwrap()
}

/// Every batch in `acked`: its first and last traces read back whole.
async fn check_acknowledged(server: &TestServer, acked: &[u64]) {
    let started = std::time::Instant::now();
    for &seed in acked {
        for t in [0, TRACES - 1] {
            let trace_id = hex::encode(generate::trace_id(seed, t));
            let trace: TraceResponse =
                server.api_json(&format!("/api/v1/traces/{trace_id}")).await.unwrap_or_else(|e| {
                    // What the server said about its storage explains a loss.
                    let said: Vec<String> = server
                        .log_lines()
                        .into_iter()
                        .filter(|l| {
                            l.contains("WARN") || l.contains("ERROR") || l.contains("storage")
                        })
                        .collect();
                    panic!(
                        "acknowledged batch {seed}, trace {t}: {e:#}\nserver log:\n{}",
                        said.join("\n")
                    )
                });
            assert_eq!(trace.spans.len(), SERVICES, "batch {seed} trace {t}");
        }
    }
    eprintln!("checked {} acknowledged batches in {:?}", acked.len(), started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_span_survives_repeated_sigkill() {
    let home = TempDir::new("crash").unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut replayed_rounds = 0;
    let mut checked = 0;
    for round in 0..ROUNDS {
        let mut server = start(home.path());
        let opened = server.wait_for_log("storage opened", Duration::from_secs(5)).unwrap();
        let opened: serde_json::Value = serde_json::from_str(&opened).unwrap();
        if opened["replayed_records"].as_u64().unwrap_or(0) > 0 {
            replayed_rounds += 1;
        }
        assert_eq!(
            opened["wal_damage"].as_u64(),
            Some(0),
            "a killed process leaves no torn record: {opened}"
        );
        // What the last round's kill interrupted is checked at once; everything at the end.
        let last_round = acked.lock().unwrap()[checked..].to_vec();
        check_acknowledged(&server, &last_round).await;
        checked += last_round.len();

        let url = server.otlp_http_url();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (url, acked) = (url.clone(), Arc::clone(&acked));
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    for i in 0.. {
                        let seed = 1 + round * 100_000 + client * 10_000 + i;
                        let body = generate::otlp_protobuf(shape(seed));
                        let response = http
                            .post(&url)
                            .header("content-type", "application/x-protobuf")
                            .body(body)
                            .send()
                            .await;
                        match response {
                            Ok(r) if r.status() == 200 => acked.lock().unwrap().push(seed),
                            Ok(r) if r.status() == 429 || r.status() == 503 => {}
                            Ok(r) => {
                                let status = r.status();
                                let body = r.text().await.unwrap_or_default();
                                panic!("unexpected status {status}: {body}");
                            }
                            // The server is gone: this client's round is over.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        // Kill at a different moment each round.
        tokio::time::sleep(Duration::from_millis(700 + 450 * round)).await;
        server.signal("KILL").unwrap();
        server.wait_exit(Duration::from_secs(10)).unwrap();
        for client in clients {
            client.await.unwrap();
        }
    }

    let server = start(home.path());
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "only {} batches were acknowledged", acked.len());
    check_acknowledged(&server, &acked).await;
    let status: StatusResponse = server.api_json("/api/v1/status").await.unwrap();
    let stored = status.store.head_spans + status.store.block_spans;
    // Batches written but whose acknowledgement the kill cut off may be stored too.
    assert!(stored >= (acked.len() * TRACES * SERVICES) as u64, "{stored} stored, {status:?}");
    assert!(status.store.blocks > 0, "blocks were written: {status:?}");
    assert!(replayed_rounds > 0, "some restart replayed the WAL");
}

/// Producer halves of `n` checkouts (root and publish to `orders`), numbered from `first`.
fn producers(first: u64, n: u64) -> Vec<Span> {
    (first..first + n)
        .flat_map(|t| {
            [
                span(t, 1, "frontend", "POST /checkout")
                    .kind(SpanKind::Server)
                    .at(0.0, 0.2)
                    .build(),
                span(t, 2, "frontend", "orders publish")
                    .parent(1)
                    .produces("orders")
                    .at(0.1, 0.11)
                    .build(),
            ]
        })
        .collect()
}

/// The consumer halves: a new trace per checkout, linked to its publish.
fn consumers(first: u64, n: u64) -> Vec<Span> {
    (first..first + n)
        .map(|t| {
            span(t + 1_000_000, 1, "billing", "orders process")
                .consumes("orders", "billing")
                .link(t, 2)
                .at(0.3, 0.4)
                .build()
        })
        .collect()
}

async fn post(server: &TestServer, spans: &[Span]) {
    let response = reqwest::Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .body(otlp::protobuf(spans))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn running(server: &TestServer) -> usize {
    let list: ProcessListResponse =
        server.api_json("/api/v1/processes?state=running&limit=1000").await.unwrap();
    list.processes.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_processes_resume_after_sigkill_and_complete_once() {
    const N: u64 = 20;
    let home = TempDir::new("resume").unwrap();
    let mut server = start(home.path());
    // Half the processes reach a block before the kill, half are only in the WAL.
    post(&server, &producers(1, N / 2)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    post(&server, &producers(1 + N / 2, N / 2)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (running(&server).await as u64) < N {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the processes never all showed as running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status: StatusResponse = server.api_json("/api/v1/status").await.unwrap();
    assert!(status.store.blocks > 0, "{status:?}");
    server.signal("KILL").unwrap();
    server.wait_exit(Duration::from_secs(10)).unwrap();

    let server = start(home.path());
    server.wait_for_log("running processes resumed", Duration::from_secs(5)).unwrap();
    for t in 1..=N {
        let id = trace(t).to_hex();
        let process: ProcessResponse =
            server.api_json(&format!("/api/v1/processes/{id}")).await.unwrap();
        assert_eq!(process.process.state, "running", "process {t}");
        assert_eq!(process.process.spans, 2, "resumed with its spans, once: process {t}");
        assert!(!process.process.waiting_for.is_empty(), "waits for its consumer: process {t}");
    }
    post(&server, &consumers(1, N)).await;

    // The whole durable log, from its start: every process started and completed once.
    let stream = reqwest::get(format!("{}/api/v1/events?after=0", server.api_url())).await.unwrap();
    let ids: Vec<String> = (1..=N).map(|t| trace(t).to_hex()).collect();
    let events = read_events(stream, Duration::from_secs(20), |events| {
        ids.iter().all(|id| events.iter().any(|e| e.kind == "completed" && e.process_id == *id))
    })
    .await;
    // Anything announced twice would follow close behind.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stream = reqwest::get(format!("{}/api/v1/events?after=0", server.api_url())).await.unwrap();
    let all =
        read_events(stream, Duration::from_secs(2), |seen| seen.len() >= events.len() + 10).await;
    for id in &ids {
        let of = |kind: &str| all.iter().filter(|e| e.process_id == *id && e.kind == kind).count();
        assert_eq!((of("started"), of("completed")), (1, 1), "process {id}: {all:#?}");
    }
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "log order: {seqs:?}");
}
