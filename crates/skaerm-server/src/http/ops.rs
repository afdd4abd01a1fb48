//! `GET /api/ops/calls`: live calls and their quality for operations — opaque participant ids
//! and roles only, never a name — plus failed joins in the last hour and node health.
//!
//! Who may look: the `ops` and `admin` roles ([`OpsSession`]), and only at their own
//! municipality's calls (the live-call index of [`crate::live_calls`] knows each room's tenant).

use crate::http::problem::Problem;
use crate::http::session::OpsSession;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use skaerm_sfu::OpsView;
use skaerm_sfu::ids::RoomId;
use std::collections::HashSet;
use uuid::Uuid;

/// `GET /api/ops/calls`.
pub async fn calls(
    State(state): State<AppState>,
    session: OpsSession,
) -> Result<Json<Value>, Problem> {
    let visible: HashSet<Uuid> = state
        .services
        .live_calls()
        .of_tenant(session.tenant.0)
        .into_iter()
        .map(|call| call.visit_id)
        .collect();
    Ok(Json(render(&state.sfu.ops_view(), Utc::now(), |room| {
        visible.contains(&room.0)
    })))
}

/// The JSON of the ops view at `now` (documented in `HTTP_API.md`), listing the rooms `visible`
/// admits; node totals count every room.
pub fn render(view: &OpsView, now: DateTime<Utc>, visible: impl Fn(&RoomId) -> bool) -> Value {
    let mut calls = Vec::new();
    let (mut rooms, mut participants) = (0usize, 0usize);
    for worker in &view.workers {
        for room in &worker.rooms {
            rooms += 1;
            participants += room.participants.len();
            if !visible(&room.room) {
                continue;
            }
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

/// The operations call list: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new().route("/api/ops/calls", get(calls))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skaerm_sfu::WorkerQuality;
    use skaerm_sfu::ids::{ParticipantId, RoomId};
    use skaerm_sfu::media::quality::{LinkState, ParticipantQuality, Quality, RoomQuality};
    use skaerm_sfu::protocol::RoomRole;
    use std::sync::Arc;
    use std::time::Duration;
    use uuid::Uuid;

    fn participant(role: RoomRole, quality: Quality) -> ParticipantQuality {
        ParticipantQuality {
            participant_id: ParticipantId(Uuid::new_v4()),
            role,
            state: LinkState::Connected,
            quality,
            rtt_ms: Some(420.0),
            jitter_ms: None,
            loss_pct: Some(12.5),
            bitrate_in_kbps: 900.0,
            bitrate_out_kbps: 800.0,
            estimate_kbps: None,
            layer: Some("h"),
            video_paused: true,
            nacks_received: 3,
            keyframe_requests_received: 1,
            nacks_sent: 2,
            plis_sent: 1,
        }
    }

    #[test]
    fn the_view_lists_calls_longest_first_with_start_times_and_node_totals() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|_| unreachable!());
        let (old, new) = (RoomId(Uuid::new_v4()), RoomId(Uuid::new_v4()));
        let view = OpsView {
            workers: vec![
                Arc::new(WorkerQuality {
                    worker: 0,
                    rooms: vec![RoomQuality {
                        room: new,
                        age: Duration::from_secs(30),
                        participants: vec![participant(RoomRole::Host, Quality::Good)],
                    }],
                }),
                Arc::new(WorkerQuality {
                    worker: 1,
                    rooms: vec![RoomQuality {
                        room: old,
                        age: Duration::from_secs(600),
                        participants: vec![
                            participant(RoomRole::Host, Quality::Good),
                            participant(RoomRole::Guest, Quality::Poor),
                        ],
                    }],
                }),
            ],
            join_failures_last_hour: [("forbidden", 2)].into_iter().collect(),
        };
        let json = render(&view, now, |_| true);
        assert_eq!(json["calls"][0]["room"], old.0.to_string());
        assert_eq!(json["calls"][0]["started_at"], "2026-11-22T09:50:00Z");
        assert_eq!(json["calls"][0]["worker"], 1);
        assert_eq!(json["calls"][1]["started_at"], "2026-11-22T09:59:30Z");
        let guest = &json["calls"][0]["participants"][1];
        assert_eq!(guest["role"], "guest");
        assert_eq!(guest["quality"], "poor");
        assert_eq!(guest["layer"], "h");
        assert_eq!(guest["video_paused"], true);
        assert_eq!(guest["jitter_ms"], Value::Null);
        // Exactly the documented fields (the NACK/PLI counters stay internal).
        let mut keys: Vec<&str> = guest
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "bitrate_in_kbps",
                "bitrate_out_kbps",
                "estimate_kbps",
                "jitter_ms",
                "layer",
                "loss_pct",
                "participant_id",
                "quality",
                "role",
                "rtt_ms",
                "state",
                "video_paused"
            ]
        );
        assert_eq!(json["join_failures_last_hour"]["forbidden"], 2);
        assert_eq!(
            json["nodes"],
            serde_json::json!([{"health": "ok", "rooms": 2, "participants": 3, "workers": 2}])
        );
    }
}
