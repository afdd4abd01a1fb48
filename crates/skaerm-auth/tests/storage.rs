//! Accounts and signing keys in a real database: SQLite always, PostgreSQL when
//! `TEST_DATABASE_URL` is set (in a schema of its own, dropped afterwards).

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use chrono::Utc;
use skaerm_auth::accounts::{AccountError, AccountStore};
use skaerm_auth::audit::{ActorKind, AuditAction, AuditEvent, AuditLog, SubjectKind};
use skaerm_auth::devices::{DeviceState, DeviceStore};
use skaerm_auth::identities::{Identity, IdentityStore};
use skaerm_auth::keys::KeyStore;
use skaerm_auth::refs::{SessionRef, StaffRef, TenantRef};
use skaerm_auth::roles::{Role, Roles};
use skaerm_auth::sessions::{NewSession, SessionStore};
use skaerm_auth::tokens::{SessionRequest, TokenError, TokenService};
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
                    session: SessionRef(Uuid::new_v4()),
                    staff: StaffRef(Uuid::new_v4()),
                    tenant: TenantRef(Uuid::new_v4()),
                    roles: Roles::of(&[Role::Staff]),
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

#[tokio::test]
async fn accounts_carry_their_roles() {
    for (pool, schema, _dir) in pools().await {
        let accounts = AccountStore::new(pool.clone());
        let tenant = TenantRef(Uuid::new_v4());
        let plain = accounts
            .create("mette", "correct horse", StaffRef(Uuid::new_v4()), tenant)
            .await
            .unwrap();
        assert_eq!(plain.roles, Roles::of(&[Role::Staff]));
        let ops = Roles::of(&[Role::Ops]);
        accounts
            .create_with_roles(
                "olga",
                "correct horse",
                StaffRef(Uuid::new_v4()),
                tenant,
                ops,
            )
            .await
            .unwrap();
        let olga = accounts
            .verify_login("olga", "correct horse")
            .await
            .unwrap();
        assert_eq!(olga.map(|a| a.roles), Some(ops));
        let lead = Roles::of(&[Role::Staff, Role::TeamLead]);
        assert!(accounts.set_roles("mette", lead).await.unwrap());
        let mette = accounts
            .verify_login("mette", "correct horse")
            .await
            .unwrap();
        assert_eq!(mette.map(|a| a.roles), Some(lead));
        assert!(matches!(
            accounts.set_roles("mette", Roles::NONE).await,
            Err(AccountError::Invalid(_))
        ));
        cleanup(pool, schema).await;
    }
}

#[tokio::test]
async fn sessions_refresh_rotate_and_revoke() {
    for (pool, schema, _dir) in pools().await {
        let store = SessionStore::new(pool.clone());
        let now = Utc::now();
        let new = NewSession {
            staff: StaffRef(Uuid::new_v4()),
            tenant: TenantRef(Uuid::new_v4()),
            roles: Roles::of(&[Role::Staff]),
            name: "Mette".into(),
        };
        let (session, first) = store.create(&new, now).await.unwrap();
        assert!(store.is_live(session.id, now).await.unwrap());

        let (refreshed, second) = store.refresh(&first, now).await.unwrap().unwrap();
        assert_eq!(refreshed.id, session.id);
        assert_eq!(refreshed.roles, new.roles);
        assert_ne!(first, second);
        // The old secret is spent; within the grace (two tabs) that is all.
        assert!(store.refresh(&first, now).await.unwrap().is_none());
        assert!(store.is_live(session.id, now).await.unwrap());
        // Past its end, neither live nor refreshable.
        let late = now + chrono::Duration::hours(13);
        assert!(!store.is_live(session.id, late).await.unwrap());
        assert!(store.refresh(&second, late).await.unwrap().is_none());

        store.revoke(session.id, now).await.unwrap();
        assert!(!store.is_live(session.id, now).await.unwrap());
        assert!(store.refresh(&second, now).await.unwrap().is_none());

        // A spent secret coming back after the grace: stolen, the session is revoked.
        let (stolen, s1) = store.create(&new, now).await.unwrap();
        let (_, s2) = store.refresh(&s1, now).await.unwrap().unwrap();
        let later = now + chrono::Duration::seconds(120);
        assert!(store.refresh(&s1, later).await.unwrap().is_none());
        assert!(!store.is_live(stolen.id, later).await.unwrap());
        assert!(
            store.refresh(&s2, later).await.unwrap().is_none(),
            "the owner is out too"
        );

        let (other, _) = store.create(&new, now).await.unwrap();
        let (third, _) = store.create(&new, now).await.unwrap();
        assert_eq!(store.revoke_all_for(new.staff, now).await.unwrap(), 2);
        assert!(!store.is_live(other.id, now).await.unwrap());
        assert!(!store.is_live(third.id, now).await.unwrap());
        cleanup(pool, schema).await;
    }
}

