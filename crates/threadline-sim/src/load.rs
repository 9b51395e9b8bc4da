//! A load generator: the shop's traffic (without faults) sent to any OTLP endpoint over
//! `connections` connections, at a target rate of spans per second or flat out, reporting
//! offered, acknowledged and refused spans per second and the latency of acknowledgments.
//!
//! The traffic is a pool of batches generated once from the shop; every send gives the batch
//! fresh trace and span ids and current times, so the receiver sees new processes throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use threadline_core::id::{SpanId, TraceId};
use threadline_core::span::Span;

use crate::send::{ExportError, Exporter, Protocol};
use crate::shop::{FaultRates, ProcessKind, Shop, ShopConfig};

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub protocol: Protocol,
    pub endpoint: String,
    pub token: Option<String>,
    /// Spans per second in all; `None`: as fast as acknowledgments come back.
    pub rate: Option<f64>,
    pub connections: usize,
    pub duration: Duration,
    /// Spans per request.
    pub batch: usize,
}

/// One second (or the whole run) of load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub seconds: f64,
    pub offered_spans: u64,
    pub acknowledged_spans: u64,
    /// Refused by the receiver (429, `UNAVAILABLE`, ...) or failed in transport.
    pub refused_spans: u64,
    pub requests: u64,
    /// Acknowledgment latency quantiles, in milliseconds.
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
}

impl LoadReport {
    pub fn per_second(&self, spans: u64) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "counts far below 2^53")]
        let spans = spans as f64;
        spans / self.seconds.max(1e-9)
    }
}

#[derive(Debug, Default)]
struct Counters {
    offered: AtomicU64,
    acknowledged: AtomicU64,
    refused: AtomicU64,
    requests: AtomicU64,
}

