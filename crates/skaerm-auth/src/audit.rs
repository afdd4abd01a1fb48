//! The audit log: an append-only record of who created, changed, joined, admitted, ended or
//! viewed which visit and report, with time, actor, municipality and source address.
//!
//! Never media, never secrets: an event names people and things by id, its action by a fixed
//! code, and carries at most a short, server-written detail. The table refuses UPDATE and
//! DELETE by trigger on both backends, so not even a bug in this crate can rewrite history.

use crate::refs::TenantRef;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AnyPool, Row};
use std::net::IpAddr;
use std::str::FromStr;
use uuid::Uuid;

/// Longest detail stored (characters).
pub const MAX_DETAIL: usize = 200;
/// Most events one export returns.
pub const MAX_EXPORT: u32 = 10_000;

/// An audit failure.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A stored row is unreadable.
    #[error("corrupt audit row")]
    Corrupt,
    /// The database failed (or refused a change to the log).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

macro_rules! codes {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),* }

        impl $name {
            /// Its stable code.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),* }
            }

            /// The value with this code.
            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.code())
            }
        }
    };
}

codes!(
    /// What happened.
    AuditAction {
        /// A staff member logged in.
        Login = "login",
        /// A staff member logged out.
        Logout = "logout",
        /// A visit was created.
        VisitCreated = "visit_created",
        /// A visit was changed (time, people, legal basis, cancellation).
        VisitChanged = "visit_changed",
        /// A visit was started by its staff member.
        VisitStarted = "visit_started",
        /// A visit was ended.
        VisitEnded = "visit_ended",
        /// A visit's details were viewed.
        VisitViewed = "visit_viewed",
        /// Someone waiting was admitted into a visit.
        VisitAdmitted = "visit_admitted",
        /// A citizen link was issued (its secret is not recorded).
        LinkIssued = "link_issued",
        /// A citizen link was revoked.
        LinkRevoked = "link_revoked",
        /// A citizen link was exchanged for a media token.
        LinkExchanged = "link_exchanged",
        /// Someone's media session in a visit started.
        MediaJoined = "media_joined",
        /// Someone's media session in a visit ended.
        MediaLeft = "media_left",
        /// A report was viewed or exported.
        ReportViewed = "report_viewed",
        /// The audit log was exported.
        AuditExported = "audit_exported",
        /// An account was created or its roles changed.
        AccountChanged = "account_changed",
        /// A tablet was paired or unpaired.
        DeviceChanged = "device_changed",
        /// Staff called a paired tablet.
        DeviceCalled = "device_called",
    }
);

codes!(
    /// Who acted.
    ActorKind {
        /// A staff member (any role).
        Staff = "staff",
        /// A citizen (link or paired device).
        Citizen = "citizen",
        /// The server itself.
        System = "system",
    }
);

codes!(
    /// What was acted on.
    SubjectKind {
        /// A visit.
        Visit = "visit",
        /// A report.
        Report = "report",
        /// A staff session.
        Session = "session",
        /// An account.
        Account = "account",
        /// The audit log.
        AuditLog = "audit_log",
        /// A paired device.
        Device = "device",
    }
);

