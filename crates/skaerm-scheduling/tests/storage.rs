//! The storage suite, run against a real SQLite file always and against PostgreSQL when
//! `TEST_DATABASE_URL` is set (each PostgreSQL case in a schema of its own, dropped after).

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use skaerm_scheduling::{
    LegalBasis, NewVisit, Store, StoreError, TenantId, VisitStatus, copenhagen_day_bounds,
};
use sqlx::Executor;

/// A store on a fresh database, and how to clean it up.
struct Db {
    store: Store,
    drop_schema: Option<(sqlx::AnyPool, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/skaerm.db", dir.path().display());
        Db {
            store: Store::open(&url).await.unwrap(),
            drop_schema: None,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Option<Db> {
        let Ok(base) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("TEST_DATABASE_URL is not set: PostgreSQL case skipped");
            return None;
        };
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&base).await.unwrap();
        let schema = format!("skaerm_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .await
            .unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        Some(Db {
            store: Store::open(&url).await.unwrap(),
            drop_schema: Some((admin, schema)),
            _dir: None,
        })
    }

    async fn finish(self) {
        if let Some((admin, schema)) = self.drop_schema {
            self.store.pool().close().await;
            admin
                .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .await
                .unwrap();
        }
    }
}

/// Runs `case` on SQLite, then on PostgreSQL when available.
macro_rules! on_both_backends {
    ($name:ident, $case:ident) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let db = Db::sqlite().await;
                $case(&db.store).await;
                db.finish().await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = Db::postgres().await {
                    $case(&db.store).await;
                    db.finish().await;
                }
            }
        }
    };
}

struct People {
    tenant: TenantId,
    staff: skaerm_scheduling::StaffId,
    citizen: skaerm_scheduling::CitizenId,
}

async fn people(store: &Store) -> People {
    let tenant = store.create_tenant("Testkommune").await.unwrap();
    let staff = store
        .create_staff(tenant.id, "Mette Jensen", Some("Nord"))
        .await
        .unwrap();
    let citizen = store.create_citizen(tenant.id, "Karen J.").await.unwrap();
    People {
        tenant: tenant.id,
        staff: staff.id,
        citizen: citizen.id,
    }
}

fn new_visit(p: &People, start: chrono::DateTime<Utc>, minutes: u32) -> NewVisit {
    NewVisit {
        tenant_id: p.tenant,
        legal_basis: LegalBasis::Sel85,
        staff_id: p.staff,
        citizen_id: p.citizen,
        planned_start: start,
        duration_minutes: minutes,
    }
}

async fn round_trip(store: &Store) {
    let p = people(store).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 23, 9, 30, 0).unwrap();
    let created = store.create_visit(new_visit(&p, start, 15)).await.unwrap();
    let read = store.get_visit(created.id).await.unwrap();
    assert_eq!(read, created);
    assert_eq!(read.status, VisitStatus::Planned);
    assert_eq!(read.planned_end(), start + Duration::minutes(15));
    let staff = store.get_staff(p.staff).await.unwrap();
    assert_eq!(staff.team.as_deref(), Some("Nord"));
    assert_eq!(
        store.get_citizen(p.citizen).await.unwrap().display_name,
        "Karen J."
    );
    assert!(matches!(
        store.get_visit(skaerm_scheduling::VisitId::new()).await,
        Err(StoreError::NotFound)
    ));
}
on_both_backends!(create_and_read_back, round_trip);

async fn listing(store: &Store) {
    let p = people(store).await;
    let day = NaiveDate::from_ymd_opt(2026, 10, 25).unwrap(); // a 25-hour day
    let (from, to) = copenhagen_day_bounds(day);
    let late = store
        .create_visit(new_visit(&p, to - Duration::minutes(30), 10))
        .await
        .unwrap();
    let early = store.create_visit(new_visit(&p, from, 10)).await.unwrap();
    // Outside the day on both sides.
    store
        .create_visit(new_visit(&p, from - Duration::minutes(1), 10))
        .await
        .unwrap();
    store.create_visit(new_visit(&p, to, 10)).await.unwrap();
    let listed = store
        .list_visits_for_staff(p.staff, from, to)
        .await
        .unwrap();
    let ids: Vec<_> = listed.iter().map(|v| v.id).collect();
    assert_eq!(ids, vec![early.id, late.id]);
    // Another staff member's list is empty.
    let other = store.create_staff(p.tenant, "Jonas", None).await.unwrap();
    assert!(
        store
            .list_visits_for_staff(other.id, from, to)
            .await
            .unwrap()
            .is_empty()
    );
}
on_both_backends!(listing_by_day, listing);

