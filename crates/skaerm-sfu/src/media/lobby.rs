//! The waiting room of each room: guests who need a host's admission wait here, cheaply (no
//! peer connection, no offer: only their session, grant and what they will publish), until a
//! host admits or denies them. Also remembers whom a host admitted, so a rejoin of the same
//! participant with the same credential (the web client rejoins by itself after a network
//! cut) skips the lobby; the same participant with another credential (a re-issued link, a
//! tablet instead of the link) waits again.
//!
//! Plain bounded bookkeeping; the decisions and messages are `MediaCore`'s.

use crate::grant::JoinGrant;
use crate::ids::{ParticipantId, RoomId, SessionId};
use crate::protocol::{Muted, ParticipantInfo, Publish};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;

/// Most participants waiting in one room's lobby at a time.
pub const MAX_WAITING_PER_ROOM: usize = 8;
/// Most admitted participants remembered per room.
const MAX_ADMITTED_PER_ROOM: usize = 32;
/// Most rooms whose admissions are remembered (oldest forgotten first).
const MAX_REMEMBERED_ROOMS: usize = 4096;

/// A participant in a waiting room.
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    /// Their signalling session.
    pub(crate) session: SessionId,
    /// Who and where (already checked by the application).
    pub(crate) grant: JoinGrant,
    /// What they will send once admitted.
    pub(crate) publish: Publish,
    /// Mute state they reported while waiting.
    pub(crate) muted: Muted,
    /// When they arrived (for logs and ordering).
    pub(crate) since: Instant,
}

impl Waiting {
    /// How hosts see them.
    pub(crate) fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            id: self.grant.participant,
            role: self.grant.role,
            display_name: self.grant.display_name.clone(),
            muted: self.muted,
        }
    }
}

/// A participant a host admitted, and the credential they were admitted with.
type Admitted = (ParticipantId, Option<uuid::Uuid>);

/// Why a participant could not be put in a waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LobbyFull {
    /// This room's lobby holds [`MAX_WAITING_PER_ROOM`] already.
    Room,
    /// The worker holds its limit of waiting participants.
    Worker,
}

/// Every room's waiting room in one worker.
#[derive(Debug)]
pub(crate) struct Lobby {
    waiting: HashMap<RoomId, Vec<Waiting>>,
    by_session: HashMap<SessionId, RoomId>,
    admitted: HashMap<RoomId, Vec<Admitted>>,
    admitted_order: VecDeque<RoomId>,
    max_total: usize,
}

impl Lobby {
    /// An empty lobby holding at most `max_total` waiting participants over all rooms.
    pub(crate) fn new(max_total: usize) -> Self {
        Lobby {
            waiting: HashMap::new(),
            by_session: HashMap::new(),
            admitted: HashMap::new(),
            admitted_order: VecDeque::new(),
            max_total,
        }
    }

    /// Number of waiting participants in the worker.
    pub(crate) fn len(&self) -> usize {
        self.by_session.len()
    }

    /// Whether a host admitted this participant, with this credential, to this room before.
    pub(crate) fn was_admitted(&self, grant: &JoinGrant) -> bool {
        self.admitted
            .get(&grant.room)
            .is_some_and(|list| list.contains(&(grant.participant, grant.credential)))
    }

    /// Remembers that this participant was admitted to this room with this credential.
    pub(crate) fn remember_admitted(&mut self, grant: &JoinGrant) {
        let room = grant.room;
        let participant = (grant.participant, grant.credential);
        if !self.admitted.contains_key(&room) {
            self.admitted_order.push_back(room);
            while self.admitted_order.len() > MAX_REMEMBERED_ROOMS {
                if let Some(old) = self.admitted_order.pop_front() {
                    self.admitted.remove(&old);
                }
            }
        }
        let list = self.admitted.entry(room).or_default();
        if !list.contains(&participant) {
            if list.len() >= MAX_ADMITTED_PER_ROOM {
                list.remove(0);
            }
            list.push(participant);
        }
    }

    /// Forgets that this participant was admitted to this room (its invitation was revoked):
    /// a later join waits again.
    pub(crate) fn forget_admitted(&mut self, room: RoomId, participant: ParticipantId) {
        if let Some(list) = self.admitted.get_mut(&room) {
            list.retain(|(p, _)| *p != participant);
        }
    }

    /// The room is over: forget its waiting room and admissions; returns who was waiting.
    pub(crate) fn close_room(&mut self, room: RoomId) -> Vec<Waiting> {
        self.admitted.remove(&room);
        self.admitted_order.retain(|r| *r != room);
        let gone = self.waiting.remove(&room).unwrap_or_default();
        for w in &gone {
            self.by_session.remove(&w.session);
        }
        gone
    }

    /// Puts a participant in their room's waiting room.
    pub(crate) fn enter(&mut self, waiting: Waiting) -> Result<(), LobbyFull> {
        let room = waiting.grant.room;
        if self.waiting.get(&room).map_or(0, Vec::len) >= MAX_WAITING_PER_ROOM {
            return Err(LobbyFull::Room);
        }
        if self.len() >= self.max_total {
            return Err(LobbyFull::Worker);
        }
        self.by_session.insert(waiting.session, room);
        self.waiting.entry(room).or_default().push(waiting);
        Ok(())
    }

