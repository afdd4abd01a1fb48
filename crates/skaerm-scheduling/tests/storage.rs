//! The storage suite, run against a real SQLite file always and against PostgreSQL when
//! `TEST_DATABASE_URL` is set (each PostgreSQL case in a schema of its own, dropped after).

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use skaerm_scheduling::{
    EndedBy, LegalBasis, NewSeries, NewVisit, OutboxKind, Outcome, Recurrence, RetentionAction,
    SchedulingRules, SeriesEdit, Store, StoreError, TIME_ZONE, TenantId, VisitQuery, VisitStatus,
    copenhagen_day_bounds,
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
    NewVisit::simple(p.tenant, p.staff, p.citizen, start, minutes)
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
        .create_visit(new_visit(&p, from - Duration::minutes(11), 10))
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
    let start = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let visit = store.create_visit(new_visit(&p, start, 15)).await.unwrap();
    let early = start - Duration::minutes(16);
    // Not ready yet: it cannot start, and completing a planned visit is refused.
    assert!(matches!(
        store.start_visit(visit.id, early).await,
        Err(StoreError::IllegalTransition(_))
    ));
    let by = EndedBy::Staff(p.staff);
    assert!(matches!(
        store
            .end_visit(visit.id, Outcome::Completed, by, None, start)
            .await,
        Err(StoreError::IllegalTransition(_))
    ));
    assert_eq!(
        store.get_visit(visit.id).await.unwrap().status,
        VisitStatus::Planned
    );
    assert_eq!(
        store
            .get_visit(visit.id)
            .await
            .unwrap()
            .status_at(start - Duration::minutes(15)),
        VisitStatus::Ready
    );

    let arrived = store
        .citizen_arrived(visit.id, start - Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(arrived.status, VisitStatus::Waiting);
    let t1 = start + Duration::minutes(1);
    let started = store.start_visit(visit.id, t1).await.unwrap();
    assert_eq!(started.status, VisitStatus::InProgress);
    assert_eq!(started.actual_start, Some(t1));
    // Starting again keeps the first actual start.
    let again = store
        .start_visit(visit.id, t1 + Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(again.actual_start, Some(t1));
    // Cancelling a visit in progress is refused.
    assert!(matches!(
        store.cancel_visit(visit.id, by, None, t1).await,
        Err(StoreError::IllegalTransition(_))
    ));

    let t2 = t1 + Duration::minutes(4);
    let done = store
        .end_visit(
            visit.id,
            Outcome::Completed,
            by,
            Some("Medicin gennemgået".into()),
            t2,
        )
        .await
        .unwrap();
    assert_eq!(done.status, VisitStatus::Completed);
    assert_eq!(done.actual_end, Some(t2));
    assert_eq!(done.actual_duration(), Some(Duration::minutes(4)));
    assert_eq!(done.ended_by, Some(by));
    assert_eq!(done.outcome_note.as_deref(), Some("Medicin gennemgået"));
    assert_eq!(store.get_visit(visit.id).await.unwrap(), done);
    // Nothing leaves an end state.
    assert!(store.start_visit(visit.id, t2).await.is_err());
    assert!(
        store
            .end_visit(visit.id, Outcome::NoShow, by, None, t2)
            .await
            .is_err()
    );
    assert_eq!(store.get_visit(visit.id).await.unwrap(), done);

    // The care-record export was written with the completion.
    let messages = store.messages_for_visit(visit.id).await.unwrap();
    let exports: Vec<_> = messages
        .iter()
        .filter(|m| m.kind == OutboxKind::Export)
        .collect();
    assert_eq!(exports.len(), 1);
    assert_eq!(exports[0].payload["record"]["outcome"], "completed");
    assert_eq!(exports[0].payload["record"]["duration_seconds"], 240);
    assert_eq!(exports[0].payload["fhir_encounter"]["status"], "finished");
    // Reminders were queued when it was planned (24 h and 15 min before).
    let reminders: Vec<_> = messages
        .iter()
        .filter(|m| m.kind == OutboxKind::Reminder)
        .map(|m| m.due_at)
        .collect();
    assert!(
        reminders.is_empty(),
        "planned in the past relative to creation: {reminders:?}"
    );

    // No-show and cancellation record who and when.
    let other = store
        .create_visit(new_visit(&p, start + Duration::hours(2), 15))
        .await
        .unwrap();
    let cancelled = store.cancel_visit(other.id, by, None, start).await.unwrap();
    assert_eq!(cancelled.status, VisitStatus::Cancelled);
    assert_eq!(cancelled.actual_end, None);
    let third = store
        .create_visit(new_visit(&p, start + Duration::hours(3), 15))
        .await
        .unwrap();
    let gone = store
        .end_visit(
            third.id,
            Outcome::NoShow,
            by,
            None,
            start + Duration::hours(3),
        )
        .await
        .unwrap();
    assert_eq!(gone.status, VisitStatus::NoShow);
}
on_both_backends!(lifecycle_is_persisted, lifecycle);

async fn recovery(store: &Store) {
    let p = people(store).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
    let live = store.create_visit(new_visit(&p, start, 15)).await.unwrap();
    let waiting = store
        .create_visit(new_visit(&p, start + Duration::minutes(20), 15))
        .await
        .unwrap();
    let planned = store
        .create_visit(new_visit(&p, start + Duration::hours(5), 15))
        .await
        .unwrap();
    store.start_visit(live.id, start).await.unwrap();
    store
        .citizen_arrived(waiting.id, start + Duration::minutes(10))
        .await
        .unwrap();
    // The process dies here; a new one starts.
    let restart = start + Duration::minutes(12);
    let closed = store.recover_interrupted(restart).await.unwrap();
    let mut ids: Vec<_> = closed.iter().map(|v| v.id).collect();
    ids.sort();
    let mut want = vec![live.id, waiting.id];
    want.sort();
    assert_eq!(ids, want);
    for id in [live.id, waiting.id] {
        let v = store.get_visit(id).await.unwrap();
        assert_eq!(v.status, VisitStatus::TechnicalFailure);
        assert_eq!(v.ended_by, Some(EndedBy::System));
        assert_eq!(v.actual_end, Some(restart));
    }
    assert_eq!(
        store.get_visit(planned.id).await.unwrap().status,
        VisitStatus::Planned
    );
    // A second recovery finds nothing.
    assert!(store.recover_interrupted(restart).await.unwrap().is_empty());
}
on_both_backends!(recovery_closes_live_visits_as_technical_failure, recovery);

async fn conflicts(store: &Store) {
    let p = people(store).await;
    let colleague = store.create_staff(p.tenant, "Jonas", None).await.unwrap();
    let start = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
    let first = store.create_visit(new_visit(&p, start, 15)).await.unwrap();
    // Overlapping the owner.
    match store
        .create_visit(new_visit(&p, start + Duration::minutes(10), 15))
        .await
    {
        Err(StoreError::Conflict(c)) => {
            assert_eq!(c.visit, first.id);
            assert_eq!(c.planned_start, start);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Back to back is fine without a buffer.
    let second = store
        .create_visit(new_visit(&p, start + Duration::minutes(15), 15))
        .await
        .unwrap();
    // The colleague as co-host of an overlapping visit is booked too.
    let mut with_colleague = new_visit(&p, start + Duration::hours(1), 30);
    with_colleague.staff_id = colleague.id;
    with_colleague.co_host_id = Some(p.staff);
    store.create_visit(with_colleague).await.unwrap();
    let mut clash = new_visit(&p, start + Duration::hours(1) + Duration::minutes(10), 10);
    clash.staff_id = colleague.id;
    assert!(matches!(
        store.create_visit(clash).await,
        Err(StoreError::Conflict(_))
    ));
    // Moving onto another visit is refused and leaves the visit where it was.
    match store
        .move_visit(
            second.id,
            start + Duration::minutes(5),
            None,
            start - Duration::days(1),
        )
        .await
    {
        Err(StoreError::Conflict(c)) => assert_eq!(c.visit, first.id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.get_visit(second.id).await.unwrap().planned_start,
        start + Duration::minutes(15)
    );
    // A cancelled visit frees its slot.
    store
        .cancel_visit(
            first.id,
            EndedBy::Staff(p.staff),
            None,
            start - Duration::days(1),
        )
        .await
        .unwrap();
    let moved = store
        .move_visit(
            second.id,
            start + Duration::minutes(5),
            Some(20),
            start - Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(moved.planned_end(), start + Duration::minutes(25));

    // With a buffer of 10 minutes, back to back is a conflict.
    let buffered = store.clone().with_rules(SchedulingRules {
        buffer: Duration::minutes(10),
        ..SchedulingRules::default()
    });
    assert!(matches!(
        buffered
            .create_visit(new_visit(&p, start + Duration::minutes(30), 10))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        buffered
            .create_visit(new_visit(&p, start + Duration::minutes(35), 10))
            .await
            .is_ok()
    );
}
on_both_backends!(double_booking_is_refused, conflicts);

async fn paging(store: &Store) {
    let p = people(store).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap();
    for i in 0..5 {
        store
            .create_visit(new_visit(&p, start + Duration::minutes(20 * i), 15))
            .await
            .unwrap();
    }
    let mut query = VisitQuery {
        tenant: p.tenant,
        staff: Some(p.staff),
        from: start,
        to: start + Duration::days(1),
        limit: 2,
        offset: 0,
    };
    let mut seen = Vec::new();
    loop {
        let page = store.list_visits(&query).await.unwrap();
        assert!(page.visits.len() <= 2);
        seen.extend(page.visits.iter().map(|v| v.planned_start));
        match page.next_offset {
            Some(next) => query.offset = next,
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    let other_tenant = store.create_tenant("Anden").await.unwrap();
    query.tenant = other_tenant.id;
    query.offset = 0;
    assert!(store.list_visits(&query).await.unwrap().visits.is_empty());
}
on_both_backends!(lists_are_paginated_and_scoped, paging);

async fn links(store: &Store) {
    let p = people(store).await;
    let now = Utc::now();
    let visit = store.create_visit(new_visit(&p, now, 15)).await.unwrap();
    let first = [1u8; 32];
    let second = [2u8; 32];
    store.set_citizen_link(visit.id, first, now).await.unwrap();
    assert_eq!(
        store
            .find_visit_by_link(&first, now)
            .await
            .unwrap()
            .map(|v| v.id),
        Some(visit.id)
    );
    // A new link replaces the old one.
    store.set_citizen_link(visit.id, second, now).await.unwrap();
    assert_eq!(store.find_visit_by_link(&first, now).await.unwrap(), None);
    assert!(
        store
            .find_visit_by_link(&second, now)
            .await
            .unwrap()
            .is_some()
    );
    store.revoke_citizen_links(visit.id, now).await.unwrap();
    assert_eq!(store.find_visit_by_link(&second, now).await.unwrap(), None);
    assert_eq!(
        store.find_visit_by_link(&[9u8; 32], now).await.unwrap(),
        None
    );
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

// ---- series ------------------------------------------------------------------------------

fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, min, 0)
        .unwrap()
}

fn weekly(p: &People, start: chrono::NaiveDateTime, rule: &str) -> NewSeries {
    NewSeries {
        tenant_id: p.tenant,
        legal_basis: LegalBasis::Sel85,
        purpose: "Ugentlig opfølgning".into(),
        staff_id: p.staff,
        co_host_id: None,
        citizen_id: p.citizen,
        duration_minutes: 15,
        recurrence: Recurrence::new(start, rule).unwrap(),
    }
}

fn local_times(visits: &[skaerm_scheduling::Visit]) -> Vec<String> {
    visits
        .iter()
        .map(|v| {
            v.planned_start
                .with_timezone(&TIME_ZONE)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .collect()
}

async fn series_across_dst(store: &Store) {
    let p = people(store).await;
    let now = Utc.with_ymd_and_hms(2027, 3, 1, 12, 0, 0).unwrap();
    // Sundays around the last Sunday of March 2027 (28 March).
    let (_, spring) = store
        .create_series(
            weekly(&p, local(2027, 3, 21, 9, 0), "FREQ=WEEKLY;BYDAY=SU;COUNT=3"),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        local_times(&spring),
        vec!["2027-03-21 09:00", "2027-03-28 09:00", "2027-04-04 09:00"]
    );
    assert_eq!(
        spring[1].planned_start,
        Utc.with_ymd_and_hms(2027, 3, 28, 7, 0, 0).unwrap()
    );
    // And the last Sunday of October 2027 (31 October).
    let now = Utc.with_ymd_and_hms(2027, 10, 1, 12, 0, 0).unwrap();
    let (_, autumn) = store
        .create_series(
            weekly(
                &p,
                local(2027, 10, 24, 9, 0),
                "FREQ=WEEKLY;BYDAY=SU;COUNT=3",
            ),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        local_times(&autumn),
        vec!["2027-10-24 09:00", "2027-10-31 09:00", "2027-11-07 09:00"]
    );
    assert_eq!(
        autumn[1].planned_start,
        Utc.with_ymd_and_hms(2027, 10, 31, 8, 0, 0).unwrap()
    );
    // Stored and read back the same.
    let stored = store
        .series_visits(autumn[0].series_id.unwrap())
        .await
        .unwrap();
    assert_eq!(stored, autumn);
}
on_both_backends!(series_keep_local_time_across_dst, series_across_dst);

async fn series_exceptions(store: &Store) {
    let p = people(store).await;
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    // Every other Monday and Thursday at 10:00, five times.
    let (series, visits) = store
        .create_series(
            weekly(
                &p,
                local(2026, 12, 7, 10, 0),
                "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;COUNT=5",
            ),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        local_times(&visits),
        vec![
            "2026-12-07 10:00",
            "2026-12-10 10:00",
            "2026-12-21 10:00",
            "2026-12-24 10:00",
            "2027-01-04 10:00"
        ]
    );
    let by = EndedBy::Staff(p.staff);
    // Skip one, move another ("this one").
    let skipped = store
        .cancel_visit(visits[1].id, by, None, now)
        .await
        .unwrap();
    assert!(skipped.is_exception);
    let moved = store
        .move_visit(
            visits[3].id,
            visits[3].planned_start + Duration::hours(3),
            None,
            now,
        )
        .await
        .unwrap();
    assert!(moved.is_exception);
    assert_eq!(moved.occurrence_start, Some(visits[3].planned_start));
    // Materialising again (a later horizon run) does not bring them back.
    let extension = store
        .extend_series(now + Duration::days(400))
        .await
        .unwrap();
    assert_eq!(extension.created, 0);
    let after = store.series_visits(series.id).await.unwrap();
    assert_eq!(after.len(), 5);
    assert_eq!(
        after
            .iter()
            .filter(|v| v.status == VisitStatus::Cancelled)
            .count(),
        1
    );
    assert!(after.iter().any(|v| v.planned_start == moved.planned_start));
}
on_both_backends!(
    series_occurrences_can_be_skipped_and_moved,
    series_exceptions
);

async fn series_split(store: &Store) {
    let p = people(store).await;
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let (old, visits) = store
        .create_series(
            weekly(&p, local(2026, 12, 7, 9, 0), "FREQ=WEEKLY;BYDAY=MO;COUNT=6"),
            now,
        )
        .await
        .unwrap();
    assert_eq!(visits.len(), 6);
    let cut = visits[2].occurrence_start.unwrap();
    let (new, new_visits) = store
        .edit_series_from(
            old.id,
            cut,
            SeriesEdit {
                start_time: Some(chrono::NaiveTime::from_hms_opt(11, 30, 0).unwrap()),
                legal_basis: Some(LegalBasis::Sel83),
                ..SeriesEdit::default()
            },
            now,
        )
        .await
        .unwrap();
    assert_ne!(new.id, old.id);
    // The remaining four, now at 11:30 under §83.
    assert_eq!(
        local_times(&new_visits),
        vec![
            "2026-12-21 11:30",
            "2026-12-28 11:30",
            "2027-01-04 11:30",
            "2027-01-11 11:30"
        ]
    );
    assert!(
        new_visits
            .iter()
            .all(|v| v.legal_basis == LegalBasis::Sel83)
    );
    let old_now = store.series_visits(old.id).await.unwrap();
    assert_eq!(
        local_times(&old_now),
        vec!["2026-12-07 09:00", "2026-12-14 09:00"]
    );
    assert_eq!(
        store.get_series(old.id).await.unwrap().ends_before,
        Some(cut)
    );
    assert!(matches!(
        store.get_visit(visits[2].id).await,
        Err(StoreError::NotFound)
    ));
}
on_both_backends!(this_and_following_splits_the_series, series_split);

async fn failing_edit(store: &Store) {
    let p = people(store).await;
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let (old, visits) = store
        .create_series(
            weekly(&p, local(2026, 12, 7, 9, 0), "FREQ=WEEKLY;BYDAY=MO;COUNT=6"),
            now,
        )
        .await
        .unwrap();
    // Something already booked at 11:00 on the fifth Monday.
    let blocker = store
        .create_visit(new_visit(
            &p,
            Utc.with_ymd_and_hms(2027, 1, 4, 10, 0, 0).unwrap(),
            30,
        ))
        .await
        .unwrap();
    let series_before = store.get_series(old.id).await.unwrap();
    match store
        .edit_series_from(
            old.id,
            visits[1].occurrence_start.unwrap(),
            SeriesEdit {
                start_time: Some(chrono::NaiveTime::from_hms_opt(11, 0, 0).unwrap()),
                ..SeriesEdit::default()
            },
            now,
        )
        .await
    {
        Err(StoreError::Conflict(c)) => assert_eq!(c.visit, blocker.id),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The whole edit was rolled back: same series, same visits.
    assert_eq!(store.get_series(old.id).await.unwrap(), series_before);
    assert_eq!(store.series_visits(old.id).await.unwrap(), visits);

    // Creating a series that collides creates nothing at all.
    let mut colliding = weekly(
        &p,
        local(2026, 12, 28, 11, 0),
        "FREQ=WEEKLY;BYDAY=MO;COUNT=3",
    );
    colliding.duration_minutes = 20;
    assert!(matches!(
        store.create_series(colliding, now).await,
        Err(StoreError::Conflict(_))
    ));
    let (from, to) = (now, now + Duration::days(60));
    let all = store
        .list_visits_for_staff(p.staff, from, to)
        .await
        .unwrap();
    assert_eq!(all.len(), visits.len() + 1);
}
on_both_backends!(a_failing_series_edit_leaves_the_old_series, failing_edit);

async fn horizon(store: &Store) {
    let p = people(store).await;
    let store = store.clone().with_rules(SchedulingRules {
        horizon: Duration::days(14),
        ..SchedulingRules::default()
    });
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let (series, visits) = store
        .create_series(weekly(&p, local(2026, 12, 2, 9, 0), "FREQ=WEEKLY"), now)
        .await
        .unwrap();
    assert_eq!(visits.len(), 2, "{:?}", local_times(&visits));
    let later = now + Duration::days(7);
    let extension = store.extend_series(later).await.unwrap();
    assert_eq!(extension.created, 1);
    assert_eq!(store.series_visits(series.id).await.unwrap().len(), 3);
    assert_eq!(store.extend_series(later).await.unwrap().created, 0);
    // A series link opens the next visit that has not ended.
    store
        .set_series_citizen_link(series.id, [7u8; 32], now)
        .await
        .unwrap();
    let first = store
        .find_visit_by_link(&[7u8; 32], now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.id, visits[0].id);
    let after_first = visits[0].planned_end() + Duration::minutes(1);
    let next = store
        .find_visit_by_link(&[7u8; 32], after_first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.id, visits[1].id);
    store
        .revoke_series_citizen_links(series.id, now)
        .await
        .unwrap();
    assert_eq!(
        store.find_visit_by_link(&[7u8; 32], now).await.unwrap(),
        None
    );
}
on_both_backends!(series_are_materialised_over_a_horizon, horizon);

async fn report(store: &Store) {
    let p = people(store).await;
    let other_team = store
        .create_staff(p.tenant, "Jonas", Some("Syd"))
        .await
        .unwrap();
    let start = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
    let by = EndedBy::Staff(p.staff);
    let done = store.create_visit(new_visit(&p, start, 15)).await.unwrap();
    store.start_visit(done.id, start).await.unwrap();
    store
        .end_visit(
            done.id,
            Outcome::Completed,
            by,
            None,
            start + Duration::minutes(4),
        )
        .await
        .unwrap();
    let missed = store
        .create_visit(new_visit(&p, start + Duration::hours(1), 15))
        .await
        .unwrap();
    store
        .end_visit(
            missed.id,
            Outcome::NoShow,
            by,
            None,
            start + Duration::hours(1),
        )
        .await
        .unwrap();
    let mut syd = new_visit(&p, start, 15);
    syd.staff_id = other_team.id;
    syd.legal_basis = LegalBasis::Sul138;
    store.create_visit(syd).await.unwrap();
    // Next month (in Copenhagen) and another municipality do not count.
    store
        .create_visit(new_visit(
            &p,
            Utc.with_ymd_and_hms(2026, 11, 30, 23, 30, 0).unwrap(),
            15,
        ))
        .await
        .unwrap();
    let elsewhere = people(store).await;
    store
        .create_visit(new_visit(&elsewhere, start, 15))
        .await
        .unwrap();

    let r = store
        .monthly_report(p.tenant, (2026, 11), None, 25)
        .await
        .unwrap();
    assert_eq!(r.total.planned, 3);
    assert_eq!(r.lines.len(), 2);
    let nord = r
        .lines
        .iter()
        .find(|l| l.team.as_deref() == Some("Nord"))
        .unwrap();
    assert_eq!((nord.completed, nord.no_show), (1, 1));
    assert_eq!(nord.average_duration_seconds, Some(240.0));
    assert_eq!(nord.saved_driving_minutes, 25);
    let only_syd = store
        .monthly_report(p.tenant, (2026, 11), Some("Syd"), 25)
        .await
        .unwrap();
    assert_eq!(only_syd.total.planned, 1);
    assert_eq!(only_syd.lines[0].legal_basis, Some(LegalBasis::Sul138));
}
on_both_backends!(monthly_reports_per_team_and_paragraph, report);

async fn outbox(store: &Store) {
    let p = people(store).await;
    let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
    let start = now + Duration::days(2);
    let visit = store
        .create_visit_at(new_visit(&p, start, 15), now)
        .await
        .unwrap();
    let reminders = store.messages_for_visit(visit.id).await.unwrap();
    let due: Vec<_> = reminders.iter().map(|m| m.due_at).collect();
    assert_eq!(
        due,
        vec![start - Duration::hours(24), start - Duration::minutes(15)]
    );
    assert!(reminders.iter().all(|m| m.kind == OutboxKind::Reminder));
    // Nothing is due yet; at 24 h before, one is.
    assert!(
        store
            .due_messages(OutboxKind::Reminder, now, 10)
            .await
            .unwrap()
            .iter()
            .all(|m| m.visit_id != Some(visit.id))
    );
    let at = start - Duration::hours(24);
    let due = store
        .due_messages(OutboxKind::Reminder, at, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].payload["minutes_before"], 1440);
    // A failed attempt is retried after the backoff, a delivered one never again.
    store
        .mark_failed(due[0].id, "receiver down", at)
        .await
        .unwrap();
    assert!(
        store
            .due_messages(OutboxKind::Reminder, at, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retry = at + Duration::seconds(5);
    let again = store
        .due_messages(OutboxKind::Reminder, retry, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(again[0].last_error.as_deref(), Some("receiver down"));
    store.mark_delivered(again[0].id, retry).await.unwrap();
    assert!(
        store
            .due_messages(OutboxKind::Reminder, retry, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Moving the visit queues reminders for the new time; re-queueing is idempotent.
    store
        .move_visit(visit.id, start + Duration::hours(1), None, now)
        .await
        .unwrap();
    store
        .move_visit(visit.id, start + Duration::hours(1), None, now)
        .await
        .unwrap();
    assert_eq!(store.messages_for_visit(visit.id).await.unwrap().len(), 4);
}
on_both_backends!(outbox_reminders_are_due_retried_and_idempotent, outbox);

async fn retention(store: &Store) {
    let p = people(store).await;
    let by = EndedBy::Staff(p.staff);
    let old_start = Utc.with_ymd_and_hms(2025, 1, 10, 9, 0, 0).unwrap();
    let mut old = Vec::new();
    for i in 0..3 {
        let mut v = new_visit(&p, old_start + Duration::hours(i), 15);
        v.purpose = "Medicin".into();
        old.push(store.create_visit(v).await.unwrap());
    }
    // One ended and exported (delivered), one still waiting for its export, one cancelled.
    for v in &old[..2] {
        store.start_visit(v.id, v.planned_start).await.unwrap();
        store
            .end_visit(
                v.id,
                Outcome::Completed,
                by,
                Some("note".into()),
                v.planned_end(),
            )
            .await
            .unwrap();
    }
    store
        .cancel_visit(old[2].id, by, None, old_start)
        .await
        .unwrap();
    store
        .set_citizen_link(old[2].id, [3u8; 32], old_start)
        .await
        .unwrap();
    let export = store.messages_for_visit(old[0].id).await.unwrap();
    store.mark_delivered(export[0].id, old_start).await.unwrap();
    let recent = store
        .create_visit(new_visit(&p, Utc::now() + Duration::days(1), 15))
        .await
        .unwrap();
    let cutoff = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();

    // Anonymise: old visits keep their numbers, lose purpose, note and citizen.
    let n = store
        .apply_retention(cutoff, RetentionAction::Anonymise, Utc::now())
        .await
        .unwrap();
    assert_eq!(n, 2, "the visit with a pending export waits");
    for v in [&old[0], &old[2]] {
        let a = store.get_visit(v.id).await.unwrap();
        assert_eq!(a.purpose, "");
        assert_eq!(a.outcome_note, None);
        assert_ne!(a.citizen_id, p.citizen);
        assert_eq!(
            store.get_citizen(a.citizen_id).await.unwrap().display_name,
            "(anonymiseret)"
        );
    }
    assert_eq!(
        store
            .find_visit_by_link(&[3u8; 32], Utc::now())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.get_visit(old[1].id).await.unwrap().citizen_id,
        p.citizen
    );
    assert_eq!(
        store.get_visit(recent.id).await.unwrap().citizen_id,
        p.citizen
    );
    // Once its export is delivered, delete removes it; the recent visit stays.
    let pending = store.messages_for_visit(old[1].id).await.unwrap();
    store
        .mark_delivered(pending[0].id, Utc::now())
        .await
        .unwrap();
    let n = store
        .apply_retention(cutoff, RetentionAction::Delete, Utc::now())
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(matches!(
        store.get_visit(old[1].id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .messages_for_visit(old[1].id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.get_visit(recent.id).await.is_ok());
    // The anonymised ones still count in their month's report.
    let r = store
        .monthly_report(p.tenant, (2025, 1), None, 30)
        .await
        .unwrap();
    assert_eq!(
        (r.total.planned, r.total.completed, r.total.cancelled),
        (2, 1, 1)
    );
}
on_both_backends!(retention_anonymises_or_deletes_old_visits, retention);

async fn concurrent_bookings(store: &Store) {
    let p = people(store).await;
    let start = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let new = new_visit(&p, start + Duration::minutes(i), 15);
        tasks.push(tokio::spawn(async move { store.create_visit(new).await }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, conflicts), (1, 7));
    let (from, to) = (start - Duration::hours(1), start + Duration::hours(1));
    assert_eq!(
        store
            .list_visits_for_staff(p.staff, from, to)
            .await
            .unwrap()
            .len(),
        1
    );
    // A CPR number never gets in.
    assert!(matches!(
        store.create_citizen(p.tenant, "010190-1234").await,
        Err(StoreError::Invalid(_))
    ));
    let mut with_cpr = new_visit(&p, start + Duration::hours(3), 15);
    with_cpr.purpose = "CPR 0101901234".into();
    assert!(matches!(
        store.create_visit(with_cpr).await,
        Err(StoreError::Invalid(_))
    ));
}
on_both_backends!(
    concurrent_bookings_of_one_slot_let_one_win,
    concurrent_bookings
);

async fn racing_edits(store: &Store) {
    let p = people(store).await;
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let (series, visits) = store
        .create_series(
            weekly(&p, local(2026, 12, 7, 9, 0), "FREQ=WEEKLY;BYDAY=MO;COUNT=6"),
            now,
        )
        .await
        .unwrap();
    let cut = visits[2].occurrence_start.unwrap();
    let mut tasks = Vec::new();
    for minutes in [10u32, 20] {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let edit = SeriesEdit {
                duration_minutes: Some(minutes),
                ..SeriesEdit::default()
            };
            store.edit_series_from(series.id, cut, edit, now).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Busy | StoreError::Invalid(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one edit wins");
    // Four following occurrences exist once, not twice.
    let all = store
        .list_visits_for_staff(p.staff, now, now + Duration::days(90))
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
}
on_both_backends!(racing_series_edits_do_not_duplicate, racing_edits);
