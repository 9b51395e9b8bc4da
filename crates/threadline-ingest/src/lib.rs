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

/// What every receiver shares: limits, the queue to the next stage and the counters.
#[derive(Debug, Clone)]
pub struct Receivers {
    pub limits: IngestLimits,
    pub queue: queue::QueueSender,
    pub stats: Arc<IngestStats>,
    concurrency: Arc<tokio::sync::Semaphore>,
}

impl Receivers {
    pub fn new(limits: IngestLimits, queue: queue::QueueSender, stats: Arc<IngestStats>) -> Self {
        let concurrency = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_requests));
        Self { limits, queue, stats, concurrency }
    }

    /// Hands converted spans to the next stage and waits for it to take them. Counts the
    /// outcome. Rejected spans are only counted here; the caller reports them to the client.
    async fn deliver(
        &self,
        decoded: convert::Decoded,
    ) -> Result<convert::Rejections, error::IngestError> {
        let convert::Decoded { spans, rejections } = decoded;
        IngestStats::add(&self.stats.rejected_spans, rejections.count);
        let accepted = spans.len() as u64;
        if !spans.is_empty() {
            let result = match self.queue.submit(spans) {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                let counter = match e {
                    error::IngestError::Overloaded { .. } => &self.stats.refused_requests,
                    _ => &self.stats.failed_requests,
                };
                IngestStats::add(counter, 1);
                return Err(e);
            }
        }
        IngestStats::add(&self.stats.accepted_spans, accepted);
        Ok(rejections)
    }
}
