//! OTLP/HTTP and Zipkin receivers, end to end through the real binary: what goes in comes back
//! out of `/api/v1/traces/{id}`, and every kind of bad input gets its exact status and message
//! while the server keeps serving.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use std::io::Write as _;

use expect_test::{Expect, expect};
use prost::Message as _;
use threadline_api_types::{ServicesResponse, TraceResponse};
use threadline_testsuite::generate::{self, Shape};
use threadline_testsuite::server::TestServer;

fn server() -> TestServer {
    TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).expect("server starts")
}

async fn post(
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, Vec<u8>) {
    let client = reqwest::Client::new();
    let mut request = client.post(url).header("content-type", content_type).body(body);
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    let response = request.send().await.expect("request is answered");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, response.bytes().await.expect("body").to_vec())
}

async fn get_trace(server: &TestServer, trace_id: &str) -> (u16, String) {
    server.api_get(&format!("/api/v1/traces/{trace_id}")).await.unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn the_shared_otlp_json_fixture_is_accepted_and_reads_back() {
    let server = server();
    let fixture = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/otlp/trace.json"
    ))
    .expect("fixture exists");
    let (status, content_type, body) =
        post(&server.otlp_http_url(), "application/json", None, fixture).await;
    assert_eq!(
        (status, content_type.as_str(), body.as_slice()),
        (200, "application/json", &b"{}"[..])
    );

    let (status, body) = get_trace(&server, "5b8efff798038103d269b633813fc60c").await;
    assert_eq!(status, 200, "{body}");
    let pretty =
        serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&body).unwrap())
            .unwrap();
    expect![[r#"
        {
          "spans": [
            {
              "attributes": [
                {
                  "key": "my.span.attr",
                  "value": {
                    "stringValue": "some value"
                  }
                }
              ],
              "droppedAttributesCount": 0,
              "droppedEventsCount": 0,
              "droppedLinksCount": 0,
              "durationNanos": "1000000000",
              "endTimeUnixNano": "1544712661000000000",
              "events": [],
              "flags": 0,
              "kind": "server",
              "links": [],
              "name": "I'm a server span",
              "parentSpanId": "eee19b7ec3c1b173",
              "resource": {
                "attributes": [
                  {
                    "key": "service.name",
                    "value": {
                      "stringValue": "my.service"
                    }
                  }
                ],
                "droppedAttributesCount": 0
              },
              "scope": {
                "attributes": [
                  {
                    "key": "my.scope.attribute",
                    "value": {
                      "stringValue": "some scope attribute"
                    }
                  }
                ],
                "droppedAttributesCount": 0,
                "name": "my.library",
                "version": "1.0.0"
              },
              "serviceName": "my.service",
              "spanId": "eee19b7ec3c1b174",
              "startTimeUnixNano": "1544712660000000000",
              "status": {
                "code": "unset"
              },
              "traceId": "5b8efff798038103d269b633813fc60c"
            }
          ],
          "traceId": "5b8efff798038103d269b633813fc60c"
        }"#]]
    .assert_eq(&pretty);

    let services: ServicesResponse = server.api_json("/api/v1/services").await.unwrap();
    assert_eq!(services.services, vec!["my.service".to_owned()]);
}

/// Every trace of a generated batch reads back whole, with each attribute type intact.
async fn assert_batch_reads_back(server: &TestServer, shape: Shape) {
    for t in 0..shape.traces {
        let trace_id = hex::encode(generate::trace_id(shape.seed, t));
        let (status, body) = get_trace(server, &trace_id).await;
        assert_eq!(status, 200, "trace {trace_id}: {body}");
        let trace: TraceResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(trace.spans.len(), shape.services, "trace {trace_id}");
        let root = &trace.spans[0];
        assert_eq!(root.parent_span_id, None);
        assert_eq!(root.kind, "server");
        assert_eq!(root.events[0].name, "cache.miss");
        let value = |key: &str| {
            let kv = root.attributes.iter().find(|kv| kv.key == key).expect(key);
            serde_json::to_string(&kv.value).unwrap()
        };
        assert_eq!(value("http.response.status_code"), r#"{"intValue":"200"}"#);
        assert_eq!(value("sampled.ratio"), r#"{"doubleValue":0.25}"#);
        assert_eq!(value("retry"), r#"{"boolValue":false}"#);
        assert_eq!(value("payload"), r#"{"bytesValue":"AQID"}"#);
        assert_eq!(
            value("tags"),
            r#"{"arrayValue":{"values":[{"stringValue":"a"},{"stringValue":"b"}]}}"#
        );
        assert_eq!(
            value("nested"),
            r#"{"kvlistValue":{"values":[{"key":"inner","value":{"intValue":"-7"}}]}}"#
        );
        if t > 0 {
            let last = trace.spans.last().unwrap();
            assert_eq!(last.links.len(), 1, "trace {trace_id}");
            assert_eq!(last.links[0].trace_id, hex::encode(generate::trace_id(shape.seed, t - 1)));
        }
    }
}

#[tokio::test]
async fn protobuf_json_and_gzip_bodies_round_trip() {
    let server = server();
    let shape = |seed| Shape { traces: 20, services: 4, seed };

    let (status, content_type, body) = post(
        &server.otlp_http_url(),
        "application/x-protobuf",
        None,
        generate::otlp_protobuf(shape(1)),
    )
    .await;
    assert_eq!((status, content_type.as_str(), body.len()), (200, "application/x-protobuf", 0));
    assert_batch_reads_back(&server, shape(1)).await;

    let json = generate::otlp_json(&generate::otlp_request(shape(2))).to_string().into_bytes();
    let (status, _, body) = post(&server.otlp_http_url(), "application/json", None, json).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_batch_reads_back(&server, shape(2)).await;

    let compressed = gzip(&generate::otlp_protobuf(shape(3)));
    let (status, _, _) =
        post(&server.otlp_http_url(), "application/x-protobuf", Some("gzip"), compressed).await;
    assert_eq!(status, 200);
    assert_batch_reads_back(&server, shape(3)).await;

    let services: ServicesResponse = server.api_json("/api/v1/services").await.unwrap();
    assert_eq!(services.services, ["service-0", "service-1", "service-2", "service-3"]);
}

#[tokio::test]
async fn zipkin_spans_are_accepted_and_mapped() {
    let server = server();
    let shape = Shape { traces: 5, services: 3, seed: 9 };
    let body = generate::zipkin_json(shape).to_string().into_bytes();
    let (status, _, response) = post(&server.zipkin_url(), "application/json", None, body).await;
    assert_eq!((status, response.len()), (202, 0));
    let trace_id = hex::encode(generate::trace_id(shape.seed, 0));
    let (status, body) = get_trace(&server, &trace_id).await;
    assert_eq!(status, 200, "{body}");
    let trace: TraceResponse = serde_json::from_str(&body).unwrap();
    assert_eq!(trace.spans.len(), 3);
    assert_eq!(trace.spans[0].kind, "server");
    assert_eq!(trace.spans[0].service_name, "service-0");
    assert_eq!(trace.spans[1].kind, "client");
    assert_eq!(trace.spans[1].parent_span_id.as_deref(), Some(trace.spans[0].span_id.as_str()));
    assert_eq!(trace.spans[0].events[0].name, "cache.miss");

    // A 64-bit Zipkin trace id is widened into the low half.
    let short = br#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","timestamp":1472470996199000,"duration":10,"localEndpoint":{"serviceName":"legacy"}}]"#;
    let (status, _, _) = post(&server.zipkin_url(), "application/json", None, short.to_vec()).await;
    assert_eq!(status, 202);
    let (status, body) = get_trace(&server, "0000000000000000463ac35c9f6413ad").await;
    assert_eq!(status, 200, "{body}");
}

/// One bad request: its status, content type and body, on one line for the snapshot.
async fn bad(url: &str, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> String {
    let (status, content_type, body) = post(url, content_type, encoding, body).await;
    let body = if content_type == "application/x-protobuf" && status == 200 {
        format!("{} bytes", body.len())
    } else if content_type == "application/x-protobuf" {
        let status =
            threadline_proto::google::rpc::Status::decode(body.as_slice()).expect("rpc status");
        format!("rpc.Status{{code: {}, message: {:?}}}", status.code, status.message)
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    format!("{status} {content_type} {body}")
}

fn check(actual: &[String], expected: Expect) {
    expected.assert_eq(&actual.join("\n"));
}

#[tokio::test]
async fn bad_input_gets_the_exact_status_and_message_and_the_server_keeps_serving() {
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        threadline_testsuite::server::Options {
            config: Some(
                "version = 1\n[ingest]\nmax_request_bytes = 100000\nmax_decompressed_bytes = 1000000\n".into(),
            ),
            ..Default::default()
        },
    )
    .expect("server starts");
    let url = server.otlp_http_url();
    let valid = generate::otlp_protobuf(Shape { traces: 1, services: 1, seed: 5 });
    let mut truncated = valid.clone();
    truncated.truncate(valid.len() / 2);
    let bomb = gzip(&vec![b' '; 20_000_000]);
    assert!(bomb.len() < 100_000, "the bomb fits the compressed limit");
    let bad_ids = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "0102030405060708", "spanId": "0102030405060708", "startTimeUnixNano": "1", "endTimeUnixNano": "2"},
        {"traceId": "00000000000000000000000000000000", "spanId": "0102030405060708", "startTimeUnixNano": "1", "endTimeUnixNano": "2"},
        {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "startTimeUnixNano": "5", "endTimeUnixNano": "2"},
        {"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0a02030405060708", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    ]}]}]});

    let results = vec![
        bad(
            &url,
            "application/json",
            None,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}"#.to_vec(),
        )
        .await,
        bad(&url, "application/json", None, b"{not json".to_vec()).await,
        bad(&url, "application/x-protobuf", None, truncated).await,
        bad(&url, "application/x-protobuf", Some("gzip"), bomb).await,
        bad(&url, "application/x-protobuf", None, vec![0u8; 200_000]).await,
        bad(&url, "application/x-protobuf", Some("gzip"), b"not gzip at all".to_vec()).await,
        bad(&url, "application/json", None, bad_ids.to_string().into_bytes()).await,
        bad(&url, "application/json", None, Vec::new()).await,
        bad(&url, "application/x-protobuf", None, Vec::new()).await,
        bad(&url, "text/plain", None, b"hello".to_vec()).await,
        bad(&url, "application/json", Some("br"), b"{}".to_vec()).await,
        bad(&server.zipkin_url(), "application/json", None, br#"[{"traceId": 12}]"#.to_vec()).await,
        bad(
            &server.zipkin_url(),
            "application/json",
            None,
            br#"[{"traceId":"zz","id":"1","timestamp":1}]"#.to_vec(),
        )
        .await,
        bad(&server.zipkin_url(), "application/x-thrift", None, b"x".to_vec()).await,
    ];
    check(
        &results,
        expect![[r#"
            400 application/json {"code":3,"message":"request body is not valid OTLP JSON: at resourceSpans[0].scopeSpans[0].spans[0].name: invalid type: integer `5`, expected a string at line 1 column 52"}
            400 application/json {"code":3,"message":"request body is not valid OTLP JSON: key must be a string at line 1 column 2"}
            400 application/x-protobuf rpc.Status{code: 3, message: "request body is not valid OTLP protobuf: at resourceSpans[0]: the message ends inside a field"}
            413 application/x-protobuf rpc.Status{code: 8, message: "decompressed request body is larger than the limit of 1000000 bytes"}
            413 application/x-protobuf rpc.Status{code: 8, message: "request body is larger than the limit of 100000 bytes"}
            400 application/x-protobuf rpc.Status{code: 3, message: "request body is not valid gzip: invalid gzip header"}
            200 application/json {"partialSuccess":{"errorMessage":"rejected 3 of 4 spans: resourceSpans[0].scopeSpans[0].spans[0] (span_id 0102030405060708): trace_id must be 16 bytes, got 8; resourceSpans[0].scopeSpans[0].spans[1] (span_id 0102030405060708): trace_id must not be all zeros; resourceSpans[0].scopeSpans[0].spans[2] (span_id 0102030405060708): end_time_unix_nano (2) is before start_time_unix_nano (5)","rejectedSpans":"3"}}
            400 application/json {"code":3,"message":"request body is empty: expected OTLP JSON"}
            200 application/x-protobuf 0 bytes
            415 application/json {"code":3,"message":"unsupported content type \"text/plain\": expected application/x-protobuf or application/json"}
            415 application/json {"code":3,"message":"unsupported content encoding \"br\": expected gzip or identity"}
            400 application/json {"error":{"code":400,"message":"request body is not valid Zipkin v2 JSON: at [0].traceId: invalid type: integer `12`, expected a string at line 1 column 15"}}
            400 application/json {"error":{"code":400,"message":"rejected 1 of 1 spans: [0] (id \"1\"): traceId is not hex: unexpected character 'z'"}}
            415 application/json {"error":{"code":415,"message":"unsupported content type \"application/x-thrift\": expected application/json"}}"#]],
    );

    // The one valid span of the partial batch was kept, and the server still takes good data.
    let (status, _) = get_trace(&server, "0102030405060708090a0b0c0d0e0f10").await;
    assert_eq!(status, 200);
    let (status, _, _) = post(&url, "application/x-protobuf", None, valid).await;
    assert_eq!(status, 200);
    assert_eq!(server.api_get("/healthz").await.unwrap().0, 200);

    // Read-side errors use the API's error shape.
    let results = vec![
        get_trace(&server, "xyz").await,
        get_trace(&server, "0102030405060708090a0b0c0d0e0f11").await,
    ];
    expect![[r#"
        [
            (
                400,
                "{\"error\":{\"code\":\"invalid_argument\",\"message\":\"trace_id \\\"xyz\\\" must be 32 hex digits, got 3 characters\"}}",
            ),
            (
                404,
                "{\"error\":{\"code\":\"not_found\",\"message\":\"trace 0102030405060708090a0b0c0d0e0f11 not found\"}}",
            ),
        ]
    "#]]
    .assert_debug_eq(&results);
}
