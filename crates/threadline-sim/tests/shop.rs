//! The shop as a generator: deterministic, the shape the issue asks for (25 services, 10
//! channels, four process types, business keys, messaging conventions, batch consumers), its
//! spec file valid and committed, and every fault recorded with an expectation.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::collections::BTreeSet;

use threadline_core::span::{Span, SpanKind};
use threadline_core::value::find;
use threadline_sim::{FaultKind, FaultRates, Outcome, ProcessKind, Shop, ShopConfig};

const T0: u64 = 1_800_000_000_000_000_000;
const S: u64 = 1_000_000_000;

fn run(config: ShopConfig, secs: u64) -> (Shop, Vec<Span>) {
    let mut shop = Shop::new(config, T0);
    let mut spans = Vec::new();
    let mut now = T0;
    while now < T0 + secs * S {
        now += S / 10;
        spans.extend(shop.due(now));
    }
    // Let everything planned be sent.
    spans.extend(shop.take_due(u64::MAX));
    (shop, spans)
}

#[test]
fn the_same_seed_gives_the_same_shop() {
    let config = ShopConfig { speed: 10.0, processes_per_sec: 20.0, ..ShopConfig::default() };
    let (a, spans_a) = run(config.clone(), 30);
    let (b, spans_b) = run(config.clone(), 30);
    assert_eq!(spans_a, spans_b);
    assert_eq!(a.expectations(), b.expectations());
    let (_, spans_c) = run(ShopConfig { seed: 2, ..config }, 30);
    assert_ne!(spans_a, spans_c);
}

#[test]
fn services_channels_types_and_conventions() {
    let (shop, spans) = run(
        ShopConfig {
            speed: 20.0,
            processes_per_sec: 40.0,
            faults: FaultRates::none(),
            ..ShopConfig::default()
        },
        60,
    );
    let services: BTreeSet<&str> = spans.iter().map(|s| s.resource.service_name()).collect();
    assert_eq!(services.len(), 25, "{services:?}");
    let channels: BTreeSet<String> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Producer)
        .filter_map(|s| {
            find(&s.attributes, "messaging.destination.name")?.as_str().map(str::to_owned)
        })
        .collect();
    assert_eq!(channels.len(), 9, "every channel but the dead-letter one: {channels:?}");
    let kinds: BTreeSet<&str> = shop.expectations().iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, BTreeSet::from(["catalog-import", "checkout", "inventory-sync", "refund"]));
    // Consumers name their group; some start a trace of their own, linked to the message.
    let consumers: Vec<&Span> = spans.iter().filter(|s| s.kind == SpanKind::Consumer).collect();
    assert!(
        consumers.iter().all(|s| find(&s.attributes, "messaging.consumer.group.name").is_some())
    );
    assert!(consumers.iter().any(|s| s.parent_span_id.is_none() && s.links.len() == 1));
    // Baggage keys on every span of a process.
    let checkout_spans = spans.iter().filter(|s| find(&s.attributes, "order.id").is_some()).count();
    assert!(checkout_spans > spans.len() / 2);
    assert!(spans.iter().any(|s| find(&s.attributes, "sku").is_some()));
    assert!(spans.iter().any(|s| find(&s.attributes, "merchant.id").is_some()));
    // Without faults, everything completes in time.
    assert!(
        shop.expectations().iter().all(|e| e.is_clean()),
        "{:?}",
        shop.expectations().iter().find(|e| !e.is_clean())
    );
    assert!(shop.faults().is_empty());
}

#[test]
fn every_fault_is_recorded_with_what_it_leads_to() {
    let faults = FaultRates {
        step_error: 0.05,
        retry: 0.1,
        dead_letter: 0.05,
        lost_message: 0.05,
        slow_consumer: 0.05,
        late_span: 0.05,
        group_outage: 0.2,
        clock_skew: true,
    };
    let (shop, _) = run(
        ShopConfig {
            speed: 20.0,
            processes_per_sec: 50.0,
            faults,
            seed: 7,
            ..ShopConfig::default()
        },
        120,
    );
    let seen: BTreeSet<String> = shop.faults().iter().map(|f| format!("{:?}", f.kind)).collect();
    assert_eq!(seen.len(), 8, "every kind of fault: {seen:?}");
    for e in shop.expectations() {
        let has = |k| e.faults.contains(&k);
        if has(FaultKind::LostMessage) {
            assert_eq!(e.outcome, Outcome::Running);
            assert!(!e.stuck.is_empty() && e.sla_breached);
        }
        if has(FaultKind::DeadLetter) || has(FaultKind::StepError) {
            assert_eq!(e.outcome, Outcome::Failed, "{e:?}");
        }
        if has(FaultKind::SlowConsumer) && e.outcome == Outcome::Completed {
            assert!(e.sla_breached, "{e:?}");
        }
        if has(FaultKind::GroupOutage) {
            assert!(!e.stuck.is_empty() && e.sla_breached, "{e:?}");
        }
        let outcome_faults = [
            FaultKind::LostMessage,
            FaultKind::DeadLetter,
            FaultKind::StepError,
            FaultKind::SlowConsumer,
            FaultKind::GroupOutage,
        ];
        if !e.faults.iter().any(|f| outcome_faults.contains(f)) {
            assert!(e.is_clean(), "noise faults change nothing: {e:?}");
        }
    }
    assert!(
        shop.expectations()
            .iter()
            .any(|e| e.kind == ProcessKind::Checkout && e.faults.contains(&FaultKind::Retry))
    );
}

#[test]
fn the_spec_file_is_valid_and_committed() {
    for speed in [1.0, 20.0, 60.0] {
        threadline_config::spec::SpecFile::parse(&threadline_sim::spec_toml(speed), "shop")
            .unwrap();
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/shop/specs.toml");
    let expected = threadline_sim::spec_toml(1.0);
    if std::env::var_os("THREADLINE_WRITE_SPECS").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        expected,
        "regenerate with THREADLINE_WRITE_SPECS=1"
    );
}
