//! The Jaeger query API (`/api/...`), so Jaeger UI and Grafana's Jaeger data source read
//! Threadline: services, operations, trace search, traces by id and service dependencies, in
//! Jaeger's JSON shapes. Spans translate as the OpenTelemetry-to-Jaeger conventions say: the
//! parent is a `CHILD_OF` reference, links are `FOLLOWS_FROM` references, kind and status
//! become `span.kind`, `otel.status_code` and `error` tags, events become logs, and each
//! span's resource becomes its process.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Value, json};
use threadline_core::id::TraceId;
use threadline_core::span::{Span, SpanKind, StatusCode as SpanStatus};
use threadline_core::value::{AnyValue, KeyValue};
use threadline_storage::search::SpanQuery;

use crate::api::ApiState;

/// Traces a search returns when the client names no limit, and at most.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1500;

pub fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/api/services", get(services))
        .route("/api/services/{service}/operations", get(service_operations))
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/dependencies", get(dependencies))
        .route("/api/v3/services", get(v3_services))
        .route("/api/v3/operations", get(v3_operations))
        .route("/api/v3/traces", get(v3_search))
        .route("/api/v3/traces/{trace_id}", get(v3_trace))
}

/// An error of the v3 API: `{"error": {"httpCode", "message"}}` as Jaeger's gRPC gateway has it.
fn v3_error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": { "httpCode": status.as_u16(), "message": message } })))
        .into_response()
}

async fn v3_services(State(state): State<ApiState>) -> Response {
    Json(json!({ "services": state.store.services() })).into_response()
}

async fn v3_operations(
    State(state): State<ApiState>,
    Query(query): Query<OperationsQuery>,
) -> Response {
    let Some(service) = query.service else {
        return v3_error(StatusCode::BAD_REQUEST, "parameter service is required".into());
    };
    let names = operation_names(&state, &service).await;
    let operations: Vec<Value> =
        names.iter().map(|n| json!({ "name": n, "spanKind": "" })).collect();
    Json(json!({ "operations": operations })).into_response()
}

async fn v3_trace(State(state): State<ApiState>, Path(trace_id): Path<String>) -> Response {
    let Ok(id) = TraceId::from_hex(&trace_id) else {
        return v3_error(
            StatusCode::BAD_REQUEST,
            format!("trace id {trace_id:?} must be 32 hex digits"),
        );
    };
    match state.store.trace(id).await {
        Ok(spans) if spans.is_empty() => {
            v3_error(StatusCode::NOT_FOUND, format!("trace {id} not found"))
        }
        Ok(spans) => Json(json!({ "result": otlp_json(&spans) })).into_response(),
        Err(e) => v3_error(StatusCode::INTERNAL_SERVER_ERROR, threadline_core::error::chain(&e)),
    }
}

#[derive(Debug, serde::Deserialize)]
struct V3SearchQuery {
    #[serde(rename = "query.service_name")]
    service: Option<String>,
    #[serde(rename = "query.operation_name")]
    operation: Option<String>,
    #[serde(rename = "query.start_time_min")]
    start_min: Option<String>,
    #[serde(rename = "query.start_time_max")]
    start_max: Option<String>,
    #[serde(rename = "query.duration_min")]
    duration_min: Option<String>,
    #[serde(rename = "query.duration_max")]
    duration_max: Option<String>,
    #[serde(rename = "query.num_traces")]
    num_traces: Option<String>,
}

