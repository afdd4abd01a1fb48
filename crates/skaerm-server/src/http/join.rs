//! The citizen's door: exchanging a link secret for a media token, inside the visit's window.
//!
//! The secret is checked for shape before any lookup, looked up only by its hash, and
//! throttled per client address and per link. Unknown and revoked links get the same answer.

use crate::http::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Value, json};
use skaerm_auth::citizen_link::CitizenLinkSecret;
use skaerm_auth::refs::{ParticipantRef, TenantRef, VisitRef};
use skaerm_auth::tokens::{MediaGrantRequest, MediaRole};
use skaerm_scheduling::LinkWindowError;
use std::net::SocketAddr;
use std::time::Instant;

fn unknown_link() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "unknown_link",
        "this link is not valid",
    )
}

fn limited(
    limiter: &std::sync::Mutex<skaerm_auth::rate_limit::RateLimiter>,
    key: &str,
) -> Result<(), Problem> {
    let mut limiter = limiter
        .lock()
        .map_err(|_| Problem::internal("limiter poisoned"))?;
    limiter
        .check(key, Instant::now())
        .map_err(|retry| Problem::rate_limited(retry.as_secs()))
}

/// `POST /api/join/{link}`.
pub async fn exchange(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(link): Path<String>,
) -> Result<Json<Value>, Problem> {
    let limits = &state.services.limits;
    limited(&limits.join_per_ip, &peer.ip().to_string())?;
    let secret = CitizenLinkSecret::parse(&link).map_err(|_| unknown_link())?;
    let hash = secret.hash();
    limited(&limits.join_per_link, &hex(&hash.0))?;

    let store = &state.services.store;
    let now = Utc::now();
    let visit = store
        .find_visit_by_link(&hash.0, now)
        .await
        .map_err(Problem::internal)?
        .ok_or_else(unknown_link)?;
    match state.services.link_window.check(&visit, now) {
        Ok(()) => {}
        Err(LinkWindowError::NotYetOpen { opens_at }) => {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "not_yet_open",
                "the visit has not opened yet",
            )
            .with("opens_at", opens_at.to_rfc3339()));
        }
        Err(LinkWindowError::Closed) => {
            return Err(Problem::new(
                StatusCode::GONE,
                "link_expired",
                "the visit is over",
            ));
        }
    }
    if visit.status.is_final() {
        return Err(Problem::new(
            StatusCode::GONE,
            "link_expired",
            "the visit is over",
        ));
    }
    let citizen = store
        .get_citizen(visit.citizen_id)
        .await
        .map_err(Problem::internal)?;
    let staff = store
        .get_staff(visit.staff_id)
        .await
        .map_err(Problem::internal)?;
    let token = state
        .services
        .tokens
        .issue_media(
            &MediaGrantRequest {
                participant: ParticipantRef(citizen.id.0),
                visit: VisitRef(visit.id.0),
                tenant: TenantRef(visit.tenant_id.0),
                role: MediaRole::Guest,
                name: citizen.display_name.clone(),
            },
            now,
        )
        .map_err(Problem::internal)?;
    tracing::info!(visit = %visit.id, "citizen link exchanged");
    // Only what the citizen's page needs: the staff member's first name and the times.
    let staff_first_name = staff
        .display_name
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(Json(json!({
        "media_token": token,
        "visit": {
            "id": visit.id,
            "staff_display_name": staff_first_name,
            "planned_start": visit.planned_start,
            "planned_end": visit.planned_end(),
            "status": visit.status,
        }
    })))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
