//! A scheduled visit, end to end, through the real server: HTTP login and link exchange, the
//! WebSocket signalling, the UDP relay, and two WebRTC peers built with the `webrtc` crate.
//! Plus the doors that must stay shut: another visit's token, an expired link, a forged token.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::Result;
use bytes::Bytes;
use chrono::{Duration as ChronoDuration, Utc};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::json;
use skaerm_e2e::participant::{JoinOutcome, Participant};
use skaerm_e2e::server::{Browser, TestServer};
use skaerm_e2e::setup::{AUDIO_AND_VIDEO, payload};
use skaerm_server::ids::IdInto;
use skaerm_sfu::protocol::ServerMessage;
use std::collections::HashSet;
use std::time::Duration;

/// Sends until the other side has received something from `from`, so the relay has opened the
/// publications and renegotiated the subscriber.
async fn warm_up(from: &Participant, to: &Participant) -> Result<()> {
    for i in 0..500 {
        from.send_rtp(
            RtpCodecKind::Audio,
            payload("warmup", RtpCodecKind::Audio, i),
        )
        .await?;
        from.send_rtp(
            RtpCodecKind::Video,
            payload("warmup", RtpCodecKind::Video, i),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let got = to.received();
        let kinds: HashSet<RtpCodecKind> = got
            .iter()
            .filter(|r| r.from == from.id)
            .map(|r| r.kind)
            .collect();
        if kinds.len() == 2 {
            return Ok(());
        }
    }
    anyhow::bail!("no media from {} reached {} during warm-up", from.id, to.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_and_citizen_exchange_audio_and_video_through_the_relay() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;

    let staff_tab = server.signed_in(&m.username).await?;
    let staff_token = staff_tab.start_visit(&visit).await?;
    let secret = staff_tab.citizen_link(&visit).await?;

    let citizen_tab = Browser::new(&server.url())?;
    let (status, body) = citizen_tab.exchange_link(&secret).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"]["staff_display_name"], "Staff");
    let citizen_token = body["media_token"].as_str().unwrap_or_default().to_owned();

    let staff = server
        .join_visit(&staff_token, AUDIO_AND_VIDEO, &visit)
        .await?;
    let citizen = server
        .join_visit(&citizen_token, AUDIO_AND_VIDEO, &visit)
        .await?;
    // The citizen waits in the waiting room until the staff member lets them in.
    assert!(citizen.waited, "the citizen must land in the waiting room");
    let citizen_id = citizen.id.clone();
    staff
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::ParticipantWaiting { participant } if participant.id.to_string() == citizen_id)
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !citizen
            .messages()
            .iter()
            .any(|m| matches!(m, ServerMessage::Offer { .. })),
        "no offer before admission"
    );
    // The relay counts who waits (published by the worker about once a second).
    let mut waiting_gauge = None;
    for _ in 0..50 {
        let metrics = reqwest::get(format!("{}/metrics", server.url()))
            .await?
            .text()
            .await?;
        waiting_gauge = metrics
            .lines()
            .find_map(|l| l.strip_prefix("skaerm_participants_waiting "))
            .map(|v| v.trim().to_owned());
        if waiting_gauge.as_deref() == Some("1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        waiting_gauge.as_deref(),
        Some("1"),
        "one participant waiting"
    );
    staff.admit(&citizen.id).await?;
    citizen
        .wait_for(Duration::from_secs(5), |m| {
            matches!(m, ServerMessage::Joined { .. })
        })
        .await?;
    staff.wait_connected(Duration::from_secs(10)).await?;
    citizen.wait_connected(Duration::from_secs(10)).await?;
    assert_eq!(staff.id, m.staff.id.to_string());
    assert_eq!(citizen.id, m.citizen.id.to_string());

    warm_up(&staff, &citizen).await?;
    warm_up(&citizen, &staff).await?;
    staff.clear_received();
    citizen.clear_received();

    const N: usize = 100;
    for i in 0..N {
        for (p, tag) in [(&staff, "staff"), (&citizen, "citizen")] {
            p.send_rtp(RtpCodecKind::Audio, payload(tag, RtpCodecKind::Audio, i))
                .await?;
            p.send_rtp(RtpCodecKind::Video, payload(tag, RtpCodecKind::Video, i))
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    for (receiver, sender, tag) in [(&citizen, &staff, "staff"), (&staff, &citizen, "citizen")] {
        let got = receiver.received();
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let payloads: HashSet<&Bytes> = got
                .iter()
                .filter(|r| r.from == sender.id && r.kind == kind)
                .map(|r| &r.payload)
                .collect();
            for i in 0..N {
                assert!(
                    payloads.contains(&payload(tag, kind, i)),
                    "{tag}'s {kind} packet {i} did not arrive intact ({} arrived)",
                    payloads.len()
                );
            }
        }
    }

    // The relay counted what it forwarded.
    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await?
        .text()
        .await?;
    let forwarded: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("skaerm_rtp_packets_forwarded_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(forwarded >= (4 * N) as f64, "forwarded {forwarded}");
    for gauge in [
        "skaerm_rooms_active",
        "skaerm_participants",
        "skaerm_participants_waiting",
        "skaerm_udp_bytes_in_total",
    ] {
        assert!(metrics.contains(gauge), "{gauge} missing from /metrics");
    }

    // Staff ends the visit: the citizen's session is told and closed.
    let (status, _) = staff_tab
        .post(&format!("/api/visits/{}/end", visit.id), json!({}))
        .await?;
    assert_eq!(status, 200);
    let (code, _) = citizen.wait_closed(Duration::from_secs(5)).await?;
    assert_eq!(code, 1000);
    assert!(citizen.messages().iter().any(|m| matches!(
        m,
        ServerMessage::Ended {
            reason: skaerm_sfu::protocol::EndReason::VisitEnded
        }
    )));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_visit_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    // Open now too, but not overlapping (a staff member cannot be double-booked).
    let other_visit = server
        .visit(&m, Utc::now() - ChronoDuration::minutes(20), 24)
        .await?;

    let staff_tab = server.signed_in(&m.username).await?;
    let staff_token = staff_tab.start_visit(&visit).await?;
    let staff = server
        .join_visit(&staff_token, AUDIO_AND_VIDEO, &visit)
        .await?;
    staff.wait_connected(Duration::from_secs(10)).await?;

    // A third peer holding a valid token — for the other visit — asks for this one.
    let other_token = staff_tab.citizen_token(&other_visit).await?;
    match Participant::join(
        &server.ws_url(),
        &other_token,
        AUDIO_AND_VIDEO,
        Some(visit.id.id_into()),
    )
    .await?
    {
        JoinOutcome::Refused { code, close } => {
            assert_eq!(code, "forbidden");
            assert_eq!(close, Some(1008));
        }
        JoinOutcome::Joined(_) => panic!("a token for another visit must not open this one"),
    }
    // The staff member never saw anyone join.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !staff
            .messages()
            .iter()
            .any(|m| matches!(m, ServerMessage::ParticipantJoined { .. })),
        "nobody may enter the visit"
    );

    // A token signed by someone else is refused as invalid.
    let forged = {
        let mut parts: Vec<String> = staff_token.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    match Participant::join(&server.ws_url(), &forged, AUDIO_AND_VIDEO, None).await? {
        JoinOutcome::Refused { code, .. } => assert_eq!(code, "token_invalid"),
        JoinOutcome::Joined(_) => panic!("a forged token must be refused"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_work_only_inside_their_window() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let staff_tab = server.signed_in(&m.username).await?;
    let citizen_tab = Browser::new(&server.url())?;

    // Yesterday's visit: the link has expired.
    let past = server
        .visit(&m, Utc::now() - ChronoDuration::hours(26), 15)
        .await?;
    let secret = staff_tab.citizen_link(&past).await?;
    let (status, body) = citizen_tab.exchange_link(&secret).await?;
    assert_eq!((status, body["code"].as_str()), (410, Some("link_expired")));

    // A visit in three hours: not open yet, and the page is told when it opens.
    let later = server
        .visit(&m, Utc::now() + ChronoDuration::hours(3), 15)
        .await?;
    let secret = staff_tab.citizen_link(&later).await?;
    let (status, body) = citizen_tab.exchange_link(&secret).await?;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_yet_open")));
    assert!(body["opens_at"].is_string());

    // A re-issued link revokes the old one; unknown and revoked look the same.
    let now_visit = server.visit_soon(&m).await?;
    let first = staff_tab.citizen_link(&now_visit).await?;
    let second = staff_tab.citizen_link(&now_visit).await?;
    let (status, body) = citizen_tab.exchange_link(&first).await?;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_link")));
    let (status, _) = citizen_tab.exchange_link(&second).await?;
    assert_eq!(status, 200);

    // A token obtained inside the window stops working once the visit is completed.
    let (_, body) = citizen_tab.exchange_link(&second).await?;
    let token = body["media_token"].as_str().unwrap_or_default().to_owned();
    staff_tab.start_visit(&now_visit).await?;
    let (status, _) = staff_tab
        .post(&format!("/api/visits/{}/end", now_visit.id), json!({}))
        .await?;
    assert_eq!(status, 200);
    match Participant::join(&server.ws_url(), &token, AUDIO_AND_VIDEO, None).await? {
        JoinOutcome::Refused { code, .. } => assert_eq!(code, "forbidden"),
        JoinOutcome::Joined(_) => panic!("an ended visit must not admit anyone"),
    }
    let (status, body) = citizen_tab.exchange_link(&second).await?;
    assert_eq!((status, body["code"].as_str()), (410, Some("link_expired")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_cannot_reach_another_municipalitys_visit() -> Result<()> {
    let server = TestServer::start().await?;
    let a = server.municipality("Kommune A").await?;
    let b = server.municipality("Kommune B").await?;
    let visit_b = server.visit_soon(&b).await?;
    let tab = server.signed_in(&a.username).await?;
    for path in ["start", "citizen-link", "media-token", "end"] {
        let (status, body) = tab
            .post(&format!("/api/visits/{}/{path}", visit_b.id), json!({}))
            .await?;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = tab.get(&format!("/api/visits/{}", visit_b.id)).await?;
    assert_eq!(status, 404);
    // Without a session, nothing.
    let (status, body) = Browser::new(&server.url())?.get("/api/visits").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    Ok(())
}

/// The relay-side ICE ufrags of the offers `p` received, in order.
fn offer_ufrags(p: &Participant) -> Vec<String> {
    p.messages()
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Offer { sdp, .. } => sdp
                .lines()
                .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
                .map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// `skaerm_ice_restarts_total{result}` from the server's metrics.
async fn ice_restarts(server: &TestServer, result: &str) -> Result<f64> {
    let metrics = reqwest::get(format!("{}/metrics", server.url()))
        .await?
        .text()
        .await?;
    let prefix = format!("skaerm_ice_restarts_total{{result=\"{result}\"}} ");
    Ok(metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}

/// A participant asks for an ICE restart over the real WebSocket: the relay offers fresh ICE
/// credentials, a `webrtc`-crate peer (another ICE implementation than the relay's) answers and
/// restarts, and media keeps flowing both ways in the same session; the restart is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ice_restart_asked_over_signalling_keeps_the_session_and_the_media() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let staff_tab = server.signed_in(&m.username).await?;
    let staff_token = staff_tab.start_visit(&visit).await?;
    let citizen_token = staff_tab.citizen_token(&visit).await?;

    let (staff, citizen) = server
        .connected_call(&staff_token, &citizen_token, AUDIO_AND_VIDEO, &visit)
        .await?;
    warm_up(&staff, &citizen).await?;
    warm_up(&citizen, &staff).await?;

    let before = offer_ufrags(&citizen);
    let staff_messages_before = staff.messages().len();
    citizen
        .send(skaerm_sfu::protocol::ClientMessage::RestartIce)
        .await?;
    let mut after = before.clone();
    for _ in 0..250 {
        after = offer_ufrags(&citizen);
        if after.len() > before.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(after.len(), before.len() + 1, "one restart offer");
    assert_ne!(after.last(), before.last(), "with a new ufrag");

    // Media flows both ways again over the restarted ICE session.
    tokio::time::sleep(Duration::from_millis(500)).await;
    citizen.wait_connected(Duration::from_secs(10)).await?;
    staff.clear_received();
    citizen.clear_received();
    warm_up(&staff, &citizen).await?;
    warm_up(&citizen, &staff).await?;

    // Same session: the staff heard of no leave or join, and the restart was counted.
    assert!(
        !staff.messages()[staff_messages_before..]
            .iter()
            .any(|m| matches!(
                m,
                ServerMessage::ParticipantLeft { .. } | ServerMessage::ParticipantJoined { .. }
            )),
        "the staff was told nothing: {:?}",
        &staff.messages()[staff_messages_before..]
    );
    let mut counted = 0.0;
    for _ in 0..50 {
        counted = ice_restarts(&server, "restarted").await?;
        if counted >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, 1.0, "the relay counted one ICE restart");
    Ok(())
}
