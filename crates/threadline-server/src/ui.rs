//! The web UI: the built files of `ui/` (`ui/dist`, committed, and checked against a fresh
//! build by the test command), embedded in the binary and served at `/` and `/assets/`.
//! They hold no data, so they are served without the API token; the UI asks for the token
//! when the API answers 401.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};

static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../ui/dist");

/// Paths served without a token.
pub fn is_public(path: &str) -> bool {
    path == "/" || path == "/index.html" || path.starts_with("/assets/")
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{*path}", get(asset))
}

/// The page itself: never cached, so a new build is picked up on reload.
async fn index() -> Response {
    serve("index.html", "no-cache")
}

/// Built assets carry a content hash in their names: cached for good.
async fn asset(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    serve(&format!("assets/{path}"), "public, max-age=31536000, immutable")
}

fn serve(path: &str, cache: &'static str) -> Response {
    let Some(file) = DIST.get_file(path) else {
        return (StatusCode::NOT_FOUND, "no such file in the UI\n").into_response();
    };
    let mut response = file.contents().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
