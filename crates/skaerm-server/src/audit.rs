//! What the server writes to the audit log ([`skaerm_auth::audit`]): records for a signed-in
//! person ([`Actor`]), and the pure mapping of the relay's media joins, leaves and admissions
//! from the waiting room to audit events ([`room_event`]; [`crate::room_events`] records them).
//!
//! Handlers call [`record`] with the actor of the session extractor they already have:
//!
//! ```ignore
//! audit::record(&state.services, &session.actor(), AuditAction::VisitViewed, Some(visit.id.0)).await?;
//! ```
//!
//! A failed write fails the request (500): an action that cannot be audited is not done.

use crate::ids::IdInto;
use crate::services::Services;
use chrono::Utc;
use skaerm_auth::audit::{AuditAction, AuditEvent};
use skaerm_scheduling::{StaffId, TenantId, Visit};
use skaerm_sfu::media::core::RoomEvent;
use skaerm_sfu::protocol::RoomRole;
use std::net::IpAddr;
use uuid::Uuid;

/// Who acts: a signed-in staff member of a municipality, from an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    /// Their municipality.
    pub tenant: TenantId,
    /// Who.
    pub staff: StaffId,
    /// The client's address, when known.
    pub client_ip: Option<IpAddr>,
}

/// The audit log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("the audit log could not be written: {0}")]
pub struct AuditError(#[from] skaerm_auth::audit::AuditError);

/// Records `action` by `actor` (their tenant, id and address), about the visit `visit` when
/// given.
pub async fn record(
    services: &Services,
    actor: &Actor,
    action: AuditAction,
    visit: Option<Uuid>,
) -> Result<(), AuditError> {
    let mut event =
        AuditEvent::staff(actor.tenant.id_into(), actor.staff.0, action).from_ip(actor.client_ip);
    if let Some(visit) = visit {
        event = event.visit(visit);
    }
    record_event(services, event).await
}

/// Records a prepared event now.
pub async fn record_event(services: &Services, event: AuditEvent) -> Result<(), AuditError> {
    Ok(services.audit.record(event, Utc::now()).await?)
}

/// The audit event of a media join or leave (who, which visit, in which role; never media), or
/// of an admission from the waiting room (by the admitting host, naming the admitted
/// participant's id and role in the detail), in the room of `visit`. Waiting and closing rooms
/// are not audited (`None`).
pub fn room_event(event: &RoomEvent, visit: &Visit) -> Option<AuditEvent> {
    let mut detail = None;
    let (participant, role, action) = match event {
        RoomEvent::ParticipantJoined {
            participant, role, ..
        } => (participant, role, AuditAction::MediaJoined),
        RoomEvent::ParticipantLeft {
            participant, role, ..
        } => (participant, role, AuditAction::MediaLeft),
        RoomEvent::ParticipantAdmitted {
            participant,
            role,
            by,
            ..
        } => {
            let role = match role {
                RoomRole::Host => "host",
                RoomRole::Guest => "guest",
            };
            detail = Some(format!("admitted {role} {participant}"));
            // Only hosts admit: the actor is the staff member.
            (by, &RoomRole::Host, AuditAction::VisitAdmitted)
        }
        RoomEvent::ParticipantWaiting { .. } | RoomEvent::RoomClosed { .. } => return None,
    };
    let tenant = visit.tenant_id.id_into();
    let mut event = match role {
        RoomRole::Host => AuditEvent::staff(tenant, participant.0, action),
        RoomRole::Guest => AuditEvent::citizen(tenant, participant.0, action),
    }
    .visit(visit.id.0);
    if let Some(detail) = &detail {
        event = event.detail(detail);
    }
    Some(event)
}
