//! Staff sessions: one row per login. The browser holds a short-lived access JWT (see
//! [`crate::tokens`]) naming the session, and an opaque refresh secret (stored only as its
//! SHA-256) that buys a new access token while the session lives. Each refresh rotates the
//! secret; logout revokes the row, which also invalidates every access token naming it.

use crate::refs::{SessionRef, StaffRef, TenantRef};
use crate::roles::Roles;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// Longest a login lasts without logging in again.
pub const SESSION_LIFETIME_HOURS: i64 = 12;
/// How long a just-spent refresh secret is tolerated (two tabs refreshing at once).
pub const REUSE_GRACE_SECONDS: i64 = 60;
/// Characters of an encoded refresh secret (32 random bytes).
const REFRESH_LEN: usize = 43;

/// A session failure.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A stored row is unreadable.
    #[error("corrupt session row")]
    Corrupt,
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The refresh secret of a session. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshSecret(String);

impl RefreshSecret {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        RefreshSecret(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A secret from a cookie, if it is shaped like one.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == REFRESH_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| RefreshSecret(text.to_owned()))
    }

    /// The secret, to put in the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshSecret(<redacted>)")
    }
}

/// Who a session is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The staff member.
    pub staff: StaffRef,
    /// Their municipality.
    pub tenant: TenantRef,
    /// Their roles at login.
    pub roles: Roles,
    /// Their display name.
    pub name: String,
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its id (the access token's `sid`).
    pub id: SessionRef,
    /// The staff member.
    pub staff: StaffRef,
    /// Their municipality.
    pub tenant: TenantRef,
    /// Their roles.
    pub roles: Roles,
    /// Their display name.
    pub name: String,
    /// When it ends at the latest.
    pub expires_at: DateTime<Utc>,
}

/// Sessions in the shared database.
#[derive(Clone, Debug)]
pub struct SessionStore {
    pool: AnyPool,
}

impl SessionStore {
    /// Sessions in this database (migrated with [`crate::migrate`]).
    pub fn new(pool: AnyPool) -> Self {
        SessionStore { pool }
    }

