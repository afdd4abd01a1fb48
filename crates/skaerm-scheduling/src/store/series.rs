//! Recurring series in storage. A series is a recurrence plus the visit template; its
//! occurrences are materialised as visit rows over a bounded horizon (one row per original
//! occurrence start, so an occurrence that was skipped or moved is never created again).
//! "This one" edits are ordinary moves/cancellations of one visit (marked as exceptions);
//! "this and following" ends the series before the chosen occurrence and starts a new one
//! from there — all in one transaction, so a failure (a conflict, a crash) leaves the old
//! series exactly as it was.

use super::visits::{insert_visit, lock_staff};
use super::{Store, StoreError, from_ms, ms, opt_uuid, uuid};
use crate::ids::{CitizenId, SeriesId, StaffId, TenantId, VisitId};
use crate::lifecycle::VisitStatus;
use crate::model::{LegalBasis, TIME_ZONE, Visit, check_duration, check_purpose};
use crate::recurrence::Recurrence;
use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc};
use sqlx::{Any, Row, Transaction};
use std::collections::HashSet;

/// A recurring series of visits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    /// Its id.
    pub id: SeriesId,
    /// Municipality.
    pub tenant_id: TenantId,
    /// Paragraph of every occurrence.
    pub legal_basis: LegalBasis,
    /// Purpose text.
    pub purpose: String,
    /// Owner.
    pub staff_id: StaffId,
    /// Co-host.
    pub co_host_id: Option<StaffId>,
    /// Citizen.
    pub citizen_id: CitizenId,
    /// Length of each occurrence.
    pub duration_minutes: u32,
    /// When and how often.
    pub recurrence: Recurrence,
    /// Occurrences at or after this instant belong to a later series (after a split).
    pub ends_before: Option<DateTime<Utc>>,
    /// Occurrences before this instant have been materialised.
    pub materialised_until: DateTime<Utc>,
}

/// What is needed to plan a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSeries {
    /// Municipality.
    pub tenant_id: TenantId,
    /// Paragraph.
    pub legal_basis: LegalBasis,
    /// Purpose.
    pub purpose: String,
    /// Owner.
    pub staff_id: StaffId,
    /// Co-host.
    pub co_host_id: Option<StaffId>,
    /// Citizen.
    pub citizen_id: CitizenId,
    /// Length of each occurrence (1–480 minutes).
    pub duration_minutes: u32,
    /// When and how often.
    pub recurrence: Recurrence,
}

/// Changes for "this and following" (absent fields keep their value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesEdit {
    /// New paragraph.
    pub legal_basis: Option<LegalBasis>,
    /// New purpose.
    pub purpose: Option<String>,
    /// New co-host (`Some(None)` removes it).
    pub co_host_id: Option<Option<StaffId>>,
    /// New length.
    pub duration_minutes: Option<u32>,
    /// New local start time of day.
    pub start_time: Option<NaiveTime>,
    /// New RRULE.
    pub rrule: Option<String>,
}

/// What a horizon extension did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extension {
    /// Visits created.
    pub created: usize,
    /// Occurrences skipped because they would double-book (logged by the caller).
    pub skipped: Vec<(SeriesId, DateTime<Utc>, VisitId)>,
}

const SERIES_COLUMNS: &str = "SELECT id, tenant_id, legal_basis, purpose, staff_id, co_host_id, \
    citizen_id, duration_minutes, dtstart_local, rrule, ends_before_ms, materialised_until_ms \
    FROM visit_series ";

const LOCAL_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

