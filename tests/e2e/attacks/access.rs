//! Access-control attacks (issue 14): credentials that were taken away must stop working at
//! once, not when their media token expires.

use super::{BOTH, refusal};
use anyhow::{Result, bail};
use serde_json::json;
use skaerm_e2e::participant::{JoinOutcome, Participant};
use skaerm_e2e::server::{Browser, PASSWORD, TestServer};
use skaerm_sfu::ids::RoomId;
use skaerm_sfu::protocol::{EndReason, ServerMessage};
use std::time::Duration;

async fn token_from(server: &TestServer, secret: &str) -> Result<String> {
    let (status, body) = Browser::new(&server.url())?.exchange_link(secret).await?;
    if status != 200 {
        bail!("exchange failed: {status} {body}");
    }
    Ok(body["media_token"].as_str().unwrap_or_default().to_owned())
}

async fn joined(server: &TestServer, token: &str, room: RoomId) -> Result<Participant> {
    match Participant::join(&server.ws_url(), token, BOTH, Some(room)).await? {
        JoinOutcome::Joined(p) => Ok(*p),
        JoinOutcome::Refused { code, .. } => bail!("refused: {code}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_a_reissued_or_revoked_link_neither_joins_nor_replaces_the_citizen()
-> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let room = RoomId(visit.id.0);
    let staff = Browser::new(&server.url())?;
    staff.login(&m.username, PASSWORD).await?;
    let host = joined(&server, &staff.start_visit(&visit).await?, room).await?;

    // L1 leaks; its holder exchanges it for T1. Staff re-issue the link (L2).
    let leaked = token_from(&server, &staff.citizen_link(&visit).await?).await?;
    let l2 = staff.citizen_link(&visit).await?;
    // The real citizen comes in through L2 and is admitted.
    let citizen = joined(&server, &token_from(&server, &l2).await?, room).await?;
    host.let_in(&citizen).await?;

    // T1 is refused, and the citizen stays.
    assert_eq!(refusal(&server, &leaked, Some(&visit)).await?, "forbidden");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !citizen.messages().iter().any(|m| matches!(
            m,
            ServerMessage::Ended {
                reason: EndReason::Replaced
            }
        )),
        "the real citizen was replaced"
    );

    // A rejoin through the same link skips the waiting room (a network cut).
    let again = joined(&server, &token_from(&server, &l2).await?, room).await?;
    assert!(!again.waited, "the same link's holder rejoins directly");

    // Revoked outright (DELETE): a token from L2 dies with it.
    let from_l2 = token_from(&server, &l2).await?;
    let (status, _) = staff
        .delete(&format!("/api/visits/{}/citizen-link", visit.id))
        .await?;
    assert_eq!(status, 204);
    assert_eq!(refusal(&server, &from_l2, Some(&visit)).await?, "forbidden");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_token_dies_with_the_staff_login() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let staff = Browser::new(&server.url())?;
    staff.login(&m.username, PASSWORD).await?;
    let token = staff.start_visit(&visit).await?;
    joined(&server, &token, RoomId(visit.id.0))
        .await?
        .leave()
        .await?;
    let (status, _) = staff.delete("/api/session").await?;
    assert!(status < 300, "logout: {status}");
    assert_eq!(refusal(&server, &token, Some(&visit)).await?, "forbidden");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_exchange_and_the_visit_agree_on_the_status() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    // Five minutes ahead: inside the link window and "ready" to staff.
    let visit = server.visit_soon(&m).await?;
    let staff = Browser::new(&server.url())?;
    staff.login(&m.username, PASSWORD).await?;
    let (status, body) = Browser::new(&server.url())?
        .exchange_link(&staff.citizen_link(&visit).await?)
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, seen) = staff.get(&format!("/api/visits/{}", visit.id)).await?;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(body["visit"]["status"], json!("ready"));
    assert_eq!(body["visit"]["status"], seen["visit"]["status"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_cannot_grant_herself_a_care_role_a_second_admin_can_and_it_is_audited()
-> Result<()> {
    use skaerm_auth::roles::Role;
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let anne = server.account(&m, "Anne Admin", &[Role::Admin]).await?;
    let bo = server.account(&m, "Bo Admin", &[Role::Admin]).await?;
    let as_anne = Browser::new(&server.url())?;
    as_anne.login(&anne, PASSWORD).await?;
    let path = format!("/api/admin/accounts/{anne}/roles");
    let (status, body) = as_anne
        .put(&path, json!({"roles": ["admin", "staff"]}))
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("self_grant_refused"))
    );
    let as_bo = Browser::new(&server.url())?;
    as_bo.login(&bo, PASSWORD).await?;
    let (status, body) = as_bo
        .put(&path, json!({"roles": ["admin", "staff"]}))
        .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = as_bo.get("/api/admin/audit").await?;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("roles changed to") && d.contains("staff"))),
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_with_a_visit_every_few_minutes_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let staff = Browser::new(&server.url())?;
    staff.login(&m.username, PASSWORD).await?;
    let (status, body) = staff
        .post(
            "/api/series",
            json!({
                "legal_basis": "sel_85",
                "purpose": "x",
                "citizen_id": m.citizen.id,
                "start_local": "2030-03-04T09:00:00",
                "duration_minutes": 5,
                "rrule": "FREQ=DAILY;BYHOUR=8,9,10,11,12;BYMINUTE=0,10,20,30,40,50;COUNT=50",
            }),
        )
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("too_many_per_day")),
        "{body}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_in_the_waiting_room_is_told_when_the_visit_is_cancelled() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let staff = Browser::new(&server.url())?;
    staff.login(&m.username, PASSWORD).await?;
    let token = token_from(&server, &staff.citizen_link(&visit).await?).await?;
    let citizen = joined(&server, &token, RoomId(visit.id.0)).await?;
    assert!(citizen.waited);
    let (status, body) = staff
        .post(&format!("/api/visits/{}/cancel", visit.id), json!({}))
        .await?;
    assert_eq!(status, 200, "{body}");
    citizen
        .wait_for(Duration::from_secs(5), |m| {
            matches!(
                m,
                ServerMessage::Ended {
                    reason: EndReason::Cancelled
                }
            )
        })
        .await?;
    Ok(())
}
