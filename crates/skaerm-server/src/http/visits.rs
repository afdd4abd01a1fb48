//! Staff endpoints for visits: listing (paginated), planning, moving, cancelling, starting and
//! ending with an outcome, media tokens for the call, and the citizen's link. Store errors map
//! to problem+json through `From<StoreError> for Problem` (`http::problem`).

use crate::http::body::Body;
use crate::http::join::{CitizenLink, link_url};
use crate::http::problem::{ErrorCode, Problem};
use crate::http::session::StaffSession;
use crate::ids::IdInto;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use skaerm_auth::audit::AuditAction;
use skaerm_auth::citizen_link::CitizenLinkSecret;
use skaerm_auth::tokens::{MediaGrantRequest, MediaRole};
use skaerm_scheduling::{
    CitizenId, EndedBy, LegalBasis, NewVisit, Outcome, SeriesId, StaffId, StoreError, Visit,
    VisitId, VisitQuery, VisitStatus, copenhagen_day_bounds, today_and_ahead,
};
use skaerm_sfu::protocol::EndReason;
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// A visit as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitView {
    id: VisitId,
    legal_basis: LegalBasis,
    /// Danish label of the legal basis.
    legal_basis_label: &'static str,
    purpose: String,
    staff_id: StaffId,
    co_host_id: Option<StaffId>,
    citizen: CitizenView,
    planned_start: DateTime<Utc>,
    duration_minutes: u32,
    planned_end: DateTime<Utc>,
    /// The state now (`ready` from 15 minutes before the planned start).
    status: VisitStatus,
    actual_start: Option<DateTime<Utc>>,
    actual_end: Option<DateTime<Utc>>,
    actual_duration_seconds: Option<i64>,
    /// `system` or the id of the staff member who ended it.
    ended_by: Option<String>,
    outcome_note: Option<String>,
    series_id: Option<SeriesId>,
    /// The occurrence's original start in its series.
    occurrence_start: Option<DateTime<Utc>>,
    /// Whether this occurrence was moved or skipped on its own.
    is_exception: bool,
}

/// A citizen as staff see them: a pseudonymous id and a display name.
#[derive(Debug, Serialize, ToSchema)]
pub struct CitizenView {
    id: CitizenId,
    display_name: String,
}

/// `{"visit": …}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitEnvelope {
    visit: VisitView,
}

/// A page of visits.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitList {
    visits: Vec<VisitView>,
    /// Pass as `offset` for the next page; absent on the last page.
    next_offset: Option<u32>,
}

/// Turns visits into views, looking up each citizen once.
pub(crate) async fn views(state: &AppState, visits: Vec<Visit>) -> Result<Vec<VisitView>, Problem> {
    let now = Utc::now();
    let mut names: HashMap<CitizenId, String> = HashMap::new();
    let mut out = Vec::with_capacity(visits.len());
    for visit in visits {
        let name = match names.get(&visit.citizen_id) {
            Some(name) => name.clone(),
            None => {
                let citizen = state.services.store.get_citizen(visit.citizen_id).await?;
                names.insert(visit.citizen_id, citizen.display_name.clone());
                citizen.display_name
            }
        };
        out.push(VisitView {
            id: visit.id,
            legal_basis: visit.legal_basis,
            legal_basis_label: visit.legal_basis.label_da(),
            purpose: visit.purpose.clone(),
            staff_id: visit.staff_id,
            co_host_id: visit.co_host_id,
            citizen: CitizenView {
                id: visit.citizen_id,
                display_name: name,
            },
            planned_start: visit.planned_start,
            duration_minutes: visit.duration_minutes,
            planned_end: visit.planned_end(),
            status: visit.status_at(now),
            actual_start: visit.actual_start,
            actual_end: visit.actual_end,
            actual_duration_seconds: visit.actual_duration().map(|d| d.num_seconds()),
            ended_by: visit.ended_by.map(EndedBy::code),
            outcome_note: visit.outcome_note.clone(),
            series_id: visit.series_id,
            occurrence_start: visit.occurrence_start,
            is_exception: visit.is_exception,
        });
    }
    Ok(out)
}