fn series_from(row: &sqlx::any::AnyRow) -> Result<Series, StoreError> {
    let legal_basis: String = row.try_get("legal_basis")?;
    let dtstart: String = row.try_get("dtstart_local")?;
    let rrule: String = row.try_get("rrule")?;
    let duration: i64 = row.try_get("duration_minutes")?;
    Ok(Series {
        id: SeriesId(uuid(row, "id")?),
        tenant_id: TenantId(uuid(row, "tenant_id")?),
        legal_basis: LegalBasis::from_code(&legal_basis)
            .ok_or_else(|| StoreError::Corrupt(format!("legal basis {legal_basis}")))?,
        purpose: row.try_get("purpose")?,
        staff_id: StaffId(uuid(row, "staff_id")?),
        co_host_id: opt_uuid(row, "co_host_id")?.map(StaffId),
        citizen_id: CitizenId(uuid(row, "citizen_id")?),
        duration_minutes: u32::try_from(duration)
            .map_err(|_| StoreError::Corrupt(format!("duration {duration}")))?,
        recurrence: Recurrence {
            dtstart_local: NaiveDateTime::parse_from_str(&dtstart, LOCAL_FORMAT)
                .map_err(|_| StoreError::Corrupt(format!("dtstart {dtstart}")))?,
            rrule,
        },
        ends_before: row
            .try_get::<Option<i64>, _>("ends_before_ms")?
            .map(from_ms)
            .transpose()?,
        materialised_until: from_ms(row.try_get("materialised_until_ms")?)?,
    })
}

/// Whether materialising refuses the whole operation on a conflict or skips the occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnConflict {
    Refuse,
    Skip,
}

impl Store {
    /// Plans a series and materialises its occurrences from `now` to the horizon, in one
    /// transaction: if any occurrence would double-book, nothing is created.
    pub async fn create_series(
        &self,
        new: NewSeries,
        now: DateTime<Utc>,
    ) -> Result<(Series, Vec<Visit>), StoreError> {
        check_duration(new.duration_minutes).map_err(StoreError::Invalid)?;
        check_purpose(&new.purpose).map_err(StoreError::Invalid)?;
        self.check_people(new.tenant_id, new.staff_id, new.co_host_id, new.citizen_id)
            .await?;
        let series = Series {
            id: SeriesId::new(),
            tenant_id: new.tenant_id,
            legal_basis: new.legal_basis,
            purpose: new.purpose,
            staff_id: new.staff_id,
            co_host_id: new.co_host_id,
            citizen_id: new.citizen_id,
            duration_minutes: new.duration_minutes,
            recurrence: new.recurrence,
            ends_before: None,
            materialised_until: now,
        };
        let mut tx = self.pool.begin().await?;
        lock_staff(&mut tx, &booked(&series), now).await?;
        insert_series(&mut tx, &series, now).await?;
        let (series, visits, _) = self
            .materialise(
                &mut tx,
                series,
                now,
                now + self.rules.horizon,
                OnConflict::Refuse,
                now,
            )
            .await?;
        tx.commit().await?;
        Ok((series, visits))
    }

