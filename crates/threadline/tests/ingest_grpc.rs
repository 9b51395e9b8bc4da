//! OTLP/gRPC receiver end to end: gzip-compressed exports read back intact, invalid spans are
//! reported as partial success, undecodable messages get `INVALID_ARGUMENT`.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use prost::Message as _;
use threadline_api_types::TraceResponse;
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;
use threadline_proto::opentelemetry::proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use threadline_testsuite::generate::{self, Shape};
use threadline_testsuite::server::TestServer;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};

fn server() -> TestServer {
    TestServer::start(env!("CARGO_BIN_EXE_threadline").as_ref()).expect("server starts")
}

async fn channel(server: &TestServer) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(server.otlp_grpc_url())
        .unwrap()
        .connect()
        .await
        .expect("connects")
}

#[tokio::test]
async fn gzip_exports_read_back_intact() {
    let server = server();
    let mut client = TraceServiceClient::new(channel(&server).await)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let shape = Shape { traces: 30, services: 5, seed: 11 };
    let response =
        client.export(generate::otlp_request(shape)).await.expect("exported").into_inner();
    assert_eq!(response, ExportTraceServiceResponse { partial_success: None });

    for t in [0, 17, 29] {
        let trace_id = hex::encode(generate::trace_id(shape.seed, t));
        let trace: TraceResponse =
            server.api_json(&format!("/api/v1/traces/{trace_id}")).await.unwrap();
        assert_eq!(trace.spans.len(), 5);
        assert_eq!(trace.spans[4].links.len(), usize::from(t > 0));
        assert_eq!(trace.spans[0].resource.attributes[0].key, "service.name");
    }
}

#[tokio::test]
async fn invalid_spans_are_reported_as_partial_success() {
    let server = server();
    let mut client = TraceServiceClient::new(channel(&server).await);
    let mut request = generate::otlp_request(Shape { traces: 3, services: 1, seed: 12 });
    let spans = &mut request.resource_spans[0].scope_spans[0].spans;
    spans[1].span_id = vec![0; 8];
    spans[2].end_time_unix_nano = 1;
    let response = client.export(request).await.expect("exported").into_inner();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert_eq!(
        partial.error_message,
        "rejected 2 of 3 spans: \
         resourceSpans[0].scopeSpans[0].spans[1] (span_id 0000000000000000): span_id must not be all zeros; \
         resourceSpans[0].scopeSpans[0].spans[2] (span_id 76b758fcac273a79): end_time_unix_nano (1) is before start_time_unix_nano (1700000012002000000)"
    );
}

/// Sends raw bytes as the request message, to reach the server's decoder with garbage.
#[derive(Debug, Default, Clone)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        Ok(Some(
            ExportTraceServiceResponse::decode(buf)
                .map_err(|e| tonic::Status::internal(e.to_string()))?,
        ))
    }
}

#[tokio::test]
async fn undecodable_messages_are_invalid_argument_and_the_server_keeps_serving() {
    let server = server();
    let channel = channel(&server).await;
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut truncated = generate::otlp_protobuf(Shape { traces: 2, services: 2, seed: 13 });
    truncated.truncate(truncated.len() - 7);
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    let status =
        grpc.unary(tonic::Request::new(truncated), path, RawCodec).await.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with("request is not valid protobuf: "),
        "{}",
        status.message()
    );

    // The error names where the message breaks off.
    assert!(status.message().contains(" at resourceSpans["), "{}", status.message());
    // Another method of the service is not one the server has.
    let other = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Other",
    );
    grpc.ready().await.unwrap();
    let status = grpc
        .unary(tonic::Request::new(Vec::new()), other, RawCodec)
        .await
        .expect_err("no such method");
    assert_eq!(status.code(), tonic::Code::Unimplemented);

    let mut client = TraceServiceClient::new(channel);
    client
        .export(generate::otlp_request(Shape { traces: 1, services: 1, seed: 14 }))
        .await
        .expect("still serving");
}

#[tokio::test]
async fn oversized_and_bomb_messages_are_refused_as_not_retryable() {
    let server = TestServer::start_with(
        env!("CARGO_BIN_EXE_threadline").as_ref(),
        threadline_testsuite::server::Options {
            config: Some(
                "version = 1\n[ingest]\nmax_request_bytes = 100000\nmax_decompressed_bytes = 200000\n"
                    .into(),
            ),
            ..Default::default()
        },
    )
    .unwrap();
    let mut request = generate::otlp_request(Shape { traces: 1, services: 1, seed: 15 });
    let span = &mut request.resource_spans[0].scope_spans[0].spans[0];
    span.attributes.push(threadline_proto::opentelemetry::proto::common::v1::KeyValue {
        key: "blob".into(),
        value: Some(threadline_proto::opentelemetry::proto::common::v1::AnyValue {
            value: Some(
                threadline_proto::opentelemetry::proto::common::v1::any_value::Value::StringValue(
                    "a".repeat(1_000_000),
                ),
            ),
        }),
    });

    let mut plain = TraceServiceClient::new(channel(&server).await);
    let status = plain.export(request.clone()).await.expect_err("too large");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("decoded message length too large"), "{}", status.message());

    // Compressed, the same message is small on the wire but decompresses past the limit.
    let mut compressed =
        TraceServiceClient::new(channel(&server).await).send_compressed(CompressionEncoding::Gzip);
    let status = compressed.export(request).await.expect_err("too large once decompressed");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("size limit, of 200000 bytes, exceeded"),
        "{}",
        status.message()
    );

    plain
        .export(generate::otlp_request(Shape { traces: 1, services: 1, seed: 16 }))
        .await
        .expect("still serving");
}
