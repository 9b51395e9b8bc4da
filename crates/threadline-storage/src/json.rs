//! The JSON text a block (format version 2) keeps attribute, event and link lists in: one
//! value per span, cheap to write, lossless, and readable by any tool with JSON functions
//! (DuckDB's `json_extract(attributes, '$."order.id"')`, say).
//!
//! ```text
//! attributes := {"key": value, ...}            -- in the order received, repeats kept
//! value      := "string" | integer | number-with-a-point-or-exponent | true | false | null
//!             | [value, ...]                                        -- array
//!             | {"kvlistValue": attributes}
//!             | {"bytesValue": "base64"}
//!             | {"doubleValue": "NaN" | "Infinity" | "-Infinity"}
//! events     := [{"time_unix_nano": n, "name": "...", "attributes": attributes,
//!                 "dropped_attributes_count": n}, ...]
//! links      := [{"trace_id": "hex", "span_id": "hex", "trace_state": "...",
//!                 "attributes": attributes, "dropped_attributes_count": n, "flags": n}, ...]
//! ```
//!
//! Integers are written without a point and doubles always with one (or an exponent), so
//! each reads back as the type it was written as.

use std::fmt::{self, Write as _};

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use threadline_core::id::{SpanId, TraceId};
use threadline_core::span::{Event, Link};
use threadline_core::value::{AnyValue, KeyValue, Text};

/// Writes `items` between `open` and `close`, separated by commas, each by `write`.
fn write_list<T>(
    out: &mut String,
    (open, close): (char, char),
    items: &[T],
    mut write: impl FnMut(&mut String, &T),
) {
    out.push(open);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(out, item);
    }
    out.push(close);
}

/// Writes `attributes` as a JSON object onto `out`.
pub fn write_attributes(out: &mut String, attributes: &[KeyValue]) {
    write_list(out, ('{', '}'), attributes, |out, kv| {
        write_string(out, &kv.key);
        out.push(':');
        write_value(out, &kv.value);
    });
}

fn write_value(out: &mut String, value: &AnyValue) {
    match value {
        AnyValue::String(s) => write_string(out, s),
        AnyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AnyValue::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        // The shortest text that reads back exactly, always with a point or an exponent
        // ("1.0", "1e300").
        AnyValue::Double(d) if d.is_finite() => {
            out.push_str(ryu::Buffer::new().format_finite(*d));
        }
        AnyValue::Double(d) => {
            let name = if d.is_nan() {
                "NaN"
            } else if d.is_sign_positive() {
                "Infinity"
            } else {
                "-Infinity"
            };
            out.push_str("{\"doubleValue\":\"");
            out.push_str(name);
            out.push_str("\"}");
        }
        AnyValue::Bytes(b) => {
            out.push_str("{\"bytesValue\":\"");
            base64::engine::general_purpose::STANDARD.encode_string(b, out);
            out.push_str("\"}");
        }
        AnyValue::Array(items) => write_list(out, ('[', ']'), items, write_value),
        AnyValue::KvList(kvs) => {
            out.push_str("{\"kvlistValue\":");
            write_attributes(out, kvs);
            out.push('}');
        }
        AnyValue::Empty => out.push_str("null"),
    }
}

/// Bytes a JSON string must escape: control characters, quote and backslash.
const ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Whether any byte of `bytes` is one [`ESCAPE`] names, eight bytes at a time: most strings
/// have none and are then copied whole.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Nonzero when, and only when, `word` has a byte below `n` (for `n` up to 0x80): such a
    // byte borrows into its high bit, which `!word` keeps as it was clear; a byte at or
    // above 0x80 has its own high bit set, which `!word` clears.
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        if below(word, 0x20) | below(quote, 1) | below(backslash, 1) != 0 {
            return true;
        }
    }
    words.remainder().iter().any(|&b| ESCAPE[usize::from(b)])
}

/// Writes `s` as a JSON string (quotes, backslashes and control characters escaped).
fn write_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    if !needs_escape(s.as_bytes()) {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut from = 0;
    for (at, &byte) in s.as_bytes().iter().enumerate() {
        if !ESCAPE[usize::from(byte)] {
            continue;
        }
        // Every byte escaped is ASCII, so `at` is a character boundary.
        out.push_str(&s[from..at]);
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            other => {
                let _ = write!(out, "\\u{other:04x}");
            }
        }
        from = at + 1;
    }
    out.push_str(&s[from..]);
    out.push('"');
}

