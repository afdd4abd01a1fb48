//! The HTTP surface (see `HTTP_API.md`): staff session, visits, the citizen link exchange,
//! signalling, metrics, the ops view and the web client's pages, behind security headers.

pub mod join;
pub mod metrics;
pub mod ops;
pub mod pages;
pub mod problem;
pub mod security;
pub mod session;
pub mod visits;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

/// Largest JSON body accepted by the API.
const MAX_BODY: usize = 16 * 1024;

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/session", post(session::login).delete(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/visits", get(visits::list))
        .route("/api/visits/{id}", get(visits::get_one))
        .route("/api/visits/{id}/start", post(visits::start))
        .route("/api/visits/{id}/media-token", post(visits::media_token))
        .route("/api/visits/{id}/end", post(visits::end))
        .route("/api/visits/{id}/citizen-link", post(visits::citizen_link))
        .route("/api/join/{link}", post(join::exchange))
        .route("/api/ops/calls", get(ops::calls))
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state.clone());
    let app = Router::new()
        .merge(api)
        .merge(state.sfu.router())
        .merge(pages::router());
    security::apply(app)
}
