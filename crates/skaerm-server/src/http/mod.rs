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
pub mod listener;
pub mod metrics;
pub mod monthly_reports;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod problem;
pub mod security;
pub mod series;
pub mod session;
pub mod sso;
pub mod tls;
pub mod visits;

use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

/// Largest JSON body accepted by the API.
const MAX_BODY: usize = 16 * 1024;

/// The whole application router: each area's `routes()`, the relay's signalling and the
/// pages, behind the body limit, the CSRF guard and the security headers.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(session::routes())
        .merge(audit::routes())
        .merge(accounts::routes())
        .merge(sso::routes())
        .merge(devices::routes())
        .merge(visits::routes())
        .merge(guest_links::routes())
        .merge(series::routes())
        .merge(monthly_reports::routes())
        .merge(calendar_feed::routes())
        .merge(openapi::routes())
        .merge(join::routes())
        .merge(ops::routes())
        .merge(metrics::routes())
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state.clone());
    let public_origin: std::sync::Arc<str> = csrf::origin_of(&state.public_url)
        .unwrap_or_default()
        .into();
    // The WebSocket cap per address counts the same client address as the HTTP limits.
    let trusted = state.trusted_proxies.clone();
    let signalling = state
        .sfu
        .router_with_client_ip(std::sync::Arc::new(move |parts| {
            client_ip::from_parts_with(parts, &trusted)
        }));
    let app = Router::new()
        .merge(api)
        .merge(signalling)
        .merge(pages::router())
        .layer(axum::middleware::from_fn(move |request, next| {
            csrf::guard(public_origin.clone(), request, next)
        }));
    security::apply(app, state.tls)
}
