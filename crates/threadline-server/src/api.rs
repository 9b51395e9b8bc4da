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
    SegmentView, ServicesResponse, SpanView, SpecCheckView, SqlRequest, SqlResponse,
    StatusResponse, StoreStatus, TraceResponse, TriageGroup, TriageResponse, TriageType,
    WaitingView,
};
use threadline_core::id::TraceId;
use threadline_engine::critical_path::{Segment, critical_path};
use threadline_ingest::IngestStats;
use threadline_ingest::queue::QueueMonitor;
use threadline_storage::processes::{
    Cursor, ProcessFilter, ProcessRecord, RecordState, StoredEvent, WaitingRecord,
};
use threadline_storage::search::SpanQuery;
use threadline_storage::store::Store;
use tokio::sync::broadcast;

use crate::engine_task::EngineHandle;
use crate::process_writer::record;

#[derive(Debug, Clone)]
pub struct ApiState {
    /// The SQL engine, when the build has one.
    pub sql: Option<Arc<dyn crate::sql::SqlService>>,
    /// Cancelled when the API stops: open event streams end, so shutdown is not held up by
    /// a browser tab left open.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Alert notifications, newest kept.
    pub alerts: crate::alerts::AlertLog,
    /// The process specs loaded.
    pub specs: Arc<Vec<threadline_config::spec::ProcessSpec>>,
    pub store: Arc<Store>,
    pub events: crate::process_writer::Publisher,
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
        .route("/api/v1/triage", get(triage))
        .route("/api/v1/specs", get(specs))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/sql", axum::routing::post(sql))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .merge(crate::jaeger::routes())
        .merge(crate::ui::routes())
        .fallback(not_found)
        .with_state(state)
}

/// The OpenAPI 3.1 document of `/api/v1` (checked against the running server by
/// `crates/threadline/tests/openapi.rs`).
const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `GET /api/v1/specs`: the process specs loaded, by name.
async fn specs(State(state): State<ApiState>) -> Json<threadline_api_types::SpecsResponse> {
    use threadline_api_types::{SpecView, StepView};
    use threadline_config::spec::Recognize;
    let mut specs: Vec<SpecView> = state
        .specs
        .iter()
        .map(|p| SpecView {
            name: p.name.clone(),
            recognize: match &p.recognize {
                Recognize::Root { service, operation: Some(op) } => {
                    format!("root span {service}: {op}")
                }
                Recognize::Root { service, operation: None } => format!("root span of {service}"),
                Recognize::Attribute { key, value } => format!("attribute {key} = {value}"),
            },
            sla_nanos: p.sla_nanos.map(|n| n.to_string()),
            stuck_after_nanos: p.stuck_after_nanos.map(|n| n.to_string()),
            keys: p.keys.clone(),
            steps: p
                .steps
                .iter()
                .map(|s| StepView {
                    service: s.service.clone(),
                    operation: s.operation.clone(),
                    order: s.order,
                    min: s.min,
                    max: s.max,
                    terminal: s.terminal,
                    critical: s.critical,
                })
                .collect(),
            forbid_errors: p.forbid.errors,
            max_retries: p.forbid.max_retries,
            owner: p.owner.as_ref().map(owner_view),
        })
        .collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Json(threadline_api_types::SpecsResponse { specs })
}

