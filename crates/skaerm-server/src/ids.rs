//! One id, three crates: a visit is a `VisitId` to scheduling, a `VisitRef` to auth and a
//! `RoomId` to the relay (likewise staff, tenants and participants). The three libraries do not
//! know each other, so the conversions between their id newtypes live here, in one table, and
//! the rest of the server writes `visit.id.id_into()` instead of `RoomId(visit.id.0)`.
//! A media token's role claim (`MediaRole`) is the relay's `RoomRole` under auth's name; its
//! conversion is here too.

use skaerm_auth::refs::{ParticipantRef, StaffRef, TenantRef, VisitRef};
use skaerm_auth::tokens::MediaRole;
use skaerm_scheduling::{CitizenId, GuestLinkId, StaffId, TenantId, VisitId};
use skaerm_sfu::ids::{ParticipantId, RoomId};
use skaerm_sfu::protocol::RoomRole;

/// The same id as another crate's newtype.
pub trait IdInto<T> {
    /// The same id, as `T`.
    fn id_into(self) -> T;
}

macro_rules! same_id {
    ($($from:ident => $($to:ident),+;)*) => {
        $($(
            impl IdInto<$to> for $from {
                fn id_into(self) -> $to {
                    $to(self.0)
                }
            }
        )+)*
    };
}

same_id! {
    VisitId => VisitRef, RoomId;
    VisitRef => VisitId, RoomId;
    RoomId => VisitId, VisitRef;
    TenantId => TenantRef;
    TenantRef => TenantId;
    StaffId => StaffRef, ParticipantRef, ParticipantId;
    StaffRef => StaffId, ParticipantRef, ParticipantId;
    CitizenId => ParticipantRef, ParticipantId;
    GuestLinkId => ParticipantRef, ParticipantId;
    ParticipantRef => ParticipantId, StaffId, CitizenId, GuestLinkId;
    ParticipantId => ParticipantRef;
}

impl IdInto<RoomRole> for MediaRole {
    fn id_into(self) -> RoomRole {
        match self {
            MediaRole::Host => RoomRole::Host,
            MediaRole::Guest => RoomRole::Guest,
        }
    }
}

impl IdInto<MediaRole> for RoomRole {
    fn id_into(self) -> MediaRole {
        match self {
            RoomRole::Host => MediaRole::Host,
            RoomRole::Guest => MediaRole::Guest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_role_is_the_same_room_role() {
        for (token, room) in [
            (MediaRole::Host, RoomRole::Host),
            (MediaRole::Guest, RoomRole::Guest),
        ] {
            assert_eq!(IdInto::<RoomRole>::id_into(token), room);
            assert_eq!(IdInto::<MediaRole>::id_into(room), token);
        }
    }
}
