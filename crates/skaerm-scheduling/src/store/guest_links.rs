//! Guest links: one-off links that invite a third participant (a relative, an interpreter, a
//! colleague) to one visit. Like citizen links they are kept only as the SHA-256 of their
//! secret and work only inside the visit's window; each invite has its own id, which becomes
//! the guest's participant id in the room, and a display name chosen by the staff member. A
//! visit may have several; revoking one leaves the others.

use super::{Store, StoreError, from_ms, ms, uuid};
use crate::ids::{GuestLinkId, StaffId, VisitId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Longest display name of a guest, in characters.
pub const MAX_GUEST_NAME_CHARS: usize = 60;

/// Who the invited participant is to the visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuestKind {
    /// A relative of the citizen (pårørende).
    Relative,
    /// An interpreter (tolk).
    Interpreter,
    /// A colleague of the staff member.
    Colleague,
}

impl GuestKind {
    /// The stored and serialised name.
    pub fn as_str(self) -> &'static str {
        match self {
            GuestKind::Relative => "relative",
            GuestKind::Interpreter => "interpreter",
            GuestKind::Colleague => "colleague",
        }
    }

    fn parse(s: &str) -> Result<GuestKind, StoreError> {
        match s {
            "relative" => Ok(GuestKind::Relative),
            "interpreter" => Ok(GuestKind::Interpreter),
            "colleague" => Ok(GuestKind::Colleague),
            other => Err(StoreError::Corrupt(format!("guest kind {other}"))),
        }
    }
}

/// An invite to create.
#[derive(Debug, Clone)]
pub struct NewGuestLink {
    /// The one visit it opens.
    pub visit: VisitId,
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// The name the others see (trimmed; 1–60 characters, no control characters).
    pub display_name: String,
    /// Relative, interpreter or colleague.
    pub kind: GuestKind,
    /// The staff member who invited.
    pub created_by: StaffId,
}

/// A stored invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLink {
    /// Its id (also the guest's participant id in the room).
    pub id: GuestLinkId,
    /// The one visit it opens.
    pub visit: VisitId,
    /// The name the others see.
    pub display_name: String,
    /// Relative, interpreter or colleague.
    pub kind: GuestKind,
    /// Who invited.
    pub created_by: StaffId,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, visit_id, display_name, kind, created_by, created_at_ms, revoked_at_ms FROM guest_links";

fn guest_from(row: &AnyRow) -> Result<GuestLink, StoreError> {
    let kind: String = row.try_get("kind")?;
    let revoked: Option<i64> = row.try_get("revoked_at_ms")?;
    Ok(GuestLink {
        id: GuestLinkId(uuid(row, "id")?),
        visit: VisitId(uuid(row, "visit_id")?),
        display_name: row.try_get("display_name")?,
        kind: GuestKind::parse(&kind)?,
        created_by: StaffId(uuid(row, "created_by")?),
        created_at: from_ms(row.try_get("created_at_ms")?)?,
        revoked_at: revoked.map(from_ms).transpose()?,
    })
}

/// The display name as stored, or why it is refused.
pub fn clean_guest_name(name: &str) -> Result<String, StoreError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_GUEST_NAME_CHARS {
        return Err(StoreError::Invalid(format!(
            "a guest's display name has 1 to {MAX_GUEST_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(
            "a guest's display name has no control characters".to_owned(),
        ));
    }
    Ok(name.to_owned())
}

impl Store {
    /// Stores a new invite for a visit (the visit must exist).
    pub async fn create_guest_link(
        &self,
        new: NewGuestLink,
        now: DateTime<Utc>,
    ) -> Result<GuestLink, StoreError> {
        let display_name = clean_guest_name(&new.display_name)?;
        self.get_visit(new.visit).await?;
        let link = GuestLink {
            id: GuestLinkId::new(),
            visit: new.visit,
            display_name,
            kind: new.kind,
            created_by: new.created_by,
            created_at: now,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO guest_links \
             (id, hash, visit_id, display_name, kind, created_by, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(link.id.to_string())
        .bind(new.hash.to_vec())
        .bind(link.visit.to_string())
        .bind(link.display_name.clone())
        .bind(link.kind.as_str())
        .bind(link.created_by.to_string())
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(link)
    }

    /// The active (not revoked) invite with this secret hash.
    pub async fn find_guest_link(&self, hash: &[u8; 32]) -> Result<Option<GuestLink>, StoreError> {
        let sql = format!("SELECT {COLUMNS} WHERE hash = $1 AND revoked_at_ms IS NULL");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hash.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(guest_from).transpose()
    }

    /// One invite, revoked or not.
    pub async fn get_guest_link(&self, id: GuestLinkId) -> Result<GuestLink, StoreError> {
        let sql = format!("SELECT {COLUMNS} WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        guest_from(&row)
    }

    /// A visit's invites, oldest first (revoked ones included).
    pub async fn list_guest_links(&self, visit: VisitId) -> Result<Vec<GuestLink>, StoreError> {
        let sql = format!("SELECT {COLUMNS} WHERE visit_id = $1 ORDER BY created_at_ms, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(visit.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(guest_from).collect()
    }

    /// Revokes one invite of a visit; `NotFound` when the visit has no such invite. Revoking
    /// twice is not an error.
    pub async fn revoke_guest_link(
        &self,
        visit: VisitId,
        id: GuestLinkId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let found = sqlx::query("SELECT id FROM guest_links WHERE id = $1 AND visit_id = $2")
            .bind(id.to_string())
            .bind(visit.to_string())
            .fetch_optional(&self.pool)
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE guest_links SET revoked_at_ms = $1 \
             WHERE id = $2 AND visit_id = $3 AND revoked_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(id.to_string())
        .bind(visit.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes every invite of a visit (when it is cancelled or ends).
    pub async fn revoke_guest_links(
        &self,
        visit: VisitId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE guest_links SET revoked_at_ms = $1 \
             WHERE visit_id = $2 AND revoked_at_ms IS NULL",
        )
        .bind(ms(now))
        .bind(visit.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
