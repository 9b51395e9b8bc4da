//! Threadline's receivers and the path from wire bytes to validated core spans:
//!
//! - [`body`]: content types, capped gzip decompression, decoding OTLP protobuf / JSON and
//!   Zipkin JSON with errors that name the field;
//! - [`convert`] and [`zipkin`]: wire messages to [`threadline_core::span::Span`], rejecting
//!   invalid spans one by one (OTLP partial success) rather than whole requests;
//! - [`queue`]: the bounded hand-off to the next stage, whose acknowledgment the receivers wait
//!   for before answering, so a 2xx means the spans were taken by the store;
//! - [`http`] (OTLP/HTTP and Zipkin) and [`grpc`] (OTLP/gRPC): the listeners' services;
//! - [`error`]: the one place that maps ingest errors to HTTP and gRPC statuses.

pub mod body;
pub mod convert;
pub mod error;
pub mod grpc;
pub mod http;
pub mod queue;
pub mod wire;
pub mod zipkin;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Limits the receivers enforce (see `docs/configuration.md`, section `[ingest]`).
#[derive(Debug, Clone)]
pub struct IngestLimits {
    pub max_request_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub max_concurrent_requests: usize,
    pub retry_after: Duration,
}

/// Counters of what the receivers did, shared by all of them; read by the status endpoint and
/// the shutdown log. Updated once per request, never per span.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub accepted_spans: AtomicU64,
    pub rejected_spans: AtomicU64,
    pub refused_requests: AtomicU64,
    pub failed_requests: AtomicU64,
}

impl IngestStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Lets a warning through at most once per interval, however often its cause recurs: a flood
/// of bad data or of refusals must not become a flood of log lines.
#[derive(Debug)]
struct RateLimited {
    start: std::time::Instant,
    /// Milliseconds since `start` of the last warning let through, plus one (0: never).
    last_ms: AtomicU64,
    interval_ms: u64,
}

impl RateLimited {
    fn new(interval: Duration) -> Self {
        Self {
            start: std::time::Instant::now(),
            last_ms: AtomicU64::new(0),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn allow(&self) -> bool {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < self.interval_ms {
            return false;
        }
        self.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// The rate-limited warnings of the receivers.
#[derive(Debug)]
struct Warnings {
    rejected: RateLimited,
    refused: RateLimited,
}

/// What every receiver shares: limits, the queue to the next stage and the counters.
#[derive(Debug, Clone)]
pub struct Receivers {
    pub limits: IngestLimits,
    pub queue: queue::QueueSender,
    pub stats: Arc<IngestStats>,
    concurrency: Arc<tokio::sync::Semaphore>,
    warnings: Arc<Warnings>,
}

impl Receivers {
    pub fn new(limits: IngestLimits, queue: queue::QueueSender, stats: Arc<IngestStats>) -> Self {
        let concurrency = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_requests));
        let every = Duration::from_secs(10);
        let warnings = Arc::new(Warnings {
            rejected: RateLimited::new(every),
            refused: RateLimited::new(every),
        });
        Self { limits, queue, stats, concurrency, warnings }
    }

    /// Counts a request refused for overload, with a rate-limited warning.
    fn refused(&self, error: &error::IngestError) {
        IngestStats::add(&self.stats.refused_requests, 1);
        if self.warnings.refused.allow() {
            tracing::warn!(
                error = %error,
                refused_requests = self.stats.refused_requests.load(Ordering::Relaxed),
                "refusing requests for overload (at most one warning per 10s)"
            );
        }
    }

    /// Hands converted spans to the next stage and waits for it to take them. Counts the
    /// outcome. Rejected spans are only counted here; the caller reports them to the client.
    async fn deliver(
        &self,
        decoded: convert::Decoded,
    ) -> Result<convert::Rejections, error::IngestError> {
        let convert::Decoded { spans, rejections } = decoded;
        if rejections.count > 0 {
            IngestStats::add(&self.stats.rejected_spans, rejections.count);
            if self.warnings.rejected.allow() {
                tracing::warn!(
                    rejected = rejections.count,
                    first = rejections.first_reason(),
                    "rejected invalid spans (at most one warning per 10s)"
                );
            }
        }
        let accepted = spans.len() as u64;
        if !spans.is_empty() {
            let result = match self.queue.submit(spans) {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                match e {
                    error::IngestError::Overloaded { .. } => self.refused(&e),
                    _ => IngestStats::add(&self.stats.failed_requests, 1),
                }
                return Err(e);
            }
        }
        IngestStats::add(&self.stats.accepted_spans, accepted);
        Ok(rejections)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_warnings_pass_once_per_interval() {
        let hourly = RateLimited::new(Duration::from_secs(3600));
        assert!(hourly.allow());
        assert!(!hourly.allow());
        assert!(!hourly.allow());
        let always = RateLimited::new(Duration::ZERO);
        assert!(always.allow());
        assert!(always.allow());
    }
}