    /// Who waits in `room`, in order of arrival.
    pub(crate) fn waiting_in(&self, room: RoomId) -> &[Waiting] {
        self.waiting.get(&room).map_or(&[], Vec::as_slice)
    }

    /// The waiting entry of a session, if it waits.
    pub(crate) fn by_session_mut(&mut self, session: SessionId) -> Option<&mut Waiting> {
        let room = self.by_session.get(&session)?;
        self.waiting
            .get_mut(room)?
            .iter_mut()
            .find(|w| w.session == session)
    }

    /// Takes a waiting session out of the lobby.
    pub(crate) fn remove_session(&mut self, session: SessionId) -> Option<Waiting> {
        let room = self.by_session.remove(&session)?;
        self.take(room, |w| w.session == session)
    }

    /// Takes a waiting participant out of `room`'s lobby.
    pub(crate) fn remove_participant(
        &mut self,
        room: RoomId,
        participant: ParticipantId,
    ) -> Option<Waiting> {
        let taken = self.take(room, |w| w.grant.participant == participant)?;
        self.by_session.remove(&taken.session);
        Some(taken)
    }

    fn take(&mut self, room: RoomId, matches: impl Fn(&Waiting) -> bool) -> Option<Waiting> {
        let list = self.waiting.get_mut(&room)?;
        let index = list.iter().position(matches)?;
        let taken = list.remove(index);
        if list.is_empty() {
            self.waiting.remove(&room);
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RoomRole;
    use uuid::Uuid;

    fn waiting(room: RoomId) -> Waiting {
        Waiting {
            session: SessionId::next(),
            grant: JoinGrant {
                room,
                participant: ParticipantId(Uuid::new_v4()),
                role: RoomRole::Guest,
                display_name: "g".into(),
                needs_admission: true,
                admitted_by: None,
                credential: None,
            },
            publish: Publish::default(),
            muted: Muted::default(),
            since: Instant::now(),
        }
    }

    #[test]
    fn lobbies_are_bounded_per_room_and_per_worker() {
        let mut lobby = Lobby::new(MAX_WAITING_PER_ROOM + 2);
        let room = RoomId(Uuid::new_v4());
        for _ in 0..MAX_WAITING_PER_ROOM {
            lobby.enter(waiting(room)).unwrap();
        }
        assert_eq!(lobby.enter(waiting(room)).unwrap_err(), LobbyFull::Room);
        let other = RoomId(Uuid::new_v4());
        lobby.enter(waiting(other)).unwrap();
        lobby.enter(waiting(other)).unwrap();
        assert_eq!(lobby.enter(waiting(other)).unwrap_err(), LobbyFull::Worker);
    }

    #[test]
    fn sessions_and_participants_leave_cleanly() {
        let mut lobby = Lobby::new(100);
        let room = RoomId(Uuid::new_v4());
        let a = waiting(room);
        let b = waiting(room);
        let (sa, pb) = (a.session, b.grant.participant);
        lobby.enter(a).unwrap();
        lobby.enter(b).unwrap();
        assert!(lobby.remove_session(sa).is_some());
        assert!(lobby.remove_session(sa).is_none());
        assert!(lobby.remove_participant(room, pb).is_some());
        assert_eq!(lobby.len(), 0);
        assert!(lobby.waiting_in(room).is_empty());
    }

    #[test]
    fn admissions_are_remembered_until_the_room_closes_and_bounded() {
        let mut lobby = Lobby::new(100);
        let room = RoomId(Uuid::new_v4());
        let p = waiting(room).grant;
        lobby.remember_admitted(&p);
        assert!(lobby.was_admitted(&p));
        lobby.close_room(room);
        assert!(!lobby.was_admitted(&p));
        for _ in 0..MAX_REMEMBERED_ROOMS + 5 {
            lobby.remember_admitted(&JoinGrant {
                room: RoomId(Uuid::new_v4()),
                ..p.clone()
            });
        }
        assert_eq!(lobby.admitted.len(), MAX_REMEMBERED_ROOMS);
    }

    #[test]
    fn an_admission_holds_only_for_the_credential_it_was_given_with() {
        let mut lobby = Lobby::new(100);
        let room = RoomId(Uuid::new_v4());
        let through_link = JoinGrant {
            credential: Some(Uuid::new_v4()),
            ..waiting(room).grant
        };
        lobby.remember_admitted(&through_link);
        assert!(lobby.was_admitted(&through_link));
        for other in [Some(Uuid::new_v4()), None] {
            let same_person_other_credential = JoinGrant {
                credential: other,
                ..through_link.clone()
            };
            assert!(!lobby.was_admitted(&same_person_other_credential));
        }
        lobby.forget_admitted(room, through_link.participant);
        assert!(!lobby.was_admitted(&through_link));
    }
}
