//! Attribute values: the OpenTelemetry `AnyValue` model (strings, booleans, 64-bit integers,
//! doubles, bytes, arrays and key-value lists).
//!
//! Attribute keys and string values are [`Text`]: most are short (`http.request.method`,
//! `POST`, an order id), and a string of up to 24 bytes is kept inline, so decoding a span
//! allocates for none of them, and writing it out reads them where the attribute is.

/// A string kept inline up to 24 bytes, on the heap beyond; derefs to `str`.
pub type Text = compact_str::CompactString;

/// One attribute value. `Empty` is the OpenTelemetry empty value (an `AnyValue` with nothing
/// set), kept so that nothing a client sent is silently changed.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyValue {
    String(Text),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AnyValue>),
    KvList(Vec<KeyValue>),
    Empty,
}

impl AnyValue {
    /// The value as a string slice, when it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AnyValue::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<&str> for AnyValue {
    fn from(value: &str) -> Self {
        AnyValue::String(Text::from(value))
    }
}

impl From<String> for AnyValue {
    fn from(value: String) -> Self {
        AnyValue::String(Text::from(value))
    }
}

impl From<i64> for AnyValue {
    fn from(value: i64) -> Self {
        AnyValue::Int(value)
    }
}

impl From<bool> for AnyValue {
    fn from(value: bool) -> Self {
        AnyValue::Bool(value)
    }
}

impl From<f64> for AnyValue {
    fn from(value: f64) -> Self {
        AnyValue::Double(value)
    }
}

/// A named attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    pub key: Text,
    pub value: AnyValue,
}

impl KeyValue {
    pub fn new(key: impl Into<Text>, value: impl Into<AnyValue>) -> Self {
        Self { key: key.into(), value: value.into() }
    }
}

/// Finds the first attribute named `key`.
pub fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
}
