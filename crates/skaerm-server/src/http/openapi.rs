//! The OpenAPI document of the scheduling API, generated from the handlers' annotations and
//! the request/response types (`utoipa`), served at `GET /api/openapi.json`.

use crate::http::{calendar_feed, guest_links, monthly_reports, series, visits};
use axum::Json;
use utoipa::OpenApi;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Skærm scheduling API", description = "Visits under SEL §85/§83/§83a/§86 and SUL §138, series, reports, calendar feeds. Errors are RFC 9457 application/problem+json with a stable `code`."),
    paths(
        visits::list, visits::create, visits::get_one, visits::move_visit, visits::cancel,
        visits::start, visits::media_token, visits::end, visits::citizen_link,
        visits::revoke_citizen_link,
        guest_links::issue, guest_links::list, guest_links::revoke,
        series::create, series::get_one, series::edit, series::citizen_link,
        series::revoke_citizen_link,
        monthly_reports::monthly,
        calendar_feed::issue, calendar_feed::revoke, calendar_feed::feed,
    ),
    tags((name = "visits"), (name = "series"), (name = "reports"), (name = "calendar"))
)]
pub struct ApiDoc;

/// `GET /api/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The OpenAPI document: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<crate::state::AppState> {
    use axum::routing::get;
    axum::Router::new().route("/api/openapi.json", get(document))
}
