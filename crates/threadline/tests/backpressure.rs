//! Flooding the receivers past the queue's capacity: clients are refused with 429 +
//! `Retry-After` (HTTP) and `UNAVAILABLE` + `RetryInfo` (gRPC), the queue never holds more
//! than its capacity, memory stays bounded, and every acknowledged span is readable after.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prost::Message as _;
use threadline_api_types::{StatusResponse, TraceResponse};
use threadline_proto::google::rpc;
use threadline_proto::opentelemetry::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use threadline_testsuite::generate::{self, Shape};
use threadline_testsuite::server::{Options, TestServer};

// Room for one batch and a half: concurrent batches overrun it.
const CAPACITY: u64 = 1500;
const HTTP_CLIENTS: u64 = 24;
const GRPC_CLIENTS: u64 = 8;
const BATCHES_PER_CLIENT: u64 = 4;

fn shape(seed: u64) -> Shape {
    Shape { traces: 250, services: 4, seed }
}

#[derive(Debug, Default)]
struct Outcome {
    /// Seeds of the batches the server acknowledged.
    acked: Vec<u64>,
    refused: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_refused_with_retry_hints_and_every_acknowledged_span_is_kept() {
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            config: Some(format!(
                "version = 1\n[ingest]\nqueue_capacity_spans = {CAPACITY}\nretry_after_secs = 2\n"
            )),
            ..Default::default()
        },
    )
    .expect("server starts");

    // Watch the queue while the flood runs.
    let flooding = Arc::new(AtomicBool::new(true));
    let max_depth = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (flooding, max_depth, url) = (
            Arc::clone(&flooding),
            Arc::clone(&max_depth),
            format!("{}/api/v1/status", server.api_url()),
        );
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut samples = 0u64;
            while flooding.load(Ordering::Relaxed) {
                let status: StatusResponse =
                    client.get(&url).send().await.unwrap().json().await.unwrap();
                assert_eq!(status.ingest.queue_capacity_spans, CAPACITY);
                max_depth.fetch_max(status.ingest.queue_depth_spans, Ordering::Relaxed);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples
        })
    };

    let mut tasks = Vec::new();
    for client in 0..HTTP_CLIENTS {
        let url = server.otlp_http_url();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut outcome = Outcome::default();
            for batch in 0..BATCHES_PER_CLIENT {
                let seed = 1 + client * BATCHES_PER_CLIENT + batch;
                let response = http
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(generate::otlp_protobuf(shape(seed)))
                    .send()
                    .await
                    .unwrap();
                match response.status().as_u16() {
                    200 => outcome.acked.push(seed),
                    429 => {
                        assert_eq!(response.headers()["retry-after"], "2");
                        let status = rpc::Status::decode(response.bytes().await.unwrap()).unwrap();
                        assert_eq!(status.message, "ingest queue is full: retry after 2s");
                        assert_eq!(status.details[0].type_url, rpc::RETRY_INFO_TYPE_URL);
                        outcome.refused += 1;
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
            outcome
        }));
    }
    for client in 0..GRPC_CLIENTS {
        let url = server.otlp_grpc_url();
        tasks.push(tokio::spawn(async move {
            let channel =
                tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
            let mut grpc = TraceServiceClient::new(channel);
            let mut outcome = Outcome::default();
            for batch in 0..BATCHES_PER_CLIENT {
                let seed = 10_000 + client * BATCHES_PER_CLIENT + batch;
                match grpc.export(generate::otlp_request(shape(seed))).await {
                    Ok(_) => outcome.acked.push(seed),
                    Err(status) => {
                        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
                        let details = rpc::Status::decode(status.details()).unwrap();
                        assert_eq!(details.details[0].type_url, rpc::RETRY_INFO_TYPE_URL);
                        let retry =
                            rpc::RetryInfo::decode(details.details[0].value.as_slice()).unwrap();
                        assert_eq!(retry.retry_delay.unwrap().seconds, 2);
                        outcome.refused += 1;
                    }
                }
            }
            outcome
        }));
    }
    let mut acked = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let outcome = task.await.unwrap();
        acked.extend(outcome.acked);
        refused += outcome.refused;
    }
    flooding.store(false, Ordering::Relaxed);
    let samples = watcher.await.unwrap();

    let offered = (HTTP_CLIENTS + GRPC_CLIENTS) * BATCHES_PER_CLIENT;
    let peak_rss_mib = server.peak_rss_kib().unwrap() / 1024;
    println!(
        "offered {offered} batches of 1000 spans: {} acknowledged, {refused} refused; \
         max queue depth {} of {CAPACITY} over {samples} samples; peak RSS {peak_rss_mib} MiB",
        acked.len(),
        max_depth.load(Ordering::Relaxed)
    );
    assert!(refused > 0, "the flood must overrun the queue");
    assert!(!acked.is_empty(), "some batches must get through");
    assert!(max_depth.load(Ordering::Relaxed) <= CAPACITY);
    assert!(peak_rss_mib < 512, "peak RSS {peak_rss_mib} MiB");

    // Exactly the acknowledged spans were stored: nothing refused slipped in, nothing was lost.
    let status: StatusResponse = server.api_json("/api/v1/status").await.unwrap();
    assert_eq!(status.store.head_spans + status.store.block_spans, acked.len() as u64 * 1000);
    assert_eq!(status.ingest.accepted_spans, acked.len() as u64 * 1000);
    assert_eq!(status.ingest.refused_requests, refused);
    for seed in acked {
        for t in [0, 124, 249] {
            let trace_id = hex::encode(generate::trace_id(seed, t));
            let trace: TraceResponse =
                server.api_json(&format!("/api/v1/traces/{trace_id}")).await.unwrap();
            assert_eq!(trace.spans.len(), 4, "batch {seed} trace {t}");
        }
    }
}
