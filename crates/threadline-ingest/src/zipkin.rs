//! Zipkin v2 spans to core spans, the way the OpenTelemetry Zipkin translation does it:
//! 64-bit trace ids widened into the low half of 128 bits, microseconds to nanoseconds,
//! `localEndpoint.serviceName` as the resource's `service.name`, tags as string attributes,
//! annotations as events, `error` / `otel.status_code` tags as the span status, and
//! `otel.scope.*` tags as the instrumentation scope.

use std::collections::HashMap;
use std::sync::Arc;

use threadline_core::id::{SpanId, TraceId};
use threadline_core::span::{
    self, Event, Resource, SERVICE_NAME, Scope, Span, SpanError, SpanKind, Status, StatusCode,
};
use threadline_core::value::{AnyValue, KeyValue};
use threadline_proto::zipkin;

use crate::convert::Decoded;

/// Why a Zipkin span is invalid.
#[derive(Debug, thiserror::Error)]
enum ZipkinError {
    #[error(transparent)]
    Span(#[from] SpanError),
    #[error("{field} {message}")]
    Field { field: &'static str, message: String },
}

/// Converts a Zipkin v2 list of spans, keeping the valid ones.
pub fn convert_zipkin(spans: Vec<zipkin::Span>) -> Decoded {
    let mut decoded = Decoded::default();
    decoded.spans.reserve(spans.len());
    let mut resources: HashMap<String, Arc<Resource>> = HashMap::new();
    let mut scopes: HashMap<(String, String), Arc<Scope>> = HashMap::new();
    for (i, span) in spans.into_iter().enumerate() {
        let id = span.id.clone();
        match convert_span(span, &mut resources, &mut scopes) {
            Ok(span) => decoded.spans.push(span),
            Err(e) => decoded.rejections.add(|| format!("[{i}] (id {id:?}): {e}")),
        }
    }
    decoded
}

fn convert_span(
    span: zipkin::Span,
    resources: &mut HashMap<String, Arc<Resource>>,
    scopes: &mut HashMap<(String, String), Arc<Scope>>,
) -> Result<Span, ZipkinError> {
    let trace_id = trace_id(&span.trace_id)?;
    let span_id = parse_span_id(&span.id, "id")?;
    let parent_span_id = match span.parent_id.as_deref() {
        None | Some("") => None,
        Some(parent) => Some(parse_span_id(parent, "parentId")?),
    };
    let kind = match span.kind.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None => SpanKind::Internal,
        Some("CLIENT") => SpanKind::Client,
        Some("SERVER") => SpanKind::Server,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        Some(other) => {
            return Err(ZipkinError::Field {
                field: "kind",
                message: format!("{other:?} is not CLIENT, SERVER, PRODUCER or CONSUMER"),
            });
        }
    };
    let start = match span.timestamp {
        None | Some(0) => {
            return Err(ZipkinError::Field { field: "timestamp", message: "is missing".into() });
        }
        Some(micros) => micros_to_nanos(micros, "timestamp")?,
    };
    let end = start.saturating_add(micros_to_nanos(span.duration.unwrap_or(0), "duration")?);
    span::check_times(start, end)?;

    let service = span
        .local_endpoint
        .as_ref()
        .and_then(|e| e.service_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| span::UNKNOWN_SERVICE.to_owned());
    let resource = Arc::clone(resources.entry(service.clone()).or_insert_with(|| {
        Arc::new(Resource {
            attributes: vec![KeyValue::new(SERVICE_NAME, service)],
            ..Resource::default()
        })
    }));

    let mut tags = span.tags;
    let mut status = Status::default();
    let description = tags.remove("otel.status_description");
    match tags.remove("otel.status_code").as_deref() {
        Some("ERROR") => status.code = StatusCode::Error,
        Some("OK") => status.code = StatusCode::Ok,
        _ => {}
    }
    if let Some(error) = tags.remove("error") {
        status.code = StatusCode::Error;
        if description.is_none() && error != "true" {
            status.message = error;
        }
    }
    if let Some(description) = description {
        status.message = description;
    }
    let scope_name = tags.remove("otel.scope.name").or_else(|| tags.remove("otel.library.name"));
    let scope_version =
        tags.remove("otel.scope.version").or_else(|| tags.remove("otel.library.version"));
    let scope_key = (scope_name.unwrap_or_default(), scope_version.unwrap_or_default());
    let scope = Arc::clone(scopes.entry(scope_key.clone()).or_insert_with(|| {
        Arc::new(Scope { name: scope_key.0, version: scope_key.1, ..Scope::default() })
    }));

    let mut attributes: Vec<KeyValue> = tags
        .into_iter()
        .map(|(k, v)| KeyValue { key: k.into(), value: AnyValue::String(v.into()) })
        .collect();
    if let Some(local) = &span.local_endpoint {
        endpoint_attributes(local, "network.local.address", "network.local.port", &mut attributes);
    }
    if let Some(remote) = &span.remote_endpoint {
        if let Some(name) = remote.service_name.as_ref().filter(|s| !s.is_empty()) {
            attributes.push(KeyValue::new("peer.service", name.as_str()));
        }
        endpoint_attributes(remote, "network.peer.address", "network.peer.port", &mut attributes);
    }

    let events = span
        .annotations
        .into_iter()
        .map(|a| {
            Ok(Event {
                time_unix_nano: micros_to_nanos(a.timestamp, "annotations.timestamp")?,
                name: a.value,
                attributes: Vec::new(),
                dropped_attributes_count: 0,
            })
        })
        .collect::<Result<Vec<_>, ZipkinError>>()?;

    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: String::new(),
        flags: 0,
        name: span.name.unwrap_or_default().into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        dropped_attributes_count: 0,
        events,
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status,
        resource,
        scope,
    })
}

