//! OTLP protobuf export requests read straight into validated core spans, with no generated
//! message types in between: every string is written once, in its final place (attribute keys
//! and string values of up to 24 bytes inline, with no allocation), and every list is
//! allocated at its final size.
//!
//! The rules are protobuf's, as the generated types apply them: fields in any order, unknown
//! fields (groups included) skipped, a singular message given twice merged into one, a
//! singular scalar given twice taking the last value, strings checked to be UTF-8, nesting at
//! most 100 messages deep. Spans are then checked by [`convert::validate`], as OTLP JSON
//! spans are. `tests/wire.rs` checks that this reads every request exactly as decoding into
//! the generated types and converting them does, and fails where that fails.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use threadline_core::span::{Event, Resource, Scope};
use threadline_core::value::{AnyValue, KeyValue, Text};

use crate::convert::{self, Decoded, LinkParts, SpanParts};

/// Nested messages deeper than this are refused (the request itself is depth 0).
const MAX_DEPTH: u32 = 100;

/// Why a request is not a valid OTLP protobuf message, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct WireError(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    /// Field path, innermost first (it is built as the error travels out).
    path: Vec<Cow<'static, str>>,
    reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    Truncated,
    Varint,
    TagZero,
    WireTypeValue(u64),
    WireType { got: u8, expected: u8 },
    EndGroup,
    Utf8,
    Depth,
}

impl WireError {
    fn new(reason: Reason) -> Self {
        Self(Box::new(Inner { path: Vec::new(), reason }))
    }

    /// The same error, one field further out.
    fn within(mut self, segment: impl Into<Cow<'static, str>>) -> Self {
        self.0.path.push(segment.into());
        self
    }

    fn describe(&self) -> String {
        let reason = match &self.0.reason {
            Reason::Truncated => "the message ends inside a field".to_owned(),
            Reason::Varint => "invalid varint".to_owned(),
            Reason::TagZero => "field number 0".to_owned(),
            Reason::WireTypeValue(v) => format!("unknown wire type {v}"),
            Reason::WireType { got, expected } => {
                format!("wire type {got} where the field has wire type {expected}")
            }
            Reason::EndGroup => "end-group tag without its start".to_owned(),
            Reason::Utf8 => "string is not valid UTF-8".to_owned(),
            Reason::Depth => format!("messages nested more than {MAX_DEPTH} deep"),
        };
        if self.0.path.is_empty() {
            return reason;
        }
        let mut at = String::from("at ");
        for (i, segment) in self.0.path.iter().rev().enumerate() {
            if i > 0 && !segment.starts_with('[') {
                at.push('.');
            }
            at.push_str(segment);
        }
        format!("{at}: {reason}")
    }
}

type Result<T> = std::result::Result<T, WireError>;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Reads a message's bytes front to back.
#[derive(Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// One-byte varints (most keys, lengths and small numbers) inline; longer ones apart.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64> {
        if let Some(&b) = self.buf.first()
            && b < 0x80
        {
            self.buf = &self.buf[1..];
            return Ok(u64::from(b));
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                // The tenth byte carries one bit at most.
                if i == 9 && b > 1 {
                    return Err(WireError::new(Reason::Varint));
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(WireError::new(Reason::Varint))
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    #[inline(always)]
    fn key(&mut self) -> Result<Option<(u32, u8)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let Ok(key) = u32::try_from(key) else {
            return Err(WireError::new(Reason::Varint));
        };
        let wire_type = (key & 7) as u8;
        if wire_type > FIXED32 {
            return Err(WireError::new(Reason::WireTypeValue(u64::from(wire_type))));
        }
        let field = key >> 3;
        if field == 0 {
            return Err(WireError::new(Reason::TagZero));
        }
        Ok(Some((field, wire_type)))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err(WireError::new(Reason::Truncated));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    #[inline]
    fn len_delimited(&mut self) -> Result<&'a [u8]> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError::new(Reason::Truncated))?;
        self.take(len)
    }

    #[inline]
    fn fixed64(&mut self) -> Result<u64> {
        let bytes = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    #[inline]
    fn fixed32(&mut self) -> Result<u32> {
        let bytes = self.take(4)?;
        let mut array = [0u8; 4];
        array.copy_from_slice(bytes);
        Ok(u32::from_le_bytes(array))
    }

    /// Skips a field this reader does not know; `depth` is that of the enclosing message.
    fn skip(&mut self, field: u32, wire_type: u8, depth: u32) -> Result<()> {
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            FIXED32 => self.take(4).map(drop),
            START_GROUP => {
                let depth = nested(depth)?;
                loop {
                    match self.key()? {
                        None => return Err(WireError::new(Reason::Truncated)),
                        Some((f, END_GROUP)) if f == field => return Ok(()),
                        Some((_, END_GROUP)) => return Err(WireError::new(Reason::EndGroup)),
                        Some((f, t)) => self.skip(f, t, depth)?,
                    }
                }
            }
            _ => Err(WireError::new(Reason::EndGroup)),
        }
    }
}

