//! Staff roles and sets of them: what a signed-in person may do.
//!
//! - `staff`: runs their own visits (sees their citizens);
//! - `team_lead`: a staff member who also reads reports for their team;
//! - `ops`: live metrics and the call list, never visit content or citizen data;
//! - `admin`: users, settings and the audit log (not visit content by itself).
//!
//! A person may hold several roles; sets are carried in session tokens and stored on
//! accounts as a comma-separated list of codes.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// One role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Care staff running visits.
    Staff,
    /// Team lead: reports for their team.
    TeamLead,
    /// Operations: metrics and the call list, no citizen data.
    Ops,
    /// Administrator: users, settings, audit log.
    Admin,
}

/// Every role, in a fixed order.
pub const ALL_ROLES: [Role; 4] = [Role::Staff, Role::TeamLead, Role::Ops, Role::Admin];

impl Role {
    /// Its stable code (`staff`, `team_lead`, `ops`, `admin`).
    pub fn code(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::TeamLead => "team_lead",
            Role::Ops => "ops",
            Role::Admin => "admin",
        }
    }

    /// The role with this code.
    pub fn from_code(code: &str) -> Option<Role> {
        ALL_ROLES.into_iter().find(|r| r.code() == code)
    }

    fn bit(self) -> u8 {
        match self {
            Role::Staff => 1,
            Role::TeamLead => 2,
            Role::Ops => 4,
            Role::Admin => 8,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A set of roles.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Roles(u8);

/// A role list that names an unknown role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl Roles {
    /// No role at all.
    pub const NONE: Roles = Roles(0);

    /// The set of these roles.
    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |acc, r| acc | r.bit()))
    }

    /// Whether `role` is in the set.
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// Whether any of `roles` is in the set.
    pub fn any_of(self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.contains(*r))
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Its roles, in [`ALL_ROLES`] order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        ALL_ROLES.into_iter().filter(move |r| self.contains(*r))
    }

    /// Parses `staff,team_lead` (spaces ignored, empty items skipped).
    pub fn parse_list(text: &str) -> Result<Roles, UnknownRole> {
        let mut roles = Roles::NONE;
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let role = Role::from_code(item).ok_or_else(|| UnknownRole(item.to_owned()))?;
            roles.0 |= role.bit();
        }
        Ok(roles)
    }

    /// `staff,team_lead`: the stored form.
    pub fn to_list(self) -> String {
        self.iter().map(Role::code).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Roles {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let list = Vec::<Role>::deserialize(deserializer)?;
        if list.len() > ALL_ROLES.len() * 4 {
            return Err(D::Error::custom("too many roles"));
        }
        Ok(Roles::of(&list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_unknown_roles_are_refused() {
        let roles = Roles::parse_list(" team_lead, staff ,").unwrap_or_default();
        assert!(roles.contains(Role::Staff) && roles.contains(Role::TeamLead));
        assert!(!roles.contains(Role::Ops));
        assert_eq!(roles.to_list(), "staff,team_lead");
        assert_eq!(
            Roles::parse_list("staff,root"),
            Err(UnknownRole("root".into()))
        );
        let json = serde_json::to_string(&roles).unwrap_or_default();
        assert_eq!(json, r#"["staff","team_lead"]"#);
        let back: Roles = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, roles);
        assert!(serde_json::from_str::<Roles>(r#"["superuser"]"#).is_err());
    }
}
