//! Core spans back to OTLP protobuf, so tests can send spans built with [`crate::spans`] to a
//! running server as any instrumented service would (the shop simulator's encoding).

use prost::Message as _;
use threadline_core::span::Span;
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;

/// An export request carrying `spans`, grouped by resource and scope.
pub fn request(spans: &[Span]) -> ExportTraceServiceRequest {
    threadline_sim::request(spans)
}

/// `spans` as an OTLP/HTTP protobuf body.
pub fn protobuf(spans: &[Span]) -> Vec<u8> {
    request(spans).encode_to_vec()
}
