//! The attack suite: every way into a visit or a staff API that must stay shut, each refusal
//! its own test, over real HTTP and WebSocket against the in-process server.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::{Result, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{Value, json};
use skaerm_auth::keys::{KeySet, SigningKeyPair};
use skaerm_auth::roles::Role;
use skaerm_auth::tokens::{MediaGrantRequest, MediaRole, TokenService};
use skaerm_e2e::participant::{JoinOutcome, Participant};
use skaerm_e2e::server::{Browser, Municipality, PASSWORD, TestServer};
use skaerm_e2e::setup::AUDIO_AND_VIDEO as BOTH;
use skaerm_scheduling::Visit;
use skaerm_server::http::csrf::CSRF_HEADER;
use skaerm_server::ids::IdInto;

/// Joins with `token` and returns the refusal code; fails the test when admitted.
async fn refusal(server: &TestServer, token: &str, room: Option<&Visit>) -> Result<String> {
    match Participant::join(&server.ws_url(), token, BOTH, room.map(|v| v.id.id_into())).await? {
        JoinOutcome::Refused { code, .. } => Ok(code),
        JoinOutcome::Joined(_) => bail!("the token was admitted"),
    }
}

/// A citizen media token for `visit`, signed with the server's own key at `at`.
fn citizen_token(
    server: &TestServer,
    m: &Municipality,
    visit: &Visit,
    at: DateTime<Utc>,
) -> String {
    server
        .sign_citizen_token(m, visit, "Citizen", None, at)
        .unwrap()
}

