//! Staff endpoints for recurring series: planning a series (RFC 5545 RRULE anchored at a
//! local Copenhagen time), reading it with its materialised visits, "this and following"
//! edits, and one citizen link for the whole series. "This one" edits are the visit
//! endpoints (`move`, `cancel`) applied to an occurrence.

use crate::http::body::Body;
use crate::http::join::{CitizenLink, link_url};
use crate::http::problem::Problem;
use crate::http::session::StaffSession;
use crate::http::visits::{VisitView, views};
use crate::ids::IdInto;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use skaerm_auth::audit::{AuditAction, AuditEvent};
use skaerm_auth::citizen_link::CitizenLinkSecret;
use skaerm_scheduling::{
    CitizenId, LegalBasis, NewSeries, Recurrence, Series, SeriesEdit, SeriesId, StaffId,
    StoreError, Visit,
};
use utoipa::ToSchema;
use uuid::Uuid;

/// A series as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesView {
    id: SeriesId,
    legal_basis: LegalBasis,
    legal_basis_label: &'static str,
    purpose: String,
    staff_id: StaffId,
    co_host_id: Option<StaffId>,
    citizen_id: CitizenId,
    duration_minutes: u32,
    /// First occurrence, local time in Europe/Copenhagen (`2026-12-07T09:00:00`).
    #[schema(value_type = String)]
    start_local: NaiveDateTime,
    time_zone: &'static str,
    /// RFC 5545 RRULE value.
    rrule: String,
    /// Occurrences from here on belong to a later series (after a "this and following" edit).
    ends_before: Option<DateTime<Utc>>,
    /// Visits exist for occurrences before this instant.
    materialised_until: DateTime<Utc>,
}

/// A series with its materialised visits.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesEnvelope {
    series: SeriesView,
    visits: Vec<VisitView>,
}

fn view(series: &Series) -> SeriesView {
    SeriesView {
        id: series.id,
        legal_basis: series.legal_basis,
        legal_basis_label: series.legal_basis.label_da(),
        purpose: series.purpose.clone(),
        staff_id: series.staff_id,
        co_host_id: series.co_host_id,
        citizen_id: series.citizen_id,
        duration_minutes: series.duration_minutes,
        start_local: series.recurrence.dtstart_local,
        time_zone: "Europe/Copenhagen",
        rrule: series.recurrence.rrule.clone(),
        ends_before: series.ends_before,
        materialised_until: series.materialised_until,
    }
}

async fn envelope(
    state: &AppState,
    series: &Series,
    visits: Vec<Visit>,
) -> Result<Json<SeriesEnvelope>, Problem> {
    Ok(Json(SeriesEnvelope {
        series: view(series),
        visits: views(state, visits).await?,
    }))
}

/// A new series; the caller owns it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSeries {
    legal_basis: LegalBasis,
    #[serde(default)]
    purpose: String,
    citizen_id: CitizenId,
    co_host_id: Option<StaffId>,
    /// First occurrence, local Copenhagen time, e.g. `2026-12-07T09:00:00`.
    #[schema(value_type = String)]
    start_local: NaiveDateTime,
    /// 1–480.
    duration_minutes: u32,
    /// RFC 5545 RRULE, e.g. `FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;COUNT=10` (UNTIL in UTC).
    rrule: String,
}

/// Plans a series; its occurrences up to the horizon become visits. All or nothing: if any
/// occurrence would double-book, `409 code=conflict` names the visit and nothing is created.
#[utoipa::path(post, path = "/api/series", tag = "series", request_body = CreateSeries,
    responses((status = 201, body = SeriesEnvelope),
              (status = 409, description = "`conflict`"),
              (status = 422, description = "`invalid` or `invalid_rrule`")))]
pub async fn create(
    State(state): State<AppState>,
    session: StaffSession,
    Body(body): Body<CreateSeries>,
) -> Result<impl IntoResponse, Problem> {
    let recurrence = Recurrence::new(body.start_local, &body.rrule)
        .map_err(|e| Problem::from(StoreError::Recurrence(e)))?;
    let (series, visits) = state
        .services
        .store
        .create_series(
            NewSeries {
                tenant_id: session.tenant,
                legal_basis: body.legal_basis,
                purpose: body.purpose,
                staff_id: session.staff,
                co_host_id: body.co_host_id,
                citizen_id: body.citizen_id,
                duration_minutes: body.duration_minutes,
                recurrence,
            },
            Utc::now(),
        )
        .await?;
    tracing::info!(series = %series.id, staff = %session.staff, visits = visits.len(), "series planned");
    audit_series(&state, &session, AuditAction::VisitCreated, &series.id).await?;
    Ok((
        StatusCode::CREATED,
        envelope(&state, &series, visits).await?,
    ))
}

