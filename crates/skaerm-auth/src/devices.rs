//! Registered citizen tablets: a municipal tablet is paired once to a citizen and then stays
//! signed in as that citizen's device, so staff can call it.
//!
//! Pairing: the tablet asks for a pairing and gets a short code to show plus a long secret it
//! keeps; a staff member enters the code (within ten minutes) and chooses the citizen; from
//! then on the tablet's secret authenticates it as that citizen's device. Unpairing revokes the
//! secret. Code and secret are stored only as SHA-256 hashes. Pairing requests are anonymous,
//! so they are bounded: at most a configured number are open (unclaimed, unexpired) at once,
//! and expired ones are purged.

use crate::refs::{StaffRef, TenantRef};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// How long a pairing code can be entered.
pub const PAIRING_CODE_MINUTES: i64 = 10;
/// Characters of a pairing code (from [`CODE_ALPHABET`]: 40 bits).
pub const CODE_LEN: usize = 8;
/// No 0/O, 1/I/L: codes are read aloud and typed.
const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789#";
/// Characters of an encoded device secret (32 random bytes).
const SECRET_LEN: usize = 43;

/// A device failure.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// A stored row is unreadable.
    #[error("corrupt device row")]
    Corrupt,
    /// As many pairing requests are open as allowed: the request is refused (not stored).
    #[error("too many open pairing requests")]
    TooManyOpenRequests,
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A device's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct DeviceRef(pub Uuid);

/// A device's secret. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceSecret(String);

impl DeviceSecret {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        DeviceSecret(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A secret from a request, if shaped like one.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == SECRET_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| DeviceSecret(text.to_owned()))
    }

    /// The secret, for the tablet to keep.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl fmt::Debug for DeviceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceSecret(<redacted>)")
    }
}

/// A pairing code as shown on the tablet (`ABCD-EFGH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingCode(String);

impl PairingCode {
    fn generate() -> Self {
        let mut rng = rand::rng();
        let code: String = (0..CODE_LEN)
            .map(|_| {
                // 31 usable symbols ('#' excluded) with rejection sampling, no bias.
                loop {
                    let b = (rng.next_u32() & 31) as usize;
                    if CODE_ALPHABET[b] != b'#' {
                        break char::from(CODE_ALPHABET[b]);
                    }
                }
            })
            .collect();
        PairingCode(code)
    }

    /// Normalises what staff typed (case, spaces, dashes); `None` when it cannot be a code.
    pub fn parse(text: &str) -> Option<Self> {
        let code: String = text
            .chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_uppercase())
            .take(CODE_LEN + 1)
            .collect();
        (code.len() == CODE_LEN
            && code
                .bytes()
                .all(|b| CODE_ALPHABET.contains(&b) && b != b'#'))
        .then_some(PairingCode(code))
    }

    /// `ABCD-EFGH`, to display.
    pub fn display(&self) -> String {
        format!("{}-{}", &self.0[..4], &self.0[4..])
    }

    fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

/// What a device secret currently stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceState {
    /// Waiting for staff to enter its code.
    Pending,
    /// Paired to a citizen.
    Paired(PairedDevice),
}

/// A paired device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairedDevice {
    /// Its id.
    pub id: DeviceRef,
    /// The municipality.
    pub tenant: TenantRef,
    /// The citizen it belongs to.
    pub citizen: Uuid,
    /// A label chosen by staff ("Karens tablet").
    pub label: String,
    /// When it was paired.
    pub paired_at: DateTime<Utc>,
}

/// Devices in the shared database.
#[derive(Clone, Debug)]
pub struct DeviceStore {
    pool: AnyPool,
}

impl DeviceStore {
    /// Devices in this database (migrated with [`crate::migrate`]).
    pub fn new(pool: AnyPool) -> Self {
        DeviceStore { pool }
    }