/// A municipality, a visit open to its citizen, and a valid citizen token for it (from the
/// real link exchange).
async fn setup(server: &TestServer) -> Result<(Municipality, Visit, String)> {
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let staff = Browser::new(&server.url())?;
    staff.login(&m.username, PASSWORD).await?;
    let token = staff.citizen_token(&visit).await?;
    Ok((m, visit, token))
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_citizen_token_is_admitted() -> Result<()> {
    // The control for the refusals below: the same setup, untampered, gets in.
    let server = TestServer::start().await?;
    let (_, visit, token) = setup(&server).await?;
    match Participant::join(&server.ws_url(), &token, BOTH, Some(visit.id.id_into())).await? {
        JoinOutcome::Joined(_) => Ok(()),
        JoinOutcome::Refused { code, .. } => bail!("refused: {code}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_signature_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let (_, visit, token) = setup(&server).await?;
    // Claims changed to another participant, the original signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["role"] = json!("host");
    let forged = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
    assert_eq!(
        refusal(&server, &forged, Some(&visit)).await?,
        "token_invalid"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alg_none_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let (_, visit, token) = setup(&server).await?;
    let mut header = header_of(&token);
    header["alg"] = json!("none");
    let claims = token.split('.').nth(1).unwrap();
    let forged = format!("{}.{claims}.", b64(&header));
    assert_eq!(
        refusal(&server, &forged, Some(&visit)).await?,
        "token_invalid"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kid_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let (m, visit, _) = setup(&server).await?;
    // A well-formed EdDSA token with the right claims, signed by a key the server lacks.
    let attacker = TokenService::new(KeySet::new(SigningKeyPair::generate()?.0), "skaerm");
    let token = attacker.issue_media(
        &MediaGrantRequest {
            participant: m.citizen.id.id_into(),
            visit: visit.id.id_into(),
            tenant: m.tenant.id.id_into(),
            role: MediaRole::Guest,
            name: "x".into(),
            answered_call: None,
            issued_on: None,
        },
        Utc::now(),
    )?;
    assert_ne!(
        header_of(&token)["kid"].as_str(),
        Some(server.server.state().services.tokens.active_kid().as_str())
    );
    assert_eq!(
        refusal(&server, &token, Some(&visit)).await?,
        "token_invalid"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let (m, visit, _) = setup(&server).await?;
    let token = citizen_token(
        &server,
        &m,
        &visit,
        Utc::now() - ChronoDuration::minutes(11),
    );
    assert_eq!(
        refusal(&server, &token, Some(&visit)).await?,
        "token_expired"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_yet_valid_token_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let (m, visit, _) = setup(&server).await?;
    let token = citizen_token(&server, &m, &visit, Utc::now() + ChronoDuration::minutes(2));
    assert_eq!(
        refusal(&server, &token, Some(&visit)).await?,
        "token_expired"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_visit_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let (m, _, token) = setup(&server).await?;
    // Another visit at the same time (a colleague's: one staff member cannot be double-booked).
    let colleague = server.colleague(&m, "Kollega").await?;
    let other = server.visit_soon(&colleague).await?;
    assert_eq!(refusal(&server, &token, Some(&other)).await?, "forbidden");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_another_tenant_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let (a, visit_a, _) = setup(&server).await?;
    let b = server.municipality("Anden Kommune").await?;
    // Signed by the server itself, but naming municipality B for A's visit.
    let token = server.server.state().services.tokens.issue_media(
        &MediaGrantRequest {
            participant: a.citizen.id.id_into(),
            visit: visit_a.id.id_into(),
            tenant: b.tenant.id.id_into(),
            role: MediaRole::Guest,
            name: "x".into(),
            answered_call: None,
            issued_on: None,
        },
        Utc::now(),
    )?;
    assert_eq!(refusal(&server, &token, Some(&visit_a)).await?, "forbidden");
    // And B's staff cannot see or act on A's visit through the API.
    let tab = Browser::new(&server.url())?;
    tab.login(&b.username, PASSWORD).await?;
    let (status, _) = tab.get(&format!("/api/visits/{}", visit_a.id)).await?;
    assert_eq!(status, 404);
    let (status, _) = tab
        .post(&format!("/api/visits/{}/start", visit_a.id), json!({}))
        .await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_link_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let staff = Browser::new(&server.url())?;
    staff.login(&m.username, PASSWORD).await?;
    let revoked = staff.citizen_link(&visit).await?;
    let current = staff.citizen_link(&visit).await?;
    let citizen = Browser::new(&server.url())?;
    let (status, body) = citizen.exchange_link(&revoked).await?;
    assert_eq!((status, body["code"].as_str()), (404, Some("unknown_link")));
    let (status, _) = citizen.exchange_link(&current).await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_outside_its_window_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let staff = Browser::new(&server.url())?;
    staff.login(&m.username, PASSWORD).await?;
    let citizen = Browser::new(&server.url())?;
    let early = server
        .visit(&m, Utc::now() + ChronoDuration::minutes(40), 15)
        .await?;
    let secret = staff.citizen_link(&early).await?;
    let (status, body) = citizen.exchange_link(&secret).await?;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_yet_open")));
    let late = server
        .visit(&m, Utc::now() - ChronoDuration::minutes(30), 15)
        .await?;
    let secret = staff.citizen_link(&late).await?;
    let (status, body) = citizen.exchange_link(&secret).await?;
    assert_eq!((status, body["code"].as_str()), (410, Some("link_expired")));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_without_csrf_protection_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let tab = Browser::new(&server.url())?;
    tab.login(&m.username, PASSWORD).await?;
    let start = format!("{}/api/visits/{}/start", server.url(), visit.id);

    // Cookie present, custom header missing: what a forged cross-site form would send.
    let response = tab.client().post(&start).json(&json!({})).send().await?;
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(response.json::<Value>().await?["code"], "csrf");
    // The header, but from another origin; or the browser itself says cross-site.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = tab
            .client()
            .post(&start)
            .header(CSRF_HEADER, "1")
            .header(name, value)
            .json(&json!({}))
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 403, "{name}: {value}");
    }
    // Login CSRF: a login without the header.
    let response = tab
        .client()
        .post(format!("{}/api/session", server.url()))
        .json(&json!({"username": m.username, "password": PASSWORD}))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 403);
    // Nothing happened: the visit is still only ready (its start is minutes away), not in
    // progress. With the header and our origin it works.
    let (_, body) = tab.get(&format!("/api/visits/{}", visit.id)).await?;
    assert_eq!(body["visit"]["status"], "ready");
    let response = tab
        .client()
        .post(&start)
        .header(CSRF_HEADER, "1")
        .header("origin", server.url())
        .header("sec-fetch-site", "same-origin")
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_token_cannot_call_a_staff_api() -> Result<()> {
    let server = TestServer::start().await?;
    let (_, visit, token) = setup(&server).await?;
    let client = reqwest::Client::new();
    for path in [
        "/api/visits".to_owned(),
        format!("/api/visits/{}", visit.id),
        "/api/me".into(),
    ] {
        let url = format!("{}{path}", server.url());
        let as_cookie = client
            .get(&url)
            .header("cookie", format!("skaerm_session={token}"))
            .send()
            .await?;
        assert_eq!(
            as_cookie.status().as_u16(),
            401,
            "{path} with the token as cookie"
        );
        let as_bearer = client.get(&url).bearer_auth(&token).send().await?;
        assert_eq!(
            as_bearer.status().as_u16(),
            401,
            "{path} with the token as bearer"
        );
    }
    let response = client
        .post(format!("{}/api/visits/{}/start", server.url(), visit.id))
        .header("cookie", format!("skaerm_session={token}"))
        .header(CSRF_HEADER, "1")
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_cannot_read_citizen_data() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    for roles in [&[Role::Ops][..], &[Role::Admin], &[Role::Ops, Role::Admin]] {
        let username = server.account(&m, "Olga Drift", roles).await?;
        let tab = Browser::new(&server.url())?;
        tab.login(&username, PASSWORD).await?;
        let (status, body) = tab.get("/api/me").await?;
        assert_eq!(status, 200);
        assert_eq!(
            body["staff"]["roles"].as_array().map(Vec::len),
            Some(roles.len())
        );
        let (status, body) = tab.get("/api/visits").await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("forbidden_role"))
        );
        let (status, body) = tab.get(&format!("/api/visits/{}", visit.id)).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("forbidden_role"))
        );
        assert!(!body.to_string().contains("Citizen of"), "{body}");
        let (status, _) = tab
            .post(&format!("/api/visits/{}/citizen-link", visit.id), json!({}))
            .await?;
        assert_eq!(status, 403);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_brute_force_per_ip_gets_429_with_retry_after() -> Result<()> {
    let server = TestServer::start_with(&["--join-limit-per-ip", "5"]).await?;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..7 {
        // Guesses shaped like real secrets (27 base64url characters).
        let guess = format!("{i:0>27}");
        let response = client
            .post(format!("{}/api/join/{guess}", server.url()))
            .send()
            .await?;
        statuses.push(response.status().as_u16());
        if response.status().as_u16() == 429 {
            retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
        }
    }
    assert_eq!(statuses, [404, 404, 404, 404, 404, 429, 429]);
    let retry_after = retry_after.unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_brute_force_per_link_gets_429_while_other_links_work() -> Result<()> {
    let server =
        TestServer::start_with(&["--join-limit-per-link", "3", "--join-limit-per-ip", "100"])
            .await?;
    let m = server.municipality("Testkommune").await?;
    let staff = Browser::new(&server.url())?;
    staff.login(&m.username, PASSWORD).await?;
    let hammered = staff.citizen_link(&server.visit_soon(&m).await?).await?;
    // The other link: a colleague's visit at the same time (no double-booking of one person).
    let colleague = server.colleague(&m, "Kollega").await?;
    let colleague_tab = Browser::new(&server.url())?;
    colleague_tab.login(&colleague.username, PASSWORD).await?;
    let other = colleague_tab
        .citizen_link(&server.visit_soon(&colleague).await?)
        .await?;
    let citizen = Browser::new(&server.url())?;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(citizen.exchange_link(&hammered).await?.0);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    let response = citizen
        .client()
        .post(format!("{}/api/join/{hammered}", server.url()))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(citizen.exchange_link(&other).await?.0, 200);
    Ok(())
}

/// Logs in without a cookie store; returns the `name=value` of both cookies.
async fn raw_login(server: &TestServer, username: &str) -> Result<(String, String)> {
    let response = reqwest::Client::new()
        .post(format!("{}/api/session", server.url()))
        .header(CSRF_HEADER, "1")
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    let mut access = None;
    let mut refresh = None;
    for value in response.headers().get_all("set-cookie") {
        let value = value.to_str()?;
        assert!(
            value.contains("HttpOnly") && value.contains("SameSite=Strict"),
            "{value}"
        );
        let pair = value.split(';').next().unwrap_or_default().to_owned();
        if pair.starts_with("skaerm_session=") {
            access = Some(pair);
        } else if pair.starts_with("skaerm_refresh=") {
            assert!(value.contains("Path=/api/session"), "{value}");
            refresh = Some(pair);
        }
    }
    Ok((access.unwrap(), refresh.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_session_is_refused_and_cannot_be_refreshed() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let (access, refresh) = raw_login(&server, &m.username).await?;
    let client = reqwest::Client::new();
    let me = || {
        client
            .get(format!("{}/api/me", server.url()))
            .header("cookie", access.clone())
            .send()
    };
    assert_eq!(me().await?.status().as_u16(), 200);
    // Refresh works while the session lives, and spends the old secret.
    let refreshed = client
        .post(format!("{}/api/session/refresh", server.url()))
        .header("cookie", refresh.clone())
        .header(CSRF_HEADER, "1")
        .send()
        .await?;
    assert_eq!(refreshed.status().as_u16(), 200);
    let new_refresh = refreshed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("skaerm_refresh="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let replay = client
        .post(format!("{}/api/session/refresh", server.url()))
        .header("cookie", refresh.clone())
        .header(CSRF_HEADER, "1")
        .send()
        .await?;
    assert_eq!(
        replay.status().as_u16(),
        401,
        "a spent refresh secret is refused"
    );

    let logout = client
        .delete(format!("{}/api/session", server.url()))
        .header("cookie", access.clone())
        .header(CSRF_HEADER, "1")
        .send()
        .await?;
    assert_eq!(logout.status().as_u16(), 204);
    // The access token has not expired, but its session is revoked.
    let after = me().await?;
    assert_eq!(after.status().as_u16(), 401);
    let refresh_after = client
        .post(format!("{}/api/session/refresh", server.url()))
        .header("cookie", new_refresh)
        .header(CSRF_HEADER, "1")
        .send()
        .await?;
    assert_eq!(refresh_after.status().as_u16(), 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_session_cookie_is_refused() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let (access, _) = raw_login(&server, &m.username).await?;
    let token = access.trim_start_matches("skaerm_session=");
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["roles"] = json!(["admin", "staff"]);
    let mut none_header = header_of(token);
    none_header["alg"] = json!("none");
    let client = reqwest::Client::new();
    for forged in [
        format!("{}.{}.{}", parts[0], b64(&claims), parts[2]),
        format!("{}.{}.", b64(&none_header), b64(&claims)),
    ] {
        let response = client
            .get(format!("{}/api/me", server.url()))
            .header("cookie", format!("skaerm_session={forged}"))
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 401);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_on_another_node_is_picked_up_and_old_tokens_still_verify() -> Result<()> {
    // Two nodes on one database.
    let a = TestServer::start().await?;
    let url = format!("sqlite://{}/skaerm.db", a.data_dir().display());
    let b = TestServer::start_with(&["--database-url", &url]).await?;
    let m = a.municipality("Testkommune").await?;
    let (old_access, _) = raw_login(&a, &m.username).await?;

    // Node A rotates; node B still holds only the old key.
    let services = &a.server.state().services;
    services.tokens.replace_keys(services.keys.rotate().await?);
    let (new_access, _) = raw_login(&a, &m.username).await?;
    let kid = |cookie: &str| header_of(cookie.trim_start_matches("skaerm_session="))["kid"].clone();
    assert_ne!(kid(&old_access), kid(&new_access));

    let client = reqwest::Client::new();
    for (node, cookie) in [(&b, &new_access), (&b, &old_access), (&a, &old_access)] {
        let response = client
            .get(format!("{}/api/me", node.url()))
            .header("cookie", cookie.clone())
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 200);
    }
    assert_eq!(
        b.server.state().services.tokens.active_kid(),
        a.server.state().services.tokens.active_kid(),
        "node B now signs with the new key too"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_gets_429_per_account_and_per_ip() -> Result<()> {
    let server =
        TestServer::start_with(&["--login-limit-per-user", "3", "--login-limit-per-ip", "6"])
            .await?;
    let m = server.municipality("Testkommune").await?;
    let other = server.account(&m, "Jonas Holm", &[Role::Staff]).await?;
    let tab = Browser::new(&server.url())?;
    let attempt = |username: String, password: &'static str| {
        let tab = &tab;
        async move {
            tab.post(
                "/api/session",
                json!({"username": username, "password": password}),
            )
            .await
            .map(|(status, _)| status)
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(attempt(m.username.clone(), "wrong password").await?);
    }
    assert_eq!(statuses, [401, 401, 401, 429], "per account");
    // Even the right password waits now.
    assert_eq!(attempt(m.username.clone(), PASSWORD).await?, 429);
    // Another account from the same address still works, until the address's limit.
    assert_eq!(attempt(other.clone(), PASSWORD).await?, 200);
    assert_eq!(attempt(other.clone(), PASSWORD).await?, 429, "per address");
    Ok(())
}

async fn guess_statuses(server: &TestServer, forwarded_for: &str, n: usize) -> Result<Vec<u16>> {
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..n {
        let response = client
            .post(format!("{}/api/join/{:0>27}", server.url(), i))
            .header("x-forwarded-for", forwarded_for)
            .send()
            .await?;
        statuses.push(response.status().as_u16());
    }
    Ok(statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() -> Result<()> {
    // Without a trusted proxy, a client rotating X-Forwarded-For still hits its own limit.
    let direct = TestServer::start_with(&["--join-limit-per-ip", "2"]).await?;
    assert_eq!(guess_statuses(&direct, "192.0.2.1", 2).await?, [404, 404]);
    assert_eq!(
        guess_statuses(&direct, "192.0.2.2", 1).await?,
        [429],
        "spoofing does not help"
    );

    // Behind a trusted proxy (here: the test itself on loopback), each citizen has their own.
    let proxied =
        TestServer::start_with(&["--join-limit-per-ip", "2", "--trusted-proxy", "127.0.0.1"])
            .await?;
    assert_eq!(
        guess_statuses(&proxied, "192.0.2.1", 3).await?,
        [404, 404, 429]
    );
    assert_eq!(guess_statuses(&proxied, "192.0.2.2", 1).await?, [404]);
    // The audit log records the forwarded address.
    let m = proxied.municipality("Testkommune").await?;
    let visit = proxied.visit_soon(&m).await?;
    let staff = Browser::new(&proxied.url())?;
    staff.login(&m.username, PASSWORD).await?;
    let secret = staff.citizen_link(&visit).await?;
    let response = reqwest::Client::new()
        .post(format!("{}/api/join/{secret}", proxied.url()))
        .header("x-forwarded-for", "198.51.100.23")
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    let events = proxied
        .server
        .state()
        .services
        .audit
        .list(
            m.tenant.id.id_into(),
            Utc::now() - ChronoDuration::minutes(1),
            Utc::now() + ChronoDuration::minutes(1),
            100,
        )
        .await?;
    let exchange = events
        .iter()
        .find(|e| e.action == skaerm_auth::audit::AuditAction::LinkExchanged)
        .unwrap();
    assert_eq!(exchange.source_ip.as_deref(), Some("198.51.100.23"));
    Ok(())
}
#[path = "attacks/access.rs"]
mod access;
#[path = "attacks/display_names.rs"]
mod display_names;
#[path = "attacks/edge.rs"]
mod edge;
#[path = "attacks/relay.rs"]
mod relay;
#[path = "attacks/tablets.rs"]
mod tablets;
