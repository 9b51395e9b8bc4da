//! Properties of decoding: OTLP protobuf and OTLP JSON carrying the same request yield the same
//! spans (and the same rejections), and no input of any kind makes a decoder panic.

#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use proptest::prelude::*;
use prost::Message as _;
use threadline_ingest::body::{Encoding, decode_otlp, decode_zipkin};
use threadline_ingest::convert::convert_otlp;
use threadline_testsuite::generate;

mod common;
use common::{Values, request_strategy};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn protobuf_and_json_decode_to_the_same_spans(request in request_strategy(Values::Json)) {
        let protobuf = request.encode_to_vec();
        let json = generate::otlp_json(&request).to_string();
        let from_protobuf = convert_otlp(decode_otlp(&protobuf, Encoding::Protobuf).unwrap());
        let from_json = convert_otlp(decode_otlp(json.as_bytes(), Encoding::Json).unwrap());
        prop_assert_eq!(&from_protobuf.spans, &from_json.spans);
        prop_assert_eq!(&from_protobuf.rejections, &from_json.rejections);
        // And the protobuf decoding is lossless for what is kept.
        let valid = request.resource_spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans).count();
        prop_assert_eq!(from_protobuf.spans.len() as u64 + from_protobuf.rejections.count, valid as u64);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_otlp(&bytes, Encoding::Protobuf).map(convert_otlp);
        let _ = decode_otlp(&bytes, Encoding::Json).map(convert_otlp);
        let _ = decode_zipkin(&bytes);
    }

    #[test]
    fn arbitrary_json_shapes_never_panic(text in "[\\[\\]{}\":,0-9a-zA-Z ]{0,200}") {
        let _ = decode_otlp(text.as_bytes(), Encoding::Json).map(convert_otlp);
        let _ = decode_zipkin(text.as_bytes()).map(threadline_ingest::zipkin::convert_zipkin);
    }
}
