//! What the server does when people join and leave visit rooms. For now it records them in
//! the log (who, which visit, which role — never media or names); the scheduling issue turns
//! them into visit states (waiting room: `ParticipantWaiting`; technical failure).

use crate::state::Services;
use skaerm_sfu::media::core::RoomEvent;
use tokio::sync::mpsc;

/// Drains the relay's room events until the relay stops.
pub async fn run(_services: Services, mut events: mpsc::Receiver<RoomEvent>) {
    while let Some(event) = events.recv().await {
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
            } => {
                // The visit's lifecycle transition in_progress/planned → waiting ("the citizen
                // is in the waiting room", shown live in the staff list) belongs here; the
                // scheduling branch adds the `waiting` status and the lead wires it at merge.
                tracing::info!(visit = %room, %participant, ?role, "waiting to be admitted")
            }
            RoomEvent::RoomClosed { room } => tracing::info!(visit = %room, "room closed"),
        }
    }
}
