//! SQL through `SqlEngine::run` over a real store: spans from blocks and from memory, each
//! once; the processes table; pushed-down filters giving the same answers as full scans; and
//! every limit (rows, time, memory, concurrency, read-only).

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use threadline_core::span::Span;
use threadline_query::{QueryError, SqlEngine, SqlLimits};
use threadline_storage::processes::{ProcessChanges, ProcessRecord, RecordState, WaitingRecord};
use threadline_storage::store::{Store, StoreOptions};
use threadline_storage::wal::{FsyncPolicy, WalOptions};
use threadline_testsuite::server::TempDir;
use threadline_testsuite::spans::{S, T0, span, trace};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Trace `t` of a checkout: three spans at `T0 + t` seconds, the last an error when `t` is
/// a multiple of 5.
fn checkout(t: u64) -> Vec<Span> {
    let at = t as f64;
    vec![
        span(t, 1, "frontend", "POST /checkout")
            .at(at, at + 0.5)
            .attr("order.id", format!("o-{t}"))
            .attr("http.response.status_code", 200_i64)
            .build(),
        span(t, 2, "payments", "charge")
            .parent(1)
            .at(at + 0.1, at + 0.3)
            .attr("amount", 12.5)
            .build(),
        span(t, 3, "orders", "orders process")
            .parent(1)
            .consumes("orders", "fulfilment")
            .at(at + 0.2, at + 0.4)
            .error_if(t.is_multiple_of(5), "out of stock")
            .build(),
    ]
}

struct Fixture {
    _dir: TempDir,
    store: Arc<Store>,
}

/// Traces 1..=20 in two blocks, traces 21..=30 still in memory; process rows for 1..=30.
async fn fixture() -> Fixture {
    let dir = TempDir::new("sql").unwrap();
    let options = StoreOptions {
        wal: WalOptions { segment_bytes: 1 << 20, fsync: FsyncPolicy::Never },
        ..StoreOptions::default()
    };
    let store = Arc::new(Store::open(dir.path(), options).await.unwrap().0);
    for range in [1..=10, 11..=20] {
        let spans: Vec<Span> = range.flat_map(checkout).collect();
        store.append(&[&spans]).unwrap();
        store.flush().await.unwrap();
    }
    let spans: Vec<Span> = (21..=30).flat_map(checkout).collect();
    store.append(&[&spans]).unwrap();
    let records = (1..=30).map(|t| ProcessRecord {
        id: trace(t),
        process_type: if t.is_multiple_of(3) { "refund".into() } else { "checkout".into() },
        state: match t % 5 {
            0 => RecordState::Failed,
            1 => RecordState::Running,
            _ => RecordState::Completed,
        },
        mode: (t % 5 > 1).then(|| "structural".to_owned()),
        stuck: t == 11,
        sla_breached: t.is_multiple_of(7),
        start_nanos: T0 + t * S,
        end_nanos: T0 + t * S + S / 2,
        last_activity: T0 + t * S + S / 2,
        spans: 3,
        error_spans: u32::from(t.is_multiple_of(5)),
        traces: vec![trace(t)],
        keys: vec![("order.id".into(), format!("o-{t}"))],
        waiting: if t == 11 {
            vec![WaitingRecord::Message {
                system: "kafka".into(),
                destination: "orders".into(),
                group: "fulfilment".into(),
                since: T0 + 11 * S,
            }]
        } else {
            Vec::new()
        },
        failure: (t.is_multiple_of(5)).then(|| "orders process: out of stock".to_owned()),
        spec_violations: None,
    });
    store
        .apply_processes(&mut ProcessChanges {
            records: records.collect(),
            ..ProcessChanges::default()
        })
        .unwrap();
    Fixture { _dir: dir, store }
}

fn engine(store: &Arc<Store>, limits: SqlLimits) -> SqlEngine {
    SqlEngine::new(Arc::clone(store), limits, tokio::runtime::Handle::current())
}