/// The depth of a message nested in one at `depth`, if that is allowed.
#[inline]
fn nested(depth: u32) -> Result<u32> {
    if depth >= MAX_DEPTH {
        return Err(WireError::new(Reason::Depth));
    }
    Ok(depth + 1)
}

#[inline]
fn expect(wire_type: u8, expected: u8) -> Result<()> {
    if wire_type == expected {
        Ok(())
    } else {
        Err(WireError::new(Reason::WireType { got: wire_type, expected }))
    }
}

/// Calls `field` with each field of `message` (number, wire type, reader positioned at its
/// value); `field` reads the value or skips it.
#[inline]
fn each_field<'a>(
    message: &'a [u8],
    mut field: impl FnMut(u32, u8, &mut Reader<'a>) -> Result<()>,
) -> Result<()> {
    let mut r = Reader { buf: message };
    while let Some((number, wire_type)) = r.key()? {
        field(number, wire_type, &mut r)?;
    }
    Ok(())
}

#[inline]
fn string(r: &mut Reader<'_>, wire_type: u8, name: &'static str) -> Result<String> {
    str_field(r, wire_type, name).map(str::to_owned)
}

/// A string field as [`Text`]: inline, with no allocation, when short.
fn text(r: &mut Reader<'_>, wire_type: u8, name: &'static str) -> Result<Text> {
    str_field(r, wire_type, name).map(Text::from)
}

fn str_field<'a>(r: &mut Reader<'a>, wire_type: u8, name: &'static str) -> Result<&'a str> {
    let read = |r: &mut Reader<'a>| {
        expect(wire_type, LEN)?;
        let bytes = r.len_delimited()?;
        utf8(bytes).ok_or_else(|| WireError::new(Reason::Utf8))
    };
    read(r).map_err(|e| e.within(name))
}

/// `bytes` as a string if they are UTF-8. Nearly every string in telemetry is ASCII, which a
/// word-at-a-time check confirms about three times faster than full UTF-8 validation does
/// for strings of the usual length (keys and values of 5-30 bytes); anything else takes the
/// full check.
#[inline]
fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        #[allow(unsafe_code, reason = "skipping a second validation of bytes just checked")]
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

#[inline]
fn bytes<'a>(r: &mut Reader<'a>, wire_type: u8, name: &'static str) -> Result<&'a [u8]> {
    expect(wire_type, LEN).and_then(|()| r.len_delimited()).map_err(|e| e.within(name))
}

#[inline]
fn varint(r: &mut Reader<'_>, wire_type: u8, name: &'static str) -> Result<u64> {
    expect(wire_type, VARINT).and_then(|()| r.varint()).map_err(|e| e.within(name))
}

/// Protobuf keeps the low 32 bits of a longer varint for `uint32`.
#[expect(clippy::cast_possible_truncation, reason = "protobuf's uint32 rule")]
#[inline]
fn uint32(r: &mut Reader<'_>, wire_type: u8, name: &'static str) -> Result<u32> {
    varint(r, wire_type, name).map(|v| v as u32)
}

/// Protobuf keeps the low 32 bits of a longer varint for an enum (`int32`).
#[expect(clippy::cast_possible_truncation, reason = "protobuf's int32 rule")]
#[inline]
fn enumeration(r: &mut Reader<'_>, wire_type: u8, name: &'static str) -> Result<i32> {
    varint(r, wire_type, name).map(|v| v as i32)
}

/// An `int64` is the varint's 64 bits, two's complement.
#[expect(clippy::cast_possible_wrap, reason = "protobuf's int64 rule")]
#[inline]
fn int64(r: &mut Reader<'_>, wire_type: u8, name: &'static str) -> Result<i64> {
    varint(r, wire_type, name).map(|v| v as i64)
}