pub(crate) async fn one_view(state: &AppState, visit: Visit) -> Result<VisitView, Problem> {
    views(state, vec![visit])
        .await?
        .pop()
        .ok_or_else(|| Problem::internal("view of one visit was empty"))
}

async fn envelope(state: &AppState, visit: Visit) -> Result<Json<VisitEnvelope>, Problem> {
    Ok(Json(VisitEnvelope {
        visit: one_view(state, visit).await?,
    }))
}

/// Query of the visit list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// A Copenhagen calendar day, unless `from`/`to` are given. Without any of them: today, and
    /// late in the day the next 6 hours too (`today_and_ahead`).
    day: Option<NaiveDate>,
    /// Planned to start at or after (RFC 3339).
    from: Option<DateTime<Utc>>,
    /// Planned to start before (RFC 3339); at most 366 days after `from`.
    to: Option<DateTime<Utc>>,
    /// Page size, 1–500 (default 100).
    limit: Option<u32>,
    /// Rows to skip (from `next_offset`).
    offset: Option<u32>,
}

/// The caller's visits (as owner or co-host), earliest first, one page at a time.
#[utoipa::path(get, path = "/api/visits", tag = "visits", params(ListQuery),
    responses((status = 200, body = VisitList), (status = 401, description = "not logged in")))]
pub async fn list(
    State(state): State<AppState>,
    session: StaffSession,
    Query(query): Query<ListQuery>,
) -> Result<Json<VisitList>, Problem> {
    let (from, to) = match (query.from, query.to) {
        (Some(from), Some(to)) => (from, to),
        (None, None) => match query.day {
            Some(day) => copenhagen_day_bounds(day),
            None => today_and_ahead(Utc::now()),
        },
        _ => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "give both `from` and `to`, or `day`",
            ));
        }
    };
    if to < from || to - from > Duration::days(366) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "`to` must be after `from` and at most 366 days later",
        ));
    }
    let page = state
        .services
        .store
        .list_visits(&VisitQuery {
            tenant: session.tenant,
            staff: Some(session.staff),
            from,
            to,
            limit: query.limit.unwrap_or(100),
            offset: query.offset.unwrap_or(0),
        })
        .await?;
    Ok(Json(VisitList {
        visits: views(&state, page.visits).await?,
        next_offset: page.next_offset,
    }))
}

/// A new visit; the caller owns it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVisit {
    legal_basis: LegalBasis,
    #[serde(default)]
    purpose: String,
    citizen_id: CitizenId,
    co_host_id: Option<StaffId>,
    planned_start: DateTime<Utc>,
    /// 1–480.
    duration_minutes: u32,
}

/// Plans a visit. `409 code=conflict` names the visit it would collide with.
#[utoipa::path(post, path = "/api/visits", tag = "visits", request_body = CreateVisit,
    responses((status = 201, body = VisitEnvelope),
              (status = 409, description = "`conflict`: double-booking"),
              (status = 422, description = "`invalid`")))]
pub async fn create(
    State(state): State<AppState>,
    session: StaffSession,
    Body(body): Body<CreateVisit>,
) -> Result<impl IntoResponse, Problem> {
    let visit = state
        .services
        .store
        .create_visit(NewVisit {
            tenant_id: session.tenant,
            legal_basis: body.legal_basis,
            purpose: body.purpose,
            staff_id: session.staff,
            co_host_id: body.co_host_id,
            citizen_id: body.citizen_id,
            planned_start: body.planned_start,
            duration_minutes: body.duration_minutes,
        })
        .await?;
    tracing::info!(visit = %visit.id, staff = %session.staff, "visit planned");
    crate::audit::record(
        &state.services,
        &session.actor(),
        AuditAction::VisitCreated,
        Some(visit.id.0),
    )
    .await?;
    Ok((StatusCode::CREATED, envelope(&state, visit).await?))
}

