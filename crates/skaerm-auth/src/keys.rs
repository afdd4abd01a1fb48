//! Token signing keys: Ed25519 (JWT `EdDSA`), each named by a `kid`, with one active key and
//! any number of retired ones that still verify until their tokens expire.
//!
//! Keys live in the database (`auth_signing_keys`) so every node of an installation signs and
//! verifies with the same set, and restarts do not log everybody out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{DecodingKey, EncodingKey};
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;

/// A key failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored key is not a valid Ed25519 seed.
    #[error("stored key {0} is corrupt")]
    Corrupt(String),
    /// The key could not be encoded for signing.
    #[error("key encoding: {0}")]
    Encoding(String),
}

/// One Ed25519 key pair.
pub struct SigningKeyPair {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKeyPair {
    /// From a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Result<Self, KeyError> {
        let signing = SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        let der = signing
            .to_pkcs8_der()
            .map_err(|e| KeyError::Encoding(e.to_string()))?;
        Ok(SigningKeyPair {
            kid: kid_of(&public),
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
        })
    }

    /// A fresh random key pair and its seed.
    pub fn generate() -> Result<(Self, [u8; 32]), KeyError> {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        Ok((SigningKeyPair::from_seed(seed)?, seed))
    }

    /// Its key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The `kid` of a public key: the first 12 bytes of its SHA-256, base64url (16 characters).
fn kid_of(public: &[u8; 32]) -> String {
    let digest = Sha256::digest(public);
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

/// The active signing key plus retired keys that still verify.
pub struct KeySet {
    active: SigningKeyPair,
    verify_only: HashMap<String, DecodingKey>,
}

impl KeySet {
    /// A set with one active key and no retired ones.
    pub fn new(active: SigningKeyPair) -> Self {
        KeySet {
            active,
            verify_only: HashMap::new(),
        }
    }

    /// Adds a retired key that still verifies.
    pub fn with_retired(mut self, key: SigningKeyPair) -> Self {
        self.verify_only.insert(key.kid.clone(), key.decoding);
        self
    }

    /// The key to sign with.
    pub(crate) fn signing(&self) -> (&str, &EncodingKey) {
        (&self.active.kid, &self.active.encoding)
    }

    /// The key that verifies tokens naming `kid`, if any.
    pub(crate) fn verifying(&self, kid: &str) -> Option<&DecodingKey> {
        if kid == self.active.kid {
            Some(&self.active.decoding)
        } else {
            self.verify_only.get(kid)
        }
    }
}

/// Persistence of signing keys.
#[derive(Clone, Debug)]
pub struct KeyStore {
    pool: AnyPool,
}

impl KeyStore {
    /// Keys in this database (migrated with [`crate::migrate`]).
    pub fn new(pool: AnyPool) -> Self {
        KeyStore { pool }
    }

    /// The stored key set; on first start a key is created (in a transaction, so concurrent
    /// first starts agree on one).
    pub async fn load_or_create(&self) -> Result<KeySet, KeyError> {
        if let Some(set) = self.load().await? {
            return Ok(set);
        }
        let (_, seed) = SigningKeyPair::generate()?;
        let key = SigningKeyPair::from_seed(seed)?;
        let mut tx = self.pool.begin().await?;
        let existing =
            sqlx::query("SELECT COUNT(*) AS n FROM auth_signing_keys WHERE retired_at_ms IS NULL")
                .fetch_one(&mut *tx)
                .await?;
        let n: i64 = existing.try_get("n")?;
        if n == 0 {
            sqlx::query(
                "INSERT INTO auth_signing_keys (kid, seed, created_at_ms) VALUES ($1, $2, $3)",
            )
            .bind(key.kid.clone())
            .bind(seed.to_vec())
            .bind(Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.load()
            .await?
            .ok_or_else(|| KeyError::Corrupt("no key after creating one".into()))
    }

    /// Rotates: retires the active key and makes a fresh one active, atomically. Tokens of the
    /// retired key still verify (load the new set and hand it to the token service).
    pub async fn rotate(&self) -> Result<KeySet, KeyError> {
        let (key, seed) = SigningKeyPair::generate()?;
        let now = Utc::now().timestamp_millis();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE auth_signing_keys SET retired_at_ms = $1 WHERE retired_at_ms IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO auth_signing_keys (kid, seed, created_at_ms) VALUES ($1, $2, $3)")
            .bind(key.kid.clone())
            .bind(seed.to_vec())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.load()
            .await?
            .ok_or_else(|| KeyError::Corrupt("no key after rotating".into()))
    }

    /// Rotates when the active key was created before `before`; returns the new set then.
    pub async fn rotate_if_created_before(
        &self,
        before: chrono::DateTime<Utc>,
    ) -> Result<Option<KeySet>, KeyError> {
        let row = sqlx::query(
            "SELECT MAX(created_at_ms) AS newest FROM auth_signing_keys WHERE retired_at_ms IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        let newest: Option<i64> = row.try_get("newest")?;
        match newest {
            Some(created) if created >= before.timestamp_millis() => Ok(None),
            _ => self.rotate().await.map(Some),
        }
    }

    /// The current set, as stored (another node may have rotated).
    pub async fn reload(&self) -> Result<KeySet, KeyError> {
        self.load_or_create().await
    }

    /// Deletes keys retired before `before` (their tokens have all expired).
    pub async fn prune_retired(&self, before: chrono::DateTime<Utc>) -> Result<u64, KeyError> {
        let done = sqlx::query(
            "DELETE FROM auth_signing_keys WHERE retired_at_ms IS NOT NULL AND retired_at_ms < $1",
        )
        .bind(before.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn load(&self) -> Result<Option<KeySet>, KeyError> {
        let rows = sqlx::query(
            "SELECT kid, seed, retired_at_ms FROM auth_signing_keys ORDER BY created_at_ms DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut active = None;
        let mut retired = Vec::new();
        for row in rows {
            let kid: String = row.try_get("kid")?;
            let seed: Vec<u8> = row.try_get("seed")?;
            let seed: [u8; 32] = seed
                .try_into()
                .map_err(|_| KeyError::Corrupt(kid.clone()))?;
            let key = SigningKeyPair::from_seed(seed)?;
            let retired_at: Option<i64> = row.try_get("retired_at_ms")?;
            if retired_at.is_none() && active.is_none() {
                active = Some(key);
            } else {
                retired.push(key);
            }
        }
        Ok(active.map(|active| {
            retired
                .into_iter()
                .fold(KeySet::new(active), KeySet::with_retired)
        }))
    }
}
