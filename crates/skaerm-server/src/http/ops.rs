//! `GET /api/ops/calls`: live calls and their quality for operations — opaque participant ids
//! and roles only, never a name — plus failed joins in the last hour and node health.
//!
//! Who may look is decided in one place, [`ensure_ops_access`].

use crate::http::problem::Problem;
use crate::http::session::StaffSession;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use skaerm_sfu::OpsView;

/// Whether this session may see the ops view. For now every logged-in staff member may (the
/// view holds no personal data); this is the one place to require the `ops` role instead.
pub fn ensure_ops_access(_session: &StaffSession) -> Result<(), Problem> {
    Ok(())
}

/// `GET /api/ops/calls`.
pub async fn calls(
    State(state): State<AppState>,
    session: StaffSession,
) -> Result<Json<Value>, Problem> {
    ensure_ops_access(&session)?;
    Ok(Json(render(&state.sfu.ops_view(), Utc::now())))
}

/// The JSON of the ops view at `now` (documented in `HTTP_API.md`).
pub fn render(view: &OpsView, now: DateTime<Utc>) -> Value {
    let mut calls = Vec::new();
    let (mut rooms, mut participants) = (0usize, 0usize);
    for worker in &view.workers {
        for room in &worker.rooms {
            rooms += 1;
            participants += room.participants.len();
            let started_at = chrono::Duration::from_std(room.age)
                .ok()
                .and_then(|age| now.checked_sub_signed(age))
                .unwrap_or(now);
            calls.push((
                room.age,
                json!({
                    "room": room.room,
                    "started_at": started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    "worker": worker.worker,
                    "participants": room.participants.iter().map(|p| json!({
                        "participant_id": p.participant_id,
                        "role": p.role,
                        "state": p.state,
                        "quality": p.quality,
                        "rtt_ms": p.rtt_ms,
                        "jitter_ms": p.jitter_ms,
                        "loss_pct": p.loss_pct,
                        "bitrate_in_kbps": p.bitrate_in_kbps,
                        "bitrate_out_kbps": p.bitrate_out_kbps,
                        "estimate_kbps": p.estimate_kbps,
                        "layer": p.layer,
                        "video_paused": p.video_paused,
                    })).collect::<Vec<_>>(),
                }),
            ));
        }
    }
    // Longest-running first.
    calls.sort_by_key(|(age, _)| std::cmp::Reverse(*age));
    json!({
        "calls": calls.into_iter().map(|(_, c)| c).collect::<Vec<_>>(),
        "join_failures_last_hour": view.join_failures_last_hour,
        "nodes": [{
            "health": "ok",
            "rooms": rooms,
            "participants": participants,
            "workers": view.workers.len(),
        }],
    })
}
