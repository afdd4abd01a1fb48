//! Staff single sign-on against a real OpenID Provider (`oidc-provider` under Node) on
//! loopback: the authorization-code flow with PKCE through real redirects, roles mapped from a
//! claim, the tenant from configuration, a rotated provider key, and the refusals (another
//! audience, a login this browser did not start, no mapped role).

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::Result;
use serde_json::Value;
use skaerm_e2e::oidc::TestProvider;
use skaerm_e2e::server::TestServer;
use skaerm_scheduling::TenantId;
use uuid::Uuid;

struct Setup {
    provider: TestProvider,
    server: TestServer,
    tenant: Uuid,
    _dir: tempfile::TempDir,
}

/// A provider, and a server whose municipality logs in there; `None` when Node is missing.
async fn setup() -> Result<Option<Setup>> {
    let Some(provider) = TestProvider::start().await? else {
        return Ok(None);
    };
    let tenant = Uuid::new_v4();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("oidc.json");
    std::fs::write(&path, provider.config_json("testidp", tenant).to_string())?;
    let path = path.display().to_string();
    let server = TestServer::start_with(&["--oidc-config", &path]).await?;
    server
        .server
        .state()
        .services
        .store
        .create_tenant_with_id(TenantId(tenant), "SSO Kommune")
        .await?;
    provider
        .control(&format!(
            "/test/configure?redirect={}/auth/oidc/testidp/callback",
            server.url()
        ))
        .await?;
    Ok(Some(Setup {
        provider,
        server,
        tenant,
        _dir: dir,
    }))
}

/// A browser that follows redirects and keeps cookies, like a real one.
fn browser() -> Result<reqwest::Client> {
    skaerm_server::install_crypto_provider();
    Ok(reqwest::Client::builder().cookie_store(true).build()?)
}

/// Runs the whole redirect dance; returns the final status, URL and body.
async fn sso_login(s: &Setup, client: &reqwest::Client) -> Result<(u16, String, String)> {
    let response = client
        .get(format!("{}/auth/oidc/testidp/login", s.server.url()))
        .send()
        .await?;
    let status = response.status().as_u16();
    let url = response.url().to_string();
    Ok((status, url, response.text().await?))
}

