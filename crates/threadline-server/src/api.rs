//! The HTTP API listener: health and readiness probes and `/api/v1`. Every error uses the
//! single shape `{"error": {"code", "message"}}` of `threadline-api-types`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use threadline_api_types::{
    CallView, ChannelView, ConsumerGroupView, EngineStatus, ErrorBody, GraphResponse, IngestStatus,
    OperationView, OwnerView, ProcessEventView, ProcessListResponse, ProcessResponse,
    ProcessSummary, ProcessTypeView, ProcessTypesResponse, ProducerView, QuantilesView,
    SegmentView, ServicesResponse, SpanView, SpecCheckView, StatusResponse, StoreStatus,
    TraceResponse, WaitingView,
};
use threadline_core::id::TraceId;
use threadline_engine::critical_path::{Segment, critical_path};
use threadline_engine::engine::{ProcessView, Waiting};
use threadline_engine::event::Event;
use threadline_ingest::IngestStats;
use threadline_ingest::queue::QueueMonitor;
use threadline_storage::store::Store;
use tokio::sync::broadcast;

use crate::engine_task::EngineHandle;

#[derive(Debug, Clone)]
pub struct ApiState {
    pub store: Arc<Store>,
    pub queue: QueueMonitor,
    pub stats: Arc<IngestStats>,
    pub ready: Arc<AtomicBool>,
    pub engine: EngineHandle,
    /// Owners of process types, from the specs.
    pub owners: Arc<std::collections::HashMap<String, threadline_config::spec::Owner>>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/status", get(status))
        .route("/api/v1/services", get(services))
        .route("/api/v1/traces/{trace_id}", get(trace))
        .route("/api/v1/processes", get(processes))
        .route("/api/v1/processes/{id}", get(process))
        .route("/api/v1/events", get(events))
        .route("/api/v1/process-types", get(process_types))
        .route("/api/v1/graph", get(graph))
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
    let engine = state.engine.stats().await;
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
            head_spans: store.head_spans,
            blocks: store.blocks,
            block_spans: store.block_spans,
            block_bytes: store.block_bytes,
            deleted_blocks: store.deleted_blocks,
            read_errors: store.read_errors,
            wal_segments: store.wal_segments,
            wal_bytes: store.wal_bytes,
            last_error: store.last_error,
        },
        engine: EngineStatus {
            processes: engine.processes as u64,
            running: engine.running as u64,
            spans: engine.spans,
            untracked_spans: engine.untracked_spans,
            evicted_finished: engine.evicted_finished,
        },
    })
}

async fn services(State(state): State<ApiState>) -> Result<Json<ServicesResponse>, ApiError> {
    let services = state.store.services();
    Ok(Json(ServicesResponse { services }))
}

fn parse_id(name: &str, text: &str) -> Result<TraceId, ApiError> {
    TraceId::from_hex(text).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_argument",
        message: format!("{name} {text:?} {e}"),
    })
}

fn invalid(message: String) -> ApiError {
    ApiError { status: StatusCode::BAD_REQUEST, code: "invalid_argument", message }
}

