//! One id, three crates: a visit is a `VisitId` to scheduling, a `VisitRef` to auth and a
//! `RoomId` to the relay (likewise staff, tenants and participants). The three libraries do not
//! know each other, so the conversions between their id newtypes live here, in one table, and
//! the rest of the server writes `visit.id.id_into()` instead of `RoomId(visit.id.0)`.

use skaerm_auth::refs::{ParticipantRef, StaffRef, TenantRef, VisitRef};
use skaerm_scheduling::{CitizenId, GuestLinkId, StaffId, TenantId, VisitId};
use skaerm_sfu::ids::{ParticipantId, RoomId};

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
