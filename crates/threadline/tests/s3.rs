//! Span blocks in an S3-compatible store: the server, configured with an `s3://` URL, writes
//! its blocks to a real S3 server on loopback (moto, from the test command's virtualenv) and
//! reads traces back from them, also after a restart with an empty local block directory.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use threadline_api_types::{StatusResponse, TraceResponse};
use threadline_testsuite::generate::{self, Shape};
use threadline_testsuite::server::{Options, TempDir, TestServer};

/// A moto S3 server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let python = threadline_testsuite::python::python().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(python)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Owned from here on: dropping it stops the server on every path.
    let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{}/moto-api/", moto.url)).send().await.is_ok() {
            return moto;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("moto did not start on port {port}");
}

fn config(moto: &Moto) -> String {
    format!(
        "version = 1\n[storage]\nflush_spans = 1000\nflush_interval_secs = 1\n\
         blocks_url = \"s3://threadline-blocks/tenant-a\"\n\
         [storage.blocks_options]\naws_endpoint = \"{}\"\naws_allow_http = \"true\"\n\
         aws_region = \"us-east-1\"\naws_access_key_id = \"test\"\naws_secret_access_key = \"test\"\n",
        moto.url
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_are_written_to_and_read_from_s3() {
    let moto = moto().await;
    let http = reqwest::Client::new();
    let created = http.put(format!("{}/threadline-blocks", moto.url)).send().await.unwrap();
    assert!(created.status().is_success(), "{}", created.status());

    let home = TempDir::new("s3").unwrap();
    let options = Options {
        config: Some(config(&moto)),
        home: Some(home.path().to_owned()),
        ..Options::default()
    };
    let bin: &std::path::Path = env!("CARGO_BIN_EXE_threadline").as_ref();
    let mut server = TestServer::start_with(bin, options.clone()).unwrap();
    let shape = |seed| Shape { traces: 100, services: 4, seed };
    for seed in 1..=3 {
        let response = http
            .post(server.otlp_http_url())
            .header("content-type", "application/x-protobuf")
            .body(generate::otlp_protobuf(shape(seed)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status: StatusResponse = server.api_json("/api/v1/status").await.unwrap();
        if status.store.block_spans == 1200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "blocks never written: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The blocks are objects in the bucket, under the URL's prefix.
    let listing = http
        .get(format!("{}/threadline-blocks?list-type=2&prefix=tenant-a/", moto.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains("<Key>tenant-a/spans/"), "{listing}");
    assert!(listing.contains(".parquet</Key>"), "{listing}");
    assert!(!home.path().join("data/blocks/spans").exists(), "nothing written locally");

    // After a restart the spans come from S3.
    server.signal("TERM").unwrap();
    server.wait_exit(Duration::from_secs(20)).unwrap();
    let server = TestServer::start_with(bin, options).unwrap();
    for seed in 1..=3 {
        let trace_id = hex::encode(generate::trace_id(seed, 42));
        let trace: TraceResponse =
            server.api_json(&format!("/api/v1/traces/{trace_id}")).await.unwrap();
        assert_eq!(trace.spans.len(), 4, "seed {seed}");
    }
    let status: StatusResponse = server.api_json("/api/v1/status").await.unwrap();
    assert_eq!((status.store.block_spans, status.store.head_spans), (1200, 0), "{status:?}");
}

#[test]
fn an_unknown_block_url_scheme_is_refused_by_name() {
    let dir = TempDir::new("s3-bad-url").unwrap();
    let config = dir.path().join("threadline.toml");
    std::fs::write(&config, "version = 1\n[storage]\nblocks_url = \"ftp://example/blocks\"\n")
        .unwrap();
    let data = dir.path().join("data");
    let (code, stderr) = threadline_testsuite::server::run_to_exit(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        &["serve", "--config", config.to_str().unwrap(), "--data-dir", data.to_str().unwrap()],
        &[],
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("storage.blocks_url"), "{stderr}");
    assert!(stderr.contains("file:// or s3://"), "{stderr}");
}
