//! The bounded hand-off between the receivers and the next stage (the store today; the WAL and
//! the engine later). Capacity is counted in spans, not requests, so memory stays bounded
//! whatever the batch sizes: a batch takes one permit per span (a batch larger than the whole
//! capacity takes all of it) and gives them back once the next stage has taken it.
//!
//! A receiver answers its client only after the stage acknowledged the batch, so a 2xx means
//! the spans were stored; a full queue is refused at once, never waited on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use threadline_core::span::Span;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};

use crate::error::IngestError;

/// Creates a queue holding at most `capacity_spans` spans.
pub fn span_queue(capacity_spans: usize, retry_after: Duration) -> (QueueSender, QueueReceiver) {
    let capacity_spans = capacity_spans.max(1);
    // Every queued batch holds at least one permit, so the channel can never hold more batches
    // than there are permits; the channel bound only caps its own allocation.
    let (tx, rx) = mpsc::channel(capacity_spans.min(1 << 16));
    let permits = Arc::new(Semaphore::new(capacity_spans));
    (QueueSender { tx, permits, capacity_spans, retry_after }, QueueReceiver { rx })
}

#[derive(Debug, Clone)]
pub struct QueueSender {
    tx: mpsc::Sender<Delivery>,
    permits: Arc<Semaphore>,
    capacity_spans: usize,
    retry_after: Duration,
}

impl QueueSender {
    /// Queues a batch, or refuses it at once when the queue has no room for it.
    pub fn submit(&self, spans: Vec<Span>) -> Result<Acknowledgement, IngestError> {
        let wanted = spans.len().clamp(1, self.capacity_spans);
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        let permit = match Arc::clone(&self.permits).try_acquire_many_owned(wanted) {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => {
                return Err(IngestError::Overloaded { retry_after: self.retry_after });
            }
            Err(TryAcquireError::Closed) => return Err(IngestError::ShuttingDown),
        };
        let (ack_tx, ack_rx) = oneshot::channel();
        let delivery = Delivery { spans, _permit: permit, ack: ack_tx };
        match self.tx.try_send(delivery) {
            Ok(()) => Ok(Acknowledgement { rx: ack_rx }),
            Err(mpsc::error::TrySendError::Full(_)) => {
                Err(IngestError::Overloaded { retry_after: self.retry_after })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(IngestError::ShuttingDown),
        }
    }

    /// A read-only view of the queue's fill that does not keep the queue open.
    pub fn monitor(&self) -> QueueMonitor {
        QueueMonitor { permits: Arc::clone(&self.permits), capacity_spans: self.capacity_spans }
    }
}

/// Reads how full the queue is. Unlike a [`QueueSender`], holding one does not keep the
/// queue open, so the stage behind it can drain and stop at shutdown.
#[derive(Debug, Clone)]
pub struct QueueMonitor {
    permits: Arc<Semaphore>,
    capacity_spans: usize,
}

impl QueueMonitor {
    /// Spans queued or being taken by the next stage right now.
    pub fn depth_spans(&self) -> usize {
        self.capacity_spans.saturating_sub(self.permits.available_permits())
    }

    pub fn capacity_spans(&self) -> usize {
        self.capacity_spans
    }
}

/// Resolves once the next stage has taken (or failed to take) a submitted batch.
#[derive(Debug)]
pub struct Acknowledgement {
    rx: oneshot::Receiver<Result<(), String>>,
}

impl Future for Acknowledgement {
    type Output = Result<(), IngestError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|result| match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(IngestError::Stage(message)),
            // The stage dropped the batch without an answer: it is shutting down.
            Err(_) => Err(IngestError::ShuttingDown),
        })
    }
}

/// The consuming end, owned by the next stage.
#[derive(Debug)]
pub struct QueueReceiver {
    rx: mpsc::Receiver<Delivery>,
}

impl QueueReceiver {
    /// The next batch; `None` once every sender is gone and the queue is drained.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// True when no batch is queued right now.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    /// The next batch if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }
}

/// One queued batch. Its queue capacity is released when it is dropped (after
/// [`Delivery::complete`]).
#[derive(Debug)]
pub struct Delivery {
    spans: Vec<Span>,
    _permit: OwnedSemaphorePermit,
    ack: oneshot::Sender<Result<(), String>>,
}

impl Delivery {
    /// Takes the spans out, leaving the delivery to be completed.
    pub fn take_spans(&mut self) -> Vec<Span> {
        std::mem::take(&mut self.spans)
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Tells the waiting receiver how the stage fared.
    pub fn complete(self, result: Result<(), String>) {
        // The client may have gone away; the batch was handled all the same.
        let _ = self.ack.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(n: usize) -> Vec<Span> {
        threadline_testsuite::generate::core_spans(n)
    }

    #[tokio::test]
    async fn refuses_batches_beyond_capacity_and_frees_room_on_completion() {
        let (tx, mut rx) = span_queue(10, Duration::from_secs(2));
        let first = tx.submit(spans(6)).unwrap();
        assert_eq!(tx.monitor().depth_spans(), 6);
        let refused = tx.submit(spans(5)).unwrap_err();
        assert_eq!(refused, IngestError::Overloaded { retry_after: Duration::from_secs(2) });
        let _second = tx.submit(spans(4)).unwrap();
        assert_eq!(tx.monitor().depth_spans(), 10);

        let mut delivery = rx.recv().await.unwrap();
        assert_eq!(delivery.take_spans().len(), 6);
        delivery.complete(Ok(()));
        first.await.unwrap();
        assert_eq!(tx.monitor().depth_spans(), 4);
        tx.submit(spans(5)).unwrap();
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_queue_takes_it_whole() {
        let (tx, _rx) = span_queue(10, Duration::from_secs(1));
        let _ack = tx.submit(spans(25)).unwrap();
        assert_eq!(tx.monitor().depth_spans(), 10);
        assert!(matches!(tx.submit(spans(1)), Err(IngestError::Overloaded { .. })));
    }

    #[tokio::test]
    async fn stage_failures_and_shutdown_reach_the_receiver() {
        let (tx, mut rx) = span_queue(10, Duration::from_secs(1));
        let ack = tx.submit(spans(1)).unwrap();
        rx.recv().await.unwrap().complete(Err("disk full".into()));
        assert_eq!(ack.await, Err(IngestError::Stage("disk full".into())));

        let ack = tx.submit(spans(1)).unwrap();
        drop(rx);
        assert_eq!(ack.await, Err(IngestError::ShuttingDown));
        assert!(matches!(tx.submit(spans(1)), Err(IngestError::ShuttingDown)));
    }
}
