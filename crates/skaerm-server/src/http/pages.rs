//! The web client's pages and assets, embedded in the binary (read from `web-client/` on disk
//! in debug builds, so front-end edits need no rebuild).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web-client/"]
struct WebClient;

/// Routes for pages and assets.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { file("index.html") }))
        .route(
            "/visit/{id}",
            get(|_: Path<String>| async { file("visit.html") }),
        )
        .route(
            "/j/{link}",
            get(|_: Path<String>| async { file("join.html") }),
        )
        .route("/tablet", get(|| async { file("tablet.html") }))
        .route("/ops", get(|| async { file("ops.html") }))
        .route("/assets/{*path}", get(asset))
        .route("/favicon.ico", get(|| async { file("assets/icon.svg") }))
}

async fn asset(Path(path): Path<String>) -> Response {
    file(&format!("assets/{path}"))
}

fn file(path: &str) -> Response {
    // rust-embed refuses paths that leave the folder; `..` never reaches the disk.
    let Some(content) = WebClient::get(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = content.metadata.mimetype();
    let mut response = content.data.into_owned().into_response();
    if let Ok(value) = HeaderValue::from_str(mime) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    // Pages are small and change with releases: always revalidate.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
