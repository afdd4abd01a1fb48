//! Staff endpoints for visits: today's list, starting and ending a visit, media tokens for the
//! call, and issuing the citizen's link.

use crate::http::problem::Problem;
use crate::http::session::StaffSession;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Europe::Copenhagen;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use skaerm_auth::citizen_link::CitizenLinkSecret;
use skaerm_auth::refs::{ParticipantRef, TenantRef, VisitRef};
use skaerm_auth::tokens::{MediaGrantRequest, MediaRole};
use skaerm_scheduling::{
    CitizenId, EndedBy, Outcome, StoreError, Visit, VisitId, VisitStatus, copenhagen_day_bounds,
};
use skaerm_sfu::ids::RoomId;
use skaerm_sfu::protocol::EndReason;
use std::collections::HashMap;
use uuid::Uuid;

/// A visit as the API shows it.
#[derive(Debug, Serialize)]
pub struct VisitView {
    id: VisitId,
    legal_basis: skaerm_scheduling::LegalBasis,
    legal_basis_label: &'static str,
    citizen: CitizenView,
    planned_start: DateTime<Utc>,
    duration_minutes: u32,
    planned_end: DateTime<Utc>,
    status: VisitStatus,
}

#[derive(Debug, Serialize)]
struct CitizenView {
    id: CitizenId,
    display_name: String,
}

/// Turns visits into views, looking up each citizen once.
async fn views(state: &AppState, visits: Vec<Visit>) -> Result<Vec<VisitView>, Problem> {
    let mut names: HashMap<CitizenId, String> = HashMap::new();
    let mut out = Vec::with_capacity(visits.len());
    for visit in visits {
        let name = match names.get(&visit.citizen_id) {
            Some(name) => name.clone(),
            None => {
                let citizen = state
                    .services
                    .store
                    .get_citizen(visit.citizen_id)
                    .await
                    .map_err(Problem::internal)?;
                names.insert(visit.citizen_id, citizen.display_name.clone());
                citizen.display_name
            }
        };
        out.push(VisitView {
            id: visit.id,
            legal_basis: visit.legal_basis,
            legal_basis_label: visit.legal_basis.label_da(),
            citizen: CitizenView {
                id: visit.citizen_id,
                display_name: name,
            },
            planned_start: visit.planned_start,
            duration_minutes: visit.duration_minutes,
            planned_end: visit.planned_end(),
            status: visit.status,
        });
    }
    Ok(out)
}

/// Query of the visit list.
#[derive(Debug, Deserialize)]
pub struct DayQuery {
    day: Option<NaiveDate>,
}

/// `GET /api/visits?day=YYYY-MM-DD`.
pub async fn list(
    State(state): State<AppState>,
    session: StaffSession,
    Query(query): Query<DayQuery>,
) -> Result<Json<Value>, Problem> {
    let day = query
        .day
        .unwrap_or_else(|| Utc::now().with_timezone(&Copenhagen).date_naive());
    let (from, to) = copenhagen_day_bounds(day);
    let visits = state
        .services
        .store
        .list_visits_for_staff(session.staff, from, to)
        .await
        .map_err(Problem::internal)?;
    Ok(Json(json!({"visits": views(&state, visits).await?})))
}

/// Loads a visit the caller owns; any other visit is "not found" (its existence is not
/// revealed).
async fn owned_visit(state: &AppState, session: &StaffSession, id: &str) -> Result<Visit, Problem> {
    let id = Uuid::parse_str(id).map_err(|_| Problem::not_found())?;
    let visit = match state.services.store.get_visit(VisitId(id)).await {
        Ok(visit) => visit,
        Err(StoreError::NotFound) => return Err(Problem::not_found()),
        Err(err) => return Err(Problem::internal(err)),
    };
    if visit.staff_id != session.staff || visit.tenant_id != session.tenant {
        return Err(Problem::not_found());
    }
    Ok(visit)
}

