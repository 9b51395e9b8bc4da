//! Engine alone, one core: throughput on a realistic mix of checkouts, and memory per
//! in-flight process measured by a counting allocator.
//!
//! The mix: each checkout is a root server span, a client call, a server span, a producer to
//! `orders` subscribed by two consumer groups, and per group a consumer starting a new trace
//! linked to the producer with one span of work under it: 10 spans, 3 traces, 1 message
//! fanned out to 2 groups. Spans arrive in export order (children before parents).
//! The baseline, measured in the same run, is the cheapest thing any span pipeline does: one
//! hash-map insert per span keyed by trace id.
//!
//! Run: `cargo bench -p threadline-engine --bench engine`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use threadline_core::span::{Span, SpanKind};
use threadline_engine::config::{EngineConfig, MILLISECOND};
use threadline_engine::engine::Engine;
use threadline_testsuite::spans::{T0, span};

/// Counts live heap bytes, to measure the engine's memory per process.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code, reason = "a global allocator wrapper is unsafe by definition")]
// SAFETY: every call forwards to the system allocator with the same arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The spans of checkout `n`, in export order; `consumed` false leaves the message unconsumed
/// (the process stays in flight).
fn checkout(n: u64, consumed: bool) -> Vec<Span> {
    let t = 10 * n;
    let id = |k: u64| 100 * n + k;
    let mut spans = vec![
        span(t, id(4), "checkout", "orders send")
            .parent(id(3))
            .produces("orders")
            .attr("order.id", format!("o-{n}"))
            .build(),
        span(t, id(3), "checkout", "POST /orders").kind(SpanKind::Server).parent(id(2)).build(),
        span(t, id(2), "frontend", "POST checkout/orders")
            .kind(SpanKind::Client)
            .parent(id(1))
            .build(),
        span(t, id(1), "frontend", "POST /checkout")
            .kind(SpanKind::Server)
            .attr("order.id", format!("o-{n}"))
            .build(),
    ];
    if consumed {
        for (i, group) in [(0, "payments"), (1, "inventory")] {
            spans.push(span(t + 1 + i, id(20 + i), group, "work").parent(id(10 + i)).build());
            spans.push(
                span(t + 1 + i, id(10 + i), group, "orders process")
                    .consumes("orders", group)
                    .link(t, id(4))
                    .build(),
            );
        }
    }
    spans
}

fn engine() -> Engine {
    let mut engine = Engine::new(EngineConfig {
        retain_finished_nanos: 10 * MILLISECOND,
        ..EngineConfig::default()
    });
    engine.declare_subscribers("kafka", "orders", &["payments", "inventory"]);
    engine
}

fn main() {
    const PROCESSES: u64 = 50_000;
    let spans: Vec<Span> = (1..=PROCESSES).flat_map(|n| checkout(n, true)).collect();
    println!("mix: {PROCESSES} checkouts, {} spans", spans.len());

    let mut baseline_rates = Vec::new();
    let mut engine_rates = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let mut map: HashMap<_, u32> = HashMap::new();
        for span in &spans {
            *map.entry(span.trace_id).or_default() += 1;
        }
        std::hint::black_box(&map);
        baseline_rates.push(rate(spans.len(), start));

        let mut engine = engine();
        let start = Instant::now();
        // 100 spans per millisecond of engine time: timers fire as they would live. Changes
        // are drained every 10 ms of engine time (the server reports them every 25 ms, or at
        // once after a quiet spell).
        let mut changed = 0usize;
        for (i, span) in spans.iter().enumerate() {
            engine.ingest(span, T0 + (i as u64 / 100) * MILLISECOND);
            if i % 1000 == 999 {
                changed += engine.drain_changes().views.len();
            }
        }
        engine.advance(T0 + 3_600_000 * MILLISECOND);
        changed += engine.drain_changes().views.len();
        std::hint::black_box(changed);
        engine_rates.push(rate(spans.len(), start));
        let completed =
            engine.drain_events().iter().filter(|e| e.kind.as_str() == "completed").count();
        assert_eq!(completed as u64, PROCESSES, "every checkout completes");
    }
    let baseline = median(&mut baseline_rates);
    let engine_rate = median(&mut engine_rates);
    println!("baseline (hash-map insert per span)   {baseline:>12.0} spans/s");
    println!(
        "engine (ingest, timers, events, changes) {engine_rate:>9.0} spans/s  ({:.2}x baseline)",
        engine_rate / baseline
    );

    // One long process (a catalog import): LONG spans of one trace, each a child of the
    // root, which arrives last. Its cost per span must not grow with the spans before it.
    const LONG: u64 = 50_000;
    let long: Vec<Span> = (2..=LONG + 1)
        .map(|k| span(1, k, "catalog", "import item").parent(1).build())
        .chain(std::iter::once(
            span(1, 1, "catalog", "POST /import").kind(SpanKind::Server).build(),
        ))
        .collect();
    let mut long_rates = Vec::new();
    for _ in 0..3 {
        let mut engine = engine();
        let start = Instant::now();
        for (i, span) in long.iter().enumerate() {
            engine.ingest(span, T0 + (i as u64 / 100) * MILLISECOND);
        }
        long_rates.push(rate(long.len(), start));
        engine.advance(T0 + 3_600_000 * MILLISECOND);
        let completed =
            engine.drain_events().iter().filter(|e| e.kind.as_str() == "completed").count();
        assert_eq!(completed, 1, "the long process completes");
    }
    let long_rate = median(&mut long_rates);
    println!(
        "engine, one process of {LONG} spans     {long_rate:>12.0} spans/s  ({:.2}x the mix)",
        long_rate / engine_rate
    );

    // Memory per in-flight process: checkouts whose message is never consumed stay running.
    for with_keys in [true, false] {
        let in_flight: Vec<Span> = (1..=PROCESSES)
            .flat_map(|n| checkout(n, false))
            .map(|mut span| {
                if !with_keys {
                    span.attributes.retain(|kv| kv.key != "order.id");
                }
                span
            })
            .collect();
        let mut engine = engine();
        let before = LIVE.load(Ordering::Relaxed);
        for span in &in_flight {
            engine.ingest(span, T0);
        }
        // Events and changes are handed on (to the process writer), not kept: drain them
        // before measuring.
        drop(engine.drain_events());
        drop(engine.drain_changes());
        let after = LIVE.load(Ordering::Relaxed);
        assert_eq!(engine.stats().running as u64, PROCESSES);
        #[allow(clippy::cast_precision_loss, reason = "a ratio")]
        let per_process = (after - before) as f64 / PROCESSES as f64;
        println!(
            "memory per in-flight process          {per_process:>12.0} bytes  ({} spans, 1 pending message{}; all engine structures included)",
            in_flight.len() as u64 / PROCESSES,
            if with_keys { ", 1 business key" } else { ", no business key" }
        );
    }
}

#[allow(clippy::cast_precision_loss, reason = "a rate")]
fn rate(spans: usize, start: Instant) -> f64 {
    spans as f64 / start.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
