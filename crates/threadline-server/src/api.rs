//! The HTTP API listener: health and readiness probes and `/api/v1`. Every error uses the
//! single shape `{"error": {"code", "message"}}` of `threadline-api-types`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use threadline_api_types::{
    ErrorBody, IngestStatus, ServicesResponse, SpanView, StatusResponse, StoreStatus, TraceResponse,
};
use threadline_core::id::TraceId;
use threadline_ingest::IngestStats;
use threadline_ingest::queue::QueueMonitor;
use threadline_storage::SpanStore;

#[derive(Debug, Clone)]
pub struct ApiState {
    pub store: Arc<dyn SpanStore>,
    pub queue: QueueMonitor,
    pub stats: Arc<IngestStats>,
    pub ready: Arc<AtomicBool>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .route("/api/v1/services", get(services))
        .route("/api/v1/traces/{trace_id}", get(trace))
        .fallback(not_found)
        .with_state(state)
}

/// An API error: status and the single error shape.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn internal(e: &(dyn std::error::Error + 'static)) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: threadline_core::error::chain(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody::new(self.code, self.message))).into_response()
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(state): State<ApiState>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "not_ready" })))
            .into_response()
    }
}

async fn status(State(state): State<ApiState>) -> Json<StatusResponse> {
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let store = state.store.stats();
    Json(StatusResponse {
        ready: state.ready.load(Ordering::SeqCst),
        ingest: IngestStatus {
            queue_depth_spans: state.queue.depth_spans() as u64,
            queue_capacity_spans: state.queue.capacity_spans() as u64,
            accepted_spans: load(&state.stats.accepted_spans),
            rejected_spans: load(&state.stats.rejected_spans),
            refused_requests: load(&state.stats.refused_requests),
            failed_requests: load(&state.stats.failed_requests),
        },
        store: StoreStatus {
            traces: store.traces as u64,
            spans: store.spans as u64,
            evicted_spans: store.evicted_spans,
        },
    })
}

async fn services(State(state): State<ApiState>) -> Result<Json<ServicesResponse>, ApiError> {
    let services = state.store.services().map_err(|e| ApiError::internal(&e))?;
    Ok(Json(ServicesResponse { services }))
}

async fn trace(
    State(state): State<ApiState>,
    Path(trace_id): Path<String>,
) -> Result<Json<TraceResponse>, ApiError> {
    let id = TraceId::from_hex(&trace_id).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_argument",
        message: format!("trace_id {trace_id:?} {e}"),
    })?;
    let spans = state.store.trace(id).map_err(|e| ApiError::internal(&e))?;
    if spans.is_empty() {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("trace {id} not found"),
        });
    }
    Ok(Json(TraceResponse {
        trace_id: id.to_hex(),
        spans: spans.iter().map(SpanView::from).collect(),
    }))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: format!("no route for {}", uri.path()),
    }
}
