//! What the server does when people join and leave visit rooms: a citizen joining moves the
//! visit to `waiting` (the waiting room), leaving before staff start moves it back to `ready`.
//! Everything is logged with ids and roles only — never media or names.

use crate::state::Services;
use chrono::Utc;
use skaerm_scheduling::{StoreError, VisitId};
use skaerm_sfu::media::core::RoomEvent;
use skaerm_sfu::protocol::Role;
use tokio::sync::mpsc;

/// Drains the relay's room events until the relay stops.
pub async fn run(services: Services, mut events: mpsc::Receiver<RoomEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            RoomEvent::ParticipantJoined {
                room,
                participant,
                role,
            } => {
                tracing::info!(visit = %room, %participant, ?role, "joined the visit");
                if role == Role::Guest {
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
                if role == Role::Guest {
                    let result = services
                        .store
                        .citizen_left(VisitId(room.0), Utc::now())
                        .await;
                    log_refusal(result, "citizen left");
                }
            }
            RoomEvent::RoomClosed { room } => tracing::info!(visit = %room, "room closed"),
        }
    }
}

fn log_refusal<T>(result: Result<T, StoreError>, what: &str) {
    match result {
        Ok(_) | Err(StoreError::IllegalTransition(_)) => {}
        Err(err) => tracing::warn!(%err, what, "could not record a room event on the visit"),
    }
}
