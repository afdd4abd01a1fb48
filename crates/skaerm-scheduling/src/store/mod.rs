//! Storage of tenants, people, visits and citizen links over sqlx's `Any` driver: one code path
//! for the embedded SQLite default and PostgreSQL for several nodes.
//!
//! Every write is a single statement or one transaction, so a crash (even `kill -9`) leaves the
//! old state or the new one. State transitions are conditional updates (`WHERE status = <the
//! state read>`) derived from the pure lifecycle rules, so two concurrent requests cannot both
//! win. Bookings first write their staff members' rows, which serialises bookings per staff
//! member on both backends, then check for double-booking, then insert.
//!
//! - [`visits`]: planning, moving, the lifecycle, recovery;
//! - [`series`]: recurring series, exceptions, "this and following" edits, materialisation;
//! - [`links`]: citizen links per visit or per series;
//! - [`guest_links`]: one-off links inviting a third participant to one visit;
//! - [`outbox`]: care-record exports and reminders to deliver at least once;
//! - [`reports`]: monthly numbers per team and paragraph;
//! - [`feeds`]: staff calendar-feed tokens;
//! - [`retention`]: removing old visits.

pub mod feeds;
pub mod guest_links;
pub mod links;
pub mod outbox;
pub mod reports;
pub mod retention;
pub mod series;
pub mod visits;

use crate::conflicts::SchedulingRules;
use crate::ids::{CitizenId, SeriesId, StaffId, TenantId, VisitId};
use crate::lifecycle::{IllegalTransition, VisitStatus};
use crate::model::{Citizen, EndedBy, LegalBasis, Staff, Tenant, Visit};
use crate::recurrence::RecurrenceError;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor, Row};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such row.
    #[error("not found")]
    NotFound,
    /// The lifecycle does not allow this change.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// The input breaks a rule (e.g. people from another municipality).
    #[error("invalid: {0}")]
    Invalid(String),
    /// A staff member would be double-booked.
    #[error("conflicts with visit {} ({}–{})", .0.visit, .0.planned_start, .0.planned_end)]
    Conflict(Conflict),
    /// The visit has begun or ended and can no longer be moved or edited.
    #[error("a {0:?} visit cannot be changed")]
    NotChangeable(VisitStatus),
    /// The recurrence rule is not acceptable.
    #[error(transparent)]
    Recurrence(#[from] RecurrenceError),
    /// A "this and following" edit names an occurrence the series no longer has: someone
    /// split it before that occurrence meanwhile (edit the newer series instead).
    #[error("the series has already been split before that occurrence")]
    AlreadySplit,
    /// The row kept changing under a conditional update (retry later).
    #[error("the visit changed concurrently; try again")]
    Busy,
    /// A stored value could not be read back (corrupt or foreign data).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The URL names a database this build does not support.
    #[error("unsupported database URL (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

/// The visit a booking collides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The visit already booked.
    pub visit: VisitId,
    /// Its planned start.
    pub planned_start: DateTime<Utc>,
    /// Its planned end.
    pub planned_end: DateTime<Utc>,
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The backend a URL names.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// The scheduling store.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    rules: SchedulingRules,
}

/// Opens a pool for `url`: for SQLite the file (and its directory) is created when missing, WAL
/// is on, foreign keys are enforced and writers wait for each other instead of failing.
pub async fn connect(url: &str) -> Result<(AnyPool, Backend), StoreError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url).ok_or(StoreError::UnsupportedUrl)?;
    let url = match backend {
        Backend::Sqlite => {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .split('?')
                .next()
                .unwrap_or_default();
            if let Some(dir) = Path::new(path).parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| StoreError::Invalid(format!("creating {}: {e}", dir.display())))?;
            }
            if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            }
        }
        Backend::Postgres => url.to_owned(),
    };
    let options = AnyPoolOptions::new()
        .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                }
                Ok(())
            })
        });
    let pool = options.connect(&url).await?;
    if backend == Backend::Sqlite {
        // Persistent in the file: readers never block the writer, and commits are atomic.
        pool.execute("PRAGMA journal_mode = WAL").await?;
    }
    Ok((pool, backend))
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn from_ms(v: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("instant {v}")))
}

pub(crate) fn uuid(row: &AnyRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::from_str(&text).map_err(|_| StoreError::Corrupt(format!("{column}: {text}")))
}

/// `SELECT <visit columns> FROM visits <rest>` as one literal.
macro_rules! select_visits {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, legal_basis, purpose, staff_id, co_host_id, citizen_id, ",
            "planned_start_ms, duration_minutes, status, actual_start_ms, actual_end_ms, ",
            "ended_by, outcome_note, series_id, occurrence_ms, is_exception FROM visits ",
            $rest
        )
    };
}

pub(crate) use select_visits;

pub(crate) fn opt_uuid(row: &AnyRow, column: &str) -> Result<Option<Uuid>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| Uuid::from_str(&t).map_err(|_| StoreError::Corrupt(format!("{column}: {t}"))))
        .transpose()
}

