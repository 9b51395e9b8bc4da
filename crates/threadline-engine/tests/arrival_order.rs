//! Properties over arrival order: whatever order the same spans arrive in, the engine ends in
//! the same state, and every event fires exactly once per occurrence.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::collections::HashMap;

use proptest::prelude::*;
use threadline_core::span::{Span, SpanKind};
use threadline_engine::config::EngineConfig;
use threadline_engine::engine::{Engine, ProcessView};
use threadline_engine::event::{Event, EventKind};
use threadline_testsuite::spans::{secs, span};

/// What one generated checkout looks like.
#[derive(Debug, Clone)]
struct Shape {
    /// Consumers start a new trace linked to the producer (else they are its children).
    linked: bool,
    /// Consumer groups that process the message (of payments, inventory).
    consumed_by: Vec<&'static str>,
    /// The root fails.
    root_error: bool,
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        any::<bool>(),
        prop_oneof![
            Just(vec!["payments", "inventory"]),
            Just(vec!["payments"]),
            Just(vec!["inventory"]),
            Just(vec![])
        ],
        prop::bool::weighted(0.2),
    )
        .prop_map(|(linked, consumed_by, root_error)| Shape {
            linked,
            consumed_by,
            root_error,
        })
}

/// The spans of checkout `n` (trace `10n`; linked consumer traces `10n + 1..`).
fn spans(n: u64, shape: &Shape) -> Vec<Span> {
    let t = 10 * n;
    let id = |k: u64| 100 * n + k;
    let mut root = span(t, id(1), "frontend", "POST /checkout")
        .kind(SpanKind::Server)
        .attr("order.id", format!("o-{n}"))
        .at(0.0, 0.3);
    if shape.root_error {
        root = root.error("declined");
    }
    let mut out = vec![
        root.build(),
        span(t, id(2), "checkout", "orders send")
            .parent(id(1))
            .produces("orders")
            .at(0.1, 0.11)
            .build(),
    ];
    for (i, group) in (0u64..).zip(&shape.consumed_by) {
        let consumer = if shape.linked {
            span(t + 1 + i, id(10 + i), group, "orders process")
                .consumes("orders", group)
                .link(t, id(2))
        } else {
            span(t, id(10 + i), group, "orders process").parent(id(2)).consumes("orders", group)
        };
        out.push(consumer.at(0.5, 0.6).build());
        // Work done under the consumer, exported before it.
        let trace = if shape.linked { t + 1 + i } else { t };
        out.push(span(trace, id(20 + i), group, "work").parent(id(10 + i)).at(0.52, 0.55).build());
    }
    out
}

fn engine() -> Engine {
    // Finished processes are kept to the end of the run, so the final state can be compared.
    let mut engine = Engine::new(EngineConfig {
        retain_finished_nanos: 1_000_000 * threadline_engine::config::SECOND,
        ..EngineConfig::default()
    });
    engine.declare_subscribers("kafka", "orders", &["payments", "inventory"]);
    engine
}

/// Runs the spans in the given order, arrival `i` at `step * i` seconds, then lets every
/// timer fire.
mod support;

/// A process's final state and the keys a process table holds for it.
type Outcome = (Vec<(ProcessView, Vec<(String, String)>)>, Vec<Event>);

fn run(spans: &[Span], order: &[usize], step: f64) -> Outcome {
    let mut engine = engine();
    let mut events = Vec::new();
    let mut keys = support::KeyBook::default();
    for (i, index) in order.iter().enumerate() {
        #[allow(clippy::cast_precision_loss, reason = "small counts")]
        engine.ingest(&spans[*index], secs(1.0 + step * i as f64));
        events.extend(engine.drain_events());
        keys.apply(&engine.drain_changes());
    }
    engine.advance(secs(100_000.0));
    events.extend(engine.drain_events());
    keys.apply(&engine.drain_changes());
    let views = engine
        .processes()
        .into_iter()
        .map(|v| {
            let k = keys.keys(v.id);
            (v, k)
        })
        .collect();
    (views, events)
}

fn scenario() -> impl Strategy<Value = (Vec<Span>, Vec<usize>)> {
    (proptest::collection::vec(shape(), 1..4), any::<bool>()).prop_flat_map(|(shapes, batch)| {
        let mut spans: Vec<Span> =
            (1u64..).zip(&shapes).flat_map(|(n, shape)| spans(n, shape)).collect();
        if batch {
            // A batch consumer (its own trace) processing every checkout's message at once.
            let mut consumer = span(999, 99_900, "billing", "orders process")
                .kind(SpanKind::Consumer)
                .consumes("orders", "billing")
                .at(0.7, 0.8);
            for n in 1..=shapes.len() as u64 {
                consumer = consumer.link(10 * n, 100 * n + 2);
            }
            spans.push(consumer.build());
        }
        let order: Vec<usize> = (0..spans.len()).collect();
        (Just(spans), Just(order).prop_shuffle())
    })
}

