//! What the server does when people join and leave visit rooms: the one adapter of the relay's
//! [`RoomEvent`]s. It loads the room's visit once per event and hands it to the audit mapping
//! ([`crate::audit::room_event`]) and the live call list ([`crate::live_calls`]); the visit's
//! citizen entering the relay's waiting room (or the room itself) moves the visit to `waiting`,
//! leaving before staff start moves it back to `ready`. Other guests (an invited relative,
//! interpreter or colleague) do not move the visit. Everything is logged with ids and roles
//! only — never media or names.

use crate::ids::IdInto;
use crate::services::Services;
use chrono::Utc;
use skaerm_scheduling::{StoreError, Visit, VisitId};
use skaerm_sfu::media::core::RoomEvent;
use skaerm_sfu::protocol::RoomRole;
use tokio::sync::mpsc;

/// Drains the relay's room events until the relay stops.
pub async fn run(services: Services, mut events: mpsc::Receiver<RoomEvent>) {
    while let Some(event) = events.recv().await {
        let visit = visit_of(&services, &event).await;
        if let Some(entry) = visit
            .as_ref()
            .and_then(|visit| crate::audit::room_event(&event, visit))
            && let Err(err) = crate::audit::record_event(&services, entry).await
        {
            tracing::error!(%err, "could not audit a media event");
        }
        services.live_calls().observe(
            &event,
            visit.as_ref().map(|visit| visit.tenant_id.0),
            Utc::now(),
        );
        log_event(&event);
        // The visit's citizen (not another guest) arriving or leaving moves the visit.
        let citizen_move = match &event {
            RoomEvent::ParticipantJoined {
                room,
                participant,
                role: RoomRole::Guest,
            } => Some((*room, *participant, Arrival::Arrived)),
            RoomEvent::ParticipantWaiting {
                room,
                participant,
                role: RoomRole::Guest,
            } => Some((*room, *participant, Arrival::Waiting)),
            RoomEvent::ParticipantLeft {
                room,
                participant,
                role: RoomRole::Guest,
                ..
            } => Some((*room, *participant, Arrival::Left)),
            _ => None,
        };
        if let Some((room, participant, arrival)) = citizen_move
            && visit
                .as_ref()
                .is_some_and(|visit| visit.citizen_id.0 == participant.0)
        {
            let visit: VisitId = room.id_into();
            let result = match arrival {
                Arrival::Arrived | Arrival::Waiting => {
                    services.store.citizen_arrived(visit, Utc::now()).await
                }
                Arrival::Left => services.store.citizen_left(visit, Utc::now()).await,
            };
            log_refusal(result, arrival.what());
        }
    }
}

/// How the visit's citizen moved.
#[derive(Debug, Clone, Copy)]
enum Arrival {
    /// Joined the room.
    Arrived,
    /// Entered the waiting room.
    Waiting,
    /// Left the room (or the waiting room).
    Left,
}

impl Arrival {
    fn what(self) -> &'static str {
        match self {
            Arrival::Arrived => "citizen arrived",
            Arrival::Waiting => "citizen waiting",
            Arrival::Left => "citizen left",
        }
    }
}

/// Logs a room event (ids and roles only).
fn log_event(event: &RoomEvent) {
    match event {
        RoomEvent::ParticipantJoined {
            room,
            participant,
            role,
        } => tracing::info!(visit = %room, %participant, ?role, "joined the visit"),
        RoomEvent::ParticipantLeft {
            room,
            participant,
            role,
            reason,
        } => tracing::info!(visit = %room, %participant, ?role, ?reason, "left the visit"),
        RoomEvent::ParticipantWaiting {
            room,
            participant,
            role,
        } => tracing::info!(visit = %room, %participant, ?role, "waiting to be admitted"),
        RoomEvent::ParticipantAdmitted {
            room,
            participant,
            role,
            by,
        } => {
            tracing::info!(visit = %room, %participant, ?role, %by, "admitted from the waiting room")
        }
        RoomEvent::RoomClosed { room } => tracing::info!(visit = %room, "room closed"),
    }
}

/// The visit of the event's room (read once per event); `None` for a closing room, which needs
/// none, and for a visit that cannot be read (then the event is neither audited nor counted as
/// a live call, and moves no visit).
async fn visit_of(services: &Services, event: &RoomEvent) -> Option<Visit> {
    let room = match event {
        RoomEvent::ParticipantJoined { room, .. }
        | RoomEvent::ParticipantLeft { room, .. }
        | RoomEvent::ParticipantWaiting { room, .. }
        | RoomEvent::ParticipantAdmitted { room, .. } => *room,
        RoomEvent::RoomClosed { .. } => return None,
    };
    match services.store.get_visit(room.id_into()).await {
        Ok(visit) => Some(visit),
        Err(err) => {
            tracing::warn!(%err, visit = %room, "could not read the visit of a room event");
            None
        }
    }
}

fn log_refusal<T>(result: Result<T, StoreError>, what: &str) {
    match result {
        Ok(_) | Err(StoreError::IllegalTransition(_)) => {}
        Err(err) => tracing::warn!(%err, what, "could not record a room event on the visit"),
    }
}
