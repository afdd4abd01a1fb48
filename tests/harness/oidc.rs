//! A real OpenID Provider on loopback: the npm package `oidc-provider`, run by
//! `tests/oidc/provider.mjs` under Node (its packages installed with `npm ci` when missing).
//! Tests skip with a clear message when `node` is not installed.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Client id and secret the test provider registers.
pub const CLIENT_ID: &str = "skaerm";
/// See [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "skaerm-test-secret";

/// The running provider; killed on drop.
pub struct TestProvider {
    _child: Child,
    /// Its issuer URL (`http://127.0.0.1:<port>`).
    pub issuer: String,
    http: reqwest::Client,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

impl TestProvider {
    /// Starts the provider; `None` (and a message) when Node is missing.
    pub async fn start() -> Result<Option<TestProvider>> {
        skaerm_server::install_crypto_provider();
        let node = Command::new("node").arg("--version").output().await;
        if !node.is_ok_and(|o| o.status.success()) {
            eprintln!(
                "SKIPPED: node is not installed; the OIDC tests need it to run oidc-provider"
            );
            return Ok(None);
        }
        install_packages().await?;
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .current_dir(dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting tests/oidc/provider.mjs")?;
        let stdout = child.stdout.take().context("provider stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let issuer = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(issuer) = line.strip_prefix("issuer ") {
                    return Ok::<_, anyhow::Error>(issuer.trim().to_owned());
                }
            }
            bail!("the provider exited before listening")
        })
        .await
        .context("waiting for the provider")??;
        // Keep draining its stdout so it never blocks.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Some(TestProvider {
            _child: child,
            issuer,
            http: reqwest::Client::new(),
        }))
    }

    /// Calls a test control (`/test/...`); returns its JSON.
    pub async fn control(&self, path_and_query: &str) -> Result<serde_json::Value> {
        let response = self
            .http
            .post(format!("{}{path_and_query}", self.issuer))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("provider control {path_and_query}: {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// A provider file for Skærm with this provider as `id`, for `tenant`.
    pub fn config_json(&self, id: &str, tenant: uuid::Uuid) -> serde_json::Value {
        serde_json::json!([{
            "id": id,
            "display_name": "Test IdP",
            "issuer": self.issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "tenant_id": tenant,
            "roles_claim": "skaerm_roles",
            "role_map": {
                "Skaerm.Staff": "staff",
                "Skaerm.Lead": "team_lead",
                "Skaerm.Ops": "ops",
                "Skaerm.Admin": "admin"
            }
        }])
    }
}

/// Installs tests/oidc's npm packages when missing. Tests run in parallel processes, so each
/// installs into a staging folder of its own and moves the finished `node_modules` into place;
/// a marker written last says the folder is complete.
async fn install_packages() -> Result<()> {
    let ready = dir().join("node_modules/.skaerm-installed");
    if ready.exists() {
        return Ok(());
    }
    let staging = dir().join(format!(".install-{}", std::process::id()));
    std::fs::create_dir_all(&staging)?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(dir().join(file), staging.join(file))
            .with_context(|| format!("copying tests/oidc/{file}"))?;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&staging)
        .status()
        .await
        .context("running npm ci for tests/oidc")?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        bail!("npm ci for tests/oidc failed");
    }
    std::fs::write(staging.join("node_modules/.skaerm-installed"), b"")?;
    let target = dir().join("node_modules");
    if std::fs::rename(staging.join("node_modules"), &target).is_err() && !ready.exists() {
        // A half-installed folder from an interrupted run: replace it.
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(staging.join("node_modules"), &target)
            .context("moving tests/oidc/node_modules into place")?;
    }
    let _ = std::fs::remove_dir_all(&staging);
    Ok(())
}