    /// Removes the pairing requests whose code expired unclaimed; how many.
    pub async fn purge_expired_requests(&self, now: DateTime<Utc>) -> Result<u64, DeviceError> {
        let done = sqlx::query(
            "DELETE FROM auth_devices WHERE paired_at_ms IS NULL AND code_expires_at_ms < $1",
        )
        .bind(now.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Pairing requests open now (unclaimed, code not expired, not revoked).
    pub async fn open_requests(&self, now: DateTime<Utc>) -> Result<u64, DeviceError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM auth_devices WHERE paired_at_ms IS NULL \
             AND revoked_at_ms IS NULL AND code_expires_at_ms >= $1",
        )
        .bind(now.timestamp_millis())
        .fetch_one(&self.pool)
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// A tablet asks to be paired: returns the secret it keeps and the code it shows. Pending
    /// requests whose code expired are removed first; with `max_open` requests already open
    /// the request is refused with [`DeviceError::TooManyOpenRequests`] (a best-effort cap:
    /// concurrent requests may overshoot it by their number).
    pub async fn request_pairing(
        &self,
        now: DateTime<Utc>,
        max_open: u64,
    ) -> Result<(DeviceSecret, PairingCode, DateTime<Utc>), DeviceError> {
        self.purge_expired_requests(now).await?;
        if self.open_requests(now).await? >= max_open {
            return Err(DeviceError::TooManyOpenRequests);
        }
        let secret = DeviceSecret::generate();
        let code = PairingCode::generate();
        let expires = now + Duration::minutes(PAIRING_CODE_MINUTES);
        sqlx::query(
            "INSERT INTO auth_devices (id, secret_hash, code_hash, code_expires_at_ms, \
             created_at_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(secret.hash())
        .bind(code.hash())
        .bind(expires.timestamp_millis())
        .bind(now.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok((secret, code, expires))
    }

    /// Staff enter a code: the waiting tablet becomes `citizen`'s device. `None` when the code
    /// is unknown, expired or already used.
    pub async fn pair(
        &self,
        code: &PairingCode,
        tenant: TenantRef,
        citizen: Uuid,
        staff: StaffRef,
        label: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<PairedDevice>, DeviceError> {
        let label: String = label.chars().take(100).collect();
        let Some(row) = sqlx::query(
            "SELECT id FROM auth_devices WHERE code_hash = $1 AND paired_at_ms IS NULL \
             AND revoked_at_ms IS NULL AND code_expires_at_ms > $2",
        )
        .bind(code.hash())
        .bind(now.timestamp_millis())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        let done = sqlx::query(
            "UPDATE auth_devices SET tenant_id = $1, citizen_id = $2, label = $3, \
             paired_by = $4, paired_at_ms = $5, code_hash = NULL \
             WHERE id = $6 AND paired_at_ms IS NULL",
        )
        .bind(tenant.0.to_string())
        .bind(citizen.to_string())
        .bind(label.clone())
        .bind(staff.0.to_string())
        .bind(now.timestamp_millis())
        .bind(id.clone())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        Ok(Some(PairedDevice {
            id: DeviceRef(Uuid::from_str(&id).map_err(|_| DeviceError::Corrupt)?),
            tenant,
            citizen,
            label,
            paired_at: now,
        }))
    }

    /// What `secret` stands for now; `None` when unknown, revoked, or pending past its code.
    pub async fn authenticate(
        &self,
        secret: &DeviceSecret,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceState>, DeviceError> {
        let Some(row) = sqlx::query(
            "SELECT id, tenant_id, citizen_id, label, paired_at_ms, code_expires_at_ms \
             FROM auth_devices WHERE secret_hash = $1 AND revoked_at_ms IS NULL",
        )
        .bind(secret.hash())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let paired_at: Option<i64> = row.try_get("paired_at_ms")?;
        let Some(paired_at) = paired_at else {
            let expires: i64 = row.try_get("code_expires_at_ms")?;
            return Ok((expires > now.timestamp_millis()).then_some(DeviceState::Pending));
        };
        Ok(Some(DeviceState::Paired(paired_of(&row, paired_at)?)))
    }

    /// A municipality's paired devices.
    pub async fn list(&self, tenant: TenantRef) -> Result<Vec<PairedDevice>, DeviceError> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, citizen_id, label, paired_at_ms FROM auth_devices \
             WHERE tenant_id = $1 AND paired_at_ms IS NOT NULL AND revoked_at_ms IS NULL \
             ORDER BY paired_at_ms",
        )
        .bind(tenant.0.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| paired_of(row, row.try_get("paired_at_ms")?))
            .collect()
    }

    /// One paired device of a municipality.
    pub async fn get(
        &self,
        tenant: TenantRef,
        id: DeviceRef,
    ) -> Result<Option<PairedDevice>, DeviceError> {
        Ok(self.list(tenant).await?.into_iter().find(|d| d.id == id))
    }

    /// Unpairs (revokes) a municipality's device. Whether it was paired.
    pub async fn unpair(
        &self,
        tenant: TenantRef,
        id: DeviceRef,
        now: DateTime<Utc>,
    ) -> Result<bool, DeviceError> {
        let done = sqlx::query(
            "UPDATE auth_devices SET revoked_at_ms = $1 WHERE id = $2 AND tenant_id = $3 \
             AND revoked_at_ms IS NULL",
        )
        .bind(now.timestamp_millis())
        .bind(id.0.to_string())
        .bind(tenant.0.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn paired_of(row: &sqlx::any::AnyRow, paired_at: i64) -> Result<PairedDevice, DeviceError> {
    let uuid = |column: &str| -> Result<Uuid, DeviceError> {
        let text: Option<String> = row.try_get(column)?;
        Uuid::from_str(&text.ok_or(DeviceError::Corrupt)?).map_err(|_| DeviceError::Corrupt)
    };
    let label: Option<String> = row.try_get("label")?;
    Ok(PairedDevice {
        id: DeviceRef(uuid("id")?),
        tenant: TenantRef(uuid("tenant_id")?),
        citizen: uuid("citizen_id")?,
        label: label.unwrap_or_default(),
        paired_at: DateTime::from_timestamp_millis(paired_at).ok_or(DeviceError::Corrupt)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unambiguous_and_parse_as_typed() {
        for _ in 0..200 {
            let code = PairingCode::generate();
            assert_eq!(code.0.len(), CODE_LEN);
            assert!(!code.0.contains(['0', 'O', '1', 'I', 'L', '#']), "{code:?}");
            let typed = code.display().to_lowercase();
            assert_eq!(PairingCode::parse(&typed), Some(code.clone()));
        }
        assert_eq!(PairingCode::parse("ABCD-EFG"), None);
        assert_eq!(PairingCode::parse("ABCD-EFGH-J"), None);
        assert_eq!(PairingCode::parse("ABCD-EFG0"), None);
        assert_eq!(PairingCode::parse("<script>"), None);
    }
}
