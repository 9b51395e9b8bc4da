//! `threadline serve` as an operator meets it: probes, settings precedence (flag > env > file),
//! clear start-up errors, and a clean shutdown on SIGTERM / SIGINT that drains the queue.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use threadline_testsuite::generate::{self, Shape};
use threadline_testsuite::server::{LOOPBACK_ANY_PORT, TempDir, TestServer, run_to_exit};

fn bin() -> &'static Path {
    env!("CARGO_BIN_EXE_threadline").as_ref()
}

#[tokio::test]
async fn probes_answer() {
    let server = TestServer::start(bin()).unwrap();
    for (path, body) in [("/healthz", r#"{"status":"ok"}"#), ("/readyz", r#"{"status":"ready"}"#)] {
        assert_eq!(server.api_get(path).await.unwrap(), (200, body.to_owned()));
    }
    assert_eq!(
        server.api_get("/api/v1/nothing").await.unwrap(),
        (
            404,
            r#"{"error":{"code":"not_found","message":"no route for /api/v1/nothing"}}"#.to_owned()
        )
    );
}

/// Sends batches until told to stop, counting the spans the server acknowledged.
fn spawn_sender(
    url: String,
    seed_base: u64,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut seed = seed_base;
        while !stop.load(Ordering::Relaxed) {
            let shape = Shape { traces: 50, services: 2, seed };
            let sent = client
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(generate::otlp_protobuf(shape))
                .send()
                .await;
            match sent {
                Ok(response) if response.status().as_u16() == 200 => {
                    acked.fetch_add(generate::span_count(shape) as u64, Ordering::Relaxed);
                }
                // Refused while shutting down, or the listener is gone: not acknowledged.
                Ok(_) | Err(_) => {}
            }
            seed += 1;
        }
    })
}

async fn shutdown_under_load(signal: &str) {
    let mut server = TestServer::start(bin()).unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..4)
        .map(|i| {
            spawn_sender(
                server.otlp_http_url(),
                1 + i * 100_000,
                Arc::clone(&acked),
                Arc::clone(&stop),
            )
        })
        .collect();
    while acked.load(Ordering::Relaxed) < 2_000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal(signal).unwrap();
    let status = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(30))).unwrap();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    assert!(status.success(), "exit status {status:?}");

    // The final log line accounts for exactly the spans clients saw acknowledged.
    let line = server.wait_for_log("shutdown complete", Duration::from_secs(1)).unwrap();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["accepted_spans"].as_u64(), Some(acked.load(Ordering::Relaxed)), "{line}");
    assert!(server.log_lines().iter().any(|l| l.contains(&format!(r#""signal":"SIG{signal}""#))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_exits_cleanly() {
    shutdown_under_load("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_under_load_drains_and_exits_cleanly() {
    shutdown_under_load("INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_event_stream_does_not_hold_up_shutdown() {
    let mut server = TestServer::start(bin()).unwrap();
    // A browser tab following the event stream, left open.
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/events", server.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let mut body = response.bytes_stream();
    server.signal("INT").unwrap();
    // The stream is ended by the server, not waited out (it would never end on its own).
    let status = server.wait_exit(Duration::from_secs(20)).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", server.log_lines());
    // The client sees the stream end.
    use futures_util::StreamExt as _;
    while let Some(chunk) = body.next().await {
        if chunk.is_err() {
            break;
        }
    }
}

#[test]
fn flags_override_env_which_overrides_the_config_file() {
    let dir = TempDir::new("precedence").unwrap();
    let config = dir.path().join("threadline.toml");
    let from_file = dir.path().join("from-file");
    let from_env = dir.path().join("from-env");
    let from_flag = dir.path().join("from-flag");
    std::fs::write(
        &config,
        format!("version = 1\ndata_dir = {:?}\n", from_file.display().to_string()),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // Started directly rather than through the harness, which always passes --data-dir.
    let file_only = run_and_read_ready(&["--config", config], &[]);
    assert_eq!(file_only, from_file.display().to_string());
    let env_over_file = run_and_read_ready(
        &["--config", config],
        &[("THREADLINE_DATA_DIR", from_env.to_str().unwrap())],
    );
    assert_eq!(env_over_file, from_env.display().to_string());
    let flag_over_env = run_and_read_ready(
        &["--config", config, "--data-dir", from_flag.to_str().unwrap()],
        &[("THREADLINE_DATA_DIR", from_env.to_str().unwrap())],
    );
    assert_eq!(flag_over_env, from_flag.display().to_string());
    // The config file itself can come from the environment.
    let config_from_env = run_and_read_ready(&[], &[("THREADLINE_CONFIG", config)]);
    assert_eq!(config_from_env, from_file.display().to_string());
}

/// Starts `serve` with only the given settings (plus loopback port 0 everywhere), returns the
/// data directory from its ready line, and stops it.
fn run_and_read_ready(args: &[&str], env: &[(&str, &str)]) -> String {
    use std::io::BufRead as _;
    let mut command = std::process::Command::new(bin());
    command
        .args(["serve", "--log-format", "json"])
        .args(LOOPBACK_ANY_PORT)
        .args(args)
        .env_remove("THREADLINE_DATA_DIR")
        .env_remove("THREADLINE_CONFIG")
        .stderr(std::process::Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut data_dir = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("threadline is ready") {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap();
            data_dir = Some(event["data_dir"].as_str().unwrap().to_owned());
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    data_dir.expect("server became ready")
}

#[test]
fn a_bad_config_file_is_refused_naming_the_line() {
    let dir = TempDir::new("badconfig").unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "version = 1\n[ingest]\nqueue_capacity = 5\n").unwrap();
    let (code, stderr) = run_to_exit(
        bin(),
        &["serve", "--config", config.to_str().unwrap()],
        &[],
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("bad.toml: line 3, column 1: unknown field `queue_capacity`"),
        "{stderr}"
    );
    let (code, stderr) = run_to_exit(
        bin(),
        &["serve", "--config", "/nonexistent/threadline.toml"],
        &[],
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("error: reading config file /nonexistent/threadline.toml: No such file"),
        "{stderr}"
    );
    let (code, stderr) =
        run_to_exit(bin(), &["serve", "--api", "not-an-address"], &[], Duration::from_secs(10))
            .unwrap();
    assert_eq!(code, Some(2));
    assert!(stderr.contains("invalid value 'not-an-address' for '--api <ADDR>'"), "{stderr}");
}

#[test]
fn a_busy_data_dir_or_address_is_a_clear_start_up_error() {
    let server = TestServer::start(bin()).unwrap();
    let data_dir = server.data_dir();
    let args = [&["serve", "--data-dir", data_dir.to_str().unwrap()], LOOPBACK_ANY_PORT].concat();
    let (code, stderr) = run_to_exit(bin(), &args, &[], Duration::from_secs(10)).unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "data directory {} is in use by another threadline process",
            data_dir.display()
        )),
        "{stderr}"
    );

    let other = TempDir::new("busyaddr").unwrap();
    let api = server.addrs.api.to_string();
    // Every listener on a free port but the API, on the busy address.
    let ingest_any_port = &LOOPBACK_ANY_PORT[..6];
    let args = [
        &["serve", "--data-dir", other.path().to_str().unwrap()],
        ingest_any_port,
        &["--api", &api],
    ]
    .concat();
    let (code, stderr) = run_to_exit(bin(), &args, &[], Duration::from_secs(10)).unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("binding the api listener to {api}: Address already in use")),
        "{stderr}"
    );
}
