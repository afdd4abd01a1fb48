//! Identifiers the relay hands around: rooms, participants, signalling sessions and peers.
//!
//! Rooms and participants are named by the application (a room is a visit, a participant is a
//! staff member or a citizen); sessions and peers are the relay's own, short-lived handles.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

/// A room: everyone in one visit. The server uses the visit's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub Uuid);

/// One person in a room (stable across reconnects: a rejoin replaces the old session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub Uuid);

/// One WebSocket signalling session. Unique for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// A fresh, process-unique session id.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        SessionId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The raw number (for logs).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A peer connection inside one media worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PeerKey(pub(crate) u64);

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}
display_inner!(RoomId, ParticipantId, SessionId, PeerKey);