#[inline]
fn fixed64(r: &mut Reader<'_>, wire_type: u8, name: &'static str) -> Result<u64> {
    expect(wire_type, FIXED64).and_then(|()| r.fixed64()).map_err(|e| e.within(name))
}

#[inline]
fn fixed32(r: &mut Reader<'_>, wire_type: u8, name: &'static str) -> Result<u32> {
    expect(wire_type, FIXED32).and_then(|()| r.fixed32()).map_err(|e| e.within(name))
}

/// The bytes of an embedded message field.
#[inline]
fn message<'a>(r: &mut Reader<'a>, wire_type: u8) -> Result<&'a [u8]> {
    expect(wire_type, LEN)?;
    r.len_delimited()
}

/// Reads an OTLP `ExportTraceServiceRequest`: its valid spans, and the invalid ones rejected
/// one by one; an error when the bytes are not such a message.
pub fn decode_request(data: &[u8]) -> Result<Decoded> {
    let mut decoded = Decoded::default();
    // One allocation for the request's spans: grown scope by scope, the list was copied
    // (hundreds of bytes a span) each time it doubled.
    decoded.spans.reserve_exact(span_count(data).min(data.len() / MIN_SPAN_BYTES));
    let mut index = 0;
    each_field(data, |field, wire_type, r| {
        if field != 1 {
            return r.skip(field, wire_type, 0);
        }
        let at = index;
        index += 1;
        message(r, wire_type)
            .and_then(|body| resource_spans(body, at, nested(0)?, &mut decoded))
            .map_err(|e| e.within(format!("resourceSpans[{at}]")))
    })?;
    Ok(decoded)
}

/// The fewest bytes a span that can be valid takes in a request (its trace id and span id
/// fields alone), which bounds what a count of span fields may reserve.
const MIN_SPAN_BYTES: usize = 28;

/// How many spans the request holds (the `spans` fields of every scope of every resource),
/// counted without reading them; as far as it could count if the bytes are malformed (the
/// reading that follows reports that).
fn span_count(data: &[u8]) -> usize {
    let mut count = 0;
    each_list_item(data, 1, &mut |resource| {
        each_list_item(resource, 2, &mut |scope| each_list_item(scope, 2, &mut |_| count += 1));
    });
    count
}

/// Calls `item` with each occurrence of message field `number` of `body`, until the end or
/// the first malformed field.
fn each_list_item(body: &[u8], number: u32, item: &mut dyn FnMut(&[u8])) {
    let _malformed = each_field(body, |field, wire_type, r| {
        if field == number && wire_type == LEN {
            item(r.len_delimited()?);
            Ok(())
        } else {
            r.skip(field, wire_type, 0)
        }
    });
}

/// Resources and scopes met lately, by the bytes that describe them: the spans of a service
/// share one resource however many requests bring them, which the engine and the block
/// writer see as one pointer and memory holds once.
struct Shared<T> {
    by_bytes: Mutex<HashMap<Vec<u8>, Arc<T>>>,
}

/// Entries a [`Shared`] holds at most; when full it starts afresh.
const SHARED_ENTRIES: usize = 4096;

static RESOURCES: LazyLock<Shared<Resource>> = LazyLock::new(Shared::new);
static SCOPES: LazyLock<Shared<Scope>> = LazyLock::new(Shared::new);

impl<T> Shared<T> {
    fn new() -> Self {
        Self { by_bytes: Mutex::new(HashMap::new()) }
    }

