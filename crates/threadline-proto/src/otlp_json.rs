//! The OTLP/HTTP JSON encoding of an `ExportTraceServiceRequest`, per the OTLP specification:
//! lowerCamelCase field names (the original snake_case names are accepted too, as proto3 JSON
//! parsers do), trace and span ids as hex (not base64), 64-bit integers as decimal strings or
//! numbers, enums as integers (names accepted), unknown fields ignored.
//!
//! These types convert losslessly into the protobuf types with `From`, so one validation path
//! serves both encodings.

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::fmt;

use crate::opentelemetry::proto::collector::trace::v1 as collector;
use crate::opentelemetry::proto::common::v1 as common;
use crate::opentelemetry::proto::resource::v1 as resource;
use crate::opentelemetry::proto::trace::v1 as trace;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExportTraceServiceRequest {
    #[serde(alias = "resource_spans")]
    pub resource_spans: Vec<ResourceSpans>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResourceSpans {
    pub resource: Option<Resource>,
    #[serde(alias = "scope_spans")]
    pub scope_spans: Vec<ScopeSpans>,
    #[serde(alias = "schema_url")]
    pub schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Resource {
    pub attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "uint32")]
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScopeSpans {
    pub scope: Option<InstrumentationScope>,
    pub spans: Vec<Span>,
    #[serde(alias = "schema_url")]
    pub schema_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InstrumentationScope {
    pub name: String,
    pub version: String,
    pub attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "uint32")]
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Span {
    #[serde(alias = "trace_id", deserialize_with = "hex_bytes")]
    pub trace_id: Vec<u8>,
    #[serde(alias = "span_id", deserialize_with = "hex_bytes")]
    pub span_id: Vec<u8>,
    #[serde(alias = "trace_state")]
    pub trace_state: String,
    #[serde(alias = "parent_span_id", deserialize_with = "hex_bytes")]
    pub parent_span_id: Vec<u8>,
    #[serde(deserialize_with = "uint32")]
    pub flags: u32,
    pub name: String,
    #[serde(deserialize_with = "span_kind")]
    pub kind: i32,
    #[serde(alias = "start_time_unix_nano", deserialize_with = "uint64")]
    pub start_time_unix_nano: u64,
    #[serde(alias = "end_time_unix_nano", deserialize_with = "uint64")]
    pub end_time_unix_nano: u64,
    pub attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "uint32")]
    pub dropped_attributes_count: u32,
    pub events: Vec<Event>,
    #[serde(alias = "dropped_events_count", deserialize_with = "uint32")]
    pub dropped_events_count: u32,
    pub links: Vec<Link>,
    #[serde(alias = "dropped_links_count", deserialize_with = "uint32")]
    pub dropped_links_count: u32,
    pub status: Option<Status>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Event {
    #[serde(alias = "time_unix_nano", deserialize_with = "uint64")]
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "uint32")]
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Link {
    #[serde(alias = "trace_id", deserialize_with = "hex_bytes")]
    pub trace_id: Vec<u8>,
    #[serde(alias = "span_id", deserialize_with = "hex_bytes")]
    pub span_id: Vec<u8>,
    #[serde(alias = "trace_state")]
    pub trace_state: String,
    pub attributes: Vec<KeyValue>,
    #[serde(alias = "dropped_attributes_count", deserialize_with = "uint32")]
    pub dropped_attributes_count: u32,
    #[serde(deserialize_with = "uint32")]
    pub flags: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    pub message: String,
    #[serde(deserialize_with = "status_code")]
    pub code: i32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeyValue {
    pub key: String,
    pub value: Option<AnyValue>,
}

/// An `AnyValue`: an object with at most one of `stringValue`, `boolValue`, `intValue`,
/// `doubleValue`, `arrayValue`, `kvlistValue`, `bytesValue`; `{}` is the empty value.
#[derive(Debug, Default)]
pub struct AnyValue(pub Option<common::any_value::Value>);

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AnyValueVisitor)
    }
}

struct AnyValueVisitor;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Values<T> {
    values: Vec<T>,
}

