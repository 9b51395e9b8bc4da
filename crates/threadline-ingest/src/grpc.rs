//! The OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//! Validation and hand-off are the HTTP receiver's; statuses follow the OTLP specification
//! (`INVALID_ARGUMENT` for undecodable data, `UNAVAILABLE` with `RetryInfo` for overload).

use threadline_proto::opentelemetry::proto::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use threadline_proto::opentelemetry::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::Receivers;
use crate::convert;

/// tonic answers a message larger than `max_decoding_message_size` with `OUT_OF_RANGE`, a code
/// OTLP clients must retry, though the same message can never fit. Applied as a response layer
/// on the gRPC listener, this turns it into `RESOURCE_EXHAUSTED` without `RetryInfo`, which the
/// OTLP specification makes non-retryable. Threadline itself never answers `OUT_OF_RANGE`.
pub fn oversize_is_not_retryable<B>(mut response: http::Response<B>) -> http::Response<B> {
    const STATUS: &str = "grpc-status";
    let out_of_range = (tonic::Code::OutOfRange as i32).to_string();
    if response.headers().get(STATUS).is_some_and(|v| v.as_bytes() == out_of_range.as_bytes()) {
        let exhausted = (tonic::Code::ResourceExhausted as i32).to_string();
        if let Ok(value) = http::HeaderValue::from_str(&exhausted) {
            response.headers_mut().insert(STATUS, value);
        }
    }
    response
}

#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    receivers: Receivers,
}

/// The gRPC service, accepting gzip and capping decoded messages at
/// `max_decompressed_bytes`.
pub fn otlp_service(receivers: Receivers) -> TraceServiceServer<OtlpGrpc> {
    let max = receivers.limits.max_decompressed_bytes;
    TraceServiceServer::new(OtlpGrpc { receivers })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max)
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let request = request.into_inner();
        let decoded = if prost::Message::encoded_len(&request) > 64 << 10 {
            tokio::task::spawn_blocking(move || convert::convert_otlp(request))
                .await
                .map_err(|e| Status::internal(format!("decoding failed: {e}")))?
        } else {
            convert::convert_otlp(request)
        };
        let total =
            decoded.spans.len() + usize::try_from(decoded.rejections.count).unwrap_or(usize::MAX);
        let rejections = self.receivers.deliver(decoded).await.map_err(|e| e.to_grpc_status())?;
        let partial_success = (rejections.count > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejections.count).unwrap_or(i64::MAX),
            error_message: rejections.message(total),
        });
        Ok(Response::new(ExportTraceServiceResponse { partial_success }))
    }
}