async fn rows(engine: &SqlEngine, sql: &str) -> Vec<Vec<Value>> {
    match engine.run(sql, None).await {
        Ok(response) => response.rows,
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[test]
fn spans_from_blocks_and_memory_are_each_counted_once() {
    runtime().block_on(async {
        let f = fixture().await;
        assert_eq!(f.store.stats().blocks, 2);
        let sql = engine(&f.store, SqlLimits::default());
        assert_eq!(rows(&sql, "SELECT count(*) FROM spans").await, [[json!(90)]]);
        assert_eq!(
            rows(
                &sql,
                "SELECT service, count(*) AS n FROM spans GROUP BY service ORDER BY service"
            )
            .await,
            [
                [json!("frontend"), json!(30)],
                [json!("orders"), json!(30)],
                [json!("payments"), json!(30)]
            ]
        );
        assert_eq!(
            rows(&sql, "SELECT count(*) FROM spans WHERE status_code = 'error'").await,
            [[json!(6)]]
        );
    });
}

#[test]
fn span_columns_read_as_documented() {
    runtime().block_on(async {
        let f = fixture().await;
        let sql = engine(&f.store, SqlLimits::default());
        let response = sql
            .run(
                "SELECT trace_id, span_id, parent_span_id, service, name, kind, start_time, \
                 duration_ms, status_code, status_message, attributes['order.id'] AS order_id, \
                 attributes['http.response.status_code'] AS status, resource_attributes['service.name'] AS svc \
                 FROM spans WHERE name = 'POST /checkout' AND attributes['order.id'] = 'o-25'",
                None,
            )
            .await
            .unwrap();
        let types: Vec<(&str, &str)> =
            response.columns.iter().map(|c| (c.name.as_str(), c.data_type.as_str())).collect();
        assert_eq!(types[6], ("start_time", "Timestamp(ns, \"UTC\")"));
        assert_eq!(types[7], ("duration_ms", "Float64"));
        assert_eq!(
            response.rows,
            [[
                json!(trace(25).to_hex()),
                json!("0000000000000001"),
                Value::Null,
                json!("frontend"),
                json!("POST /checkout"),
                json!("internal"),
                json!("2023-11-14T22:13:45Z"),
                json!(500.0),
                json!("unset"),
                json!(""),
                json!("o-25"),
                json!("200"),
                json!("frontend"),
            ]]
        );
        // Nested columns come back as JSON arrays and objects.
        let nested = rows(
            &sql,
            "SELECT attributes, events, links FROM spans WHERE span_id = '0000000000000002' \
             AND trace_id = '00000000000000000000000000000003'",
        )
        .await;
        assert_eq!(nested, [[json!({"amount": "12.5"}), json!([]), json!([])]]);
    });
}

#[test]
fn pushed_down_filters_agree_with_full_scans() {
    runtime().block_on(async {
        let f = fixture().await;
        let sql = engine(&f.store, SqlLimits::default());
        // A trace in a block and one in memory, by the trace index.
        for t in [4, 27] {
            let q = format!(
                "SELECT span_id FROM spans WHERE trace_id = '{}' ORDER BY span_id",
                trace(t).to_hex()
            );
            let scan = format!(
                "SELECT span_id FROM spans WHERE lower(trace_id) = '{}' ORDER BY span_id",
                trace(t).to_hex()
            );
            let found = rows(&sql, &q).await;
            assert_eq!(found.len(), 3, "{q}");
            assert_eq!(found, rows(&sql, &scan).await);
        }
        assert!(rows(&sql, "SELECT * FROM spans WHERE trace_id = 'not-hex'").await.is_empty());
        // Time ranges: blocks outside are skipped, the answer is the same.
        let from = "2023-11-14T22:13:35Z";
        let to = "2023-11-14T22:13:44Z";
        let ranged = rows(
            &sql,
            &format!(
                "SELECT count(*) FROM spans WHERE start_time >= '{from}' AND start_time < '{to}'"
            ),
        )
        .await;
        let scanned = rows(
            &sql,
            &format!(
                "SELECT count(*) FROM spans WHERE CAST(start_time AS BIGINT) + 0 >= {} \
                 AND CAST(start_time AS BIGINT) + 0 < {}",
                T0 + 15 * S,
                T0 + 24 * S
            ),
        )
        .await;
        // Traces 15..=23 start in the range, 3 spans each; their spans start within 0.2 s.
        assert_eq!(ranged, [[json!(27)]]);
        assert_eq!(ranged, scanned);
    });
}

#[test]
fn processes_table_with_keys_waits_and_joins() {
    runtime().block_on(async {
        let f = fixture().await;
        let sql = engine(&f.store, SqlLimits::default());
        assert_eq!(
            rows(
                &sql,
                "SELECT type, state, count(*) FROM processes GROUP BY type, state ORDER BY type, state"
            )
            .await,
            [
                [json!("checkout"), json!("completed"), json!(12)],
                [json!("checkout"), json!("failed"), json!(4)],
                [json!("checkout"), json!("running"), json!(4)],
                [json!("refund"), json!("completed"), json!(6)],
                [json!("refund"), json!("failed"), json!(2)],
                [json!("refund"), json!("running"), json!(2)],
            ]
        );
        let stuck = rows(
            &sql,
            "SELECT process_id, keys['order.id'], waiting[1]['channel'], waiting[1]['consumer_group'] \
             FROM processes WHERE stuck",
        )
        .await;
        assert_eq!(
            stuck,
            [[json!(trace(11).to_hex()), json!("o-11"), json!("orders"), json!("fulfilment")]]
        );
        // Filters the table's indexes serve agree with ones they do not.
        for (indexed, scanned) in [
            ("type = 'refund' AND state = 'failed'", "lower(type) = 'refund' AND lower(state) = 'failed'"),
            ("sla_breached", "NOT (sla_breached = false)"),
            ("NOT stuck", "stuck IS FALSE"),
            (
                "start_time > '2023-11-14T22:13:40Z'",
                "CAST(start_time AS BIGINT) + 0 > 1700000020000000000",
            ),
        ] {
            let a = rows(&sql, &format!("SELECT process_id FROM processes WHERE {indexed} ORDER BY 1")).await;
            let b = rows(&sql, &format!("SELECT process_id FROM processes WHERE {scanned} ORDER BY 1")).await;
            assert!(!a.is_empty(), "{indexed}");
            assert_eq!(a, b, "{indexed}");
        }
        // Spans of failed processes, through their trace ids.
        let joined = rows(
            &sql,
            "SELECT s.service, count(*) FROM spans s \
             JOIN (SELECT unnest(trace_ids) AS trace_id FROM processes WHERE state = 'failed') p \
             ON s.trace_id = p.trace_id WHERE s.status_code = 'error' GROUP BY s.service",
        )
        .await;
        assert_eq!(joined, [[json!("orders"), json!(6)]]);
    });
}

#[test]
fn results_are_cut_at_the_row_limit() {
    runtime().block_on(async {
        let f = fixture().await;
        let sql = engine(&f.store, SqlLimits { max_rows: 50, ..SqlLimits::default() });
        let full = sql.run("SELECT span_id FROM spans", None).await.unwrap();
        assert_eq!((full.rows.len(), full.truncated), (50, true));
        let asked = sql.run("SELECT span_id FROM spans", Some(7)).await.unwrap();
        assert_eq!((asked.rows.len(), asked.truncated), (7, true));
        // Asking for more than the limit gets the limit.
        let more = sql.run("SELECT span_id FROM spans", Some(1000)).await.unwrap();
        assert_eq!(more.rows.len(), 50);
        let exact = sql.run("SELECT 1 FROM spans LIMIT 50", None).await.unwrap();
        assert_eq!((exact.rows.len(), exact.truncated), (50, false));
    });
}

#[test]
fn only_queries_run_and_bad_ones_say_why() {
    runtime().block_on(async {
        let f = fixture().await;
        let sql = engine(&f.store, SqlLimits::default());
        let dir = TempDir::new("sql-copy").unwrap();
        let target = dir.path().join("out.csv");
        for statement in [
            "CREATE TABLE t AS SELECT 1".to_owned(),
            "DROP TABLE spans".to_owned(),
            "INSERT INTO spans SELECT * FROM spans".to_owned(),
            "SET datafusion.execution.batch_size = 1".to_owned(),
            format!("COPY (SELECT 1) TO '{}'", target.display()),
            format!("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '{}'", dir.path().display()),
        ] {
            match sql.run(&statement, None).await {
                Err(QueryError::Invalid(message)) => {
                    assert!(message.contains("not supported") || message.contains("not allowed"), "{statement}: {message}");
                }
                other => panic!("{statement}: {other:?}"),
            }
        }
        assert!(!target.exists(), "COPY wrote a file");
        for (statement, says) in [
            ("SELEC 1", "SELEC"),
            ("SELECT nope FROM spans", "nope"),
            ("SELECT * FROM nowhere", "nowhere"),
            ("SELECT CAST('x' AS INT)", "Cannot cast"),
        ] {
            match sql.run(statement, None).await {
                Err(QueryError::Invalid(message)) => assert!(message.contains(says), "{statement}: {message}"),
                other => panic!("{statement}: {other:?}"),
            }
        }
        // Listing the tables is a query.
        let tables = rows(
            &sql,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        )
        .await;
        assert_eq!(tables, [[json!("processes")], [json!("spans")]]);
    });
}

#[test]
fn long_big_and_concurrent_queries_are_bounded() {
    runtime().block_on(async {
        let f = fixture().await;
        let slow = "SELECT count(*) FROM generate_series(1, 100000000000)";
        let sql = engine(
            &f.store,
            SqlLimits {
                timeout: Duration::from_millis(500),
                memory_bytes: 8 << 20,
                max_concurrent: 1,
                ..SqlLimits::default()
            },
        );
        match sql.run(slow, None).await {
            Err(e @ QueryError::Timeout(_)) => assert!(e.to_string().contains("sql_timeout_secs")),
            other => panic!("{other:?}"),
        }
        match sql.run("SELECT v FROM generate_series(1, 20000000) t(v) ORDER BY v DESC", None).await
        {
            Err(QueryError::TooExpensive(message)) => {
                assert!(message.contains("Resources exhausted"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // One at a time: a second query while the first runs is refused, then accepted.
        let (first, second) = tokio::join!(sql.run(slow, None), async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sql.run("SELECT 1", None).await
        });
        assert!(matches!(first, Err(QueryError::Timeout(_))), "{first:?}");
        assert!(matches!(second, Err(QueryError::Busy(1))), "{second:?}");
        assert_eq!(rows(&sql, "SELECT 1").await, [[json!(1)]]);
    });
}

#[test]
fn the_documented_examples_run() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/sql.md")).unwrap();
    let block = doc.split("```sql").nth(1).unwrap().split("```").next().unwrap();
    let statements: Vec<String> = block
        .split(';')
        .map(|s| {
            s.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n")
        })
        .filter(|s| !s.trim().is_empty())
        .collect();
    assert_eq!(statements.len(), 4);
    runtime().block_on(async {
        let f = fixture().await;
        let sql = engine(&f.store, SqlLimits::default());
        for statement in &statements {
            if let Err(e) = sql.run(statement, None).await {
                panic!("{statement}\n{e}");
            }
        }
        let stuck = rows(&sql, &statements[2]).await;
        assert_eq!(stuck, [[json!("orders"), json!("fulfilment"), json!(1)]]);
    });
}
