//! Bearer tokens, separately for ingest and for the API: without or with a wrong token,
//! HTTP answers 401 with `WWW-Authenticate: Bearer` and the error shape, gRPC answers
//! `UNAUTHENTICATED`; with the right token everything works; health probes stay open; CORS
//! headers are never sent.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use threadline_proto::opentelemetry::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use threadline_testsuite::generate::{self, Shape};
use threadline_testsuite::server::{Options, TestServer};

const INGEST: &str = "ingest-token-0123456789";
const API: &str = "api-token-abcdefghijklmn";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_ingest_and_the_api_separately() {
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            env: vec![("THREADLINE_INGEST_TOKEN".into(), INGEST.into())],
            config: Some(format!("version = 1\n[security]\napi_token = \"{API}\"\n")),
            ..Options::default()
        },
    )
    .unwrap();
    let http = reqwest::Client::new();
    let body = generate::otlp_protobuf(Shape { traces: 2, services: 2, seed: 1 });
    let post = |token: Option<&'static str>| {
        let mut request = http
            .post(server.otlp_http_url())
            .header("content-type", "application/x-protobuf")
            .header("origin", "http://evil.example")
            .body(body.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for token in [None, Some(API), Some("ingest-token-012345678")] {
        let response = post(token).await.unwrap();
        assert_eq!(response.status(), 401, "token {token:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "unauthenticated");
    }
    let response = post(Some(INGEST)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("access-control-allow-origin").is_none(), "CORS is off");

    // gRPC: UNAUTHENTICATED without the token, accepted with it.
    let request = generate::otlp_request(Shape { traces: 2, services: 2, seed: 2 });
    let channel = tonic::transport::Endpoint::from_shared(server.otlp_grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = TraceServiceClient::new(channel);
    let status = client.export(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let mut authorized = tonic::Request::new(request);
    authorized.metadata_mut().insert("authorization", format!("Bearer {INGEST}").parse().unwrap());
    client.export(authorized).await.unwrap();

    // The API: its own token on every route; the ingest token does not open it; probes stay
    // open.
    let trace = hex::encode(generate::trace_id(1, 0));
    let api = |path: String, token: Option<&'static str>| {
        let url = format!("{}{path}", server.api_url());
        let mut request = if path == "/api/v1/sql" {
            http.post(url).json(&serde_json::json!({"query": "SELECT count(*) FROM spans"}))
        } else {
            http.get(url)
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let routes = [
        "/api/v1/status".to_owned(),
        "/api/v1/services".to_owned(),
        format!("/api/v1/traces/{trace}"),
        "/api/v1/processes".to_owned(),
        format!("/api/v1/processes/{trace}"),
        "/api/v1/process-types".to_owned(),
        "/api/v1/graph".to_owned(),
        "/api/v1/triage".to_owned(),
        "/api/v1/specs".to_owned(),
        "/api/v1/alerts".to_owned(),
        "/api/v1/events".to_owned(),
        "/api/v1/openapi.json".to_owned(),
        "/api/v1/sql".to_owned(),
        "/metrics".to_owned(),
        "/api/services".to_owned(),
        "/api/services/svc-0/operations".to_owned(),
        "/api/operations?service=svc-0".to_owned(),
        "/api/traces?service=svc-0".to_owned(),
        format!("/api/traces/{trace}"),
        "/api/dependencies?endTs=1&lookback=1".to_owned(),
        "/api/v3/services".to_owned(),
        "/api/v3/operations?service=svc-0".to_owned(),
        format!("/api/v3/traces/{trace}"),
        "/api/v3/traces?query.service_name=svc-0&query.start_time_min=2020-01-01T00:00:00Z"
            .to_owned(),
    ];
    for route in &routes {
        for token in [None, Some(INGEST), Some("api-token-abcdefghijklm")] {
            let response = api(route.clone(), token).await.unwrap();
            assert_eq!(response.status(), 401, "{route} with {token:?}");
            assert_eq!(response.headers()["www-authenticate"], "Bearer", "{route}");
        }
        // Accepted: answered (a process may not be assembled yet: 404 is an answer too).
        let status = api(route.clone(), Some(API)).await.unwrap().status();
        assert!(status.is_success() || status == 404, "{route}: {status}");
    }
    assert_eq!(api("/healthz".into(), None).await.unwrap().status(), 200);
    assert_eq!(api("/readyz".into(), None).await.unwrap().status(), 200);
    // The UI's files hold no data and load without a token; the UI then asks for one.
    let page = api("/".into(), None).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let script = html.split("src=\"").nth(1).and_then(|s| s.split('"').next()).unwrap();
    assert!(script.starts_with("/assets/"), "{html}");
    assert_eq!(api(script.to_owned(), None).await.unwrap().status(), 200);
    assert_eq!(api("/assets/nothing.js".into(), None).await.unwrap().status(), 404);
}

#[test]
fn a_short_token_is_refused_at_start() {
    let (code, stderr) = threadline_testsuite::server::run_to_exit(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        &["serve"],
        &[("THREADLINE_API_TOKEN", "short")],
        std::time::Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("security.api_token must be at least 16 characters"), "{stderr}");
}
