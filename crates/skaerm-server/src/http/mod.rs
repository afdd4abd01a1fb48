//! The HTTP surface (see `HTTP_API.md`): staff session, visits, the citizen link exchange,
//! signalling, metrics and the web client's pages, behind security headers.

pub mod body;
pub mod calendar_feed;
pub mod join;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod problem;
pub mod reports;
pub mod security;
pub mod series;
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
        .route("/api/visits", get(visits::list).post(visits::create))
        .route("/api/visits/{id}", get(visits::get_one))
        .route("/api/visits/{id}/move", post(visits::move_visit))
        .route("/api/visits/{id}/cancel", post(visits::cancel))
        .route("/api/visits/{id}/start", post(visits::start))
        .route("/api/visits/{id}/media-token", post(visits::media_token))
        .route("/api/visits/{id}/end", post(visits::end))
        .route(
            "/api/visits/{id}/citizen-link",
            post(visits::citizen_link).delete(visits::revoke_citizen_link),
        )
        .route("/api/series", post(series::create))
        .route("/api/series/{id}", get(series::get_one))
        .route("/api/series/{id}/edit", post(series::edit))
        .route(
            "/api/series/{id}/citizen-link",
            post(series::citizen_link).delete(series::revoke_citizen_link),
        )
        .route("/api/reports/monthly", get(reports::monthly))
        .route(
            "/api/calendar-feed",
            post(calendar_feed::issue).delete(calendar_feed::revoke),
        )
        .route("/calendar/{token}", get(calendar_feed::feed))
        .route("/api/openapi.json", get(openapi::document))
        .route("/api/join/{link}", post(join::exchange))
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