/// `GET /api/v3/traces?query.service_name=...&query.start_time_min=RFC3339&...`: matching
/// traces as one OTLP `TracesData`.
async fn v3_search(State(state): State<ApiState>, Query(query): Query<V3SearchQuery>) -> Response {
    let bad = |m: String| v3_error(StatusCode::BAD_REQUEST, m);
    let Some(service) = query.service.filter(|s| !s.is_empty()) else {
        return bad("parameter query.service_name is required".into());
    };
    let time = |name: &str, text: Option<&str>| -> Result<Option<u64>, String> {
        text.filter(|t| !t.is_empty())
            .map(|t| {
                parse_rfc3339(t)
                    .ok_or_else(|| format!("parameter {name} {t:?} must be an RFC 3339 time"))
            })
            .transpose()
    };
    let (start_from, start_to) = match (
        time("query.start_time_min", query.start_min.as_deref()),
        time("query.start_time_max", query.start_max.as_deref()),
    ) {
        (Ok(Some(from)), Ok(to)) => (from, to.unwrap_or(u64::MAX)),
        (Ok(None), Ok(_)) => return bad("parameter query.start_time_min is required".into()),
        (Err(message), _) | (_, Err(message)) => return bad(message),
    };
    let duration = |name: &str, text: Option<&str>| -> Result<Option<u64>, String> {
        text.filter(|t| !t.is_empty())
            .map(|t| {
                parse_duration(t).ok_or_else(|| {
                    format!("parameter {name} {t:?} must be a duration such as 1.2s")
                })
            })
            .transpose()
    };
    let (min_duration, max_duration) = match (
        duration("query.duration_min", query.duration_min.as_deref()),
        duration("query.duration_max", query.duration_max.as_deref()),
    ) {
        (Ok(min), Ok(max)) => (min, max),
        (Err(message), _) | (_, Err(message)) => return bad(message),
    };
    let limit = match query.num_traces.as_deref().filter(|t| !t.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return bad(format!(
                    "parameter query.num_traces {text:?} must be between 1 and {MAX_LIMIT}"
                ));
            }
        },
    };
    let span_query = SpanQuery {
        service: Some(service),
        operation: query.operation.filter(|o| !o.is_empty()),
        tags: Vec::new(),
        start_from,
        start_to,
        min_duration,
        max_duration,
        limit,
    };
    let ids = match state.store.search(&span_query).await {
        Ok(ids) => ids,
        Err(e) => {
            return v3_error(StatusCode::INTERNAL_SERVER_ERROR, threadline_core::error::chain(&e));
        }
    };
    let mut spans = Vec::new();
    for id in ids {
        match state.store.trace(id).await {
            Ok(found) => spans.extend(found),
            Err(e) => {
                return v3_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    threadline_core::error::chain(&e),
                );
            }
        }
    }
    Json(json!({ "result": otlp_json(&spans) })).into_response()
}

