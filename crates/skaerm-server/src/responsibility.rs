//! Who is responsible for a citizen: the one rule that decides which staff may pair, unpair
//! and see a citizen's tablets (issue 14). Until the caseload exists (issue 15 replaces this),
//! a staff member is responsible for the citizens of the visits they own or co-host, a team
//! lead also for the citizens of their team's visits, and an admin for every citizen of the
//! municipality.

use crate::services::Services;
use skaerm_auth::roles::{Role, Roles};
use skaerm_scheduling::{CitizenId, StaffId, StoreError, TenantId};
use std::collections::HashSet;

/// The citizens a staff member is responsible for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CitizensInCare {
    /// Every citizen of the municipality (an admin).
    All,
    /// These citizens only.
    Only(HashSet<CitizenId>),
}

impl CitizensInCare {
    /// Whether `citizen` is among them.
    pub fn includes(&self, citizen: CitizenId) -> bool {
        match self {
            CitizensInCare::All => true,
            CitizensInCare::Only(citizens) => citizens.contains(&citizen),
        }
    }
}

/// The citizens of `tenant` that `staff` (holding `roles`) is responsible for.
pub async fn citizens_in_care_of(
    services: &Services,
    tenant: TenantId,
    staff: StaffId,
    roles: Roles,
) -> Result<CitizensInCare, StoreError> {
    if roles.contains(Role::Admin) {
        return Ok(CitizensInCare::All);
    }
    let team = if roles.contains(Role::TeamLead) {
        services.store.get_staff(staff).await?.team
    } else {
        None
    };
    let citizens = services
        .store
        .citizens_served_by(tenant, staff, team.as_deref())
        .await?;
    Ok(CitizensInCare::Only(citizens.into_iter().collect()))
}

/// Whether `staff` (holding `roles`) is responsible for `citizen` of `tenant`.
pub async fn is_responsible_for_citizen(
    services: &Services,
    tenant: TenantId,
    staff: StaffId,
    roles: Roles,
    citizen: CitizenId,
) -> Result<bool, StoreError> {
    Ok(citizens_in_care_of(services, tenant, staff, roles)
        .await?
        .includes(citizen))
}
