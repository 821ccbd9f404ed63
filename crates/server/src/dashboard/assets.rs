//! The dashboard's stylesheet and script, compiled into the binary: nothing
//! is fetched from anywhere at run time.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Path of the stylesheet; its name carries the release version so a new
/// release is never served from a stale cache.
pub const CSS_PATH: &str = concat!("/assets/app-", env!("CARGO_PKG_VERSION"), ".css");
/// Path of the script.
pub const JS_PATH: &str = concat!("/assets/app-", env!("CARGO_PKG_VERSION"), ".js");

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");
const SERVICE_WORKER: &str = include_str!("static/sw.js");

/// `GET /sw.js`: the service worker that shows Web Push notifications. It
/// is served from the root so its scope covers the whole dashboard, and
/// revalidated on every load so a new release replaces it.
pub async fn service_worker() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SERVICE_WORKER,
    )
        .into_response()
}

/// `GET /assets/{file}`: the embedded stylesheet or script.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match format!("/assets/{file}") {
        p if p == CSS_PATH => (CSS, "text/css; charset=utf-8"),
        p if p == JS_PATH => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
