//! Storage of tenants, people, visits and citizen links over sqlx's `Any` driver: one code path
//! for the embedded SQLite default and PostgreSQL for several nodes.
//!
//! Every write is a single statement or one transaction, so a crash (even `kill -9`) leaves the
//! old state or the new one. State transitions are conditional updates (`WHERE status IN …`)
//! derived from the pure lifecycle rules, so two concurrent requests cannot both win.

use crate::ids::{CitizenId, StaffId, TenantId, VisitId};
use crate::lifecycle::{IllegalTransition, VisitEvent, VisitStatus};
use crate::model::{Citizen, DURATION_MINUTES, LegalBasis, NewVisit, Staff, Tenant, Visit};
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

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("instant {v}")))
}

fn uuid(row: &AnyRow, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::from_str(&text).map_err(|_| StoreError::Corrupt(format!("{column}: {text}")))
}

/// `SELECT <visit columns> FROM visits <rest>` as one literal.
macro_rules! select_visits {
    ($rest:literal) => {
        concat!(
            "SELECT id, tenant_id, legal_basis, staff_id, citizen_id, planned_start_ms, ",
            "duration_minutes, status, actual_start_ms, actual_end_ms FROM visits ",
            $rest
        )
    };
}

fn visit_from(row: &AnyRow) -> Result<Visit, StoreError> {
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
        staff_id: StaffId(uuid(row, "staff_id")?),
        citizen_id: CitizenId(uuid(row, "citizen_id")?),
        planned_start: from_ms(row.try_get("planned_start_ms")?)?,
        duration_minutes: u32::try_from(duration)
            .map_err(|_| StoreError::Corrupt(format!("duration {duration}")))?,
        status: VisitStatus::from_code(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
        actual_start: actual_start.map(from_ms).transpose()?,
        actual_end: actual_end.map(from_ms).transpose()?,
    })
}

impl Store {
    /// Connects to `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let (pool, backend) = connect(url).await?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    /// A store over an existing pool (shared with other crates' tables).
    pub fn from_pool(pool: AnyPool, backend: Backend) -> Store {
        Store { pool, backend }
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

    // ---- visits --------------------------------------------------------------------------

    /// Plans a visit. Staff and citizen must exist in the visit's municipality.
    pub async fn create_visit(&self, new: NewVisit) -> Result<Visit, StoreError> {
        if !DURATION_MINUTES.contains(&new.duration_minutes) {
            return Err(StoreError::Invalid(format!(
                "duration must be {}–{} minutes",
                DURATION_MINUTES.start(),
                DURATION_MINUTES.end()
            )));
        }
        let staff = self.get_staff(new.staff_id).await.map_err(|e| match e {
            StoreError::NotFound => StoreError::Invalid("no such staff member".into()),
            e => e,
        })?;
        let citizen = self
            .get_citizen(new.citizen_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => StoreError::Invalid("no such citizen".into()),
                e => e,
            })?;
        if staff.tenant_id != new.tenant_id || citizen.tenant_id != new.tenant_id {
            return Err(StoreError::Invalid(
                "staff, citizen and visit must belong to the same municipality".into(),
            ));
        }
        let visit = Visit {
            id: VisitId::new(),
            tenant_id: new.tenant_id,
            legal_basis: new.legal_basis,
            staff_id: new.staff_id,
            citizen_id: new.citizen_id,
            planned_start: new.planned_start,
            duration_minutes: new.duration_minutes,
            status: VisitStatus::Planned,
            actual_start: None,
            actual_end: None,
        };
        let now = ms(Utc::now());
        sqlx::query(
            "INSERT INTO visits (id, tenant_id, legal_basis, staff_id, citizen_id, \
             planned_start_ms, duration_minutes, status, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(visit.id.to_string())
        .bind(visit.tenant_id.to_string())
        .bind(visit.legal_basis.code())
        .bind(visit.staff_id.to_string())
        .bind(visit.citizen_id.to_string())
        .bind(ms(visit.planned_start))
        .bind(i64::from(visit.duration_minutes))
        .bind(visit.status.code())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(visit)
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

    /// A staff member's visits planned to start in `[from, to)`, earliest first.
    pub async fn list_visits_for_staff(
        &self,
        staff: StaffId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Visit>, StoreError> {
        let rows = sqlx::query(select_visits!(
            "WHERE staff_id = $1 AND planned_start_ms >= $2 AND planned_start_ms < $3 \
             ORDER BY planned_start_ms, id"
        ))
        .bind(staff.to_string())
        .bind(ms(from))
        .bind(ms(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(visit_from).collect()
    }

    /// Applies a lifecycle event as one conditional update; refused transitions leave the row
    /// as it was.
    async fn transition(
        &self,
        id: VisitId,
        event: VisitEvent,
        now: DateTime<Utc>,
    ) -> Result<Visit, StoreError> {
        let sources = VisitStatus::sources_of(event);
        let target = match event {
            VisitEvent::Start => VisitStatus::InProgress,
            VisitEvent::Complete => VisitStatus::Completed,
        };
        let placeholders: Vec<String> = (0..sources.len()).map(|i| format!("${}", i + 4)).collect();
        let set_time = match event {
            VisitEvent::Start => "actual_start_ms = COALESCE(actual_start_ms, $2)",
            VisitEvent::Complete => "actual_end_ms = $2",
        };
        let sql = format!(
            "UPDATE visits SET status = $1, {set_time}, updated_at_ms = $2 \
             WHERE id = $3 AND status IN ({})",
            placeholders.join(", ")
        );
        // Built only from fixed fragments and placeholder numbers: no input reaches the text.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(target.code())
            .bind(ms(now))
            .bind(id.to_string());
        for source in &sources {
            query = query.bind(source.code());
        }
        let updated = query.execute(&self.pool).await?.rows_affected();
        let visit = self.get_visit(id).await?;
        if updated == 0 {
            visit.status.apply(event)?;
            // Allowed but nothing changed cannot happen (the update would have matched);
            // report the state as read.
        }
        Ok(visit)
    }

    /// Staff start the visit (idempotent while in progress).
    pub async fn start_visit(&self, id: VisitId, now: DateTime<Utc>) -> Result<Visit, StoreError> {
        self.transition(id, VisitEvent::Start, now).await
    }

    /// Staff end the visit.
    pub async fn complete_visit(
        &self,
        id: VisitId,
        now: DateTime<Utc>,
    ) -> Result<Visit, StoreError> {
        self.transition(id, VisitEvent::Complete, now).await
    }

    // ---- citizen links -------------------------------------------------------------------

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

    /// The visit an active link belongs to.
    pub async fn find_visit_by_link(&self, hash: &[u8; 32]) -> Result<Option<Visit>, StoreError> {
        let row = sqlx::query(
            "SELECT visit_id FROM citizen_links WHERE hash = $1 AND revoked_at_ms IS NULL",
        )
        .bind(hash.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(
                self.get_visit(VisitId(uuid(&row, "visit_id")?)).await?,
            )),
            None => Ok(None),
        }
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
}