async fn one_view(state: &AppState, visit: Visit) -> Result<VisitView, Problem> {
    views(state, vec![visit])
        .await?
        .pop()
        .ok_or_else(|| Problem::internal("view of one visit was empty"))
}

/// `GET /api/visits/{id}`.
pub async fn get_one(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let visit = owned_visit(&state, &session, &id).await?;
    Ok(Json(json!({"visit": one_view(&state, visit).await?})))
}

fn visit_closed() -> Problem {
    Problem::new(StatusCode::CONFLICT, "visit_closed", "the visit has ended")
}

fn host_token(state: &AppState, session: &StaffSession, visit: &Visit) -> Result<String, Problem> {
    state
        .services
        .tokens
        .issue_media(
            &MediaGrantRequest {
                participant: ParticipantRef(session.staff.0),
                visit: VisitRef(visit.id.0),
                tenant: TenantRef(visit.tenant_id.0),
                role: MediaRole::Host,
                name: session.name.clone(),
            },
            Utc::now(),
        )
        .map_err(Problem::internal)
}

/// `POST /api/visits/{id}/start`.
pub async fn start(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let visit = owned_visit(&state, &session, &id).await?;
    if visit.status.is_final() {
        return Err(visit_closed());
    }
    let visit = match state.services.store.start_visit(visit.id, Utc::now()).await {
        Ok(visit) => visit,
        Err(StoreError::IllegalTransition(t)) if t.from == VisitStatus::Planned => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "visit_not_ready",
                "the visit can be started from 15 minutes before its planned start",
            ));
        }
        Err(StoreError::IllegalTransition(_)) => return Err(visit_closed()),
        Err(err) => return Err(Problem::internal(err)),
    };
    tracing::info!(visit = %visit.id, staff = %session.staff, "visit started");
    let token = host_token(&state, &session, &visit)?;
    Ok(Json(
        json!({"visit": one_view(&state, visit).await?, "media_token": token}),
    ))
}

/// `POST /api/visits/{id}/media-token`.
pub async fn media_token(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let visit = owned_visit(&state, &session, &id).await?;
    match visit.status {
        VisitStatus::InProgress => {}
        status if status.is_final() => return Err(visit_closed()),
        _ => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "visit_not_started",
                "start the visit first",
            ));
        }
    }
    Ok(Json(
        json!({"media_token": host_token(&state, &session, &visit)?}),
    ))
}

/// `POST /api/visits/{id}/end`.
pub async fn end(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let visit = owned_visit(&state, &session, &id).await?;
    let visit = match state
        .services
        .store
        .end_visit(
            visit.id,
            Outcome::Completed,
            EndedBy::Staff(session.staff),
            None,
            Utc::now(),
        )
        .await
    {
        Ok(visit) => visit,
        Err(StoreError::IllegalTransition(_)) => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "visit_not_started",
                "only a visit in progress can be ended",
            ));
        }
        Err(err) => return Err(Problem::internal(err)),
    };
    state
        .sfu
        .close_room(RoomId(visit.id.0), EndReason::VisitEnded)
        .await;
    tracing::info!(visit = %visit.id, staff = %session.staff, "visit ended");
    Ok(Json(json!({"visit": one_view(&state, visit).await?})))
}

/// `POST /api/visits/{id}/citizen-link`.
pub async fn citizen_link(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let visit = owned_visit(&state, &session, &id).await?;
    if visit.status.is_final() {
        return Err(visit_closed());
    }
    let secret = CitizenLinkSecret::generate();
    state
        .services
        .store
        .set_citizen_link(visit.id, secret.hash().0, Utc::now())
        .await
        .map_err(Problem::internal)?;
    let expires_at = visit.planned_end() + state.services.link_window.closes_after_end;
    tracing::info!(visit = %visit.id, staff = %session.staff, "citizen link issued");
    Ok(Json(json!({
        "url": format!("{}/j/{}", state.public_url, secret.expose()),
        "expires_at": expires_at,
    })))
}
