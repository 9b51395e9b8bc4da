//! Sending the shop's spans as they fall due, in real time.

use std::future::Future;
use std::time::Duration;

use crate::send::{ExportError, Exporter};
use crate::shop::Shop;

/// Spans per export request.
const BATCH: usize = 1000;
/// A refused batch is tried this many times (with a pause) before it is dropped.
const ATTEMPTS: usize = 20;

/// What [`drive`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DriveStats {
    pub sent_spans: u64,
    /// Spans given up on after the receiver kept refusing them or could not be reached.
    pub dropped_spans: u64,
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Sends the shop's spans as they fall due (every 100 ms) until `stop` completes.
pub async fn drive(
    shop: &mut Shop,
    exporter: &mut Exporter,
    stop: impl Future<Output = ()>,
) -> DriveStats {
    let mut stats = DriveStats::default();
    let mut stop = std::pin::pin!(stop);
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut stop => return stats,
            _ = ticker.tick() => {}
        }
        let spans = shop.due(unix_nanos());
        for batch in spans.chunks(BATCH) {
            let mut attempt = 0;
            loop {
                attempt += 1;
                match exporter.export(batch).await {
                    Ok(()) => {
                        stats.sent_spans += batch.len() as u64;
                        break;
                    }
                    Err(ExportError::Refused { retryable: true, .. }) if attempt < ATTEMPTS => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, spans = batch.len(), "the shop could not send spans");
                        stats.dropped_spans += batch.len() as u64;
                        break;
                    }
                }
            }
        }
    }
}
