//! Citizen links, one per visit or one per series, kept only as the SHA-256 of their secret.
//! Issuing a link revokes the previous one of the same visit or series; a series link opens
//! the series' next visit that has not ended.

use super::{Store, StoreError, ms, select_visits, uuid, visit_from};
use crate::ids::{SeriesId, VisitId};
use crate::model::Visit;
use chrono::{DateTime, Utc};
use sqlx::Row;

impl Store {
    /// Makes `hash` the visit's one active link, revoking earlier ones, in one transaction.
    pub async fn set_citizen_link(
        &self,
        visit: VisitId,
        hash: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE citizen_links SET revoked_at_ms = $1 \
             WHERE visit_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(visit.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO citizen_links (hash, visit_id, created_at_ms) VALUES ($1, $2, $3)",
        )
        .bind(hash.to_vec())
        .bind(visit.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes `hash` the series' one active link, revoking earlier ones, in one transaction.
    pub async fn set_series_citizen_link(
        &self,
        series: SeriesId,
        hash: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE series_citizen_links SET revoked_at_ms = $1 \
             WHERE series_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(series.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO series_citizen_links (hash, series_id, created_at_ms) VALUES ($1, $2, $3)",
        )
        .bind(hash.to_vec())
        .bind(series.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The visit an active link opens at `now`: the visit of a visit link; for a series link,
    /// the series' earliest visit that has not ended (or, when all have, its last one).
    pub async fn find_visit_by_link(
        &self,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<Visit>, StoreError> {
        let row = sqlx::query(
            "SELECT visit_id FROM citizen_links WHERE hash = $1 AND revoked_at_ms IS NULL",
        )
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(Some(
                self.get_visit(VisitId(uuid(&row, "visit_id")?)).await?,
            ));
        }
        let row = sqlx::query(
            "SELECT series_id FROM series_citizen_links WHERE hash = $1 AND revoked_at_ms IS NULL",
        )
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let series = uuid(&row, "series_id")?.to_string();
        let next = sqlx::query(select_visits!(
            "WHERE series_id = $1 AND status NOT IN ('completed', 'no_show', 'cancelled', \
             'technical_failure') AND planned_end_ms > $2 ORDER BY planned_start_ms LIMIT 1"
        ))
        .bind(series.clone())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = next {
            return Ok(Some(visit_from(&row)?));
        }
        let last = sqlx::query(select_visits!(
            "WHERE series_id = $1 ORDER BY planned_start_ms DESC LIMIT 1"
        ))
        .bind(series)
        .fetch_optional(&self.pool)
        .await?;
        last.as_ref().map(visit_from).transpose()
    }

    /// The hashes of the links that open `visit` now: its active visit link and its series'
    /// active link (at most one each). A media token from any other link is dead.
    pub async fn live_link_hashes(&self, visit: &Visit) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut rows = sqlx::query(
            "SELECT hash FROM citizen_links WHERE visit_id = $1 AND revoked_at_ms IS NULL",
        )
        .bind(visit.id.to_string())
        .fetch_all(&self.pool)
        .await?;
        if let Some(series) = visit.series_id {
            rows.extend(
                sqlx::query(
                    "SELECT hash FROM series_citizen_links \
                     WHERE series_id = $1 AND revoked_at_ms IS NULL",
                )
                .bind(series.to_string())
                .fetch_all(&self.pool)
                .await?,
            );
        }
        rows.iter()
            .map(|row| {
                let bytes: Vec<u8> = row.try_get("hash")?;
                <[u8; 32]>::try_from(bytes.as_slice())
                    .map_err(|_| StoreError::Corrupt("link hash".into()))
            })
            .collect()
    }

    /// Revokes every active link of a visit.
    pub async fn revoke_citizen_links(
        &self,
        visit: VisitId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE citizen_links SET revoked_at_ms = $1 \
             WHERE visit_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(visit.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes every active link of a series.
    pub async fn revoke_series_citizen_links(
        &self,
        series: SeriesId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE series_citizen_links SET revoked_at_ms = $1 \
             WHERE series_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(series.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
