//! Sending spans to an OTLP endpoint as an SDK's exporter would: protobuf over HTTP
//! (`/v1/traces`) or gRPC (`TraceService/Export`), with an optional bearer token.

use prost::Message as _;
use threadline_core::span::Span;
use threadline_proto::opentelemetry::proto::collector::trace::v1::trace_service_client::TraceServiceClient;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "http" => Ok(Protocol::Http),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(format!("protocol {other:?} is not one of http, grpc")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot reach {endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    /// The receiver answered but did not take the spans.
    #[error("refused ({status}): {message}")]
    Refused {
        status: String,
        message: String,
        /// Worth sending again later (429, 503, `UNAVAILABLE`, `RESOURCE_EXHAUSTED`).
        retryable: bool,
    },
}

/// One connection to an OTLP receiver.
#[derive(Debug, Clone)]
pub struct Exporter {
    endpoint: String,
    token: Option<String>,
    target: Target,
}

#[derive(Debug, Clone)]
enum Target {
    Http(reqwest::Client),
    Grpc(TraceServiceClient<tonic::transport::Channel>),
}

impl Exporter {
    /// `endpoint`: `http://host:4318` (HTTP; `/v1/traces` is added when no path is given) or
    /// `http://host:4317` (gRPC).
    pub async fn connect(
        protocol: Protocol,
        endpoint: &str,
        token: Option<String>,
    ) -> Result<Self, ExportError> {
        let transport = |e: &dyn std::fmt::Display| ExportError::Transport {
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        };
        let (endpoint, target) = match protocol {
            Protocol::Http => {
                let trimmed = endpoint.trim_end_matches('/');
                let has_path = trimmed.splitn(4, '/').nth(3).is_some();
                let url =
                    if has_path { trimmed.to_owned() } else { format!("{trimmed}/v1/traces") };
                let client = reqwest::Client::builder().build().map_err(|e| transport(&e))?;
                (url, Target::Http(client))
            }
            Protocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
                    .map_err(|e| transport(&e))?
                    .connect()
                    .await
                    .map_err(|e| transport(&e))?;
                (endpoint.to_owned(), Target::Grpc(TraceServiceClient::new(channel)))
            }
        };
        Ok(Self { endpoint, token, target })
    }

    /// Sends `spans` in one request.
    pub async fn export(&mut self, spans: &[Span]) -> Result<(), ExportError> {
        let request = crate::otlp::request(spans);
        match &mut self.target {
            Target::Http(client) => {
                let mut builder = client
                    .post(&self.endpoint)
                    .header("content-type", "application/x-protobuf")
                    .body(request.encode_to_vec());
                if let Some(token) = &self.token {
                    builder = builder.bearer_auth(token);
                }
                let response = builder.send().await.map_err(|e| ExportError::Transport {
                    endpoint: self.endpoint.clone(),
                    message: e.to_string(),
                })?;
                let status = response.status();
                if status.is_success() {
                    return Ok(());
                }
                let message = response.text().await.unwrap_or_default();
                Err(ExportError::Refused {
                    status: status.to_string(),
                    message,
                    retryable: matches!(status.as_u16(), 429 | 502 | 503 | 504),
                })
            }
            Target::Grpc(client) => {
                let mut request = tonic::Request::new(request);
                if let Some(token) = &self.token
                    && let Ok(value) = format!("Bearer {token}").parse()
                {
                    request.metadata_mut().insert("authorization", value);
                }
                match client.export(request).await {
                    Ok(_) => Ok(()),
                    Err(status) => Err(ExportError::Refused {
                        status: format!("{:?}", status.code()),
                        message: status.message().to_owned(),
                        retryable: matches!(
                            status.code(),
                            tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                        ),
                    }),
                }
            }
        }
    }
}
