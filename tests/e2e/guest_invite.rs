//! Inviting a third participant (a relative) with a one-off link, end to end through the real
//! server: staff issue the invite over HTTP, the guest exchanges it at the citizen door for a
//! token with its own participant id and name, and staff, citizen and guest all receive each
//! other's audio and video through the relay (real `webrtc` peers). The doors that stay shut: a
//! revoked invite (at the door and for a token already held; a guest in the call when its
//! invite is revoked is taken out at once), an invite for another visit,
//! someone who neither owns nor co-hosts the visit.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::Result;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::json;
use skaerm_e2e::participant::{JoinOutcome, Participant};
use skaerm_e2e::server::{Browser, TestServer};
use skaerm_e2e::setup::{AUDIO_AND_VIDEO, payload};
use skaerm_server::ids::IdInto;
use skaerm_sfu::protocol::{EndReason, LeaveReason, ServerMessage};
use std::collections::HashSet;
use std::time::Duration;

/// Issues an invite; returns the whole answer.
async fn invite(
    tab: &Browser,
    visit: &str,
    name: &str,
    kind: &str,
) -> Result<(u16, serde_json::Value)> {
    tab.post(
        &format!("/api/visits/{visit}/guest-links"),
        json!({"display_name": name, "kind": kind}),
    )
    .await
}

fn secret_of(url: &str) -> String {
    url.rsplit('/').next().unwrap().to_owned()
}

/// Invites `name` as `kind` to `visit` (expecting `201`) and exchanges the link in a fresh
/// browser (expecting `200`); returns the exchange's answer.
async fn invited_guest(
    server: &TestServer,
    tab: &Browser,
    visit: &str,
    name: &str,
    kind: &str,
) -> Result<serde_json::Value> {
    let (status, body) = invite(tab, visit, name, kind).await?;
    assert_eq!(status, 201, "{body}");
    let (status, body) = Browser::new(&server.url())?
        .exchange_link(&secret_of(body["url"].as_str().unwrap()))
        .await?;
    assert_eq!(status, 200, "{body}");
    Ok(body)
}

