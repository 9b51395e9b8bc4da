//! Alerts end to end: a stuck process raises an Alertmanager alert (delivered despite a
//! failed first attempt, sent once) that resolves when the process completes; failures raise
//! one-shot alerts; a rate rule fires once when enough failures pile up, to a generic webhook.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use serde_json::Value;
use threadline_core::span::{Span, SpanKind};
use threadline_testsuite::otlp;
use threadline_testsuite::server::{Options, TestServer};
use threadline_testsuite::spans::span;

#[derive(Clone, Default)]
struct Received {
    /// (path, status answered, body)
    requests: Arc<Mutex<Vec<(String, u16, Value)>>>,
}

async fn receive(State(r): State<Received>, uri: Uri, Json(body): Json<Value>) -> StatusCode {
    let mut requests = r.requests.lock().unwrap();
    // The very first delivery fails, so retries are exercised.
    let status = if requests.is_empty() { 500 } else { 200 };
    requests.push((uri.path().to_owned(), status, body));
    StatusCode::from_u16(status).unwrap()
}

fn checkout(t: u64, failed: bool) -> Vec<Span> {
    vec![
        span(t, 1, "frontend", "POST /checkout")
            .kind(SpanKind::Server)
            .error_if(failed, "card declined")
            .at(0.0, 0.4)
            .build(),
        span(t, 2, "frontend", "orders publish").parent(1).produces("orders").at(0.1, 0.11).build(),
    ]
}

fn consumer(t: u64) -> Span {
    span(t + 1000, 3, "billing", "orders process")
        .consumes("orders", "billing")
        .link(t, 2)
        .at(0.2, 0.3)
        .build()
}

async fn post(server: &TestServer, spans: &[Span]) {
    let response = reqwest::Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .body(otlp::protobuf(spans))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_once_resolve_and_rate_rules_count() {
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app =
        axum::Router::new().fallback(axum::routing::post(receive)).with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let config = format!(
        "version = 1\n[engine]\nstuck_after_secs = 1\n\
         [[alert]]\nname = \"checkout-trouble\"\non = [\"stuck\", \"failed\"]\nsinks = [\"am\"]\n\
         [[alert]]\nname = \"failure-burst\"\nrate = {{ kind = \"failed\", count = 2, window = \"1m\" }}\nsinks = [\"hook\"]\n\
         [[sink]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://{addr}/api/v2/alerts\"\n\
         [[sink]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n\
         [[sink]]\nname = \"log\"\nkind = \"log\"\n"
    );
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options { config: Some(config), ..Options::default() },
    )
    .unwrap();

    // A first checkout teaches that the billing group consumes `orders`; then one whose
    // message billing never processes: stuck after a second.
    let mut learned = checkout(10, false);
    learned.push(consumer(10));
    post(&server, &learned).await;
    post(&server, &checkout(1, false)).await;
    let accepted = |path: &'static str| {
        let received = received.clone();
        move || -> Vec<Value> {
            received
                .requests
                .lock()
                .unwrap()
                .iter()
                .filter(|(p, s, _)| p == path && *s == 200)
                .map(|(_, _, b)| b.clone())
                .collect()
        }
    };
    let am = accepted("/api/v2/alerts");
    let hook = accepted("/hook");
    let wait_for = |what: &'static str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "waited in vain for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let am_len = || am().len();
    tokio::task::block_in_place(|| wait_for("the stuck alert", &|| am_len() >= 1));
    let firing = &am()[0][0];
    assert_eq!(firing["labels"]["alertname"], "checkout-trouble");
    assert_eq!(firing["labels"]["event"], "stuck");
    assert_eq!(firing["labels"]["process_id"], threadline_testsuite::spans::trace(1).to_hex());
    assert!(firing["startsAt"].as_str().unwrap().ends_with('Z'));
    assert!(firing.get("endsAt").is_none());
    let first_attempts =
        received.requests.lock().unwrap().iter().filter(|(_, s, _)| *s == 500).count();
    assert_eq!(first_attempts, 1, "the failed first delivery was retried");

    // The consumer arrives: the process completes, the alert resolves.
    post(&server, &[consumer(1)]).await;
    tokio::task::block_in_place(|| wait_for("the resolved alert", &|| am_len() >= 2));
    let resolved = &am()[1][0];
    assert_eq!(resolved["labels"]["event"], "stuck");
    assert!(resolved["endsAt"].as_str().is_some(), "{resolved}");

    // Two failures: two one-shot alerts, and the rate rule fires once on the webhook.
    post(&server, &checkout(2, true)).await;
    post(&server, &checkout(3, true)).await;
    tokio::task::block_in_place(|| {
        wait_for("failure alerts", &|| am_len() >= 4 && !hook().is_empty());
    });
    let failed: Vec<Value> = am().into_iter().skip(2).map(|b| b[0].clone()).collect();
    assert!(failed.iter().all(|a| a["labels"]["event"] == "failed"), "{failed:?}");
    let burst = &hook()[0];
    assert_eq!(burst["status"], "firing");
    assert_eq!(burst["rule"], "failure-burst");
    assert_eq!(burst["event"], "failed");
    assert!(burst["summary"].as_str().unwrap().starts_with("2 failed processes"), "{burst}");

    // Nothing more: no repeats of any of them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(am().len(), 4, "{:?}", am());
    assert_eq!(hook().len(), 1);

    // The API lists every notification, whatever its sink, newest first: the UI's feed.
    let listed: threadline_api_types::AlertsResponse =
        server.api_json("/api/v1/alerts").await.unwrap();
    let seen: Vec<(&str, &str, &str)> = listed
        .alerts
        .iter()
        .map(|a| (a.rule.as_str(), a.status.as_str(), a.event.as_str()))
        .collect();
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(
        &seen[3..],
        [("checkout-trouble", "resolved", "stuck"), ("checkout-trouble", "firing", "stuck"),]
    );
    assert!(seen[..3].contains(&("failure-burst", "firing", "failed")), "{seen:?}");
    assert_eq!(
        seen[..3].iter().filter(|a| *a == &("checkout-trouble", "firing", "failed")).count(),
        2
    );
    assert!(listed.alerts.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
    let stuck = &listed.alerts[4];
    assert_eq!(
        stuck.process_id.as_deref(),
        Some(threadline_testsuite::spans::trace(1).to_hex().as_str())
    );
    assert!(listed.alerts[3].ends_at_unix_nano.is_some());
    let one: threadline_api_types::AlertsResponse =
        server.api_json("/api/v1/alerts?limit=1").await.unwrap();
    assert_eq!(one.alerts, listed.alerts[..1]);
    assert_eq!(server.api_get("/api/v1/alerts?limit=0").await.unwrap().0, 400);
}

#[test]
fn a_rule_naming_an_unknown_sink_is_refused() {
    let dir = threadline_testsuite::server::TempDir::new("alerts-bad").unwrap();
    let config = dir.path().join("threadline.toml");
    std::fs::write(
        &config,
        "version = 1\n[[alert]]\nname = \"x\"\non = [\"stuck\"]\nsinks = [\"pager\"]\n",
    )
    .unwrap();
    let (code, stderr) = threadline_testsuite::server::run_to_exit(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        &["serve", "--config", config.to_str().unwrap()],
        &[],
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("alert[0] (\"x\").sinks: no sink named \"pager\""), "{stderr}");
}
