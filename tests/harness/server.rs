//! The real Skærm server, in-process, on ephemeral ports with its own temporary database, plus
//! an HTTP client that behaves like the web client (cookies, JSON).

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, Utc};
use clap::Parser;
use serde_json::{Value, json};
use skaerm_auth::roles::{Role, Roles};
use skaerm_scheduling::{Citizen, NewVisit, Staff, Tenant, Visit};
use skaerm_server::http::csrf::CSRF_HEADER;
use skaerm_server::ids::IdInto;
use skaerm_server::{Server, ServerConfig};
use std::path::PathBuf;

/// Password of the staff accounts a [`TestServer`] creates.
pub const PASSWORD: &str = "correct horse battery";

/// A running server and its temporary data directory.
pub struct TestServer {
    /// The server.
    pub server: Server,
    _data: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server without demo data.
    pub async fn start() -> Result<TestServer> {
        TestServer::start_with(&[]).await
    }

    /// Starts a server without demo data, with extra command-line flags (e.g.
    /// `["--join-limit-per-ip", "3"]`).
    pub async fn start_with(flags: &[&str]) -> Result<TestServer> {
        Self::start_adjusted(flags, |_| {}).await
    }

    /// Starts a server without demo data, with extra flags, after `adjust` has changed its
    /// configuration.
    pub async fn start_adjusted(
        flags: &[&str],
        adjust: impl FnOnce(&mut ServerConfig),
    ) -> Result<TestServer> {
        let data = tempfile::tempdir()?;
        let mut config = config(data.path().to_path_buf(), flags)?;
        adjust(&mut config);
        let server = Server::start(config).await?;
        Ok(TestServer {
            server,
            _data: data,
        })
    }

    /// Stops the server and starts a new one on the same data directory (a restart).
    pub async fn restart(self) -> Result<TestServer> {
        self.restart_with(|_| {}).await
    }

    /// Like [`TestServer::restart`], after `adjust` has changed the configuration.
    pub async fn restart_with(self, adjust: impl FnOnce(&mut ServerConfig)) -> Result<TestServer> {
        let mut config = config(self._data.path().to_path_buf(), &[])?;
        adjust(&mut config);
        self.server.shutdown().await;
        let server = Server::start(config).await?;
        Ok(TestServer {
            server,
            _data: self._data,
        })
    }

    /// Its data directory (the SQLite database is `skaerm.db` in it).
    pub fn data_dir(&self) -> &std::path::Path {
        self._data.path()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.http_addr())
    }

    /// `ws://127.0.0.1:<port>/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.server.http_addr())
    }

    /// Another person in `m`'s municipality with a local account holding `roles`; returns
    /// the username (password: [`PASSWORD`]).
    pub async fn account(&self, m: &Municipality, name: &str, roles: &[Role]) -> Result<String> {
        let services = &self.server.state().services;
        let staff = services.store.create_staff(m.tenant.id, name, None).await?;
        let username = format!("{}-{}", name.to_lowercase().replace(' ', "-"), staff.id);
        services
            .accounts
            .create_with_roles(
                &username,
                PASSWORD,
                staff.id.id_into(),
                m.tenant.id.id_into(),
                Roles::of(roles),
            )
            .await?;
        Ok(username)
    }

    /// A municipality with one staff member (with a local account) and one citizen.
    pub async fn municipality(&self, name: &str) -> Result<Municipality> {
        let services = &self.server.state().services;
        let tenant = services.store.create_tenant(name).await?;
        let staff = services
            .store
            .create_staff(tenant.id, &format!("Staff of {name}"), Some("Team"))
            .await?;
        let username = format!("staff-{}", staff.id);
        // The municipality's first staff member also leads the team (team reports).
        services
            .accounts
            .create_with_roles(
                &username,
                PASSWORD,
                staff.id.id_into(),
                tenant.id.id_into(),
                Roles::of(&[Role::Staff, Role::TeamLead]),
            )
            .await?;
        let citizen = services
            .store
            .create_citizen(tenant.id, &format!("Citizen of {name}"))
            .await?;
        Ok(Municipality {
            tenant,
            staff,
            username,
            citizen,
        })
    }

    /// Another staff member of `m`'s municipality, with a local account and a citizen of their
    /// own, as a [`Municipality`] (same tenant): their visits never collide with `m.staff`'s
    /// under the double-booking rule.
    pub async fn colleague(&self, m: &Municipality, name: &str) -> Result<Municipality> {
        let services = &self.server.state().services;
        let staff = services
            .store
            .create_staff(m.tenant.id, name, Some("Team"))
            .await?;
        let username = format!("staff-{}", staff.id);
        services
            .accounts
            .create(
                &username,
                PASSWORD,
                staff.id.id_into(),
                m.tenant.id.id_into(),
            )
            .await?;
        let citizen = services
            .store
            .create_citizen(m.tenant.id, &format!("Citizen of {name}"))
            .await?;
        Ok(Municipality {
            tenant: m.tenant.clone(),
            staff,
            username,
            citizen,
        })
    }

    /// Plans a §85 visit between the municipality's staff member and citizen (refused with
    /// `StoreError::Conflict` when it overlaps another of the staff member's visits).
    pub async fn visit(
        &self,
        m: &Municipality,
        planned_start: DateTime<Utc>,
        minutes: u32,
    ) -> Result<Visit> {
        Ok(self
            .server
            .state()
            .services
            .store
            .create_visit(NewVisit::simple(
                m.tenant.id,
                m.staff.id,
                m.citizen.id,
                planned_start,
                minutes,
            ))
            .await?)
    }

    /// A visit starting in five minutes (its citizen link is open).
    pub async fn visit_soon(&self, m: &Municipality) -> Result<Visit> {
        self.visit(m, Utc::now() + Duration::minutes(5), 15).await
    }
}

