//! A compact, lossless binary encoding of a batch of spans: the payload of a WAL record.
//!
//! Layout (all integers LEB128 varints unless noted, strings as length + UTF-8 bytes):
//!
//! ```text
//! batch    := version:u8 resources scopes count span*
//! resources:= n (attributes dropped schema_url)*     -- each distinct Arc<Resource> once
//! scopes   := n (name version attributes dropped schema_url)*
//! span     := trace_id:[16] span_id:[8] parent:(0 | 1 [8]) trace_state flags name kind:u8
//!             start end attributes dropped events dropped links dropped
//!             status_code:u8 status_message resource_index scope_index
//! value    := tag:u8 payload   (string, bool, int as zigzag, double as 8 LE bytes, bytes,
//!                               array, kvlist, empty)
//! key      := 0 string | n     -- version 2: a key new to the batch, or the batch's n-th key
//! ```
//!
//! Resources and scopes are written once per batch and shared again on decode, as they were
//! when the batch was received. From version 2 each distinct attribute key is written once per
//! batch too (in every attribute list: of resources, scopes, spans, events, links and nested
//! key-value lists), in the order first met; spans of one service repeat the same keys, which
//! were about two fifths of a batch's bytes. Version 1 (every key written out) is still read.

use std::sync::Arc;

use threadline_core::id::{SpanId, TraceId};
use threadline_core::span::{Event, Link, Resource, Scope, Span, SpanKind, Status, StatusCode};
use threadline_core::value::{AnyValue, KeyValue, Text};

/// The encoding version written first in every batch.
pub const BATCH_VERSION: u8 = 2;
/// The version before attribute keys were written once per batch; still read.
const BATCH_VERSION_1: u8 = 1;

/// Nesting limit for array and key-value list values, so damaged input cannot recurse deeply.
const MAX_DEPTH: u32 = 64;

/// Why bytes are not a valid encoded batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "unsupported span batch version {0} (this build reads versions {BATCH_VERSION_1} to {BATCH_VERSION})"
    )]
    Version(u8),
    #[error("truncated span batch")]
    Truncated,
    #[error("invalid span batch: {0}")]
    Invalid(&'static str),
}

/// Encodes `spans` onto the end of `out`.
pub fn encode_batch(spans: &[Span], out: &mut Vec<u8>) {
    encode_batch_as(spans, out, BATCH_VERSION);
}

/// [`encode_batch`] in the layout of `version` (1 or 2).
fn encode_batch_as(spans: &[Span], out: &mut Vec<u8>, version: u8) {
    out.push(version);
    let mut resources: Vec<&Arc<Resource>> = Vec::new();
    let mut scopes: Vec<&Arc<Scope>> = Vec::new();
    let mut indexes = Vec::with_capacity(spans.len());
    for span in spans {
        let r = intern(&mut resources, &span.resource);
        let s = intern(&mut scopes, &span.scope);
        indexes.push((r, s));
    }
    let mut w = Writer { out, keys: (version >= 2).then(KeyTable::new) };
    put_len(w.out, resources.len());
    for resource in &resources {
        w.attributes(&resource.attributes);
        put_u64(w.out, resource.dropped_attributes_count.into());
        put_str(w.out, &resource.schema_url);
    }
    put_len(w.out, scopes.len());
    for scope in &scopes {
        put_str(w.out, &scope.name);
        put_str(w.out, &scope.version);
        w.attributes(&scope.attributes);
        put_u64(w.out, scope.dropped_attributes_count.into());
        put_str(w.out, &scope.schema_url);
    }
    put_len(w.out, spans.len());
    for (span, (r, s)) in spans.iter().zip(indexes) {
        w.span(span);
        put_len(w.out, r);
        put_len(w.out, s);
    }
}

/// Writes one batch; from version 2 with its table of attribute keys.
struct Writer<'o, 'k> {
    out: &'o mut Vec<u8>,
    /// Keys written so far and their numbers; `None` in version 1.
    keys: Option<KeyTable<'k>>,
}

/// Slots of [`KeyTable`]; a power of two.
const KEY_SLOTS: usize = 256;

/// The keys a batch has written, by number (from 1), in a direct-mapped table: a key is
/// looked up in the one slot its hash picks. A key whose slot another key took since is
/// written out again as new and takes the next number; the reader numbers it the same way, so
/// a collision costs bytes, never correctness. Cheaper than a hash map for the ten or so keys
/// of every span.
struct KeyTable<'k> {
    slots: Vec<Option<(&'k str, u32)>>,
    /// Keys written out so far.
    written: u32,
}

