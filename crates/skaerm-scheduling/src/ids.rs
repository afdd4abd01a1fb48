//! Typed identifiers of the scheduling domain (UUIDs; v7 for new ones, so they sort by time).

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}

id_type!(
    /// A municipality using Skærm.
    TenantId,
    /// A staff member.
    StaffId,
    /// A citizen (pseudonymous: never a CPR number).
    CitizenId,
    /// One planned video visit.
    VisitId,
    /// A recurring series of visits.
    SeriesId,
    /// A message waiting in the outbox (care-record export, reminder).
    OutboxId,
);

macro_rules! parse_id {
    ($($name:ident),*) => {$(
        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    )*};
}
parse_id!(TenantId, StaffId, CitizenId, VisitId, SeriesId, OutboxId);
