//! Reading a month's visits of a municipality (optionally one team) for the reports.

use super::{Store, StoreError, ms};
use crate::ids::TenantId;
use crate::lifecycle::VisitStatus;
use crate::model::LegalBasis;
use crate::reports::{MonthlyReport, ReportVisit, aggregate, month_bounds};
use sqlx::Row;

impl Store {
    /// The report of `month` (`(year, month)`) for a municipality, optionally one team.
    pub async fn monthly_report(
        &self,
        tenant: TenantId,
        month: (i32, u32),
        team: Option<&str>,
        minutes_per_avoided_drive: u32,
    ) -> Result<MonthlyReport, StoreError> {
        let (from, to) = month_bounds(month.0, month.1)
            .ok_or_else(|| StoreError::Invalid("no such month".into()))?;
        let rows = sqlx::query(
            "SELECT s.team AS team, v.legal_basis AS legal_basis, v.status AS status, \
             v.actual_start_ms AS actual_start_ms, v.actual_end_ms AS actual_end_ms \
             FROM visits v JOIN staff s ON s.id = v.staff_id \
             WHERE v.tenant_id = $1 AND v.planned_start_ms >= $2 AND v.planned_start_ms < $3 \
             AND ($4 = '' OR s.team = $4)",
        )
        .bind(tenant.to_string())
        .bind(ms(from))
        .bind(ms(to))
        .bind(team.unwrap_or_default().to_owned())
        .fetch_all(&self.pool)
        .await?;
        let mut visits = Vec::with_capacity(rows.len());
        for row in rows {
            let basis: String = row.try_get("legal_basis")?;
            let status: String = row.try_get("status")?;
            let start: Option<i64> = row.try_get("actual_start_ms")?;
            let end: Option<i64> = row.try_get("actual_end_ms")?;
            visits.push(ReportVisit {
                team: row.try_get("team")?,
                legal_basis: LegalBasis::from_code(&basis)
                    .ok_or_else(|| StoreError::Corrupt(format!("legal basis {basis}")))?,
                status: VisitStatus::from_code(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
                duration_seconds: match (start, end) {
                    (Some(s), Some(e)) if e >= s => Some((e - s) / 1000),
                    _ => None,
                },
            });
        }
        Ok(aggregate(
            month,
            team.map(str::to_owned),
            &visits,
            minutes_per_avoided_drive,
        ))
    }
}