    /// A series.
    pub async fn get_series(&self, id: SeriesId) -> Result<Series, StoreError> {
        let sql = format!("{SERIES_COLUMNS} WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        series_from(&row)
    }

    /// The materialised visits of a series, earliest first.
    pub async fn series_visits(&self, id: SeriesId) -> Result<Vec<Visit>, StoreError> {
        let rows = sqlx::query(super::select_visits!(
            "WHERE series_id = $1 ORDER BY planned_start_ms, id"
        ))
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(super::visit_from).collect()
    }

    /// "This and following": from the occurrence originally at `from_occurrence` on, the series
    /// continues as a new series with `edit` applied. Occurrences of the old series from there
    /// on that have not begun are removed and the new series is materialised; the old series
    /// ends before `from_occurrence`. Active series links move to the new series. One
    /// transaction: on any failure (e.g. a conflict) the old series is left untouched.
    pub async fn edit_series_from(
        &self,
        id: SeriesId,
        from_occurrence: DateTime<Utc>,
        edit: SeriesEdit,
        now: DateTime<Utc>,
    ) -> Result<(Series, Vec<Visit>), StoreError> {
        let old = self.get_series(id).await?;
        if let Some(end) = old.ends_before
            && from_occurrence >= end
        {
            return Err(StoreError::AlreadySplit);
        }
        let duration_minutes = edit.duration_minutes.unwrap_or(old.duration_minutes);
        check_duration(duration_minutes).map_err(StoreError::Invalid)?;
        let purpose = edit.purpose.clone().unwrap_or_else(|| old.purpose.clone());
        check_purpose(&purpose).map_err(StoreError::Invalid)?;
        let co_host_id = edit.co_host_id.unwrap_or(old.co_host_id);
        self.check_people(old.tenant_id, old.staff_id, co_host_id, old.citizen_id)
            .await?;

        let first = old.recurrence.dtstart()?.with_timezone(&Utc);
        let local_cut = from_occurrence.with_timezone(&TIME_ZONE).naive_local();
        let start_time = edit
            .start_time
            .unwrap_or(old.recurrence.dtstart_local.time());
        let dtstart_local = local_cut.date().and_time(start_time);
        let recurrence = match &edit.rrule {
            Some(rule) => Recurrence::new(dtstart_local, rule)?,
            None => {
                let remaining = match old.recurrence.count() {
                    Some(count) => {
                        let before = old
                            .recurrence
                            .occurrences(first, from_occurrence, u16::MAX)?
                            .len();
                        let left = u32::try_from(before)
                            .ok()
                            .and_then(|b| count.checked_sub(b))
                            .filter(|left| *left > 0)
                            .ok_or_else(|| {
                                StoreError::Invalid("no occurrences left to edit".into())
                            })?;
                        Some(left)
                    }
                    None => None,
                };
                old.recurrence.restarted(dtstart_local, remaining)?
            }
        };
        let new = Series {
            id: SeriesId::new(),
            tenant_id: old.tenant_id,
            legal_basis: edit.legal_basis.unwrap_or(old.legal_basis),
            purpose,
            staff_id: old.staff_id,
            co_host_id,
            citizen_id: old.citizen_id,
            duration_minutes,
            recurrence,
            ends_before: old.ends_before,
            materialised_until: from_occurrence.min(now),
        };

        let mut tx = self.pool.begin().await?;
        let mut staff = booked(&old);
        staff.extend(booked(&new));
        lock_staff(&mut tx, &staff, now).await?;
        // Remove the old series' future occurrences that have not begun.
        let doomed = "SELECT id FROM visits WHERE series_id = $1 AND occurrence_ms >= $2 \
                      AND status IN ('planned', 'ready')";
        for table in ["citizen_links", "guest_links"] {
            let sql = format!("DELETE FROM {table} WHERE visit_id IN ({doomed})");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id.to_string())
                .bind(ms(from_occurrence))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "DELETE FROM visits WHERE series_id = $1 AND occurrence_ms >= $2 \
             AND status IN ('planned', 'ready')",
        )
        .bind(id.to_string())
        .bind(ms(from_occurrence))
        .execute(&mut *tx)
        .await?;
        // Only if nobody split or extended it since it was read (else: try again).
        let updated = sqlx::query(
            "UPDATE visit_series SET ends_before_ms = $1, updated_at_ms = $2 \
             WHERE id = $3 AND materialised_until_ms = $4 AND COALESCE(ends_before_ms, -1) = $5",
        )
        .bind(ms(from_occurrence))
        .bind(ms(now))
        .bind(id.to_string())
        .bind(ms(old.materialised_until))
        .bind(old.ends_before.map_or(-1, ms))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Err(StoreError::Busy);
        }
        insert_series(&mut tx, &new, now).await?;
        sqlx::query(
            "UPDATE series_citizen_links SET series_id = $1 \
             WHERE series_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(new.id.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let from = from_occurrence
            .min(now)
            .max(from_occurrence - chrono::Duration::days(1));
        let (new, visits, _) = self
            .materialise(
                &mut tx,
                new,
                from,
                now + self.rules.horizon,
                OnConflict::Refuse,
                now,
            )
            .await?;
        tx.commit().await?;
        Ok((new, visits))
    }

    /// Materialises every series up to `now` + horizon. Occurrences that would double-book
    /// are skipped and reported (a person has to resolve them).
    pub async fn extend_series(&self, now: DateTime<Utc>) -> Result<Extension, StoreError> {
        let horizon = now + self.rules.horizon;
        let sql = format!(
            "{SERIES_COLUMNS} WHERE materialised_until_ms < $1 \
             AND (ends_before_ms IS NULL OR ends_before_ms > materialised_until_ms)"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ms(horizon))
            .fetch_all(&self.pool)
            .await?;
        let mut extension = Extension::default();
        for row in rows {
            let series = series_from(&row)?;
            let mut tx = self.pool.begin().await?;
            lock_staff(&mut tx, &booked(&series), now).await?;
            let from = series.materialised_until;
            let (_, visits, skipped) = self
                .materialise(&mut tx, series, from, horizon, OnConflict::Skip, now)
                .await?;
            tx.commit().await?;
            extension.created += visits.len();
            extension.skipped.extend(skipped);
        }
        Ok(extension)
    }