/// Loads a visit the caller owns or co-hosts; any other visit is "not found" (its existence
/// is not revealed).
pub(crate) async fn visible_visit(
    state: &AppState,
    session: &StaffSession,
    id: &str,
) -> Result<Visit, Problem> {
    let id = Uuid::parse_str(id).map_err(|_| Problem::not_found())?;
    let visit = match state.services.store.get_visit(VisitId(id)).await {
        Ok(visit) => visit,
        Err(StoreError::NotFound) => return Err(Problem::not_found()),
        Err(err) => return Err(Problem::internal(err)),
    };
    if visit.tenant_id != session.tenant || !visit.booked_staff().contains(&session.staff) {
        return Err(Problem::not_found());
    }
    Ok(visit)
}

/// Like [`visible_visit`], but only its owner may change it.
async fn owned_visit(state: &AppState, session: &StaffSession, id: &str) -> Result<Visit, Problem> {
    let visit = visible_visit(state, session, id).await?;
    if visit.staff_id != session.staff {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            ErrorCode::NotOwner,
            "only the staff member who owns the visit can change it",
        ));
    }
    Ok(visit)
}

/// One visit.
#[utoipa::path(get, path = "/api/visits/{id}", tag = "visits",
    params(("id" = String, Path, description = "visit id")),
    responses((status = 200, body = VisitEnvelope), (status = 404, description = "`not_found`")))]
pub async fn get_one(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<VisitEnvelope>, Problem> {
    let visit = visible_visit(&state, &session, &id).await?;
    crate::audit::record(
        &state.services,
        &session.actor(),
        AuditAction::VisitViewed,
        Some(visit.id.0),
    )
    .await?;
    envelope(&state, visit).await
}

/// A new time (and optionally length).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveVisit {
    planned_start: DateTime<Utc>,
    duration_minutes: Option<u32>,
}

/// Moves a visit that has not begun ("this one" for a series occurrence, which becomes an
/// exception).
#[utoipa::path(post, path = "/api/visits/{id}/move", tag = "visits", request_body = MoveVisit,
    params(("id" = String, Path, description = "visit id")),
    responses((status = 200, body = VisitEnvelope),
              (status = 409, description = "`conflict` or `visit_not_changeable`")))]
pub async fn move_visit(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
    Body(body): Body<MoveVisit>,
) -> Result<Json<VisitEnvelope>, Problem> {
    let visit = owned_visit(&state, &session, &id).await?;
    let visit = state
        .services
        .store
        .move_visit(
            visit.id,
            body.planned_start,
            body.duration_minutes,
            Utc::now(),
        )
        .await?;
    tracing::info!(visit = %visit.id, staff = %session.staff, "visit moved");
    crate::audit::record(
        &state.services,
        &session.actor(),
        AuditAction::VisitChanged,
        Some(visit.id.0),
    )
    .await?;
    envelope(&state, visit).await
}

/// An optional note.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelVisit {
    note: Option<String>,
}

/// Cancels a visit before it starts ("skip" for a series occurrence).
#[utoipa::path(post, path = "/api/visits/{id}/cancel", tag = "visits", request_body = CancelVisit,
    params(("id" = String, Path, description = "visit id")),
    responses((status = 200, body = VisitEnvelope),
              (status = 409, description = "`illegal_transition`")))]
