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

    /// Scheduling: conflicts, series, exports, reminders, reports, calendar feeds, retention.
    #[command(flatten)]
    pub scheduling: SchedulingConfig,
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
        format!("http://{host}:{}", bound.port())
    }
}
