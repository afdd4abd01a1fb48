//! The domain services the server runs on, built once at start: storage, accounts, sessions,
//! tokens, the audit log, throttles, the live call list and the ringing tablets. Nothing here
//! knows HTTP or the relay; request handlers reach them through [`crate::state::AppState`].

use crate::config::SchedulingConfig;
use crate::config::ServerConfig;
use crate::tablet_calls::TabletCalls;
use anyhow::Context;
use skaerm_auth::accounts::AccountStore;
use skaerm_auth::audit::AuditLog;
use skaerm_auth::devices::DeviceStore;
use skaerm_auth::identities::IdentityStore;
use skaerm_auth::keys::KeyStore;
use skaerm_auth::password_hashing::PasswordHashing;
use skaerm_auth::rate_limit::RateLimiter;
use skaerm_auth::sessions::SessionStore;
use skaerm_auth::tokens::TokenService;
use skaerm_scheduling::{LinkWindow, SchedulingRules, Store};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Storage and identity services (everything but the relay).
#[derive(Clone)]
pub struct Services {
    /// Visits, staff, citizens.
    pub store: Store,
    /// Local staff accounts.
    pub accounts: AccountStore,
    /// Staff logins (refresh, revocation).
    pub sessions: SessionStore,
    /// Signing keys (rotation).
    pub keys: KeyStore,
    /// The append-only audit log.
    pub audit: AuditLog,
    /// Single sign-on identities.
    pub identities: IdentityStore,
    /// Registered citizen tablets.
    pub devices: DeviceStore,
    /// Issues and verifies tokens.
    pub tokens: Arc<TokenService>,
    /// When citizen links work.
    pub link_window: LinkWindow,
    /// Throttles: login attempts per IP, link exchanges per IP and per link.
    pub limits: Arc<Limits>,
    /// Scheduling settings.
    pub scheduling: Arc<SchedulingConfig>,
    /// When signing keys were last reloaded for an unknown `kid`.
    key_reload: Arc<Mutex<Option<std::time::Instant>>>,
    /// Calls in progress on this node (for operations).
    live_calls: Arc<Mutex<crate::live_calls::LiveCalls>>,
    /// Tablets being called on this node.
    pub tablet_calls: TabletCalls,
}

/// Brute-force throttles.
pub struct Limits {
    /// Login attempts per client IP (local and single sign-on starts).
    pub login_per_ip: Mutex<RateLimiter>,
    /// Local login attempts per username and client address (per minute).
    pub login_per_user: Mutex<RateLimiter>,
    /// Local login attempts per username from all addresses (per hour).
    pub login_per_user_hourly: Mutex<RateLimiter>,
    /// Link exchanges per client IP.
    pub join_per_ip: Mutex<RateLimiter>,
    /// Link exchanges per link.
    pub join_per_link: Mutex<RateLimiter>,
    /// Tablet pairing requests and code entries per client IP.
    pub pairing_per_ip: Mutex<RateLimiter>,
    /// Most tablet pairing requests open at once, installation-wide.
    pub max_open_pairing_requests: u64,
    /// `skaerm_pairing_requests_refused_total`: pairing requests answered 503 because as many
    /// as allowed were open.
    pub pairing_requests_refused: prometheus::IntCounter,
}