async fn trace(
    State(state): State<ApiState>,
    Path(trace_id): Path<String>,
) -> Result<Json<TraceResponse>, ApiError> {
    let id = parse_id("trace_id", &trace_id)?;
    let spans = state.store.trace(id).await.map_err(|e| ApiError::internal(&e))?;
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

/// The owner of a process type, from the specs.
fn owner_of(state: &ApiState, process_type: &str) -> Option<OwnerView> {
    state.owners.get(process_type).map(|owner| OwnerView {
        team: owner.team.clone(),
        pager: owner.pager.clone(),
        repo: owner.repo.clone(),
        runbook: owner.runbook.clone(),
    })
}

fn summary(view: &ProcessView, state: &ApiState) -> ProcessSummary {
    ProcessSummary {
        id: view.id.to_hex(),
        process_type: view.process_type.clone(),
        state: view.state.as_str().to_owned(),
        completion_mode: view.mode.map(|m| m.as_str().to_owned()),
        stuck: view.stuck,
        sla_breached: view.sla_breached,
        start_time_unix_nano: view.start_nanos.to_string(),
        end_time_unix_nano: view.end_nanos.to_string(),
        duration_nanos: view.end_nanos.saturating_sub(view.start_nanos).to_string(),
        spans: view.spans,
        error_spans: view.error_spans,
        trace_ids: view.traces.iter().map(TraceId::to_hex).collect(),
        keys: view.keys.iter().cloned().collect(),
        waiting_for: view
            .waiting_for
            .iter()
            .map(|w| match w {
                Waiting::Message { system, destination, group, since } => WaitingView::Message {
                    system: system.clone(),
                    destination: destination.clone(),
                    consumer_group: group.clone(),
                    since_unix_nano: since.to_string(),
                },
                Waiting::MissingParent { count } => {
                    WaitingView::MissingParent { count: *count as u64 }
                }
                Waiting::Root => WaitingView::Root,
            })
            .collect(),
        failure: view.failure.clone(),
        spec: view.spec.as_ref().map(|spec| SpecCheckView {
            passed: spec.violations.is_empty(),
            violations: spec.violations.clone(),
        }),
        owner: owner_of(state, &view.process_type),
    }
}

/// `GET /api/v1/processes/{id}`: by the process id or any of its trace ids.
async fn process(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<ProcessResponse>, ApiError> {
    let id = parse_id("process id", &id)?;
    let Some(view) = state.engine.process(id).await else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("process {id} not found"),
        });
    };
    let mut spans = Vec::new();
    for trace_id in &view.traces {
        spans.extend(state.store.trace(*trace_id).await.map_err(|e| ApiError::internal(&e))?);
    }
    spans.sort_by_key(|s| (s.start_time_unix_nano, s.span_id));
    let critical_path = critical_path(&spans).iter().map(segment_view).collect();
    let timeline = spans.iter().map(SpanView::from).collect();
    Ok(Json(ProcessResponse { process: summary(&view, &state), timeline, critical_path }))
}

fn segment_view(segment: &Segment) -> SegmentView {
    let (start, end) = (segment.start(), segment.end());
    match segment {
        Segment::Operation { trace_id, span_id, service, name, .. } => SegmentView::Operation {
            trace_id: trace_id.to_hex(),
            span_id: span_id.to_hex(),
            service: service.clone(),
            name: name.clone(),
            start_time_unix_nano: start.to_string(),
            end_time_unix_nano: end.to_string(),
            duration_nanos: end.saturating_sub(start).to_string(),
        },
        Segment::ChannelWait {
            system, destination, consumer_group, producer, consumer, ..
        } => SegmentView::ChannelWait {
            system: system.clone(),
            destination: destination.clone(),
            consumer_group: consumer_group.clone(),
            producer_span_id: producer.to_hex(),
            consumer_span_id: consumer.to_hex(),
            start_time_unix_nano: start.to_string(),
            end_time_unix_nano: end.to_string(),
            duration_nanos: end.saturating_sub(start).to_string(),
        },
    }
}

#[derive(Debug, serde::Deserialize)]
struct ProcessQuery {
    key: Option<String>,
}

/// `GET /api/v1/processes?key=order.id:123` (or `order.id=123`).
async fn processes(
    State(state): State<ApiState>,
    Query(query): Query<ProcessQuery>,
) -> Result<Json<ProcessListResponse>, ApiError> {
    let Some(key) = query.key else {
        return Err(invalid("query parameter key is required, as in key=order.id:123".into()));
    };
    let Some((name, value)) = key.split_once([':', '=']) else {
        return Err(invalid(format!("key {key:?} must be NAME:VALUE, as in order.id:123")));
    };
    let views = state.engine.by_key(name.to_owned(), value.to_owned()).await;
    Ok(Json(ProcessListResponse { processes: views.iter().map(|v| summary(v, &state)).collect() }))
}

#[derive(Debug, serde::Deserialize)]
struct WindowQuery {
    /// Minutes of the rate window (default 5, at most 60).
    window_minutes: Option<u64>,
}

fn quantiles(q: &threadline_engine::sketch::Quantiles) -> QuantilesView {
    let nanos = |v: Option<u64>| v.map(|v| v.to_string());
    QuantilesView { p50_nanos: nanos(q.p50), p95_nanos: nanos(q.p95), p99_nanos: nanos(q.p99) }
}

/// `GET /api/v1/process-types`: counts, rates, duration quantiles and SLA compliance per type.
async fn process_types(
    State(state): State<ApiState>,
    Query(query): Query<WindowQuery>,
) -> Result<Json<ProcessTypesResponse>, ApiError> {
    let window = query.window_minutes.unwrap_or(5);
    if !(1..=60).contains(&window) {
        return Err(invalid(format!("window_minutes {window} must be between 1 and 60")));
    }
    let summaries = state.engine.process_types(window).await;
    let process_types = summaries
        .into_iter()
        .map(|t| ProcessTypeView {
            owner: owner_of(&state, &t.name),
            name: t.name,
            started: t.started,
            completed: t.completed,
            failed: t.failed,
            in_flight: t.in_flight,
            stuck: t.stuck,
            sla_breached: t.sla_breached,
            spec_violated: t.spec_violated,
            reopened: t.reopened,
            completed_per_minute: t.completed_per_minute,
            durations: quantiles(&t.durations),
            sla_compliance: t.sla_compliance,
        })
        .collect();
    Ok(Json(ProcessTypesResponse { window_minutes: window, process_types }))
}

