//! The stage behind the ingest queue: takes each accepted batch into the store, acknowledges
//! it to the waiting receiver, then feeds it to the process engine.

use std::sync::Arc;

use threadline_ingest::queue::QueueReceiver;
use threadline_storage::SpanStore;

use crate::engine_task::EngineHandle;

/// Runs until every queue sender is gone and the queue is empty; returns the batches handled.
pub async fn run(mut queue: QueueReceiver, store: Arc<dyn SpanStore>, engine: EngineHandle) -> u64 {
    let mut batches = 0u64;
    while let Some(mut delivery) = queue.recv().await {
        let spans = delivery.take_spans();
        let result = store.append(&spans).map_err(|e| {
            let message = threadline_core::error::chain(&e);
            tracing::error!(error = %message, "storing a batch failed");
            message
        });
        let stored = result.is_ok();
        delivery.complete(result);
        if stored {
            // Waits when the engine is behind, which in turn fills the ingest queue.
            engine.feed(Arc::new(spans)).await;
        }
        batches += 1;
    }
    batches
}