pub async fn cancel(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
    Body(body): Body<CancelVisit>,
) -> Result<Json<VisitEnvelope>, Problem> {
    let visit = owned_visit(&state, &session, &id).await?;
    let store = &state.services.store;
    let now = Utc::now();
    let visit = store
        .cancel_visit(visit.id, EndedBy::Staff(session.staff), body.note, now)
        .await?;
    store.revoke_citizen_links(visit.id, now).await?;
    store.revoke_guest_links(visit.id, now).await?;
    // Whoever waits in the waiting room is told (and a link's holder cannot stay).
    state
        .sfu
        .close_room(visit.id.id_into(), EndReason::Cancelled)
        .await;
    tracing::info!(visit = %visit.id, staff = %session.staff, "visit cancelled");
    crate::audit::record(
        &state.services,
        &session.actor(),
        AuditAction::VisitChanged,
        Some(visit.id.0),
    )
    .await?;
    envelope(&state, visit).await
}

fn visit_closed() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        ErrorCode::VisitClosed,
        "the visit has ended",
    )
}

fn host_token(state: &AppState, session: &StaffSession, visit: &Visit) -> Result<String, Problem> {
    Ok(state.services.tokens.issue_media(
        &MediaGrantRequest {
            participant: session.staff.id_into(),
            visit: visit.id.id_into(),
            tenant: visit.tenant_id.id_into(),
            role: MediaRole::Host,
            name: session.name.clone(),
            answered_call: None,
            // Dies at logout and when the staff member's roles change.
            issued_on: Some(skaerm_auth::tokens::IssuedOn::Session(session.session)),
        },
        Utc::now(),
    )?)
}

/// A visit with a media token for its room.
#[derive(Debug, Serialize, ToSchema)]
pub struct StartedVisit {
    visit: VisitView,
    media_token: String,
}

/// Starts the visit (from 15 minutes before its planned start; idempotent while in progress)
/// and returns a media token. The owner and the co-host may start it.
#[utoipa::path(post, path = "/api/visits/{id}/start", tag = "visits",
    params(("id" = String, Path, description = "visit id")),
    responses((status = 200, body = StartedVisit),
              (status = 409, description = "`visit_not_ready` or `visit_closed`")))]
pub async fn start(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<StartedVisit>, Problem> {
    let visit = visible_visit(&state, &session, &id).await?;
    if visit.status.is_final() {
        return Err(visit_closed());
    }
    let visit = match state.services.store.start_visit(visit.id, Utc::now()).await {
        Ok(visit) => visit,
        Err(StoreError::IllegalTransition(t)) if t.from == VisitStatus::Planned => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                ErrorCode::VisitNotReady,
                "the visit can be started from 15 minutes before its planned start",
            ));
        }
        Err(StoreError::IllegalTransition(_)) => return Err(visit_closed()),
        Err(err) => return Err(err.into()),
    };
    tracing::info!(visit = %visit.id, staff = %session.staff, "visit started");
    crate::audit::record(
        &state.services,
        &session.actor(),
        AuditAction::VisitStarted,
        Some(visit.id.0),
    )
    .await?;
    let media_token = host_token(&state, &session, &visit)?;
    Ok(Json(StartedVisit {
        visit: one_view(&state, visit).await?,
        media_token,
    }))
}

/// A media token.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaToken {
    media_token: String,
}

/// A fresh media token to rejoin a visit in progress.
#[utoipa::path(post, path = "/api/visits/{id}/media-token", tag = "visits",
    params(("id" = String, Path, description = "visit id")),
    responses((status = 200, body = MediaToken),
              (status = 409, description = "`visit_not_started` or `visit_closed`")))]
pub async fn media_token(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<MediaToken>, Problem> {
    let visit = visible_visit(&state, &session, &id).await?;
    match visit.status {
        VisitStatus::InProgress => {}
        status if status.is_final() => return Err(visit_closed()),
        _ => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                ErrorCode::VisitNotStarted,
                "start the visit first",
            ));
        }
    }
    Ok(Json(MediaToken {
        media_token: host_token(&state, &session, &visit)?,
    }))
}

/// How the visit ended (default `completed`) and an optional note.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndVisit {
    outcome: Option<Outcome>,
    note: Option<String>,
}

