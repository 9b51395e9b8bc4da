//! The critical path crosses asynchronous hops: a consumer's trace, the channel wait before
//! it, and back through its producer to the process root.

use expect_test::expect;
use threadline_core::span::SpanKind;
use threadline_engine::critical_path::{Segment, critical_path};
use threadline_testsuite::spans::{S, T0, span};

#[allow(clippy::cast_precision_loss, reason = "readable test output")]
fn render(segments: &[Segment]) -> String {
    let secs = |ns: u64| (ns - T0) as f64 / S as f64;
    segments
        .iter()
        .map(|segment| match segment {
            Segment::Operation { service, name, start, end, .. } => {
                format!("{:.2}-{:.2} {service}: {name}", secs(*start), secs(*end))
            }
            Segment::ChannelWait { system, destination, consumer_group, start, end, .. } => {
                format!(
                    "{:.2}-{:.2} wait in {system} {destination} for {consumer_group}",
                    secs(*start),
                    secs(*end)
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_path_runs_through_the_channel_wait_into_the_consumer_trace() {
    let spans = vec![
        span(1, 1, "frontend", "POST /checkout").kind(SpanKind::Server).at(0.0, 0.3).build(),
        span(1, 2, "frontend", "POST checkout/orders")
            .kind(SpanKind::Client)
            .parent(1)
            .at(0.01, 0.25)
            .build(),
        span(1, 3, "checkout", "POST /orders")
            .kind(SpanKind::Server)
            .parent(2)
            .at(0.02, 0.24)
            .build(),
        span(1, 5, "checkout", "SELECT stock")
            .kind(SpanKind::Client)
            .parent(3)
            .at(0.03, 0.06)
            .build(),
        span(1, 4, "checkout", "orders send").parent(3).produces("orders").at(0.1, 0.11).build(),
        // A new trace for the consumer, linked to the producer.
        span(2, 10, "payments", "orders process")
            .consumes("orders", "payments")
            .link(1, 4)
            .at(0.5, 0.9)
            .build(),
        span(2, 11, "payments", "charge card").parent(10).at(0.55, 0.8).build(),
    ];
    expect![[r#"
        0.00-0.01 frontend: POST /checkout
        0.01-0.02 frontend: POST checkout/orders
        0.02-0.03 checkout: POST /orders
        0.03-0.06 checkout: SELECT stock
        0.06-0.10 checkout: POST /orders
        0.10-0.11 checkout: orders send
        0.11-0.50 wait in kafka orders for payments
        0.50-0.55 payments: orders process
        0.55-0.80 payments: charge card
        0.80-0.90 payments: orders process"#]]
    .assert_eq(&render(&critical_path(&spans)));
}

#[test]
fn a_synchronous_trace_follows_the_last_finishing_children() {
    let spans = vec![
        span(1, 1, "api", "GET /order").kind(SpanKind::Server).at(0.0, 1.0).build(),
        span(1, 2, "api", "db").parent(1).at(0.1, 0.4).build(),
        span(1, 3, "api", "cache").parent(1).at(0.2, 0.3).build(),
        span(1, 4, "api", "render").parent(1).at(0.5, 0.9).build(),
    ];
    expect![[r#"
        0.00-0.10 api: GET /order
        0.10-0.40 api: db
        0.40-0.50 api: GET /order
        0.50-0.90 api: render
        0.90-1.00 api: GET /order"#]]
    .assert_eq(&render(&critical_path(&spans)));
    assert!(critical_path(&[]).is_empty());
}
