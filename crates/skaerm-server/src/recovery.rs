//! Visits a restart interrupted. A visit left `waiting` or `in_progress` by a previous process
//! is not left dangling: its participants get a grace period to rejoin (the web client rejoins by
//! itself after a server restart), and a visit nobody came back to is closed as
//! `technical_failure`, ended by the system.

use crate::services::Services;
use skaerm_scheduling::VisitId;
use std::time::Duration;

/// Waits `grace`, then closes those of `visits` whose room is empty on this node.
pub async fn close_abandoned_after(services: Services, visits: Vec<VisitId>, grace: Duration) {
    tracing::info!(
        visits = visits.len(),
        grace_secs = grace.as_secs(),
        "visits were live at restart: waiting for their participants to rejoin"
    );
    tokio::time::sleep(grace).await;
    let abandoned: Vec<VisitId> = visits
        .into_iter()
        .filter(|visit| !services.live_calls().contains(visit.0))
        .collect();
    close_abandoned(&services, &abandoned).await;
}

/// Closes `visits` as technical failures (those still live).
pub async fn close_abandoned(services: &Services, visits: &[VisitId]) {
    let now = chrono::Utc::now();
    for visit in visits {
        match services.store.recover_visit(*visit, now).await {
            Ok(Some(_)) => tracing::warn!(
                visit = %visit,
                "visit was live at restart and nobody rejoined: closed as technical failure"
            ),
            Ok(None) => {}
            Err(err) => {
                tracing::error!(%err, visit = %visit, "could not close an interrupted visit")
            }
        }
    }
}
