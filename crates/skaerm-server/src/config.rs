//! The server's settings: command-line flags with `SKAERM_*` environment fallbacks.

use clap::Parser;
use sha2::{Digest, Sha256};
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

    /// First UDP port of the media relay: media worker `i` uses this port plus `i` (a small
    /// consecutive range, one port per worker). 0 picks free ports.
    #[arg(long, env = "SKAERM_UDP_PORT", default_value_t = 50000)]
    pub udp_port: u16,

    /// Media workers (threads, each with its own UDP port; each visit is pinned to one).
    /// 0 means one per CPU core.
    #[arg(long, env = "SKAERM_MEDIA_WORKERS", default_value_t = 0)]
    pub media_workers: usize,

    /// Minimum milliseconds between keyframe requests the relay sends to one publisher's video.
    #[arg(long, env = "SKAERM_KEYFRAME_INTERVAL_MS", default_value_t = 500)]
    pub keyframe_interval_ms: u64,

    /// Ask browsers for three simulcast layers (rid q/h/f) and send each participant the one
    /// its bandwidth estimate allows. Off by default until checked in the browser test: a client
    /// that answers the simulcast offer must then send rid-tagged layers.
    #[arg(long, env = "SKAERM_SIMULCAST")]
    pub simulcast: bool,

    /// Bandwidth floor (kbit/s): a participant whose estimated downlink stays below it gets
    /// audio only until it recovers.
    #[arg(long, env = "SKAERM_VIDEO_FLOOR_KBPS", default_value_t = 150)]
    pub video_floor_kbps: u64,

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

    /// Bearer token Prometheus must send to read `/metrics` (`Authorization: Bearer …`, at least
    /// 16 characters). Without it `/metrics` answers only direct loopback requests (no
    /// `X-Forwarded-For`), so an internet-facing node never shows its numbers to strangers.
    #[arg(long, env = "SKAERM_METRICS_TOKEN", value_parser = metrics_token)]
    pub metrics_token: Option<String>,

    /// Login attempts per client IP per minute (then 429 with Retry-After).
    #[arg(long, env = "SKAERM_LOGIN_LIMIT_PER_IP", default_value_t = 10)]
    pub login_limit_per_ip: u32,

    /// Local login attempts per username per minute from one address (then 429 for that
    /// address only: an attacker elsewhere cannot lock the owner out).
    #[arg(long, env = "SKAERM_LOGIN_LIMIT_PER_USER", default_value_t = 10)]
    pub login_limit_per_user: u32,

    /// Most signalling WebSockets (`/ws`) open at once from one client address (IPv6: per
    /// /64); 0 means no per-address cap. Beyond it the upgrade gets 429.
    #[arg(long, env = "SKAERM_MAX_WEBSOCKETS_PER_ADDRESS", default_value_t = 100)]
    pub max_websockets_per_address: usize,

    /// Most signalling WebSockets open at once in all. Beyond it the upgrade gets 503.
    #[arg(long, env = "SKAERM_MAX_WEBSOCKETS", default_value_t = 10_000)]
    pub max_websockets: usize,

    /// Local login attempts per username per hour from all addresses together (a slow cap on
    /// guessing one password from many addresses).
    #[arg(long, env = "SKAERM_LOGIN_LIMIT_PER_USER_HOUR", default_value_t = 100)]
    pub login_limit_per_user_hour: u32,

    /// Citizen link exchanges per client IP per minute.
    #[arg(long, env = "SKAERM_JOIN_LIMIT_PER_IP", default_value_t = 30)]
    pub join_limit_per_ip: u32,

    /// Tablet pairing requests and pairing-code entries per client IP per minute.
    #[arg(long, env = "SKAERM_PAIRING_LIMIT_PER_IP", default_value_t = 10)]
    pub pairing_limit_per_ip: u32,

    /// Most tablet pairing requests open (unclaimed, unexpired) at once, installation-wide;
    /// more are answered 503 with Retry-After.
    #[arg(long, env = "SKAERM_MAX_OPEN_PAIRING_REQUESTS", default_value_t = 1000)]
    pub max_open_pairing_requests: u32,

    /// Citizen link exchanges per link per minute (from any address).
    #[arg(long, env = "SKAERM_JOIN_LIMIT_PER_LINK", default_value_t = 20)]
    pub join_limit_per_link: u32,

    /// TURN server URL(s) handed to browsers with their join, for networks that block UDP
    /// (coturn; e.g. `turn:turn.example.dk:3478?transport=udp`,
    /// `turn:turn.example.dk:3478?transport=tcp`, `turns:turn.example.dk:443?transport=tcp`).
    /// Repeat or comma-separate (at most 8). Needs `--turn-secret`.
    #[arg(long = "turn-url", env = "SKAERM_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,

    /// coturn's `static-auth-secret` (at least 16 characters): short-lived TURN credentials
    /// are derived from it (coturn's REST API, `use-auth-secret`). Prefer the environment
    /// variable over the flag, which other users of the host can read.
    #[arg(long, env = "SKAERM_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// Seconds a TURN credential stays valid (5 minutes to 6 hours).
    #[arg(long, env = "SKAERM_TURN_TTL_SECS", default_value_t = 3 * 3600)]
    pub turn_ttl_secs: u64,

    /// Scheduling: conflicts, series, exports, reminders, reports, calendar feeds, retention.
    #[command(flatten)]
    pub scheduling: SchedulingConfig,

    /// The HTTP edge: connection caps and timeouts, password hashing bounds.
    #[command(flatten)]
    pub edge: EdgeConfig,
}