/// Ends the visit with an outcome: `completed` (from in progress), `no_show` or
/// `technical_failure` (from ready, waiting or in progress). Everyone in the room receives
/// `ended {reason: "visit_ended"}`. The owner and the co-host may end it.
#[utoipa::path(post, path = "/api/visits/{id}/end", tag = "visits", request_body = EndVisit,
    params(("id" = String, Path, description = "visit id")),
    responses((status = 200, body = VisitEnvelope),
              (status = 409, description = "`visit_not_started` or `illegal_transition`")))]
pub async fn end(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
    Body(body): Body<EndVisit>,
) -> Result<Json<VisitEnvelope>, Problem> {
    let visit = visible_visit(&state, &session, &id).await?;
    let outcome = body.outcome.unwrap_or(Outcome::Completed);
    let visit = match state
        .services
        .store
        .end_visit(
            visit.id,
            outcome,
            EndedBy::Staff(session.staff),
            body.note,
            Utc::now(),
        )
        .await
    {
        Ok(visit) => visit,
        Err(StoreError::IllegalTransition(t))
            if outcome == Outcome::Completed && !t.from.is_final() =>
        {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                ErrorCode::VisitNotStarted,
                "only a visit in progress can be completed",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    state
        .sfu
        .close_room(visit.id.id_into(), EndReason::VisitEnded)
        .await;
    tracing::info!(visit = %visit.id, staff = %session.staff, outcome = ?outcome, "visit ended");
    crate::audit::record(
        &state.services,
        &session.actor(),
        AuditAction::VisitEnded,
        Some(visit.id.0),
    )
    .await?;
    envelope(&state, visit).await
}

/// Issues a new citizen link for the visit and revokes the previous one.
#[utoipa::path(post, path = "/api/visits/{id}/citizen-link", tag = "visits",
    params(("id" = String, Path, description = "visit id")),
    responses((status = 200, body = CitizenLink), (status = 409, description = "`visit_closed`")))]
pub async fn citizen_link(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<CitizenLink>, Problem> {
    let visit = owned_visit(&state, &session, &id).await?;
    if visit.status.is_final() {
        return Err(visit_closed());
    }
    let secret = CitizenLinkSecret::generate();
    state
        .services
        .store
        .set_citizen_link(visit.id, secret.hash().0, Utc::now())
        .await?;
    let expires_at = visit.planned_end() + state.services.link_window.closes_after_end;
    tracing::info!(visit = %visit.id, staff = %session.staff, "citizen link issued");
    crate::audit::record(
        &state.services,
        &session.actor(),
        AuditAction::LinkIssued,
        Some(visit.id.0),
    )
    .await?;
    Ok(Json(CitizenLink {
        url: link_url(&state, &secret),
        expires_at: Some(expires_at),
    }))
}

/// Revokes the visit's citizen link.
#[utoipa::path(delete, path = "/api/visits/{id}/citizen-link", tag = "visits",
    params(("id" = String, Path, description = "visit id")),
    responses((status = 204, description = "revoked")))]
pub async fn revoke_citizen_link(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let visit = owned_visit(&state, &session, &id).await?;
    state
        .services
        .store
        .revoke_citizen_links(visit.id, Utc::now())
        .await?;
    tracing::info!(visit = %visit.id, staff = %session.staff, "citizen link revoked");
    crate::audit::record(
        &state.services,
        &session.actor(),
        AuditAction::LinkRevoked,
        Some(visit.id.0),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Visits: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/visits", get(list).post(create))
        .route("/api/visits/{id}", get(get_one))
        .route("/api/visits/{id}/move", post(move_visit))
        .route("/api/visits/{id}/cancel", post(cancel))
        .route("/api/visits/{id}/start", post(start))
        .route("/api/visits/{id}/media-token", post(media_token))
        .route("/api/visits/{id}/end", post(end))
        .route(
            "/api/visits/{id}/citizen-link",
            post(citizen_link).delete(revoke_citizen_link),
        )
}
