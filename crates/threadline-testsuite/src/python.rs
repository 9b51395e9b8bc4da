//! Runs the OpenTelemetry Python SDK (an independent OTLP client) from the virtualenv the test
//! command makes (`scripts/test.sh`), or from `THREADLINE_TEST_PYTHON`.

use std::path::PathBuf;

use anyhow::{Context as _, ensure};
use serde_json::Value;

use crate::server::TempDir;

/// The Python interpreter with the SDK installed.
pub fn python() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("THREADLINE_TEST_PYTHON") {
        return Ok(PathBuf::from(path));
    }
    let venv = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python"));
    ensure!(
        venv.exists(),
        "the OpenTelemetry Python SDK is needed: run scripts/test.sh once (it makes .venv), \
         or set THREADLINE_TEST_PYTHON"
    );
    Ok(venv)
}

/// Server config for tests that count the completions of [`export_flows`]: the script exports
/// each service's spans with its own processor, flushed one after another, and on a busy
/// machine the gap between two can pass the default 20 ms settle window, so a process would
/// complete in it and be reopened by the next service's spans. Two seconds wait for every flush.
pub const SETTLE_FOR_SDK_FLUSHES: &str = "version = 1\n[engine]\nsettle_ms = 2000\n";

/// Runs `tests/interop/otel_sdk_export.py`: `flows` checkouts exported over `protocol`
/// (`grpc` or `http`) to `endpoint`; returns the spans the SDK recorded, in the API's shape.
pub fn export_flows(protocol: &str, endpoint: &str, flows: usize) -> anyhow::Result<Vec<Value>> {
    let dir = TempDir::new("python-sdk")?;
    let out = dir.path().join("spans.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/interop/otel_sdk_export.py");
    let output = std::process::Command::new(python()?)
        .args([script, "--protocol", protocol, "--endpoint", endpoint])
        .args(["--flows", &flows.to_string(), "--out", out.to_str().context("utf-8 path")?])
        .output()
        .context("running python")?;
    ensure!(
        output.status.success(),
        "the SDK script failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&std::fs::read(&out)?)?)
}
