//! Display names under attack (issue 14): control characters in staff and team names,
//! right-to-left overrides and invisible (zero-width only) guest names are refused with
//! `422 invalid` wherever a name enters over the API (one rule:
//! `skaerm_auth::display_name`; names from single sign-on are cleaned instead, unit-tested
//! in `skaerm_server::oidc`).

use anyhow::Result;
use serde_json::json;
use skaerm_auth::roles::Role;
use skaerm_e2e::server::{PASSWORD, TestServer};

const BAD_NAMES: [&str; 6] = [
    "Karen\u{7}Jensen",
    "Karen\u{1B}[2J",
    "Karen\nJensen",
    "\u{202E}nesneJ neraK",
    "\u{200B}\u{200B}",
    " \u{2060}\u{FEFF} ",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_bidi_and_invisible_staff_and_team_names_are_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let admin = server
        .signed_in(&server.account(&m, "Anne Admin", &[Role::Admin]).await?)
        .await?;
    let create = |n: usize, name: &str, team: &str| {
        json!({"username": format!("ny-{n}"), "password": PASSWORD,
               "display_name": name, "team": team, "roles": ["staff"]})
    };
    for (n, bad) in BAD_NAMES.iter().enumerate() {
        let (status, body) = admin
            .post("/api/admin/accounts", create(n, bad, "Nord"))
            .await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("invalid")),
            "{bad:?}: {body}"
        );
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("display name"),
            "{body}"
        );
        let (status, body) = admin
            .post("/api/admin/accounts", create(n, "Karen Jensen", bad))
            .await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("invalid")),
            "team {bad:?}: {body}"
        );
    }
    // An ordinary name (trimmed) and team are taken.
    let (status, body) = admin
        .post("/api/admin/accounts", create(99, "  Søren Ørsted ", "Nord"))
        .await?;
    assert_eq!(status, 201, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_bidi_and_invisible_guest_names_are_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let staff = server.signed_in(&m.username).await?;
    let path = format!("/api/visits/{}/guest-links", visit.id);
    for bad in BAD_NAMES {
        let (status, body) = staff
            .post(&path, json!({"display_name": bad, "kind": "relative"}))
            .await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("invalid")),
            "{bad:?}: {body}"
        );
    }
    let (status, body) = staff
        .post(
            &path,
            json!({"display_name": " Datter Ida ", "kind": "relative"}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["display_name"], "Datter Ida");
    Ok(())
}
