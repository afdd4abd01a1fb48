//! The Skærm server: wires the media relay, signalling, scheduling and auth behind one HTTP
//! listener.
//!
//! - [`config`]: flags and environment;
//! - [`state`]: what request handlers share;
//! - [`admission`]: who may join which visit's room (the relay's `JoinAuthorizer`);
//! - [`http`]: the HTTP API and the web client's pages;
//! - [`demo`]: the demo municipality seeded on first start;
//! - [`jobs`]: outbox delivery (exports, reminders), series horizon, retention;
//! - [`room_events`]: what the server does when people join and leave rooms.

pub mod admission;
pub mod config;
pub mod demo;
pub mod http;
pub mod jobs;
pub mod room_events;
pub mod state;

pub use config::ServerConfig;

use anyhow::Context;
use skaerm_sfu::Sfu;
use skaerm_sfu::config::RelayConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A running server.
pub struct Server {
    http_addr: SocketAddr,
    udp_addr: SocketAddr,
    public_url: String,
    state: state::AppState,
    shutdown: Option<oneshot::Sender<()>>,
    serving: tokio::task::JoinHandle<()>,
    jobs: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Opens storage, seeds demo data if asked, starts the relay and the HTTP listener.
    pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
        jobs::install_crypto_provider();
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let http_addr = listener.local_addr()?;
        let public_url = config.public_url(http_addr);

        let registry = prometheus::Registry::new();
        let services = state::Services::open(&config).await?;
        // Visits left live by a previous process are closed, not left dangling.
        let recovered = services
            .store
            .recover_interrupted(chrono::Utc::now())
            .await
            .context("recovering visits interrupted by a restart")?;
        for visit in &recovered {
            tracing::warn!(visit = %visit.id, "visit was live at restart: closed as technical failure");
        }
        let admission = Arc::new(admission::Admission::new(services.clone()));
        let relay_config = RelayConfig {
            udp_bind: SocketAddr::new(config.udp_bind_ip, config.udp_port),
            announce_ips: config.announce_ips.clone(),
            max_participants_per_room: config.max_participants,
            ..RelayConfig::default()
        };
        let mut sfu =
            Sfu::start(relay_config, admission, &registry).context("starting the relay")?;
        let udp_addr = sfu.udp_addr();
        if let Some(events) = sfu.take_events() {
            tokio::spawn(room_events::run(services.clone(), events));
        }
        let state = state::AppState::new(services, Arc::new(sfu), registry, public_url.clone());

        if !config.no_demo {
            demo::seed(&state).await.context("seeding demo data")?;
        }

        let senders = jobs::Senders::from_config(&state.services).context("webhook senders")?;
        let jobs = tokio::spawn(jobs::run(state.services.clone(), senders));

        let app = http::router(state.clone());
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            let result = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            })
            .await;
            if let Err(err) = result {
                tracing::error!(%err, "HTTP server failed");
            }
        });
        tracing::info!(%http_addr, %udp_addr, %public_url, "skaerm is serving");
        Ok(Server {
            http_addr,
            udp_addr,
            public_url,
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
