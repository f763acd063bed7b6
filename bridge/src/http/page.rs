//! The web page's static files at `/` (MIME types from the file names,
//! `application/wasm` included; compression by the app's layer), with the
//! single-page-app fallback to `index.html`. Without a built page, `/` says
//! how to build one, and the API works all the same.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tower_http::services::{ServeDir, ServeFile};

use crate::http::AppState;

/// What `/` answers when no page is built.
pub(crate) const NO_PAGE_HTML: &str = "<!doctype html>
<html lang=\"en\"><head><meta charset=\"utf-8\"><title>ecoshard bridge</title></head>
<body>
<h1>ecoshard bridge</h1>
<p>The bridge runs, but the web page is not built.</p>
<p>Build it with <code>cargo xtask dist</code> (it writes <code>target/dist</code>), then restart the bridge,
or point it at a built page with <code>ecoshard serve --web-dir DIR</code>.</p>
<p>The HTTP API works now: try <a href=\"/api/health\">/api/health</a>,
<a href=\"/api/cluster\">/api/cluster</a> and <a href=\"/api/stats\">/api/stats</a> (docs/api.md).</p>
</body></html>
";

/// `dir` when it holds an `index.html`.
pub(crate) fn page_dir(dir: Option<&Path>) -> Option<PathBuf> {
    let dir = dir?;
    if dir.join("index.html").is_file() {
        Some(dir.to_path_buf())
    } else {
        tracing::warn!(
            "{} has no index.html: serving a note at / instead of the page",
            dir.display()
        );
        None
    }
}

/// Adds the page (or the note) as the fallback of `router`.
pub(crate) fn mount(router: Router<AppState>, dir: Option<&Path>) -> Router<AppState> {
    match page_dir(dir) {
        Some(dir) => router.fallback_service(
            ServeDir::new(&dir)
                .precompressed_br()
                .precompressed_gzip()
                .fallback(ServeFile::new(dir.join("index.html"))),
        ),
        None => router.fallback(no_page),
    }
}

async fn no_page() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        NO_PAGE_HTML,
    )
}