pub(crate) fn visit_from(row: &AnyRow) -> Result<Visit, StoreError> {
    let legal_basis: String = row.try_get("legal_basis")?;
    let status: String = row.try_get("status")?;
    let duration: i64 = row.try_get("duration_minutes")?;
    let actual_start: Option<i64> = row.try_get("actual_start_ms")?;
    let actual_end: Option<i64> = row.try_get("actual_end_ms")?;
    Ok(Visit {
        id: VisitId(uuid(row, "id")?),
        tenant_id: TenantId(uuid(row, "tenant_id")?),
        legal_basis: LegalBasis::from_code(&legal_basis)
            .ok_or_else(|| StoreError::Corrupt(format!("legal basis {legal_basis}")))?,
        purpose: row.try_get("purpose")?,
        staff_id: StaffId(uuid(row, "staff_id")?),
        co_host_id: opt_uuid(row, "co_host_id")?.map(StaffId),
        citizen_id: CitizenId(uuid(row, "citizen_id")?),
        planned_start: from_ms(row.try_get("planned_start_ms")?)?,
        duration_minutes: u32::try_from(duration)
            .map_err(|_| StoreError::Corrupt(format!("duration {duration}")))?,
        status: VisitStatus::from_code(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
        actual_start: actual_start.map(from_ms).transpose()?,
        actual_end: actual_end.map(from_ms).transpose()?,
        ended_by: match row.try_get::<Option<String>, _>("ended_by")? {
            Some(code) => Some(
                EndedBy::from_code(&code)
                    .ok_or_else(|| StoreError::Corrupt(format!("ended_by {code}")))?,
            ),
            None => None,
        },
        outcome_note: row.try_get("outcome_note")?,
        series_id: opt_uuid(row, "series_id")?.map(SeriesId),
        occurrence_start: row
            .try_get::<Option<i64>, _>("occurrence_ms")?
            .map(from_ms)
            .transpose()?,
        is_exception: row.try_get::<i64, _>("is_exception")? != 0,
    })
}

impl Store {
    /// Connects to `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let (pool, backend) = connect(url).await?;
        let store = Store {
            pool,
            backend,
            rules: SchedulingRules::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A store over an existing pool (shared with other crates' tables).
    pub fn from_pool(pool: AnyPool, backend: Backend) -> Store {
        Store {
            pool,
            backend,
            rules: SchedulingRules::default(),
        }
    }

    /// The same store applying `rules` (buffer between visits, materialisation horizon).
    pub fn with_rules(mut self, rules: SchedulingRules) -> Store {
        self.rules = rules;
        self
    }

    /// The rules in effect.
    pub fn rules(&self) -> SchedulingRules {
        self.rules
    }

    /// Applies this crate's migrations. Other crates keep their own migrations in the same
    /// database, so unknown applied versions are not an error.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut migrator = match self.backend {
            Backend::Sqlite => Migrator {
                migrations: SQLITE_MIGRATIONS.migrations.clone(),
                ..Migrator::DEFAULT
            },
            Backend::Postgres => Migrator {
                migrations: POSTGRES_MIGRATIONS.migrations.clone(),
                ..Migrator::DEFAULT
            },
        };
        migrator.set_ignore_missing(true);
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// The pool (for other crates sharing the database).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    // ---- tenants and people --------------------------------------------------------------

    /// Creates a municipality with a given id.
    pub async fn create_tenant_with_id(
        &self,
        id: TenantId,
        name: &str,
    ) -> Result<Tenant, StoreError> {
        sqlx::query("INSERT INTO tenants (id, name, created_at_ms) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(name)
            .bind(ms(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(Tenant {
            id,
            name: name.to_owned(),
        })
    }

    /// Creates a municipality.
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        self.create_tenant_with_id(TenantId::new(), name).await
    }

    /// Creates a staff member with a given id.
    pub async fn create_staff_with_id(
        &self,
        id: StaffId,
        tenant_id: TenantId,
        display_name: &str,
        team: Option<&str>,
    ) -> Result<Staff, StoreError> {
        sqlx::query(
            "INSERT INTO staff (id, tenant_id, display_name, team, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .bind(display_name)
        .bind(team.map(str::to_owned))
        .bind(ms(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(Staff {
            id,
            tenant_id,
            display_name: display_name.to_owned(),
            team: team.map(str::to_owned),
        })
    }

    /// Creates a staff member.
    pub async fn create_staff(
        &self,
        tenant_id: TenantId,
        display_name: &str,
        team: Option<&str>,
    ) -> Result<Staff, StoreError> {
        self.create_staff_with_id(StaffId::new(), tenant_id, display_name, team)
            .await
    }

    /// Creates a citizen with a given id.
    pub async fn create_citizen_with_id(
        &self,
        id: CitizenId,
        tenant_id: TenantId,
        display_name: &str,
    ) -> Result<Citizen, StoreError> {
        crate::model::check_no_cpr(display_name).map_err(StoreError::Invalid)?;
        sqlx::query(
            "INSERT INTO citizens (id, tenant_id, display_name, created_at_ms) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .bind(display_name)
        .bind(ms(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(Citizen {
            id,
            tenant_id,
            display_name: display_name.to_owned(),
        })
    }

    /// Creates a citizen.
    pub async fn create_citizen(
        &self,
        tenant_id: TenantId,
        display_name: &str,
    ) -> Result<Citizen, StoreError> {
        self.create_citizen_with_id(CitizenId::new(), tenant_id, display_name)
            .await
    }

    /// A staff member.
    pub async fn get_staff(&self, id: StaffId) -> Result<Staff, StoreError> {
        let row = sqlx::query("SELECT id, tenant_id, display_name, team FROM staff WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(Staff {
            id: StaffId(uuid(&row, "id")?),
            tenant_id: TenantId(uuid(&row, "tenant_id")?),
            display_name: row.try_get("display_name")?,
            team: row.try_get("team")?,
        })
    }

    /// A citizen.
    pub async fn get_citizen(&self, id: CitizenId) -> Result<Citizen, StoreError> {
        let row = sqlx::query("SELECT id, tenant_id, display_name FROM citizens WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(Citizen {
            id: CitizenId(uuid(&row, "id")?),
            tenant_id: TenantId(uuid(&row, "tenant_id")?),
            display_name: row.try_get("display_name")?,
        })
    }
}
