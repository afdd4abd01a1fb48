//! The citizen's door: exchanging a link secret for a media token, inside the visit's window.
//! The same door takes an invited guest's one-off link (a relative, interpreter or colleague):
//! the token then carries the invite's id as participant and the name staff gave it.
//!
//! The secret is checked for shape before any lookup, looked up only by its hash, and
//! throttled per client address and per link. Unknown and revoked links get the same answer.

use crate::http::client_ip::ClientIp;
use crate::http::problem::{ErrorCode, Problem};
use crate::ids::IdInto;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use skaerm_auth::citizen_link::CitizenLinkSecret;
use skaerm_auth::refs::ParticipantRef;
use skaerm_auth::tokens::{IssuedOn, MediaGrantRequest, MediaRole};
use skaerm_scheduling::LinkWindowError;
use std::time::Instant;
use utoipa::ToSchema;

/// A link as issued to staff (a visit's or a series' citizen link): shown once, stored only as
/// a hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct CitizenLink {
    pub(crate) url: String,
    /// When the visit's link closes (absent for a series link, which follows the series).
    pub(crate) expires_at: Option<DateTime<Utc>>,
}

/// The URL a link secret is sent as (`/j/{secret}`, the page that calls this door); citizen,
/// series and guest links alike.
pub(crate) fn link_url(state: &AppState, secret: &CitizenLinkSecret) -> String {
    format!("{}/j/{}", state.public_url, secret.expose())
}

/// A staff member's first name, all citizens see of them (the join page, a called tablet).
pub(crate) fn first_name(display_name: &str) -> String {
    display_name
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn unknown_link() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownLink,
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
    limited(
        &limits.join_per_ip,
        &skaerm_auth::rate_limit::address_group(peer_ip).to_string(),
    )?;
    let secret = CitizenLinkSecret::parse(&link).map_err(|_| unknown_link())?;
    let hash = secret.hash();
    limited(&limits.join_per_link, &hex(&hash.0))?;

    let store = &state.services.store;
    let now = Utc::now();
    // A citizen link first, then a guest invite; unknown and revoked answer the same.
    let (visit, guest) = match store.find_visit_by_link(&hash.0, now).await? {
        Some(visit) => (visit, None),
        None => {
            let invite = store
                .find_guest_link(&hash.0)
                .await?
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
                ErrorCode::NotYetOpen,
                "the visit has not opened yet",
            )
            .with("opens_at", opens_at.to_rfc3339()));
        }
        Err(LinkWindowError::Closed) => {
            return Err(Problem::new(
                StatusCode::GONE,
                ErrorCode::LinkExpired,
                "the visit is over",
            ));
        }
    }
    if visit.status.is_final() {
        return Err(Problem::new(
            StatusCode::GONE,
            ErrorCode::LinkExpired,
            "the visit is over",
        ));
    }
    let (participant, name) = match &guest {
        Some(invite) => (invite.id.0, invite.display_name.clone()),
        None => {
            let citizen = store.get_citizen(visit.citizen_id).await?;
            (citizen.id.0, citizen.display_name)
        }
    };
    let staff = store.get_staff(visit.staff_id).await?;
    let token = state.services.tokens.issue_media(
        &MediaGrantRequest {
            participant: ParticipantRef(participant),
            visit: visit.id.id_into(),
            tenant: visit.tenant_id.id_into(),
            role: MediaRole::Guest,
            name,
            answered_call: None,
            // A citizen's token dies with its link; an invite's id is its participant id.
            issued_on: guest.is_none().then(|| IssuedOn::Link(hash.link_ref())),
        },
        now,
    )?;
    crate::audit::record_event(
        &state.services,
        skaerm_auth::audit::AuditEvent::citizen(
            visit.tenant_id.id_into(),
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
    let staff_first_name = first_name(&staff.display_name);
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

/// The citizen link exchange: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    axum::Router::new().route("/api/join/{link}", post(exchange))
}