impl Services {
    /// The live call list.
    pub fn live_calls(&self) -> std::sync::MutexGuard<'_, crate::live_calls::LiveCalls> {
        self.live_calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the database (creating and migrating it) and loads or creates the signing keys.
    pub async fn open(config: &ServerConfig) -> anyhow::Result<Services> {
        let url = config.database_url();
        let rules = SchedulingRules {
            buffer: chrono::Duration::minutes(config.scheduling.conflict_buffer_minutes.max(0)),
            horizon: chrono::Duration::days(config.scheduling.series_horizon_days.clamp(1, 730)),
            ..SchedulingRules::default()
        };
        let store = Store::open(&url)
            .await
            .with_context(|| format!("opening the database {url}"))?
            .with_rules(rules);
        skaerm_auth::migrate(store.pool())
            .await
            .context("migrating auth tables")?;
        let key_store = KeyStore::new(store.pool().clone());
        let keys = key_store
            .load_or_create()
            .await
            .context("loading signing keys")?;
        let keys = match key_store
            .rotate_if_created_before(
                chrono::Utc::now() - chrono::Duration::days(config.signing_key_rotation_days),
            )
            .await
            .context("rotating the signing key")?
        {
            Some(rotated) => {
                tracing::info!("signing key rotated");
                rotated
            }
            None => keys,
        };
        let tokens = Arc::new(TokenService::new(keys, "skaerm"));
        let accounts = AccountStore::with_hashing(
            store.pool().clone(),
            Arc::new(PasswordHashing::new(
                config.edge.password_hash_concurrency,
                Duration::from_millis(config.edge.password_hash_wait_ms),
            )),
        );
        let link_window = LinkWindow {
            opens_before: chrono::Duration::minutes(config.link_opens_before_minutes),
            closes_after_end: chrono::Duration::minutes(config.link_closes_after_minutes),
        };
        let minute = Duration::from_secs(60);
        let limits = Arc::new(Limits {
            login_per_ip: Mutex::new(RateLimiter::new(config.login_limit_per_ip, minute, 100_000)),
            login_per_user: Mutex::new(RateLimiter::new(
                config.login_limit_per_user,
                minute,
                100_000,
            )),
            login_per_user_hourly: Mutex::new(RateLimiter::new(
                config.login_limit_per_user_hour,
                Duration::from_secs(3600),
                100_000,
            )),
            join_per_ip: Mutex::new(RateLimiter::new(config.join_limit_per_ip, minute, 100_000)),
            join_per_link: Mutex::new(RateLimiter::new(
                config.join_limit_per_link,
                minute,
                100_000,
            )),
            pairing_per_ip: Mutex::new(RateLimiter::new(
                config.pairing_limit_per_ip,
                minute,
                100_000,
            )),
            max_open_pairing_requests: u64::from(config.max_open_pairing_requests),
            pairing_requests_refused: prometheus::IntCounter::new(
                "skaerm_pairing_requests_refused_total",
                "Tablet pairing requests refused with 503 because as many as allowed were open",
            )?,
        });
        Ok(Services {
            sessions: SessionStore::new(store.pool().clone()),
            keys: key_store,
            audit: AuditLog::new(store.pool().clone()),
            identities: IdentityStore::new(store.pool().clone()),
            devices: DeviceStore::new(store.pool().clone()),
            key_reload: Arc::new(Mutex::new(None)),
            live_calls: Arc::default(),
            tablet_calls: TabletCalls::default(),
            store,
            accounts,
            tokens,
            link_window,
            limits,
            scheduling: Arc::new(config.scheduling.clone()),
        })
    }
}

impl Services {
    /// Reloads the signing keys from the database when a token names a `kid` this node lacks
    /// (another node rotated), at most every 10 seconds. Whether it reloaded.
    pub async fn reload_keys_for_unknown_kid(&self) -> bool {
        {
            let mut last = self.key_reload.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
                return false;
            }
            *last = Some(std::time::Instant::now());
        }
        match self.keys.reload().await {
            Ok(set) => {
                self.tokens.replace_keys(set);
                true
            }
            Err(err) => {
                tracing::error!(%err, "reloading signing keys failed");
                false
            }
        }
    }

    /// Rotates the signing key when older than `max_age_days`, prunes keys retired over a day
    /// ago (every token they signed has expired), and loads the set in effect.
    pub async fn maintain_keys(&self, max_age_days: i64) -> anyhow::Result<()> {
        let now = chrono::Utc::now();
        if self
            .keys
            .rotate_if_created_before(now - chrono::Duration::days(max_age_days))
            .await?
            .is_some()
        {
            tracing::info!("signing key rotated");
        }
        self.keys
            .prune_retired(now - chrono::Duration::days(1))
            .await?;
        self.tokens.replace_keys(self.keys.reload().await?);
        Ok(())
    }
}
