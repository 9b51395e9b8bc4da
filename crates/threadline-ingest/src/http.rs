//! The OTLP/HTTP receiver (`POST /v1/traces`) and the Zipkin v2 receiver
//! (`POST /api/v2/spans`) as axum routers.
//!
//! Order of checks for every request, cheapest first: content type and encoding (415), a
//! free request slot (503, before any body byte is read), declared and actual body size (413),
//! decompression within its own cap (413), decoding (400), per-span validation (partial
//! success), the queue (429). Answers use the request's encoding: protobuf or JSON
//! `ExportTraceServiceResponse` on success, `google.rpc.Status` on error.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt as _;
use prost::Message as _;
use threadline_proto::opentelemetry::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};

use crate::Receivers;
use crate::body::{self, Encoding};
use crate::convert::{self, Decoded};
use crate::error::IngestError;

/// Bodies above this size are decoded on the blocking pool rather than on a runtime thread.
const INLINE_DECODE_BYTES: usize = 64 << 10;

/// `POST /v1/traces`, for the OTLP/HTTP listener.
pub fn otlp_router(receivers: Receivers) -> Router {
    Router::new().route("/v1/traces", post(otlp_traces)).with_state(receivers)
}

/// `POST /api/v2/spans`, for the Zipkin listener.
pub fn zipkin_router(receivers: Receivers) -> Router {
    Router::new().route("/api/v2/spans", post(zipkin_spans)).with_state(receivers)
}

async fn otlp_traces(
    State(receivers): State<Receivers>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match Encoding::from_content_type(header_str(&headers, header::CONTENT_TYPE)) {
        Ok(encoding) => encoding,
        // The request's encoding is unknown, so the error is sent as JSON.
        Err(e) => return otlp_error(Encoding::Json, &e),
    };
    match accept_otlp(&receivers, &headers, body, encoding).await {
        Ok((total, rejections)) => {
            let partial_success = (rejections.count > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(rejections.count).unwrap_or(i64::MAX),
                error_message: rejections.message(total),
            });
            otlp_success(encoding, &ExportTraceServiceResponse { partial_success })
        }
        Err(e) => otlp_error(encoding, &e),
    }
}

async fn accept_otlp(
    receivers: &Receivers,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
) -> Result<(usize, convert::Rejections), IngestError> {
    let gzip = body::is_gzip(header_str(headers, header::CONTENT_ENCODING))?;
    let _slot = request_slot(receivers)?;
    let bytes = read_body(receivers, headers, body).await?;
    let max = receivers.limits.max_decompressed_bytes;
    let decoded = off_runtime(bytes.len(), move || {
        let raw = if gzip { body::gunzip_capped(&bytes, max)?.into() } else { bytes };
        body::decode_spans(&raw, encoding)
    })
    .await?;
    let total =
        decoded.spans.len() + usize::try_from(decoded.rejections.count).unwrap_or(usize::MAX);
    let rejections = receivers.deliver(decoded).await?;
    Ok((total, rejections))
}

async fn zipkin_spans(
    State(receivers): State<Receivers>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept_zipkin(&receivers, &headers, body).await {
        // Zipkin clients expect 202 and no body; rejected spans are explained for humans.
        Ok((_, rejections)) if rejections.count == 0 => StatusCode::ACCEPTED.into_response(),
        Ok((total, rejections)) => json_response(
            StatusCode::ACCEPTED,
            &serde_json::json!({
                "rejectedSpans": rejections.count,
                "errorMessage": rejections.message(total),
            }),
        ),
        Err(e) => {
            let mut response = json_response(
                e.http_status(),
                &serde_json::json!({ "error": { "code": e.http_status().as_u16(), "message": e.to_string() } }),
            );
            add_retry_after(&mut response, &e);
            response
        }
    }
}

async fn accept_zipkin(
    receivers: &Receivers,
    headers: &HeaderMap,
    body: Body,
) -> Result<(usize, convert::Rejections), IngestError> {
    body::check_zipkin_content_type(header_str(headers, header::CONTENT_TYPE))?;
    let gzip = body::is_gzip(header_str(headers, header::CONTENT_ENCODING))?;
    let _slot = request_slot(receivers)?;
    let bytes = read_body(receivers, headers, body).await?;
    let max = receivers.limits.max_decompressed_bytes;
    let decoded: Decoded = off_runtime(bytes.len(), move || {
        let raw = if gzip { body::gunzip_capped(&bytes, max)?.into() } else { bytes };
        let spans = body::decode_zipkin(&raw)?;
        Ok(crate::zipkin::convert_zipkin(spans))
    })
    .await?;
    let total =
        decoded.spans.len() + usize::try_from(decoded.rejections.count).unwrap_or(usize::MAX);
    if decoded.spans.is_empty() && decoded.rejections.count > 0 {
        return Err(IngestError::Malformed(decoded.rejections.message(total)));
    }
    let rejections = receivers.deliver(decoded).await?;
    Ok((total, rejections))
}

/// A slot among `max_concurrent_requests`, taken before the body is read.
fn request_slot(receivers: &Receivers) -> Result<tokio::sync::SemaphorePermit<'_>, IngestError> {
    receivers.concurrency.try_acquire().map_err(|_| {
        let error = IngestError::Busy { retry_after: receivers.limits.retry_after };
        receivers.refused(&error);
        error
    })
}

/// Reads the body within `max_request_bytes`, refusing early when `Content-Length` says it is
/// too large.
async fn read_body(
    receivers: &Receivers,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, IngestError> {
    let limit = receivers.limits.max_request_bytes;
    let too_large = IngestError::TooLarge { what: "request body", limit };
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large);
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large),
        Err(e) => Err(IngestError::Malformed(format!("reading the request body failed: {e}"))),
    }
}

/// Runs CPU-heavy decoding of large bodies on the blocking pool so runtime threads stay
/// responsive; small bodies are cheaper to decode in place.
async fn off_runtime<F>(len: usize, work: F) -> Result<Decoded, IngestError>
where
    F: FnOnce() -> Result<Decoded, IngestError> + Send + 'static,
{
    if len <= INLINE_DECODE_BYTES {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(IngestError::Malformed(format!("decoding failed: {e}"))))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn otlp_success(encoding: Encoding, response: &ExportTraceServiceResponse) -> Response {
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => {
            let json = match &response.partial_success {
                Some(partial) => serde_json::json!({
                    "partialSuccess": {
                        "rejectedSpans": partial.rejected_spans.to_string(),
                        "errorMessage": partial.error_message,
                    }
                }),
                None => serde_json::json!({}),
            };
            json.to_string().into_bytes()
        }
    };
    with_type(StatusCode::OK, encoding.content_type(), body)
}

fn otlp_error(encoding: Encoding, error: &IngestError) -> Response {
    let status = error.rpc_status(error.retry_after());
    let body = match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": status.code, "message": status.message })
            .to_string()
            .into_bytes(),
    };
    let mut response = with_type(error.http_status(), encoding.content_type(), body);
    add_retry_after(&mut response, error);
    response
}

fn add_retry_after(response: &mut Response, error: &IngestError) {
    if let Some(delay) = error.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(delay.as_secs().max(1)));
    }
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    with_type(status, "application/json", value.to_string().into_bytes())
}

fn with_type(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}
