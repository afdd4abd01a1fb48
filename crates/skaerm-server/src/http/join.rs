//! The citizen's door: exchanging a link secret for a media token, inside the visit's window.
//! The same door takes an invited guest's one-off link (a relative, interpreter or colleague):
//! the token then carries the invite's id as participant and the name staff gave it.
//!
//! The secret is checked for shape before any lookup, looked up only by its hash, and
//! throttled per client address and per link. Unknown and revoked links get the same answer.

use crate::http::client_ip::ClientIp;
use crate::http::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{Value, json};
use skaerm_auth::citizen_link::CitizenLinkSecret;
use skaerm_auth::refs::{ParticipantRef, TenantRef, VisitRef};
use skaerm_auth::tokens::{IssuedOn, MediaGrantRequest, MediaRole};
use skaerm_scheduling::LinkWindowError;
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
    ClientIp(peer_ip): ClientIp,
    Path(link): Path<String>,
) -> Result<Json<Value>, Problem> {
    let limits = &state.services.limits;
    limited(&limits.join_per_ip, &peer_ip.to_string())?;
    let secret = CitizenLinkSecret::parse(&link).map_err(|_| unknown_link())?;
    let hash = secret.hash();
    limited(&limits.join_per_link, &hex(&hash.0))?;

    let store = &state.services.store;
    let now = Utc::now();
    // A citizen link first, then a guest invite; unknown and revoked answer the same.
    let (visit, guest) = match store
        .find_visit_by_link(&hash.0, now)
        .await
        .map_err(Problem::internal)?
    {
        Some(visit) => (visit, None),
        None => {
            let invite = store
                .find_guest_link(&hash.0)
                .await
                .map_err(Problem::internal)?
                .ok_or_else(unknown_link)?;
            let visit = match store.get_visit(invite.visit).await {
                Ok(visit) => visit,
                Err(skaerm_scheduling::StoreError::NotFound) => return Err(unknown_link()),
                Err(err) => return Err(Problem::internal(err)),
            };
            (visit, Some(invite))
        }
    };
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
    let (participant, name) = match &guest {
        Some(invite) => (invite.id.0, invite.display_name.clone()),
        None => {
            let citizen = store
                .get_citizen(visit.citizen_id)
                .await
                .map_err(Problem::internal)?;
            (citizen.id.0, citizen.display_name)
        }
    };
    let staff = store
        .get_staff(visit.staff_id)
        .await
        .map_err(Problem::internal)?;
    let token = state
        .services
        .tokens
        .issue_media(
            &MediaGrantRequest {
                participant: ParticipantRef(participant),
                visit: VisitRef(visit.id.0),
                tenant: TenantRef(visit.tenant_id.0),
                role: MediaRole::Guest,
                name,
                answered_call: None,
                // A citizen's token dies with its link; an invite's id is its participant id.
                issued_on: guest.is_none().then(|| IssuedOn::Link(hash.link_ref())),
            },
            now,
        )
        .map_err(Problem::internal)?;
    crate::audit::record_event(
        &state.services,
        skaerm_auth::audit::AuditEvent::citizen(
            TenantRef(visit.tenant_id.0),
            participant,
            skaerm_auth::audit::AuditAction::LinkExchanged,
        )
        .visit(visit.id.0)
        .from_ip(Some(peer_ip)),
    )
    .await?;
    match &guest {
        Some(invite) => {
            tracing::info!(visit = %visit.id, invite = %invite.id, "guest link exchanged");
        }
        None => tracing::info!(visit = %visit.id, "citizen link exchanged"),
    }
    // Only what the citizen's page needs: the staff member's first name and the times.
    let staff_first_name = staff
        .display_name
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let guest =
        guest.map(|invite| json!({"display_name": invite.display_name, "kind": invite.kind}));
    Ok(Json(json!({
        "media_token": token,
        "guest": guest,
        "visit": {
            "id": visit.id,
            "staff_display_name": staff_first_name,
            "planned_start": visit.planned_start,
            "planned_end": visit.planned_end(),
            "status": visit.status_at(now),
        }
    })))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
