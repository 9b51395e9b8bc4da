//! Every lifecycle rule on simulated time: spans go in at chosen instants, timers fire at
//! their exact due time, and the events that come out are compared with snapshots.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use expect_test::{Expect, expect};
use threadline_core::span::{Span, SpanKind};
use threadline_engine::config::{EngineConfig, SECOND, TypePolicy};
use threadline_engine::engine::{Engine, ProcessView, Waiting};
use threadline_testsuite::spans::{S, T0, secs, span, trace};

mod support;

/// The engine on simulated time, with a readable log of its events and the business keys a
/// process table would hold.
struct Sim {
    engine: Engine,
    log: Vec<String>,
    keys: support::KeyBook,
}

impl Sim {
    fn new() -> Self {
        Self::with(EngineConfig::default())
    }

    fn with(config: EngineConfig) -> Self {
        Self { engine: Engine::new(config), log: Vec::new(), keys: support::KeyBook::default() }
    }

    /// Spans arrive at `T0 + at_secs`.
    fn arrive(&mut self, at_secs: f64, spans: &[Span]) {
        for span in spans {
            self.engine.ingest(span, secs(at_secs));
        }
        self.collect();
    }

    fn advance(&mut self, to_secs: f64) {
        self.engine.advance(secs(to_secs));
        self.collect();
    }

    fn collect(&mut self) {
        self.keys.apply(&self.engine.drain_changes());
        for event in self.engine.drain_events() {
            #[allow(clippy::cast_precision_loss, reason = "readable test output")]
            let at = (event.at - T0) as f64 / S as f64;
            let id = event.process_id.to_hex();
            let short = id.trim_start_matches('0');
            // Engine times in details read as seconds after T0.
            let detail: Vec<String> = event
                .detail
                .split(' ')
                .map(|word| match word.parse::<u64>() {
                    #[allow(clippy::cast_precision_loss, reason = "readable test output")]
                    Ok(ns) if ns >= T0 => format!("T0+{:.3}s", (ns - T0) as f64 / S as f64),
                    _ => word.to_owned(),
                })
                .collect();
            let line = format!(
                "{at:.3}s {} #{short} [{}] {}",
                event.kind.as_str(),
                event.process_type,
                detail.join(" ")
            );
            self.log.push(line.trim_end().to_owned());
        }
    }

    fn check(&self, expected: Expect) {
        expected.assert_eq(&self.log.join("\n"));
    }

    fn process(&self, t: u64) -> ProcessView {
        self.engine.process(trace(t)).unwrap()
    }
}

fn checkout_root(t: u64) -> Span {
    span(t, 1, "frontend", "POST /checkout").kind(SpanKind::Server).at(0.0, 0.2).build()
}

fn order_placed(t: u64) -> Span {
    span(t, 2, "checkout", "orders send").parent(1).produces("orders").at(0.1, 0.11).build()
}