/// `GET /api/v1/graph`: operations per service and the channels between services.
async fn graph(
    State(state): State<ApiState>,
    Query(query): Query<WindowQuery>,
) -> Result<Json<GraphResponse>, ApiError> {
    let window = query.window_minutes.unwrap_or(5);
    if !(1..=60).contains(&window) {
        return Err(invalid(format!("window_minutes {window} must be between 1 and 60")));
    }
    let Some(graph) = state.engine.graph(window).await else {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "the engine is shutting down".into(),
        });
    };
    Ok(Json(GraphResponse {
        calls: graph
            .calls
            .into_iter()
            .map(|c| CallView {
                caller: c.caller,
                callee: c.callee,
                calls: c.calls,
                errors: c.errors,
                per_minute: c.per_minute,
                durations: quantiles(&c.durations),
            })
            .collect(),
        operations: graph
            .operations
            .into_iter()
            .map(|o| OperationView {
                service: o.service,
                operation: o.operation,
                count: o.count,
                errors: o.errors,
                per_minute: o.per_minute,
                durations: quantiles(&o.durations),
            })
            .collect(),
        channels: graph
            .channels
            .into_iter()
            .map(|c| ChannelView {
                system: c.system,
                destination: c.destination,
                messages: c.messages,
                producers: c
                    .producers
                    .into_iter()
                    .map(|(service, messages)| ProducerView { service, messages })
                    .collect(),
                consumer_groups: c
                    .groups
                    .into_iter()
                    .map(|g| ConsumerGroupView {
                        group: g.group,
                        consumed: g.consumed,
                        waits: quantiles(&g.waits),
                    })
                    .collect(),
            })
            .collect(),
    }))
}

#[derive(Debug, serde::Deserialize)]
struct EventQuery {
    /// Comma-separated process types to keep.
    #[serde(rename = "type")]
    process_type: Option<String>,
    /// Comma-separated event kinds to keep.
    kind: Option<String>,
}

const EVENT_KINDS: &[&str] =
    &["started", "completed", "failed", "sla_breached", "stuck", "spec_violated", "reopened"];

/// `GET /api/v1/events`: engine events as Server-Sent Events, from now on. A subscriber too
/// slow to keep up gets a `lagged` event saying how many it missed.
async fn events(
    State(state): State<ApiState>,
    Query(query): Query<EventQuery>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let split = |s: Option<String>| -> Vec<String> {
        s.map(|s| s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())
            .unwrap_or_default()
    };
    let types = split(query.process_type);
    let kinds = split(query.kind);
    if let Some(bad) = kinds.iter().find(|k| !EVENT_KINDS.contains(&k.as_str())) {
        return Err(invalid(format!("kind {bad:?} is not one of {}", EVENT_KINDS.join(", "))));
    }
    let receiver = state.engine.subscribe();
    let stream = futures_util::stream::unfold(receiver, move |mut receiver| {
        let (types, kinds) = (types.clone(), kinds.clone());
        async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => {
                        if keep(&event, &types, &kinds) {
                            return Some((Ok(sse_event(&event)), receiver));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let lagged = SseEvent::default()
                            .event("lagged")
                            .data(format!("{{\"missed\":{missed}}}"));
                        return Some((Ok(lagged), receiver));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn keep(event: &Event, types: &[String], kinds: &[String]) -> bool {
    (types.is_empty() || types.contains(&event.process_type))
        && (kinds.is_empty() || kinds.iter().any(|k| k == event.kind.as_str()))
}

fn sse_event(event: &Event) -> SseEvent {
    let view = ProcessEventView {
        kind: event.kind.as_str().to_owned(),
        process_id: event.process_id.to_hex(),
        process_type: event.process_type.clone(),
        at_unix_nano: event.at.to_string(),
        detail: event.detail.clone(),
    };
    let data = serde_json::to_string(&view).unwrap_or_default();
    SseEvent::default().event(event.kind.as_str()).data(data)
}