/// The HTTP edge (all flags also `SKAERM_*` environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeConfig {
    /// Open TCP connections (HTTP and WebSocket) at most, in all; more are closed at accept.
    #[arg(long, env = "SKAERM_MAX_CONNECTIONS", default_value_t = 16_384)]
    pub max_connections: usize,

    /// Open TCP connections at most per client address (IPv6 per /64); more are closed at
    /// accept. Trusted proxies (`--trusted-proxy`) count against `--max-connections` only.
    #[arg(long, env = "SKAERM_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Seconds a client has to send a request's head (from the connection's start or the end
    /// of the previous response) and to finish the TLS handshake; then the connection closes.
    #[arg(long, env = "SKAERM_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Seconds a connection may sit without traffic and without a request in progress before
    /// it is closed (HTTP/2 over TLS above all: an HTTP/1.1 connection waiting for its next
    /// request is already closed by the header timeout; upgraded WebSockets have their own
    /// liveness checks).
    #[arg(long, env = "SKAERM_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Password hashes (argon2id, 19 MiB each) computed at once; 0: half the cores.
    #[arg(long, env = "SKAERM_PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,

    /// Milliseconds a login waits for a hashing slot before it is answered 503.
    #[arg(long, env = "SKAERM_PASSWORD_HASH_WAIT_MS", default_value_t = 3_000)]
    pub password_hash_wait_ms: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            max_connections: 16_384,
            max_connections_per_ip: 256,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            password_hash_concurrency: 0,
            password_hash_wait_ms: 3_000,
        }
    }
}

/// How citizens are named in staff calendar feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeedNames {
    /// The citizen's display name as stored (e.g. "Karen J.").
    Full,
    /// Initials only (e.g. "K. J.").
    Initials,
}

/// What the retention job does with old visits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RetentionMode {
    /// Delete the visits (and their links and outbox rows).
    Delete,
    /// Keep them for statistics but remove purpose, notes and the citizen.
    Anonymise,
}