    /// Creates the missing occurrences in `[from, to)` (bounded by the series' end and the
    /// per-series cap) and records how far the series is materialised.
    async fn materialise(
        &self,
        tx: &mut Transaction<'_, Any>,
        mut series: Series,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        on_conflict: OnConflict,
        now: DateTime<Utc>,
    ) -> Result<(Series, Vec<Visit>, Vec<(SeriesId, DateTime<Utc>, VisitId)>), StoreError> {
        let to = series.ends_before.map_or(to, |end| end.min(to));
        let starts = series
            .recurrence
            .occurrences(from, to, self.rules.max_occurrences)?;
        // When capped, materialise no further than the last occurrence made.
        let until = if starts.len() >= usize::from(self.rules.max_occurrences) {
            starts
                .last()
                .map_or(to, |t| *t + chrono::Duration::seconds(1))
        } else {
            to
        };
        let existing: HashSet<i64> = sqlx::query(
            "SELECT occurrence_ms FROM visits WHERE series_id = $1 AND occurrence_ms >= $2",
        )
        .bind(series.id.to_string())
        .bind(ms(from))
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>("occurrence_ms"))
        .collect::<Result<_, _>>()?;
        let mut created = Vec::new();
        let mut skipped = Vec::new();
        for start in starts {
            if existing.contains(&ms(start)) {
                continue;
            }
            let visit = Visit {
                id: VisitId::new(),
                tenant_id: series.tenant_id,
                legal_basis: series.legal_basis,
                purpose: series.purpose.clone(),
                staff_id: series.staff_id,
                co_host_id: series.co_host_id,
                citizen_id: series.citizen_id,
                planned_start: start,
                duration_minutes: series.duration_minutes,
                status: VisitStatus::Planned,
                actual_start: None,
                actual_end: None,
                ended_by: None,
                outcome_note: None,
                series_id: Some(series.id),
                occurrence_start: Some(start),
                is_exception: false,
            };
            if let Some(conflict) = self.find_conflict(tx, &visit).await? {
                match on_conflict {
                    OnConflict::Refuse => return Err(StoreError::Conflict(conflict)),
                    OnConflict::Skip => {
                        skipped.push((series.id, start, conflict.visit));
                        continue;
                    }
                }
            }
            insert_visit(tx, &visit, now).await?;
            super::outbox::enqueue_reminders(tx, &visit, now).await?;
            created.push(visit);
        }
        if until > series.materialised_until {
            series.materialised_until = until;
            sqlx::query(
                "UPDATE visit_series SET materialised_until_ms = $1, updated_at_ms = $2 WHERE id = $3",
            )
            .bind(ms(until))
            .bind(ms(now))
            .bind(series.id.to_string())
            .execute(&mut **tx)
            .await?;
        }
        Ok((series, created, skipped))
    }
}

fn booked(series: &Series) -> Vec<StaffId> {
    let mut staff = vec![series.staff_id];
    staff.extend(series.co_host_id);
    staff
}

async fn insert_series(
    tx: &mut Transaction<'_, Any>,
    series: &Series,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO visit_series (id, tenant_id, legal_basis, purpose, staff_id, co_host_id, \
         citizen_id, duration_minutes, dtstart_local, rrule, ends_before_ms, \
         materialised_until_ms, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(series.id.to_string())
    .bind(series.tenant_id.to_string())
    .bind(series.legal_basis.code())
    .bind(series.purpose.clone())
    .bind(series.staff_id.to_string())
    .bind(series.co_host_id.map(|c| c.to_string()))
    .bind(series.citizen_id.to_string())
    .bind(i64::from(series.duration_minutes))
    .bind(
        series
            .recurrence
            .dtstart_local
            .format(LOCAL_FORMAT)
            .to_string(),
    )
    .bind(series.recurrence.rrule.clone())
    .bind(series.ends_before.map(ms))
    .bind(ms(series.materialised_until))
    .bind(ms(now))
    .bind(ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
