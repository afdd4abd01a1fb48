//! Retention: visits planned to end before a cutoff are deleted, or anonymised (kept for the
//! statistics, with purpose and note emptied and the citizen replaced by the municipality's
//! anonymous placeholder). Live visits and visits whose care-record export is still waiting
//! for its receiver are left alone until they are not. Their citizen links and finished
//! outbox rows go with them. One transaction per run.

use super::{Store, StoreError, ms, uuid};
use crate::ids::{CitizenId, TenantId};
use chrono::{DateTime, Utc};

/// Display name of the placeholder citizen anonymised visits point to.
pub const ANONYMOUS_CITIZEN: &str = "(anonymiseret)";

/// What retention does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionAction {
    /// Remove the visits.
    Delete,
    /// Keep them without personal data.
    Anonymise,
}

/// Which visits are due: ended before `$1`, not live, not already anonymised, no pending export.
const DUE: &str = "SELECT id FROM visits WHERE planned_end_ms < $1 \
    AND status NOT IN ('waiting', 'in_progress') AND anonymised = 0 \
    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.visit_id = visits.id AND o.kind = 'export' \
                    AND o.delivered_at_ms IS NULL AND o.dropped_at_ms IS NULL)";

impl Store {
    /// Applies retention to visits planned to end before `cutoff`; returns how many.
    pub async fn apply_retention(
        &self,
        cutoff: DateTime<Utc>,
        action: RetentionAction,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            format!("DELETE FROM citizen_links WHERE visit_id IN ({DUE})"),
            format!(
                "DELETE FROM outbox WHERE visit_id IN ({DUE}) \
                 AND (delivered_at_ms IS NOT NULL OR dropped_at_ms IS NOT NULL OR kind = 'reminder')"
            ),
        ] {
            // Built from constants only.
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ms(cutoff))
                .execute(&mut *tx)
                .await?;
        }
        let affected = match action {
            RetentionAction::Delete => {
                let sql = format!("DELETE FROM visits WHERE id IN ({DUE})");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(ms(cutoff))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            }
            RetentionAction::Anonymise => {
                let sql = format!("SELECT DISTINCT tenant_id FROM visits WHERE id IN ({DUE})");
                let tenants = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(ms(cutoff))
                    .fetch_all(&mut *tx)
                    .await?;
                let mut affected = 0;
                for row in tenants {
                    let tenant = TenantId(uuid(&row, "tenant_id")?);
                    let placeholder = anonymous_citizen(&mut tx, tenant, now).await?;
                    let sql = format!(
                        "UPDATE visits SET purpose = '', outcome_note = NULL, citizen_id = $2, \
                         anonymised = 1, updated_at_ms = $3 \
                         WHERE tenant_id = $4 AND id IN ({DUE})"
                    );
                    affected += sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(ms(cutoff))
                        .bind(placeholder.to_string())
                        .bind(ms(now))
                        .bind(tenant.to_string())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                affected
            }
        };
        tx.commit().await?;
        Ok(affected)
    }
}

async fn anonymous_citizen(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<CitizenId, StoreError> {
    let row = sqlx::query(
        "SELECT id FROM citizens WHERE tenant_id = $1 AND display_name = $2 ORDER BY id LIMIT 1",
    )
    .bind(tenant.to_string())
    .bind(ANONYMOUS_CITIZEN)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = row {
        return Ok(CitizenId(uuid(&row, "id")?));
    }
    let id = CitizenId::new();
    sqlx::query(
        "INSERT INTO citizens (id, tenant_id, display_name, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(id.to_string())
    .bind(tenant.to_string())
    .bind(ANONYMOUS_CITIZEN)
    .bind(ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(id)
}