#[tokio::test]
async fn rotated_keys_sign_anew_and_old_tokens_still_verify_until_pruned() {
    for (pool, schema, _dir) in pools().await {
        let keys = KeyStore::new(pool.clone());
        let service = TokenService::new(keys.load_or_create().await.unwrap(), "skaerm");
        let request = SessionRequest {
            session: SessionRef(Uuid::new_v4()),
            staff: StaffRef(Uuid::new_v4()),
            tenant: TenantRef(Uuid::new_v4()),
            roles: Roles::of(&[Role::Admin]),
            name: "Anne".into(),
        };
        let old_kid = service.active_kid();
        let old_token = service.issue_session(&request, Utc::now()).unwrap();
        service.replace_keys(keys.rotate().await.unwrap());
        assert_ne!(service.active_kid(), old_kid);
        let new_token = service.issue_session(&request, Utc::now()).unwrap();
        assert!(service.verify_session(&old_token, Utc::now()).is_ok());
        assert!(service.verify_session(&new_token, Utc::now()).is_ok());
        // Another node loading the keys agrees on the active one.
        let other = TokenService::new(keys.load_or_create().await.unwrap(), "skaerm");
        assert_eq!(other.active_kid(), service.active_kid());

        // Not old enough: no rotation; old enough: rotation.
        let before = service.active_kid();
        assert!(
            keys.rotate_if_created_before(Utc::now() - chrono::Duration::days(1))
                .await
                .unwrap()
                .is_none()
        );
        let rotated = keys
            .rotate_if_created_before(Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap()
            .unwrap();
        service.replace_keys(rotated);
        assert_ne!(service.active_kid(), before);
        let new_token = service.issue_session(&request, Utc::now()).unwrap();

        let pruned = keys
            .prune_retired(Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(pruned, 2);
        service.replace_keys(keys.load_or_create().await.unwrap());
        assert_eq!(
            service.verify_session(&old_token, Utc::now()),
            Err(TokenError::UnknownKid)
        );
        assert!(service.verify_session(&new_token, Utc::now()).is_ok());
        cleanup(pool, schema).await;
    }
}

#[tokio::test]
async fn the_audit_log_is_append_only_and_scoped_by_tenant() {
    for (pool, schema, _dir) in pools().await {
        let log = AuditLog::new(pool.clone());
        let a = TenantRef(Uuid::new_v4());
        let b = TenantRef(Uuid::new_v4());
        let staff = Uuid::new_v4();
        let visit = Uuid::new_v4();
        let t0 = Utc::now();
        log.record(
            AuditEvent::staff(a, staff, AuditAction::Login)
                .from_ip(Some("192.0.2.7".parse().unwrap())),
            t0,
        )
        .await
        .unwrap();
        log.record(
            AuditEvent::citizen(a, Uuid::new_v4(), AuditAction::LinkExchanged)
                .visit(visit)
                .detail(&"x".repeat(500)),
            t0 + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
        log.record(AuditEvent::staff(b, staff, AuditAction::Logout), t0)
            .await
            .unwrap();

        let window = |from, to| log.list(a, from, to, 100);
        let events = window(t0, t0 + chrono::Duration::minutes(1)).await.unwrap();
        assert_eq!(events.len(), 2, "only municipality A's events");
        assert_eq!(events[0].action, AuditAction::Login);
        assert_eq!(events[0].actor_kind, ActorKind::Staff);
        assert_eq!(events[0].actor_id, Some(staff));
        assert_eq!(events[0].source_ip.as_deref(), Some("192.0.2.7"));
        assert_eq!(events[1].action, AuditAction::LinkExchanged);
        assert_eq!(events[1].subject_kind, Some(SubjectKind::Visit));
        assert_eq!(events[1].subject_id, Some(visit));
        assert_eq!(events[1].detail.as_ref().map(String::len), Some(200));
        let later = window(
            t0 + chrono::Duration::seconds(1),
            t0 + chrono::Duration::minutes(1),
        );
        assert_eq!(later.await.unwrap().len(), 1);
        assert_eq!(
            log.list(a, t0, t0 + chrono::Duration::minutes(1), 1)
                .await
                .unwrap()
                .len(),
            1
        );

        // History cannot be rewritten or erased.
        let update = sqlx::query("UPDATE audit_events SET action = 'logout'")
            .execute(&pool)
            .await;
        assert!(update.is_err(), "UPDATE must be refused");
        let delete = sqlx::query("DELETE FROM audit_events").execute(&pool).await;
        assert!(delete.is_err(), "DELETE must be refused");
        let events = window(t0, t0 + chrono::Duration::minutes(1)).await.unwrap();
        assert_eq!(events[0].action, AuditAction::Login);
        assert_eq!(events.len(), 2);
        cleanup(pool, schema).await;
    }
}

#[tokio::test]
async fn sso_identities_link_once() {
    for (pool, schema, _dir) in pools().await {
        let store = IdentityStore::new(pool.clone());
        let first = Identity {
            staff: StaffRef(Uuid::new_v4()),
            tenant: TenantRef(Uuid::new_v4()),
        };
        assert_eq!(store.find("https://idp", "sub-1").await.unwrap(), None);
        let linked = store
            .link("https://idp", "sub-1", &first, Utc::now())
            .await
            .unwrap();
        assert_eq!(linked, first);
        // A second link of the same subject keeps the first.
        let other = Identity {
            staff: StaffRef(Uuid::new_v4()),
            tenant: first.tenant,
        };
        let kept = store
            .link("https://idp", "sub-1", &other, Utc::now())
            .await
            .unwrap();
        assert_eq!(kept, first);
        // Same subject at another issuer is another person.
        assert_eq!(
            store.find("https://other-idp", "sub-1").await.unwrap(),
            None
        );
        cleanup(pool, schema).await;
    }
}

#[tokio::test]
async fn tablets_pair_once_within_the_code_window_and_unpair() {
    for (pool, schema, _dir) in pools().await {
        let store = DeviceStore::new(pool.clone());
        let now = Utc::now();
        let tenant = TenantRef(Uuid::new_v4());
        let staff = StaffRef(Uuid::new_v4());
        let citizen = Uuid::new_v4();
        let (secret, code, expires) = store.request_pairing(now, 1_000).await.unwrap();
        assert_eq!(
            store.authenticate(&secret, now).await.unwrap(),
            Some(DeviceState::Pending)
        );
        // Too late: the code has expired.
        let late = expires + chrono::Duration::seconds(1);
        assert!(
            store
                .pair(&code, tenant, citizen, staff, "x", late)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(store.authenticate(&secret, late).await.unwrap(), None);

        let device = store
            .pair(&code, tenant, citizen, staff, "Karens tablet", now)
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .pair(&code, tenant, citizen, staff, "again", now)
                .await
                .unwrap()
                .is_none(),
            "a code pairs once"
        );
        // Paired devices stay signed in long after the code window.
        let much_later = now + chrono::Duration::days(400);
        match store.authenticate(&secret, much_later).await.unwrap() {
            Some(DeviceState::Paired(paired)) => {
                assert_eq!(paired.id, device.id);
                assert_eq!(paired.citizen, citizen);
                assert_eq!(paired.label, "Karens tablet");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(store.list(tenant).await.unwrap().len(), 1);
        assert!(
            store
                .list(TenantRef(Uuid::new_v4()))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            !store
                .unpair(TenantRef(Uuid::new_v4()), device.id, now)
                .await
                .unwrap(),
            "another tenant cannot unpair it"
        );
        assert!(store.unpair(tenant, device.id, now).await.unwrap());
        assert_eq!(store.authenticate(&secret, now).await.unwrap(), None);
        assert!(store.list(tenant).await.unwrap().is_empty());
        cleanup(pool, schema).await;
    }
}

#[tokio::test]
async fn open_pairing_requests_are_capped_and_expired_ones_purged() {
    for (pool, schema, _dir) in pools().await {
        let store = DeviceStore::new(pool.clone());
        let now = Utc::now();
        for _ in 0..3 {
            store.request_pairing(now, 3).await.unwrap();
        }
        assert_eq!(store.open_requests(now).await.unwrap(), 3);
        // The fourth open request is refused and not stored.
        assert!(matches!(
            store.request_pairing(now, 3).await,
            Err(skaerm_auth::devices::DeviceError::TooManyOpenRequests)
        ));
        assert_eq!(store.open_requests(now).await.unwrap(), 3);
        // Once their codes expire they are purged, and a new request is taken.
        let later = now
            + chrono::Duration::minutes(skaerm_auth::devices::PAIRING_CODE_MINUTES)
            + chrono::Duration::seconds(1);
        assert_eq!(store.open_requests(later).await.unwrap(), 0);
        store.request_pairing(later, 3).await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth_devices")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 1, "the expired requests were deleted");
        assert_eq!(store.purge_expired_requests(later).await.unwrap(), 0);
        cleanup(pool, schema).await;
    }
}
