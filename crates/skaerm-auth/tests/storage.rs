//! Accounts and signing keys in a real database: SQLite always, PostgreSQL when
//! `TEST_DATABASE_URL` is set (in a schema of its own, dropped afterwards).

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use chrono::Utc;
use skaerm_auth::accounts::{AccountError, AccountStore};
use skaerm_auth::keys::KeyStore;
use skaerm_auth::refs::{StaffRef, TenantRef};
use skaerm_auth::tokens::{SessionRequest, TokenService};
use sqlx::{AnyPool, Executor};
use uuid::Uuid;

/// Pools for each available backend, with their cleanup.
async fn pools() -> Vec<(
    AnyPool,
    Option<(AnyPool, String)>,
    Option<tempfile::TempDir>,
)> {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = AnyPool::connect(&format!(
        "sqlite://{}/auth.db?mode=rwc",
        dir.path().display()
    ))
    .await
    .unwrap();
    let mut pools = vec![(sqlite, None, Some(dir))];
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) => {
            let admin = AnyPool::connect(&base).await.unwrap();
            let schema = format!("skaerm_auth_test_{}", Uuid::new_v4().simple());
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .await
                .unwrap();
            let separator = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
            pools.push((
                AnyPool::connect(&url).await.unwrap(),
                Some((admin, schema)),
                None,
            ));
        }
        Err(_) => eprintln!("TEST_DATABASE_URL is not set: PostgreSQL cases skipped"),
    }
    for (pool, _, _) in &pools {
        skaerm_auth::migrate(pool).await.unwrap();
    }
    pools
}

async fn cleanup(pool: AnyPool, schema: Option<(AnyPool, String)>) {
    pool.close().await;
    if let Some((admin, schema)) = schema {
        admin
            .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn accounts_log_in_only_with_the_right_password() {
    for (pool, schema, _dir) in pools().await {
        let accounts = AccountStore::new(pool.clone());
        let staff = StaffRef(Uuid::new_v4());
        let tenant = TenantRef(Uuid::new_v4());
        let created = accounts
            .create("Mette", "correct horse", staff, tenant)
            .await
            .unwrap();
        assert_eq!(created.username, "mette", "usernames are case-insensitive");

        let ok = accounts
            .verify_login("METTE", "correct horse")
            .await
            .unwrap();
        assert_eq!(ok.map(|a| a.staff_id), Some(staff));
        assert_eq!(
            accounts.verify_login("mette", "wrong horse").await.unwrap(),
            None
        );
        assert_eq!(
            accounts
                .verify_login("nobody", "correct horse")
                .await
                .unwrap(),
            None
        );
        assert_eq!(accounts.verify_login("", "x").await.unwrap(), None);
        assert_eq!(
            accounts
                .verify_login("mette", &"x".repeat(5000))
                .await
                .unwrap(),
            None
        );

        assert!(matches!(
            accounts
                .create("mette", "another password", staff, tenant)
                .await,
            Err(AccountError::Duplicate)
        ));
        assert!(matches!(
            accounts.create("jonas", "short", staff, tenant).await,
            Err(AccountError::Invalid(_))
        ));
        cleanup(pool, schema).await;
    }
}

#[tokio::test]
async fn signing_keys_are_created_once_and_reused() {
    for (pool, schema, _dir) in pools().await {
        let first = TokenService::new(
            KeyStore::new(pool.clone()).load_or_create().await.unwrap(),
            "skaerm",
        );
        let session = first
            .issue_session(
                &SessionRequest {
                    staff: StaffRef(Uuid::new_v4()),
                    tenant: TenantRef(Uuid::new_v4()),
                    name: "Mette".into(),
                },
                Utc::now(),
            )
            .unwrap();
        // A restart (or another node) loads the same key: the session stays valid.
        let second = TokenService::new(
            KeyStore::new(pool.clone()).load_or_create().await.unwrap(),
            "skaerm",
        );
        assert!(second.verify_session(&session, Utc::now()).is_ok());
        cleanup(pool, schema).await;
    }
}
