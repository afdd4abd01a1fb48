//! What request handlers share: storage, token service, accounts, limits and the relay.

use crate::config::SchedulingConfig;
use crate::config::ServerConfig;
use anyhow::Context;
use skaerm_auth::accounts::AccountStore;
use skaerm_auth::keys::KeyStore;
use skaerm_auth::rate_limit::RateLimiter;
use skaerm_auth::tokens::TokenService;
use skaerm_scheduling::{LinkWindow, SchedulingRules, Store};
use skaerm_sfu::Sfu;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Storage and identity services (everything but the relay).
#[derive(Clone)]
pub struct Services {
    /// Visits, staff, citizens.
    pub store: Store,
    /// Local staff accounts.
    pub accounts: AccountStore,
    /// Issues and verifies tokens.
    pub tokens: Arc<TokenService>,
    /// When citizen links work.
    pub link_window: LinkWindow,
    /// Throttles: login attempts per IP, link exchanges per IP and per link.
    pub limits: Arc<Limits>,
    /// Scheduling settings.
    pub scheduling: Arc<SchedulingConfig>,
}

/// Brute-force throttles.
pub struct Limits {
    /// Login attempts per client IP.
    pub login_per_ip: Mutex<RateLimiter>,
    /// Link exchanges per client IP.
    pub join_per_ip: Mutex<RateLimiter>,
    /// Link exchanges per link.
    pub join_per_link: Mutex<RateLimiter>,
}

impl Services {
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
        let keys = KeyStore::new(store.pool().clone())
            .load_or_create()
            .await
            .context("loading signing keys")?;
        let tokens = Arc::new(TokenService::new(keys, "skaerm"));
        let accounts = AccountStore::new(store.pool().clone());
        let link_window = LinkWindow {
            opens_before: chrono::Duration::minutes(config.link_opens_before_minutes),
            closes_after_end: chrono::Duration::minutes(config.link_closes_after_minutes),
        };
        let minute = Duration::from_secs(60);
        let limits = Arc::new(Limits {
            login_per_ip: Mutex::new(RateLimiter::new(10, minute, 100_000)),
            join_per_ip: Mutex::new(RateLimiter::new(30, minute, 100_000)),
            join_per_link: Mutex::new(RateLimiter::new(20, minute, 100_000)),
        });
        Ok(Services {
            store,
            accounts,
            tokens,
            link_window,
            limits,
            scheduling: Arc::new(config.scheduling.clone()),
        })
    }
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    /// Storage and identity.
    pub services: Services,
    /// The media relay.
    pub sfu: Arc<Sfu>,
    /// Prometheus registry for `/metrics`.
    pub registry: prometheus::Registry,
    /// Base URL for links.
    pub public_url: Arc<str>,
}

impl AppState {
    /// Bundles the parts.
    pub fn new(
        services: Services,
        sfu: Arc<Sfu>,
        registry: prometheus::Registry,
        public_url: String,
    ) -> Self {
        AppState {
            services,
            sfu,
            registry,
            public_url: public_url.into(),
        }
    }
}
