//! Single sign-on identities: which staff member an OpenID Connect subject (`iss` + `sub`)
//! logs in as. Created on a person's first SSO login (just-in-time provisioning).

use crate::refs::{StaffRef, TenantRef};
use chrono::{DateTime, Utc};
use sqlx::{AnyPool, Row};
use std::str::FromStr;
use uuid::Uuid;

/// An identity failure.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A stored row is unreadable.
    #[error("corrupt identity row")]
    Corrupt,
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A linked identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The staff member.
    pub staff: StaffRef,
    /// Their municipality.
    pub tenant: TenantRef,
}

/// Identities in the shared database.
#[derive(Clone, Debug)]
pub struct IdentityStore {
    pool: AnyPool,
}

impl IdentityStore {
    /// Identities in this database (migrated with [`crate::migrate`]).
    pub fn new(pool: AnyPool) -> Self {
        IdentityStore { pool }
    }

    /// The staff member `subject` at `issuer` logs in as.
    pub async fn find(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<Identity>, IdentityError> {
        let row = sqlx::query(
            "SELECT staff_id, tenant_id FROM auth_oidc_identities WHERE issuer = $1 AND subject = $2",
        )
        .bind(issuer.to_owned())
        .bind(subject.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let staff: String = row.try_get("staff_id")?;
            let tenant: String = row.try_get("tenant_id")?;
            Ok(Identity {
                staff: StaffRef(Uuid::from_str(&staff).map_err(|_| IdentityError::Corrupt)?),
                tenant: TenantRef(Uuid::from_str(&tenant).map_err(|_| IdentityError::Corrupt)?),
            })
        })
        .transpose()
    }

    /// Links `subject` at `issuer` to a staff member; the first link wins (returns the
    /// identity in effect).
    pub async fn link(
        &self,
        issuer: &str,
        subject: &str,
        identity: &Identity,
        now: DateTime<Utc>,
    ) -> Result<Identity, IdentityError> {
        sqlx::query(
            "INSERT INTO auth_oidc_identities (issuer, subject, staff_id, tenant_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (issuer, subject) DO NOTHING",
        )
        .bind(issuer.to_owned())
        .bind(subject.to_owned())
        .bind(identity.staff.0.to_string())
        .bind(identity.tenant.0.to_string())
        .bind(now.timestamp_millis())
        .execute(&self.pool)
        .await?;
        self.find(issuer, subject)
            .await?
            .ok_or(IdentityError::Corrupt)
    }
}
