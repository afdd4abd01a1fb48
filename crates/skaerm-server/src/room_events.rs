//! What the server does when people join and leave visit rooms. It records them in the audit
//! log ([`crate::audit`]) and the log (who, which visit, which role — never media or names); the scheduling issue turns
//! them into visit states (waiting room, technical failure).

use crate::state::Services;
use skaerm_sfu::media::core::RoomEvent;
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
            } => tracing::info!(visit = %room, %participant, ?role, "joined the visit"),
            RoomEvent::ParticipantLeft {
                room,
                participant,
                role,
                reason,
            } => tracing::info!(visit = %room, %participant, ?role, ?reason, "left the visit"),
            RoomEvent::RoomClosed { room } => tracing::info!(visit = %room, "room closed"),
        }
    }
}
