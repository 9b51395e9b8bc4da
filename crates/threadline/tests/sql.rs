//! SQL end to end: `POST /api/v1/sql` on the running binary over spans sent by OTLP and the
//! processes the engine made of them, its error shapes, and `threadline sql` as a table, as
//! JSON, with a cut result, a bad query and a closed pipe.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::io::Read as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use threadline_api_types::SqlResponse;
use threadline_core::span::{Span, SpanKind};
use threadline_testsuite::otlp;
use threadline_testsuite::server::{Options, TempDir, TestServer};
use threadline_testsuite::spans::span;

const SPECS: &str = "version = 1\n[[process]]\nname = \"checkout\"\n\
                     root = { service = \"frontend\", operation = \"POST /checkout\" }\n";

fn checkout(t: u64, order: &str) -> Vec<Span> {
    vec![
        span(t, 1, "frontend", "POST /checkout")
            .kind(SpanKind::Server)
            .attr("order.id", order)
            .at(0.0, 0.4)
            .build(),
        span(t, 2, "payments", "charge").parent(1).kind(SpanKind::Client).at(0.1, 0.2).build(),
    ]
}

async fn sql(server: &TestServer, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/sql", server.api_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn cli(server: &TestServer, rest: &[&str]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"))
        .args(rest)
        .args(["--server", &server.api_url()])
        .env_remove("THREADLINE_API_TOKEN")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_http_and_the_cli() {
    let dir = TempDir::new("sql-e2e").unwrap();
    let specs = dir.path().join("specs.toml");
    std::fs::write(&specs, SPECS).unwrap();
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        Options {
            args: vec!["--specs".into(), specs.to_str().unwrap().into()],
            ..Options::default()
        },
    )
    .unwrap();
    let spans: Vec<Span> = (1..=3).flat_map(|t| checkout(t, &format!("o-{t}"))).collect();
    let response = reqwest::Client::new()
        .post(server.otlp_http_url())
        .header("content-type", "application/x-protobuf")
        .body(otlp::protobuf(&spans))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Spans are queryable once acknowledged; processes once the engine has seen them.
    let deadline = Instant::now() + Duration::from_secs(20);
    let query = json!({"query": "SELECT type, keys['order.id'] AS order_id, spans FROM processes ORDER BY order_id"});
    let processes = loop {
        let (status, body) = sql(&server, query.clone()).await;
        assert_eq!(status, 200, "{body}");
        let result: SqlResponse = serde_json::from_value(body).unwrap();
        if result.rows.len() == 3 || Instant::now() > deadline {
            break result;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        processes.rows,
        [
            [json!("checkout"), json!("o-1"), json!(2)],
            [json!("checkout"), json!("o-2"), json!(2)],
            [json!("checkout"), json!("o-3"), json!(2)]
        ]
    );
    let (status, body) = sql(
        &server,
        json!({"query": "SELECT service, count(*) AS spans FROM spans GROUP BY service ORDER BY service"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["columns"],
        json!([{"name": "service", "type": "Utf8"}, {"name": "spans", "type": "Int64"}])
    );
    assert_eq!(body["rows"], json!([["frontend", 3], ["payments", 3]]));
    assert_eq!(body["truncated"], json!(false));

    // Errors in the API's one shape, naming what is wrong.
    for (body, status, code, says) in [
        (json!({"query": "SELEC 1"}), 400, "invalid_query", "SELEC"),
        (json!({"query": "SELECT nope FROM spans"}), 400, "invalid_query", "nope"),
        (json!({"query": "DROP TABLE spans"}), 400, "invalid_query", "not supported"),
        (json!({"query": "  "}), 400, "invalid_argument", "query must not be empty"),
        (json!({"sql": "SELECT 1"}), 400, "invalid_argument", "sql"),
        (json!({"query": "SELECT 1", "maxRows": 0}), 400, "invalid_argument", "maxRows"),
        (json!({"query": 1}), 400, "invalid_argument", "query"),
    ] {
        let (got, answer) = sql(&server, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/sql", server.api_url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (status, body) = sql(&server, json!({"query": "SELECT * FROM spans", "maxRows": 2})).await;
    assert_eq!(
        (status, body["rows"].as_array().unwrap().len(), &body["truncated"]),
        (200, 2, &json!(true))
    );

    // The CLI: a table, JSON, a cut result, a bad query.
    let (code, stdout, stderr) = cli(
        &server,
        &["sql", "SELECT service, count(*) AS spans FROM spans GROUP BY service ORDER BY service"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "service   spans\n--------  -----\nfrontend  3\npayments  3\n(2 rows)\n");
    let (code, stdout, _) = cli(&server, &["sql", "--json", "SELECT 1 AS one"]);
    assert_eq!(code, 0);
    let parsed: SqlResponse = serde_json::from_str(&stdout).unwrap();
    assert_eq!(parsed.rows, [[json!(1)]]);
    let (code, stdout, _) = cli(&server, &["sql", "--max-rows", "1", "SELECT name FROM spans"]);
    assert_eq!(code, 0);
    assert!(
        stdout.ends_with("(1 row; more were cut: narrow the query or raise --max-rows)\n"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&server, &["sql", "SELECT nope FROM spans"]);
    assert_eq!(code, 2);
    assert!(stderr.starts_with("error: ") && stderr.contains("nope"), "{stderr}");
    let (code, _, stderr) = cli(&server, &["sql", "--max-rows", "0", "SELECT 1"]);
    assert_eq!(code, 2, "{stderr}");

    // A reader that stops early is a normal end, not an error.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"))
        .args(["sql", "SELECT * FROM generate_series(1, 9000)", "--server", &server.api_url()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
