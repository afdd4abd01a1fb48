//! Local staff accounts: usernames and argon2id password hashes, for small installations and
//! the demo (municipalities with single sign-on use that instead).
//!
//! Hashing is deliberately slow (tens of milliseconds, 19 MiB); [`AccountStore`] runs it
//! through a bounded [`PasswordHashing`] (permits, deadline, reused memory). An unknown
//! username still costs one hash, so response time does not reveal which usernames exist.

use crate::password_hashing::{HashingError, PasswordHashing};
use crate::refs::{StaffRef, TenantRef};
use crate::roles::Roles;
use chrono::Utc;
use sqlx::{AnyPool, Row};
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password hashed (longer input is refused, not truncated).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// An account failure.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Username empty or too long, or password too short or too long.
    #[error("invalid: {0}")]
    Invalid(&'static str),
    /// The username is taken.
    #[error("username already exists")]
    Duplicate,
    /// Hashing failed or is saturated ([`HashingError::Busy`]: answer 503, retry shortly).
    #[error(transparent)]
    Hashing(#[from] HashingError),
    /// A stored row is unreadable.
    #[error("corrupt account row")]
    Corrupt,
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAccount {
    /// Lowercased username.
    pub username: String,
    /// The staff member it logs in as.
    pub staff_id: StaffRef,
    /// Their municipality.
    pub tenant_id: TenantRef,
    /// What they may do.
    pub roles: Roles,
}

fn normalise(username: &str) -> Result<String, AccountError> {
    let username = username.trim().to_lowercase();
    if username.is_empty() || username.len() > 200 {
        return Err(AccountError::Invalid("username must be 1–200 characters"));
    }
    Ok(username)
}

/// Local accounts in the shared database.
#[derive(Clone, Debug)]
pub struct AccountStore {
    pool: AnyPool,
    hashing: Arc<PasswordHashing>,
}

impl AccountStore {
    /// Accounts in this database (migrated with [`crate::migrate`]), hashed with the
    /// process-wide [`PasswordHashing::shared`].
    pub fn new(pool: AnyPool) -> Self {
        Self::with_hashing(pool, PasswordHashing::shared())
    }

    /// Accounts hashed with `hashing`.
    pub fn with_hashing(pool: AnyPool, hashing: Arc<PasswordHashing>) -> Self {
        AccountStore { pool, hashing }
    }

    /// The hasher (for its metrics).
    pub fn hashing(&self) -> &Arc<PasswordHashing> {
        &self.hashing
    }

    /// Creates an account with the `staff` role.
    pub async fn create(
        &self,
        username: &str,
        password: &str,
        staff_id: StaffRef,
        tenant_id: TenantRef,
    ) -> Result<LocalAccount, AccountError> {
        self.create_with_roles(
            username,
            password,
            staff_id,
            tenant_id,
            Roles::of(&[crate::roles::Role::Staff]),
        )
        .await
    }

    /// Creates an account with these roles (at least one).
    pub async fn create_with_roles(
        &self,
        username: &str,
        password: &str,
        staff_id: StaffRef,
        tenant_id: TenantRef,
        roles: Roles,
    ) -> Result<LocalAccount, AccountError> {
        if roles.is_empty() {
            return Err(AccountError::Invalid("an account needs at least one role"));
        }
        let username = normalise(username)?;
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(AccountError::Invalid(
                "password must be at least 8 characters",
            ));
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Err(AccountError::Invalid("password is too long"));
        }
        let hash = self.hashing.hash(password.to_owned()).await?;
        let inserted = sqlx::query(
            "INSERT INTO auth_local_accounts (username, staff_id, tenant_id, password_hash, \
             created_at_ms, roles) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(username.clone())
        .bind(staff_id.0.to_string())
        .bind(tenant_id.0.to_string())
        .bind(hash)
        .bind(Utc::now().timestamp_millis())
        .bind(roles.to_list())
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(AccountError::Duplicate);
        }
        Ok(LocalAccount {
            username,
            staff_id,
            tenant_id,
            roles,
        })
    }

    /// Whether `username` is taken (in any municipality).
    pub async fn exists(&self, username: &str) -> Result<bool, AccountError> {
        let username = normalise(username)?;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM auth_local_accounts WHERE username = $1")
            .bind(username)
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        Ok(n > 0)
    }

    /// A municipality's accounts, by username.
    pub async fn list(&self, tenant: TenantRef) -> Result<Vec<LocalAccount>, AccountError> {
        let rows = sqlx::query(
            "SELECT username, staff_id, roles FROM auth_local_accounts WHERE tenant_id = $1 \
             ORDER BY username",
        )
        .bind(tenant.0.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let staff: String = row.try_get("staff_id")?;
                let roles: String = row.try_get("roles")?;
                Ok(LocalAccount {
                    username: row.try_get("username")?,
                    staff_id: StaffRef(Uuid::from_str(&staff).map_err(|_| AccountError::Corrupt)?),
                    tenant_id: tenant,
                    roles: Roles::parse_list(&roles).map_err(|_| AccountError::Corrupt)?,
                })
            })
            .collect()
    }

    /// Replaces the roles of `username` if it belongs to `tenant`; returns the account.
    pub async fn set_roles_in(
        &self,
        tenant: TenantRef,
        username: &str,
        roles: Roles,
    ) -> Result<Option<LocalAccount>, AccountError> {
        let username = normalise(username)?;
        let Some(account) = self
            .list(tenant)
            .await?
            .into_iter()
            .find(|a| a.username == username)
        else {
            return Ok(None);
        };
        self.set_roles(&username, roles).await?;
        Ok(Some(LocalAccount { roles, ..account }))
    }

    /// Replaces an account's roles (takes effect at its next login or refresh).
    pub async fn set_roles(&self, username: &str, roles: Roles) -> Result<bool, AccountError> {
        if roles.is_empty() {
            return Err(AccountError::Invalid("an account needs at least one role"));
        }
        let username = normalise(username)?;
        let updated = sqlx::query("UPDATE auth_local_accounts SET roles = $1 WHERE username = $2")
            .bind(roles.to_list())
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// The account when `password` is right; `None` otherwise (unknown user or wrong password,
    /// indistinguishably).
    pub async fn verify_login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<LocalAccount>, AccountError> {
        let Ok(username) = normalise(username) else {
            return Ok(None);
        };
        if password.len() > MAX_PASSWORD_LEN {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT staff_id, tenant_id, password_hash, roles FROM auth_local_accounts \
             WHERE username = $1",
        )
        .bind(username.clone())
        .fetch_optional(&self.pool)
        .await?;
        let (account, hash) = match row {
            Some(row) => {
                let staff: String = row.try_get("staff_id")?;
                let tenant: String = row.try_get("tenant_id")?;
                let hash: String = row.try_get("password_hash")?;
                let roles: String = row.try_get("roles")?;
                let account = LocalAccount {
                    roles: Roles::parse_list(&roles).map_err(|_| AccountError::Corrupt)?,
                    username,
                    staff_id: StaffRef(Uuid::from_str(&staff).map_err(|_| AccountError::Corrupt)?),
                    tenant_id: TenantRef(
                        Uuid::from_str(&tenant).map_err(|_| AccountError::Corrupt)?,
                    ),
                };
                (Some(account), Some(hash))
            }
            None => (None, None),
        };
        let matches = self.hashing.verify(password.to_owned(), hash).await?;
        Ok(account.filter(|_| matches))
    }
}