/// Writes `events` as a JSON array onto `out`.
pub fn write_events(out: &mut String, events: &[Event]) {
    write_list(out, ('[', ']'), events, |out, event| {
        out.push_str("{\"time_unix_nano\":");
        out.push_str(itoa::Buffer::new().format(event.time_unix_nano));
        out.push_str(",\"name\":");
        write_string(out, &event.name);
        out.push_str(",\"attributes\":");
        write_attributes(out, &event.attributes);
        out.push_str(",\"dropped_attributes_count\":");
        out.push_str(itoa::Buffer::new().format(event.dropped_attributes_count));
        out.push('}');
    });
}

/// Writes `links` as a JSON array onto `out`.
pub fn write_links(out: &mut String, links: &[Link]) {
    write_list(out, ('[', ']'), links, |out, link| {
        let _ = write!(
            out,
            "{{\"trace_id\":\"{}\",\"span_id\":\"{}\",\"trace_state\":",
            link.trace_id.to_hex(),
            link.span_id.to_hex()
        );
        write_string(out, &link.trace_state);
        out.push_str(",\"attributes\":");
        write_attributes(out, &link.attributes);
        let _ = write!(
            out,
            ",\"dropped_attributes_count\":{},\"flags\":{}}}",
            link.dropped_attributes_count, link.flags
        );
    });
}

/// Reads an attribute list written by [`write_attributes`].
pub fn attributes(text: &str) -> Result<Vec<KeyValue>, String> {
    serde_json::from_str::<Attributes>(text).map(|a| a.0).map_err(|e| format!("attributes: {e}"))
}

/// Reads an event list written by [`write_events`].
pub fn events(text: &str) -> Result<Vec<Event>, String> {
    let events: Vec<EventJson> = serde_json::from_str(text).map_err(|e| format!("events: {e}"))?;
    Ok(events
        .into_iter()
        .map(|e| Event {
            time_unix_nano: e.time_unix_nano,
            name: e.name,
            attributes: e.attributes.0,
            dropped_attributes_count: e.dropped_attributes_count,
        })
        .collect())
}