async fn me(s: &Setup, client: &reqwest::Client) -> Result<(u16, Value)> {
    let response = client
        .get(format!("{}/api/me", s.server.url()))
        .send()
        .await?;
    Ok((
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_log_in_with_sso_and_get_mapped_roles_in_the_configured_tenant() -> Result<()> {
    let Some(s) = setup().await? else {
        return Ok(());
    };
    let providers: Value = reqwest::get(format!("{}/api/sso/providers", s.server.url()))
        .await?
        .json()
        .await?;
    assert_eq!(providers["providers"][0]["id"], "testidp");
    assert_eq!(
        providers["providers"][0]["login_url"],
        "/auth/oidc/testidp/login"
    );

    s.provider
        .control("/test/user?sub=lead-1&name=Lene%20Leder&roles=Skaerm.Lead,Skaerm.Staff,Unrelated")
        .await?;
    let client = browser()?;
    let (status, url, _) = sso_login(&s, &client).await?;
    assert_eq!(status, 200);
    assert_eq!(url, format!("{}/", s.server.url()), "back on the staff app");
    let (status, body) = me(&s, &client).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["staff"]["display_name"], "Lene Leder");
    assert_eq!(
        body["staff"]["roles"],
        serde_json::json!(["staff", "team_lead"])
    );
    assert_eq!(body["tenant"]["id"], serde_json::json!(s.tenant));
    let staff_id = body["staff"]["id"].clone();

    // The same subject logs in again as the same staff member.
    let again = browser()?;
    assert_eq!(sso_login(&s, &again).await?.0, 200);
    assert_eq!(me(&s, &again).await?.1["staff"]["id"], staff_id);

    // The login is in the audit log.
    let events = s
        .server
        .server
        .state()
        .services
        .audit
        .list(
            skaerm_auth::refs::TenantRef(s.tenant),
            chrono::Utc::now() - chrono::Duration::minutes(5),
            chrono::Utc::now() + chrono::Duration::minutes(1),
            100,
        )
        .await?;
    assert!(
        events
            .iter()
            .any(|e| e.detail.as_deref() == Some("oidc:testidp")),
        "{events:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_provider_key_is_fetched_and_honoured() -> Result<()> {
    let Some(s) = setup().await? else {
        return Ok(());
    };
    s.provider
        .control("/test/user?sub=ops-1&roles=Skaerm.Ops")
        .await?;
    let first = browser()?;
    assert_eq!(sso_login(&s, &first).await?.0, 200);
    assert_eq!(
        me(&s, &first).await?.1["staff"]["roles"],
        serde_json::json!(["ops"])
    );

    let sso = s.server.server.state().sso.clone().unwrap();
    assert_eq!(
        sso.fetches(),
        1,
        "discovery and JWKS fetched once, then cached"
    );
    let third = browser()?;
    assert_eq!(sso_login(&s, &third).await?.0, 200);
    assert_eq!(sso.fetches(), 1, "the cache serves a second login");

    // The provider replaces its signing key; Skærm's cached JWKS only knows the old one.
    let old = s.provider.control("/test/kid").await?["kid"].clone();
    let new = s.provider.control("/test/rotate").await?["kid"].clone();
    assert_ne!(old, new);
    let second = browser()?;
    let (status, _, body) = sso_login(&s, &second).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&s, &second).await?.0, 200);
    assert_eq!(
        sso.fetches(),
        2,
        "the unknown kid made Skærm fetch the JWKS again"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_for_another_audience_is_refused() -> Result<()> {
    let Some(s) = setup().await? else {
        return Ok(());
    };
    s.provider.control("/test/wrong-audience?on=1").await?;
    let client = browser()?;
    let (status, url, body) = sso_login(&s, &client).await?;
    assert_eq!(status, 401, "{url}: {body}");
    let body: Value = serde_json::from_str(&body)?;
    assert_eq!(body["code"], "sso_refused");
    assert_eq!(body["reason"], "audience", "{body}");
    assert_eq!(me(&s, &client).await?.0, 401);
    // The control: the same provider without tampering logs in.
    s.provider.control("/test/wrong-audience?on=0").await?;
    assert_eq!(sso_login(&s, &browser()?).await?.0, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_this_browser_did_not_start_is_refused() -> Result<()> {
    let Some(s) = setup().await? else {
        return Ok(());
    };
    // An attacker starts a login and stops at the callback (not following it) ...
    let attacker = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            if attempt.url().path().ends_with("/callback") {
                attempt.stop()
            } else {
                attempt.follow()
            }
        }))
        .build()?;
    let response = attacker
        .get(format!("{}/auth/oidc/testidp/login", s.server.url()))
        .send()
        .await?;
    let callback = response
        .headers()
        .get("location")
        .unwrap()
        .to_str()?
        .to_owned();
    assert!(
        callback.contains("code=") && callback.contains("state="),
        "{callback}"
    );
    // ... and makes the victim's browser open it (login CSRF): no state cookie, refused.
    let victim = browser()?;
    let response = victim.get(&callback).send().await?;
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.json::<Value>().await?["code"], "sso_state");
    assert_eq!(me(&s, &victim).await?.0, 401);
    // A made-up flow cookie is no better.
    let forged = reqwest::Client::new()
        .get(&callback)
        .header("cookie", "skaerm_oidc=eyJhbGciOiJub25lIn0.e30.")
        .send()
        .await?;
    assert_eq!(forged.status().as_u16(), 400);
    // Replaying the used state later is refused too, even with the cookie.
    let replay = attacker.get(&callback).send().await?;
    assert_eq!(
        replay.status().as_u16(),
        200,
        "the attacker's own browser completes"
    );
    let again = attacker.get(&callback).send().await?;
    assert_eq!(again.status().as_u16(), 400);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_without_a_mapped_role_is_refused() -> Result<()> {
    let Some(s) = setup().await? else {
        return Ok(());
    };
    s.provider
        .control("/test/user?sub=nobody&roles=Some.Other.App")
        .await?;
    let client = browser()?;
    let (status, _, body) = sso_login(&s, &client).await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body)?["code"], "no_role");
    assert_eq!(me(&s, &client).await?.0, 401);
    Ok(())
}