/// RFC 3339 (`2023-11-14T22:13:20Z`, `...20.5+01:00`) to Unix nanoseconds.
fn parse_rfc3339(text: &str) -> Option<u64> {
    let (date, rest) = text.split_once(['T', 't', ' '])?;
    let mut parts = date.splitn(3, '-');
    let (y, m, d): (i64, i64, i64) =
        (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let mut hms = clock.splitn(3, ':');
    let (h, min): (i64, i64) = (hms.next()?.parse().ok()?, hms.next()?.parse().ok()?);
    let seconds_text = hms.next()?;
    let (whole, fraction) = seconds_text.split_once('.').unwrap_or((seconds_text, ""));
    let sec: i64 = whole.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    let mut nanos: i64 = 0;
    for (i, digit) in fraction.chars().take(9).enumerate() {
        let digit = i64::from(digit.to_digit(10)?);
        nanos += digit * 10_i64.pow(8 - u32::try_from(i).ok()?);
    }
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (oh, om) = zone[1..].split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    // Days from the civil date (proleptic Gregorian), as in Howard Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + h * 3600 + min * 60 + sec - offset;
    u64::try_from(seconds).ok()?.checked_mul(1_000_000_000)?.checked_add(u64::try_from(nanos).ok()?)
}

/// The spans of one scope under a resource: the first span (for the scope) and all of them.
type ScopeGroup<'a> = (&'a Span, Vec<&'a Span>);

/// Spans as one OTLP JSON `TracesData`: grouped by resource, then by scope.
fn otlp_json(spans: &[Span]) -> Value {
    let mut groups: Vec<(&Span, Vec<ScopeGroup<'_>>)> = Vec::new();
    for span in spans {
        let resource = match groups.iter_mut().find(|(first, _)| *first.resource == *span.resource)
        {
            Some(group) => group,
            None => {
                groups.push((span, Vec::new()));
                let last = groups.len() - 1;
                &mut groups[last]
            }
        };
        match resource.1.iter_mut().find(|(first, _)| *first.scope == *span.scope) {
            Some((_, members)) => members.push(span),
            None => resource.1.push((span, vec![span])),
        }
    }
    let attributes = |kvs: &[KeyValue]| -> Value {
        kvs.iter()
            .map(|kv| json!({ "key": kv.key.as_str(), "value": threadline_api_types::ValueView::from(&kv.value) }))
            .collect()
    };
    let resource_spans: Vec<Value> = groups
        .iter()
        .map(|(first, scopes)| {
            json!({
                "resource": { "attributes": attributes(&first.resource.attributes) },
                "scopeSpans": scopes.iter().map(|(scope_first, members)| json!({
                    "scope": { "name": scope_first.scope.name, "version": scope_first.scope.version },
                    "spans": members.iter().map(|s| json!({
                        "traceId": s.trace_id.to_hex(),
                        "spanId": s.span_id.to_hex(),
                        "parentSpanId": s.parent_span_id.map(|p| p.to_hex()).unwrap_or_default(),
                        "traceState": s.trace_state,
                        "flags": s.flags,
                        "name": s.name,
                        "kind": match s.kind {
                            SpanKind::Unspecified => 0,
                            SpanKind::Internal => 1,
                            SpanKind::Server => 2,
                            SpanKind::Client => 3,
                            SpanKind::Producer => 4,
                            SpanKind::Consumer => 5,
                        },
                        "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                        "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                        "attributes": attributes(&s.attributes),
                        "events": s.events.iter().map(|e| json!({
                            "timeUnixNano": e.time_unix_nano.to_string(),
                            "name": e.name,
                            "attributes": attributes(&e.attributes),
                        })).collect::<Vec<_>>(),
                        "links": s.links.iter().map(|l| json!({
                            "traceId": l.trace_id.to_hex(),
                            "spanId": l.span_id.to_hex(),
                            "attributes": attributes(&l.attributes),
                        })).collect::<Vec<_>>(),
                        "status": {
                            "code": match s.status.code { SpanStatus::Unset => 0, SpanStatus::Ok => 1, SpanStatus::Error => 2 },
                            "message": s.status.message,
                        },
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

/// Jaeger's envelope: `data`, then `total`, `limit`, `offset`, `errors`.
fn envelope(data: Value) -> Response {
    let total = data.as_array().map_or(0, Vec::len);
    Json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null }))
        .into_response()
}

/// An error in Jaeger's envelope: `errors: [{code, msg}]`.
#[derive(Debug)]
struct JaegerError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for JaegerError {
    fn into_response(self) -> Response {
        let body = json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{ "code": self.status.as_u16(), "msg": self.message }],
        });
        (self.status, Json(body)).into_response()
    }
}

fn error(status: StatusCode, message: String) -> JaegerError {
    JaegerError { status, message }
}

fn bad(message: String) -> JaegerError {
    error(StatusCode::BAD_REQUEST, message)
}

async fn services(State(state): State<ApiState>) -> Response {
    envelope(json!(state.store.services()))
}

/// Operations per service, from the engine's aggregates (every operation seen since start).
async fn operation_names(state: &ApiState, service: &str) -> Vec<String> {
    let Some(graph) = state.engine.graph(60).await else { return Vec::new() };
    let mut names: Vec<String> = graph
        .operations
        .into_iter()
        .filter(|o| o.service == service)
        .map(|o| o.operation)
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn service_operations(
    State(state): State<ApiState>,
    Path(service): Path<String>,
) -> Response {
    envelope(json!(operation_names(&state, &service).await))
}

#[derive(Debug, serde::Deserialize)]
struct OperationsQuery {
    service: Option<String>,
}

async fn operations(
    State(state): State<ApiState>,
    Query(query): Query<OperationsQuery>,
) -> Result<Response, JaegerError> {
    let Some(service) = query.service else {
        return Err(bad("parameter service is required".into()));
    };
    let names = operation_names(&state, &service).await;
    let data: Vec<Value> = names.iter().map(|n| json!({ "name": n, "spanKind": "" })).collect();
    Ok(envelope(Value::Array(data)))
}

/// A Go-style duration (`1.5s`, `100ms`, `250us`, `2m`, `1h`) in nanoseconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let units = [
        ("ns", 1.0),
        ("us", 1e3),
        ("µs", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    // Longest unit suffix first, so `ms` is not read as `s`.
    let mut by_length = units;
    by_length.sort_by_key(|(u, _)| std::cmp::Reverse(u.len()));
    for (unit, nanos) in by_length {
        if let Some(number) = text.strip_suffix(unit) {
            let value: f64 = number.parse().ok()?;
            if !(value.is_finite() && value >= 0.0) {
                return None;
            }
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "checked above"
            )]
            return Some((value * nanos) as u64);
        }
    }
    None
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[derive(Debug, serde::Deserialize)]
struct SearchQuery {
    service: Option<String>,
    operation: Option<String>,
    /// JSON object of tag = value.
    tags: Option<String>,
    /// Microseconds since the epoch.
    start: Option<String>,
    end: Option<String>,
    lookback: Option<String>,
    #[serde(rename = "minDuration")]
    min_duration: Option<String>,
    #[serde(rename = "maxDuration")]
    max_duration: Option<String>,
    limit: Option<String>,
}

fn micros(name: &str, text: Option<&str>) -> Result<Option<u64>, JaegerError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<u64>().map_err(|_| {
                bad(format!("parameter {name} {t:?} must be microseconds since the epoch"))
            })
        })
        .transpose()
}

fn duration(name: &str, text: Option<&str>) -> Result<Option<u64>, JaegerError> {
    text.filter(|t| !t.is_empty())
        .map(|t| {
            parse_duration(t).ok_or_else(|| {
                bad(format!("parameter {name} {t:?} must be a duration such as 1.2s or 100ms"))
            })
        })
        .transpose()
}

/// `GET /api/traces`: traces with a span matching every given condition, latest first.
async fn search(
    State(state): State<ApiState>,
    Query(query): Query<SearchQuery>,
) -> Result<Response, JaegerError> {
    let Some(service) = query.service.filter(|s| !s.is_empty()) else {
        return Err(bad("parameter service is required".into()));
    };
    let end = micros("end", query.end.as_deref())?.unwrap_or_else(now_micros);
    let lookback = match query.lookback.as_deref() {
        None | Some("" | "custom") => None,
        Some(text) => Some(parse_duration(text).ok_or_else(|| {
            bad(format!("parameter lookback {text:?} must be a duration such as 1h"))
        })?),
    };
    let start = match micros("start", query.start.as_deref())? {
        Some(start) => start,
        None => end.saturating_sub(lookback.unwrap_or(3_600_000_000_000) / 1000),
    };
    let limit = match query.limit.as_deref().filter(|t| !t.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(bad(format!(
                    "parameter limit {text:?} must be between 1 and {MAX_LIMIT}"
                )));
            }
        },
    };
    let tags = match query.tags.as_deref().filter(|t| !t.is_empty()) {
        None => Vec::new(),
        Some(text) => {
            let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
                return Err(bad(format!(
                    "parameter tags {text:?} must be a JSON object of tag values"
                )));
            };
            map.into_iter()
                .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect()
        }
    };
    let span_query = SpanQuery {
        service: Some(service),
        operation: query.operation.filter(|o| !o.is_empty() && o != "all"),
        tags,
        start_from: start.saturating_mul(1000),
        start_to: end.saturating_mul(1000),
        min_duration: duration("minDuration", query.min_duration.as_deref())?,
        max_duration: duration("maxDuration", query.max_duration.as_deref())?,
        limit,
    };
    let ids =
        state.store.search(&span_query).await.map_err(|e| {
            error(StatusCode::INTERNAL_SERVER_ERROR, threadline_core::error::chain(&e))
        })?;
    let mut traces = Vec::with_capacity(ids.len());
    for id in ids {
        let spans = state.store.trace(id).await.map_err(|e| {
            error(StatusCode::INTERNAL_SERVER_ERROR, threadline_core::error::chain(&e))
        })?;
        if !spans.is_empty() {
            traces.push(jaeger_trace(id, &spans));
        }
    }
    Ok(envelope(Value::Array(traces)))
}

async fn trace(
    State(state): State<ApiState>,
    Path(trace_id): Path<String>,
) -> Result<Response, JaegerError> {
    let Ok(id) = TraceId::from_hex(&trace_id) else {
        return Err(bad(format!("trace id {trace_id:?} must be 32 hex digits")));
    };
    match state.store.trace(id).await {
        Ok(spans) if spans.is_empty() => {
            Err(error(StatusCode::NOT_FOUND, format!("trace {id} not found")))
        }
        Ok(spans) => Ok(envelope(json!([jaeger_trace(id, &spans)]))),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, threadline_core::error::chain(&e))),
    }
}

