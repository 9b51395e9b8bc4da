//! Finding traces by what their spans say: service, operation, attributes, start time and
//! duration (the search of trace UIs). A trace matches when one of its spans matches every
//! condition. Recent spans are searched in memory; blocks whose time range overlaps the
//! query are scanned newest first, reading only the columns the conditions need.

use threadline_core::id::TraceId;
use threadline_core::span::Span;
use threadline_core::value::{AnyValue, KeyValue};

/// The conditions on one span.
#[derive(Debug, Clone, Default)]
pub struct SpanQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Attribute key = value, compared with the value's text form (`200`, `true`, `0.5`).
    pub tags: Vec<(String, String)>,
    /// Start time range, inclusive, Unix nanoseconds.
    pub start_from: u64,
    pub start_to: u64,
    pub min_duration: Option<u64>,
    pub max_duration: Option<u64>,
    /// Traces to return, at most.
    pub limit: usize,
}

/// The text form of an attribute value that a tag condition compares with.
pub fn value_text(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::String(s) => Some(s.to_string()),
        AnyValue::Int(i) => Some(i.to_string()),
        AnyValue::Double(d) => Some(d.to_string()),
        AnyValue::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl SpanQuery {
    pub(crate) fn matches_fields(
        &self,
        service: &str,
        name: &str,
        start: u64,
        end: u64,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> bool {
        if start < self.start_from || start > self.start_to {
            return false;
        }
        if self.service.as_deref().is_some_and(|s| s != service)
            || self.operation.as_deref().is_some_and(|o| o != name)
        {
            return false;
        }
        let duration = end.saturating_sub(start);
        if self.min_duration.is_some_and(|m| duration < m)
            || self.max_duration.is_some_and(|m| duration > m)
        {
            return false;
        }
        if self.tags.is_empty() {
            return true;
        }
        let attributes = attributes();
        self.tags.iter().all(|(key, wanted)| {
            attributes
                .iter()
                .any(|kv| kv.key == *key && value_text(&kv.value).as_deref() == Some(wanted))
        })
    }

    pub(crate) fn matches(&self, span: &Span) -> bool {
        let mut attributes = span.attributes.clone();
        self.matches_fields(
            span.service_name(),
            &span.name,
            span.start_time_unix_nano,
            span.end_time_unix_nano,
            || {
                // Resource attributes count as tags too (as in Jaeger's process tags).
                attributes.extend(span.resource.attributes.iter().cloned());
                attributes
            },
        )
    }
}

/// Keeps the newest start per trace, and the `limit` traces that started last.
pub(crate) fn newest(found: Vec<(TraceId, u64)>, limit: usize) -> Vec<TraceId> {
    let mut latest: std::collections::HashMap<TraceId, u64> = std::collections::HashMap::new();
    for (id, start) in found {
        let entry = latest.entry(id).or_insert(start);
        *entry = (*entry).max(start);
    }
    let mut traces: Vec<(TraceId, u64)> = latest.into_iter().collect();
    traces.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    traces.into_iter().take(limit).map(|(id, _)| id).collect()
}
