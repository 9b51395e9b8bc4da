//! The simulated shop against the running server, twenty times faster than real time:
//! Threadline must find exactly the faults injected. Every lost message is reported stuck at
//! its channel and consumer group, every slow path breaches its SLA, every dead letter and
//! failed critical step is a failure, every consumer group outage shows as stuck messages, and
//! every process without such a fault completes in time: precision and recall both 100%.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use threadline_api_types::{ProcessEventView, ProcessListResponse};
use threadline_sim::{Exporter, FaultRates, Outcome, ProcessKind, Protocol, Shop, ShopConfig};
use threadline_testsuite::server::{Options, TempDir, TestServer};

const SPEED: f64 = 20.0;
const S: u64 = 1_000_000_000;

fn unix_nanos() -> u64 {
    u64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos(),
    )
    .unwrap()
}

/// What one process looked like to Threadline, or to the shop.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Finding {
    Failed,
    SlaBreached,
    Stuck(String, String),
    Completed,
    Running,
}

/// `waiting on kafka CHANNEL for consumer group A, B since T` → (CHANNEL, A), (CHANNEL, B).
fn stuck_places(detail: &str) -> Vec<(String, String)> {
    let Some(rest) = detail.strip_prefix("waiting on kafka ") else { return Vec::new() };
    let Some((channel, rest)) = rest.split_once(" for consumer group ") else { return Vec::new() };
    let groups = rest.split(" since ").next().unwrap_or("");
    groups.split(", ").map(|g| (channel.to_owned(), g.to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threadline_finds_exactly_the_faults_injected() {
    let dir = TempDir::new("shop-faults").unwrap();
    let specs = dir.path().join("specs.toml");
    std::fs::write(&specs, threadline_sim::spec_toml(SPEED)).unwrap();
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            args: vec!["--specs".into(), specs.to_str().unwrap().into()],
            // Two engine shards whatever the machine: batch consumers and links then cross
            // shards, as they do on larger machines.
            config: Some("version = 1\n[engine]\nshards = 2\n".into()),
            ..Options::default()
        },
    )
    .unwrap();
    let mut exporter =
        Exporter::connect(Protocol::Http, &server.otlp_http_url(), None).await.unwrap();
    let faults = FaultRates {
        step_error: 0.06,
        retry: 0.1,
        dead_letter: 0.06,
        lost_message: 0.06,
        slow_consumer: 0.06,
        late_span: 0.05,
        group_outage: 0.1,
        clock_skew: true,
    };
    let start = unix_nanos();
    let mut shop = Shop::new(
        ShopConfig {
            speed: SPEED,
            processes_per_sec: 40.0,
            faults,
            seed: 11,
            kinds: ProcessKind::ALL.to_vec(),
        },
        start,
    );
    // Four seconds of new processes, then until everything is sent and observable.
    loop {
        let now = unix_nanos();
        let spans = if now < start + 4 * S { shop.due(now) } else { shop.take_due(now) };
        for batch in spans.chunks(1000) {
            exporter.export(batch).await.unwrap();
        }
        let settled = shop.expectations().iter().map(|e| e.settled_by).max().unwrap_or(0);
        if now >= start + 4 * S && shop.pending_spans() == 0 && now > settled + 2 * S {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expectations = shop.expectations().to_vec();
    assert!(expectations.len() > 100, "{}", expectations.len());

    // Every event Threadline logged, by process.
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/events?after=0", server.api_url()))
        .send()
        .await
        .unwrap();
    let events =
        threadline_testsuite::sse::read_events(response, Duration::from_secs(3), |_| false).await;
    let mut by_process: BTreeMap<String, Vec<ProcessEventView>> = BTreeMap::new();
    for event in events {
        by_process.entry(event.process_id.clone()).or_default().push(event);
    }

    let mut expected: BTreeSet<(String, Finding)> = BTreeSet::new();
    let mut found: BTreeSet<(String, Finding)> = BTreeSet::new();
    for e in &expectations {
        let name = format!("{} {}={}", e.kind.name(), e.key.0, e.key.1);
        expected.insert((
            name.clone(),
            match e.outcome {
                Outcome::Completed => Finding::Completed,
                Outcome::Failed => Finding::Failed,
                Outcome::Running => Finding::Running,
            },
        ));
        if e.sla_breached {
            expected.insert((name.clone(), Finding::SlaBreached));
        }
        for (channel, group) in &e.stuck {
            expected.insert((name.clone(), Finding::Stuck(channel.clone(), group.clone())));
        }
        let list: ProcessListResponse = server
            .api_json(&format!("/api/v1/processes?key={}:{}", e.key.0, e.key.1))
            .await
            .unwrap();
        // A refund carries the order.id of its order too: one process of the type.
        let of_type: Vec<_> =
            list.processes.iter().filter(|p| p.process_type == e.kind.name()).collect();
        assert_eq!(of_type.len(), 1, "{name}: {list:?}");
        let process = of_type[0];
        found.insert((
            name.clone(),
            match process.state.as_str() {
                "completed" => Finding::Completed,
                "failed" => Finding::Failed,
                _ => Finding::Running,
            },
        ));
        for event in by_process.get(&process.id).into_iter().flatten() {
            match event.kind.as_str() {
                "sla_breached" => {
                    found.insert((name.clone(), Finding::SlaBreached));
                }
                "stuck" => {
                    for (channel, group) in stuck_places(&event.detail) {
                        found.insert((name.clone(), Finding::Stuck(channel, group)));
                    }
                }
                _ => {}
            }
        }
    }
    let missed: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    let faults_of = |name: &str| {
        expectations
            .iter()
            .find(|e| name.ends_with(&format!("{}={}", e.key.0, e.key.1)))
            .map(|e| e.faults.clone())
    };
    let detail: Vec<String> = missed
        .iter()
        .map(|(n, f)| format!("missed {f:?} of {n} (faults {:?})", faults_of(n)))
        .chain(extra.iter().map(|(n, f)| format!("extra {f:?} of {n} (faults {:?})", faults_of(n))))
        .collect();
    let positives = |set: &BTreeSet<(String, Finding)>| {
        set.iter().filter(|(_, f)| !matches!(f, Finding::Completed)).count()
    };
    let true_positives =
        expected.intersection(&found).filter(|(_, f)| !matches!(f, Finding::Completed)).count();
    #[allow(clippy::cast_precision_loss, reason = "small counts")]
    let (precision, recall) = (
        true_positives as f64 / positives(&found).max(1) as f64,
        true_positives as f64 / positives(&expected).max(1) as f64,
    );
    assert!(
        detail.is_empty(),
        "precision {precision:.3}, recall {recall:.3}:\n{}",
        detail.join("\n")
    );
    #[allow(clippy::print_stderr, reason = "the figures for the record")]
    {
        eprintln!(
            "{} processes ({} without a fault that shows), {} faults injected, {} findings expected and found: precision {precision:.3}, recall {recall:.3}",
            expectations.len(),
            expectations.iter().filter(|e| e.is_clean()).count(),
            shop.faults().len(),
            positives(&expected)
        );
    }
    // The run had faults of every kind that decides an outcome.
    let kinds: BTreeSet<String> = shop.faults().iter().map(|f| format!("{:?}", f.kind)).collect();
    for kind in ["LostMessage", "SlowConsumer", "DeadLetter", "StepError", "Retry", "GroupOutage"] {
        assert!(kinds.contains(kind), "no {kind} in this run: {kinds:?}");
    }
}
