//! Visits in storage: planning with the double-booking check, moving, the lifecycle as
//! conditional updates, and recovery of visits left live by a crash.

use super::{Conflict, Store, StoreError, from_ms, ms, select_visits, uuid, visit_from};
use crate::ids::{StaffId, TenantId, VisitId};
use crate::lifecycle::{Outcome, VisitEvent, VisitStatus};
use crate::model::{
    EndedBy, MAX_NOTE_CHARS, NewVisit, Visit, check_duration, check_no_cpr, check_purpose,
};
use chrono::{DateTime, Utc};
use sqlx::{Any, AnyConnection, Row};

/// A page of visits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitPage {
    /// The visits on this page, earliest first.
    pub visits: Vec<Visit>,
    /// Offset of the next page, when there is one.
    pub next_offset: Option<u32>,
}

/// Which visits to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitQuery {
    /// Municipality.
    pub tenant: TenantId,
    /// Only visits booking this staff member (as owner or co-host).
    pub staff: Option<StaffId>,
    /// Planned to start at or after.
    pub from: DateTime<Utc>,
    /// Planned to start before.
    pub to: DateTime<Utc>,
    /// Page size (1–500).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u32,
}

impl Store {
    /// Plans a visit. Staff, co-host and citizen must exist in the visit's municipality, and
    /// neither staff member may be booked within the buffer of another visit.
    pub async fn create_visit(&self, new: NewVisit) -> Result<Visit, StoreError> {
        self.create_visit_at(new, Utc::now()).await
    }

    /// [`Store::create_visit`] with an explicit clock (reminders are due relative to `now`).
    pub async fn create_visit_at(
        &self,
        new: NewVisit,
        now: DateTime<Utc>,
    ) -> Result<Visit, StoreError> {
        check_duration(new.duration_minutes).map_err(StoreError::Invalid)?;
        check_purpose(&new.purpose).map_err(StoreError::Invalid)?;
        self.check_people(new.tenant_id, new.staff_id, new.co_host_id, new.citizen_id)
            .await?;
        let visit = Visit {
            id: VisitId::new(),
            tenant_id: new.tenant_id,
            legal_basis: new.legal_basis,
            purpose: new.purpose,
            staff_id: new.staff_id,
            co_host_id: new.co_host_id,
            citizen_id: new.citizen_id,
            planned_start: to_ms_precision(new.planned_start),
            duration_minutes: new.duration_minutes,
            status: VisitStatus::Planned,
            actual_start: None,
            actual_end: None,
            ended_by: None,
            outcome_note: None,
            series_id: None,
            occurrence_start: None,
            is_exception: false,
        };
        let mut tx = self.pool.begin().await?;
        lock_staff(&mut tx, &visit.booked_staff(), now).await?;
        if let Some(conflict) = self.find_conflict(&mut tx, &visit).await? {
            return Err(StoreError::Conflict(conflict));
        }
        insert_visit(&mut tx, &visit, now).await?;
        super::outbox::enqueue_reminders(&mut tx, &visit, now).await?;
        tx.commit().await?;
        Ok(visit)
    }