/// Scheduling settings (all flags also `SKAERM_*` environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulingConfig {
    /// Minimum free minutes between two visits of the same staff member.
    #[arg(long, env = "SKAERM_CONFLICT_BUFFER_MIN", default_value_t = 0)]
    pub conflict_buffer_minutes: i64,

    /// How many days ahead series occurrences are materialised.
    #[arg(long, env = "SKAERM_SERIES_HORIZON_DAYS", default_value_t = 84)]
    pub series_horizon_days: i64,

    /// Webhook receiving care-record exports (JSON + FHIR R4 Encounter) of ended visits.
    /// Without it, exports stay queued in the outbox.
    #[arg(long, env = "SKAERM_EXPORT_WEBHOOK_URL")]
    pub export_webhook_url: Option<String>,

    /// Webhook receiving visit reminders. Without it reminders are written to the log.
    #[arg(long, env = "SKAERM_REMINDER_WEBHOOK_URL")]
    pub reminder_webhook_url: Option<String>,

    /// Seconds between outbox and housekeeping runs.
    #[arg(long, env = "SKAERM_JOBS_INTERVAL_SECS", default_value_t = 5)]
    pub jobs_interval_secs: u64,

    /// Minutes of driving a screen visit saves (for the reports' estimate).
    #[arg(long, env = "SKAERM_SAVED_DRIVE_MINUTES", default_value_t = 30)]
    pub saved_drive_minutes: u32,

    /// How citizens are named in staff calendar feeds.
    #[arg(long, env = "SKAERM_FEED_NAMES", value_enum, default_value_t = FeedNames::Full)]
    pub feed_names: FeedNames,

    /// Visits planned to end more than this many days ago are removed by the retention job.
    /// Without it nothing is removed.
    #[arg(long, env = "SKAERM_RETENTION_DAYS")]
    pub retention_days: Option<i64>,

    /// What the retention job does.
    #[arg(long, env = "SKAERM_RETENTION_MODE", value_enum, default_value_t = RetentionMode::Anonymise)]
    pub retention_mode: RetentionMode,

    /// After a restart, seconds the people of a visit that was live get to rejoin (the web
    /// client rejoins by itself) before the visit is closed as a technical failure. 0 closes
    /// interrupted visits at once.
    #[arg(long, env = "SKAERM_REJOIN_GRACE_SECS", default_value_t = 300)]
    pub rejoin_grace_secs: u64,
}

impl Default for SchedulingConfig {
    fn default() -> Self {
        SchedulingConfig {
            conflict_buffer_minutes: 0,
            series_horizon_days: 84,
            export_webhook_url: None,
            reminder_webhook_url: None,
            jobs_interval_secs: 5,
            saved_drive_minutes: 30,
            feed_names: FeedNames::Full,
            retention_days: None,
            retention_mode: RetentionMode::Anonymise,
            rejoin_grace_secs: 300,
        }
    }
}

impl ServerConfig {
    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}/skaerm.db", self.data_dir.display()),
        }
    }

    /// Who may read `/metrics`: the bearer token when configured, else direct loopback only.
    pub fn metrics_access(&self) -> MetricsAccess {
        match &self.metrics_token {
            Some(token) => MetricsAccess::bearer(token),
            None => MetricsAccess::LoopbackOnly,
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

/// A metrics token must be long enough not to be guessed.
fn metrics_token(value: &str) -> Result<String, String> {
    if value.chars().count() < 16 {
        return Err("the metrics token must be at least 16 characters".into());
    }
    Ok(value.to_owned())
}

/// The rule for reading `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsAccess {
    /// No token configured: direct loopback requests only.
    LoopbackOnly,
    /// `Authorization: Bearer <token>` required; the SHA-256 of the token is kept, and the
    /// presented token is compared by its digest, so the comparison's timing says nothing
    /// about the token.
    Bearer([u8; 32]),
}

impl MetricsAccess {
    /// Requires this bearer token.
    pub fn bearer(token: &str) -> Self {
        MetricsAccess::Bearer(Sha256::digest(token.as_bytes()).into())
    }
}
