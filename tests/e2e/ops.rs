//! The ops view, end to end: a live visit between two real WebRTC peers shows up in
//! `GET /api/ops/calls` with per-participant quality and no names, refused joins are counted
//! by reason, `/metrics` carries the quality histograms, and the view is open only to the ops
//! and admin roles (not to plain staff, nor to a citizen's media token), each seeing only its
//! own municipality's calls.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::Result;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::{Value, json};
use skaerm_auth::roles::Role;
use skaerm_e2e::participant::{JoinOutcome, Participant};
use skaerm_e2e::server::{Browser, PASSWORD, TestServer};
use skaerm_e2e::setup::{AUDIO_AND_VIDEO, AUDIO_ONLY, payload};
use std::time::{Duration, Instant};

/// The call for `room` in an ops view, once both its participants are connected and the relay
/// has measured media both ways.
fn live_call<'a>(view: &'a Value, room: &str) -> Option<&'a Value> {
    let call = view["calls"]
        .as_array()?
        .iter()
        .find(|c| c["room"] == room)?;
    let participants = call["participants"].as_array()?;
    let ready = participants.len() == 2
        && participants.iter().all(|p| {
            p["state"] == "connected"
                && p["bitrate_in_kbps"].as_f64().unwrap_or(0.0) > 0.0
                && p["bitrate_out_kbps"].as_f64().unwrap_or(0.0) > 0.0
                && p["loss_pct"].is_number()
        });
    ready.then_some(call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_sees_the_live_call_without_names_and_the_metrics_carry_its_quality() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Opskommune").await?;
    let visit = server.visit_soon(&m).await?;
    let room = visit.id.to_string();
    let ops_user = server.account(&m, "Olga Drift", &[Role::Ops]).await?;
    let ops_tab = server.signed_in(&ops_user).await?;

    // Closed without a session: no cookie, or a citizen's media token in its place; and closed
    // to staff without the ops role.
    let staff_tab = Browser::new(&server.url())?;
    let (status, body) = staff_tab.get("/api/ops/calls").await?;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "unauthenticated");
    staff_tab.login(&m.username, PASSWORD).await?;
    let (status, body) = staff_tab.get("/api/ops/calls").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden_role"))
    );
    let staff_token = staff_tab.start_visit(&visit).await?;
    let citizen_token = staff_tab.citizen_token(&visit).await?;
    let http = reqwest::Client::new();
    for request in [
        http.get(format!("{}/api/ops/calls", server.url()))
            .header("cookie", format!("skaerm_session={citizen_token}")),
        http.get(format!("{}/api/ops/calls", server.url()))
            .bearer_auth(&citizen_token),
    ] {
        assert_eq!(request.send().await?.status().as_u16(), 401);
    }

    // A refused join is counted by its reason.
    let forged = {
        let mut parts: Vec<String> = staff_token.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    assert!(matches!(
        Participant::join(&server.ws_url(), &forged, AUDIO_AND_VIDEO, None).await?,
        JoinOutcome::Refused { .. }
    ));

    let (staff, citizen) = server
        .connected_call(&staff_token, &citizen_token, AUDIO_AND_VIDEO, &visit)
        .await?;

    // Talk until the ops view shows both sides with media measured (snapshots are ~1 s apart).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    let view = loop {
        for p in [&staff, &citizen] {
            p.send_rtp(RtpCodecKind::Audio, payload("ops", RtpCodecKind::Audio, i))
                .await?;
            p.send_rtp(RtpCodecKind::Video, payload("ops", RtpCodecKind::Video, i))
                .await?;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if i % 25 == 0 {
            let (status, view) = ops_tab.get("/api/ops/calls").await?;
            assert_eq!(status, 200, "{view}");
            if live_call(&view, &room).is_some() && i > 150 {
                break view;
            }
        }
        assert!(Instant::now() < deadline, "the call never showed up live");
    };

    let call = live_call(&view, &room).unwrap();
    assert!(
        call["started_at"]
            .as_str()
            .unwrap_or_default()
            .ends_with('Z')
    );
    assert!(call["worker"].is_u64());
    let participants = call["participants"].as_array().unwrap();
    let mut roles: Vec<(&str, &str)> = participants
        .iter()
        .map(|p| {
            (
                p["role"].as_str().unwrap_or_default(),
                p["participant_id"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    roles.sort_unstable();
    let (staff_id, citizen_id) = (m.staff.id.to_string(), m.citizen.id.to_string());
    assert_eq!(
        roles,
        vec![("guest", citizen_id.as_str()), ("host", staff_id.as_str())]
    );
    for p in participants {
        // Loopback, no loss: a good call.
        assert_eq!(p["quality"], "good", "{p}");
        assert_eq!(p["loss_pct"].as_f64(), Some(0.0), "{p}");
        assert!(p["estimate_kbps"].is_number(), "{p}");
        assert!(p["rtt_ms"].is_number(), "RTT from SR/RR: {p}");
        assert_eq!(p["video_paused"], false);
        assert!(p.get("layer").is_some());
        assert!(p.get("display_name").is_none());
    }
    // No names anywhere in the view.
    let text = view.to_string();
    for name in [&m.staff.display_name, &m.citizen.display_name] {
        assert!(!text.contains(name.as_str()), "{name} leaked into {text}");
    }
    assert_eq!(
        view["join_failures_last_hour"]["token_invalid"], 1,
        "{view}"
    );
    let node = &view["nodes"][0];
    assert_eq!(node["health"], "ok");
    assert!(node["rooms"].as_u64().unwrap_or(0) >= 1);
    assert!(node["participants"].as_u64().unwrap_or(0) >= 2);
    assert!(node["workers"].as_u64().unwrap_or(0) >= 1);

    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await?
        .text()
        .await?;
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1.0)
    };
    assert!(
        value("skaerm_participant_loss_ratio_count ") >= 2.0,
        "{metrics}"
    );
    assert!(value("skaerm_participant_jitter_seconds_count ") >= 2.0);
    assert!(metrics.contains("skaerm_participant_rtt_seconds_bucket"));
    assert_eq!(
        value("skaerm_participants_by_quality{quality=\"good\"} "),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        value("skaerm_join_failures_total{reason=\"token_invalid\"} "),
        1.0
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_see_only_their_municipalitys_calls_until_they_end() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Opskommune").await?;
    let other = server.municipality("Anden Kommune").await?;
    let ops_user = server.account(&m, "Olga Drift", &[Role::Ops]).await?;
    let admin_user = server.account(&m, "Anne Admin", &[Role::Admin]).await?;
    let other_ops = server.account(&other, "Otto Drift", &[Role::Ops]).await?;
    let visit = server.visit_soon(&m).await?;
    let room = visit.id.to_string();

    let staff_tab = server.signed_in(&m.username).await?;
    let staff_token = staff_tab.start_visit(&visit).await?;
    let citizen_token = staff_tab.citizen_token(&visit).await?;
    let staff = server.join_visit(&staff_token, AUDIO_ONLY, &visit).await?;
    let citizen = server
        .join_visit(&citizen_token, AUDIO_ONLY, &visit)
        .await?;
    staff.let_in(&citizen).await?;

    // The municipality's ops and admin see the call with both people (snapshots ~1 s apart),
    // by opaque id and role only.
    let mut tabs = Vec::new();
    for user in [&ops_user, &admin_user] {
        let tab = Browser::new(&server.url())?;
        tab.login(user, PASSWORD).await?;
        let mut call = Value::Null;
        for _ in 0..100 {
            let (status, view) = tab.get("/api/ops/calls").await?;
            assert_eq!(status, 200, "{view}");
            call = view["calls"]
                .as_array()
                .and_then(|calls| calls.iter().find(|c| c["room"] == room.as_str()))
                .cloned()
                .unwrap_or(Value::Null);
            if call["participants"].as_array().map(Vec::len) == Some(2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut roles: Vec<&str> = call["participants"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["role"].as_str()).collect())
            .unwrap_or_default();
        roles.sort_unstable();
        assert_eq!(roles, ["guest", "host"], "{user}: {call}");
        let text = call.to_string();
        for name in [&m.staff.display_name, &m.citizen.display_name] {
            assert!(!text.contains(name.as_str()), "{name} leaked into {text}");
        }
        tabs.push(tab);
    }

    // Another municipality's ops see no call at all (node totals are infrastructure).
    let theirs = server.signed_in(&other_ops).await?;
    let (status, view) = theirs.get("/api/ops/calls").await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["calls"], json!([]), "{view}");

    // Hung up: the call leaves the list.
    citizen.leave().await?;
    staff.leave().await?;
    for _ in 0..100 {
        let (_, view) = tabs[0].get("/api/ops/calls").await?;
        if view["calls"] == json!([]) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the call did not leave the list")
}

/// `/metrics` through the real server: with `--metrics-token` only a scraper presenting it
/// reads the numbers (loopback no exception); without one, a direct loopback scrape works and a
/// request relayed by a proxy (`X-Forwarded-For`) is refused.
#[tokio::test]
async fn metrics_need_the_token_or_a_direct_loopback_scrape() -> Result<()> {
    let token = "scrape-token-for-prometheus-42";
    let server = TestServer::start_with(&["--metrics-token", token]).await?;
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", server.url());

    let anonymous = http.get(&url).send().await?;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers().get("www-authenticate").unwrap(),
        "Bearer"
    );
    let wrong = http
        .get(&url)
        .bearer_auth("scrape-token-for-prometheus-43")
        .send()
        .await?;
    assert_eq!(wrong.status(), 401);
    let right = http.get(&url).bearer_auth(token).send().await?;
    assert_eq!(right.status(), 200);
    assert!(
        right.text().await?.contains("skaerm_rooms_active"),
        "the scrape carries the relay's metrics"
    );

    let open = TestServer::start().await?;
    let url = format!("{}/metrics", open.url());
    assert_eq!(http.get(&url).send().await?.status(), 200);
    let proxied = http
        .get(&url)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await?;
    assert_eq!(proxied.status(), 403);
    Ok(())
}
