//! A full disk: the server refuses new writes with 503 (never acknowledging what it could
//! not keep), says why in `/api/v1/status`, keeps serving reads, and accepts writes again
//! once space is freed, with every acknowledged span intact, also after a SIGKILL.
//!
//! The disk is a small tmpfs mounted by the test, which needs root (as CI and the
//! development machines run); elsewhere the test says so and does nothing.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
#![allow(clippy::print_stderr, reason = "the test says when it cannot run")]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use threadline_api_types::{StatusResponse, TraceResponse};
use threadline_testsuite::generate::{self, Shape};
use threadline_testsuite::server::{Options, TempDir, TestServer};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().next().map(|uid| uid == "0"))
        .unwrap_or(false)
}

fn mount_tmpfs(at: &Path, size: &str) -> Option<Mount> {
    std::fs::create_dir_all(at).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status();
    match status {
        Ok(s) if s.success() => Some(Mount(at.to_owned())),
        _ if is_root() => {
            panic!("running as root, yet mounting a tmpfs at {} failed", at.display())
        }
        _ => None,
    }
}

/// Fills the filesystem holding `path` to the last byte, then frees `leave` bytes.
fn fill(path: &Path, leave: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.write_all(&chunk[..4096]);
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(leave)).unwrap();
}

const TRACES: usize = 40;

async fn send(url: &str, seed: u64) -> (u16, String) {
    let body = generate::otlp_protobuf(Shape { traces: TRACES, services: 4, seed });
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

async fn check(server: &TestServer, acked: &[u64]) {
    for &seed in acked {
        let trace_id = hex::encode(generate::trace_id(seed, TRACES - 1));
        let trace: TraceResponse =
            server.api_json(&format!("/api/v1/traces/{trace_id}")).await.unwrap();
        assert_eq!(trace.spans.len(), 4, "batch {seed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_refused_with_503_and_recovered_from() {
    let outer = TempDir::new("diskfull").unwrap();
    let home = outer.path().join("mnt");
    let Some(_mount) = mount_tmpfs(&home, "16m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let options = Options {
        // No blocks during the test: the WAL is what fills the disk.
        config: Some(
            "version = 1\n[storage]\nflush_spans = 10000000\nflush_interval_secs = 3600\n\
             wal_segment_bytes = 262144\n"
                .into(),
        ),
        home: Some(home.clone()),
        ..Options::default()
    };
    let bin: &Path = env!("CARGO_BIN_EXE_threadline").as_ref();
    let mut server = TestServer::start_with(bin, options.clone()).unwrap();
    let url = server.otlp_http_url();
    let filler = home.join("filler");
    fill(&filler, 400 << 10);

    let mut acked = Vec::new();
    let mut refusal = None;
    for seed in 1..200 {
        let (status, body) = send(&url, seed).await;
        match status {
            200 => acked.push(seed),
            503 => {
                refusal = Some(body);
                break;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    let refusal = refusal.expect("the disk filled up");
    eprintln!("{} batches acknowledged before: {refusal}", acked.len());
    assert!(refusal.contains("No space left on device"), "{refusal}");
    assert!(!acked.is_empty(), "some batches fit before the disk was full");

    let status: StatusResponse = server.api_json("/api/v1/status").await.unwrap();
    let error = status.store.last_error.clone().expect("the error is reported");
    assert!(error.contains("No space left on device"), "{error}");
    // Still full: still refused, and reads keep working.
    assert_eq!(send(&url, 1000).await.0, 503);
    check(&server, &acked).await;

    std::fs::remove_file(&filler).unwrap();
    let (status_code, body) = send(&url, 2000).await;
    assert_eq!(status_code, 200, "accepted again once space is free: {body}");
    acked.push(2000);
    let status: StatusResponse = server.api_json("/api/v1/status").await.unwrap();
    assert_eq!(status.store.last_error, None);
    check(&server, &acked).await;

    // The refused writes left nothing half-written behind: a restart replays cleanly.
    server.signal("KILL").unwrap();
    server.wait_exit(Duration::from_secs(10)).unwrap();
    let server = TestServer::start_with(bin, options).unwrap();
    let opened = server.wait_for_log("storage opened", Duration::from_secs(5)).unwrap();
    assert!(opened.contains("\"wal_damage\":0"), "{opened}");
    check(&server, &acked).await;
    let refused = [1000u64, 1 + acked.len() as u64 - 1];
    for seed in refused {
        if acked.contains(&seed) {
            continue;
        }
        let trace_id = hex::encode(generate::trace_id(seed, 0));
        let (code, _) = server.api_get(&format!("/api/v1/traces/{trace_id}")).await.unwrap();
        assert_eq!(code, 404, "refused batch {seed} must not be stored");
    }
}
