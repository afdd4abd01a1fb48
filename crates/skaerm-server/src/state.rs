//! What request handlers share: the domain [`Services`] and what only the HTTP surface needs
//! (the relay, the metrics registry, the public URL, TLS, single sign-on, trusted proxies and
//! who may read `/metrics`). Built once at start, in [`crate::Server::start`].

use crate::config::MetricsAccess;
use crate::services::Services;
use skaerm_sfu::Sfu;
use std::sync::Arc;

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
    /// Whether this server terminates TLS itself (HSTS is sent then).
    pub tls: bool,
    /// Single sign-on, when providers are configured.
    pub sso: Option<Arc<crate::oidc::Sso>>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Arc<[std::net::IpAddr]>,
    /// Who may read `/metrics` (`--metrics-token`).
    pub metrics_access: MetricsAccess,
}
