//! From request bytes to wire messages: content types, capped gzip decompression, and
//! decoding with errors that say what is wrong and where.

use std::io::Read as _;

use prost::Message;
use threadline_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use threadline_proto::{otlp_json, zipkin};

use crate::convert::{self, Decoded};
use crate::error::IngestError;
use crate::wire;

/// The two encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The OTLP encoding a `Content-Type` names (parameters such as `charset` are ignored).
    pub fn from_content_type(value: Option<&str>) -> Result<Self, IngestError> {
        let value = value.unwrap_or("");
        match media_type(value).as_str() {
            "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
            "application/json" => Ok(Encoding::Json),
            _ => Err(IngestError::UnsupportedContentType(value.to_owned())),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Checks a Zipkin request's `Content-Type`: JSON (or none, as old clients send).
pub fn check_zipkin_content_type(value: Option<&str>) -> Result<(), IngestError> {
    match value.map(media_type).as_deref() {
        None | Some("application/json") => Ok(()),
        Some(_) => Err(IngestError::UnsupportedZipkinContentType(value.unwrap_or("").to_owned())),
    }
}

fn media_type(value: &str) -> String {
    value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether the body is gzip-compressed, from `Content-Encoding`.
pub fn is_gzip(content_encoding: Option<&str>) -> Result<bool, IngestError> {
    match content_encoding.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "identity") => Ok(false),
        Some("gzip" | "x-gzip") => Ok(true),
        Some(_) => Err(IngestError::UnsupportedEncoding(content_encoding.unwrap_or("").to_owned())),
    }
}

/// Decompresses gzip, refusing output larger than `limit` bytes without producing more of it
/// than `limit + 1` (a small body cannot make the server allocate gigabytes).
pub fn gunzip_capped(data: &[u8], limit: usize) -> Result<Vec<u8>, IngestError> {
    #[expect(clippy::disallowed_methods, reason = "this is the capped decompression")]
    let decoder = flate2::read::MultiGzDecoder::new(data);
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::Malformed(format!("request body is not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(IngestError::TooLarge { what: "decompressed request body", limit });
    }
    Ok(out)
}

/// The spans of an OTLP export request in `encoding`: protobuf is read straight into spans
/// ([`wire`]), JSON through its message types ([`convert`]).
pub fn decode_spans(data: &[u8], encoding: Encoding) -> Result<Decoded, IngestError> {
    match encoding {
        Encoding::Protobuf => wire::decode_request(data).map_err(|e| {
            IngestError::Malformed(format!("request body is not valid OTLP protobuf: {e}"))
        }),
        Encoding::Json => decode_otlp(data, encoding).map(convert::convert_otlp),
    }
}

/// The message types of an OTLP export request in `encoding`.
pub fn decode_otlp(
    data: &[u8],
    encoding: Encoding,
) -> Result<ExportTraceServiceRequest, IngestError> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(data).map_err(|e| {
            IngestError::Malformed(format!("request body is not valid OTLP protobuf: {e}"))
        }),
        Encoding::Json => {
            let request: otlp_json::ExportTraceServiceRequest = from_json(data, "OTLP JSON")?;
            Ok(request.into())
        }
    }
}

/// Decodes a Zipkin v2 JSON list of spans.
pub fn decode_zipkin(data: &[u8]) -> Result<Vec<zipkin::Span>, IngestError> {
    from_json(data, "Zipkin v2 JSON")
}

fn from_json<T: serde::de::DeserializeOwned>(data: &[u8], what: &str) -> Result<T, IngestError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(IngestError::Malformed(format!("request body is empty: expected {what}")));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path == "?" {
            IngestError::Malformed(format!("request body is not valid {what}: {inner}"))
        } else {
            IngestError::Malformed(format!("request body is not valid {what}: at {path}: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| IngestError::Malformed(format!("request body is not valid {what}: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};

    fn check_json(body: &str, expected: Expect) {
        let actual = match decode_otlp(body.as_bytes(), Encoding::Json) {
            Ok(request) => format!("{request:?}"),
            Err(e) => format!("error: {e}"),
        };
        expected.assert_eq(&actual);
    }

    #[test]
    fn json_errors_name_the_field() {
        check_json(
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#,
            expect![[
                r#"error: request body is not valid OTLP JSON: at resourceSpans[0].scopeSpans[0].spans[0].traceId: "xyz" is not a hex id at line 1 column 60"#
            ]],
        );
        check_json(
            r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":true}]}]}]}"#,
            expect![
                "error: request body is not valid OTLP JSON: at resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: invalid type: boolean `true`, expected an unsigned 64-bit integer as a number or a decimal string at line 1 column 68"
            ],
        );
        check_json(
            r#"{"resourceSpans": 5}"#,
            expect![[
                r#"error: request body is not valid OTLP JSON: at resourceSpans: invalid type: integer `5`, expected a sequence at line 1 column 19"#
            ]],
        );
        check_json("", expect![[r#"error: request body is empty: expected OTLP JSON"#]]);
        check_json(
            r#"{"resourceSpans": [] "#,
            expect![
                "error: request body is not valid OTLP JSON: EOF while parsing an object at line 1 column 21"
            ],
        );
    }

    #[test]
    fn json_follows_the_otlp_rules() {
        // Hex ids, 64-bit integers as strings or numbers, enums as integers or names,
        // snake_case accepted, unknown fields ignored.
        let body = r#"{"resource_spans":[{"scopeSpans":[{"spans":[{
            "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
            "startTimeUnixNano":"1544712660000000000","end_time_unix_nano":1544712661000000000,
            "kind":"SPAN_KIND_SERVER","status":{"code":2},"futureField":{"x":1},
            "attributes":[{"key":"n","value":{"intValue":"9007199254740993"}},
                          {"key":"d","value":{"doubleValue":"NaN"}},
                          {"key":"b","value":{"bytesValue":"aGk="}}]}]}]}]}"#;
        let request = decode_otlp(body.as_bytes(), Encoding::Json).unwrap();
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id[0], 0x5b);
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, 2);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        use threadline_proto::opentelemetry::proto::common::v1::any_value::Value;
        let values: Vec<_> =
            span.attributes.iter().map(|kv| kv.value.clone().unwrap().value.unwrap()).collect();
        assert_eq!(values[0], Value::IntValue(9_007_199_254_740_993));
        assert!(matches!(values[1], Value::DoubleValue(d) if d.is_nan()));
        assert_eq!(values[2], Value::BytesValue(b"hi".to_vec()));
    }

    #[test]
    fn gzip_output_is_capped() {
        use flate2::Compression;
        use flate2::write::GzEncoder;
        use std::io::Write as _;
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&vec![0u8; 10 << 20]).unwrap();
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 64 << 10);
        assert_eq!(
            gunzip_capped(&bomb, 1 << 20),
            Err(IngestError::TooLarge { what: "decompressed request body", limit: 1 << 20 })
        );
        assert_eq!(gunzip_capped(&bomb, 10 << 20).unwrap().len(), 10 << 20);
        assert!(matches!(gunzip_capped(b"not gzip", 100), Err(IngestError::Malformed(_))));
    }

    #[test]
    fn content_types_and_encodings() {
        assert_eq!(
            Encoding::from_content_type(Some("application/json; charset=utf-8")),
            Ok(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type(Some("text/plain")),
            Err(IngestError::UnsupportedContentType("text/plain".into()))
        );
        assert_eq!(is_gzip(Some("GZIP")), Ok(true));
        assert_eq!(is_gzip(Some("br")), Err(IngestError::UnsupportedEncoding("br".into())));
    }
}