impl<'k> KeyTable<'k> {
    fn new() -> Self {
        Self { slots: vec![None; KEY_SLOTS], written: 0 }
    }

    /// The slot of `key`: a hash of its length and its first and last eight bytes.
    fn slot(key: &str) -> usize {
        let bytes = key.as_bytes();
        let word = |part: &[u8]| {
            let mut buf = [0u8; 8];
            buf[..part.len()].copy_from_slice(part);
            u64::from_le_bytes(buf)
        };
        let head = word(&bytes[..bytes.len().min(8)]);
        let tail = word(&bytes[bytes.len().saturating_sub(8)..]);
        let mixed =
            (head ^ tail.rotate_left(29) ^ bytes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The top bits of the product depend on every input bit; they fit any usize.
        usize::try_from(mixed >> (64 - KEY_SLOTS.trailing_zeros())).unwrap_or(0)
    }

    /// The number of `key` if written already, or `None` after numbering it as written now.
    fn find_or_add(&mut self, key: &'k str) -> Option<u32> {
        let slot = &mut self.slots[Self::slot(key)];
        if let Some((known, number)) = *slot
            && known == key
        {
            return Some(number);
        }
        self.written += 1;
        *slot = Some((key, self.written));
        None
    }
}

impl<'k> Writer<'_, 'k> {
    fn span(&mut self, span: &'k Span) {
        let out = &mut *self.out;
        out.extend_from_slice(span.trace_id.as_bytes());
        out.extend_from_slice(span.span_id.as_bytes());
        match span.parent_span_id {
            Some(parent) => {
                out.push(1);
                out.extend_from_slice(parent.as_bytes());
            }
            None => out.push(0),
        }
        put_str(out, &span.trace_state);
        put_u64(out, span.flags.into());
        put_str(out, &span.name);
        out.push(kind_tag(span.kind));
        put_u64(out, span.start_time_unix_nano);
        put_u64(out, span.end_time_unix_nano);
        self.attributes(&span.attributes);
        put_u64(self.out, span.dropped_attributes_count.into());
        put_len(self.out, span.events.len());
        for event in &span.events {
            put_u64(self.out, event.time_unix_nano);
            put_str(self.out, &event.name);
            self.attributes(&event.attributes);
            put_u64(self.out, event.dropped_attributes_count.into());
        }
        put_u64(self.out, span.dropped_events_count.into());
        put_len(self.out, span.links.len());
        for link in &span.links {
            self.out.extend_from_slice(link.trace_id.as_bytes());
            self.out.extend_from_slice(link.span_id.as_bytes());
            put_str(self.out, &link.trace_state);
            self.attributes(&link.attributes);
            put_u64(self.out, link.dropped_attributes_count.into());
            put_u64(self.out, link.flags.into());
        }
        let out = &mut *self.out;
        put_u64(out, span.dropped_links_count.into());
        out.push(match span.status.code {
            StatusCode::Unset => 0,
            StatusCode::Ok => 1,
            StatusCode::Error => 2,
        });
        put_str(out, &span.status.message);
    }

    fn attributes(&mut self, attributes: &'k [KeyValue]) {
        put_len(self.out, attributes.len());
        for kv in attributes {
            self.key(&kv.key);
            self.value(&kv.value);
        }
    }

    fn key(&mut self, key: &'k str) {
        let Some(keys) = &mut self.keys else {
            put_str(self.out, key);
            return;
        };
        match keys.find_or_add(key) {
            Some(number) => put_u64(self.out, number.into()),
            None => {
                self.out.push(0);
                put_str(self.out, key);
            }
        }
    }

    fn value(&mut self, value: &'k AnyValue) {
        let out = &mut *self.out;
        match value {
            AnyValue::String(s) => {
                out.push(0);
                put_str(out, s);
            }
            AnyValue::Bool(b) => {
                out.push(1);
                out.push(u8::from(*b));
            }
            AnyValue::Int(i) => {
                out.push(2);
                put_u64(out, zigzag(*i));
            }
            AnyValue::Double(d) => {
                out.push(3);
                out.extend_from_slice(&d.to_le_bytes());
            }
            AnyValue::Bytes(b) => {
                out.push(4);
                put_len(out, b.len());
                out.extend_from_slice(b);
            }
            AnyValue::Array(values) => {
                out.push(5);
                put_len(out, values.len());
                for v in values {
                    self.value(v);
                }
            }
            AnyValue::KvList(kvs) => {
                out.push(6);
                self.attributes(kvs);
            }
            AnyValue::Empty => out.push(7),
        }
    }
}

