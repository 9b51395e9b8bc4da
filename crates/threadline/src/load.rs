//! `threadline load`: the shop's traffic to any OTLP endpoint at a target rate or flat out,
//! reporting each second and the whole run.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use threadline_sim::{LoadConfig, LoadReport, Protocol};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The OTLP endpoint: http://HOST:4317 for gRPC, http://HOST:4318 for HTTP.
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// grpc or http.
    #[arg(long, default_value = "grpc")]
    protocol: Protocol,
    /// Spans per second to offer in all; without it, as fast as acknowledgments return.
    #[arg(long, conflicts_with = "flat_out")]
    rate: Option<f64>,
    /// Offer spans as fast as acknowledgments return (the default without --rate).
    #[arg(long)]
    flat_out: bool,
    /// Connections sending at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,
    /// How long to run, as in 30s or 2m.
    #[arg(long, default_value = "30s", value_parser = crate::client::parse_within)]
    duration: Duration,
    /// Spans per request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    /// Bearer token of the receiver, if it needs one.
    #[arg(long, env = "THREADLINE_INGEST_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// One JSON object per line (each second, then the total) instead of text.
    #[arg(long)]
    json: bool,
}

fn line(report: &LoadReport, label: &str, json: bool) -> String {
    if json {
        format!(
            "{}\n",
            serde_json::json!({
                "kind": label,
                "seconds": report.seconds,
                "offeredSpansPerSec": report.per_second(report.offered_spans),
                "acknowledgedSpansPerSec": report.per_second(report.acknowledged_spans),
                "refusedSpansPerSec": report.per_second(report.refused_spans),
                "offeredSpans": report.offered_spans,
                "acknowledgedSpans": report.acknowledged_spans,
                "refusedSpans": report.refused_spans,
                "requests": report.requests,
                "ackLatencyP50Ms": report.latency_p50_ms,
                "ackLatencyP99Ms": report.latency_p99_ms,
                "ackLatencyMaxMs": report.latency_max_ms,
            })
        )
    } else {
        format!(
            "{label:>6}  offered {:>9.0}/s  acknowledged {:>9.0}/s  refused {:>8.0}/s  ack p50 {:>7.2} ms  p99 {:>7.2} ms\n",
            report.per_second(report.offered_spans),
            report.per_second(report.acknowledged_spans),
            report.per_second(report.refused_spans),
            report.latency_p50_ms,
            report.latency_p99_ms,
        )
    }
}

/// Output where a closed pipe ends the command quietly.
fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

pub fn run(args: &LoadArgs) -> ExitCode {
    if let Some(rate) = args.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        crate::report(&anyhow::anyhow!(
            "--rate {rate} must be a positive number of spans per second"
        ));
        return ExitCode::from(2);
    }
    let config = LoadConfig {
        protocol: args.protocol,
        endpoint: args.endpoint.clone(),
        token: args.token.clone(),
        rate: args.rate,
        connections: usize::from(args.connections),
        duration: args.duration,
        batch: args.batch as usize,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            crate::report(&anyhow::Error::new(e).context("starting the runtime"));
            return ExitCode::from(2);
        }
    };
    let json = args.json;
    let mut second = 0;
    let result = runtime.block_on(threadline_sim::load(&config, |report| {
        second += 1;
        out(&line(report, &format!("{second}s"), json));
    }));
    match result {
        Ok(total) => {
            out(&line(&total, "total", json));
            ExitCode::SUCCESS
        }
        Err(e) => {
            crate::report(&anyhow::Error::new(e));
            ExitCode::from(2)
        }
    }
}