/// Everyone sends until everyone has received both kinds from everyone.
async fn all_hear_all(people: &[(&Participant, &str)]) -> Result<()> {
    for i in 0..600 {
        for (p, tag) in people {
            p.send_rtp(RtpCodecKind::Audio, payload(tag, RtpCodecKind::Audio, i))
                .await?;
            p.send_rtp(RtpCodecKind::Video, payload(tag, RtpCodecKind::Video, i))
                .await?;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let complete = people.iter().all(|(receiver, _)| {
            let got = receiver.received();
            people
                .iter()
                .filter(|(sender, _)| sender.id != receiver.id)
                .all(|(sender, tag)| {
                    let kinds: HashSet<RtpCodecKind> = got
                        .iter()
                        .filter(|r| r.from == sender.id && r.payload.starts_with(tag.as_bytes()))
                        .map(|r| r.kind)
                        .collect();
                    kinds.len() == 2
                })
        });
        if complete {
            return Ok(());
        }
    }
    for (receiver, _) in people {
        let from: HashSet<(String, RtpCodecKind)> = receiver
            .received()
            .iter()
            .map(|r| (r.from.clone(), r.kind))
            .collect();
        eprintln!("{} received from {from:?}", receiver.id);
    }
    anyhow::bail!("not everyone received audio and video from everyone")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_relative_joins_as_third_participant_and_all_exchange_media() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let other_visit = server
        .visit(&m, chrono::Utc::now() + chrono::Duration::minutes(30), 15)
        .await?;
    let room = Some(visit.id.id_into());
    let id = visit.id.to_string();

    let staff_tab = server.signed_in(&m.username).await?;
    let staff_token = staff_tab.start_visit(&visit).await?;
    let citizen_secret = staff_tab.citizen_link(&visit).await?;

    // The invite: 201 with a URL that names nobody.
    let (status, body) = invite(&staff_tab, &id, "Søn Jens", "relative").await?;
    assert_eq!(status, 201, "{body}");
    let url = body["url"].as_str().unwrap();
    assert!(url.contains("/j/"), "{url}");
    assert!(!url.contains("Jens") && !url.contains(&id), "{url}");
    assert_eq!(body["kind"], "relative");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap())?,
        visit.planned_end()
    );
    let guest_secret = secret_of(url);
    let invite_id = body["id"].as_str().unwrap().to_owned();

    // Bad input and strangers.
    let (status, body) = invite(&staff_tab, &id, "  ", "relative").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid")),
        "{body}"
    );
    let (status, body) = invite(&staff_tab, &id, "X", "neighbour").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let stranger = server.municipality("Nabokommune").await?;
    let stranger_tab = server.signed_in(&stranger.username).await?;
    let (status, body) = invite(&stranger_tab, &id, "X", "colleague").await?;
    assert_eq!(status, 404, "{body}");
    let anonymous = Browser::new(&server.url())?;
    let (status, body) = invite(&anonymous, &id, "X", "colleague").await?;
    assert_eq!(status, 401, "{body}");

    // The guest's door: its own participant id and name, role guest.
    let guest_tab = Browser::new(&server.url())?;
    let (status, body) = guest_tab.exchange_link(&guest_secret).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"]["id"], json!(id));
    assert_eq!(body["guest"]["display_name"], "Søn Jens");
    let guest_token = body["media_token"].as_str().unwrap().to_owned();
    let citizen_tab = Browser::new(&server.url())?;
    let (status, body) = citizen_tab.exchange_link(&citizen_secret).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body["guest"].is_null(), "{body}");
    let citizen_token = body["media_token"].as_str().unwrap().to_owned();

    let staff = server
        .join_visit(&staff_token, AUDIO_AND_VIDEO, &visit)
        .await?;
    let citizen = server
        .join_visit(&citizen_token, AUDIO_AND_VIDEO, &visit)
        .await?;
    let guest = server
        .join_visit(&guest_token, AUDIO_AND_VIDEO, &visit)
        .await?;
    // Both the citizen and the relative wait until the staff member lets them in.
    staff.let_in(&citizen).await?;
    staff.let_in(&guest).await?;
    for p in [&staff, &citizen, &guest] {
        p.wait_connected(Duration::from_secs(15)).await?;
    }
    assert_eq!(guest.id, invite_id);
    assert_ne!(guest.id, citizen.id);
    let guest_seen_by_staff = staff.messages().iter().any(|msg| {
        matches!(msg, ServerMessage::ParticipantJoined { participant }
            if participant.id.to_string() == invite_id && participant.display_name == "Søn Jens")
    });
    assert!(
        guest_seen_by_staff,
        "staff saw the guest join with its name"
    );

    all_hear_all(&[(&staff, "staff"), (&citizen, "citizen"), (&guest, "guest")]).await?;

    // An invite for another visit does not admit to this one, neither at the door nor with
    // its token in this room.
    let (status, body) = invite(
        &staff_tab,
        &other_visit.id.to_string(),
        "Tolk",
        "interpreter",
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    let other_secret = secret_of(body["url"].as_str().unwrap());
    let (status, body) = guest_tab.exchange_link(&other_secret).await?;
    // The other visit opens in 15 minutes: its link is not open yet, and says for which time.
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_yet_open")),
        "{body}"
    );

    // Revoked: the door answers like an unknown link, and a token already held no longer
    // admits (a second invite of the same visit still works).
    let (status, body) = invite(&staff_tab, &id, "Kollega Ida", "colleague").await?;
    assert_eq!(status, 201, "{body}");
    let second_secret = secret_of(body["url"].as_str().unwrap());
    let (status, _) = staff_tab
        .delete(&format!("/api/visits/{id}/guest-links/{invite_id}"))
        .await?;
    assert_eq!(status, 204);
    // The relative was in the call: revoking takes them out at once, they are told not to
    // come back, and the others see them leave.
    guest
        .wait_for(Duration::from_secs(5), |m| {
            matches!(
                m,
                ServerMessage::Ended {
                    reason: EndReason::AccessRevoked
                }
            )
        })
        .await?;
    let (close, _) = guest.wait_closed(Duration::from_secs(5)).await?;
    assert_eq!(close, 1000);
    for other in [&staff, &citizen] {
        other
            .wait_for(Duration::from_secs(5), |m| {
                matches!(m, ServerMessage::ParticipantLeft { participant_id, reason }
                    if participant_id.to_string() == invite_id && *reason == LeaveReason::Removed)
            })
            .await?;
    }
    assert!(
        !citizen
            .messages()
            .iter()
            .any(|m| matches!(m, ServerMessage::Ended { .. })),
        "only the revoked guest's session ended"
    );
    let (status, body) = guest_tab.exchange_link(&guest_secret).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_link")),
        "{body}"
    );
    match Participant::join(&server.ws_url(), &guest_token, AUDIO_AND_VIDEO, room).await? {
        JoinOutcome::Refused { code, .. } => assert_eq!(code, "forbidden"),
        JoinOutcome::Joined(_) => panic!("a revoked invite's token was admitted"),
    }
    let (status, body) = guest_tab.exchange_link(&second_secret).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = staff_tab
        .get(&format!("/api/visits/{id}/guest-links"))
        .await?;
    assert_eq!(status, 200, "{body}");
    let listed = body["guest_links"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(!listed[0]["revoked_at"].is_null());
    assert!(listed[1]["revoked_at"].is_null());
    assert!(
        listed
            .iter()
            .all(|l| l.get("url").is_none() && l.get("hash").is_none())
    );
    // Revoking an invite through another visit is not found.
    let (status, _) = staff_tab
        .delete(&format!(
            "/api/visits/{}/guest-links/{}",
            other_visit.id,
            listed[1]["id"].as_str().unwrap()
        ))
        .await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_for_visit_a_does_not_admit_to_visit_b() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    // Two open visits of two staff members, so both links are inside their windows.
    let a = server.visit_soon(&m).await?;
    let n = server.municipality("Testkommune B").await?;
    let b = server.visit_soon(&n).await?;
    let tab_a = server.signed_in(&m.username).await?;
    let tab_b = server.signed_in(&n.username).await?;
    tab_b.start_visit(&b).await?;
    let body = invited_guest(&server, &tab_a, &a.id.to_string(), "Datter", "relative").await?;
    assert_eq!(body["visit"]["id"], json!(a.id.to_string()));
    let token = body["media_token"].as_str().unwrap();
    // The token names visit A: the room of visit B refuses it.
    match Participant::join(
        &server.ws_url(),
        token,
        AUDIO_AND_VIDEO,
        Some(b.id.id_into()),
    )
    .await?
    {
        JoinOutcome::Refused { code, .. } => assert_eq!(code, "forbidden"),
        JoinOutcome::Joined(p) => panic!("admitted to visit B as {}", p.id),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_guest_does_not_put_the_visit_in_the_waiting_room() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let id = visit.id.to_string();
    let tab = server.signed_in(&m.username).await?;
    let body = invited_guest(&server, &tab, &id, "Tolk Amir", "interpreter").await?;
    let guest_token = body["media_token"].as_str().unwrap().to_owned();
    let citizen_secret = tab.citizen_link(&visit).await?;
    let (_, body) = Browser::new(&server.url())?
        .exchange_link(&citizen_secret)
        .await?;
    let citizen_token = body["media_token"].as_str().unwrap().to_owned();

    // The interpreter waits in the room: the visit stays `ready` (no citizen yet).
    let guest = server
        .join_visit(&guest_token, AUDIO_AND_VIDEO, &visit)
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, body) = tab.get(&format!("/api/visits/{id}")).await?;
    assert_eq!(body["visit"]["status"], "ready", "{body}");
    // The citizen arrives: now it is `waiting`.
    let citizen = server
        .join_visit(&citizen_token, AUDIO_AND_VIDEO, &visit)
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = tab.get(&format!("/api/visits/{id}")).await?;
        if body["visit"]["status"] == "waiting" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The interpreter leaving does not send the visit back to `ready`.
    guest.leave().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, body) = tab.get(&format!("/api/visits/{id}")).await?;
    assert_eq!(body["visit"]["status"], "waiting", "{body}");
    citizen.leave().await?;
    Ok(())
}
