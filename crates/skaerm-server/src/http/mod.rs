//! The HTTP surface (see `HTTP_API.md`): staff session, visits, the citizen link exchange,
//! signalling, metrics, the ops view and the web client's pages, behind security headers.

pub mod accounts;
pub mod audit;
pub mod body;
pub mod calendar_feed;
pub mod client_ip;
pub mod csrf;
pub mod devices;
pub mod guest_links;
pub mod join;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod problem;
pub mod reports;
pub mod security;
pub mod series;
pub mod session;
pub mod sso;
pub mod tls;
pub mod visits;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

/// Largest JSON body accepted by the API.
const MAX_BODY: usize = 16 * 1024;

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/session", post(session::login).delete(session::logout))
        .route("/api/session/refresh", post(session::refresh))
        .route("/api/me", get(session::me))
        .route("/api/admin/audit", get(audit::export))
        .route(
            "/api/admin/accounts",
            get(accounts::list).post(accounts::create),
        )
        .route(
            "/api/admin/accounts/{username}/roles",
            axum::routing::put(accounts::set_roles),
        )
        .route("/api/sso/providers", get(sso::providers))
        .route("/api/device/pairing", post(devices::request_pairing))
        .route("/api/device/me", get(devices::device_me))
        .route("/api/device/call", get(devices::device_call))
        .route("/api/devices", get(devices::list))
        .route("/api/devices/pair", post(devices::pair))
        .route("/api/devices/{id}", axum::routing::delete(devices::unpair))
        .route("/api/devices/{id}/call", post(devices::call))
        .route("/auth/oidc/{provider}/login", get(sso::login))
        .route("/auth/oidc/{provider}/callback", get(sso::callback))
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
        .route(
            "/api/visits/{id}/guest-links",
            post(guest_links::issue).get(guest_links::list),
        )
        .route(
            "/api/visits/{id}/guest-links/{link_id}",
            delete(guest_links::revoke),
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
        .route("/api/ops/calls", get(ops::calls))
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state.clone());
    let public_origin: std::sync::Arc<str> = csrf::origin_of(&state.public_url)
        .unwrap_or_default()
        .into();
    let app = Router::new()
        .merge(api)
        .merge(state.sfu.router())
        .merge(pages::router())
        .layer(axum::middleware::from_fn(move |request, next| {
            csrf::guard(public_origin.clone(), request, next)
        }));
    security::apply(app, state.tls)
}
