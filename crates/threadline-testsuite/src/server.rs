//! Runs the real `threadline` binary on loopback for end-to-end tests: every listener on port
//! 0, JSON logs on stderr, and the actual addresses read from the server's `listening` log
//! lines (no port races). The data directory is a fresh temporary one, removed on drop; the
//! process is killed on drop if still running.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long a server may take to report that it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments that put every listener on a free loopback port.
pub const LOOPBACK_ANY_PORT: &[&str] = &[
    "--otlp-grpc",
    "127.0.0.1:0",
    "--otlp-http",
    "127.0.0.1:0",
    "--zipkin",
    "127.0.0.1:0",
    "--api",
    "127.0.0.1:0",
];

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> anyhow::Result<Self> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir()
            .join(format!("threadline-{label}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Listener addresses of a running test server.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub zipkin: SocketAddr,
    pub api: SocketAddr,
}

#[derive(Debug, Default)]
struct Logs {
    lines: Vec<String>,
    closed: bool,
}

/// A `threadline serve` child process.
#[derive(Debug)]
pub struct TestServer {
    child: Child,
    pub addrs: Addresses,
    logs: Arc<(Mutex<Logs>, Condvar)>,
    home: PathBuf,
    _temp: Option<TempDir>,
}

/// How to start a test server.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Config file contents (written to the data directory's parent and passed with --config).
    pub config: Option<String>,
    /// Extra command-line arguments after `serve`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A directory to run in (data directory `data/` and config inside it) instead of a new
    /// temporary one: for restarts on the same data. Not deleted by the server.
    pub home: Option<PathBuf>,
    /// The command to run instead of `serve` (as `demo`), taking the same flags.
    pub command: Option<String>,
}

impl TestServer {
    /// Starts `bin serve` with defaults.
    pub fn start(bin: &Path) -> anyhow::Result<Self> {
        Self::start_with(bin, Options::default())
    }

    pub fn start_with(bin: &Path, options: Options) -> anyhow::Result<Self> {
        let (home, temp) = match &options.home {
            Some(home) => (home.clone(), None),
            None => {
                let temp = TempDir::new("server")?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        let mut command = Command::new(bin);
        command
            .arg(options.command.as_deref().unwrap_or("serve"))
            .arg("--data-dir")
            .arg(home.join("data"))
            .args(["--log-format", "json", "--log", "info"])
            .args(LOOPBACK_ANY_PORT)
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in &options.env {
            command.env(key, value);
        }
        if let Some(config) = &options.config {
            let path = home.join("threadline.toml");
            std::fs::write(&path, config)?;
            command.arg("--config").arg(path);
        }
        let mut child = command.spawn().with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().context("stderr is piped")?;
        let logs = Arc::new((Mutex::new(Logs::default()), Condvar::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let (lock, ready) = &*sink;
                lock.lock().expect("log lock").lines.push(line);
                ready.notify_all();
            }
            let (lock, ready) = &*sink;
            lock.lock().expect("log lock").closed = true;
            ready.notify_all();
        });
        let mut server = Self {
            child,
            addrs: Addresses {
                otlp_grpc: unspecified(),
                otlp_http: unspecified(),
                zipkin: unspecified(),
                api: unspecified(),
            },
            logs,
            home,
            _temp: temp,
        };
        server.wait_for_log("threadline is ready", START_TIMEOUT)?;
        for line in server.log_lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if event["message"] != "listening" {
                continue;
            }
            let addr: SocketAddr = event["addr"].as_str().unwrap_or("").parse()?;
            match event["listener"].as_str() {
                Some("otlp_grpc") => server.addrs.otlp_grpc = addr,
                Some("otlp_http") => server.addrs.otlp_http = addr,
                Some("zipkin") => server.addrs.zipkin = addr,
                Some("api") => server.addrs.api = addr,
                _ => {}
            }
        }
        Ok(server)
    }

    /// Base URL of the HTTP API, e.g. `http://127.0.0.1:41234`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addrs.api)
    }

    pub fn otlp_http_url(&self) -> String {
        format!("http://{}/v1/traces", self.addrs.otlp_http)
    }

    pub fn zipkin_url(&self) -> String {
        format!("http://{}/api/v2/spans", self.addrs.zipkin)
    }

    pub fn otlp_grpc_url(&self) -> String {
        format!("http://{}", self.addrs.otlp_grpc)
    }

    /// `GET` on the HTTP API: status and body.
    pub async fn api_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let response = reqwest::get(format!("{}{path}", self.api_url())).await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// `GET` on the HTTP API, expecting 200 and a JSON body of type `T`.
    pub async fn api_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let (status, body) = self.api_get(path).await?;
        anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
        serde_json::from_str(&body).with_context(|| format!("GET {path}: {body}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.home.join("data")
    }

    /// Every stderr line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.0.lock().expect("log lock").lines.clone()
    }

    /// Waits until a log line contains `needle`; fails if the server exits first.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        let (lock, ready) = &*self.logs;
        let mut logs = lock.lock().expect("log lock");
        loop {
            if let Some(line) = logs.lines.iter().find(|l| l.contains(needle)) {
                return Ok(line.clone());
            }
            if logs.closed {
                bail!(
                    "server exited before logging {needle:?}; its log:\n{}",
                    logs.lines.join("\n")
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no log line {needle:?} within {timeout:?}; log:\n{}", logs.lines.join("\n"));
            }
            logs = ready.wait_timeout(logs, left).expect("log lock").0;
        }
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the server.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status =
            Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -{name} failed");
        Ok(())
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("server did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Peak resident memory of the server process so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmHWM in /proc status")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// Runs the binary with `args` until it exits (at most `timeout`), returning its exit code and
/// stderr: for start-up failures and one-shot commands.
pub fn run_to_exit(
    bin: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<(Option<i32>, String)> {
    let mut command = Command::new(bin);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn()?;
    let mut stderr = child.stderr.take().context("stderr is piped")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{} {args:?} did not exit within {timeout:?}", bin.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = reader.join().map_err(|_| anyhow::anyhow!("stderr reader panicked"))?;
    Ok((status.code(), text))
}
