//! Crash safety: the server is killed with SIGKILL again and again while clients send spans;
//! after each restart every span the server acknowledged is readable, whether it had reached
//! a block or was still only in the WAL.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
#![allow(clippy::print_stderr, reason = "the test reports how much it checked")]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use threadline_api_types::{StatusResponse, TraceResponse};
use threadline_testsuite::generate::{self, Shape};
use threadline_testsuite::server::{Options, TempDir, TestServer};

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
            config: Some(
                "version = 1\n[storage]\nflush_spans = 2000\nflush_interval_secs = 1\n".into(),
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
            let trace: TraceResponse = server
                .api_json(&format!("/api/v1/traces/{trace_id}"))
                .await
                .unwrap_or_else(|e| panic!("acknowledged batch {seed}, trace {t}: {e:#}"));
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
                            Ok(r) => assert!(
                                r.status() == 429 || r.status() == 503,
                                "unexpected status {}",
                                r.status()
                            ),
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
