//! The audit log through the real server: a visit's logins, link exchange, admission from the
//! waiting room, media joins and leaves and logout are recorded with actor, tenant and address; only an administrator of
//! the same municipality can export them (JSON or CSV); no secret ends up in the log.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::Result;
use serde_json::{Value, json};
use skaerm_auth::roles::Role;

use skaerm_e2e::server::{Browser, PASSWORD, TestServer};
use skaerm_e2e::setup::AUDIO_ONLY;
use std::time::Duration;

fn actions(events: &Value) -> Vec<(String, String)> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor_kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_leaves_an_audit_trail_that_only_the_admin_can_export() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let admin_user = server.account(&m, "Anne Admin", &[Role::Admin]).await?;
    let visit = server.visit_soon(&m).await?;

    let staff = server.signed_in(&m.username).await?;
    let staff_token = staff.start_visit(&visit).await?;
    let secret = staff.citizen_link(&visit).await?;
    let (status, body) = Browser::new(&server.url())?.exchange_link(&secret).await?;
    assert_eq!(status, 200);
    let citizen_token = body["media_token"].as_str().unwrap().to_owned();

    let host = server.join_visit(&staff_token, AUDIO_ONLY, &visit).await?;
    let guest = server
        .join_visit(&citizen_token, AUDIO_ONLY, &visit)
        .await?;
    // The citizen waits until the staff member lets them in; only then is their media joined.
    host.let_in(&guest).await?;
    guest.leave().await?;
    host.leave().await?;
    let (status, _) = staff.delete("/api/session").await?;
    assert_eq!(status, 204);

    // Staff may not export.
    let (status, body) = staff.get("/api/admin/audit").await?;
    assert_eq!(status, 401, "logged out: {body}");
    staff.login(&m.username, PASSWORD).await?;
    let (status, body) = staff.get("/api/admin/audit").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden_role"))
    );

    let admin = server.signed_in(&admin_user).await?;
    // Room events arrive asynchronously: wait until both leaves are in.
    let mut export = Value::Null;
    for _ in 0..50 {
        let (status, body) = admin.get("/api/admin/audit").await?;
        assert_eq!(status, 200, "{body}");
        export = body;
        if actions(&export)
            .iter()
            .filter(|(a, _)| a == "media_left")
            .count()
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = actions(&export);
    for expected in [
        ("login", "staff"),
        ("link_exchanged", "citizen"),
        ("media_joined", "staff"),
        ("media_joined", "citizen"),
        ("visit_admitted", "staff"),
        ("media_left", "staff"),
        ("media_left", "citizen"),
        ("logout", "staff"),
    ] {
        assert!(
            got.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} missing from {got:?}"
        );
    }
    let events = export["events"].as_array().unwrap();
    let exchange = events
        .iter()
        .find(|e| e["action"] == "link_exchanged")
        .unwrap();
    assert_eq!(exchange["subject_kind"], "visit");
    assert_eq!(exchange["subject_id"], json!(visit.id));
    assert_eq!(exchange["actor_id"], json!(m.citizen.id));
    assert_eq!(exchange["tenant_id"], json!(m.tenant.id));
    assert_eq!(exchange["source_ip"], "127.0.0.1");
    // The staff member let the citizen in.
    let admitted = events
        .iter()
        .find(|e| e["action"] == "visit_admitted")
        .unwrap();
    assert_eq!(admitted["actor_id"], json!(m.staff.id));
    assert_eq!(admitted["subject_id"], json!(visit.id));
    assert_eq!(
        admitted["detail"],
        json!(format!("admitted guest {}", m.citizen.id))
    );
    let login = events.iter().find(|e| e["action"] == "login").unwrap();
    assert_eq!(login["actor_id"], json!(m.staff.id));

    // No secrets: not the link, not a token, not the password.
    let text = export.to_string();
    for secret in [secret.as_str(), &staff_token, &citizen_token, PASSWORD] {
        assert!(!text.contains(secret), "a secret reached the audit log");
    }

    // CSV, with the export itself recorded.
    let response = admin
        .client()
        .get(format!("{}/api/admin/audit?format=csv", server.url()))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()?
            .starts_with("text/csv")
    );
    let csv = response.text().await?;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("id,at,tenant_id,actor_kind,actor_id,action,subject_kind,subject_id,source_ip,detail")
    );
    assert!(csv.contains(",link_exchanged,visit,"), "{csv}");
    assert!(csv.contains(",audit_exported,"), "{csv}");

    // Another municipality's administrator sees none of it.
    let b = server.municipality("Anden Kommune").await?;
    let other_admin = server.account(&b, "Bo Admin", &[Role::Admin]).await?;
    let tab = server.signed_in(&other_admin).await?;
    let (_, theirs) = tab.get("/api/admin/audit").await?;
    let theirs = theirs["events"].as_array().unwrap();
    assert!(
        theirs.iter().all(|e| e["tenant_id"] == json!(b.tenant.id)),
        "{theirs:?}"
    );
    assert!(!theirs.iter().any(|e| e["action"] == "link_exchanged"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_create_accounts_and_change_roles_only_in_their_municipality() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let other = server.municipality("Anden Kommune").await?;
    let admin_user = server.account(&m, "Anne Admin", &[Role::Admin]).await?;
    let admin = server.signed_in(&admin_user).await?;

    let (status, body) = admin
        .post(
            "/api/admin/accounts",
            json!({"username": "ny-medarbejder", "password": PASSWORD,
                   "display_name": "Ny <b>Medarbejder</b>", "team": "Nord", "roles": ["ops"]}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["account"]["roles"], json!(["ops"]));
    let (status, body) = admin
        .post(
            "/api/admin/accounts",
            json!({"username": "NY-medarbejder", "password": PASSWORD,
                   "display_name": "x", "roles": ["staff"]}),
        )
        .await?;
    assert_eq!((status, body["code"].as_str()), (409, Some("duplicate")));
    let (status, _) = admin
        .post(
            "/api/admin/accounts",
            json!({"username": "x", "password": PASSWORD, "display_name": "x", "roles": []}),
        )
        .await?;
    assert_eq!(status, 400);

    // The new person logs in as ops: no visits.
    let person = Browser::new(&server.url())?;
    person.login("ny-medarbejder", PASSWORD).await?;
    assert_eq!(person.get("/api/visits").await?.0, 403);
    // Promoted to staff: the old session ends, a new login has the new role.
    let (status, body) = admin
        .put(
            "/api/admin/accounts/ny-medarbejder/roles",
            json!({"roles": ["staff", "team_lead"]}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        person.get("/api/me").await?.0,
        401,
        "sessions end on a role change"
    );
    person.login("ny-medarbejder", PASSWORD).await?;
    let (_, me) = person.get("/api/me").await?;
    assert_eq!(me["staff"]["roles"], json!(["staff", "team_lead"]));
    assert_eq!(
        me["staff"]["display_name"], "Ny <b>Medarbejder</b>",
        "stored as text"
    );
    assert_eq!(person.get("/api/visits").await?.0, 200);

    // Another municipality's account is out of reach; staff cannot administer.
    let (status, _) = admin
        .put(
            &format!("/api/admin/accounts/{}/roles", other.username),
            json!({"roles": ["admin"]}),
        )
        .await?;
    assert_eq!(status, 404);
    let (_, list) = admin.get("/api/admin/accounts").await?;
    let names: Vec<&str> = list["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["username"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"ny-medarbejder") && !names.contains(&other.username.as_str()));
    assert_eq!(person.get("/api/admin/accounts").await?.0, 403);
    Ok(())
}

#[tokio::test]
async fn planning_viewing_and_series_links_are_audited() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Revisionskommune").await?;
    let admin_user = server.account(&m, "Admin", &[Role::Admin]).await?;
    let staff = server.signed_in(&m.username).await?;

    let start = chrono::Utc::now() + chrono::Duration::days(2);
    let (status, body) = staff
        .post(
            "/api/visits",
            json!({"legal_basis": "sel_85", "citizen_id": m.citizen.id,
                   "planned_start": start, "duration_minutes": 15}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let visit = body["visit"]["id"].as_str().unwrap().to_owned();
    let (status, _) = staff.get(&format!("/api/visits/{visit}")).await?;
    assert_eq!(status, 200);
    let local = (start + chrono::Duration::days(1)).with_timezone(&skaerm_scheduling::TIME_ZONE);
    let (status, body) = staff
        .post(
            "/api/series",
            json!({"legal_basis": "sel_85", "citizen_id": m.citizen.id,
                   "start_local": local.format("%Y-%m-%dT%H:%M:00").to_string(),
                   "duration_minutes": 15, "rrule": "FREQ=WEEKLY;COUNT=2"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let series = body["series"]["id"].as_str().unwrap().to_owned();
    let (status, _) = staff
        .delete(&format!("/api/series/{series}/citizen-link"))
        .await?;
    assert_eq!(status, 204);

    let admin = server.signed_in(&admin_user).await?;
    let (status, export) = admin.get("/api/admin/audit").await?;
    assert_eq!(status, 200, "{export}");
    let events = export["events"].as_array().unwrap();
    let has = |action: &str, about: &str| {
        events.iter().any(|e| {
            e["action"] == action && serde_json::to_string(e).unwrap_or_default().contains(about)
        })
    };
    assert!(has("visit_created", &visit), "{export}");
    assert!(has("visit_viewed", &visit), "{export}");
    assert!(
        has("visit_created", &format!("series {series}")),
        "{export}"
    );
    assert!(has("link_revoked", &format!("series {series}")), "{export}");
    Ok(())
}
