//! Staff endpoints inviting a third participant (a relative, an interpreter, a colleague) to a
//! visit with a one-off link: issuing one (the secret is shown once and stored only as a hash),
//! listing and revoking them. The guest opens the link at the citizen page `/j/{secret}`; the
//! exchange is in [`crate::http::join`], the room admission in [`crate::admission`]. Revoking
//! an invite also takes its guest out of the call (or the waiting room) at once.

use crate::http::body::Body;
use crate::http::join::link_url;
use crate::http::problem::{ErrorCode, Problem};
use crate::http::session::StaffSession;
use crate::http::visits::visible_visit;
use crate::ids::IdInto;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use skaerm_auth::citizen_link::CitizenLinkSecret;
use skaerm_scheduling::{GuestKind, GuestLink, GuestLinkId, NewGuestLink};
use skaerm_sfu::ids::ParticipantId;
use skaerm_sfu::protocol::EndReason;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/visits/{id}/guest-links` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    /// The name the others see (1–60 characters).
    display_name: String,
    /// `relative`, `interpreter` or `colleague`.
    kind: GuestKind,
}

/// A freshly issued invite: the URL is shown only now.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedInvite {
    id: GuestLinkId,
    /// `…/j/<secret>`: no name or visit in it.
    url: String,
    /// When the visit's link window closes.
    expires_at: DateTime<Utc>,
    display_name: String,
    kind: GuestKind,
}

/// An invite as listed (without its secret, which is not kept).
#[derive(Debug, Serialize, ToSchema)]
pub struct InviteView {
    id: GuestLinkId,
    display_name: String,
    kind: GuestKind,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

/// `{"guest_links": [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InviteList {
    guest_links: Vec<InviteView>,
}

fn view(link: GuestLink) -> InviteView {
    InviteView {
        id: link.id,
        display_name: link.display_name,
        kind: link.kind,
        created_at: link.created_at,
        revoked_at: link.revoked_at,
    }
}

/// Invites a third participant to the visit (owner or co-host).
#[utoipa::path(post, path = "/api/visits/{id}/guest-links", tag = "visits", request_body = NewInvite,
    params(("id" = String, Path, description = "visit id")),
    responses((status = 201, body = IssuedInvite), (status = 404, description = "`not_found`"),
              (status = 409, description = "`visit_closed`"), (status = 422, description = "`invalid`")))]
pub async fn issue(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
    Body(body): Body<NewInvite>,
) -> Result<(StatusCode, Json<IssuedInvite>), Problem> {
    let visit = visible_visit(&state, &session, &id).await?;
    if visit.status.is_final() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            ErrorCode::VisitClosed,
            "the visit has ended",
        ));
    }
    let secret = CitizenLinkSecret::generate();
    let link = state
        .services
        .store
        .create_guest_link(
            NewGuestLink {
                visit: visit.id,
                hash: secret.hash().0,
                display_name: skaerm_auth::display_name::validate(
                    &body.display_name,
                    skaerm_scheduling::store::guest_links::MAX_GUEST_NAME_CHARS,
                )?,
                kind: body.kind,
                created_by: session.staff,
            },
            Utc::now(),
        )
        .await?;
    let expires_at = visit.planned_end() + state.services.link_window.closes_after_end;
    tracing::info!(visit = %visit.id, staff = %session.staff, invite = %link.id,
        kind = link.kind.as_str(), "guest invited");
    Ok((
        StatusCode::CREATED,
        Json(IssuedInvite {
            id: link.id,
            url: link_url(&state, &secret),
            expires_at,
            display_name: link.display_name,
            kind: link.kind,
        }),
    ))
}

/// The visit's invites, revoked ones included.
#[utoipa::path(get, path = "/api/visits/{id}/guest-links", tag = "visits",
    params(("id" = String, Path, description = "visit id")),
    responses((status = 200, body = InviteList), (status = 404, description = "`not_found`")))]
pub async fn list(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<Json<InviteList>, Problem> {
    let visit = visible_visit(&state, &session, &id).await?;
    let links = state.services.store.list_guest_links(visit.id).await?;
    Ok(Json(InviteList {
        guest_links: links.into_iter().map(view).collect(),
    }))
}

/// Revokes one invite: its link no longer opens and its holder is no longer admitted.
#[utoipa::path(delete, path = "/api/visits/{id}/guest-links/{link_id}", tag = "visits",
    params(("id" = String, Path, description = "visit id"),
           ("link_id" = String, Path, description = "invite id")),
    responses((status = 204, description = "revoked"), (status = 404, description = "`not_found`")))]
pub async fn revoke(
    State(state): State<AppState>,
    session: StaffSession,
    Path((id, link_id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let visit = visible_visit(&state, &session, &id).await?;
    let link_id = Uuid::parse_str(&link_id).map_err(|_| Problem::not_found())?;
    state
        .services
        .store
        .revoke_guest_link(visit.id, GuestLinkId(link_id), Utc::now())
        .await?;
    tracing::info!(visit = %visit.id, staff = %session.staff, invite = %link_id, "guest invite revoked");
    // The invite's id is the guest's participant id: whoever came in with it leaves now.
    if !state
        .sfu
        .remove_participant(
            visit.id.id_into(),
            ParticipantId(link_id),
            EndReason::AccessRevoked,
        )
        .await
    {
        tracing::warn!(visit = %visit.id, invite = %link_id, "the relay could not be told to remove the revoked guest");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Guest links: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{delete, post};
    axum::Router::new()
        .route("/api/visits/{id}/guest-links", post(issue).get(list))
        .route("/api/visits/{id}/guest-links/{link_id}", delete(revoke))
}
