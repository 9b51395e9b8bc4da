//! The OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//! Validation and hand-off are the HTTP receiver's; statuses follow the OTLP specification
//! (`INVALID_ARGUMENT` for undecodable data, `UNAVAILABLE` with `RetryInfo` for overload).

use std::convert::Infallible;

use bytes::Bytes;
use threadline_proto::codec::BytesInCodec;
use threadline_proto::opentelemetry::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::{Receivers, wire};

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

/// The gRPC path of OTLP trace export.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Requests larger than this are read into spans off the async runtime.
const BLOCKING_ABOVE: usize = 64 << 10;

/// The OTLP trace service, written out rather than generated: its request is taken as bytes
/// and read straight into spans by [`wire`], as OTLP/HTTP protobuf is. Accepts gzip and caps
/// decoded messages at `max_decompressed_bytes`; any other method is `UNIMPLEMENTED`.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    receivers: Receivers,
}

pub fn otlp_service(receivers: Receivers) -> OtlpGrpc {
    OtlpGrpc { receivers }
}

impl NamedService for OtlpGrpc {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> Service<http::Request<B>> for OtlpGrpc
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async {
                let mut response = http::Response::new(tonic::body::Body::default());
                let headers = response.headers_mut();
                headers.insert(Status::GRPC_STATUS, (tonic::Code::Unimplemented as i32).into());
                headers.insert(http::header::CONTENT_TYPE, tonic::metadata::GRPC_CONTENT_TYPE);
                Ok(response)
            });
        }
        let export = Export { receivers: self.receivers.clone() };
        let max = self.receivers.limits.max_decompressed_bytes;
        Box::pin(async move {
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(BytesInCodec::default())
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(export, request).await)
        })
    }
}

/// One export call.
struct Export {
    receivers: Receivers,
}

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let receivers = self.receivers.clone();
        Box::pin(async move { export(&receivers, request.into_inner()).await.map(Response::new) })
    }
}

async fn export(receivers: &Receivers, bytes: Bytes) -> Result<ExportTraceServiceResponse, Status> {
    let large = bytes.len() > BLOCKING_ABOVE;
    let read = move || {
        wire::decode_request(&bytes)
            .map_err(|e| Status::invalid_argument(format!("request is not valid protobuf: {e}")))
    };
    let decoded = if large {
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| Status::internal(format!("decoding failed: {e}")))??
    } else {
        read()?
    };
    let total =
        decoded.spans.len() + usize::try_from(decoded.rejections.count).unwrap_or(usize::MAX);
    let rejections = receivers.deliver(decoded).await.map_err(|e| e.to_grpc_status())?;
    let partial_success = (rejections.count > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: i64::try_from(rejections.count).unwrap_or(i64::MAX),
        error_message: rejections.message(total),
    });
    Ok(ExportTraceServiceResponse { partial_success })
}
