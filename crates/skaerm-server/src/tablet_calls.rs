//! Tablets being called: staff ring a citizen's paired tablet for a visit in progress
//! (`POST /api/devices/{id}/call`), the tablet polls for the ringing call
//! (`GET /api/device/call`), and admission lets a tablet answering a call that still rings
//! straight into the room ([`crate::admission`]). Per node, bounded; a call stops ringing after
//! [`RING`]. Not the live call list ([`crate::live_calls`]): that is rooms with people in them.

use skaerm_auth::devices::DeviceRef;
use skaerm_scheduling::VisitId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a call rings.
pub const RING: Duration = Duration::from_secs(60);
/// Most calls ringing at once (per node).
pub const MAX_CALLS: usize = 10_000;

/// Too many tablets are ringing on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many tablets are ringing")]
pub struct TooManyCalls;

/// The tablets ringing on this node: device → (visit, since ringing). Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct TabletCalls {
    ringing: Arc<Mutex<HashMap<DeviceRef, (VisitId, Instant)>>>,
}

impl TabletCalls {
    /// The calls still ringing (expired ones dropped).
    fn current(&self) -> MutexGuard<'_, HashMap<DeviceRef, (VisitId, Instant)>> {
        let mut calls = self.ringing.lock().unwrap_or_else(|e| e.into_inner());
        calls.retain(|_, (_, since)| since.elapsed() < RING);
        calls
    }

    /// The visit `device` is being called for, while the call rings.
    pub fn ringing(&self, device: DeviceRef) -> Option<VisitId> {
        self.current().get(&device).map(|(visit, _)| *visit)
    }

    /// Rings `device` for `visit` from now (a call already ringing for it starts over).
    pub fn ring(&self, device: DeviceRef, visit: VisitId) -> Result<(), TooManyCalls> {
        let mut calls = self.current();
        if calls.len() >= MAX_CALLS && !calls.contains_key(&device) {
            return Err(TooManyCalls);
        }
        calls.insert(device, (visit, Instant::now()));
        Ok(())
    }

    /// Stops ringing `device` (it was unpaired).
    pub fn hang_up(&self, device: DeviceRef) {
        self.ringing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&device);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_call_rings_until_hung_up() {
        let calls = TabletCalls::default();
        let (device, visit) = (DeviceRef(Uuid::new_v4()), VisitId(Uuid::new_v4()));
        assert_eq!(calls.ringing(device), None);
        assert_eq!(calls.ring(device, visit), Ok(()));
        assert_eq!(calls.ringing(device), Some(visit));
        calls.hang_up(device);
        assert_eq!(calls.ringing(device), None);
    }
}