#[test]
fn completes_after_the_last_consumer_then_settles() {
    let mut sim = Sim::new();
    sim.arrive(0.2, &[order_placed(1), checkout_root(1)]);
    sim.arrive(
        1.0,
        &[span(1, 3, "payments", "orders process")
            .parent(2)
            .consumes("orders", "payments")
            .at(0.9, 1.0)
            .build()],
    );
    sim.advance(10.0);
    sim.check(expect![[r#"
          0.200s started #1 [frontend: POST /checkout]
          1.020s completed #1 [frontend: POST /checkout] structural"#]]);
    let process = sim.process(1);
    assert_eq!(process.state.as_str(), "completed");
    assert_eq!(process.spans, 3);
    assert_eq!(process.traces, vec![trace(1)]);
}

#[test]
fn fan_out_waits_for_every_consumer_group() {
    let mut sim = Sim::new();
    sim.engine.declare_subscribers("kafka", "orders", &["payments", "inventory"]);
    sim.arrive(0.2, &[order_placed(1), checkout_root(1)]);
    sim.arrive(
        0.5,
        &[span(1, 3, "payments", "orders process")
            .parent(2)
            .consumes("orders", "payments")
            .build()],
    );
    sim.advance(2.0);
    let waiting = sim.process(1).waiting_for;
    assert_eq!(
        waiting,
        vec![Waiting::Message {
            system: "kafka".into(),
            destination: "orders".into(),
            group: "inventory".into(),
            since: secs(0.2)
        }]
    );
    sim.arrive(
        3.0,
        &[span(1, 4, "inventory", "orders process")
            .parent(2)
            .consumes("orders", "inventory")
            .build()],
    );
    sim.advance(10.0);
    sim.check(expect![[r#"
          0.200s started #1 [frontend: POST /checkout]
          3.020s completed #1 [frontend: POST /checkout] structural"#]]);
}

#[test]
fn a_consumer_starting_a_new_linked_trace_stays_in_the_producers_process() {
    let mut sim = Sim::new();
    sim.engine.declare_subscribers("kafka", "orders", &["payments"]);
    // The consumer trace's inner span arrives first, before its root carries the link.
    sim.arrive(0.5, &[span(2, 11, "payments", "charge card").parent(10).build()]);
    sim.arrive(0.6, &[order_placed(1), checkout_root(1)]);
    sim.arrive(
        0.7,
        &[span(2, 10, "payments", "orders process")
            .consumes("orders", "payments")
            .link(1, 2)
            .build()],
    );
    sim.advance(10.0);
    sim.check(expect![[r#"
          0.600s started #1 [frontend: POST /checkout]
          0.720s completed #1 [frontend: POST /checkout] structural"#]]);
    let process = sim.process(2);
    assert_eq!(process.id, trace(1));
    assert_eq!(process.traces, vec![trace(1), trace(2)]);
    assert_eq!(process.spans, 4);
}

#[test]
fn out_of_order_arrival_consumer_before_producer_and_children_before_root() {
    let mut sim = Sim::new();
    sim.engine.declare_subscribers("kafka", "orders", &["payments"]);
    sim.arrive(
        0.1,
        &[span(1, 3, "payments", "orders process")
            .parent(2)
            .consumes("orders", "payments")
            .build()],
    );
    sim.arrive(0.2, &[order_placed(1)]);
    sim.advance(1.0);
    assert_eq!(
        sim.process(1).waiting_for,
        vec![Waiting::MissingParent { count: 1 }, Waiting::Root]
    );
    sim.arrive(1.5, &[checkout_root(1)]);
    sim.advance(10.0);
    sim.check(expect![[r#"
          1.500s started #1 [frontend: POST /checkout]
          1.520s completed #1 [frontend: POST /checkout] structural"#]]);
}

#[test]
fn a_process_of_many_spans_waits_for_every_missing_parent() {
    let mut sim = Sim::new();
    // 200 leaves arrive first, each under its own step span, then the 200 steps under the
    // root, the root last: far more spans than a short process holds.
    let leaves: Vec<Span> =
        (0..200).map(|i| span(1, 1000 + i, "worker", "leaf").parent(500 + i).build()).collect();
    sim.arrive(0.1, &leaves);
    sim.advance(1.0);
    assert_eq!(
        sim.process(1).waiting_for,
        vec![Waiting::MissingParent { count: 200 }, Waiting::Root]
    );
    let steps: Vec<Span> =
        (0..200).map(|i| span(1, 500 + i, "worker", "step").parent(1).build()).collect();
    sim.arrive(1.5, &steps);
    sim.arrive(1.6, &leaves[..10]);
    sim.advance(2.0);
    let process = sim.process(1);
    assert_eq!(process.waiting_for, vec![Waiting::MissingParent { count: 1 }, Waiting::Root]);
    sim.arrive(2.5, &[checkout_root(1)]);
    sim.advance(10.0);
    sim.check(expect![[r#"
        2.100s started #1 [unknown]
        2.520s completed #1 [frontend: POST /checkout] structural"#]]);
}

#[test]
fn a_late_span_reopens_a_completed_process() {
    let mut sim = Sim::new();
    sim.arrive(0.2, &[checkout_root(1)]);
    sim.advance(5.0);
    sim.arrive(6.0, &[span(1, 7, "audit", "record").parent(1).build()]);
    sim.advance(10.0);
    sim.check(expect![[r#"
          0.200s started #1 [frontend: POST /checkout]
          0.220s completed #1 [frontend: POST /checkout] structural
          6.000s reopened #1 [frontend: POST /checkout]
          6.020s completed #1 [frontend: POST /checkout] structural"#]]);
}

#[test]
fn a_lost_message_makes_the_process_stuck_where_it_waits() {
    let mut sim = Sim::with(EngineConfig {
        default_policy: TypePolicy { stuck_after_nanos: 30 * SECOND, ..TypePolicy::default() },
        ..EngineConfig::default()
    });
    sim.engine.declare_subscribers("kafka", "orders", &["payments", "inventory"]);
    sim.arrive(0.2, &[order_placed(1), checkout_root(1)]);
    sim.arrive(
        0.4,
        &[span(1, 3, "payments", "orders process")
            .parent(2)
            .consumes("orders", "payments")
            .build()],
    );
    sim.advance(29.0);
    assert!(!sim.process(1).stuck);
    sim.advance(3600.0);
    sim.check(expect![[r#"
        0.200s started #1 [frontend: POST /checkout]
        30.200s stuck #1 [frontend: POST /checkout] waiting on kafka orders for consumer group inventory since T0+0.200s"#]]);
    let process = sim.process(1);
    assert!(process.stuck);
    assert_eq!(process.state.as_str(), "running", "a known subscriber is awaited: no quiescence");
}

#[test]
fn the_sla_is_breached_at_the_deadline_while_still_running() {
    let mut sim = Sim::new();
    sim.engine.set_policy(
        "frontend: POST /checkout",
        TypePolicy { sla_nanos: Some(5 * SECOND), ..TypePolicy::default() },
    );
    sim.engine.declare_subscribers("kafka", "orders", &["payments"]);
    sim.arrive(0.2, &[order_placed(1), checkout_root(1)]);
    sim.advance(4.999);
    assert!(!sim.process(1).sla_breached);
    sim.advance(5.5);
    sim.arrive(
        7.0,
        &[span(1, 3, "payments", "orders process")
            .parent(2)
            .consumes("orders", "payments")
            .build()],
    );
    sim.advance(10.0);
    sim.check(expect![[r#"
        0.200s started #1 [frontend: POST /checkout]
        5.000s sla_breached #1 [frontend: POST /checkout] deadline T0+5.000s
        7.020s completed #1 [frontend: POST /checkout] structural"#]]);
}

#[test]
fn quiescence_completes_a_partially_instrumented_process() {
    let mut sim = Sim::new();
    // The span's parent lives in a service that is not instrumented: it never arrives.
    sim.arrive(0.2, &[checkout_root(1), span(1, 5, "legacy-client", "call").parent(4).build()]);
    sim.advance(1000.0);
    sim.check(expect![[r#"
        0.200s started #1 [frontend: POST /checkout]
        300.200s completed #1 [frontend: POST /checkout] quiescence"#]]);
}

#[test]
fn a_message_to_a_dead_letter_channel_fails_the_process() {
    let mut sim = Sim::new();
    sim.arrive(
        0.2,
        &[
            checkout_root(1),
            span(1, 6, "payments", "orders.dlq send").parent(1).produces("orders.dlq").build(),
        ],
    );
    sim.advance(10.0);
    sim.check(expect![[r#"
          0.200s started #1 [frontend: POST /checkout]
          0.200s failed #1 [frontend: POST /checkout] message sent to dead-letter channel orders.dlq"#]]);
}

#[test]
fn an_error_on_the_root_fails_the_process() {
    let mut sim = Sim::new();
    sim.arrive(
        0.2,
        &[span(1, 1, "frontend", "POST /checkout")
            .kind(SpanKind::Server)
            .error("payment declined")
            .build()],
    );
    sim.check(expect![[r#"
          0.200s started #1 [frontend: POST /checkout]
          0.200s failed #1 [frontend: POST /checkout] root span has error status: payment declined"#]]);
}

#[test]
fn business_keys_find_the_process() {
    let mut sim = Sim::new();
    sim.arrive(
        0.2,
        &[span(1, 1, "frontend", "POST /checkout")
            .attr("order.id", "o-123")
            .attr("host.id", "h1")
            .build()],
    );
    assert_eq!(sim.keys.find("order.id", "o-123"), vec![trace(1)]);
    assert!(sim.keys.find("host.id", "h1").is_empty(), "host.id is a semantic-convention key");
    assert_eq!(sim.keys.keys(trace(1)), vec![("order.id".to_owned(), "o-123".to_owned())]);
}

const SPECS: &str = r#"
version = 1

[[process]]
name = "checkout"
root = { service = "frontend", operation = "POST /checkout" }
sla = "10s"

[process.forbid]
errors = true
max_retries = 1

[[process.step]]
service = "checkout"
operation = "orders send"
order = 1

[[process.step]]
service = "payments"
operation = "orders process"
order = 2
critical = true

[[process.step]]
service = "mailer"
operation = "send receipt"
terminal = true

[[process.channel]]
system = "kafka"
destination = "orders"
subscribers = ["payments"]

[[process]]
name = "refund"
attribute = { key = "process.type", value = "refund" }
keys = ["refund.ref"]
"#;

fn spec_sim() -> Sim {
    let mut sim = Sim::new();
    let specs = threadline_config::spec::SpecFile::parse(SPECS, "specs.toml").unwrap();
    sim.engine.load_specs(&specs.processes);
    sim
}

fn receipt(t: u64, at: f64) -> Span {
    span(t, 9, "mailer", "send receipt").parent(3).at(at, at + 0.01).build()
}

fn payment(t: u64, id: u64, at: f64) -> Span {
    span(t, id, "payments", "orders process")
        .parent(2)
        .consumes("orders", "payments")
        .at(at, at + 0.1)
        .build()
}

#[test]
fn a_process_following_its_spec_passes() {
    let mut sim = spec_sim();
    sim.arrive(0.2, &[order_placed(1), checkout_root(1)]);
    sim.arrive(1.0, &[payment(1, 3, 0.5), receipt(1, 0.7)]);
    sim.advance(30.0);
    sim.check(expect![[r#"
        0.200s started #1 [checkout]
        1.020s completed #1 [checkout] structural"#]]);
    assert_eq!(sim.process(1).spec.unwrap().violations, Vec::<String>::new());
}

#[test]
fn a_terminal_step_is_awaited_before_structural_completion() {
    let mut sim = spec_sim();
    sim.arrive(0.2, &[order_placed(1), checkout_root(1)]);
    sim.arrive(1.0, &[payment(1, 3, 0.5)]);
    sim.advance(5.0);
    assert_eq!(sim.process(1).state.as_str(), "running", "the receipt is terminal");
    sim.arrive(6.0, &[receipt(1, 5.9)]);
    sim.advance(30.0);
    sim.check(expect![[r#"
        0.200s started #1 [checkout]
        6.020s completed #1 [checkout] structural"#]]);
}

#[test]
fn every_kind_of_spec_violation_is_listed() {
    let mut sim = spec_sim();
    // The payment is processed before the order is sent (wrong order), three times (more
    // retries than allowed), one of them with an error that is not critical... and the
    // mailer fails: errors are forbidden.
    sim.arrive(
        0.2,
        &[
            checkout_root(1),
            span(1, 2, "checkout", "orders send")
                .parent(1)
                .produces("orders")
                .at(0.4, 0.41)
                .build(),
            payment(1, 3, 0.3),
            payment(1, 4, 0.35),
            payment(1, 5, 0.45),
            span(1, 9, "mailer", "send receipt").parent(1).error("smtp down").at(0.5, 0.6).build(),
        ],
    );
    sim.advance(30.0);
    sim.check(expect![[r#"
        0.200s started #1 [checkout]
        0.220s completed #1 [checkout] structural
        0.220s spec_violated #1 [checkout] step payments orders process retried 2 times, more than 1; step payments orders process (order 2) happened before step checkout orders send (order 1); 1 spans have error status"#]]);
    let spec = sim.process(1).spec.unwrap();
    assert_eq!(spec.violations.len(), 3);

    // A missing step.
    let mut sim = spec_sim();
    sim.arrive(0.2, &[checkout_root(2), span(2, 9, "mailer", "send receipt").parent(1).build()]);
    sim.advance(30.0);
    sim.check(expect![[r#"
        0.200s started #2 [checkout]
        0.220s completed #2 [checkout] structural
        0.220s spec_violated #2 [checkout] missing step checkout orders send; missing step payments orders process"#]]);
}

#[test]
fn an_error_on_a_critical_step_fails_the_process() {
    let mut sim = spec_sim();
    sim.arrive(
        0.2,
        &[
            order_placed(1),
            checkout_root(1),
            span(1, 3, "payments", "orders process")
                .parent(2)
                .consumes("orders", "payments")
                .error("card declined")
                .build(),
        ],
    );
    sim.check(expect![[r#"
        0.200s started #1 [checkout]
        0.200s failed #1 [checkout] critical step payments orders process has error status"#]]);
}

#[test]
fn an_attribute_recognises_the_type_and_spec_keys_index_it() {
    let mut sim = spec_sim();
    sim.arrive(
        0.2,
        &[
            span(7, 2, "payments", "refund card")
                .parent(1)
                .attr("process.type", "refund")
                .attr("refund.ref", "R-9")
                .build(),
            span(7, 1, "backoffice", "POST /refunds").kind(SpanKind::Server).build(),
        ],
    );
    sim.advance(10.0);
    sim.check(expect![[r#"
        0.200s started #7 [refund]
        0.220s completed #7 [refund] structural"#]]);
    assert_eq!(sim.keys.find("refund.ref", "R-9"), vec![trace(7)]);
}

#[test]
fn spec_timeouts_and_declared_subscribers_apply() {
    let mut sim = spec_sim();
    // Declared subscriber `payments`: the message blocks; the spec's 10 s SLA fires.
    sim.arrive(0.2, &[order_placed(1), checkout_root(1)]);
    sim.advance(60.0);
    sim.check(expect![[r#"
        0.200s started #1 [checkout]
        10.000s sla_breached #1 [checkout] deadline T0+10.000s"#]]);
    assert_eq!(
        sim.process(1).waiting_for[0],
        Waiting::Message {
            system: "kafka".into(),
            destination: "orders".into(),
            group: "payments".into(),
            since: secs(0.2)
        }
    );
}

#[test]
fn a_batch_consumer_settles_each_producer_without_merging_their_processes() {
    let mut sim = Sim::new();
    sim.engine.declare_subscribers("kafka", "orders", &["billing"]);
    sim.arrive(0.2, &[order_placed(1), checkout_root(1), order_placed(2), checkout_root(2)]);
    // One consumer span processes both messages, in a trace of its own.
    sim.arrive(
        1.0,
        &[span(50, 500, "billing", "orders process")
            .kind(SpanKind::Consumer)
            .consumes("orders", "billing")
            .link(1, 2)
            .link(2, 2)
            .build()],
    );
    sim.advance(30.0);
    sim.check(expect![[r#"
        0.200s started #1 [frontend: POST /checkout]
        0.200s started #2 [frontend: POST /checkout]
        1.000s started #32 [billing: orders process]
        1.020s completed #1 [frontend: POST /checkout] structural
        1.020s completed #2 [frontend: POST /checkout] structural
        1.020s completed #32 [billing: orders process] structural"#]]);
    assert_eq!(sim.process(1).traces, vec![trace(1)]);
    assert_eq!(sim.process(50).traces, vec![trace(50)]);
}

#[test]
fn aggregates_per_type_operation_and_channel() {
    let mut sim = Sim::new();
    sim.engine.set_policy(
        "frontend: POST /checkout",
        TypePolicy { sla_nanos: Some(2 * SECOND), ..TypePolicy::default() },
    );
    sim.engine.declare_subscribers("kafka", "orders", &["payments"]);
    // Four checkouts lasting 1, 2, 3 and 4 s (by their consumer's end); one stays stuck.
    for n in 1..=4u64 {
        #[allow(clippy::cast_precision_loss, reason = "small numbers")]
        let end = n as f64;
        sim.arrive(0.2, &[order_placed(n), checkout_root(n)]);
        sim.arrive(
            end,
            &[span(n, 3, "payments", "orders process")
                .parent(2)
                .consumes("orders", "payments")
                .at(end - 0.5, end)
                .error_if(n == 4, "declined")
                .build()],
        );
    }
    sim.arrive(5.0, &[order_placed(5), checkout_root(5)]);
    sim.advance(70.0);
    let summaries = sim.engine.type_summaries(secs(70.0), 5);
    let checkout = &summaries[0];
    assert_eq!(checkout.name, "frontend: POST /checkout");
    assert_eq!(
        (
            checkout.started,
            checkout.completed,
            checkout.in_flight,
            checkout.stuck,
            checkout.sla_breached
        ),
        // Deadlines at 2 s: checkouts 2 (at the deadline exactly), 3, 4 and the stuck 5.
        (5, 4, 1, 1, 4),
        "{checkout:#?}"
    );
    // Durations of the four completed checkouts: 1, 2, 3, 4 s (within 1%).
    let p50 = checkout.durations.p50.unwrap();
    assert!((1_980_000_000..=2_020_000_000).contains(&p50), "{p50}");
    assert_eq!(checkout.sla_compliance, Some(0.25));
    assert!((checkout.completed_per_minute - 0.8).abs() < 1e-9);

    let graph = sim.engine.graph(secs(70.0), 5);
    // No CLIENT/SERVER pairs in this flow: no synchronous edges.
    assert!(graph.calls.is_empty());
    let payments = graph.operations.iter().find(|o| o.service == "payments").unwrap();
    assert_eq!((payments.count, payments.errors), (4, 1));
    // Four payment spans arrived in the first minute; the window is five minutes.
    assert!((payments.per_minute - 0.8).abs() < 1e-9, "{}", payments.per_minute);
    let orders = &graph.channels[0];
    assert_eq!((orders.destination.as_str(), orders.messages), ("orders", 5));
    assert_eq!(orders.producers, vec![("checkout".to_owned(), 5)]);
    let group = &orders.groups[0];
    assert_eq!((group.group.as_str(), group.consumed), ("payments", 4));
    // The producer ends at 0.11 s; consumers start at 0.5, 1.5, 2.5, 3.5 s.
    let wait = group.waits.p50.unwrap();
    assert!((1_376_000_000..=1_404_000_000).contains(&wait), "{wait}");
}

#[test]
fn at_the_process_cap_finished_processes_give_way_before_new_ones_go_untracked() {
    let mut sim = Sim::with(EngineConfig { max_in_flight: 2, ..EngineConfig::default() });
    sim.arrive(0.2, &[checkout_root(1), checkout_root(2)]);
    sim.advance(1.0);
    // Both finished and retained; a third process evicts the one that finished first.
    sim.arrive(2.0, &[checkout_root(3).clone()]);
    assert!(sim.engine.process(trace(1)).is_none());
    assert!(sim.engine.process(trace(2)).is_some());
    // Two running processes fill the cap: the next one is not tracked, and counted.
    sim.arrive(2.0, &[order_placed(4), checkout_root(4)]);
    sim.engine.declare_subscribers("kafka", "orders", &["payments"]);
    sim.arrive(3.0, &[order_placed(5), checkout_root(5)]);
    sim.arrive(3.0, &[order_placed(6), checkout_root(6)]);
    let stats = sim.engine.stats();
    // Both spans of the untracked process 6 are counted.
    assert_eq!((stats.evicted_finished, stats.untracked_spans), (3, 2), "{stats:?}");
    assert!(sim.engine.process(trace(6)).is_none());
}
