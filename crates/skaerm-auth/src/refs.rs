//! Typed references to the things tokens speak about. The auth crate does not depend on the
//! scheduling crate; the server converts between their ids (both are UUIDs).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! ref_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);
    )*};
}

ref_type!(
    /// A participant in a visit (staff or citizen id).
    ParticipantRef,
    /// A visit.
    VisitRef,
    /// A municipality.
    TenantRef,
    /// A staff member.
    StaffRef,
    /// A staff session (one login; revoked on logout).
    SessionRef,
);
