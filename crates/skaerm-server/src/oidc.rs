//! Staff single sign-on with OpenID Connect: the authorization-code flow with PKCE against any
//! standard provider (Entra ID, Keycloak, or a broker in front of SAML-only providers).
//!
//! - providers come from a JSON file (`--oidc-config`), each bound to one municipality;
//! - discovery and the provider's JWKS are fetched on first use and cached for an hour; an ID
//!   token naming a `kid` the cache lacks triggers one fresh fetch (key rotation);
//! - `iss`, `aud`, `exp`, signature (RS256/PS256/ES256/EdDSA only) and `nonce` are checked by
//!   the `openidconnect` crate; `state`, PKCE verifier and nonce travel in a signed, HttpOnly,
//!   ten-minute cookie, binding the login to the browser that started it on any node;
//! - roles come from a configurable claim, mapped through the provider's `role_map`.
//!
//! The HTTP side is `http/sso.rs`.

use anyhow::Context;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse,
};
use serde::Deserialize;
use skaerm_auth::display_name;
use skaerm_auth::roles::{Role, Roles};
use skaerm_auth::tokens::TokenService;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long discovery and JWKS are cached.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// How long a started login may take (minutes).
pub const FLOW_MINUTES: i64 = 10;
/// Timeout of every request to a provider.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// One provider, as configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// URL-safe id (`[a-z0-9-]`), used in paths.
    pub id: String,
    /// Shown on the login page ("Odense Kommune").
    pub display_name: String,
    /// The issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret, if a confidential client (or use `client_secret_env`).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// Environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The municipality everyone logging in here belongs to.
    pub tenant_id: Uuid,
    /// The claim holding roles (a string or an array of strings).
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Provider role value → Skærm role (`staff`, `team_lead`, `ops`, `admin`). Empty: the
    /// claim's values are Skærm role codes.
    #[serde(default)]
    pub role_map: HashMap<String, String>,
    /// Extra scopes beyond `openid` (default `profile`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_roles_claim() -> String {
    "roles".into()
}

fn default_scopes() -> Vec<String> {
    vec!["profile".into()]
}

/// Reads and checks the provider file.
pub fn load_config(path: &Path) -> anyhow::Result<Vec<ProviderConfig>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let providers: Vec<ProviderConfig> =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    for p in &providers {
        anyhow::ensure!(
            !p.id.is_empty()
                && p.id.len() <= 64
                && p.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "provider id {:?} must be 1–64 of [a-z0-9-]",
            p.id
        );
        IssuerUrl::new(p.issuer.clone()).with_context(|| format!("issuer of {}", p.id))?;
        for role in p.role_map.values() {
            anyhow::ensure!(
                Role::from_code(role).is_some(),
                "provider {}: unknown role {role:?} in role_map",
                p.id
            );
        }
    }
    Ok(providers)
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// No such provider.
    #[error("unknown provider")]
    UnknownProvider,
    /// The provider could not be reached or answered nonsense.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The callback's state is unknown, expired, or not this browser's.
    #[error("unknown or expired login")]
    BadState,
    /// The ID token was refused: `reason` is `audience`, `issuer`, `expired`, `nonce`,
    /// `signature`, `token_request` or `other`.
    #[error("ID token refused ({reason}): {cause}")]
    TokenRefused {
        /// Short machine-readable reason.
        reason: &'static str,
        /// The library's message (logged, not shown).
        cause: String,
    },
    /// The person holds no role that maps to a Skærm role.
    #[error("no Skærm role")]
    NoRole,
}

/// The display name of an SSO login: the provider's `name`, else `preferred_username`, else
/// the subject, each with forbidden characters removed (see [`skaerm_auth::display_name`]);
/// the first that leaves something visible.
pub fn sso_display_name(name: Option<String>, username: Option<String>, subject: &str) -> String {
    name.into_iter()
        .chain(username)
        .chain([subject.to_owned()])
        .find_map(|n| display_name::sanitise(&n, display_name::MAX_STAFF_NAME_CHARS))
        .unwrap_or_else(|| "SSO".to_owned())
}

