//! Registered citizen tablets through the real server: a tablet asks to be paired and shows a
//! code, staff enter it for their citizen, the tablet stays signed in, staff call it for a
//! visit in progress and it joins the room with real WebRTC; unpairing revokes it. And the
//! doors that stay shut: a wrong code, another municipality's citizen or device, ops.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::Result;
use serde_json::{Value, json};
use skaerm_auth::roles::Role;
use skaerm_e2e::participant::{JoinOutcome, Participant};
use skaerm_e2e::server::{Browser, PASSWORD, TestServer};
use skaerm_sfu::ids::RoomId;
use skaerm_sfu::protocol::Publish;

const AUDIO: Publish = Publish {
    audio: true,
    video: false,
};

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

    let staff = Browser::new(&server.url())?;
    staff.login(&m.username, PASSWORD).await?;
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
    let visit = server.visit_soon(&m).await?;
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
    let room = Some(RoomId(visit.id.0));
    let host = Participant::join(&server.ws_url(), &staff_token, AUDIO, room).await?;
    assert!(matches!(host, JoinOutcome::Joined(_)));
    match Participant::join(&server.ws_url(), &token, AUDIO, room).await? {
        JoinOutcome::Joined(p) => p.leave().await?,
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
    let staff_b = Browser::new(&server.url())?;
    staff_b.login(&b.username, PASSWORD).await?;

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
    let ops_tab = Browser::new(&server.url())?;
    ops_tab.login(&ops, PASSWORD).await?;
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
    let staff_a = Browser::new(&server.url())?;
    staff_a.login(&a.username, PASSWORD).await?;
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