    /// Opens a session at `now`; returns it and its first refresh secret.
    pub async fn create(
        &self,
        new: &NewSession,
        now: DateTime<Utc>,
    ) -> Result<(Session, RefreshSecret), SessionError> {
        let secret = RefreshSecret::generate();
        let session = Session {
            id: SessionRef(Uuid::now_v7()),
            staff: new.staff,
            tenant: new.tenant,
            roles: new.roles,
            name: new.name.clone(),
            expires_at: now + Duration::hours(SESSION_LIFETIME_HOURS),
        };
        sqlx::query(
            "INSERT INTO auth_sessions (id, staff_id, tenant_id, roles, display_name, \
             refresh_hash, created_at_ms, expires_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(session.id.0.to_string())
        .bind(session.staff.0.to_string())
        .bind(session.tenant.0.to_string())
        .bind(session.roles.to_list())
        .bind(session.name.clone())
        .bind(secret.hash())
        .bind(now.timestamp_millis())
        .bind(session.expires_at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok((session, secret))
    }

    /// Exchanges a refresh secret for a new one, if its session is live; the old secret
    /// stops working. A secret spent more than [`REUSE_GRACE_SECONDS`] ago that comes back
    /// was copied: the session is revoked (the thief and the owner both lose it).
    pub async fn refresh(
        &self,
        secret: &RefreshSecret,
        now: DateTime<Utc>,
    ) -> Result<Option<(Session, RefreshSecret)>, SessionError> {
        let old = secret.hash();
        let Some(row) = sqlx::query(
            "SELECT id, staff_id, tenant_id, roles, display_name, expires_at_ms \
             FROM auth_sessions WHERE refresh_hash = $1 AND revoked_at_ms IS NULL \
             AND expires_at_ms > $2",
        )
        .bind(old.clone())
        .bind(now.timestamp_millis())
        .fetch_optional(&self.pool)
        .await?
        else {
            self.revoke_on_reuse(&old, now).await?;
            return Ok(None);
        };
        let session = session_of(&row)?;
        let next = RefreshSecret::generate();
        // Compare-and-swap: of two concurrent refreshes with one secret, one wins.
        let swapped = sqlx::query(
            "UPDATE auth_sessions SET refresh_hash = $1, previous_refresh_hash = $3, \
             rotated_at_ms = $4 WHERE id = $2 AND refresh_hash = $3 AND revoked_at_ms IS NULL",
        )
        .bind(next.hash())
        .bind(session.id.0.to_string())
        .bind(old)
        .bind(now.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok((swapped.rows_affected() == 1).then_some((session, next)))
    }

    async fn revoke_on_reuse(&self, old: &[u8], now: DateTime<Utc>) -> Result<(), SessionError> {
        let revoked = sqlx::query(
            "UPDATE auth_sessions SET revoked_at_ms = $1 WHERE previous_refresh_hash = $2 \
             AND revoked_at_ms IS NULL AND rotated_at_ms < $3",
        )
        .bind(now.timestamp_millis())
        .bind(old.to_vec())
        .bind((now - Duration::seconds(REUSE_GRACE_SECONDS)).timestamp_millis())
        .execute(&self.pool)
        .await?;
        if revoked.rows_affected() > 0 {
            tracing::warn!("a spent refresh secret came back: session revoked");
        }
        Ok(())
    }

    /// Whether the session is live (not revoked, not past its end) at `now`.
    pub async fn is_live(&self, id: SessionRef, now: DateTime<Utc>) -> Result<bool, SessionError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM auth_sessions WHERE id = $1 AND revoked_at_ms IS NULL \
             AND expires_at_ms > $2",
        )
        .bind(id.0.to_string())
        .bind(now.timestamp_millis())
        .fetch_one(&self.pool)
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n > 0)
    }

    /// Revokes a session (logout). Revoking twice is harmless.
    pub async fn revoke(&self, id: SessionRef, now: DateTime<Utc>) -> Result<(), SessionError> {
        sqlx::query(
            "UPDATE auth_sessions SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(now.timestamp_millis())
        .bind(id.0.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes every session of a staff member (account disabled, roles changed).
    pub async fn revoke_all_for(
        &self,
        staff: StaffRef,
        now: DateTime<Utc>,
    ) -> Result<u64, SessionError> {
        let done = sqlx::query(
            "UPDATE auth_sessions SET revoked_at_ms = $1 WHERE staff_id = $2 \
             AND revoked_at_ms IS NULL",
        )
        .bind(now.timestamp_millis())
        .bind(staff.0.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

fn session_of(row: &sqlx::any::AnyRow) -> Result<Session, SessionError> {
    let uuid = |column: &str| -> Result<Uuid, SessionError> {
        let text: String = row.try_get(column)?;
        Uuid::from_str(&text).map_err(|_| SessionError::Corrupt)
    };
    let roles: String = row.try_get("roles")?;
    let expires: i64 = row.try_get("expires_at_ms")?;
    Ok(Session {
        id: SessionRef(uuid("id")?),
        staff: StaffRef(uuid("staff_id")?),
        tenant: TenantRef(uuid("tenant_id")?),
        roles: Roles::parse_list(&roles).map_err(|_| SessionError::Corrupt)?,
        name: row.try_get("display_name")?,
        expires_at: DateTime::from_timestamp_millis(expires).ok_or(SessionError::Corrupt)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_secrets_parse_only_their_own_shape() {
        let s = RefreshSecret::generate();
        assert_eq!(RefreshSecret::parse(s.expose()), Some(s.clone()));
        assert!(RefreshSecret::parse("").is_none());
        assert!(RefreshSecret::parse(&"a".repeat(44)).is_none());
        assert!(RefreshSecret::parse(&"<".repeat(43)).is_none());
        assert!(!format!("{s:?}").contains(s.expose()));
    }
}