impl<'de> Visitor<'de> for AnyValueVisitor {
    type Value = AnyValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AnyValue object such as {\"stringValue\": \"x\"}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
        use common::any_value::Value;
        let mut value = None;
        while let Some(key) = map.next_key::<String>()? {
            let next = match key.as_str() {
                "stringValue" | "string_value" => Value::StringValue(map.next_value()?),
                "boolValue" | "bool_value" => Value::BoolValue(map.next_value()?),
                "intValue" | "int_value" => Value::IntValue(map.next_value::<Int64>()?.0),
                "doubleValue" | "double_value" => Value::DoubleValue(map.next_value::<Double>()?.0),
                "bytesValue" | "bytes_value" => {
                    let text: String = map.next_value()?;
                    let bytes = decode_base64(&text).map_err(de::Error::custom)?;
                    Value::BytesValue(bytes)
                }
                "arrayValue" | "array_value" => {
                    let array: Values<AnyValue> = map.next_value()?;
                    Value::ArrayValue(common::ArrayValue {
                        values: array.values.into_iter().map(Into::into).collect(),
                    })
                }
                "kvlistValue" | "kvlist_value" => {
                    let list: Values<KeyValue> = map.next_value()?;
                    Value::KvlistValue(common::KeyValueList {
                        values: list.values.into_iter().map(Into::into).collect(),
                    })
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                    continue;
                }
            };
            if value.replace(next).is_some() {
                return Err(de::Error::custom("an AnyValue holds more than one value"));
            }
        }
        Ok(AnyValue(value))
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    // proto3 JSON writers use standard base64 with padding; accept URL-safe and unpadded too.
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| format!("bytesValue is not base64: {text:?}"))
}

/// A 64-bit signed integer written as a decimal string (the OTLP JSON rule) or a number.
struct Int64(i64);

impl<'de> Deserialize<'de> for Int64 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IntVisitor::<i64>::new("a 64-bit integer")).map(Int64)
    }
}

/// A double written as a number or as a string (`"NaN"`, `"Infinity"`, `"-Infinity"`, or a
/// decimal), per proto3 JSON.
struct Double(f64);

impl<'de> Deserialize<'de> for Double {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DoubleVisitor;
        impl Visitor<'_> for DoubleVisitor {
            type Value = f64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
                Ok(v)
            }
            #[expect(clippy::cast_precision_loss, reason = "proto3 JSON allows it")]
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
                Ok(v as f64)
            }
            #[expect(clippy::cast_precision_loss, reason = "proto3 JSON allows it")]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
                Ok(v as f64)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
                match v {
                    "NaN" => Ok(f64::NAN),
                    "Infinity" => Ok(f64::INFINITY),
                    "-Infinity" => Ok(f64::NEG_INFINITY),
                    other => {
                        other.parse().map_err(|_| E::custom(format!("{other:?} is not a number")))
                    }
                }
            }
        }
        deserializer.deserialize_any(DoubleVisitor).map(Double)
    }
}

/// Accepts an integer as a JSON number or a decimal string and checks its range.
struct IntVisitor<T> {
    what: &'static str,
    _marker: std::marker::PhantomData<T>,
}

impl<T> IntVisitor<T> {
    fn new(what: &'static str) -> Self {
        Self { what, _marker: std::marker::PhantomData }
    }
}

impl<T> Visitor<'_> for IntVisitor<T>
where
    T: TryFrom<i64> + TryFrom<u64> + std::str::FromStr,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as a number or a decimal string", self.what)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range for {}", self.what)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("{v} is out of range for {}", self.what)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(|_| E::custom(format!("{v:?} is not {}", self.what)))
    }
}

fn uint64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_any(IntVisitor::new("an unsigned 64-bit integer"))
}

fn uint32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    deserializer.deserialize_any(IntVisitor::new("an unsigned 32-bit integer"))
}

fn hex_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    hex_decode(&text).ok_or_else(|| de::Error::custom(format!("{text:?} is not a hex id")))
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

