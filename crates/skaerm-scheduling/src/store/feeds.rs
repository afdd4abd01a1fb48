//! Staff calendar-feed tokens: one active secret per staff member, kept only as its SHA-256;
//! issuing a new one revokes the old.

use super::{Store, StoreError, ms, uuid};
use crate::ids::StaffId;
use chrono::{DateTime, Utc};

impl Store {
    /// Makes `hash` the staff member's one active feed token, revoking earlier ones.
    pub async fn set_calendar_feed(
        &self,
        staff: StaffId,
        hash: [u8; 32],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE calendar_feeds SET revoked_at_ms = $1 \
             WHERE staff_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(staff.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO calendar_feeds (hash, staff_id, created_at_ms) VALUES ($1, $2, $3)",
        )
        .bind(hash.to_vec())
        .bind(staff.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The staff member an active feed token belongs to.
    pub async fn find_calendar_feed(&self, hash: &[u8; 32]) -> Result<Option<StaffId>, StoreError> {
        let row = sqlx::query(
            "SELECT staff_id FROM calendar_feeds WHERE hash = $1 AND revoked_at_ms IS NULL",
        )
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| uuid(&row, "staff_id").map(StaffId))
            .transpose()
    }

    /// Revokes the staff member's feed tokens.
    pub async fn revoke_calendar_feeds(
        &self,
        staff: StaffId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE calendar_feeds SET revoked_at_ms = $1 \
             WHERE staff_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(staff.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