/// `GET /api/dependencies`: call counts between services (synchronous calls) over the last
/// hour of the engine's aggregates.
async fn dependencies(State(state): State<ApiState>) -> Result<Response, JaegerError> {
    let Some(graph) = state.engine.graph(60).await else {
        return Err(error(StatusCode::SERVICE_UNAVAILABLE, "the engine is shutting down".into()));
    };
    let links: Vec<Value> = graph
        .calls
        .iter()
        .map(|c| json!({ "parent": c.caller, "child": c.callee, "callCount": c.calls }))
        .collect();
    Ok(envelope(Value::Array(links)))
}

#[derive(Serialize)]
struct Tag {
    key: String,
    #[serde(rename = "type")]
    kind: &'static str,
    value: Value,
}

fn tag(kv: &KeyValue) -> Tag {
    let (kind, value) = match &kv.value {
        AnyValue::String(s) => ("string", json!(s.as_str())),
        AnyValue::Bool(b) => ("bool", json!(b)),
        AnyValue::Int(i) => ("int64", json!(i)),
        AnyValue::Double(d) => ("float64", json!(d)),
        AnyValue::Bytes(b) => {
            ("binary", json!(base64::engine::general_purpose::STANDARD.encode(b)))
        }
        // Nested values as their OTLP JSON text.
        AnyValue::Array(_) | AnyValue::KvList(_) | AnyValue::Empty => {
            let view = threadline_api_types::ValueView::from(&kv.value);
            ("string", json!(serde_json::to_string(&view).unwrap_or_default()))
        }
    };
    Tag { key: kv.key.to_string(), kind, value }
}

