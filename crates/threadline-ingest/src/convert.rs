//! OTLP protobuf messages to validated core spans. Each invalid span is rejected on its own
//! with a reason naming it and the field, so one bad span never costs a client its whole batch
//! (OTLP partial success).

use std::sync::Arc;

use threadline_core::id::{SpanId, TraceId};
use threadline_core::span::{
    self, Event, Link, Resource, Scope, Span, SpanError, SpanKind, Status, StatusCode,
};
use threadline_core::value::{AnyValue, KeyValue, Text};
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_proto::opentelemetry::proto::common::v1 as pb_common;
use threadline_proto::opentelemetry::proto::trace::v1 as pb;

/// At most this many rejection reasons are spelled out in a partial-success message.
const MAX_REASONS: usize = 5;

/// The valid spans of a request, and what was rejected.
#[derive(Debug, Default)]
pub struct Decoded {
    pub spans: Vec<Span>,
    pub rejections: Rejections,
}

/// Rejected spans: how many, and the first few reasons.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rejections {
    pub count: u64,
    reasons: Vec<String>,
}

impl Rejections {
    pub fn add(&mut self, reason: impl FnOnce() -> String) {
        self.count += 1;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason());
        }
    }

    /// The first reason recorded, for logs.
    pub fn first_reason(&self) -> &str {
        self.reasons.first().map_or("", String::as_str)
    }

    /// The partial-success message: how many were rejected and why.
    pub fn message(&self, total: usize) -> String {
        let mut message =
            format!("rejected {} of {total} spans: {}", self.count, self.reasons.join("; "));
        let unlisted = self.count.saturating_sub(self.reasons.len() as u64);
        if unlisted > 0 {
            message.push_str(&format!("; and {unlisted} more"));
        }
        message
    }
}

/// Converts an OTLP export request, keeping the valid spans.
pub fn convert_otlp(request: ExportTraceServiceRequest) -> Decoded {
    let mut decoded = Decoded::default();
    let total: usize =
        request.resource_spans.iter().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len()).sum();
    decoded.spans.reserve(total);
    for (ri, resource_spans) in request.resource_spans.into_iter().enumerate() {
        let resource = resource_spans.resource.unwrap_or_default();
        let resource = Arc::new(Resource {
            attributes: key_values(resource.attributes),
            dropped_attributes_count: resource.dropped_attributes_count,
            schema_url: resource_spans.schema_url,
        });
        for (si, scope_spans) in resource_spans.scope_spans.into_iter().enumerate() {
            let scope = scope_spans.scope.unwrap_or_default();
            let scope = Arc::new(Scope {
                name: scope.name,
                version: scope.version,
                attributes: key_values(scope.attributes),
                dropped_attributes_count: scope.dropped_attributes_count,
                schema_url: scope_spans.schema_url,
            });
            for (i, span) in scope_spans.spans.into_iter().enumerate() {
                match convert_span(span, &resource, &scope) {
                    Ok(span) => decoded.spans.push(span),
                    Err((label, e)) => {
                        decoded.rejections.add(|| rejection([ri, si, i], &label, &e));
                    }
                }
            }
        }
    }
    decoded
}

/// Why the span at `[resource, scope, span]` positions of a request was rejected.
pub(crate) fn rejection(at: [usize; 3], label: &str, e: &SpanError) -> String {
    let [ri, si, i] = at;
    format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{i}]{label}: {e}")
}

