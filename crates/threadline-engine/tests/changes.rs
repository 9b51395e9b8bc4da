//! What a process table is fed: every changed process once per drain, as it is now, the
//! processes folded into another, and the business keys found (the engine keeps none).

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use threadline_core::span::SpanKind;
use threadline_engine::config::EngineConfig;
use threadline_engine::engine::{Engine, ProcessState as State};
use threadline_testsuite::spans::{secs, span, trace};

#[test]
fn each_changed_process_is_drained_once_with_its_current_state() {
    let mut engine = Engine::new(EngineConfig::default());
    let root = span(1, 1, "shop", "checkout")
        .kind(SpanKind::Server)
        .attr("order.id", "o-1")
        .at(0.0, 0.1)
        .build();
    engine.ingest(&root, secs(0.0));
    engine.ingest(
        &span(2, 1, "search", "query").kind(SpanKind::Server).at(0.0, 0.1).build(),
        secs(0.0),
    );
    let changes = engine.drain_changes();
    let mut ids: Vec<_> = changes.views.iter().map(|v| v.id).collect();
    ids.sort();
    assert_eq!(ids, vec![trace(1), trace(2)]);
    assert!(changes.removed.is_empty());
    assert_eq!(changes.keys, vec![(trace(1), "order.id".to_owned(), "o-1".to_owned())]);
    let checkout = changes.views.iter().find(|v| v.id == trace(1)).unwrap();
    assert_eq!(checkout.state, State::Running);

    // Nothing changed: nothing drained.
    assert_eq!(engine.drain_changes(), Default::default());

    // A second span changes one process only; drained once however many changes it had.
    for id in 2..5 {
        engine.ingest(&span(1, id, "shop", "step").parent(1).at(0.01, 0.02).build(), secs(0.005));
    }
    let changes = engine.drain_changes();
    assert_eq!(changes.views.len(), 1);
    assert_eq!(changes.views[0].spans, 4);
    assert!(changes.keys.is_empty(), "no span carried a key");

    // Completion (a timer) is a change too.
    engine.advance(secs(120.0));
    let views = engine.drain_changes().views;
    assert!(views.iter().any(|v| v.id == trace(1) && v.state == State::Completed), "{views:?}");
}

#[test]
fn a_business_key_is_drained_once_per_process_however_many_spans_carry_it() {
    let mut engine = Engine::new(EngineConfig::default());
    // Spans of twenty processes interleaved, as spans of concurrent processes arrive: each
    // carries its process's order id, and every other one also a merchant id shared by all.
    for step in 1..=5 {
        for process in 1..=20u64 {
            let order = format!("o-{process}");
            let mut s =
                span(process, step, "shop", "step").at(0.0, 0.1).attr("order.id", order.as_str());
            if step > 1 {
                s = s.parent(1);
            }
            if step % 2 == 0 {
                s = s.attr("merchant.id", "m-1");
            }
            engine.ingest(&s.build(), secs(0.0));
        }
    }
    let mut keys = engine.drain_changes().keys;
    keys.sort();
    let mut expected: Vec<_> = (1..=20u64)
        .flat_map(|p| {
            [
                (trace(p), "order.id".to_owned(), format!("o-{p}")),
                (trace(p), "merchant.id".to_owned(), "m-1".to_owned()),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(keys, expected);

    // The next drain reports a key seen again, once: the engine keeps no keys, the table
    // takes it again as it is.
    for step in 6..=7 {
        engine.ingest(
            &span(3, step, "shop", "step").parent(1).at(0.0, 0.1).attr("order.id", "o-3").build(),
            secs(0.0),
        );
    }
    assert_eq!(
        engine.drain_changes().keys,
        vec![(trace(3), "order.id".to_owned(), "o-3".to_owned())]
    );
}

#[test]
fn a_process_folded_into_another_is_reported_gone() {
    let mut engine = Engine::new(EngineConfig::default());
    // The consumer's trace arrives first, then the link that joins it to the producer's
    // process: the consumer's provisional process is folded in.
    engine.ingest(
        &span(2, 10, "worker", "process").kind(SpanKind::Consumer).at(0.2, 0.3).build(),
        secs(0.0),
    );
    engine.ingest(
        &span(1, 1, "shop", "checkout").kind(SpanKind::Server).at(0.0, 0.1).build(),
        secs(0.0),
    );
    engine.drain_changes();
    engine.ingest(&span(2, 11, "worker", "handle").link(1, 1).at(0.21, 0.25).build(), secs(0.01));
    let changes = engine.drain_changes();
    let (views, removed) = (changes.views, changes.removed);
    let process = engine.process(trace(2)).unwrap();
    assert_eq!(process.id, trace(1));
    assert_eq!(removed, vec![(trace(2), trace(1))]);
    assert!(views.iter().any(|v| v.id == trace(1) && v.traces.contains(&trace(2))), "{views:?}");
}
