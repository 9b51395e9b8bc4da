//! End-to-end throughput through ingest, the engine and durable storage: `threadline load`
//! sends the shop's traffic flat out over OTLP/HTTP to the release server (default config:
//! WAL fsync `always`, group commit), and the run reports acknowledged spans per second, the
//! server's CPU time and spans per CPU-second (per core), and the server's peak memory.
//!
//! Baseline, same run, same load generator: a null receiver that reads each request body and
//! acknowledges it, so the ratio says how close to the generator's own ceiling the server
//! gets. The generator shares the machine with the server; spans per CPU-second of the server
//! are what the 250k/s-per-core target is about.
//!
//! Run: `cargo bench -p threadline --bench e2e` (`E2E_SECONDS`, `E2E_CONNECTIONS` to vary).
//! `E2E_RATE` offers that many spans per second instead of flat out: the server then does the
//! same work in every run, so its CPU time compares between runs on a noisy machine.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    reason = "a benchmark: reports on stdout"
)]

use serde_json::Value;
use threadline_testsuite::server::TestServer;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs `threadline load` against `endpoint`, at `rate` spans per second or flat out;
/// returns its total line.
fn load(endpoint: &str, seconds: u64, connections: u64, rate: Option<u64>) -> Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"))
        .args(["load", "--protocol", "http", "--endpoint", endpoint, "--json"])
        .args(["--duration", &format!("{seconds}s"), "--connections", &connections.to_string()])
        .args(rate.map(|r| ["--rate".to_owned(), r.to_string()]).into_iter().flatten())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// User + system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime 13th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    ticks as f64 / per_second
}

/// Acknowledges every OTLP/HTTP request after reading its body.
fn null_receiver() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(|body: axum::body::Bytes| async move {
                    std::hint::black_box(body.len());
                    ([(http::header::CONTENT_TYPE, "application/x-protobuf")], Vec::<u8>::new())
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

fn main() {
    let seconds = env_or("E2E_SECONDS", 20);
    let connections = env_or("E2E_CONNECTIONS", 4);
    let rate = std::env::var("E2E_RATE").ok().and_then(|v| v.parse().ok());
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let offered = rate.map_or("flat out".to_owned(), |r| format!("{r} spans/s offered"));
    println!(
        "end to end, {seconds} s per run, {connections} connections, {offered}, {cores} cores"
    );

    // Bound before it returns: connections wait in the backlog until it serves.
    let null = null_receiver();
    let baseline = load(&format!("http://{null}"), seconds, connections, rate);
    let baseline_rate = baseline["acknowledgedSpansPerSec"].as_f64().unwrap();
    println!("baseline (null receiver): {baseline_rate:>10.0} spans/s acknowledged");

    let server = TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).unwrap();
    let before = cpu_seconds(server.pid());
    let total = load(&server.otlp_http_url(), seconds, connections, rate);
    let cpu = cpu_seconds(server.pid()) - before;
    let acknowledged = total["acknowledgedSpans"].as_u64().unwrap();
    let rate = total["acknowledgedSpansPerSec"].as_f64().unwrap();
    let refused = total["refusedSpans"].as_u64().unwrap();
    let peak = server.peak_rss_kib().unwrap();
    println!(
        "threadline:               {rate:>10.0} spans/s acknowledged ({:.2}x baseline), {refused} refused",
        rate / baseline_rate
    );
    println!(
        "  ack latency p50 {:.1} ms, p99 {:.1} ms",
        total["ackLatencyP50Ms"].as_f64().unwrap(),
        total["ackLatencyP99Ms"].as_f64().unwrap()
    );
    println!(
        "  server CPU {cpu:.1} s over {:.1} s ({:.2} cores busy): {:.0} spans per CPU-second",
        total["seconds"].as_f64().unwrap(),
        cpu / total["seconds"].as_f64().unwrap(),
        acknowledged as f64 / cpu
    );
    println!("  server peak memory {:.0} MiB", peak as f64 / 1024.0);
}
