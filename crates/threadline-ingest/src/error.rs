//! Ingest errors and the one place they become HTTP and gRPC statuses, following the OTLP
//! specification: bad data is not retryable (400 / `INVALID_ARGUMENT`), overload is
//! (429 or 503 with `Retry-After` / `UNAVAILABLE` with `RetryInfo`).

use std::time::Duration;

use prost::Message;
use threadline_proto::google::rpc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("unsupported content type {0:?}: expected application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content type {0:?}: expected application/json")]
    UnsupportedZipkinContentType(String),
    #[error("unsupported content encoding {0:?}: expected gzip or identity")]
    UnsupportedEncoding(String),
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    #[error("{0}")]
    Malformed(String),
    #[error("ingest queue is full: retry after {}s", .retry_after.as_secs())]
    Overloaded { retry_after: Duration },
    #[error("too many concurrent requests: retry after {}s", .retry_after.as_secs())]
    Busy { retry_after: Duration },
    #[error("storing the spans failed: {0}")]
    Stage(String),
    #[error("server is shutting down")]
    ShuttingDown,
}

impl IngestError {
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            IngestError::UnsupportedContentType(_)
            | IngestError::UnsupportedZipkinContentType(_)
            | IngestError::UnsupportedEncoding(_) => S::UNSUPPORTED_MEDIA_TYPE,
            IngestError::TooLarge { .. } => S::PAYLOAD_TOO_LARGE,
            IngestError::Malformed(_) => S::BAD_REQUEST,
            IngestError::Overloaded { .. } => S::TOO_MANY_REQUESTS,
            IngestError::Busy { .. } | IngestError::Stage(_) | IngestError::ShuttingDown => {
                S::SERVICE_UNAVAILABLE
            }
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            IngestError::UnsupportedContentType(_)
            | IngestError::UnsupportedZipkinContentType(_)
            | IngestError::UnsupportedEncoding(_)
            | IngestError::Malformed(_) => C::InvalidArgument,
            IngestError::TooLarge { .. } => C::ResourceExhausted,
            IngestError::Overloaded { .. }
            | IngestError::Busy { .. }
            | IngestError::Stage(_)
            | IngestError::ShuttingDown => C::Unavailable,
        }
    }

    /// How long the client should wait before retrying, for errors that are worth a retry.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            IngestError::Overloaded { retry_after } | IngestError::Busy { retry_after } => {
                Some(*retry_after)
            }
            IngestError::Stage(_) | IngestError::ShuttingDown => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The error as a gRPC status, with `RetryInfo` details when a retry makes sense.
    pub fn to_grpc_status(&self) -> tonic::Status {
        let code = self.grpc_code();
        let message = self.to_string();
        match self.retry_after() {
            Some(delay) => {
                let details = self.rpc_status(Some(delay)).encode_to_vec();
                tonic::Status::with_details(code, message, details.into())
            }
            None => tonic::Status::new(code, message),
        }
    }

    /// The `google.rpc.Status` body OTLP/HTTP servers send with an error.
    pub fn rpc_status(&self, retry_after: Option<Duration>) -> rpc::Status {
        let details = retry_after
            .map(|delay| rpc::Any {
                type_url: rpc::RETRY_INFO_TYPE_URL.to_owned(),
                value: rpc::RetryInfo {
                    retry_delay: Some(rpc::Duration {
                        seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                        nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
                    }),
                }
                .encode_to_vec(),
            })
            .into_iter()
            .collect();
        rpc::Status { code: self.grpc_code() as i32, message: self.to_string(), details }
    }
}
