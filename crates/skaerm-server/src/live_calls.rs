//! The live call list for operations: which visits have people in their room right now, per
//! municipality, with how many staff and citizens — never names or citizen data. Fed by the
//! relay's room events; a plain state machine (input and `now`), bounded.

use crate::state::Services;
use chrono::{DateTime, Utc};
use serde::Serialize;
use skaerm_scheduling::VisitId;
use skaerm_sfu::media::core::RoomEvent;
use skaerm_sfu::protocol::Role;
use std::collections::HashMap;
use uuid::Uuid;

/// Most calls tracked (far above what one node's relay carries).
pub const MAX_CALLS: usize = 100_000;

/// One call in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveCall {
    /// The visit.
    pub visit_id: Uuid,
    /// Its municipality.
    #[serde(skip)]
    pub tenant: Uuid,
    /// When the first participant joined.
    pub since: DateTime<Utc>,
    /// Staff in the room.
    pub staff: u32,
    /// Citizens and guests in the room.
    pub citizens: u32,
}

/// Calls in progress on this node.
#[derive(Debug, Default)]
pub struct LiveCalls {
    calls: HashMap<Uuid, LiveCall>,
}

impl LiveCalls {
    /// Someone joined `visit` (of `tenant`) at `now`.
    pub fn joined(&mut self, visit: Uuid, tenant: Uuid, role: Role, now: DateTime<Utc>) {
        if !self.calls.contains_key(&visit) && self.calls.len() >= MAX_CALLS {
            return;
        }
        let call = self.calls.entry(visit).or_insert(LiveCall {
            visit_id: visit,
            tenant,
            since: now,
            staff: 0,
            citizens: 0,
        });
        match role {
            Role::Host => call.staff += 1,
            Role::Guest => call.citizens += 1,
        }
    }

    /// Someone left `visit`; the call disappears when its room is empty.
    pub fn left(&mut self, visit: Uuid, role: Role) {
        if let Some(call) = self.calls.get_mut(&visit) {
            match role {
                Role::Host => call.staff = call.staff.saturating_sub(1),
                Role::Guest => call.citizens = call.citizens.saturating_sub(1),
            }
            if call.staff == 0 && call.citizens == 0 {
                self.calls.remove(&visit);
            }
        }
    }

    /// The room closed.
    pub fn closed(&mut self, visit: Uuid) {
        self.calls.remove(&visit);
    }

    /// A municipality's calls, oldest first.
    pub fn of_tenant(&self, tenant: Uuid) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = self
            .calls
            .values()
            .filter(|c| c.tenant == tenant)
            .cloned()
            .collect();
        calls.sort_by_key(|c| (c.since, c.visit_id));
        calls
    }
}

/// Applies a room event to the services' live call list.
pub async fn observe(services: &Services, event: &RoomEvent) {
    let joined = match event {
        RoomEvent::ParticipantJoined { room, role, .. } => Some((room.0, *role)),
        RoomEvent::ParticipantLeft { room, role, .. } => {
            services.live_calls().left(room.0, *role);
            None
        }
        RoomEvent::RoomClosed { room } => {
            services.live_calls().closed(room.0);
            None
        }
        RoomEvent::ParticipantWaiting { .. } => None,
    };
    if let Some((visit, role)) = joined {
        match services.store.get_visit(VisitId(visit)).await {
            Ok(v) => services
                .live_calls()
                .joined(visit, v.tenant_id.0, role, Utc::now()),
            Err(err) => tracing::warn!(%err, %visit, "live call for an unknown visit ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_appear_count_and_disappear_per_tenant() {
        let mut live = LiveCalls::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (v1, v2) = (Uuid::new_v4(), Uuid::new_v4());
        let t0 = Utc::now();
        live.joined(v1, a, Role::Host, t0);
        live.joined(v1, a, Role::Guest, t0);
        live.joined(v2, b, Role::Host, t0);
        let calls = live.of_tenant(a);
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].staff, calls[0].citizens), (1, 1));
        live.left(v1, Role::Guest);
        assert_eq!(live.of_tenant(a)[0].citizens, 0);
        live.left(v1, Role::Host);
        assert!(live.of_tenant(a).is_empty());
        // A leave without a join never underflows or resurrects.
        live.left(v1, Role::Host);
        assert!(live.of_tenant(a).is_empty());
        live.closed(v2);
        assert!(live.of_tenant(b).is_empty());
    }
}