#[derive(Debug, serde::Deserialize)]
struct AlertsQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/alerts?limit=100`: the newest alert notifications (firing and resolved),
/// newest first; at most 1000 are kept.
async fn alerts(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<AlertsQuery>,
) -> Result<Json<threadline_api_types::AlertsResponse>, ApiError> {
    let limit = page_limit(query.limit)?;
    let alerts = state
        .alerts
        .recent(limit)
        .into_iter()
        .map(|(seq, n)| threadline_api_types::AlertView {
            seq,
            rule: n.rule,
            status: n.status.to_owned(),
            process_type: n.process_type,
            process_id: n.process_id,
            event: n.event,
            starts_at_unix_nano: n.starts_at.to_string(),
            ends_at_unix_nano: n.ends_at.map(|t| t.to_string()),
            summary: n.summary,
        })
        .collect();
    Ok(Json(threadline_api_types::AlertsResponse { alerts }))
}

#[derive(Debug, serde::Deserialize)]
struct TriageQuery {
    /// A duration: `30s`, `5m`, `1h` (default `1m`).
    older_than: Option<String>,
}

/// Running processes considered, at most.
const TRIAGE_LIMIT: usize = 100_000;

/// `GET /api/v1/triage?older_than=5m`: running processes older than that, grouped by where
/// they wait (channel and consumer group, missing parent, missing root), with each type's
/// owner; the group holding the oldest process first.
async fn triage(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<TriageQuery>,
) -> Result<Json<TriageResponse>, ApiError> {
    let text = query.older_than.as_deref().unwrap_or("1m");
    let older_than = crate::jaeger::parse_duration(text).ok_or_else(|| {
        invalid(format!("older_than {text:?} must be a duration such as 30s, 5m or 1h"))
    })?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let rows = state
        .store
        .running_rows(now.saturating_sub(older_than), TRIAGE_LIMIT)
        .map_err(|e| ApiError::internal(&e))?;
    let mut groups: Vec<(Option<WaitingRecord>, Vec<ProcessRecord>)> = Vec::new();
    for row in rows {
        // Where it waits, without the time it started waiting.
        let place = row.waiting.first().map(|w| match w {
            WaitingRecord::Message { system, destination, group, .. } => WaitingRecord::Message {
                system: system.clone(),
                destination: destination.clone(),
                group: group.clone(),
                since: 0,
            },
            WaitingRecord::MissingParent { .. } => WaitingRecord::MissingParent { count: 0 },
            WaitingRecord::Root => WaitingRecord::Root,
        });
        match groups.iter_mut().find(|(p, _)| *p == place) {
            Some((_, members)) => members.push(row),
            None => groups.push((place, vec![row])),
        }
    }
    let total = groups.iter().map(|(_, m)| m.len() as u64).sum();
    let mut views: Vec<(u64, TriageGroup)> = groups
        .into_iter()
        .map(|(place, mut members)| {
            members.sort_by_key(|r| (r.start_nanos, r.id));
            let oldest_start = members.first().map_or(0, |r| r.start_nanos);
            let mut types: Vec<TriageType> = Vec::new();
            for member in &members {
                match types.iter_mut().find(|t| t.process_type == member.process_type) {
                    Some(t) => t.processes += 1,
                    None => types.push(TriageType {
                        process_type: member.process_type.clone(),
                        processes: 1,
                        owner: owner_of(&state, &member.process_type),
                    }),
                }
            }
            types.sort_by(|a, b| {
                b.processes.cmp(&a.processes).then(a.process_type.cmp(&b.process_type))
            });
            // The oldest member waits there longest: its entry, with its time.
            let waiting_for = place.and(members[0].waiting.first()).map(waiting_view);
            let group = TriageGroup {
                waiting_for,
                processes: members.len() as u64,
                oldest_start_unix_nano: oldest_start.to_string(),
                types,
                oldest: members.iter().take(10).map(|r| r.id.to_hex()).collect(),
            };
            (oldest_start, group)
        })
        .collect();
    views.sort_by_key(|(start, _)| *start);
    Ok(Json(TriageResponse {
        older_than_nanos: older_than.to_string(),
        processes: total,
        groups: views.into_iter().map(|(_, g)| g).collect(),
    }))
}

/// `GET /metrics`: Prometheus text exposition (see `metrics.rs`).
async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let engine = state.engine.stats().await;
    let me = crate::metrics::SelfMetrics {
        accepted_spans: load(&state.stats.accepted_spans),
        rejected_spans: load(&state.stats.rejected_spans),
        refused_requests: load(&state.stats.refused_requests),
        failed_requests: load(&state.stats.failed_requests),
        queue_depth_spans: state.queue.depth_spans() as u64,
        queue_capacity_spans: state.queue.capacity_spans() as u64,
        store: state.store.stats(),
        engine_processes: engine.processes as u64,
        engine_running: engine.running as u64,
        engine_spans: engine.spans,
        engine_untracked_spans: engine.untracked_spans,
        engine_evicted_finished: engine.evicted_finished,
    };
    let Some(graph) = state.engine.graph(60).await else {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "the engine is shutting down".into(),
        });
    };
    let body = crate::metrics::render(state.engine.type_stats().await, &graph, &me);
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
        .into_response())
}

/// `POST /api/v1/sql` with `{"query": "SELECT ...", "maxRows": 100}`.
async fn sql(
    State(state): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<SqlResponse>, ApiError> {
    let Some(service) = &state.sql else {
        return Err(ApiError {
            status: StatusCode::NOT_IMPLEMENTED,
            code: "not_implemented",
            message: "this build of threadline has no SQL engine (cargo feature `sql`)".to_owned(),
        });
    };
    let request: SqlRequest = serde_json::from_slice(&body).map_err(|e| {
        invalid(format!("the body must be JSON {{\"query\": \"SELECT ...\"}}: {e}"))
    })?;
    if request.query.trim().is_empty() {
        return Err(invalid("query must not be empty".to_owned()));
    }
    if request.max_rows == Some(0) {
        return Err(invalid("maxRows must be at least 1".to_owned()));
    }
    service.run(request.query, request.max_rows).await.map(Json).map_err(|failure| {
        use crate::sql::SqlFailureKind as Kind;
        let (status, code) = match failure.kind {
            Kind::Invalid => (StatusCode::BAD_REQUEST, "invalid_query"),
            Kind::TooExpensive => (StatusCode::UNPROCESSABLE_ENTITY, "query_too_expensive"),
            Kind::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "query_timeout"),
            Kind::Busy => (StatusCode::TOO_MANY_REQUESTS, "too_many_queries"),
            Kind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError { status, code, message: failure.message }
    })
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

/// Query parameters whose parse errors answer in the API's error shape (400 naming the
/// parameter), not the framework's plain text.
struct ApiQuery<T>(T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(invalid(rejection.body_text())),
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
            compacted_blocks: store.compacted_blocks,
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
    state.owners.get(process_type).map(owner_view)
}

fn owner_view(owner: &threadline_config::spec::Owner) -> OwnerView {
    OwnerView {
        team: owner.team.clone(),
        pager: owner.pager.clone(),
        repo: owner.repo.clone(),
        runbook: owner.runbook.clone(),
    }
}

fn summary(record: &ProcessRecord, state: &ApiState) -> ProcessSummary {
    ProcessSummary {
        id: record.id.to_hex(),
        process_type: record.process_type.clone(),
        state: record.state.as_str().to_owned(),
        completion_mode: record.mode.clone(),
        stuck: record.stuck,
        sla_breached: record.sla_breached,
        start_time_unix_nano: record.start_nanos.to_string(),
        end_time_unix_nano: record.end_nanos.to_string(),
        duration_nanos: record.end_nanos.saturating_sub(record.start_nanos).to_string(),
        spans: record.spans,
        error_spans: record.error_spans,
        trace_ids: record.traces.iter().map(TraceId::to_hex).collect(),
        keys: record.keys.iter().cloned().collect(),
        waiting_for: record.waiting.iter().map(waiting_view).collect(),
        failure: record.failure.clone(),
        spec: record.spec_violations.as_ref().map(|violations| SpecCheckView {
            passed: violations.is_empty(),
            violations: violations.clone(),
        }),
        owner: owner_of(state, &record.process_type),
    }
}

fn waiting_view(waiting: &WaitingRecord) -> WaitingView {
    match waiting {
        WaitingRecord::Message { system, destination, group, since } => WaitingView::Message {
            system: system.clone(),
            destination: destination.clone(),
            consumer_group: group.clone(),
            since_unix_nano: since.to_string(),
        },
        WaitingRecord::MissingParent { count } => WaitingView::MissingParent { count: *count },
        WaitingRecord::Root => WaitingView::Root,
    }
}

/// A process by its id or any of its trace ids: the live engine state when the engine holds
/// it, else the stored row.
async fn find_process(state: &ApiState, id: TraceId) -> Result<Option<ProcessRecord>, ApiError> {
    if let Some(view) = state.engine.process(id).await {
        // Live state from the engine, business keys from the table (the engine keeps none).
        let mut live = record(&view);
        if let Some(row) = state.store.process(view.id).map_err(|e| ApiError::internal(&e))? {
            live.keys = row.keys;
        }
        return Ok(Some(live));
    }
    if let Some(row) = state.store.process(id).map_err(|e| ApiError::internal(&e))? {
        return Ok(Some(row));
    }
    state.store.process_of_trace(id).map_err(|e| ApiError::internal(&e))
}

/// `GET /api/v1/processes/{id}`: by the process id or any of its trace ids.
async fn process(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<ProcessResponse>, ApiError> {
    let id = parse_id("process id", &id)?;
    let Some(view) = find_process(&state, id).await? else {
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
    #[serde(rename = "type")]
    process_type: Option<String>,
    state: Option<String>,
    /// Start time range, Unix nanoseconds.
    start_from: Option<u64>,
    start_to: Option<u64>,
    limit: Option<usize>,
    cursor: Option<String>,
    stuck: Option<bool>,
    sla_breached: Option<bool>,
    /// Duration range, as 250ms, 30s, 5m.
    min_duration: Option<String>,
    max_duration: Option<String>,
    /// Processes with a span of this service...
    service: Option<String>,
    /// ...of this operation...
    operation: Option<String>,
    /// ...with this attribute, as `http.route:/checkout`.
    attr: Option<String>,
    /// `start` (default), `duration` or `last_activity`.
    sort: Option<String>,
    /// `desc` (default) or `asc`.
    order: Option<String>,
}

const MAX_LIMIT: usize = 1000;

/// A `limit` parameter: 100 when absent, else 1 to [`MAX_LIMIT`].
fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(format!("limit {limit} must be between 1 and {MAX_LIMIT}")));
    }
    Ok(limit)
}
/// A search by span (service, operation, attribute) or a sort other than newest first ranks
/// at most this many matching processes (the newest).
const SEARCH_WINDOW: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Start,
    Duration,
    LastActivity,
}

fn duration_param(name: &str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    text.map(|t| {
        crate::jaeger::parse_duration(t).ok_or_else(|| {
            invalid(format!("{name} {t:?} must be a duration such as 250ms, 30s or 5m"))
        })
    })
    .transpose()
}

/// `GET /api/v1/processes`: by business key (`key=order.id:123`), or listed newest first by
/// `type`, `state` and start time range (`start_from`, `start_to`), `limit` per page (at
/// most 1000) and `cursor` from the previous page. Live and stored processes alike.
async fn processes(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<ProcessQuery>,
) -> Result<Json<ProcessListResponse>, ApiError> {
    let limit = page_limit(query.limit)?;
    if let Some(key) = query.key {
        let Some((name, value)) = key.split_once([':', '=']) else {
            return Err(invalid(format!("key {key:?} must be NAME:VALUE, as in order.id:123")));
        };
        let rows =
            state.store.processes_by_key(name, value, limit).map_err(|e| ApiError::internal(&e))?;
        let mut processes = Vec::with_capacity(rows.len());
        for row in rows {
            // The engine's state of a running process is newer than its row.
            let current = match state.engine.process(row.id).await {
                Some(view) => ProcessRecord { keys: row.keys, ..record(&view) },
                None => row,
            };
            processes.push(summary(&current, &state));
        }
        return Ok(Json(ProcessListResponse { processes, next_cursor: None }));
    }
    let state_filter = match query.state.as_deref() {
        None => None,
        Some(text) => Some(RecordState::parse(text).ok_or_else(|| {
            invalid(format!("state {text:?} is not one of running, completed, failed"))
        })?),
    };
    let sort = match query.sort.as_deref().unwrap_or("start") {
        "start" => SortKey::Start,
        "duration" => SortKey::Duration,
        "last_activity" => SortKey::LastActivity,
        other => {
            return Err(invalid(format!(
                "sort {other:?} is not one of start, duration, last_activity"
            )));
        }
    };
    let ascending = match query.order.as_deref().unwrap_or("desc") {
        "desc" => false,
        "asc" => true,
        other => return Err(invalid(format!("order {other:?} is not one of desc, asc"))),
    };
    let attr = match query.attr.as_deref() {
        None => None,
        Some(text) => match text.split_once([':', '=']) {
            Some((k, v)) if !k.is_empty() => Some((k.to_owned(), v.to_owned())),
            _ => {
                return Err(invalid(format!(
                    "attr {text:?} must be NAME:VALUE, as in http.route:/checkout"
                )));
            }
        },
    };
    let by_span = query.service.is_some() || query.operation.is_some() || attr.is_some();
    let filter = ProcessFilter {
        process_type: query.process_type,
        state: state_filter,
        start_from: query.start_from,
        start_to: query.start_to,
        stuck: query.stuck,
        sla_breached: query.sla_breached,
        min_duration: duration_param("min_duration", query.min_duration.as_deref())?,
        max_duration: duration_param("max_duration", query.max_duration.as_deref())?,
    };
    if by_span || sort != SortKey::Start || ascending {
        let span_query = by_span.then(|| SpanQuery {
            service: query.service,
            operation: query.operation,
            tags: attr.into_iter().collect(),
            start_from: filter.start_from.unwrap_or(0),
            start_to: u64::MAX,
            min_duration: None,
            max_duration: None,
            limit: SEARCH_WINDOW,
        });
        let mut rows = search_window(&state.store, &filter, span_query.as_ref()).await?;
        let key = |r: &ProcessRecord| match sort {
            SortKey::Start => r.start_nanos,
            SortKey::Duration => r.end_nanos.saturating_sub(r.start_nanos),
            SortKey::LastActivity => r.last_activity,
        };
        rows.sort_by(|a, b| {
            let order = (key(a), a.id).cmp(&(key(b), b.id));
            if ascending { order } else { order.reverse() }
        });
        let offset = match query.cursor.as_deref() {
            None => 0,
            Some(text) => {
                text.strip_prefix('o').and_then(|n| n.parse::<usize>().ok()).ok_or_else(|| {
                    invalid(format!("cursor {text:?} is not one this server returned"))
                })?
            }
        };
        let page: Vec<ProcessSummary> =
            rows.iter().skip(offset).take(limit).map(|r| summary(r, &state)).collect();
        let next = offset + limit;
        return Ok(Json(ProcessListResponse {
            processes: page,
            next_cursor: (next < rows.len()).then(|| format!("o{next}")),
        }));
    }
    let cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let (rows, next) =
        state.store.list_processes(&filter, limit, cursor).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(ProcessListResponse {
        processes: rows.iter().map(|r| summary(r, &state)).collect(),
        next_cursor: next.map(|c| format!("{}-{}", c.start_nanos, c.id.to_hex())),
    }))
}

/// The newest [`SEARCH_WINDOW`] processes passing `filter`: those with a span matching
/// `spans` when given (through the span store, then each trace's process), else from the
/// process table.
async fn search_window(
    store: &Store,
    filter: &ProcessFilter,
    spans: Option<&SpanQuery>,
) -> Result<Vec<ProcessRecord>, ApiError> {
    let internal = |e: threadline_storage::StoreError| ApiError::internal(&e);
    let Some(spans) = spans else {
        let mut rows = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = store
                .list_processes(filter, MAX_LIMIT.min(SEARCH_WINDOW - rows.len()), cursor)
                .map_err(internal)?;
            rows.extend(page);
            match next {
                Some(next) if rows.len() < SEARCH_WINDOW => cursor = Some(next),
                _ => return Ok(rows),
            }
        }
    };
    let traces = store.search(spans).await.map_err(internal)?;
    let mut rows = store.processes_of_traces(&traces).map_err(internal)?;
    rows.retain(|row| filter.matches(row));
    Ok(rows)
}

fn parse_cursor(text: &str) -> Result<Cursor, ApiError> {
    let bad = || invalid(format!("cursor {text:?} is not one this server returned"));
    let (start, id) = text.split_once('-').ok_or_else(bad)?;
    Ok(Cursor {
        start_nanos: start.parse().map_err(|_| bad())?,
        id: TraceId::from_hex(id).map_err(|_| bad())?,
    })
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
    ApiQuery(query): ApiQuery<WindowQuery>,
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
    ApiQuery(query): ApiQuery<WindowQuery>,
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
    /// Replay logged events after this seq first (as the `Last-Event-ID` header does).
    after: Option<String>,
}

const EVENT_KINDS: &[&str] =
    &["started", "completed", "failed", "sla_breached", "stuck", "spec_violated", "reopened"];

/// `GET /api/v1/events`: engine events as Server-Sent Events, from now on. A subscriber too
/// slow to keep up gets a `lagged` event saying how many it missed.
async fn events(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    ApiQuery(query): ApiQuery<EventQuery>,
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
    // Subscribe first, then read the log: nothing falls between the two.
    let receiver = state.events.subscribe();
    let after = query
        .after
        .as_deref()
        .map(|text| {
            text.parse::<u64>().map_err(|_| invalid(format!("after {text:?} must be an event seq")))
        })
        .transpose()?;
    let resume_after = match (last_event_id(&headers)?, after) {
        (Some(seq), _) | (None, Some(seq)) => Some(seq),
        (None, None) => None,
    };
    let backlog: std::collections::VecDeque<Arc<StoredEvent>> = match resume_after {
        Some(seq) => state
            .store
            .events_after(seq, BACKLOG_LIMIT)
            .map_err(|e| ApiError::internal(&e))?
            .into_iter()
            .map(Arc::new)
            .collect(),
        None => std::collections::VecDeque::new(),
    };
    let sent = backlog.back().map(|e| e.seq).or(resume_after).unwrap_or(0);
    let stream = futures_util::stream::unfold(
        (receiver, backlog, sent),
        move |(mut receiver, mut backlog, mut sent)| {
            let (types, kinds) = (types.clone(), kinds.clone());
            async move {
                while let Some(event) = backlog.pop_front() {
                    if keep(&event, &types, &kinds) {
                        return Some((Ok(sse_event(&event)), (receiver, backlog, sent)));
                    }
                }
                loop {
                    match receiver.recv().await {
                        Ok(event) => {
                            // Already sent from the log.
                            if event.seq <= sent {
                                continue;
                            }
                            sent = event.seq;
                            if keep(&event, &types, &kinds) {
                                return Some((Ok(sse_event(&event)), (receiver, backlog, sent)));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            let lagged = SseEvent::default()
                                .event("lagged")
                                .data(format!("{{\"missed\":{missed}}}"));
                            return Some((Ok(lagged), (receiver, backlog, sent)));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        },
    );
    let stream = futures_util::StreamExt::take_until(stream, state.stopping.cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Events read from the log for a resuming subscriber, at most.
const BACKLOG_LIMIT: usize = 10_000;

fn last_event_id(headers: &axum::http::HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else { return Ok(None) };
    let text = value.to_str().unwrap_or("");
    text.trim()
        .parse()
        .map(Some)
        .map_err(|_| invalid(format!("Last-Event-ID {text:?} must be an event seq")))
}

fn keep(event: &StoredEvent, types: &[String], kinds: &[String]) -> bool {
    (types.is_empty() || types.contains(&event.process_type))
        && (kinds.is_empty() || kinds.contains(&event.kind))
}

fn sse_event(event: &StoredEvent) -> SseEvent {
    let view = ProcessEventView {
        seq: event.seq,
        kind: event.kind.clone(),
        process_id: event.process_id.to_hex(),
        process_type: event.process_type.clone(),
        at_unix_nano: event.at.to_string(),
        detail: event.detail.clone(),
    };
    let data = serde_json::to_string(&view).unwrap_or_default();
    SseEvent::default().event(event.kind.as_str()).id(event.seq.to_string()).data(data)
}
