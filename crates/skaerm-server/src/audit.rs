//! What the server writes to the audit log ([`skaerm_auth::audit`]): helpers for handlers
//! acting for a signed-in person, and the media joins, leaves and admissions from the waiting
//! room the relay reports.
//!
//! Handlers call [`record`] with the session extractor they already have:
//!
//! ```ignore
//! audit::record(&state, &session, AuditAction::VisitViewed, Some(visit.id.0)).await?;
//! ```
//!
//! A failed write fails the request (500): an action that cannot be audited is not done.

use crate::http::problem::Problem;
use crate::http::session::Authenticated;
use crate::state::{AppState, Services};
use chrono::Utc;
use skaerm_auth::audit::{AuditAction, AuditEvent};
use skaerm_auth::refs::TenantRef;
use skaerm_scheduling::VisitId;
use skaerm_sfu::media::core::RoomEvent;
use skaerm_sfu::protocol::Role;
use uuid::Uuid;

/// Records `action` by the signed-in `actor` (their tenant, id and address), about the visit
/// `visit` when given.
pub async fn record(
    state: &AppState,
    actor: &Authenticated,
    action: AuditAction,
    visit: Option<Uuid>,
) -> Result<(), Problem> {
    let mut event = AuditEvent::staff(TenantRef(actor.tenant.0), actor.staff.0, action)
        .from_ip(actor.client_ip);
    if let Some(visit) = visit {
        event = event.visit(visit);
    }
    record_event(&state.services, event).await
}

/// Records a prepared event now.
pub async fn record_event(services: &Services, event: AuditEvent) -> Result<(), Problem> {
    services
        .audit
        .record(event, Utc::now())
        .await
        .map_err(Problem::internal)
}

/// Records a media join or leave (who, which visit, in which role; never media), or an
/// admission from the waiting room (by the admitting host, naming the admitted participant's
/// id and role in the detail). The room's visit gives the tenant; events of rooms without a
/// visit are not recorded.
pub async fn record_room_event(services: &Services, event: &RoomEvent) {
    let mut detail = None;
    let (room, participant, role, action) = match event {
        RoomEvent::ParticipantJoined {
            room,
            participant,
            role,
        } => (room, participant, role, AuditAction::MediaJoined),
        RoomEvent::ParticipantLeft {
            room,
            participant,
            role,
            ..
        } => (room, participant, role, AuditAction::MediaLeft),
        RoomEvent::ParticipantAdmitted {
            room,
            participant,
            role,
            by,
        } => {
            let role = match role {
                Role::Host => "host",
                Role::Guest => "guest",
            };
            detail = Some(format!("admitted {role} {participant}"));
            // Only hosts admit: the actor is the staff member.
            (room, by, &Role::Host, AuditAction::VisitAdmitted)
        }
        // Waiting and closing rooms are not audited.
        RoomEvent::ParticipantWaiting { .. } | RoomEvent::RoomClosed { .. } => return,
    };
    let visit = match services.store.get_visit(VisitId(room.0)).await {
        Ok(visit) => visit,
        Err(err) => {
            tracing::warn!(%err, visit = %room.0, "media event for an unknown visit not audited");
            return;
        }
    };
    let tenant = TenantRef(visit.tenant_id.0);
    let mut event = match role {
        Role::Host => AuditEvent::staff(tenant, participant.0, action),
        Role::Guest => AuditEvent::citizen(tenant, participant.0, action),
    }
    .visit(visit.id.0);
    if let Some(detail) = &detail {
        event = event.detail(detail);
    }
    if let Err(err) = services.audit.record(event, Utc::now()).await {
        tracing::error!(%err, "could not audit a media event");
    }
}