/// An enum field: its integer value, or its name from the list (index = value).
struct EnumVisitor {
    what: &'static str,
    names: &'static [&'static str],
}

impl Visitor<'_> for EnumVisitor {
    type Value = i32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} as an integer or a name", self.what)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i32, E> {
        IntVisitor::new(self.what).visit_i64(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i32, E> {
        IntVisitor::new(self.what).visit_u64(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i32, E> {
        self.names
            .iter()
            .position(|name| *name == v)
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| E::custom(format!("{v:?} is not a {}", self.what)))
    }
}

fn span_kind<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    deserializer.deserialize_any(EnumVisitor {
        what: "span kind",
        names: &[
            "SPAN_KIND_UNSPECIFIED",
            "SPAN_KIND_INTERNAL",
            "SPAN_KIND_SERVER",
            "SPAN_KIND_CLIENT",
            "SPAN_KIND_PRODUCER",
            "SPAN_KIND_CONSUMER",
        ],
    })
}

fn status_code<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    deserializer.deserialize_any(EnumVisitor {
        what: "status code",
        names: &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"],
    })
}

impl From<ExportTraceServiceRequest> for collector::ExportTraceServiceRequest {
    fn from(r: ExportTraceServiceRequest) -> Self {
        Self { resource_spans: r.resource_spans.into_iter().map(Into::into).collect() }
    }
}

impl From<ResourceSpans> for trace::ResourceSpans {
    fn from(r: ResourceSpans) -> Self {
        Self {
            resource: r.resource.map(|res| resource::Resource {
                attributes: res.attributes.into_iter().map(Into::into).collect(),
                dropped_attributes_count: res.dropped_attributes_count,
            }),
            scope_spans: r.scope_spans.into_iter().map(Into::into).collect(),
            schema_url: r.schema_url,
        }
    }
}

impl From<ScopeSpans> for trace::ScopeSpans {
    fn from(s: ScopeSpans) -> Self {
        Self {
            scope: s.scope.map(|scope| common::InstrumentationScope {
                name: scope.name,
                version: scope.version,
                attributes: scope.attributes.into_iter().map(Into::into).collect(),
                dropped_attributes_count: scope.dropped_attributes_count,
            }),
            spans: s.spans.into_iter().map(Into::into).collect(),
            schema_url: s.schema_url,
        }
    }
}

impl From<Span> for trace::Span {
    fn from(s: Span) -> Self {
        Self {
            trace_id: s.trace_id,
            span_id: s.span_id,
            trace_state: s.trace_state,
            parent_span_id: s.parent_span_id,
            flags: s.flags,
            name: s.name,
            kind: s.kind,
            start_time_unix_nano: s.start_time_unix_nano,
            end_time_unix_nano: s.end_time_unix_nano,
            attributes: s.attributes.into_iter().map(Into::into).collect(),
            dropped_attributes_count: s.dropped_attributes_count,
            events: s
                .events
                .into_iter()
                .map(|e| trace::span::Event {
                    time_unix_nano: e.time_unix_nano,
                    name: e.name,
                    attributes: e.attributes.into_iter().map(Into::into).collect(),
                    dropped_attributes_count: e.dropped_attributes_count,
                })
                .collect(),
            dropped_events_count: s.dropped_events_count,
            links: s
                .links
                .into_iter()
                .map(|l| trace::span::Link {
                    trace_id: l.trace_id,
                    span_id: l.span_id,
                    trace_state: l.trace_state,
                    attributes: l.attributes.into_iter().map(Into::into).collect(),
                    dropped_attributes_count: l.dropped_attributes_count,
                    flags: l.flags,
                })
                .collect(),
            dropped_links_count: s.dropped_links_count,
            status: s.status.map(|st| trace::Status { message: st.message, code: st.code }),
        }
    }
}

impl From<KeyValue> for common::KeyValue {
    fn from(kv: KeyValue) -> Self {
        Self { key: kv.key, value: kv.value.map(Into::into) }
    }
}

impl From<AnyValue> for common::AnyValue {
    fn from(v: AnyValue) -> Self {
        Self { value: v.0 }
    }
}