/// A span, or the reason it is invalid with a printable span id for the message.
fn convert_span(
    span: pb::Span,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Result<Span, (String, SpanError)> {
    let pb::Span {
        trace_id,
        span_id,
        trace_state,
        parent_span_id,
        flags,
        name,
        kind,
        start_time_unix_nano,
        end_time_unix_nano,
        attributes,
        dropped_attributes_count,
        events,
        dropped_events_count,
        mut links,
        dropped_links_count,
        status,
    } = span;
    let parts = SpanParts {
        trace_id: &trace_id,
        parent_span_id: &parent_span_id,
        trace_state,
        flags,
        name: name.into(),
        kind,
        start_time_unix_nano,
        end_time_unix_nano,
        attributes: key_values(attributes),
        dropped_attributes_count,
        events: events
            .into_iter()
            .map(|e| Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name,
                attributes: key_values(e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count,
        links: links
            .iter_mut()
            .map(|link| {
                let pb::span::Link {
                    trace_id,
                    span_id,
                    trace_state,
                    attributes,
                    dropped_attributes_count,
                    flags,
                } = link;
                LinkParts {
                    trace_id,
                    span_id,
                    trace_state: std::mem::take(trace_state),
                    attributes: key_values(std::mem::take(attributes)),
                    dropped_attributes_count: *dropped_attributes_count,
                    flags: *flags,
                }
            })
            .collect(),
        dropped_links_count,
        status: status.map(|s| (s.code, s.message)),
    };
    validate(parts, &span_id, resource, scope)
}

/// A span as it came off the wire, before its ids, times and enums are checked; its span id
/// is passed apart, to label it when it is rejected.
#[derive(Default)]
pub(crate) struct SpanParts<'a> {
    pub trace_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub trace_state: String,
    pub flags: u32,
    pub name: Text,
    pub kind: i32,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub events: Vec<Event>,
    pub dropped_events_count: u32,
    pub links: Vec<LinkParts<'a>>,
    pub dropped_links_count: u32,
    /// Code and message, when the span has a status.
    pub status: Option<(i32, String)>,
}

/// A link as it came off the wire.
#[derive(Default)]
pub(crate) struct LinkParts<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub trace_state: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub flags: u32,
}

/// The span `parts` describe once checked, or why it is invalid, with a label naming it by
/// `raw_id` (its span id as sent) for the rejection message. Every wire format that carries
/// OTLP's fields goes through here, so they accept and reject alike.
pub(crate) fn validate(
    parts: SpanParts<'_>,
    raw_id: &[u8],
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Result<Span, (String, SpanError)> {
    build_span(parts, raw_id, resource, scope).map_err(|e| {
        // The label is only made for a span being rejected.
        let label =
            if raw_id.is_empty() { String::new() } else { format!(" (span_id {})", hex(raw_id)) };
        (label, e)
    })
}

fn build_span(
    span: SpanParts<'_>,
    raw_id: &[u8],
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Result<Span, SpanError> {
    let trace_id = TraceId::from_slice(span.trace_id)
        .map_err(|error| SpanError::Id { field: "trace_id", error })?;
    let span_id =
        SpanId::from_slice(raw_id).map_err(|error| SpanError::Id { field: "span_id", error })?;
    let parent_span_id = parent_id(span.parent_span_id)?;
    span::check_times(span.start_time_unix_nano, span.end_time_unix_nano)?;
    let kind = span_kind(span.kind)?;
    let status = match span.status {
        Some((code, message)) => Status { code: status_code(code)?, message },
        None => Status::default(),
    };
    let links = span
        .links
        .into_iter()
        .enumerate()
        .map(|(i, link)| convert_link(i, link))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: span.trace_state,
        flags: span.flags,
        name: span.name,
        kind,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: span.attributes,
        dropped_attributes_count: span.dropped_attributes_count,
        events: span.events,
        dropped_events_count: span.dropped_events_count,
        links,
        dropped_links_count: span.dropped_links_count,
        status,
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

/// A parent span id: empty means a root span. Eight zero bytes are read as "no parent" too,
/// since some SDKs send them for roots.
fn parent_id(bytes: &[u8]) -> Result<Option<SpanId>, SpanError> {
    if bytes.is_empty() || bytes == [0u8; 8] {
        return Ok(None);
    }
    SpanId::from_slice(bytes)
        .map(Some)
        .map_err(|error| SpanError::Id { field: "parent_span_id", error })
}

fn convert_link(index: usize, link: LinkParts<'_>) -> Result<Link, SpanError> {
    Ok(Link {
        trace_id: TraceId::from_slice(link.trace_id).map_err(|error| SpanError::LinkId {
            index,
            field: "trace_id",
            error,
        })?,
        span_id: SpanId::from_slice(link.span_id).map_err(|error| SpanError::LinkId {
            index,
            field: "span_id",
            error,
        })?,
        trace_state: link.trace_state,
        attributes: link.attributes,
        dropped_attributes_count: link.dropped_attributes_count,
        flags: link.flags,
    })
}

fn span_kind(kind: i32) -> Result<SpanKind, SpanError> {
    Ok(match pb::span::SpanKind::try_from(kind).map_err(|_| SpanError::Kind(kind))? {
        pb::span::SpanKind::Unspecified => SpanKind::Unspecified,
        pb::span::SpanKind::Internal => SpanKind::Internal,
        pb::span::SpanKind::Server => SpanKind::Server,
        pb::span::SpanKind::Client => SpanKind::Client,
        pb::span::SpanKind::Producer => SpanKind::Producer,
        pb::span::SpanKind::Consumer => SpanKind::Consumer,
    })
}

fn status_code(code: i32) -> Result<StatusCode, SpanError> {
    Ok(match pb::status::StatusCode::try_from(code).map_err(|_| SpanError::StatusCode(code))? {
        pb::status::StatusCode::Unset => StatusCode::Unset,
        pb::status::StatusCode::Ok => StatusCode::Ok,
        pb::status::StatusCode::Error => StatusCode::Error,
    })
}

fn key_values(attributes: Vec<pb_common::KeyValue>) -> Vec<KeyValue> {
    attributes
        .into_iter()
        .map(|kv| KeyValue { key: kv.key.into(), value: any_value(kv.value.and_then(|v| v.value)) })
        .collect()
}

fn any_value(value: Option<pb_common::any_value::Value>) -> AnyValue {
    use pb_common::any_value::Value;
    match value {
        None => AnyValue::Empty,
        Some(Value::StringValue(s)) => AnyValue::String(s.into()),
        Some(Value::BoolValue(b)) => AnyValue::Bool(b),
        Some(Value::IntValue(i)) => AnyValue::Int(i),
        Some(Value::DoubleValue(d)) => AnyValue::Double(d),
        Some(Value::BytesValue(b)) => AnyValue::Bytes(b),
        Some(Value::ArrayValue(array)) => {
            AnyValue::Array(array.values.into_iter().map(|v| any_value(v.value)).collect())
        }
        Some(Value::KvlistValue(list)) => AnyValue::KvList(key_values(list.values)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn span(trace_id: &[u8], span_id: &[u8], start: u64, end: u64) -> pb::Span {
        pb::Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id.to_vec(),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            name: "op".into(),
            ..Default::default()
        }
    }

    fn check(spans: Vec<pb::Span>, expected: Expect) {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![pb::ResourceSpans {
                scope_spans: vec![pb::ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        };
        let total = request.resource_spans[0].scope_spans[0].spans.len();
        let decoded = convert_otlp(request);
        let actual = format!(
            "accepted {}\n{}",
            decoded.spans.len(),
            if decoded.rejections.count > 0 {
                decoded.rejections.message(total)
            } else {
                String::new()
            }
        );
        expected.assert_eq(&actual);
    }

    #[test]
    fn invalid_spans_are_rejected_one_by_one() {
        let good = span(&[1; 16], &[2; 8], 10, 20);
        let mut bad_parent = span(&[1; 16], &[3; 8], 10, 20);
        bad_parent.parent_span_id = vec![1, 2, 3];
        let mut bad_kind = span(&[1; 16], &[4; 8], 10, 20);
        bad_kind.kind = 42;
        let mut bad_link = span(&[1; 16], &[5; 8], 10, 20);
        bad_link.links.push(pb::span::Link {
            trace_id: vec![0; 16],
            span_id: vec![1; 8],
            ..Default::default()
        });
        check(
            vec![
                good,
                span(&[1; 8], &[2; 8], 10, 20),
                span(&[0; 16], &[2; 8], 10, 20),
                span(&[1; 16], &[], 10, 20),
                span(&[1; 16], &[2; 8], 20, 10),
                span(&[1; 16], &[2; 8], 0, 10),
                bad_parent,
                bad_kind,
                bad_link,
            ],
            expect![[r#"
                accepted 1
                rejected 8 of 9 spans: resourceSpans[0].scopeSpans[0].spans[1] (span_id 0202020202020202): trace_id must be 16 bytes, got 8; resourceSpans[0].scopeSpans[0].spans[2] (span_id 0202020202020202): trace_id must not be all zeros; resourceSpans[0].scopeSpans[0].spans[3]: span_id must be 8 bytes, got 0; resourceSpans[0].scopeSpans[0].spans[4] (span_id 0202020202020202): end_time_unix_nano (10) is before start_time_unix_nano (20); resourceSpans[0].scopeSpans[0].spans[5] (span_id 0202020202020202): start_time_unix_nano is zero; and 3 more"#]],
        );
    }

    #[test]
    fn later_reasons_are_counted() {
        let mut bad_link = span(&[1; 16], &[5; 8], 10, 20);
        bad_link.links.push(pb::span::Link {
            trace_id: vec![0; 16],
            span_id: vec![1; 8],
            ..Default::default()
        });
        let mut bad_status = span(&[1; 16], &[6; 8], 10, 20);
        bad_status.status = Some(pb::Status { code: 7, message: String::new() });
        check(
            vec![bad_link, bad_status],
            expect![[r#"
                accepted 0
                rejected 2 of 2 spans: resourceSpans[0].scopeSpans[0].spans[0] (span_id 0505050505050505): links[0].trace_id must not be all zeros; resourceSpans[0].scopeSpans[0].spans[1] (span_id 0606060606060606): status code 7 is not a known status code"#]],
        );
    }
}