async fn lifecycle(store: &Store) {
    let p = people(store).await;
    let visit = store
        .create_visit(new_visit(&p, Utc::now(), 15))
        .await
        .unwrap();
    // Completing a planned visit is refused and changes nothing.
    assert!(matches!(
        store.complete_visit(visit.id, Utc::now()).await,
        Err(StoreError::IllegalTransition(_))
    ));
    assert_eq!(
        store.get_visit(visit.id).await.unwrap().status,
        VisitStatus::Planned
    );

    let t1 = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let started = store.start_visit(visit.id, t1).await.unwrap();
    assert_eq!(started.status, VisitStatus::InProgress);
    assert_eq!(started.actual_start, Some(t1));
    // Starting again keeps the first actual start.
    let again = store
        .start_visit(visit.id, t1 + Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(again.actual_start, Some(t1));

    let t2 = t1 + Duration::minutes(4);
    let done = store.complete_visit(visit.id, t2).await.unwrap();
    assert_eq!(done.status, VisitStatus::Completed);
    assert_eq!(done.actual_end, Some(t2));
    assert_eq!(store.get_visit(visit.id).await.unwrap(), done);
    // Nothing leaves completed.
    assert!(store.start_visit(visit.id, t2).await.is_err());
    assert!(store.complete_visit(visit.id, t2).await.is_err());
    assert_eq!(store.get_visit(visit.id).await.unwrap(), done);
}
on_both_backends!(lifecycle_is_persisted, lifecycle);

async fn links(store: &Store) {
    let p = people(store).await;
    let visit = store
        .create_visit(new_visit(&p, Utc::now(), 15))
        .await
        .unwrap();
    let first = [1u8; 32];
    let second = [2u8; 32];
    store
        .set_citizen_link(visit.id, first, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        store
            .find_visit_by_link(&first)
            .await
            .unwrap()
            .map(|v| v.id),
        Some(visit.id)
    );
    // A new link replaces the old one.
    store
        .set_citizen_link(visit.id, second, Utc::now())
        .await
        .unwrap();
    assert_eq!(store.find_visit_by_link(&first).await.unwrap(), None);
    assert!(store.find_visit_by_link(&second).await.unwrap().is_some());
    store
        .revoke_citizen_links(visit.id, Utc::now())
        .await
        .unwrap();
    assert_eq!(store.find_visit_by_link(&second).await.unwrap(), None);
    assert_eq!(store.find_visit_by_link(&[9u8; 32]).await.unwrap(), None);
}
on_both_backends!(citizen_links, links);

async fn invalid_input(store: &Store) {
    let p = people(store).await;
    let other = store.create_tenant("Anden Kommune").await.unwrap();
    let foreign_citizen = store.create_citizen(other.id, "Fremmed").await.unwrap();
    let mut cross = new_visit(&p, Utc::now(), 15);
    cross.citizen_id = foreign_citizen.id;
    assert!(matches!(
        store.create_visit(cross).await,
        Err(StoreError::Invalid(_))
    ));
    for minutes in [0, 481] {
        assert!(matches!(
            store.create_visit(new_visit(&p, Utc::now(), minutes)).await,
            Err(StoreError::Invalid(_))
        ));
    }
    let mut ghost = new_visit(&p, Utc::now(), 15);
    ghost.staff_id = skaerm_scheduling::StaffId::new();
    assert!(matches!(
        store.create_visit(ghost).await,
        Err(StoreError::Invalid(_))
    ));
}
on_both_backends!(invalid_visits_are_refused, invalid_input);

#[tokio::test]
async fn sqlite_data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/skaerm.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let p = people(&store).await;
    let visit = store
        .create_visit(new_visit(&p, Utc::now(), 15))
        .await
        .unwrap();
    store.start_visit(visit.id, Utc::now()).await.unwrap();
    store.pool().close().await;
    let reopened = Store::open(&url).await.unwrap();
    assert_eq!(
        reopened.get_visit(visit.id).await.unwrap().status,
        VisitStatus::InProgress
    );
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    assert!(matches!(
        Store::open("mysql://localhost/x").await,
        Err(StoreError::UnsupportedUrl)
    ));
}
