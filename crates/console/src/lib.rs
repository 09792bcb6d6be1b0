//! The web console, served at `/console/` from assets embedded in the binary: no build step,
//! no CDN, nothing fetched from the internet. The pages are the project's own HTML, CSS and
//! JavaScript; they talk to the same AWS JSON API as every SDK (`POST /` with
//! `X-Amz-Target`), authenticated by the console session of the `lakehose-auth` crate when
//! keys are configured (cookie + `X-CSRF-Token` header on every call).
//!
//! Invariants:
//! - Every response carries a strict Content-Security-Policy (scripts and styles from this
//!   origin only, no inline script, no framing), `X-Content-Type-Options: nosniff` and
//!   `Referrer-Policy: no-referrer`; pages cannot load anything from elsewhere.
//! - Assets are immutable per build and served with their exact content type.

pub mod api;
pub mod dashboards;
pub mod history;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The security headers every console response carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The embedded files: (path under `/console/`, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/api.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/ui.js"),
    ),
    (
        "chart.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/chart.js"),
    ),
    (
        "streams.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/streams.js"),
    ),
    (
        "form.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/form.js"),
    ),
    (
        "catalog.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/catalog.js"),
    ),
    (
        "sql.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/sql.js"),
    ),
    (
        "dashboards.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/dashboards.js"),
    ),
    (
        "apps.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/apps.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
];

/// The console's routes: `/console` (redirect), `/console/` and its assets.
pub fn router() -> Router {
    let mut router = Router::new().route(
        "/console",
        get(|| async { Redirect::permanent("/console/") }),
    );
    for (path, content_type, body) in ASSETS {
        router = router.route(
            &format!("/console/{path}"),
            get(move || async move { asset(content_type, body) }),
        );
    }
    router
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
