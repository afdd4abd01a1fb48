//! The Skærm server: wires the media relay, signalling, scheduling and auth behind one HTTP
//! listener.
//!
//! - [`config`]: flags and environment;
//! - [`services`]: the domain services (storage, accounts, sessions, tokens, audit, limits, live
//!   calls, tablet calls), built once;
//! - [`state`]: what request handlers share (the services and the HTTP surface's parts);
//! - [`audit`]: what the server records in the audit log;
//! - [`admission`]: who may join which visit's room (the relay's `JoinAuthorizer`);
//! - [`oidc`]: staff single sign-on (OpenID Connect, PKCE);
//! - [`live_calls`]: the live call list for operations (rooms with people in them);
//! - [`tablet_calls`]: citizens' tablets being called (ringing) by staff;
//! - [`ids`]: one id across the three libraries' newtypes (`IdInto`);
//! - [`http`]: the HTTP API and the web client's pages;
//! - [`demo`]: the demo municipality seeded on first start;
//! - [`jobs`]: outbox delivery (exports, reminders), series horizon, retention;
//! - [`recovery`]: visits a restart interrupted (rejoin grace, then technical failure);
//! - [`room_events`]: what the server does when people join and leave rooms;
//! - [`turn`]: TURN (coturn) URLs and the short-lived credentials sent with `joined`.

pub mod admission;
pub mod audit;
pub mod config;
pub mod demo;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod live_calls;
pub mod live_credentials;
pub mod oidc;
pub mod recovery;
pub mod responsibility;
pub mod room_events;
pub mod services;
pub mod state;
pub mod tablet_calls;
pub mod turn;

pub use config::ServerConfig;

use anyhow::Context;
use skaerm_sfu::Sfu;
use skaerm_sfu::config::RelayConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Makes `ring` the process's rustls crypto provider (once; later calls and a provider
/// installed by the embedding program are kept).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A running server.
pub struct Server {
    http_addr: SocketAddr,
    udp_addr: SocketAddr,
    public_url: String,
    certificate_pem: Option<String>,
    state: state::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<()>,
    jobs: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Opens storage, seeds demo data if asked, starts the relay and the HTTP listener.
    pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
        install_crypto_provider();
        let turn = turn::Turn::from_settings(
            &config.turn_urls,
            config.turn_secret.as_deref(),
            config.turn_ttl_secs,
        )
        .context("TURN settings (--turn-url, --turn-secret, --turn-ttl-secs)")?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let http_addr = listener.local_addr()?;
        let public_url = config.public_url(http_addr);

        let registry = prometheus::Registry::new();
        let services = services::Services::open(&config).await?;
        // Visits left live by a previous process are closed, not left dangling — after a grace
        // period in which their participants may rejoin.
        let interrupted = services
            .store
            .interrupted_visits()
            .await
            .context("finding visits interrupted by a restart")?;
        let grace = std::time::Duration::from_secs(config.scheduling.rejoin_grace_secs);
        if grace.is_zero() {
            recovery::close_abandoned(&services, &interrupted).await;
        } else if !interrupted.is_empty() {
            tokio::spawn(recovery::close_abandoned_after(
                services.clone(),
                interrupted,
                grace,
            ));
        }
        let admission = Arc::new(admission::Admission::new(services.clone(), turn));
        let relay_config = RelayConfig {
            udp_bind: SocketAddr::new(config.udp_bind_ip, config.udp_port),
            announce_ips: config.announce_ips.clone(),
            max_participants_per_room: config.max_participants,
            media_workers: match config.media_workers {
                0 => skaerm_sfu::config::default_media_workers(),
                n => n,
            },
            keyframe_request_interval: std::time::Duration::from_millis(
                config.keyframe_interval_ms,
            ),
            simulcast: config.simulcast,
            max_websockets: config.max_websockets,
            max_websockets_per_address: config.max_websockets_per_address,
            fallback: skaerm_sfu::media::bandwidth::FallbackPolicy {
                floor_bps: config.video_floor_kbps.saturating_mul(1000),
                ..Default::default()
            },
            ..RelayConfig::default()
        };
        let mut sfu =
            Sfu::start(relay_config, admission, &registry).context("starting the relay")?;
        let udp_addr = sfu.udp_addr();
        let maintained = services.clone();
        let rotation_days = config.signing_key_rotation_days;
        tokio::spawn(async move {
            let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
            hourly.tick().await;
            loop {
                hourly.tick().await;
                if let Err(err) = maintained.maintain_keys(rotation_days).await {
                    tracing::error!(%err, "signing key maintenance failed");
                }
            }
        });
        if let Some(events) = sfu.take_events() {
            tokio::spawn(room_events::run(services.clone(), events));
        }
        let sso = match &config.oidc_config {
            Some(path) => {
                let providers = oidc::load_config(path)?;
                Some(Arc::new(oidc::Sso::new(providers, &public_url)?))
            }
            None => None,
        };
        let state = state::AppState {
            services,
            sfu: Arc::new(sfu),
            registry,
            public_url: public_url.clone().into(),
            tls: config.tls(),
            sso,
            trusted_proxies: config.trusted_proxies.clone().into(),
            metrics_access: config.metrics_access(),
        };

        if !config.no_demo {
            demo::seed(&state).await.context("seeding demo data")?;
        }

        let senders = jobs::Senders::from_config(&state.services).context("webhook senders")?;
        let jobs = tokio::spawn(jobs::run(state.services.clone(), senders));

        let tls = http::tls::load(&config).await?;
        let certificate_pem = tls.as_ref().map(|t| t.certificate_pem.clone());
        let app = http::router(state.clone());
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let edge_metrics = http::listener::EdgeMetrics::register(&state.registry)
            .context("registering the edge metrics")?;
        state
            .services
            .accounts
            .hashing()
            .metrics()
            .register(&state.registry)
            .context("registering the password hashing metrics")?;
        state
            .registry
            .register(Box::new(
                state.services.limits.pairing_requests_refused.clone(),
            ))
            .context("registering the pairing request metrics")?;
        let acceptor = tls
            .as_ref()
            .map(|tls| tokio_rustls::TlsAcceptor::from(tls.config.get_inner()));
        let limits = http::listener::EdgeLimits::from_config(&config.edge, &config.trusted_proxies);
        let serving = tokio::spawn(http::listener::serve(
            listener,
            app,
            acceptor,
            limits,
            edge_metrics,
            async {
                let _ = shutdown_rx.await;
            },
        ));
        tracing::info!(%http_addr, %udp_addr, %public_url, "skaerm is serving");
        Ok(Server {
            http_addr,
            udp_addr,
            public_url,
            certificate_pem,
            state,
            shutdown: Some(shutdown),
            serving,
            jobs,
        })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound UDP (media) address.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The base URL in citizen links.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The served TLS certificate (PEM) when serving HTTPS.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.certificate_pem.as_deref()
    }

    /// Shared state (tests use it to create data as an administrator would).
    pub fn state(&self) -> &state::AppState {
        &self.state
    }

    /// Stops accepting requests and waits for in-flight ones.
    pub async fn shutdown(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.serving).await;
        self.jobs.abort();
        let _ = (&mut self.jobs).await;
    }
}