fn string_tag(key: &str, value: &str) -> Tag {
    Tag { key: key.to_owned(), kind: "string", value: json!(value) }
}

/// One trace in Jaeger's shape: spans with references, tags and logs; processes by resource.
fn jaeger_trace(id: TraceId, spans: &[Span]) -> Value {
    let mut processes: Vec<&std::sync::Arc<threadline_core::span::Resource>> = Vec::new();
    let mut process_keys: BTreeMap<String, Value> = BTreeMap::new();
    let mut out = Vec::with_capacity(spans.len());
    for span in spans {
        let index = match processes.iter().position(|r| ***r == *span.resource) {
            Some(i) => i,
            None => {
                processes.push(&span.resource);
                let resource = &span.resource;
                let tags: Vec<Tag> = resource
                    .attributes
                    .iter()
                    .filter(|kv| kv.key != "service.name")
                    .map(tag)
                    .collect();
                process_keys.insert(
                    format!("p{}", processes.len()),
                    json!({ "serviceName": span.service_name(), "tags": tags }),
                );
                processes.len() - 1
            }
        };
        let mut references = Vec::new();
        if let Some(parent) = span.parent_span_id {
            references.push(json!({ "refType": "CHILD_OF", "traceID": span.trace_id.to_hex(), "spanID": parent.to_hex() }));
        }
        for link in &span.links {
            references.push(json!({ "refType": "FOLLOWS_FROM", "traceID": link.trace_id.to_hex(), "spanID": link.span_id.to_hex() }));
        }
        let mut tags: Vec<Tag> = span.attributes.iter().map(tag).collect();
        if span.kind != SpanKind::Unspecified && span.kind != SpanKind::Internal {
            tags.push(string_tag("span.kind", span.kind.as_str()));
        }
        match span.status.code {
            SpanStatus::Error => {
                tags.push(string_tag("otel.status_code", "ERROR"));
                tags.push(Tag { key: "error".into(), kind: "bool", value: json!(true) });
            }
            SpanStatus::Ok => tags.push(string_tag("otel.status_code", "OK")),
            SpanStatus::Unset => {}
        }
        if !span.status.message.is_empty() {
            tags.push(string_tag("otel.status_description", &span.status.message));
        }
        if !span.scope.name.is_empty() {
            tags.push(string_tag("otel.scope.name", &span.scope.name));
        }
        if !span.scope.version.is_empty() {
            tags.push(string_tag("otel.scope.version", &span.scope.version));
        }
        let logs: Vec<Value> = span
            .events
            .iter()
            .map(|e| {
                let mut fields = vec![string_tag("event", &e.name)];
                fields.extend(e.attributes.iter().map(tag));
                json!({ "timestamp": e.time_unix_nano / 1000, "fields": fields })
            })
            .collect();
        out.push(json!({
            "traceID": span.trace_id.to_hex(),
            "spanID": span.span_id.to_hex(),
            // The W3C trace flags (sampled); OTLP keeps more bits above them.
            "flags": span.flags & 0xff,
            "operationName": span.name,
            "references": references,
            "startTime": span.start_time_unix_nano / 1000,
            "duration": span.duration_nanos() / 1000,
            "tags": tags,
            "logs": logs,
            "processID": format!("p{}", index + 1),
            "warnings": null,
        }));
    }
    json!({ "traceID": id.to_hex(), "spans": out, "processes": process_keys, "warnings": null })
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn rfc3339_times_parse() {
        use super::parse_rfc3339;
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000_000_000_000));
        assert_eq!(parse_rfc3339("2023-11-14T23:13:20.5+01:00"), Some(1_700_000_000_500_000_000));
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00.000000001Z"),
            Some(1_709_164_800_000_000_001)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2023-13-01T00:00:00Z"), None);
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("100ms"), Some(100_000_000));
        assert_eq!(parse_duration("250us"), Some(250_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("1h"), Some(3_600_000_000_000));
        assert_eq!(parse_duration("7ns"), Some(7));
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("-1s"), None);
    }
}