/// One thing to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The municipality it belongs to.
    pub tenant: TenantRef,
    /// Who acted.
    pub actor_kind: ActorKind,
    /// Their id, when known.
    pub actor_id: Option<Uuid>,
    /// What happened.
    pub action: AuditAction,
    /// To what, when it concerns one thing.
    pub subject: Option<(SubjectKind, Uuid)>,
    /// The client's address, when over HTTP.
    pub source_ip: Option<IpAddr>,
    /// A short server-written note (never user input, never a secret).
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event by a staff member.
    pub fn staff(tenant: TenantRef, staff: Uuid, action: AuditAction) -> Self {
        AuditEvent {
            tenant,
            actor_kind: ActorKind::Staff,
            actor_id: Some(staff),
            action,
            subject: None,
            source_ip: None,
            detail: None,
        }
    }

    /// An event by a citizen.
    pub fn citizen(tenant: TenantRef, citizen: Uuid, action: AuditAction) -> Self {
        AuditEvent {
            actor_kind: ActorKind::Citizen,
            ..AuditEvent::staff(tenant, citizen, action)
        }
    }

    /// About a visit.
    pub fn visit(self, visit: Uuid) -> Self {
        self.about(SubjectKind::Visit, visit)
    }

    /// About `kind` `id`.
    pub fn about(mut self, kind: SubjectKind, id: Uuid) -> Self {
        self.subject = Some((kind, id));
        self
    }

    /// From this address.
    pub fn from_ip(mut self, ip: Option<IpAddr>) -> Self {
        self.source_ip = ip;
        self
    }

    /// With a short note.
    pub fn detail(mut self, detail: &str) -> Self {
        self.detail = Some(detail.chars().take(MAX_DETAIL).collect());
        self
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Its id (UUIDv7: sorts by time).
    pub id: Uuid,
    /// When it was recorded.
    pub at: DateTime<Utc>,
    /// The municipality.
    pub tenant_id: Uuid,
    /// Who acted.
    pub actor_kind: ActorKind,
    /// Their id.
    pub actor_id: Option<Uuid>,
    /// What happened.
    pub action: AuditAction,
    /// What it was about.
    pub subject_kind: Option<SubjectKind>,
    /// Its id.
    pub subject_id: Option<Uuid>,
    /// The client's address.
    pub source_ip: Option<String>,
    /// The note.
    pub detail: Option<String>,
}

/// The audit log in the shared database.
#[derive(Clone, Debug)]
pub struct AuditLog {
    pool: AnyPool,
}

impl AuditLog {
    /// The log in this database (migrated with [`crate::migrate`]).
    pub fn new(pool: AnyPool) -> Self {
        AuditLog { pool }
    }

    /// Appends an event at `now`.
    pub async fn record(&self, event: AuditEvent, now: DateTime<Utc>) -> Result<(), AuditError> {
        sqlx::query(
            "INSERT INTO audit_events (id, at_ms, tenant_id, actor_kind, actor_id, action, \
             subject_kind, subject_id, source_ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(now.timestamp_millis())
        .bind(event.tenant.0.to_string())
        .bind(event.actor_kind.code())
        .bind(event.actor_id.map(|id| id.to_string()))
        .bind(event.action.code())
        .bind(event.subject.map(|(kind, _)| kind.code()))
        .bind(event.subject.map(|(_, id)| id.to_string()))
        .bind(event.source_ip.map(|ip| ip.to_string()))
        .bind(event.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A municipality's events in `[from, to)`, oldest first, at most `limit` (capped at
    /// [`MAX_EXPORT`]).
    pub async fn list(
        &self,
        tenant: TenantRef,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, AuditError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, tenant_id, actor_kind, actor_id, action, subject_kind, \
             subject_id, source_ip, detail FROM audit_events \
             WHERE tenant_id = $1 AND at_ms >= $2 AND at_ms < $3 ORDER BY at_ms, id LIMIT $4",
        )
        .bind(tenant.0.to_string())
        .bind(from.timestamp_millis())
        .bind(to.timestamp_millis())
        .bind(i64::from(limit.min(MAX_EXPORT)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_of).collect()
    }
}

fn record_of(row: &sqlx::any::AnyRow) -> Result<AuditRecord, AuditError> {
    let uuid = |text: String| Uuid::from_str(&text).map_err(|_| AuditError::Corrupt);
    let optional_uuid = |text: Option<String>| text.map(uuid).transpose();
    let at: i64 = row.try_get("at_ms")?;
    let actor_kind: String = row.try_get("actor_kind")?;
    let action: String = row.try_get("action")?;
    let subject_kind: Option<String> = row.try_get("subject_kind")?;
    Ok(AuditRecord {
        id: uuid(row.try_get("id")?)?,
        at: DateTime::from_timestamp_millis(at).ok_or(AuditError::Corrupt)?,
        tenant_id: uuid(row.try_get("tenant_id")?)?,
        actor_kind: ActorKind::from_code(&actor_kind).ok_or(AuditError::Corrupt)?,
        actor_id: optional_uuid(row.try_get("actor_id")?)?,
        action: AuditAction::from_code(&action).ok_or(AuditError::Corrupt)?,
        subject_kind: subject_kind
            .map(|k| SubjectKind::from_code(&k).ok_or(AuditError::Corrupt))
            .transpose()?,
        subject_id: optional_uuid(row.try_get("subject_id")?)?,
        source_ip: row.try_get("source_ip")?,
        detail: row.try_get("detail")?,
    })
}
