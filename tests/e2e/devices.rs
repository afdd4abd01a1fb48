//! Registered citizen tablets through the real server: a tablet asks to be paired and shows a
//! code, staff enter it for their citizen, the tablet stays signed in, staff call it for a
//! visit in progress and it joins the room with real WebRTC — straight into the call, the
//! answer being the admission, while the citizen's link still waits; unpairing revokes it. And
//! the doors that stay shut: a wrong code, another municipality's citizen or device, ops, a
//! token that claims a call it was not issued for.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::{Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::{Value, json};
use skaerm_auth::devices::DeviceRef;
use skaerm_auth::refs::StaffRef;
use skaerm_auth::roles::Role;
use skaerm_auth::tokens::AnsweredCall;
use skaerm_e2e::participant::{JoinOutcome, Participant};
use skaerm_e2e::server::{Browser, Municipality, TestServer};
use skaerm_e2e::setup::AUDIO_ONLY;
use skaerm_scheduling::Visit;
use skaerm_server::ids::IdInto;
use skaerm_sfu::protocol::ServerMessage;
use std::time::Duration;

/// A tablet: a browser with its own cookie jar.
async fn tablet_requests_pairing(server: &TestServer) -> Result<(Browser, String)> {
    let tablet = Browser::new(&server.url())?;
    let (status, body) = tablet.post("/api/device/pairing", json!({})).await?;
    assert_eq!(status, 201, "{body}");
    let code = body["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 9, "ABCD-EFGH: {code}");
    let (status, body) = tablet.get("/api/device/me").await?;
    assert_eq!((status, body["state"].as_str()), (200, Some("pending")));
    Ok((tablet, code))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_tablet_is_called_joins_and_is_revoked_by_unpairing() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    // The tablet page is served.
    let page = reqwest::get(format!("{}/tablet", server.url())).await?;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await?.contains("/assets/js/tablet.js"));
    let (tablet, code) = tablet_requests_pairing(&server).await?;
    // The staff member pairs for a citizen of theirs (one they have a visit with).
    let visit = server.visit_soon(&m).await?;

    let staff = server.signed_in(&m.username).await?;
    // Typed sloppily: lower case, no dash.
    let typed = code.replace('-', "").to_lowercase();
    let (status, body) = staff
        .post(
            "/api/devices/pair",
            json!({"code": typed, "citizen_id": m.citizen.id, "label": "Karens tablet"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let device_id = body["device"]["id"].as_str().unwrap().to_owned();
    // A code works once.
    let (status, body) = staff
        .post(
            "/api/devices/pair",
            json!({"code": code, "citizen_id": m.citizen.id}),
        )
        .await?;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_code")));

    let (status, body) = tablet.get("/api/device/me").await?;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "paired");
    assert_eq!(body["citizen"]["display_name"], m.citizen.display_name);
    let (status, body) = staff.get("/api/devices").await?;
    assert_eq!(status, 200);
    assert_eq!(body["devices"][0]["id"], device_id);

    // Nothing rings until staff call, and they can call only for a visit in progress.
    assert_eq!(tablet.get("/api/device/call").await?.0, 204);
    let call = format!("/api/devices/{device_id}/call");
    let (status, _) = staff.post(&call, json!({"visit_id": visit.id})).await?;
    assert_eq!(status, 409);
    let staff_token = staff.start_visit(&visit).await?;
    let (status, body) = staff.post(&call, json!({"visit_id": visit.id})).await?;
    assert_eq!(status, 202, "{body}");

    let (status, body) = tablet.get("/api/device/call").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"]["id"], json!(visit.id));
    let token = body["media_token"].as_str().unwrap().to_owned();
    let room = Some(visit.id.id_into());
    let host = Participant::join(&server.ws_url(), &staff_token, AUDIO_ONLY, room).await?;
    assert!(matches!(host, JoinOutcome::Joined(_)));
    match Participant::join(&server.ws_url(), &token, AUDIO_ONLY, room).await? {
        JoinOutcome::Joined(p) => {
            assert!(!p.waited, "the called tablet does not wait");
            p.leave().await?
        }
        JoinOutcome::Refused { code, .. } => panic!("the tablet was refused: {code}"),
    }

    // Unpairing revokes the tablet at once.
    let (status, _) = staff.delete(&format!("/api/devices/{device_id}")).await?;
    assert_eq!(status, 204);
    assert_eq!(tablet.get("/api/device/me").await?.0, 401);
    assert_eq!(tablet.get("/api/device/call").await?.0, 401);
    let (_, body) = staff.get("/api/devices").await?;
    assert_eq!(body["devices"], json!([]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_stays_inside_the_municipality_and_the_care_roles() -> Result<()> {
    let server = TestServer::start().await?;
    let a = server.municipality("Kommune A").await?;
    let b = server.municipality("Kommune B").await?;
    // A's staff member has a visit with A's citizen (pairing needs responsibility).
    server.visit_soon(&a).await?;
    let staff_b = server.signed_in(&b.username).await?;

    // B's staff cannot pair a tablet to A's citizen.
    let (_, code) = tablet_requests_pairing(&server).await?;
    let (status, _) = staff_b
        .post(
            "/api/devices/pair",
            json!({"code": code, "citizen_id": a.citizen.id}),
        )
        .await?;
    assert_eq!(status, 404);
    // Ops cannot pair at all.
    let ops = server.account(&a, "Olga Drift", &[Role::Ops]).await?;
    let ops_tab = server.signed_in(&ops).await?;
    let (status, body) = ops_tab
        .post(
            "/api/devices/pair",
            json!({"code": code, "citizen_id": a.citizen.id}),
        )
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden_role"))
    );
    // A wrong code is refused.
    let staff_a = server.signed_in(&a.username).await?;
    let (status, _) = staff_a
        .post(
            "/api/devices/pair",
            json!({"code": "ABCD-EFGH", "citizen_id": a.citizen.id}),
        )
        .await?;
    assert_eq!(status, 404);
    // A pairs it; B can neither see, call nor unpair it.
    let (status, body) = staff_a
        .post(
            "/api/devices/pair",
            json!({"code": code, "citizen_id": a.citizen.id}),
        )
        .await?;
    assert_eq!(status, 201);
    let id = body["device"]["id"].as_str().unwrap().to_owned();
    let (_, list) = staff_b.get("/api/devices").await?;
    assert_eq!(list["devices"], json!([]));
    let visit_b = server.visit_soon(&b).await?;
    staff_b.start_visit(&visit_b).await?;
    let (status, _) = staff_b
        .post(
            &format!("/api/devices/{id}/call"),
            json!({"visit_id": visit_b.id}),
        )
        .await?;
    assert_eq!(status, 404);
    assert_eq!(staff_b.delete(&format!("/api/devices/{id}")).await?.0, 404);
    let (_, list) = staff_a.get("/api/devices").await?;
    assert_eq!(list["devices"].as_array().map(Vec::len), Some(1));
    // A tablet with no cookie is nobody.
    let stranger = Browser::new(&server.url())?;
    let (status, body): (u16, Value) = stranger.get("/api/device/call").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    Ok(())
}

/// Joins with `token`; fails unless the server let the participant in (waiting or not).
async fn joined(server: &TestServer, token: &str, visit: &Visit) -> Result<Participant> {
    match Participant::join(
        &server.ws_url(),
        token,
        AUDIO_ONLY,
        Some(visit.id.id_into()),
    )
    .await?
    {
        JoinOutcome::Joined(p) => Ok(*p),
        JoinOutcome::Refused { code, .. } => bail!("refused: {code}"),
    }
}

/// A validly signed citizen token for `visit` that names `call` (as only the tablet's answer
/// path sets it): what someone holding the signing key could make, so admission must check
/// the call itself and not trust the claim alone.
fn token_claiming(
    server: &TestServer,
    m: &Municipality,
    visit: &Visit,
    call: AnsweredCall,
) -> String {
    server
        .sign_citizen_token(m, visit, &m.citizen.display_name, Some(call), Utc::now())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_called_tablet_skips_the_waiting_room_a_link_and_a_forged_call_do_not() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let admin_user = server.account(&m, "Anne Admin", &[Role::Admin]).await?;
    let (tablet, code) = tablet_requests_pairing(&server).await?;
    let visit = server.visit_soon(&m).await?;
    let staff = server.signed_in(&m.username).await?;
    let (status, body) = staff
        .post(
            "/api/devices/pair",
            json!({"code": code, "citizen_id": m.citizen.id}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let device = DeviceRef(body["device"]["id"].as_str().unwrap().parse()?);
    let secret = staff.citizen_link(&visit).await?;
    let staff_token = staff.start_visit(&visit).await?;
    let host = joined(&server, &staff_token, &visit).await?;

    // Before any call: the citizen's link waits.
    let (status, body) = staff.exchange_link(&secret).await?;
    assert_eq!(status, 200, "{body}");
    let link_token = body["media_token"].as_str().unwrap().to_owned();
    let from_link = joined(&server, &link_token, &visit).await?;
    assert!(from_link.waited, "a citizen from the link waits");
    from_link.leave().await?;

    // Staff call the tablet; it answers and gets its token.
    let (status, body) = staff
        .post(
            &format!("/api/devices/{}/call", device.0),
            json!({"visit_id": visit.id}),
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    let (status, body) = tablet.get("/api/device/call").await?;
    assert_eq!(status, 200, "{body}");
    let tablet_token = body["media_token"].as_str().unwrap().to_owned();

    // While the call rings, the link of the same visit still waits.
    let from_link = joined(&server, &link_token, &visit).await?;
    assert!(
        from_link.waited,
        "the link waits while the tablet is called"
    );
    from_link.leave().await?;

    // The link's token with the call claim copied from the tablet's token: the signature
    // no longer holds.
    let claim = |token: &str| -> Result<Value> {
        let part = token.split('.').nth(1).unwrap_or_default();
        Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part)?)?)
    };
    let call_claim = claim(&tablet_token)?["call"].clone();
    assert_eq!(call_claim["device"], json!(device.0));
    assert_eq!(call_claim["by"], json!(m.staff.id));
    assert!(claim(&link_token)?.get("call").is_none());
    let mut tampered_claims = claim(&link_token)?;
    tampered_claims["call"] = call_claim;
    let parts: Vec<&str> = link_token.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string()),
        parts[2]
    );
    match Participant::join(
        &server.ws_url(),
        &tampered,
        AUDIO_ONLY,
        Some(visit.id.id_into()),
    )
    .await?
    {
        JoinOutcome::Refused { code, .. } => assert_eq!(code, "token_invalid"),
        JoinOutcome::Joined(_) => panic!("a tampered token joined"),
    }
    // A signed token naming a tablet not paired to this citizen is refused (a tablet's token
    // dies with its pairing).
    let unpaired = token_claiming(
        &server,
        &m,
        &visit,
        AnsweredCall {
            device: DeviceRef(uuid::Uuid::new_v4()),
            by: m.staff.id.id_into(),
        },
    );
    match Participant::join(
        &server.ws_url(),
        &unpaired,
        AUDIO_ONLY,
        Some(visit.id.id_into()),
    )
    .await?
    {
        JoinOutcome::Refused { code, .. } => assert_eq!(code, "forbidden"),
        JoinOutcome::Joined(_) => panic!("a token of an unpaired tablet joined"),
    }
    // Signed tokens naming a call that is not this one wait like any guest: the right tablet
    // called by someone other than the visit's staff.
    for (what, call) in [(
        "a caller who does not run the visit",
        AnsweredCall {
            device,
            by: StaffRef(uuid::Uuid::new_v4()),
        },
    )] {
        let forged = joined(&server, &token_claiming(&server, &m, &visit, call), &visit).await?;
        assert!(forged.waited, "{what}: waits");
        forged.leave().await?;
    }

    // The called tablet goes straight in: no `waiting`, the host is not asked, media flows.
    let answered = joined(&server, &tablet_token, &visit).await?;
    assert!(!answered.waited, "the called tablet skips the waiting room");
    answered.wait_connected(Duration::from_secs(15)).await?;
    host.wait_for(Duration::from_secs(5), |msg| {
        matches!(msg, ServerMessage::ParticipantJoined { participant } if participant.id.0 == m.citizen.id.0)
    })
    .await?;
    // Only the link's earlier waits reached the host, never the tablet's.
    let asked = host
        .messages()
        .iter()
        .filter(|msg| matches!(msg, ServerMessage::ParticipantWaiting { .. }))
        .count();
    assert_eq!(
        asked, 3,
        "two link joins and one forged call waited, the tablet did not"
    );
    answered.leave().await?;
    host.leave().await?;

    // Audited as admitted by the calling staff member.
    let admin = server.signed_in(&admin_user).await?;
    let mut admitted = Vec::new();
    for _ in 0..50 {
        let (status, body) = admin.get("/api/admin/audit").await?;
        assert_eq!(status, 200, "{body}");
        admitted = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "visit_admitted")
            .cloned()
            .collect();
        if !admitted.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(admitted.len(), 1, "{admitted:?}");
    assert_eq!(admitted[0]["actor_id"], json!(m.staff.id));
    assert_eq!(admitted[0]["subject_id"], json!(visit.id));
    assert_eq!(
        admitted[0]["detail"],
        json!(format!("admitted guest {}", m.citizen.id))
    );
    Ok(())
}
