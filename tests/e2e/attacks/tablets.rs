//! Tablet attacks (issue 14): a staff member must not see, pair or unpair the tablets of a
//! citizen they are not responsible for (a rogue "Stue" tablet paired to a colleague's citizen
//! would be rung into that colleague's visit); anonymous pairing requests from many addresses
//! are bounded.
//!
//! Unpairing another staff member's citizen's tablet in the same municipality answers
//! `403 not_responsible` (the id is an unguessable UUID; saying why helps the honest caller),
//! an unknown or another municipality's tablet `404`.

use anyhow::Result;
use chrono::{Duration as ChronoDuration, Utc};
use serde_json::json;
use skaerm_auth::audit::AuditAction;
use skaerm_e2e::server::{Browser, TestServer};
use skaerm_server::http::csrf::CSRF_HEADER;
use skaerm_server::ids::IdInto;

/// A tablet asks to be paired; its code.
async fn pairing_code(server: &TestServer) -> Result<String> {
    let tablet = Browser::new(&server.url())?;
    let (status, body) = tablet.post("/api/device/pairing", json!({})).await?;
    assert_eq!(status, 201, "{body}");
    Ok(body["code"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_staff_responsible_for_the_citizen_see_pair_and_unpair_its_tablets() -> Result<()> {
    let server = TestServer::start().await?;
    let team = server.municipality("Testkommune").await?;
    // A runs visits with the citizen; B is a colleague (not a team lead) who never does.
    let a = server.colleague(&team, "Anna").await?;
    let b = server.colleague(&team, "Bo").await?;
    server.visit_soon(&a).await?;
    let anna = server.signed_in(&a.username).await?;
    let bo = server.signed_in(&b.username).await?;

    let (status, body) = anna
        .post(
            "/api/devices/pair",
            json!({"code": pairing_code(&server).await?, "citizen_id": a.citizen.id, "label": "Stue"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let device = body["device"]["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        body["device"]["citizen_display_name"],
        a.citizen.display_name
    );

    // B does not see A's citizen's tablet.
    let (status, body) = bo.get("/api/devices").await?;
    assert_eq!(status, 200);
    assert_eq!(body["devices"], json!([]), "{body}");
    // B cannot pair a rogue tablet to A's citizen …
    let (status, body) = bo
        .post(
            "/api/devices/pair",
            json!({"code": pairing_code(&server).await?, "citizen_id": a.citizen.id, "label": "Stue"}),
        )
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_responsible")),
        "{body}"
    );
    // … nor unpair the real one.
    let (status, body) = bo.delete(&format!("/api/devices/{device}")).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_responsible")),
        "{body}"
    );

    // A still has exactly the one tablet, shown with the citizen's name, label and time.
    let (status, body) = anna.get("/api/devices").await?;
    assert_eq!(status, 200);
    let listed = body["devices"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 1, "{body}");
    assert_eq!(listed[0]["id"], device);
    assert_eq!(listed[0]["citizen_display_name"], a.citizen.display_name);
    assert_eq!(listed[0]["label"], "Stue");
    assert!(listed[0]["paired_at"].is_string(), "{body}");
    // The team lead of A's team sees it too.
    let lead = server.signed_in(&team.username).await?;
    let (_, body) = lead.get("/api/devices").await?;
    assert_eq!(body["devices"][0]["id"], device, "{body}");

    // The responsible staff member unpairs; pairing and unpairing are audited with the citizen.
    assert_eq!(anna.delete(&format!("/api/devices/{device}")).await?.0, 204);
    let services = &server.server.state().services;
    let now = Utc::now();
    let log = services
        .audit
        .list(
            team.tenant.id.id_into(),
            now - ChronoDuration::minutes(5),
            now + ChronoDuration::minutes(1),
            100,
        )
        .await?;
    let details: Vec<String> = log
        .iter()
        .filter(|e| e.action == AuditAction::DeviceChanged)
        .filter(|e| e.actor_id == Some(a.staff.id.0))
        .filter_map(|e| e.detail.clone())
        .collect();
    let citizen = a.citizen.id.0;
    for what in ["paired", "unpaired"] {
        assert!(
            details.contains(&format!("{what} citizen={citizen}")),
            "{what}: {details:?}"
        );
    }
    // Nobody else changed a tablet.
    assert!(
        log.iter()
            .filter(|e| e.action == AuditAction::DeviceChanged)
            .all(|e| e.actor_id == Some(a.staff.id.0)),
        "{log:?}"
    );
    Ok(())
}

/// `POST /api/device/pairing` from the loopback address `127.0.0.{last}`: status,
/// `Retry-After` and body.
async fn request_pairing_from(
    server: &TestServer,
    last: u8,
) -> Result<(u16, Option<String>, serde_json::Value)> {
    let client = super::edge::client_from(&format!("127.0.0.{last}"))?;
    let response = client
        .post(format!("{}/api/device/pairing", server.url()))
        .header(CSRF_HEADER, "1")
        .json(&json!({}))
        .send()
        .await?;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    Ok((status, retry_after, response.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_pairing_requests_from_many_addresses_are_capped_and_counted() -> Result<()> {
    let server = TestServer::start_with(&["--max-open-pairing-requests", "3"]).await?;
    // Three tablets on three addresses (each well inside its per-address limit) are served …
    for last in 11..14 {
        let (status, _, body) = request_pairing_from(&server, last).await?;
        assert_eq!(status, 201, "{body}");
    }
    // … the fourth open request, from yet another address, is refused and counted.
    let (status, retry_after, body) = request_pairing_from(&server, 14).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("busy")),
        "{body}"
    );
    assert_eq!(retry_after.as_deref(), Some("60"));
    assert_eq!(
        super::edge::metric(&server, "skaerm_pairing_requests_refused_total").await?,
        1.0
    );
    // Nothing was stored for it.
    let services = &server.server.state().services;
    assert_eq!(services.devices.open_requests(Utc::now()).await?, 3);
    Ok(())
}