async fn owned_series(
    state: &AppState,
    session: &StaffSession,
    id: &str,
) -> Result<Series, Problem> {
    let id = Uuid::parse_str(id).map_err(|_| Problem::not_found())?;
    let series = state.services.store.get_series(SeriesId(id)).await?;
    if series.tenant_id != session.tenant || series.staff_id != session.staff {
        return Err(Problem::not_found());
    }
    Ok(series)
}

/// A series and its visits.
#[utoipa::path(get, path = "/api/series/{id}", tag = "series",
    params(("id" = String, Path, description = "series id")),
    responses((status = 200, body = SeriesEnvelope), (status = 404, description = "`not_found`")))]
pub async fn get_one(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<SeriesEnvelope>, Problem> {
    let series = owned_series(&state, &session, &id).await?;
    let visits = state.services.store.series_visits(series.id).await?;
    envelope(&state, &series, visits).await
}

/// "This and following": changes from one occurrence on. Absent fields keep their value;
/// `co_host_id: null` removes the co-host.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditSeries {
    /// The original start of the first occurrence to change (its `occurrence_start`).
    from_occurrence: DateTime<Utc>,
    legal_basis: Option<LegalBasis>,
    purpose: Option<String>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<StaffId>)]
    co_host_id: Option<Option<StaffId>>,
    duration_minutes: Option<u32>,
    /// New local start time, e.g. `11:30:00`.
    #[schema(value_type = Option<String>)]
    start_time: Option<NaiveTime>,
    /// New RRULE.
    rrule: Option<String>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Edits the series from one occurrence on, in one transaction: the series ends before that
/// occurrence and a new series (returned) continues with the changes. On a conflict nothing
/// changes.
#[utoipa::path(post, path = "/api/series/{id}/edit", tag = "series", request_body = EditSeries,
    params(("id" = String, Path, description = "series id")),
    responses((status = 200, body = SeriesEnvelope),
              (status = 409, description = "`conflict`"),
              (status = 422, description = "`invalid` or `invalid_rrule`")))]
pub async fn edit(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
    Body(body): Body<EditSeries>,
) -> Result<Json<SeriesEnvelope>, Problem> {
    let series = owned_series(&state, &session, &id).await?;
    let (new, visits) = state
        .services
        .store
        .edit_series_from(
            series.id,
            body.from_occurrence,
            SeriesEdit {
                legal_basis: body.legal_basis,
                purpose: body.purpose,
                co_host_id: body.co_host_id,
                duration_minutes: body.duration_minutes,
                start_time: body.start_time,
                rrule: body.rrule,
            },
            Utc::now(),
        )
        .await?;
    tracing::info!(old = %series.id, new = %new.id, staff = %session.staff, "series edited from an occurrence");
    audit_series(&state, &session, AuditAction::VisitChanged, &new.id).await?;
    envelope(&state, &new, visits).await
}

/// Issues one citizen link for the whole series (it opens the next visit that has not ended)
/// and revokes the previous one.
#[utoipa::path(post, path = "/api/series/{id}/citizen-link", tag = "series",
    params(("id" = String, Path, description = "series id")),
    responses((status = 200, body = CitizenLink)))]
pub async fn citizen_link(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<CitizenLink>, Problem> {
    let series = owned_series(&state, &session, &id).await?;
    let secret = CitizenLinkSecret::generate();
    state
        .services
        .store
        .set_series_citizen_link(series.id, secret.hash().0, Utc::now())
        .await?;
    tracing::info!(series = %series.id, staff = %session.staff, "series citizen link issued");
    audit_series(&state, &session, AuditAction::LinkIssued, &series.id).await?;
    Ok(Json(CitizenLink {
        url: link_url(&state, &secret),
        expires_at: None,
    }))
}

/// Revokes the series' citizen link.
#[utoipa::path(delete, path = "/api/series/{id}/citizen-link", tag = "series",
    params(("id" = String, Path, description = "series id")),
    responses((status = 204, description = "revoked")))]
pub async fn revoke_citizen_link(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let series = owned_series(&state, &session, &id).await?;
    state
        .services
        .store
        .revoke_series_citizen_links(series.id, Utc::now())
        .await?;
    audit_series(&state, &session, AuditAction::LinkRevoked, &series.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Records a series action in the audit log (the series is named in the detail; a series has
/// no visit of its own to be the subject).
async fn audit_series(
    state: &AppState,
    session: &StaffSession,
    action: AuditAction,
    series: &impl std::fmt::Display,
) -> Result<(), Problem> {
    let event = AuditEvent::staff(session.tenant.id_into(), session.staff.0, action)
        .from_ip(session.client_ip)
        .detail(&format!("series {series}"));
    Ok(crate::audit::record_event(&state.services, event).await?)
}

/// Series: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/series", post(create))
        .route("/api/series/{id}", get(get_one))
        .route("/api/series/{id}/edit", post(edit))
        .route(
            "/api/series/{id}/citizen-link",
            post(citizen_link).delete(revoke_citizen_link),
        )
}
