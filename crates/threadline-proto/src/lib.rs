//! Wire types of every input format Threadline reads. No logic beyond shape: decoding rules
//! and validation live in `threadline-ingest`.
//!
//! - [`opentelemetry`]: OTLP protobuf messages and the gRPC `TraceService` client, generated from
//!   the `.proto` files in `proto/` and committed (see `tests/codegen.rs`). The server side is
//!   written out in `threadline-ingest::grpc`, which reads requests as bytes.
//! - [`otlp_json`]: the OTLP/HTTP JSON encoding of the same messages.
//! - [`zipkin`]: Zipkin v2 JSON spans.
//! - [`google::rpc`]: `google.rpc.Status` and `RetryInfo`, used in error answers.

pub mod codec;
pub mod otlp_json;
pub mod zipkin;

/// OTLP protobuf messages, in modules that mirror their protobuf packages.
#[allow(
    unused_qualifications,
    missing_debug_implementations,
    clippy::all,
    reason = "generated code"
)]
pub mod opentelemetry {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                include!("gen/opentelemetry.proto.common.v1.rs");
            }
        }
        pub mod resource {
            pub mod v1 {
                include!("gen/opentelemetry.proto.resource.v1.rs");
            }
        }
        pub mod trace {
            pub mod v1 {
                include!("gen/opentelemetry.proto.trace.v1.rs");
            }
        }
        pub mod collector {
            pub mod trace {
                pub mod v1 {
                    include!("gen/opentelemetry.proto.collector.trace.v1.rs");
                }
            }
        }
    }
}

/// `google.rpc` error model messages.
#[allow(unused_qualifications, clippy::all, reason = "generated code")]
pub mod google {
    pub mod rpc {
        include!("gen/google.rpc.rs");

        /// The type URL of [`RetryInfo`] inside [`Any`].
        pub const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";
    }
}