/// Reads a link list written by [`write_links`].
pub fn links(text: &str) -> Result<Vec<Link>, String> {
    let links: Vec<LinkJson> = serde_json::from_str(text).map_err(|e| format!("links: {e}"))?;
    links
        .into_iter()
        .map(|l| {
            Ok(Link {
                trace_id: TraceId::from_hex(&l.trace_id)
                    .map_err(|e| format!("link trace id: {e}"))?,
                span_id: SpanId::from_hex(&l.span_id).map_err(|e| format!("link span id: {e}"))?,
                trace_state: l.trace_state,
                attributes: l.attributes.0,
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventJson {
    time_unix_nano: u64,
    name: String,
    attributes: Attributes,
    dropped_attributes_count: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkJson {
    trace_id: String,
    span_id: String,
    trace_state: String,
    attributes: Attributes,
    dropped_attributes_count: u32,
    flags: u32,
}

/// An attribute object, in the order written, repeated keys kept.
struct Attributes(Vec<KeyValue>);

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AttributesVisitor).map(Attributes)
    }
}

struct AttributesVisitor;

impl<'de> Visitor<'de> for AttributesVisitor {
    type Value = Vec<KeyValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of attributes")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Value>()?.0;
            out.push(KeyValue { key: Text::from(key), value });
        }
        Ok(out)
    }
}

/// One attribute value.
struct Value(AnyValue);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor).map(Value)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = AnyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyValue, E> {
        Ok(AnyValue::String(Text::from(v)))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<AnyValue, E> {
        Ok(AnyValue::String(Text::from(v)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<AnyValue, E> {
        Ok(AnyValue::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<AnyValue, E> {
        Ok(AnyValue::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<AnyValue, E> {
        i64::try_from(v).map(AnyValue::Int).map_err(|_| E::custom("integer above i64"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<AnyValue, E> {
        Ok(AnyValue::Double(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<AnyValue, E> {
        Ok(AnyValue::Empty)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item.0);
        }
        Ok(AnyValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
        let Some(kind) = map.next_key::<String>()? else {
            return Err(de::Error::custom("an empty object is not an attribute value"));
        };
        let value = match kind.as_str() {
            "kvlistValue" => AnyValue::KvList(map.next_value::<Attributes>()?.0),
            "bytesValue" => {
                let text = map.next_value::<String>()?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| de::Error::custom(format!("bytesValue: {e}")))?;
                AnyValue::Bytes(bytes)
            }
            "doubleValue" => AnyValue::Double(match map.next_value::<String>()?.as_str() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => return Err(de::Error::custom(format!("doubleValue {other:?}"))),
            }),
            other => return Err(de::Error::custom(format!("unknown value object {other:?}"))),
        };
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("a value object has one member"));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: AnyValue) -> KeyValue {
        KeyValue { key: key.into(), value }
    }

    #[test]
    fn every_kind_of_value_reads_back_as_written() {
        let attributes = vec![
            kv("s", AnyValue::String("a \"quoted\" \\ line\nwith\ttabs \u{1} and ünïcode".into())),
            kv("i", AnyValue::Int(-42)),
            kv("big", AnyValue::Int(i64::MAX)),
            kv("d", AnyValue::Double(1.0)),
            kv("tiny", AnyValue::Double(1e-300)),
            kv("neg0", AnyValue::Double(-0.0)),
            kv("inf", AnyValue::Double(f64::NEG_INFINITY)),
            kv("b", AnyValue::Bool(true)),
            kv("bytes", AnyValue::Bytes(vec![0, 1, 255])),
            kv(
                "arr",
                AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Double(2.5), AnyValue::Empty]),
            ),
            kv("kv", AnyValue::KvList(vec![kv("inner", AnyValue::String("x".into()))])),
            kv("empty", AnyValue::Empty),
            kv("i", AnyValue::Int(7)),
        ];
        let mut text = String::new();
        write_attributes(&mut text, &attributes);
        assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{text}");
        assert_eq!(super::attributes(&text).unwrap(), attributes);
        let mut nan = String::new();
        write_attributes(&mut nan, &[kv("n", AnyValue::Double(f64::NAN))]);
        assert!(
            matches!(&super::attributes(&nan).unwrap()[0].value, AnyValue::Double(d) if d.is_nan())
        );
    }

    #[test]
    fn every_byte_that_needs_it_is_escaped_wherever_it_falls() {
        // Each ASCII byte at each position of strings up to three words long, so every lane
        // of the eight-byte scan and the tail after it meet every byte.
        for len in 1..=24 {
            for at in 0..len {
                for byte in 0..0x80u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = byte;
                    let s = String::from_utf8(bytes).unwrap();
                    let mut text = String::new();
                    write_string(&mut text, &s);
                    let back: String = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{s:?} written as {text}: {e}"));
                    assert_eq!(back, s, "{text}");
                    let escaped = byte < 0x20 || byte == b'"' || byte == b'\\';
                    assert_eq!(text.len() > len + 2, escaped, "{s:?} written as {text}");
                }
            }
        }
        let mut text = String::new();
        write_string(&mut text, "ünïcode ✓ and more than eight bytes");
        assert_eq!(text, "\"ünïcode ✓ and more than eight bytes\"");
    }

    #[test]
    fn numbers_keep_their_type() {
        let mut text = String::new();
        write_attributes(&mut text, &[kv("i", AnyValue::Int(3)), kv("d", AnyValue::Double(3.0))]);
        assert_eq!(text, r#"{"i":3,"d":3.0}"#);
    }

    #[test]
    fn events_and_links_read_back() {
        let events = vec![Event {
            time_unix_nano: u64::MAX,
            name: "exception".into(),
            attributes: vec![kv("exception.type", AnyValue::String("E".into()))],
            dropped_attributes_count: 2,
        }];
        let links = vec![Link {
            trace_id: TraceId::from_bytes([7; 16]).unwrap(),
            span_id: SpanId::from_bytes([9; 8]).unwrap(),
            trace_state: "a=b".into(),
            attributes: vec![],
            dropped_attributes_count: 1,
            flags: 257,
        }];
        let (mut e, mut l) = (String::new(), String::new());
        write_events(&mut e, &events);
        write_links(&mut l, &links);
        assert_eq!(super::events(&e).unwrap(), events);
        assert_eq!(super::links(&l).unwrap(), links);
        let (mut none_e, mut none_l) = (String::new(), String::new());
        write_events(&mut none_e, &[]);
        write_links(&mut none_l, &[]);
        assert_eq!((none_e.as_str(), none_l.as_str()), ("[]", "[]"));
    }

    #[test]
    fn damaged_text_is_an_error_not_a_panic() {
        for bad in ["", "{", "[]", r#"{"a":{}}"#, r#"{"a":{"bytesValue":"!!"}}"#, r#"{"a":1e999}"#]
        {
            assert!(attributes(bad).is_err(), "{bad}");
        }
        assert!(links(r#"[{"trace_id":"zz","span_id":"00","trace_state":"","attributes":{},"dropped_attributes_count":0,"flags":0}]"#).is_err());
        assert!(events(r#"[{"name":"x"}]"#).is_err());
    }
}