/// The flags a test server runs with, parsed like the binary's (so new settings get their
/// defaults without touching the harness).
fn config(data_dir: PathBuf, extra: &[&str]) -> Result<ServerConfig> {
    let data_dir = data_dir.display().to_string();
    let mut args = vec![
        "skaerm",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
        "--udp-port",
        "0",
        "--udp-bind-ip",
        "127.0.0.1",
        "--announce-ip",
        "127.0.0.1",
        "--link-opens-before-minutes",
        "15",
        "--link-closes-after-minutes",
        "0",
        "--no-demo",
        // Two workers, so the tests run the multi-worker relay the production default uses on a
        // two-core host (rooms pinned to workers, one port each).
        "--media-workers",
        "2",
        // Visits live at a restart are closed at once (tests of the rejoin grace set their own).
        "--rejoin-grace-secs",
        "0",
        "--max-participants",
        "6",
    ];
    args.extend_from_slice(extra);
    Ok(ServerConfig::try_parse_from(args)?)
}

/// One municipality's people.
pub struct Municipality {
    /// The municipality.
    pub tenant: Tenant,
    /// Its staff member.
    pub staff: Staff,
    /// The staff member's username (password: [`PASSWORD`]).
    pub username: String,
    /// Its citizen.
    pub citizen: Citizen,
}

/// An HTTP client with a cookie jar, like a browser tab.
pub struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    /// A fresh "browser" for the server at `base`.
    pub fn new(base: &str) -> Result<Browser> {
        skaerm_server::install_crypto_provider();
        Ok(Browser {
            client: reqwest::Client::builder().cookie_store(true).build()?,
            base: base.to_owned(),
        })
    }

    /// The underlying client (cookies included), for requests the web client would not make.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method` to `path` like the web client (writes carry the CSRF header and a JSON
    /// body when given); returns status and JSON body (`null` when there is none).
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if method != reqwest::Method::GET {
            request = request.header(CSRF_HEADER, "1");
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// POSTs JSON like the web client; returns status and body.
    pub async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    /// PUTs JSON like the web client; returns status and body.
    pub async fn put(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        self.request(reqwest::Method::PUT, path, Some(body)).await
    }

    /// DELETEs like the web client; returns status and body.
    pub async fn delete(&self, path: &str) -> Result<(u16, Value)> {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// GETs JSON; returns status and body.
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// GETs anything; returns status, content type and the body as text.
    pub async fn get_text(&self, path: &str) -> Result<(u16, String, String)> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok((status, content_type, response.text().await?))
    }

    /// Logs in as staff.
    pub async fn login(&self, username: &str, password: &str) -> Result<()> {
        let (status, body) = self
            .post(
                "/api/session",
                json!({"username": username, "password": password}),
            )
            .await?;
        if status != 200 {
            bail!("login failed: {status} {body}");
        }
        Ok(())
    }

    /// Starts a visit; returns the staff media token.
    pub async fn start_visit(&self, visit: &Visit) -> Result<String> {
        let (status, body) = self
            .post(&format!("/api/visits/{}/start", visit.id), json!({}))
            .await?;
        if status != 200 {
            bail!("start failed: {status} {body}");
        }
        Ok(body["media_token"].as_str().unwrap_or_default().to_owned())
    }

    /// Issues the citizen's link; returns its secret (the last path segment).
    pub async fn citizen_link(&self, visit: &Visit) -> Result<String> {
        let (status, body) = self
            .post(&format!("/api/visits/{}/citizen-link", visit.id), json!({}))
            .await?;
        if status != 200 {
            bail!("citizen link failed: {status} {body}");
        }
        let url = body["url"].as_str().unwrap_or_default();
        Ok(url.rsplit('/').next().unwrap_or_default().to_owned())
    }

    /// Exchanges a citizen link; returns status and body.
    pub async fn exchange_link(&self, secret: &str) -> Result<(u16, Value)> {
        self.post(&format!("/api/join/{secret}"), json!({})).await
    }

    /// As this staff member: issues `visit`'s citizen link and exchanges it in a fresh browser
    /// (the citizen's, no cookies); returns the citizen's media token.
    pub async fn citizen_token(&self, visit: &Visit) -> Result<String> {
        let secret = self.citizen_link(visit).await?;
        let (status, body) = Browser::new(self.base())?.exchange_link(&secret).await?;
        if status != 200 {
            bail!("link exchange failed: {status} {body}");
        }
        body["media_token"]
            .as_str()
            .map(str::to_owned)
            .context("the link exchange gave no media token")
    }
}