/// A verified login.
#[derive(Debug, Clone)]
pub struct SsoLogin {
    /// The issuer.
    pub issuer: String,
    /// The subject at the issuer.
    pub subject: String,
    /// A display name, cleaned ([`sso_display_name`]).
    pub name: String,
    /// Mapped roles (never empty).
    pub roles: Roles,
    /// The municipality.
    pub tenant_id: Uuid,
    /// The provider's id.
    pub provider: String,
}

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

struct Cached {
    client: Client,
    fetched: Instant,
}

/// What a login in flight must remember, kept in the browser as a signed token (so any node
/// can finish what another started).
#[derive(Debug, serde::Serialize, Deserialize)]
struct Flow {
    provider: String,
    state: String,
    verifier: String,
    nonce: String,
}

/// The configured providers, their cached metadata and the logins in flight.
pub struct Sso {
    providers: Vec<ProviderConfig>,
    redirect_base: String,
    http: ProviderHttp,
    cache: tokio::sync::Mutex<HashMap<String, Cached>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl Sso {
    /// Providers redirecting back to `<public_url>/auth/oidc/<id>/callback`.
    pub fn new(providers: Vec<ProviderConfig>, public_url: &str) -> anyhow::Result<Sso> {
        let http = reqwest::Client::builder()
            // Following redirects from a provider invites SSRF; discovery needs none.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .context("building the OIDC HTTP client")?;
        Ok(Sso {
            providers,
            redirect_base: public_url.trim_end_matches('/').to_owned(),
            http: ProviderHttp(http),
            cache: tokio::sync::Mutex::new(HashMap::new()),
            fetches: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The configured providers.
    pub fn providers(&self) -> &[ProviderConfig] {
        &self.providers
    }

    fn provider(&self, id: &str) -> Result<&ProviderConfig, SsoError> {
        self.providers
            .iter()
            .find(|p| p.id == id)
            .ok_or(SsoError::UnknownProvider)
    }

    /// Our callback URL for a provider.
    pub fn redirect_uri(&self, id: &str) -> String {
        format!("{}/auth/oidc/{id}/callback", self.redirect_base)
    }

    /// How many times discovery and JWKS were fetched (all providers).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn fetch(&self, p: &ProviderConfig) -> Result<Client, SsoError> {
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let issuer =
            IssuerUrl::new(p.issuer.clone()).map_err(|e| SsoError::Unavailable(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| SsoError::Unavailable(format!("discovery: {e}")))?;
        let secret = match (&p.client_secret, &p.client_secret_env) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(var)) => std::env::var(var).ok(),
            (None, None) => None,
        };
        let redirect = RedirectUrl::new(self.redirect_uri(&p.id))
            .map_err(|e| SsoError::Unavailable(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(p.client_id.clone()),
            secret.map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// The cached client, fetched when missing, stale, or `refresh`.
    async fn client(&self, p: &ProviderConfig, refresh: bool) -> Result<Client, SsoError> {
        let mut cache = self.cache.lock().await;
        if !refresh
            && let Some(cached) = cache.get(&p.id)
            && cached.fetched.elapsed() < METADATA_TTL
        {
            return Ok(cached.client.clone());
        }
        let client = self.fetch(p).await?;
        cache.insert(
            p.id.clone(),
            Cached {
                client: client.clone(),
                fetched: Instant::now(),
            },
        );
        Ok(client)
    }

    /// Starts a login: returns the provider URL to send the browser to and the signed flow
    /// token to keep in the browser's cookie.
    pub async fn begin(
        &self,
        provider: &str,
        tokens: &TokenService,
    ) -> Result<(String, String), SsoError> {
        let p = self.provider(provider)?;
        let client = self.client(p, false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &p.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let flow = Flow {
            provider: p.id.clone(),
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
        };
        let flow = serde_json::to_value(&flow).map_err(|e| SsoError::Unavailable(e.to_string()))?;
        let token = tokens
            .issue_login_flow(
                &flow,
                chrono::Utc::now(),
                chrono::Duration::minutes(FLOW_MINUTES),
            )
            .map_err(|e| SsoError::Unavailable(e.to_string()))?;
        Ok((url.to_string(), token))
    }

    /// Finishes a login from the callback's `code` and `state`; `flow_token` is what the
    /// browser's cookie holds (a login it did not start, or one past ten minutes, is refused).
    pub async fn finish(
        &self,
        provider: &str,
        code: &str,
        state: &str,
        flow_token: Option<&str>,
        tokens: &TokenService,
    ) -> Result<SsoLogin, SsoError> {
        let p = self.provider(provider)?;
        let flow: Flow = flow_token
            .and_then(|token| tokens.verify_login_flow(token, chrono::Utc::now()).ok())
            .and_then(|value| serde_json::from_value(value).ok())
            .ok_or(SsoError::BadState)?;
        if flow.state != state || flow.provider != p.id {
            return Err(SsoError::BadState);
        }
        let pending_verifier = PkceCodeVerifier::new(flow.verifier);
        let pending_nonce = Nonce::new(flow.nonce);
        let client = self.client(p, false).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| SsoError::Unavailable(e.to_string()))?
            .set_pkce_verifier(pending_verifier)
            .request_async(&self.http)
            .await
            .map_err(|e| SsoError::TokenRefused {
                reason: "token_request",
                cause: e.to_string(),
            })?;
        let id_token = response.id_token().ok_or_else(|| SsoError::TokenRefused {
            reason: "other",
            cause: "no ID token".into(),
        })?;

        let verify = |client: &Client| {
            let verifier = client.id_token_verifier().set_allowed_algs(vec![
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::RsaSsaPssSha256,
                CoreJwsSigningAlgorithm::EcdsaP256Sha256,
                CoreJwsSigningAlgorithm::EdDsa,
            ]);
            id_token.claims(&verifier, &pending_nonce).map(|claims| {
                (
                    claims.issuer().to_string(),
                    claims.subject().to_string(),
                    claims
                        .name()
                        .and_then(|n| n.get(None))
                        .map(|n| n.to_string()),
                    claims.preferred_username().map(|u| u.to_string()),
                )
            })
        };
        let verified = match verify(&client) {
            // The provider rotated its keys: fetch the JWKS once more.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                tracing::info!(provider = %p.id, "ID token names an unknown key: refetching JWKS");
                verify(&self.client(p, true).await?)
            }
            other => other,
        };
        let (issuer, subject, name, username) = verified.map_err(|e| SsoError::TokenRefused {
            reason: match &e {
                ClaimsVerificationError::InvalidAudience(_) => "audience",
                ClaimsVerificationError::InvalidIssuer(_) => "issuer",
                ClaimsVerificationError::Expired(_) => "expired",
                ClaimsVerificationError::InvalidNonce(_) => "nonce",
                ClaimsVerificationError::SignatureVerification(_) => "signature",
                _ => "other",
            },
            cause: e.to_string(),
        })?;

        // The verified token's payload, for the configurable roles claim.
        let payload = id_token.to_string();
        let roles = roles_from(p, &payload).ok_or(SsoError::NoRole)?;
        Ok(SsoLogin {
            issuer,
            name: sso_display_name(name, username, &subject),
            subject,
            roles,
            tenant_id: p.tenant_id,
            provider: p.id.clone(),
        })
    }
}

/// The mapped roles in a verified JWT's payload; `None` when none maps.
fn roles_from(p: &ProviderConfig, jwt: &str) -> Option<Roles> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let values: Vec<&str> = match claims.get(&p.roles_claim)? {
        serde_json::Value::String(s) => s.split([' ', ',']).collect(),
        serde_json::Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => return None,
    };
    let roles: Vec<Role> = values
        .into_iter()
        .take(100)
        .filter_map(|value| {
            if p.role_map.is_empty() {
                Role::from_code(value)
            } else {
                p.role_map.get(value).and_then(|code| Role::from_code(code))
            }
        })
        .collect();
    let roles = Roles::of(&roles);
    (!roles.is_empty()).then_some(roles)
}

/// The HTTP client `openidconnect` talks to providers with.
#[derive(Clone)]
struct ProviderHttp(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for ProviderHttp {
    type Error = SsoHttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, SsoHttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Sends one request to a provider with reqwest (bodies capped at 1 MiB).
async fn send(
    client: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, SsoHttpError> {
    let (parts, body) = request.into_parts();
    let mut builder = client.request(parts.method, parts.uri.to_string());
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let response = builder.body(body).send().await?;
    let mut out = HttpResponse::new(Vec::new());
    *out.status_mut() = response.status();
    *out.headers_mut() = response.headers().clone();
    if response.content_length().is_some_and(|n| n > 1 << 20) {
        return Err(SsoHttpError::TooLarge);
    }
    let bytes = response.bytes().await?;
    if bytes.len() > 1 << 20 {
        return Err(SsoHttpError::TooLarge);
    }
    *out.body_mut() = bytes.to_vec();
    Ok(out)
}

/// A failed request to a provider.
#[derive(Debug, thiserror::Error)]
pub enum SsoHttpError {
    /// Transport failure.
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
    /// The answer was over 1 MiB.
    #[error("response too large")]
    TooLarge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sso_names_are_cleaned_and_fall_back_to_the_username() {
        assert_eq!(
            sso_display_name(Some("Karen\u{202E} Jensen\n".into()), None, "sub"),
            "Karen Jensen"
        );
        assert_eq!(
            sso_display_name(Some("\u{200B}\u{202E}".into()), Some("kaje".into()), "sub"),
            "kaje"
        );
        assert_eq!(sso_display_name(None, None, "sub-1"), "sub-1");
        assert_eq!(
            sso_display_name(None, Some("\u{0}".into()), "\u{200B}"),
            "SSO"
        );
    }

    fn provider(map: &[(&str, &str)]) -> ProviderConfig {
        ProviderConfig {
            id: "p".into(),
            display_name: "P".into(),
            issuer: "https://idp.example".into(),
            client_id: "skaerm".into(),
            client_secret: None,
            client_secret_env: None,
            tenant_id: Uuid::nil(),
            roles_claim: "groups".into(),
            role_map: map
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
            scopes: default_scopes(),
        }
    }

    fn jwt(claims: serde_json::Value) -> String {
        use base64::Engine;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.sig",
            b64(&serde_json::json!({"alg": "RS256"})),
            b64(&claims)
        )
    }

    #[test]
    fn roles_are_mapped_from_the_configured_claim() {
        let p = provider(&[("Skaerm.Lead", "team_lead"), ("Skaerm.Ops", "ops")]);
        let token = jwt(serde_json::json!({"groups": ["Skaerm.Lead", "Other", "Skaerm.Ops"]}));
        assert_eq!(
            roles_from(&p, &token),
            Some(Roles::of(&[Role::TeamLead, Role::Ops]))
        );
        let unmapped = jwt(serde_json::json!({"groups": ["admin"]}));
        assert_eq!(roles_from(&p, &unmapped), None, "only mapped values count");
        let other_claim = jwt(serde_json::json!({"roles": ["Skaerm.Ops"]}));
        assert_eq!(roles_from(&p, &other_claim), None);
        let direct = provider(&[]);
        let token = jwt(serde_json::json!({"groups": "staff admin"}));
        assert_eq!(
            roles_from(&direct, &token),
            Some(Roles::of(&[Role::Staff, Role::Admin]))
        );
        assert_eq!(roles_from(&direct, "garbage"), None);
    }
}