/// The order-independent part of a process's final state.
fn essence((view, keys): &(ProcessView, Vec<(String, String)>)) -> String {
    let mut traces = view.traces.clone();
    traces.sort();
    format!(
        "{} {} {} {:?} spans={} errors={} traces={traces:?} keys={:?} failure={:?} stuck={} sla={}",
        view.id,
        view.process_type,
        view.state.as_str(),
        view.mode,
        view.spans,
        view.error_spans,
        keys,
        view.failure,
        view.stuck,
        view.sla_breached
    )
}

fn counts(events: &[Event]) -> HashMap<(String, EventKind), usize> {
    let mut counts = HashMap::new();
    for event in events {
        *counts.entry((event.process_id.to_hex(), event.kind)).or_insert(0) += 1;
    }
    counts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// All spans arriving at one instant, in any order: identical final state and events.
    #[test]
    fn any_order_at_one_instant_gives_the_same_state_and_events((spans, order) in scenario()) {
        let in_order: Vec<usize> = (0..spans.len()).collect();
        let (expected_state, expected_events) = run(&spans, &in_order, 0.0);
        let (state, events) = run(&spans, &order, 0.0);
        prop_assert_eq!(state, expected_state);
        prop_assert_eq!(counts(&events), counts(&expected_events));
    }

    /// Spans spread over time in any order: the same final state, and each event exactly once
    /// per occurrence (one `started`; one `completed` per `reopened` plus one).
    #[test]
    fn any_order_over_time_gives_the_same_final_state((spans, order) in scenario()) {
        let in_order: Vec<usize> = (0..spans.len()).collect();
        let (expected_state, _) = run(&spans, &in_order, 0.05);
        let (state, events) = run(&spans, &order, 0.05);
        let essence_of = |views: &[(ProcessView, Vec<(String, String)>)]| views.iter().map(essence).collect::<Vec<_>>();
        prop_assert_eq!(essence_of(&state), essence_of(&expected_state));
        let counts = counts(&events);
        for (view, _) in &state {
            let id = view.id.to_hex();
            let n = |kind| counts.get(&(id.clone(), kind)).copied().unwrap_or(0);
            prop_assert_eq!(n(EventKind::Started), 1, "{}", id);
            match view.state.as_str() {
                "completed" => prop_assert_eq!(n(EventKind::Completed), n(EventKind::Reopened) + 1),
                "failed" => prop_assert_eq!(n(EventKind::Failed), 1),
                // A declared subscriber never consumed: stuck for good, said once.
                _ => {
                    prop_assert!(view.stuck, "process {} running but not stuck", id);
                    prop_assert_eq!(n(EventKind::Stuck), 1);
                }
            }
        }
        // No event names a process that does not exist at the end.
        for (id, kind) in counts.keys() {
            prop_assert!(state.iter().any(|(v, _)| v.id.to_hex() == *id), "{:?} for vanished {}", kind, id);
        }
    }
}

/// The same spans through three shards behind the router.
fn run_sharded(spans: &[Span], order: &[usize], step: f64) -> Outcome {
    let config = EngineConfig {
        retain_finished_nanos: 1_000_000 * threadline_engine::config::SECOND,
        ..EngineConfig::default()
    };
    let mut shards = threadline_engine::sharded::Shards::new(3, &config);
    for engine in shards.engines_mut() {
        engine.declare_subscribers("kafka", "orders", &["payments", "inventory"]);
    }
    let mut events = Vec::new();
    let mut keys = support::KeyBook::default();
    for (i, index) in order.iter().enumerate() {
        #[allow(clippy::cast_precision_loss, reason = "small counts")]
        shards.ingest(&spans[*index], secs(1.0 + step * i as f64));
        events.extend(shards.drain_events());
        for engine in shards.engines_mut() {
            keys.apply(&engine.drain_changes());
        }
    }
    shards.advance(secs(100_000.0));
    events.extend(shards.drain_events());
    for engine in shards.engines_mut() {
        keys.apply(&engine.drain_changes());
    }
    let mut views: Vec<ProcessView> = shards.engines().iter().flat_map(Engine::processes).collect();
    views.sort_by_key(|v| v.id);
    let views = views
        .into_iter()
        .map(|v| {
            let k = keys.keys(v.id);
            (v, k)
        })
        .collect();
    (views, events)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Partitioning by process changes nothing: three shards end in the same state as one
    /// engine, whatever the arrival order, and fire each event once per occurrence.
    #[test]
    fn three_shards_end_like_one_engine((spans, order) in scenario()) {
        let in_order: Vec<usize> = (0..spans.len()).collect();
        let (expected, _) = run(&spans, &in_order, 0.05);
        let (sharded, events) = run_sharded(&spans, &order, 0.05);
        let essence_of = |views: &[(ProcessView, Vec<(String, String)>)]| views.iter().map(essence).collect::<Vec<_>>();
        prop_assert_eq!(essence_of(&sharded), essence_of(&expected));
        let counts = counts(&events);
        for (view, _) in &sharded {
            let id = view.id.to_hex();
            prop_assert_eq!(counts.get(&(id.clone(), EventKind::Started)).copied().unwrap_or(0), 1, "{}", id);
        }
    }
}
