//! The critical path of a process: the chain of work and waiting that decided when it ended,
//! over the happens-before graph of its spans, which includes asynchronous hops (a consumer
//! after its producer, through a link or a parent) with the time the message waited in its
//! channel, not only parent/child calls.
//!
//! Walking backwards from the span that ended last: inside a span, the child that ended last
//! before the cursor is on the path (recursively), and the span's own time fills the gaps; at a
//! span's start, the path continues into what caused it: its caller (the parent's time before
//! the call) or, for a consumer, its producer, with the channel wait between the producer's end
//! and the consumer's start.

use std::collections::HashMap;

use threadline_core::id::{SpanId, TraceId};
use threadline_core::span::Span;

use crate::messaging::{self, Role};

/// One piece of the critical path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Time spent in a span's own work (not in a child on the path).
    Operation {
        trace_id: TraceId,
        span_id: SpanId,
        service: String,
        name: String,
        start: u64,
        end: u64,
    },
    /// Time a message waited in a channel between its producer and its consumer.
    ChannelWait {
        system: String,
        destination: String,
        consumer_group: String,
        producer: SpanId,
        consumer: SpanId,
        start: u64,
        end: u64,
    },
}

impl Segment {
    pub fn start(&self) -> u64 {
        match self {
            Segment::Operation { start, .. } | Segment::ChannelWait { start, .. } => *start,
        }
    }

    pub fn end(&self) -> u64 {
        match self {
            Segment::Operation { end, .. } | Segment::ChannelWait { end, .. } => *end,
        }
    }
}

type Key = (TraceId, SpanId);

struct Graph<'a> {
    spans: HashMap<Key, &'a Span>,
    /// Synchronous children of each span, by end time, latest first.
    children: HashMap<Key, Vec<&'a Span>>,
    /// For consumer spans: the producer span they process, when present.
    producer: HashMap<Key, &'a Span>,
}

fn key(span: &Span) -> Key {
    (span.trace_id, span.span_id)
}

/// The critical path of the process made of `spans`, in time order.
pub fn critical_path(spans: &[Span]) -> Vec<Segment> {
    let Some(last) = spans.iter().max_by_key(|s| (s.end_time_unix_nano, s.span_id)) else {
        return Vec::new();
    };
    let graph = build(spans);
    let mut reversed = Vec::new();
    let mut current = last;
    let mut cursor = last.end_time_unix_nano;
    // Each span is entered at most once, so the walk ends even on malformed data.
    let mut entered = std::collections::HashSet::new();
    while entered.insert(key(current)) {
        within(&graph, current, cursor, &mut reversed, 0);
        let start = current.start_time_unix_nano;
        if let Some(producer) = graph.producer.get(&key(current)) {
            let wait_start = producer.end_time_unix_nano.min(start);
            if let Role::Consumer { channel, group } = messaging::role(current) {
                reversed.push(Segment::ChannelWait {
                    system: channel.system.to_owned(),
                    destination: channel.destination.to_owned(),
                    consumer_group: group.to_owned(),
                    producer: producer.span_id,
                    consumer: current.span_id,
                    start: wait_start,
                    end: start,
                });
            }
            cursor = wait_start;
            current = producer;
            continue;
        }
        let parent = current.parent_span_id.and_then(|p| graph.spans.get(&(current.trace_id, p)));
        match parent {
            Some(parent) => {
                cursor = start;
                current = parent;
            }
            None => break,
        }
    }
    reversed.reverse();
    merge(reversed)
}

fn build(spans: &[Span]) -> Graph<'_> {
    let by_key: HashMap<Key, &Span> = spans.iter().map(|s| (key(s), s)).collect();
    let mut children: HashMap<Key, Vec<&Span>> = HashMap::new();
    let mut producer = HashMap::new();
    for span in spans {
        let is_consumer = matches!(messaging::role(span), Role::Consumer { .. });
        let linked = span
            .links
            .iter()
            .filter_map(|l| by_key.get(&(l.trace_id, l.span_id)))
            .find(|p| matches!(messaging::role(p), Role::Producer { .. }));
        let parent = span.parent_span_id.and_then(|p| by_key.get(&(span.trace_id, p)));
        let parent_is_producer =
            parent.is_some_and(|p| matches!(messaging::role(p), Role::Producer { .. }));
        if is_consumer && let Some(p) = linked {
            producer.insert(key(span), *p);
        } else if is_consumer
            && parent_is_producer
            && let Some(parent) = parent
        {
            producer.insert(key(span), *parent);
        } else if let Some(parent) = parent {
            children.entry(key(parent)).or_default().push(span);
        }
    }
    for list in children.values_mut() {
        list.sort_by_key(|s| std::cmp::Reverse((s.end_time_unix_nano, s.span_id)));
    }
    Graph { spans: by_key, children, producer }
}

/// The path inside `span` up to `cursor`, pushed latest first.
fn within(graph: &Graph<'_>, span: &Span, cursor: u64, out: &mut Vec<Segment>, depth: usize) {
    let mut cursor = cursor.min(span.end_time_unix_nano);
    let start = span.start_time_unix_nano;
    if depth < 256
        && let Some(children) = graph.children.get(&key(span))
    {
        for child in children {
            if child.end_time_unix_nano > cursor || child.end_time_unix_nano <= start {
                continue;
            }
            if child.end_time_unix_nano < cursor {
                out.push(operation(span, child.end_time_unix_nano, cursor));
            }
            within(graph, child, cursor, out, depth + 1);
            cursor = child.start_time_unix_nano.max(start);
            if cursor <= start {
                break;
            }
        }
    }
    if start < cursor {
        out.push(operation(span, start, cursor));
    }
}

fn operation(span: &Span, start: u64, end: u64) -> Segment {
    Segment::Operation {
        trace_id: span.trace_id,
        span_id: span.span_id,
        service: span.service_name().to_owned(),
        name: span.name.to_string(),
        start,
        end,
    }
}

/// Joins consecutive pieces of the same span's own time.
fn merge(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for segment in segments {
        if let (
            Some(Segment::Operation { span_id: a, trace_id: ta, end, .. }),
            Segment::Operation { span_id: b, trace_id: tb, start, end: new_end, .. },
        ) = (out.last_mut(), &segment)
            && a == b
            && ta == tb
            && *end == *start
        {
            *end = *new_end;
            continue;
        }
        out.push(segment);
    }
    out
}
