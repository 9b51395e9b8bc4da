//! The web UI end to end: `threadline demo` as a user starts it, and headless Chromium
//! (Debian's `chromium`, driven by `playwright-core` from `ui/node_modules`) going through
//! every page (`ui/e2e/ui.mjs`): no console errors, live data on each page, a search by
//! business key finding its process, message arrows and the critical path on the process
//! page, the map drawn, live counts changing without a reload, and a clear message once the
//! server is stopped under the open page. Screenshots land in `target/ui-screenshots/`.
//!
//! `scripts/test.sh` installs Node packages (from `ui/package-lock.json`) and Chromium first.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::path::Path;
use std::time::Duration;

use threadline_testsuite::server::{Options, TestServer};

#[test]
fn every_page_of_the_ui_works_against_the_demo() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let ui = root.join("ui");
    assert!(
        ui.join("node_modules/playwright-core").is_dir(),
        "ui/node_modules is missing: run scripts/test.sh (it runs npm ci in ui/)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/test.sh (it installs Debian's chromium)"
    );
    let mut server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            command: Some("demo".into()),
            args: vec!["--seed".into(), "11".into()],
            ..Options::default()
        },
    )
    .unwrap();
    let shots = root.join("target/ui-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let output = std::process::Command::new("node")
        .arg(ui.join("e2e/ui.mjs"))
        .arg(server.api_url())
        .arg(&shots)
        .arg(server.pid().to_string())
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the UI check failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The check stopped the demo: it exits cleanly.
    let status = server.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", server.log_lines());
    for page in ["overview", "search", "process", "type", "map", "triage", "feed", "server-down"] {
        assert!(shots.join(format!("{page}.png")).is_file(), "no screenshot of {page}");
    }
}