/// Index of `item` in `seen`, by pointer first (the common case) and then by value.
fn intern<'a, T: PartialEq>(seen: &mut Vec<&'a Arc<T>>, item: &'a Arc<T>) -> usize {
    if let Some(i) = seen.iter().rposition(|s| Arc::ptr_eq(s, item) || ***s == **item) {
        return i;
    }
    seen.push(item);
    seen.len() - 1
}

fn kind_tag(kind: SpanKind) -> u8 {
    match kind {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)).cast_unsigned()
}

fn unzigzag(u: u64) -> i64 {
    (u >> 1).cast_signed() ^ -(u & 1).cast_signed()
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_len(out: &mut Vec<u8>, n: usize) {
    put_u64(out, n as u64);
}

#[allow(clippy::cast_possible_truncation, reason = "each byte takes the low 7 bits on purpose")]
pub(crate) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encodes one attribute value (the `value` production above) onto the end of `out`: how span
/// blocks keep array and key-value list attributes losslessly.
pub fn encode_value(value: &AnyValue, out: &mut Vec<u8>) {
    // Keys of nested key-value lists written out, as in version 1: a value stands alone.
    Writer { out, keys: None }.value(value);
}

/// Decodes one value written by [`encode_value`]; trailing bytes are an error.
pub fn decode_value(bytes: &[u8]) -> Result<AnyValue, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let value = r.value(0, &mut None)?;
    if r.pos != bytes.len() {
        return Err(DecodeError::Invalid("trailing bytes after the value"));
    }
    Ok(value)
}

/// Decodes a whole batch written by [`encode_batch`]; trailing bytes are an error.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Span>, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.u8()?;
    let mut keys = match version {
        BATCH_VERSION_1 => None,
        BATCH_VERSION => Some(Vec::new()),
        _ => return Err(DecodeError::Version(version)),
    };
    let keys = &mut keys;
    let n = r.len()?;
    let mut resources = Vec::with_capacity(n);
    for _ in 0..n {
        resources.push(Arc::new(Resource {
            attributes: r.attributes(0, keys)?,
            dropped_attributes_count: r.u32()?,
            schema_url: r.string()?,
        }));
    }
    let n = r.len()?;
    let mut scopes = Vec::with_capacity(n);
    for _ in 0..n {
        scopes.push(Arc::new(Scope {
            name: r.string()?,
            version: r.string()?,
            attributes: r.attributes(0, keys)?,
            dropped_attributes_count: r.u32()?,
            schema_url: r.string()?,
        }));
    }
    let n = r.len()?;
    let mut spans = Vec::with_capacity(n);
    for _ in 0..n {
        spans.push(r.span(&resources, &scopes, keys)?);
    }
    if r.pos != bytes.len() {
        return Err(DecodeError::Invalid("trailing bytes after the last span"));
    }
    Ok(spans)
}

/// The attribute keys of a batch so far, by number; `None` in version 1.
type Keys = Option<Vec<Text>>;

pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::Invalid("varint longer than 10 bytes"))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.u64()?).map_err(|_| DecodeError::Invalid("count does not fit 32 bits"))
    }

    /// A length, bounded by the bytes left so damaged input cannot ask for huge allocations.
    pub(crate) fn len(&mut self) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.u64()?).map_err(|_| DecodeError::Truncated)?;
        if n > self.bytes.len() - self.pos {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    pub(crate) fn index(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(self.u64()?).map_err(|_| DecodeError::Invalid("index out of range"))
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        self.str().map(str::to_owned)
    }

    /// A string as [`Text`]: inline, with no allocation, when short.
    fn text(&mut self) -> Result<Text, DecodeError> {
        self.str().map(Text::from)
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map_err(|_| DecodeError::Invalid("string is not UTF-8"))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn trace_id(&mut self) -> Result<TraceId, DecodeError> {
        TraceId::from_bytes(self.array()?).map_err(|_| DecodeError::Invalid("zero trace id"))
    }

    fn span_id(&mut self) -> Result<SpanId, DecodeError> {
        SpanId::from_bytes(self.array()?).map_err(|_| DecodeError::Invalid("zero span id"))
    }

    fn attributes(&mut self, depth: u32, keys: &mut Keys) -> Result<Vec<KeyValue>, DecodeError> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(KeyValue { key: self.key(keys)?, value: self.value(depth, keys)? });
        }
        Ok(out)
    }

    /// A key: in version 1 its text, from version 2 new to the batch or a number in `keys`.
    fn key(&mut self, keys: &mut Keys) -> Result<Text, DecodeError> {
        let Some(known) = keys else { return self.text() };
        match self.index()? {
            0 => {
                let key = self.text()?;
                known.push(key.clone());
                Ok(key)
            }
            n => known.get(n - 1).cloned().ok_or(DecodeError::Invalid("attribute key number")),
        }
    }

    fn value(&mut self, depth: u32, keys: &mut Keys) -> Result<AnyValue, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(DecodeError::Invalid("values nested too deeply"));
        }
        Ok(match self.u8()? {
            0 => AnyValue::String(self.text()?),
            1 => AnyValue::Bool(match self.u8()? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::Invalid("bad boolean")),
            }),
            2 => AnyValue::Int(unzigzag(self.u64()?)),
            3 => AnyValue::Double(f64::from_le_bytes(self.array()?)),
            4 => {
                let n = self.len()?;
                AnyValue::Bytes(self.take(n)?.to_vec())
            }
            5 => {
                let n = self.len()?;
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    values.push(self.value(depth + 1, keys)?);
                }
                AnyValue::Array(values)
            }
            6 => AnyValue::KvList(self.attributes(depth + 1, keys)?),
            7 => AnyValue::Empty,
            _ => return Err(DecodeError::Invalid("unknown value tag")),
        })
    }

    fn span(
        &mut self,
        resources: &[Arc<Resource>],
        scopes: &[Arc<Scope>],
        keys: &mut Keys,
    ) -> Result<Span, DecodeError> {
        let trace_id = self.trace_id()?;
        let span_id = self.span_id()?;
        let parent_span_id = match self.u8()? {
            0 => None,
            1 => Some(self.span_id()?),
            _ => return Err(DecodeError::Invalid("bad parent marker")),
        };
        let trace_state = self.string()?;
        let flags = self.u32()?;
        let name = self.text()?;
        let kind = match self.u8()? {
            0 => SpanKind::Unspecified,
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => return Err(DecodeError::Invalid("unknown span kind")),
        };
        let start_time_unix_nano = self.u64()?;
        let end_time_unix_nano = self.u64()?;
        let attributes = self.attributes(0, keys)?;
        let dropped_attributes_count = self.u32()?;
        let n = self.len()?;
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(Event {
                time_unix_nano: self.u64()?,
                name: self.string()?,
                attributes: self.attributes(0, keys)?,
                dropped_attributes_count: self.u32()?,
            });
        }
        let dropped_events_count = self.u32()?;
        let n = self.len()?;
        let mut links = Vec::with_capacity(n);
        for _ in 0..n {
            links.push(Link {
                trace_id: self.trace_id()?,
                span_id: self.span_id()?,
                trace_state: self.string()?,
                attributes: self.attributes(0, keys)?,
                dropped_attributes_count: self.u32()?,
                flags: self.u32()?,
            });
        }
        let dropped_links_count = self.u32()?;
        let code = match self.u8()? {
            0 => StatusCode::Unset,
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => return Err(DecodeError::Invalid("unknown status code")),
        };
        let status = Status { code, message: self.string()? };
        let resource =
            resources.get(self.index()?).ok_or(DecodeError::Invalid("resource index"))?;
        let scope = scopes.get(self.index()?).ok_or(DecodeError::Invalid("scope index"))?;
        Ok(Span {
            trace_id,
            span_id,
            parent_span_id,
            trace_state,
            flags,
            name,
            kind,
            start_time_unix_nano,
            end_time_unix_nano,
            attributes,
            dropped_attributes_count,
            events,
            dropped_events_count,
            links,
            dropped_links_count,
            status,
            resource: Arc::clone(resource),
            scope: Arc::clone(scope),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use threadline_testsuite::arbitrary;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// WAL records written before keys were numbered still replay.
        #[test]
        fn version_1_batches_still_decode(spans in arbitrary::batch()) {
            let mut bytes = Vec::new();
            encode_batch_as(&spans, &mut bytes, BATCH_VERSION_1);
            prop_assert_eq!(bytes[0], 1);
            prop_assert_eq!(decode_batch(&bytes).unwrap(), spans);
        }
    }
}