    /// The value described by `parts` (the bytes of each occurrence of the message, then its
    /// schema URL), read by `read` unless met lately. Equal bytes read alike, so a value met
    /// before needs no reading (nor checking) again.
    fn get(&self, parts: &[&[u8]], read: impl FnOnce() -> Result<T>) -> Result<Arc<T>> {
        let mut key = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
        for part in parts {
            // Length-prefixed, so that different splits never make the same key.
            key.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
            key.extend_from_slice(part);
        }
        if let Some(found) = self.lock().get(&key) {
            return Ok(Arc::clone(found));
        }
        let value = Arc::new(read()?);
        let mut map = self.lock();
        if map.len() >= SHARED_ENTRIES {
            map.clear();
        }
        map.insert(key, Arc::clone(&value));
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Arc<T>>> {
        // The map holds no invariant a panic elsewhere could break.
        self.by_bytes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The bytes of each occurrence of field 1 of `body` (its resource or scope), and of its
/// schema URL (field 3, the last one given), which the value depends on.
fn parts_of(body: &[u8], depth: u32) -> Result<Vec<&[u8]>> {
    let mut parts = Vec::new();
    let mut schema_url: &[u8] = &[];
    each_field(body, |field, wire_type, r| match field {
        1 => message(r, wire_type).map(|m| parts.push(m)),
        3 => expect(wire_type, LEN).and_then(|()| r.len_delimited()).map(|s| schema_url = s),
        _ => r.skip(field, wire_type, depth),
    })?;
    parts.push(schema_url);
    Ok(parts)
}

fn resource_spans(body: &[u8], ri: usize, depth: u32, decoded: &mut Decoded) -> Result<()> {
    // The resource and schema URL may follow the spans they apply to: read them first.
    let parts = parts_of(body, depth)?;
    let resource = RESOURCES.get(&parts, || {
        let mut resource = Resource::default();
        let mut attributes = 0;
        each_field(body, |field, wire_type, r| match field {
            1 => message(r, wire_type)
                .and_then(|m| merge_resource(m, &mut resource, &mut attributes, nested(depth)?))
                .map_err(|e| e.within("resource")),
            3 => string(r, wire_type, "schemaUrl").map(|s| resource.schema_url = s),
            _ => r.skip(field, wire_type, depth),
        })?;
        Ok(resource)
    })?;
    let mut si = 0;
    each_field(body, |field, wire_type, r| {
        if field != 2 {
            return r.skip(field, wire_type, depth);
        }
        let at = si;
        si += 1;
        message(r, wire_type)
            .and_then(|m| scope_spans(m, [ri, at], &resource, nested(depth)?, decoded))
            .map_err(|e| e.within(format!("scopeSpans[{at}]")))
    })
}

fn merge_resource(
    body: &[u8],
    resource: &mut Resource,
    attributes: &mut usize,
    depth: u32,
) -> Result<()> {
    each_field(body, |field, wire_type, r| match field {
        1 => {
            push_key_value(r, wire_type, &mut resource.attributes, attributes, depth, "attributes")
        }
        2 => uint32(r, wire_type, "droppedAttributesCount")
            .map(|v| resource.dropped_attributes_count = v),
        _ => r.skip(field, wire_type, depth),
    })
}

fn scope_spans(
    body: &[u8],
    [ri, si]: [usize; 2],
    resource: &Arc<Resource>,
    depth: u32,
    decoded: &mut Decoded,
) -> Result<()> {
    let scratch = &mut Vec::new();
    let parts = parts_of(body, depth)?;
    let scope = SCOPES.get(&parts, || {
        let mut scope = Scope::default();
        let mut attributes = 0;
        each_field(body, |field, wire_type, r| match field {
            1 => message(r, wire_type)
                .and_then(|m| merge_scope(m, &mut scope, &mut attributes, nested(depth)?))
                .map_err(|e| e.within("scope")),
            3 => string(r, wire_type, "schemaUrl").map(|s| scope.schema_url = s),
            _ => r.skip(field, wire_type, depth),
        })?;
        Ok(scope)
    })?;
    let mut i = 0;
    each_field(body, |field, wire_type, r| {
        if field != 2 {
            return r.skip(field, wire_type, depth);
        }
        let at = i;
        i += 1;
        let body = message(r, wire_type).map_err(|e| e.within(format!("spans[{at}]")))?;
        let (span_id, parts) =
            span(body, nested(depth)?, scratch).map_err(|e| e.within(format!("spans[{at}]")))?;
        match convert::validate(parts, span_id, resource, &scope) {
            Ok(span) => decoded.spans.push(span),
            Err((label, e)) => {
                decoded.rejections.add(|| convert::rejection([ri, si, at], &label, &e));
            }
        }
        Ok(())
    })
}

fn merge_scope(body: &[u8], scope: &mut Scope, attributes: &mut usize, depth: u32) -> Result<()> {
    each_field(body, |field, wire_type, r| match field {
        1 => string(r, wire_type, "name").map(|s| scope.name = s),
        2 => string(r, wire_type, "version").map(|s| scope.version = s),
        3 => push_key_value(r, wire_type, &mut scope.attributes, attributes, depth, "attributes"),
        4 => uint32(r, wire_type, "droppedAttributesCount")
            .map(|v| scope.dropped_attributes_count = v),
        _ => r.skip(field, wire_type, depth),
    })
}

/// A span's raw span id and the rest of its fields, unchecked.
///
/// Its attributes are gathered in `scratch` and then moved to a list of their exact number:
/// one allocation, and no spare capacity held while the span waits for its block.
fn span<'a>(
    body: &'a [u8],
    depth: u32,
    scratch: &mut Vec<KeyValue>,
) -> Result<(&'a [u8], SpanParts<'a>)> {
    scratch.clear();
    let mut span_id: &[u8] = &[];
    let mut parts = SpanParts::default();
    let mut attribute = 0;
    each_field(body, |field, wire_type, r| match field {
        1 => bytes(r, wire_type, "traceId").map(|b| parts.trace_id = b),
        2 => bytes(r, wire_type, "spanId").map(|b| span_id = b),
        3 => string(r, wire_type, "traceState").map(|s| parts.trace_state = s),
        4 => bytes(r, wire_type, "parentSpanId").map(|b| parts.parent_span_id = b),
        5 => text(r, wire_type, "name").map(|s| parts.name = s),
        6 => enumeration(r, wire_type, "kind").map(|v| parts.kind = v),
        7 => fixed64(r, wire_type, "startTimeUnixNano").map(|v| parts.start_time_unix_nano = v),
        8 => fixed64(r, wire_type, "endTimeUnixNano").map(|v| parts.end_time_unix_nano = v),
        9 => push_key_value(r, wire_type, scratch, &mut attribute, depth, "attributes"),
        10 => uint32(r, wire_type, "droppedAttributesCount")
            .map(|v| parts.dropped_attributes_count = v),
        11 => {
            let at = parts.events.len();
            message(r, wire_type)
                .and_then(|m| event(m, nested(depth)?))
                .map(|e| parts.events.push(e))
                .map_err(|e| e.within(format!("events[{at}]")))
        }
        12 => uint32(r, wire_type, "droppedEventsCount").map(|v| parts.dropped_events_count = v),
        13 => {
            let at = parts.links.len();
            message(r, wire_type)
                .and_then(|m| link(m, nested(depth)?))
                .map(|l| parts.links.push(l))
                .map_err(|e| e.within(format!("links[{at}]")))
        }
        14 => uint32(r, wire_type, "droppedLinksCount").map(|v| parts.dropped_links_count = v),
        15 => {
            let status = parts.status.get_or_insert_with(|| (0, String::new()));
            message(r, wire_type)
                .and_then(|m| merge_status(m, status, nested(depth)?))
                .map_err(|e| e.within("status"))
        }
        16 => fixed32(r, wire_type, "flags").map(|v| parts.flags = v),
        _ => r.skip(field, wire_type, depth),
    })?;
    parts.attributes = Vec::with_capacity(scratch.len());
    parts.attributes.append(scratch);
    Ok((span_id, parts))
}

fn event(body: &[u8], depth: u32) -> Result<Event> {
    let mut event = Event {
        time_unix_nano: 0,
        name: String::new(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    };
    let mut attribute = 0;
    each_field(body, |field, wire_type, r| match field {
        1 => fixed64(r, wire_type, "timeUnixNano").map(|v| event.time_unix_nano = v),
        2 => string(r, wire_type, "name").map(|s| event.name = s),
        3 => {
            push_key_value(r, wire_type, &mut event.attributes, &mut attribute, depth, "attributes")
        }
        4 => uint32(r, wire_type, "droppedAttributesCount")
            .map(|v| event.dropped_attributes_count = v),
        _ => r.skip(field, wire_type, depth),
    })?;
    Ok(event)
}

fn link(body: &[u8], depth: u32) -> Result<LinkParts<'_>> {
    let mut link = LinkParts::default();
    let mut attribute = 0;
    each_field(body, |field, wire_type, r| match field {
        1 => bytes(r, wire_type, "traceId").map(|b| link.trace_id = b),
        2 => bytes(r, wire_type, "spanId").map(|b| link.span_id = b),
        3 => string(r, wire_type, "traceState").map(|s| link.trace_state = s),
        4 => {
            push_key_value(r, wire_type, &mut link.attributes, &mut attribute, depth, "attributes")
        }
        5 => uint32(r, wire_type, "droppedAttributesCount")
            .map(|v| link.dropped_attributes_count = v),
        6 => fixed32(r, wire_type, "flags").map(|v| link.flags = v),
        _ => r.skip(field, wire_type, depth),
    })?;
    Ok(link)
}

fn merge_status(body: &[u8], (code, text): &mut (i32, String), depth: u32) -> Result<()> {
    each_field(body, |field, wire_type, r| match field {
        2 => string(r, wire_type, "message").map(|s| *text = s),
        3 => enumeration(r, wire_type, "code").map(|v| *code = v),
        _ => r.skip(field, wire_type, depth),
    })
}

/// Reads one `KeyValue` of a list field called `name` onto `list`; `index` counts the field's
/// occurrences (for error paths).
fn push_key_value(
    r: &mut Reader<'_>,
    wire_type: u8,
    list: &mut Vec<KeyValue>,
    index: &mut usize,
    depth: u32,
    name: &'static str,
) -> Result<()> {
    let at = *index;
    *index += 1;
    message(r, wire_type)
        .and_then(|m| key_value(m, nested(depth)?))
        .map(|kv| list.push(kv))
        .map_err(|e| e.within(format!("[{at}]")).within(name))
}

fn key_value(body: &[u8], depth: u32) -> Result<KeyValue> {
    let mut key = Text::default();
    let mut value = AnyValue::Empty;
    each_field(body, |field, wire_type, r| match field {
        1 => text(r, wire_type, "key").map(|s| key = s),
        2 => message(r, wire_type)
            .and_then(|m| merge_any_value(m, &mut value, nested(depth)?))
            .map_err(|e| e.within("value")),
        _ => r.skip(field, wire_type, depth),
    })?;
    Ok(KeyValue { key, value })
}

/// Reads an `AnyValue` into `value`: a value of another kind is replaced; an array or list
/// given again is extended, as protobuf merges a oneof's message.
fn merge_any_value(body: &[u8], value: &mut AnyValue, depth: u32) -> Result<()> {
    each_field(body, |field, wire_type, r| {
        match field {
            1 => *value = AnyValue::String(text(r, wire_type, "stringValue")?),
            2 => *value = AnyValue::Bool(varint(r, wire_type, "boolValue")? != 0),
            3 => *value = AnyValue::Int(int64(r, wire_type, "intValue")?),
            4 => *value = AnyValue::Double(f64::from_bits(fixed64(r, wire_type, "doubleValue")?)),
            5 => {
                let body = message(r, wire_type).map_err(|e| e.within("arrayValue"))?;
                if !matches!(value, AnyValue::Array(_)) {
                    *value = AnyValue::Array(Vec::new());
                }
                if let AnyValue::Array(values) = value {
                    merge_array(body, values, nested(depth)?)
                        .map_err(|e| e.within("arrayValue"))?;
                }
            }
            6 => {
                let body = message(r, wire_type).map_err(|e| e.within("kvlistValue"))?;
                if !matches!(value, AnyValue::KvList(_)) {
                    *value = AnyValue::KvList(Vec::new());
                }
                if let AnyValue::KvList(values) = value {
                    merge_kvlist(body, values, nested(depth)?)
                        .map_err(|e| e.within("kvlistValue"))?;
                }
            }
            7 => *value = AnyValue::Bytes(bytes(r, wire_type, "bytesValue")?.to_vec()),
            _ => r.skip(field, wire_type, depth)?,
        }
        Ok(())
    })
}

fn merge_array(body: &[u8], values: &mut Vec<AnyValue>, depth: u32) -> Result<()> {
    each_field(body, |field, wire_type, r| {
        if field != 1 {
            return r.skip(field, wire_type, depth);
        }
        let at = values.len();
        let mut value = AnyValue::Empty;
        message(r, wire_type)
            .and_then(|m| merge_any_value(m, &mut value, nested(depth)?))
            .map(|()| values.push(value))
            .map_err(|e| e.within(format!("[{at}]")).within("values"))
    })
}

fn merge_kvlist(body: &[u8], values: &mut Vec<KeyValue>, depth: u32) -> Result<()> {
    let mut index = values.len();
    each_field(body, |field, wire_type, r| {
        if field != 1 {
            return r.skip(field, wire_type, depth);
        }
        push_key_value(r, wire_type, values, &mut index, depth, "values")
    })
}