/// Batches of shop traffic to send again and again with fresh ids: whole processes (so a
/// batch's new ids keep every process whole), checkouts, refunds and inventory syncs.
fn pool(batch: usize) -> Vec<Vec<Span>> {
    let start = 1_000_000_000_000_000_000;
    let kinds = [ProcessKind::Checkout, ProcessKind::Refund, ProcessKind::InventorySync];
    let mut shop = Shop::new(
        ShopConfig {
            speed: 1.0,
            processes_per_sec: 0.0,
            faults: FaultRates::none(),
            seed: 42,
            kinds: kinds.to_vec(),
        },
        start,
    );
    let mut out = Vec::new();
    let mut current: Vec<Span> = Vec::new();
    let mut total = 0;
    let mut n = 0usize;
    while total < 100_000 {
        // The shop's mix: mostly checkouts.
        let kind = match n % 10 {
            0 => ProcessKind::Refund,
            1 | 2 => ProcessKind::InventorySync,
            _ => ProcessKind::Checkout,
        };
        n += 1;
        shop.start(kind, start);
        let spans = shop.take_due(u64::MAX);
        total += spans.len();
        current.extend(spans);
        if current.len() >= batch.max(1) {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `batch` with every id mixed with `salt` (same mixing for a trace's spans and links, so the
/// structure holds) and times moved so the batch starts at `now`.
fn refresh(batch: &[Span], salt: u64, now: u64) -> Vec<Span> {
    let first = batch.iter().map(|s| s.start_time_unix_nano).min().unwrap_or(now);
    let shift = |t: u64| t - first + now;
    let trace = |id: TraceId| {
        let mut bytes = *id.as_bytes();
        let high = u64::from_be_bytes(bytes[..8].try_into().unwrap_or([0; 8])) ^ salt;
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        TraceId::from_bytes(bytes).unwrap_or(id)
    };

    let span_id = |id: SpanId| {
        let mixed = u64::from_be_bytes(*id.as_bytes()) ^ salt.rotate_left(17);
        SpanId::from_bytes(mixed.to_be_bytes()).unwrap_or(id)
    };
    batch
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.trace_id = trace(s.trace_id);
            s.span_id = span_id(s.span_id);
            s.parent_span_id = s.parent_span_id.map(span_id);
            for link in &mut s.links {
                link.trace_id = trace(link.trace_id);
                link.span_id = span_id(link.span_id);
            }
            s.start_time_unix_nano = shift(s.start_time_unix_nano);
            s.end_time_unix_nano = shift(s.end_time_unix_nano);
            for e in &mut s.events {
                e.time_unix_nano = shift(e.time_unix_nano);
            }
            s
        })
        .collect()
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index"
    )]
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Runs the load; `each_second` gets a report for every second; returns the whole run's.
pub async fn run(
    config: &LoadConfig,
    mut each_second: impl FnMut(&LoadReport),
) -> Result<LoadReport, ExportError> {
    let pool = Arc::new(pool(config.batch));
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(Latencies::default());
    let stop = Arc::new(AtomicBool::new(false));
    let connections = config.connections.max(1);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let mut exporter =
            Exporter::connect(config.protocol, &config.endpoint, config.token.clone()).await?;
        let (pool, counters, latencies, stop) =
            (Arc::clone(&pool), Arc::clone(&counters), Arc::clone(&latencies), Arc::clone(&stop));
        #[allow(clippy::cast_precision_loss, reason = "a rate")]
        let per_connection = config.rate.map(|r| r / connections as f64);
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut sent_spans = 0u64;
            let mut i = c;
            let mut salt = (c as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            while !stop.load(Ordering::Relaxed) {
                let template = &pool[i % pool.len()];
                i += connections;
                if let Some(rate) = per_connection {
                    // Pace: this connection's spans so far at its rate.
                    #[allow(clippy::cast_precision_loss, reason = "a rate")]
                    let due = Duration::from_secs_f64(sent_spans as f64 / rate.max(1e-9));
                    let elapsed = started.elapsed();
                    if due > elapsed {
                        tokio::time::sleep(due - elapsed).await;
                    }
                }
                salt = salt.wrapping_add(0x2545_f491_4f6c_dd1d);
                let batch = refresh(template, salt, unix_nanos());
                let n = batch.len() as u64;
                sent_spans += n;
                counters.offered.fetch_add(n, Ordering::Relaxed);
                let sent = Instant::now();
                let result = exporter.export(&batch).await;
                counters.requests.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(()) => {
                        counters.acknowledged.fetch_add(n, Ordering::Relaxed);
                        latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                    }
                    Err(_) => {
                        counters.refused.fetch_add(n, Ordering::Relaxed);
                        // A refusal says slow down: a short pause before the next.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut all_latencies = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    while started.elapsed() < config.duration {
        ticker.tick().await;
        let now = (
            counters.offered.load(Ordering::Relaxed),
            counters.acknowledged.load(Ordering::Relaxed),
            counters.refused.load(Ordering::Relaxed),
            counters.requests.load(Ordering::Relaxed),
        );
        let mut second = latencies.take();
        second.sort_by(f64::total_cmp);
        each_second(&LoadReport {
            seconds: 1.0,
            offered_spans: now.0 - last.0,
            acknowledged_spans: now.1 - last.1,
            refused_spans: now.2 - last.2,
            requests: now.3 - last.3,
            latency_p50_ms: quantile(&second, 0.5),
            latency_p99_ms: quantile(&second, 0.99),
            latency_max_ms: second.last().copied().unwrap_or(0.0),
        });
        all_latencies.extend(second);
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    let seconds = started.elapsed().as_secs_f64();
    for task in tasks {
        let _ = task.await;
    }
    let mut rest = latencies.take();
    all_latencies.append(&mut rest);
    all_latencies.sort_by(f64::total_cmp);
    Ok(LoadReport {
        seconds,
        offered_spans: counters.offered.load(Ordering::Relaxed),
        acknowledged_spans: counters.acknowledged.load(Ordering::Relaxed),
        refused_spans: counters.refused.load(Ordering::Relaxed),
        requests: counters.requests.load(Ordering::Relaxed),
        latency_p50_ms: quantile(&all_latencies, 0.5),
        latency_p99_ms: quantile(&all_latencies, 0.99),
        latency_max_ms: all_latencies.last().copied().unwrap_or(0.0),
    })
}

/// Latencies recorded since the last `take`; at most a million kept per interval.
#[derive(Debug, Default)]
struct Latencies(std::sync::Mutex<Vec<f64>>);

impl Latencies {
    fn push(&self, ms: f64) {
        if let Ok(mut v) = self.0.lock()
            && v.len() < 1_000_000
        {
            v.push(ms);
        }
    }

    fn take(&self) -> Vec<f64> {
        self.0.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default()
    }
}
