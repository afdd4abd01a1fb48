//! Identity and access for Skærm.
//!
//! - [`devices`]: registered citizen tablets (pairing codes, device secrets);
//! - [`identities`]: which staff member a single sign-on subject is;
//! - [`keys`]: Ed25519 signing keys with ids and rotation, stored in the database;
//! - [`tokens`]: media tokens (one visit, one participant) and staff session tokens;
//! - [`audit`]: the append-only audit log;
//! - [`accounts`]: local staff accounts with argon2id passwords;
//! - [`citizen_link`]: the secret in a citizen's link, and its stored hash;
//! - [`password_hashing`]: argon2id with bounded concurrency, waiting and memory;
//! - [`rate_limit`]: brute-force throttling;
//! - [`sessions`]: staff logins: refresh secrets, revocation;
//! - [`roles`]: staff roles (staff, team lead, ops, admin);
//! - [`refs`]: typed ids of what tokens refer to.

pub mod accounts;
pub mod audit;
pub mod citizen_link;
pub mod devices;
pub mod display_name;
pub mod identities;
pub mod keys;
pub mod password_hashing;
pub mod rate_limit;
pub mod refs;
pub mod roles;
pub mod sessions;
pub mod tokens;

use sqlx::AnyPool;
use sqlx::migrate::{MigrateError, Migrator};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Applies this crate's tables to the shared database (other crates keep their own
/// migrations there, so their versions are not an error).
pub async fn migrate(pool: &AnyPool) -> Result<(), MigrateError> {
    let connection = pool.acquire().await?;
    let postgres = connection.backend_name().eq_ignore_ascii_case("postgresql");
    drop(connection);
    let source = if postgres {
        &POSTGRES_MIGRATIONS
    } else {
        &SQLITE_MIGRATIONS
    };
    let mut migrator = Migrator {
        migrations: source.migrations.clone(),
        ..Migrator::DEFAULT
    };
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}
