//! The stage behind the ingest queue: takes each accepted batch into the store and
//! acknowledges it to the waiting receiver.

use std::sync::Arc;

use threadline_ingest::queue::QueueReceiver;
use threadline_storage::SpanStore;

/// Runs until every queue sender is gone and the queue is empty; returns the batches handled.
pub async fn run(mut queue: QueueReceiver, store: Arc<dyn SpanStore>) -> u64 {
    let mut batches = 0u64;
    while let Some(mut delivery) = queue.recv().await {
        let spans = delivery.take_spans();
        let result = store.append(spans).map_err(|e| {
            let message = threadline_core::error::chain(&e);
            tracing::error!(error = %message, "storing a batch failed");
            message
        });
        delivery.complete(result);
        batches += 1;
    }
    batches
}
