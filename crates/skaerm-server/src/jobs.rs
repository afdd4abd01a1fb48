//! Background jobs: delivering the outbox (care-record exports to the configured webhook,
//! reminders through a pluggable sender), extending series over their horizon, and the
//! retention job. Every message is delivered at least once: it stays in the database until
//! a receiver acknowledged it with a 2xx, and is retried with backoff (also across restarts).
//! Receivers de-duplicate by the `Idempotency-Key` header (the message's stable id).

use crate::config::RetentionMode;
use crate::services::Services;
use chrono::Utc;
use futures_util::future::BoxFuture;
use serde_json::json;
use skaerm_scheduling::{OutboxKind, OutboxMessage, RetentionAction, StoreError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages handled per kind per run.
const BATCH: u32 = 50;
/// How long one delivery may take.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often series are extended and retention runs.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// Somewhere a message goes.
pub trait Sender: Send + Sync {
    /// Delivers one message; `Err` with a reason to retry later.
    fn send<'a>(&'a self, message: &'a OutboxMessage) -> BoxFuture<'a, Result<(), String>>;
}

/// Writes reminders to the log (the default reminder sender).
pub struct LogSender;

impl Sender for LogSender {
    fn send<'a>(&'a self, message: &'a OutboxMessage) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            tracing::info!(
                id = %message.id,
                visit = ?message.visit_id,
                minutes_before = %message.payload["minutes_before"],
                "reminder: a visit is coming up"
            );
            Ok(())
        })
    }
}

/// POSTs the message's JSON to a URL with an `Idempotency-Key`; a 2xx acknowledges it.
pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
}

impl WebhookSender {
    /// A sender to `url`.
    pub fn new(url: &str) -> anyhow::Result<WebhookSender> {
        crate::install_crypto_provider();
        Ok(WebhookSender {
            client: reqwest::Client::builder()
                .timeout(SEND_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            url: url.to_owned(),
        })
    }
}

impl Sender for WebhookSender {
    fn send<'a>(&'a self, message: &'a OutboxMessage) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let body = match message.kind {
                OutboxKind::Export => json!({
                    "type": "care_record",
                    "id": message.id,
                    "record": message.payload["record"],
                    "fhir": message.payload["fhir_encounter"],
                }),
                OutboxKind::Reminder => json!({
                    "type": "visit_reminder",
                    "id": message.id,
                    "reminder": message.payload,
                }),
            };
            let response = self
                .client
                .post(&self.url)
                .header("Idempotency-Key", message.id.to_string())
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("sending: {e}"))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("receiver answered {}", response.status()))
            }
        })
    }
}

/// The senders in use.
pub struct Senders {
    /// Care-record exports (none: they wait in the outbox).
    pub export: Option<Arc<dyn Sender>>,
    /// Reminders.
    pub reminder: Arc<dyn Sender>,
}

impl Senders {
    /// From the configuration.
    pub fn from_config(services: &Services) -> anyhow::Result<Senders> {
        let config = &services.scheduling;
        let export = match &config.export_webhook_url {
            Some(url) => Some(Arc::new(WebhookSender::new(url)?) as Arc<dyn Sender>),
            None => None,
        };
        let reminder: Arc<dyn Sender> = match &config.reminder_webhook_url {
            Some(url) => Arc::new(WebhookSender::new(url)?),
            None => Arc::new(LogSender),
        };
        Ok(Senders { export, reminder })
    }
}

/// Runs the jobs until the task is aborted.
pub async fn run(services: Services, senders: Senders) {
    let interval = Duration::from_secs(services.scheduling.jobs_interval_secs.max(1));
    let mut last_housekeeping: Option<Instant> = None;
    loop {
        if let Some(export) = &senders.export
            && let Err(err) = deliver(&services, OutboxKind::Export, export.as_ref()).await
        {
            tracing::warn!(%err, "delivering care-record exports failed");
        }
        if let Err(err) = deliver(&services, OutboxKind::Reminder, senders.reminder.as_ref()).await
        {
            tracing::warn!(%err, "delivering reminders failed");
        }
        if last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY) {
            last_housekeeping = Some(Instant::now());
            housekeeping(&services).await;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Extends series, applies retention and purges expired tablet pairing requests.
pub async fn housekeeping(services: &Services) {
    if let Err(err) = services.devices.purge_expired_requests(Utc::now()).await {
        tracing::warn!(%err, "purging expired pairing requests failed");
    }
    match services.store.extend_series(Utc::now()).await {
        Ok(ext) => {
            for (series, start, conflict) in &ext.skipped {
                tracing::warn!(%series, %start, %conflict, "series occurrence skipped: it would double-book");
            }
        }
        Err(err) => tracing::warn!(%err, "extending series failed"),
    }
    let config = &services.scheduling;
    if let Some(days) = config.retention_days {
        let action = match config.retention_mode {
            RetentionMode::Delete => RetentionAction::Delete,
            RetentionMode::Anonymise => RetentionAction::Anonymise,
        };
        let now = Utc::now();
        let cutoff = now - chrono::Duration::days(days.clamp(1, 36_500));
        match services.store.apply_retention(cutoff, action, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(visits = n, ?action, "retention applied"),
            Err(err) => tracing::warn!(%err, "retention failed"),
        }
    }
}

/// Delivers the due messages of one kind once.
pub async fn deliver(
    services: &Services,
    kind: OutboxKind,
    sender: &dyn Sender,
) -> Result<usize, StoreError> {
    let store = &services.store;
    let now = Utc::now();
    let due = store.due_messages(kind, now, BATCH).await?;
    let mut delivered = 0;
    for message in due {
        if kind == OutboxKind::Reminder
            && let Some(reason) = stale_reminder(services, &message).await?
        {
            store.mark_dropped(message.id, reason, now).await?;
            continue;
        }
        match sender.send(&message).await {
            Ok(()) => {
                store.mark_delivered(message.id, Utc::now()).await?;
                delivered += 1;
            }
            Err(err) => {
                tracing::warn!(id = %message.id, kind = kind.code(), attempts = message.attempts + 1, %err, "delivery failed; will retry");
                store.mark_failed(message.id, &err, Utc::now()).await?;
            }
        }
    }
    Ok(delivered)
}

/// Why a reminder should not be sent any more (the visit is gone, ended or moved).
async fn stale_reminder(
    services: &Services,
    message: &OutboxMessage,
) -> Result<Option<&'static str>, StoreError> {
    let Some(id) = message.visit_id else {
        return Ok(Some("no visit"));
    };
    let visit = match services.store.get_visit(id).await {
        Ok(visit) => visit,
        Err(StoreError::NotFound) => return Ok(Some("visit deleted")),
        Err(err) => return Err(err),
    };
    if visit.status.is_final() {
        return Ok(Some("visit ended"));
    }
    let planned = message.payload["planned_start"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    if planned.map(|p| p.timestamp_millis()) != Some(visit.planned_start.timestamp_millis()) {
        return Ok(Some("visit moved"));
    }
    Ok(None)
}
