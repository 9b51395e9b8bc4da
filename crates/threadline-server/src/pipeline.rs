//! The stage behind the ingest queue, on a thread of its own because it waits on the disk:
//! takes every batch queued at that moment as one group, makes the group durable with one
//! WAL commit, acknowledges each batch to its waiting receiver, then feeds the batches to
//! the process engine. A failed commit acknowledges nothing (the receivers answer 503) and
//! keeps nothing, so a client never hears "accepted" for spans that were not kept.

use std::sync::Arc;

use threadline_ingest::queue::{Delivery, QueueReceiver};
use threadline_storage::store::Store;
use tokio::runtime::Handle;

use crate::engine_task::EngineHandle;

/// A group stops growing at this many spans, so one commit stays short.
const MAX_GROUP_SPANS: usize = 64 * 1024;
/// The longest the stage waits for a block to be written when the head is full; past it,
/// blocks are failing (the maintenance task logs why) and the WAL keeps the spans safe.
const HEAD_ROOM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// While batches keep coming, the engine is told how far it has been fed this often (and at
/// once whenever the queue runs empty).
const MARK_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// Runs until every queue sender is gone and the queue is empty; returns the batches handled.
pub fn run(
    mut queue: QueueReceiver,
    store: Arc<Store>,
    engine: EngineHandle,
    runtime: Handle,
) -> u64 {
    let mut batches = 0u64;
    let mut last_mark = std::time::Instant::now();
    while let Some(first) = runtime.block_on(queue.recv()) {
        let mut group_spans = first.len();
        let mut group: Vec<Delivery> = vec![first];
        while group_spans < MAX_GROUP_SPANS {
            let Some(next) = queue.try_recv() else { break };
            group_spans += next.len();
            group.push(next);
        }
        // Memory stays bounded when blocks are written slower than spans arrive: the stage
        // waits here, the ingest queue fills, and receivers refuse with "try later".
        if !store.wait_for_head_room(HEAD_ROOM_WAIT) {
            tracing::warn!(
                "no block written for {HEAD_ROOM_WAIT:?} with the head full; storing anyway"
            );
        }
        let spans: Vec<Arc<Vec<_>>> = group.iter_mut().map(|d| Arc::new(d.take_spans())).collect();
        let result = store.append_shared(&spans).map_err(|e| {
            let message = threadline_core::error::chain(&e);
            tracing::error!(error = %message, batches = group.len(), "storing a group of batches failed; refused with 503");
            message
        });
        batches += group.len() as u64;
        let acknowledgement = result.as_ref().map(drop).map_err(Clone::clone);
        for delivery in group {
            delivery.complete(acknowledgement.clone());
        }
        if let Ok(seqs) = result {
            let mark = seqs
                .last()
                .copied()
                .filter(|_| queue.is_empty() || last_mark.elapsed() >= MARK_EVERY);
            // Waits when the engine is behind, which in turn fills the ingest queue.
            runtime.block_on(engine.feed(&spans, mark));
            if mark.is_some() {
                last_mark = std::time::Instant::now();
            }
        }
    }
    batches
}