    /// Checks that the people exist and belong to `tenant`.
    pub(crate) async fn check_people(
        &self,
        tenant: TenantId,
        staff: StaffId,
        co_host: Option<StaffId>,
        citizen: crate::ids::CitizenId,
    ) -> Result<(), StoreError> {
        let not_found = |what: &'static str| {
            move |e| match e {
                StoreError::NotFound => StoreError::Invalid(format!("no such {what}")),
                e => e,
            }
        };
        let owner = self
            .get_staff(staff)
            .await
            .map_err(not_found("staff member"))?;
        let citizen = self
            .get_citizen(citizen)
            .await
            .map_err(not_found("citizen"))?;
        let mut tenants = vec![owner.tenant_id, citizen.tenant_id];
        if let Some(co_host) = co_host {
            if co_host == staff {
                return Err(StoreError::Invalid(
                    "the co-host must be another staff member".into(),
                ));
            }
            tenants.push(
                self.get_staff(co_host)
                    .await
                    .map_err(not_found("co-host"))?
                    .tenant_id,
            );
        }
        if tenants.iter().any(|t| *t != tenant) {
            return Err(StoreError::Invalid(
                "staff, citizen and visit must belong to the same municipality".into(),
            ));
        }
        Ok(())
    }

    /// The first visit (other than `visit` itself) that books one of `visit`'s staff members
    /// within the buffer of its planned time.
    pub(crate) async fn find_conflict(
        &self,
        conn: &mut AnyConnection,
        visit: &Visit,
    ) -> Result<Option<Conflict>, StoreError> {
        let buffer = self.rules.buffer;
        let a = visit.staff_id.to_string();
        let b = visit.co_host_id.unwrap_or(visit.staff_id).to_string();
        let row = sqlx::query(
            "SELECT id, planned_start_ms, planned_end_ms FROM visits \
             WHERE (staff_id = $1 OR staff_id = $2 OR co_host_id = $1 OR co_host_id = $2) \
             AND status NOT IN ('cancelled', 'no_show', 'technical_failure') \
             AND planned_start_ms < $3 AND planned_end_ms > $4 AND id <> $5 \
             ORDER BY planned_start_ms LIMIT 1",
        )
        .bind(a)
        .bind(b)
        .bind(ms(visit.planned_end() + buffer))
        .bind(ms(visit.planned_start - buffer))
        .bind(visit.id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| {
            Ok(Conflict {
                visit: VisitId(uuid(&row, "id")?),
                planned_start: from_ms(row.try_get("planned_start_ms")?)?,
                planned_end: from_ms(row.try_get("planned_end_ms")?)?,
            })
        })
        .transpose()
    }

    /// A visit.
    pub async fn get_visit(&self, id: VisitId) -> Result<Visit, StoreError> {
        let row = sqlx::query(select_visits!("WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        visit_from(&row)
    }

    /// The visits booking a staff member (owner or co-host) planned to start in `[from, to)`,
    /// earliest first.
    pub async fn list_visits_for_staff(
        &self,
        staff: StaffId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Visit>, StoreError> {
        let rows = sqlx::query(select_visits!(
            "WHERE (staff_id = $1 OR co_host_id = $1) \
             AND planned_start_ms >= $2 AND planned_start_ms < $3 \
             ORDER BY planned_start_ms, id"
        ))
        .bind(staff.to_string())
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(visit_from).collect()
    }

    /// The citizens of `tenant` that `staff` serves: those with a visit (any status) the staff
    /// member owns or co-hosts, or, with `team` (a team lead's own team), a visit whose staff
    /// member or co-host belongs to that team. Stands in for the caseload (issue 15).
    pub async fn citizens_served_by(
        &self,
        tenant: TenantId,
        staff: StaffId,
        team: Option<&str>,
    ) -> Result<Vec<crate::ids::CitizenId>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT v.citizen_id FROM visits v \
             JOIN staff s ON s.id = v.staff_id \
             LEFT JOIN staff c ON c.id = v.co_host_id \
             WHERE v.tenant_id = $1 AND (v.staff_id = $2 OR v.co_host_id = $2 \
             OR ($3 <> '' AND (s.team = $3 OR c.team = $3)))",
        )
        .bind(tenant.to_string())
        .bind(staff.to_string())
        .bind(team.unwrap_or_default().to_owned())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| uuid(row, "citizen_id").map(crate::ids::CitizenId))
            .collect()
    }

    /// One page of a municipality's visits (optionally one staff member's), earliest first.
    pub async fn list_visits(&self, query: &VisitQuery) -> Result<VisitPage, StoreError> {
        let limit = query.limit.clamp(1, 500);
        let staff = query.staff.map(|s| s.to_string()).unwrap_or_default();
        let rows = sqlx::query(select_visits!(
            "WHERE tenant_id = $1 AND ($2 = '' OR staff_id = $2 OR co_host_id = $2) \
             AND planned_start_ms >= $3 AND planned_start_ms < $4 \
             ORDER BY planned_start_ms, id LIMIT $5 OFFSET $6"
        ))
        .bind(query.tenant.to_string())
        .bind(staff)
        .bind(ms(query.from))
        .bind(ms(query.to))
        .bind(i64::from(limit) + 1)
        .bind(i64::from(query.offset))
        .fetch_all(&self.pool)
        .await?;
        let mut visits = rows.iter().map(visit_from).collect::<Result<Vec<_>, _>>()?;
        let next_offset = if visits.len() > limit as usize {
            visits.truncate(limit as usize);
            Some(query.offset + limit)
        } else {
            None
        };
        Ok(VisitPage {
            visits,
            next_offset,
        })
    }

    /// Moves a visit that has not begun (and optionally changes its length). An occurrence of
    /// a series becomes an exception ("this one"). Refused when it would double-book.
    pub async fn move_visit(
        &self,
        id: VisitId,
        planned_start: DateTime<Utc>,
        duration_minutes: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Visit, StoreError> {
        let before = self.get_visit(id).await?;
        let status = before.status_at(now);
        if !status.is_movable() {
            return Err(StoreError::NotChangeable(status));
        }
        let duration_minutes = duration_minutes.unwrap_or(before.duration_minutes);
        check_duration(duration_minutes).map_err(StoreError::Invalid)?;
        let moved = Visit {
            planned_start: to_ms_precision(planned_start),
            duration_minutes,
            status: VisitStatus::Planned,
            is_exception: before.series_id.is_some(),
            ..before.clone()
        };
        let mut tx = self.pool.begin().await?;
        lock_staff(&mut tx, &moved.booked_staff(), now).await?;
        if let Some(conflict) = self.find_conflict(&mut tx, &moved).await? {
            return Err(StoreError::Conflict(conflict));
        }
        let updated = sqlx::query(
            "UPDATE visits SET planned_start_ms = $1, planned_end_ms = $2, duration_minutes = $3, \
             status = 'planned', is_exception = $4, updated_at_ms = $5 \
             WHERE id = $6 AND status = $7",
        )
        .bind(ms(moved.planned_start))
        .bind(ms(moved.planned_end()))
        .bind(i64::from(moved.duration_minutes))
        .bind(i64::from(moved.is_exception))
        .bind(ms(now))
        .bind(id.to_string())
        .bind(before.status.code())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::Busy);
        }
        super::outbox::enqueue_reminders(&mut tx, &moved, now).await?;
        tx.commit().await?;
        Ok(moved)
    }

    /// Applies a lifecycle event as one conditional update (and, for an ended visit, its
    /// care-record export in the same transaction). Refused transitions change nothing;
    /// events that do not change the state (a reload) return the visit as it is.
    async fn transition(
        &self,
        id: VisitId,
        event: VisitEvent,
        by: Option<EndedBy>,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Visit, StoreError> {
        if let Some(note) = &note
            && note.chars().count() > MAX_NOTE_CHARS
        {
            return Err(StoreError::Invalid(format!(
                "the note is longer than {MAX_NOTE_CHARS} characters"
            )));
        }
        if let Some(note) = &note {
            check_no_cpr(note).map_err(StoreError::Invalid)?;
        }
        for _ in 0..5 {
            let visit = self.get_visit(id).await?;
            let from = visit.status_at(now);
            let to = from.apply(event)?;
            if to == from {
                return Ok(visit);
            }
            let mut next = visit.clone();
            next.status = to;
            if to == VisitStatus::InProgress {
                next.actual_start = visit.actual_start.or(Some(now));
            }
            if to.is_final() {
                next.ended_by = by;
                next.outcome_note = note.clone();
                if to != VisitStatus::Cancelled {
                    next.actual_end = Some(now);
                }
            }
            let mut tx = self.pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE visits SET status = $1, actual_start_ms = $2, actual_end_ms = $3, \
                 ended_by = $4, outcome_note = $5, updated_at_ms = $6 \
                 WHERE id = $7 AND status = $8",
            )
            .bind(next.status.code())
            .bind(next.actual_start.map(ms))
            .bind(next.actual_end.map(ms))
            .bind(next.ended_by.map(EndedBy::code))
            .bind(next.outcome_note.clone())
            .bind(ms(now))
            .bind(id.to_string())
            .bind(visit.status.code())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                tx.rollback().await?;
                continue;
            }
            if matches!(
                to,
                VisitStatus::Completed | VisitStatus::NoShow | VisitStatus::TechnicalFailure
            ) {
                let staff = self.get_staff(next.staff_id).await?;
                super::outbox::enqueue_export(&mut tx, &next, staff.team.as_deref(), now).await?;
            }
            tx.commit().await?;
            return Ok(next);
        }
        Err(StoreError::Busy)
    }

    /// The citizen joined the room (`ready` → `waiting`).
    pub async fn citizen_arrived(
        &self,
        id: VisitId,
        now: DateTime<Utc>,
    ) -> Result<Visit, StoreError> {
        self.transition(id, VisitEvent::CitizenArrived, None, None, now)
            .await
    }

    /// The citizen left before the visit started (`waiting` → `ready`).
    pub async fn citizen_left(&self, id: VisitId, now: DateTime<Utc>) -> Result<Visit, StoreError> {
        self.transition(id, VisitEvent::CitizenLeft, None, None, now)
            .await
    }

    /// Staff start the visit (idempotent while in progress).
    pub async fn start_visit(&self, id: VisitId, now: DateTime<Utc>) -> Result<Visit, StoreError> {
        self.transition(id, VisitEvent::Start, None, None, now)
            .await
    }

    /// Closes the visit with an outcome, recording who closed it and an optional note.
    pub async fn end_visit(
        &self,
        id: VisitId,
        outcome: Outcome,
        by: EndedBy,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Visit, StoreError> {
        self.transition(id, VisitEvent::End(outcome), Some(by), note, now)
            .await
    }

    /// Staff call the visit off before it starts ("skip" for one occurrence of a series).
    pub async fn cancel_visit(
        &self,
        id: VisitId,
        by: EndedBy,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Visit, StoreError> {
        let visit = self
            .transition(id, VisitEvent::Cancel, Some(by), note, now)
            .await?;
        if visit.series_id.is_some() && !visit.is_exception {
            sqlx::query("UPDATE visits SET is_exception = 1 WHERE id = $1")
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
            return self.get_visit(id).await;
        }
        Ok(visit)
    }

    /// On start-up: visits left `waiting` or `in_progress` by a previous process are closed as
    /// `technical_failure` by the system. Returns the visits closed.
    pub async fn recover_interrupted(&self, now: DateTime<Utc>) -> Result<Vec<Visit>, StoreError> {
        let mut closed = Vec::new();
        for id in self.interrupted_visits().await? {
            if let Some(visit) = self.recover_visit(id, now).await? {
                closed.push(visit);
            }
        }
        Ok(closed)
    }

    /// Visits left `waiting` or `in_progress` (by a previous process, when asked at start).
    pub async fn interrupted_visits(&self) -> Result<Vec<VisitId>, StoreError> {
        let rows = sqlx::query("SELECT id FROM visits WHERE status IN ('waiting', 'in_progress')")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(VisitId(uuid(row, "id")?)))
            .collect()
    }

    /// Closes one interrupted visit as `technical_failure` (ended by the system). `None` when it
    /// is no longer live (ended meanwhile).
    pub async fn recover_visit(
        &self,
        id: VisitId,
        now: DateTime<Utc>,
    ) -> Result<Option<Visit>, StoreError> {
        match self
            .transition(id, VisitEvent::Recover, Some(EndedBy::System), None, now)
            .await
        {
            Ok(visit) => Ok(Some(visit)),
            // Closed by someone else meanwhile: nothing to recover.
            Err(StoreError::IllegalTransition(_)) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// Instants are stored in milliseconds; what is returned matches what is stored.
fn to_ms_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    from_ms(ms(t)).unwrap_or(t)
}

/// Writes the staff members' rows first, in a fixed order: concurrent bookings of the same
/// person wait for each other (a row lock on PostgreSQL, the write lock on SQLite).
pub(crate) async fn lock_staff(
    tx: &mut sqlx::Transaction<'_, Any>,
    staff: &[StaffId],
    _now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut staff = staff.to_vec();
    staff.sort();
    staff.dedup();
    for id in staff {
        sqlx::query("UPDATE staff SET booking_version = booking_version + 1 WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Inserts a visit row.
pub(crate) async fn insert_visit(
    conn: &mut AnyConnection,
    visit: &Visit,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO visits (id, tenant_id, legal_basis, purpose, staff_id, co_host_id, \
         citizen_id, planned_start_ms, planned_end_ms, duration_minutes, status, series_id, \
         occurrence_ms, is_exception, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(visit.id.to_string())
    .bind(visit.tenant_id.to_string())
    .bind(visit.legal_basis.code())
    .bind(visit.purpose.clone())
    .bind(visit.staff_id.to_string())
    .bind(visit.co_host_id.map(|c| c.to_string()))
    .bind(visit.citizen_id.to_string())
    .bind(ms(visit.planned_start))
    .bind(ms(visit.planned_end()))
    .bind(i64::from(visit.duration_minutes))
    .bind(visit.status.code())
    .bind(visit.series_id.map(|s| s.to_string()))
    .bind(visit.occurrence_start.map(ms))
    .bind(i64::from(visit.is_exception))
    .bind(ms(now))
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
