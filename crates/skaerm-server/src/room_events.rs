//! What the server does when people join and leave visit rooms: it records them in the audit log
//! ([`crate::audit`]); the visit's citizen entering the relay's waiting room (or the room itself)
//! moves the visit to `waiting`, leaving before staff start moves it back to `ready`. Other guests
//! (an invited relative, interpreter or colleague) do not move the visit. Everything is logged
//! with ids and roles only — never media or names.

use crate::state::Services;
use chrono::Utc;
use skaerm_scheduling::{StoreError, VisitId};
use skaerm_sfu::ids::{ParticipantId, RoomId};
use skaerm_sfu::media::core::RoomEvent;
use skaerm_sfu::protocol::Role;
use tokio::sync::mpsc;

/// Drains the relay's room events until the relay stops.
pub async fn run(services: Services, mut events: mpsc::Receiver<RoomEvent>) {
    while let Some(event) = events.recv().await {
        crate::audit::record_room_event(&services, &event).await;
        crate::live_calls::observe(&services, &event).await;
        match event {
            RoomEvent::ParticipantJoined {
                room,
                participant,
                role,
            } => {
                tracing::info!(visit = %room, %participant, ?role, "joined the visit");
                if role == Role::Guest && is_the_citizen(&services, room, participant).await {
                    let result = services
                        .store
                        .citizen_arrived(VisitId(room.0), Utc::now())
                        .await;
                    log_refusal(result, "citizen arrived");
                }
            }
            RoomEvent::ParticipantLeft {
                room,
                participant,
                role,
                reason,
            } => {
                tracing::info!(visit = %room, %participant, ?role, ?reason, "left the visit");
                if role == Role::Guest && is_the_citizen(&services, room, participant).await {
                    let result = services
                        .store
                        .citizen_left(VisitId(room.0), Utc::now())
                        .await;
                    log_refusal(result, "citizen left");
                }
            }
            RoomEvent::ParticipantWaiting {
                room,
                participant,
                role,
            } => {
                tracing::info!(visit = %room, %participant, ?role, "waiting to be admitted");
                if role == Role::Guest && is_the_citizen(&services, room, participant).await {
                    let result = services
                        .store
                        .citizen_arrived(VisitId(room.0), Utc::now())
                        .await;
                    log_refusal(result, "citizen waiting");
                }
            }
            RoomEvent::ParticipantAdmitted {
                room,
                participant,
                role,
                by,
            } => {
                tracing::info!(visit = %room, %participant, ?role, %by, "admitted from the waiting room");
            }
            RoomEvent::RoomClosed { room } => tracing::info!(visit = %room, "room closed"),
        }
    }
}

/// Whether a guest in a visit's room is its citizen (not an invited third participant).
async fn is_the_citizen(services: &Services, room: RoomId, participant: ParticipantId) -> bool {
    match services.store.get_visit(VisitId(room.0)).await {
        Ok(visit) => visit.citizen_id.0 == participant.0,
        Err(err) => {
            tracing::warn!(%err, visit = %room, "could not read the visit of a room event");
            false
        }
    }
}

fn log_refusal<T>(result: Result<T, StoreError>, what: &str) {
    match result {
        Ok(_) | Err(StoreError::IllegalTransition(_)) => {}
        Err(err) => tracing::warn!(%err, what, "could not record a room event on the visit"),
    }
}
