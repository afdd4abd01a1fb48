//! The outbox: messages to deliver at least once — care-record exports (written in the same
//! transaction as the visit's end) and reminders (24 hours and 15 minutes before a visit).
//! Enqueueing is idempotent (`dedup_key`); a message's id is the stable idempotency key sent
//! to receivers. Rows survive restarts; a sender marks them delivered, failed (retried later
//! with backoff) or dropped (no longer relevant).

use super::{Store, StoreError, from_ms, ms, uuid};
use crate::care_record::CareRecord;
use crate::ids::{OutboxId, VisitId};
use crate::model::Visit;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

/// How long before a visit its reminders are due.
pub const REMINDER_OFFSETS: [Duration; 2] = [Duration::hours(24), Duration::minutes(15)];

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// A care-record export.
    Export,
    /// A reminder of a coming visit.
    Reminder,
}

impl OutboxKind {
    /// Stored code.
    pub fn code(self) -> &'static str {
        match self {
            OutboxKind::Export => "export",
            OutboxKind::Reminder => "reminder",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        match code {
            "export" => Some(OutboxKind::Export),
            "reminder" => Some(OutboxKind::Reminder),
            _ => None,
        }
    }
}

/// One message to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    /// Stable id (the idempotency key).
    pub id: OutboxId,
    /// Kind.
    pub kind: OutboxKind,
    /// The visit it concerns.
    pub visit_id: Option<VisitId>,
    /// The JSON payload.
    pub payload: Value,
    /// When it became (or becomes) due.
    pub due_at: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When dropped.
    pub dropped_at: Option<DateTime<Utc>>,
    /// Last error.
    pub last_error: Option<String>,
}

/// Delay before retry number `attempts + 1`: 5 s doubling up to an hour.
pub fn backoff(attempts: u32) -> Duration {
    let seconds = 5i64.saturating_mul(1i64 << attempts.min(20));
    Duration::seconds(seconds.min(3600))
}

async fn enqueue(
    conn: &mut AnyConnection,
    kind: OutboxKind,
    dedup_key: &str,
    visit: Option<VisitId>,
    payload: &Value,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (id, kind, dedup_key, visit_id, payload, due_at_ms, attempts, \
         next_attempt_ms, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, 0, $6, $7) \
         ON CONFLICT (dedup_key) DO NOTHING",
    )
    .bind(OutboxId::new().to_string())
    .bind(kind.code())
    .bind(dedup_key.to_owned())
    .bind(visit.map(|v| v.to_string()))
    .bind(payload.to_string())
    .bind(ms(due_at))
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Reminders of `visit` at its current planned start, for each offset still in the future.
pub(crate) async fn enqueue_reminders(
    conn: &mut AnyConnection,
    visit: &Visit,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    for offset in REMINDER_OFFSETS {
        let due = visit.planned_start - offset;
        if due <= now {
            continue;
        }
        let minutes = offset.num_minutes();
        let key = format!(
            "reminder:{}:{minutes}:{}",
            visit.id,
            ms(visit.planned_start)
        );
        let payload = json!({
            "type": "visit_reminder",
            "visit_id": visit.id,
            "staff_id": visit.staff_id,
            "co_host_id": visit.co_host_id,
            "citizen_id": visit.citizen_id,
            "planned_start": visit.planned_start,
            "minutes_before": minutes,
        });
        enqueue(
            conn,
            OutboxKind::Reminder,
            &key,
            Some(visit.id),
            &payload,
            due,
            now,
        )
        .await?;
    }
    Ok(())
}

/// The care-record export of an ended visit.
pub(crate) async fn enqueue_export(
    conn: &mut AnyConnection,
    visit: &Visit,
    team: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let Some(record) = CareRecord::of(visit, team) else {
        return Ok(());
    };
    let payload = json!({
        "record": serde_json::to_value(&record)
            .map_err(|e| StoreError::Invalid(format!("care record: {e}")))?,
        "fhir_encounter": record.fhir_encounter(),
    });
    let key = format!("export:{}", visit.id);
    enqueue(
        conn,
        OutboxKind::Export,
        &key,
        Some(visit.id),
        &payload,
        now,
        now,
    )
    .await
}

fn message_from(row: &sqlx::any::AnyRow) -> Result<OutboxMessage, StoreError> {
    let kind: String = row.try_get("kind")?;
    let payload: String = row.try_get("payload")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(OutboxMessage {
        id: OutboxId(uuid(row, "id")?),
        kind: OutboxKind::from_code(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("outbox kind {kind}")))?,
        visit_id: super::opt_uuid(row, "visit_id")?.map(VisitId),
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("outbox payload: {e}")))?,
        due_at: from_ms(row.try_get("due_at_ms")?)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        delivered_at: row
            .try_get::<Option<i64>, _>("delivered_at_ms")?
            .map(from_ms)
            .transpose()?,
        dropped_at: row
            .try_get::<Option<i64>, _>("dropped_at_ms")?
            .map(from_ms)
            .transpose()?,
        last_error: row.try_get("last_error")?,
    })
}

const COLUMNS: &str = "SELECT id, kind, visit_id, payload, due_at_ms, attempts, delivered_at_ms, \
                       dropped_at_ms, last_error FROM outbox ";

impl Store {
    /// Up to `limit` messages of `kind` due at `now` and not delivered or dropped, oldest first.
    pub async fn due_messages(
        &self,
        kind: OutboxKind,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!(
            "{COLUMNS} WHERE kind = $1 AND delivered_at_ms IS NULL AND dropped_at_ms IS NULL \
             AND next_attempt_ms <= $2 ORDER BY next_attempt_ms, id LIMIT $3"
        );
        // Built from constants only.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind.code())
            .bind(ms(now))
            .bind(i64::from(limit.clamp(1, 1000)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from).collect()
    }

    /// Every message about a visit (for tests and support).
    pub async fn messages_for_visit(
        &self,
        visit: VisitId,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let sql = format!("{COLUMNS} WHERE visit_id = $1 ORDER BY due_at_ms, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(visit.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(message_from).collect()
    }

    /// The receiver acknowledged the message.
    pub async fn mark_delivered(&self, id: OutboxId, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET delivered_at_ms = $1 WHERE id = $2 AND delivered_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A delivery attempt failed; retry after the backoff for the new attempt count.
    pub async fn mark_failed(
        &self,
        id: OutboxId,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = sqlx::query("SELECT attempts FROM outbox WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let attempts: i64 = row.try_get("attempts")?;
        let next = now + backoff(u32::try_from(attempts).unwrap_or(u32::MAX));
        let error: String = error.chars().take(500).collect();
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = $1, last_error = $2 \
             WHERE id = $3",
        )
        .bind(ms(next))
        .bind(error)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The message is no longer relevant (e.g. a reminder of a moved or cancelled visit).
    pub async fn mark_dropped(
        &self,
        id: OutboxId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET dropped_at_ms = $1, last_error = $2 WHERE id = $3")
            .bind(ms(now))
            .bind(reason.to_owned())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use chrono::Duration;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::seconds(5));
        assert_eq!(backoff(1), Duration::seconds(10));
        assert_eq!(backoff(3), Duration::seconds(40));
        assert_eq!(backoff(30), Duration::hours(1));
    }
}
