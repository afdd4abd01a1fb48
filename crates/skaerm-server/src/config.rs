//! The server's settings: command-line flags with `SKAERM_*` environment fallbacks.

use clap::Parser;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Skærm: video screen visits for municipal care.
#[derive(Debug, Clone, Parser)]
#[command(name = "skaerm", version, about)]
pub struct ServerConfig {
    /// HTTP listen address (pages, API, signalling, metrics). Port 0 picks a free port.
    #[arg(long, env = "SKAERM_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Directory for the embedded database and other state. Created if missing.
    #[arg(long, env = "SKAERM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL. Defaults to SQLite in the data directory; use `postgres://…` for a
    /// multi-node installation.
    #[arg(long, env = "SKAERM_DATABASE_URL")]
    pub database_url: Option<String>,

    /// UDP port of the media relay (one port for all participants). 0 picks a free port.
    #[arg(long, env = "SKAERM_UDP_PORT", default_value_t = 50000)]
    pub udp_port: u16,

    /// Address the media relay binds.
    #[arg(long, env = "SKAERM_UDP_BIND_IP", default_value = "0.0.0.0")]
    pub udp_bind_ip: IpAddr,

    /// Address(es) announced to browsers as the relay's candidates (e.g. the public IP behind
    /// 1:1 NAT). Repeat for several. Default: loopback and the host's primary address.
    #[arg(
        long = "announce-ip",
        env = "SKAERM_ANNOUNCE_IPS",
        value_delimiter = ','
    )]
    pub announce_ips: Vec<IpAddr>,

    /// Base URL people use to reach this server (used in citizen links). Default: derived from
    /// the listen address.
    #[arg(long, env = "SKAERM_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Minutes before the planned start a citizen link opens.
    #[arg(long, env = "SKAERM_LINK_OPENS_BEFORE_MIN", default_value_t = 15)]
    pub link_opens_before_minutes: i64,

    /// Minutes after the planned end a citizen link still works.
    #[arg(long, env = "SKAERM_LINK_CLOSES_AFTER_MIN", default_value_t = 0)]
    pub link_closes_after_minutes: i64,

    /// Do not create the demo municipality (staff, citizens, visits today).
    #[arg(long, env = "SKAERM_NO_DEMO")]
    pub no_demo: bool,

    /// Most participants in one visit.
    #[arg(long, env = "SKAERM_MAX_PARTICIPANTS", default_value_t = 6)]
    pub max_participants: usize,

    /// PEM certificate chain: serve HTTPS with it (with `--tls-key`).
    #[arg(
        long,
        env = "SKAERM_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "SKAERM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a self-signed certificate generated for development (kept in the data
    /// directory under tls/).
    #[arg(long, env = "SKAERM_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,

    /// JSON file listing OpenID Connect providers for staff single sign-on (see
    /// deploy/README.md).
    #[arg(long, env = "SKAERM_OIDC_CONFIG")]
    pub oidc_config: Option<PathBuf>,

    /// Days after which the token signing key is rotated (checked at start and hourly).
    #[arg(long, env = "SKAERM_SIGNING_KEY_ROTATION_DAYS", default_value_t = 30)]
    pub signing_key_rotation_days: i64,

    /// Address(es) of reverse proxies in front of Skærm whose `X-Forwarded-For` is believed for
    /// rate limits and the audit log. Repeat or comma-separate.
    #[arg(
        long = "trusted-proxy",
        env = "SKAERM_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<IpAddr>,

    /// Login attempts per client IP per minute (then 429 with Retry-After).
    #[arg(long, env = "SKAERM_LOGIN_LIMIT_PER_IP", default_value_t = 10)]
    pub login_limit_per_ip: u32,

    /// Local login attempts per username per minute, from any address (then 429).
    #[arg(long, env = "SKAERM_LOGIN_LIMIT_PER_USER", default_value_t = 10)]
    pub login_limit_per_user: u32,

    /// Citizen link exchanges per client IP per minute.
    #[arg(long, env = "SKAERM_JOIN_LIMIT_PER_IP", default_value_t = 30)]
    pub join_limit_per_ip: u32,

    /// Tablet pairing requests and pairing-code entries per client IP per minute.
    #[arg(long, env = "SKAERM_PAIRING_LIMIT_PER_IP", default_value_t = 10)]
    pub pairing_limit_per_ip: u32,

    /// Citizen link exchanges per link per minute (from any address).
    #[arg(long, env = "SKAERM_JOIN_LIMIT_PER_LINK", default_value_t = 20)]
    pub join_limit_per_link: u32,
}

impl ServerConfig {
    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}/skaerm.db", self.data_dir.display()),
        }
    }

    /// Whether this server terminates TLS itself.
    pub fn tls(&self) -> bool {
        self.tls_self_signed || self.tls_cert.is_some()
    }

    /// The public base URL, given the address actually bound.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = if bound.ip().is_unspecified() {
            "localhost".to_owned()
        } else if bound.is_ipv6() {
            format!("[{}]", bound.ip())
        } else {
            bound.ip().to_string()
        };
        let scheme = if self.tls() { "https" } else { "http" };
        format!("{scheme}://{host}:{}", bound.port())
    }
}