fn endpoint_attributes(
    endpoint: &zipkin::Endpoint,
    address_key: &str,
    port_key: &str,
    attributes: &mut Vec<KeyValue>,
) {
    if let Some(ip) = endpoint.ipv4.as_ref().or(endpoint.ipv6.as_ref()) {
        attributes.push(KeyValue::new(address_key, ip.as_str()));
    }
    if let Some(port) = endpoint.port.filter(|p| *p != 0) {
        attributes.push(KeyValue::new(port_key, i64::from(port)));
    }
}

/// Zipkin trace ids are 16 or 32 hex digits; shorter ids (leading zeros dropped) are padded.
fn trace_id(text: &str) -> Result<TraceId, ZipkinError> {
    let invalid = |error| ZipkinError::Span(SpanError::Id { field: "traceId", error });
    match text.len() {
        0..=16 => {
            let low = SpanId::from_hex(&format!("{text:0>16}")).map_err(invalid)?;
            TraceId::from_u64_bytes(*low.as_bytes()).map_err(invalid)
        }
        _ => TraceId::from_hex(&format!("{text:0>32}")).map_err(invalid),
    }
}

fn parse_span_id(text: &str, field: &'static str) -> Result<SpanId, ZipkinError> {
    let padded = if text.len() < 16 { format!("{text:0>16}") } else { text.to_owned() };
    SpanId::from_hex(&padded).map_err(|error| ZipkinError::Span(SpanError::Id { field, error }))
}

fn micros_to_nanos(micros: u64, field: &'static str) -> Result<u64, ZipkinError> {
    micros.checked_mul(1000).ok_or_else(|| ZipkinError::Field {
        field,
        message: format!("{micros} microseconds is out of range"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn decode(json: &str) -> Decoded {
        convert_zipkin(crate::body::decode_zipkin(json.as_bytes()).unwrap())
    }

    #[test]
    fn maps_kinds_tags_annotations_and_widens_ids() {
        let decoded = decode(
            r#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"0020000000000001",
                "name":"get /api","kind":"SERVER","timestamp":1472470996199000,"duration":207000,
                "localEndpoint":{"serviceName":"frontend","ipv4":"192.168.99.1","port":8080},
                "remoteEndpoint":{"serviceName":"browser","ipv6":"::1"},
                "annotations":[{"timestamp":1472470996238000,"value":"ws"}],
                "tags":{"http.method":"GET","error":"boom","otel.scope.name":"lib"}}]"#,
        );
        assert_eq!(decoded.rejections.count, 0);
        let span = &decoded.spans[0];
        assert_eq!(span.trace_id.to_hex(), "0000000000000000463ac35c9f6413ad");
        assert_eq!(span.parent_span_id.unwrap().to_hex(), "0020000000000001");
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.start_time_unix_nano, 1_472_470_996_199_000_000);
        assert_eq!(span.duration_nanos(), 207_000_000);
        assert_eq!(span.service_name(), "frontend");
        assert_eq!(span.status, Status { code: StatusCode::Error, message: "boom".into() });
        assert_eq!(span.scope.name, "lib");
        assert_eq!(span.events[0].name, "ws");
        assert_eq!(span.events[0].time_unix_nano, 1_472_470_996_238_000_000);
        let keys: Vec<_> = span.attributes.iter().map(|kv| kv.key.as_str()).collect();
        expect![[r#"["http.method", "network.local.address", "network.local.port", "peer.service", "network.peer.address"]"#]]
            .assert_eq(&format!("{keys:?}"));
    }

    #[test]
    fn keeps_128_bit_ids_and_rejects_bad_spans() {
        let decoded = decode(
            r#"[{"traceId":"5af7183fb1d4cf5f463ac35c9f6413ad","id":"1","timestamp":1,"duration":1},
                {"traceId":"zz","id":"1","timestamp":1},
                {"traceId":"1","id":"1"},
                {"traceId":"1","id":"1","timestamp":1,"kind":"SIDEWAYS"}]"#,
        );
        assert_eq!(decoded.spans.len(), 1);
        assert_eq!(decoded.spans[0].trace_id.to_hex(), "5af7183fb1d4cf5f463ac35c9f6413ad");
        assert_eq!(decoded.spans[0].span_id.to_hex(), "0000000000000001");
        expect![[r#"rejected 3 of 4 spans: [1] (id "1"): traceId is not hex: unexpected character 'z'; [2] (id "1"): timestamp is missing; [3] (id "1"): kind "SIDEWAYS" is not CLIENT, SERVER, PRODUCER or CONSUMER"#]]
            .assert_eq(&decoded.rejections.message(4));
    }
}
