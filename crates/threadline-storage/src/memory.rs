//! An in-memory span store: spans grouped per trace, bounded by a span count. When full, the
//! traces stored longest ago are dropped first and counted in [`StoreStats::evicted_spans`].

use std::collections::{BTreeSet, HashMap, VecDeque};

use parking_lot::RwLock;
use threadline_core::id::TraceId;
use threadline_core::span::Span;

use crate::{SpanStore, StoreError, StoreStats};

#[derive(Debug)]
pub struct MemoryStore {
    max_spans: usize,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    traces: HashMap<TraceId, Vec<Span>>,
    /// Traces in the order they were first stored, oldest first: the eviction order.
    arrival: VecDeque<TraceId>,
    spans: usize,
    evicted_spans: u64,
    services: BTreeSet<String>,
}

impl MemoryStore {
    /// A store that keeps at most `max_spans` spans (at least one trace is always kept whole).
    pub fn new(max_spans: usize) -> Self {
        Self { max_spans, inner: RwLock::new(Inner::default()) }
    }
}

impl SpanStore for MemoryStore {
    fn append(&self, spans: &[Span]) -> Result<(), StoreError> {
        let mut inner = self.inner.write();
        for span in spans.iter().cloned() {
            if !inner.services.contains(span.service_name()) {
                inner.services.insert(span.service_name().to_owned());
            }
            let trace_id = span.trace_id;
            let Inner { traces, arrival, .. } = &mut *inner;
            traces
                .entry(trace_id)
                .or_insert_with(|| {
                    arrival.push_back(trace_id);
                    Vec::new()
                })
                .push(span);
            inner.spans += 1;
        }
        while inner.spans > self.max_spans && inner.arrival.len() > 1 {
            let Some(oldest) = inner.arrival.pop_front() else { break };
            if let Some(evicted) = inner.traces.remove(&oldest) {
                inner.spans -= evicted.len();
                inner.evicted_spans += evicted.len() as u64;
            }
        }
        Ok(())
    }

    fn trace(&self, trace_id: TraceId) -> Result<Vec<Span>, StoreError> {
        let mut spans = self.inner.read().traces.get(&trace_id).cloned().unwrap_or_default();
        spans.sort_by_key(|s| (s.start_time_unix_nano, s.span_id));
        Ok(spans)
    }

    fn services(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.inner.read().services.iter().cloned().collect())
    }

    fn stats(&self) -> StoreStats {
        let inner = self.inner.read();
        StoreStats {
            traces: inner.traces.len(),
            spans: inner.spans,
            evicted_spans: inner.evicted_spans,
        }
    }
}
