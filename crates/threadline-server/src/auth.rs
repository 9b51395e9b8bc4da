//! Optional bearer tokens: one for the receivers, one for the HTTP API. Compared in constant
//! time; a missing or wrong token is 401 (HTTP, with `WWW-Authenticate: Bearer`) or
//! `UNAUTHENTICATED` (gRPC), and says which.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Why a request is refused, or `None` when its token is right.
fn refusal(authorization: Option<&str>, token: &str) -> Option<&'static str> {
    let Some(value) = authorization else {
        return Some("an Authorization: Bearer token is required");
    };
    let Some(given) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))
    else {
        return Some("the Authorization header must be Bearer <token>");
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    // Constant time over the expected token's length.
    let mut diff = u8::from(a.len() != b.len());
    for (i, byte) in b.iter().enumerate() {
        diff |= byte ^ a.get(i).copied().unwrap_or(0);
    }
    (diff != 0).then_some("the bearer token is not valid")
}

fn header_value(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
}

/// An axum middleware requiring `token` on every request but the health probes and the UI's
/// files (which hold no data).
pub async fn require(token: Arc<str>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/readyz" || crate::ui::is_public(path) {
        return next.run(request).await;
    }
    match refusal(header_value(request.headers()), &token) {
        None => next.run(request).await,
        Some(message) => {
            let body =
                serde_json::json!({ "error": { "code": "unauthenticated", "message": message } });
            let mut response = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// A tonic interceptor requiring `token` (when there is one) in the `authorization` metadata.
pub fn grpc(
    token: Option<Arc<str>>,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |request: tonic::Request<()>| {
        let Some(token) = &token else { return Ok(request) };
        let value = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        match refusal(value, token) {
            None => Ok(request),
            Some(message) => Err(tonic::Status::unauthenticated(message)),
        }
    }
}

/// `router` behind `token`, when there is one.
pub fn guard(router: axum::Router, token: Option<&str>) -> axum::Router {
    match token {
        None => router,
        Some(token) => {
            let token: Arc<str> = Arc::from(token);
            router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
                require(Arc::clone(&token), request, next)
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refusal;

    #[test]
    fn only_the_exact_token_passes() {
        let token = "s3cret-token-0123456789";
        assert_eq!(refusal(Some("Bearer s3cret-token-0123456789"), token), None);
        assert!(refusal(None, token).is_some());
        assert!(refusal(Some("Basic abc"), token).is_some());
        assert!(refusal(Some("Bearer s3cret-token-012345678"), token).is_some());
        assert!(refusal(Some("Bearer s3cret-token-01234567890"), token).is_some());
        assert!(refusal(Some("Bearer "), token).is_some());
    }
}
