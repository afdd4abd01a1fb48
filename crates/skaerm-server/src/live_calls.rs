//! The live call list for operations: which visits have people in their room right now, per
//! municipality, with how many staff and citizens — never names or citizen data. Fed by the
//! relay's room events ([`crate::room_events`] loads the visit); a plain state machine (input
//! and `now`), bounded, that reads no storage.
//!
//! Only participants who joined the room are counted, by id: someone who only waited in the
//! waiting room and left (or was denied) emits a leave for a join that never came, which must
//! not take someone else's place off the count; a repeated join or leave counts once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use skaerm_sfu::media::core::RoomEvent;
use skaerm_sfu::protocol::RoomRole;
use std::collections::HashMap;
use uuid::Uuid;

/// Most calls tracked (far above what one node's relay carries).
pub const MAX_CALLS: usize = 100_000;
/// Most participants tracked per call (far above the relay's room size).
pub const MAX_MEMBERS: usize = 64;

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

/// One call and who is in it (participant id → role).
#[derive(Debug)]
struct Entry {
    call: LiveCall,
    members: HashMap<Uuid, RoomRole>,
}

impl Entry {
    fn recount(&mut self) {
        let staff = self
            .members
            .values()
            .filter(|r| **r == RoomRole::Host)
            .count();
        self.call.staff = u32::try_from(staff).unwrap_or(u32::MAX);
        self.call.citizens = u32::try_from(self.members.len() - staff).unwrap_or(u32::MAX);
    }
}

/// Calls in progress on this node.
#[derive(Debug, Default)]
pub struct LiveCalls {
    calls: HashMap<Uuid, Entry>,
}

impl LiveCalls {
    /// `participant` joined `visit` (of `tenant`) in `role` at `now`.
    pub fn joined(
        &mut self,
        visit: Uuid,
        tenant: Uuid,
        participant: Uuid,
        role: RoomRole,
        now: DateTime<Utc>,
    ) {
        if !self.calls.contains_key(&visit) && self.calls.len() >= MAX_CALLS {
            return;
        }
        let entry = self.calls.entry(visit).or_insert_with(|| Entry {
            call: LiveCall {
                visit_id: visit,
                tenant,
                since: now,
                staff: 0,
                citizens: 0,
            },
            members: HashMap::new(),
        });
        if entry.members.contains_key(&participant) || entry.members.len() < MAX_MEMBERS {
            entry.members.insert(participant, role);
        }
        entry.recount();
    }

    /// `participant` left `visit` (from the room, or only from its waiting room); the call
    /// disappears when its room is empty.
    pub fn left(&mut self, visit: Uuid, participant: Uuid) {
        if let Some(entry) = self.calls.get_mut(&visit) {
            entry.members.remove(&participant);
            entry.recount();
            if entry.members.is_empty() {
                self.calls.remove(&visit);
            }
        }
    }

    /// The room closed.
    pub fn closed(&mut self, visit: Uuid) {
        self.calls.remove(&visit);
    }

    /// Whether someone is in `visit`'s room on this node.
    pub fn contains(&self, visit: Uuid) -> bool {
        self.calls.contains_key(&visit)
    }

    /// Applies a room event at `now`; `tenant` is the municipality of the room's visit (a join
    /// to a room whose visit is unknown is not counted).
    pub fn observe(&mut self, event: &RoomEvent, tenant: Option<Uuid>, now: DateTime<Utc>) {
        match event {
            RoomEvent::ParticipantJoined {
                room,
                participant,
                role,
            } => {
                if let Some(tenant) = tenant {
                    self.joined(room.0, tenant, participant.0, *role, now);
                }
            }
            RoomEvent::ParticipantLeft {
                room, participant, ..
            } => self.left(room.0, participant.0),
            RoomEvent::RoomClosed { room } => self.closed(room.0),
            RoomEvent::ParticipantWaiting { .. } | RoomEvent::ParticipantAdmitted { .. } => {}
        }
    }

    /// The calls of `tenant`, oldest first.
    pub fn of_tenant(&self, tenant: Uuid) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = self
            .calls
            .values()
            .map(|e| &e.call)
            .filter(|c| c.tenant == tenant)
            .cloned()
            .collect();
        calls.sort_by_key(|c| (c.since, c.visit_id));
        calls
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
        let (host, citizen, other_host) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let t0 = Utc::now();
        live.joined(v1, a, host, RoomRole::Host, t0);
        live.joined(v1, a, citizen, RoomRole::Guest, t0);
        live.joined(v2, b, other_host, RoomRole::Host, t0);
        let calls = live.of_tenant(a);
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].staff, calls[0].citizens), (1, 1));
        assert!(live.contains(v1));
        live.left(v1, citizen);
        assert_eq!(live.of_tenant(a)[0].citizens, 0);
        live.left(v1, host);
        assert!(live.of_tenant(a).is_empty());
        assert!(!live.contains(v1));
        // A leave without a join never underflows or resurrects.
        live.left(v1, host);
        assert!(live.of_tenant(a).is_empty());
        live.closed(v2);
        assert!(live.of_tenant(b).is_empty());
    }

    #[test]
    fn a_guest_who_only_waited_does_not_take_anyone_off_the_count() {
        let mut live = LiveCalls::default();
        let (tenant, visit) = (Uuid::new_v4(), Uuid::new_v4());
        let (host, citizen, relative) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let t0 = Utc::now();
        live.joined(visit, tenant, host, RoomRole::Host, t0);
        live.joined(visit, tenant, citizen, RoomRole::Guest, t0);
        // The relative waited, was never admitted, and went: a leave without a join.
        live.left(visit, relative);
        let calls = live.of_tenant(tenant);
        assert_eq!((calls[0].staff, calls[0].citizens), (1, 1));
        // A repeated join (a reconnect reported twice) counts once.
        live.joined(visit, tenant, citizen, RoomRole::Guest, t0);
        assert_eq!(live.of_tenant(tenant)[0].citizens, 1);
        // A waiting-only guest of an empty room leaves no call behind.
        let quiet = Uuid::new_v4();
        live.left(quiet, relative);
        assert!(!live.contains(quiet));
    }

    #[test]
    fn members_per_call_are_bounded() {
        let mut live = LiveCalls::default();
        let (tenant, visit) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..MAX_MEMBERS + 10 {
            live.joined(visit, tenant, Uuid::new_v4(), RoomRole::Guest, Utc::now());
        }
        assert_eq!(
            live.of_tenant(tenant)[0].citizens,
            u32::try_from(MAX_MEMBERS).unwrap_or(u32::MAX)
        );
    }
}
