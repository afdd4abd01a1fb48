//! Staff single sign-on over HTTP (see [`crate::oidc`]): the provider list for the login page,
//! the redirect to the provider, and the callback that opens a session.

use crate::http::client_ip::ClientIp;
use crate::http::problem::{ErrorCode, Problem};
use crate::http::session::open_session;
use crate::ids::IdInto;
use crate::oidc::{SsoError, SsoLogin};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use skaerm_auth::audit::{AuditAction, AuditEvent, SubjectKind};
use skaerm_auth::identities::Identity;
use skaerm_auth::refs::TenantRef;
use skaerm_scheduling::{StoreError, TenantId};

/// Cookie binding a login in flight to the browser that started it (a signed flow token).
const STATE_COOKIE: &str = "skaerm_oidc";
const STATE_PATH: &str = "/auth/oidc";

fn problem(err: SsoError) -> Problem {
    match err {
        SsoError::UnknownProvider => Problem::not_found(),
        SsoError::Unavailable(cause) => {
            tracing::warn!(%cause, "identity provider unavailable");
            Problem::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::SsoUnavailable,
                "the identity provider could not be reached",
            )
        }
        SsoError::BadState => Problem::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::SsoState,
            "this login was not started here or has expired; start again",
        ),
        SsoError::TokenRefused { reason, cause } => {
            tracing::warn!(%reason, %cause, "ID token refused");
            Problem::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::SsoRefused,
                "the identity provider's answer was refused",
            )
            .with("reason", reason)
        }
        SsoError::NoRole => Problem::new(
            StatusCode::FORBIDDEN,
            ErrorCode::NoRole,
            "your account has no role in Skærm; ask your administrator",
        ),
    }
}

/// `GET /api/sso/providers`.
pub async fn providers(State(state): State<AppState>) -> Json<serde_json::Value> {
    let list: Vec<_> = state
        .sso
        .iter()
        .flat_map(|sso| sso.providers())
        .map(|p| {
            json!({
                "id": p.id,
                "display_name": p.display_name,
                "login_url": format!("/auth/oidc/{}/login", p.id),
            })
        })
        .collect();
    Json(json!({ "providers": list }))
}

fn redirect(to: &str) -> Result<Response, Problem> {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(to)?);
    Ok(response)
}

/// `GET /auth/oidc/{provider}/login`: 303 to the provider.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(peer_ip): ClientIp,
    Path(provider): Path<String>,
    jar: CookieJar,
) -> Result<Response, Problem> {
    let sso = state.sso.as_ref().ok_or_else(Problem::not_found)?;
    if let Err(retry) = state
        .services
        .limits
        .login_per_ip
        .lock()
        .map_err(|_| Problem::internal("limiter poisoned"))?
        .check_address(peer_ip, std::time::Instant::now())
    {
        return Err(Problem::rate_limited(retry.as_secs()));
    }
    let (url, flow) = sso
        .begin(&provider, &state.services.tokens)
        .await
        .map_err(problem)?;
    let cookie = Cookie::build((STATE_COOKIE, flow))
        .http_only(true)
        // Lax: the provider's redirect back is a cross-site top-level navigation.
        .same_site(SameSite::Lax)
        .secure(state.public_url.starts_with("https://"))
        .path(STATE_PATH)
        .max_age(time::Duration::minutes(10))
        .build();
    Ok((jar.add(cookie), redirect(&url)?).into_response())
}

/// The callback's query.
#[derive(Debug, Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /auth/oidc/{provider}/callback`: verifies, opens a session, 303 to the staff app.
pub async fn callback(
    State(state): State<AppState>,
    ClientIp(peer_ip): ClientIp,
    Path(provider): Path<String>,
    Query(query): Query<Callback>,
    jar: CookieJar,
) -> Result<Response, Problem> {
    let sso = state.sso.clone().ok_or_else(Problem::not_found)?;
    let bound = jar.get(STATE_COOKIE).map(|c| c.value().to_owned());
    let jar = jar.remove(Cookie::build((STATE_COOKIE, "")).path(STATE_PATH).build());
    if let Some(error) = query.error {
        tracing::info!(%provider, error = %error.chars().take(100).collect::<String>(), "provider refused the login");
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::SsoRefused,
            "the identity provider did not log you in",
        ));
    }
    let (Some(code), Some(login_state)) = (query.code, query.state) else {
        return Err(problem(SsoError::BadState));
    };
    if code.len() > 4096 || login_state.len() > 512 {
        return Err(problem(SsoError::BadState));
    }
    let login = sso
        .finish(
            &provider,
            &code,
            &login_state,
            bound.as_deref(),
            &state.services.tokens,
        )
        .await
        .map_err(problem)?;
    let identity = identity_for(&state, &login).await?;
    let (jar, session) = open_session(
        &state,
        jar,
        identity.staff,
        identity.tenant,
        login.roles,
        &login.name,
    )
    .await?;
    crate::audit::record_event(
        &state.services,
        AuditEvent::staff(identity.tenant, identity.staff.0, AuditAction::Login)
            .about(SubjectKind::Session, session.id.0)
            .from_ip(Some(peer_ip))
            .detail(&format!("oidc:{}", login.provider)),
    )
    .await?;
    tracing::info!(staff = %identity.staff.0, %provider, "staff logged in with single sign-on");
    Ok((jar, redirect("/")?).into_response())
}

/// The staff member this SSO subject is, created on their first login.
async fn identity_for(state: &AppState, login: &SsoLogin) -> Result<Identity, Problem> {
    let identities = &state.services.identities;
    let tenant = TenantRef(login.tenant_id);
    if let Some(identity) = identities.find(&login.issuer, &login.subject).await? {
        // One subject never crosses municipalities, whatever the configuration says now.
        if identity.tenant != tenant {
            tracing::error!(issuer = %login.issuer, "SSO identity belongs to another tenant");
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                ErrorCode::NoRole,
                "this account belongs to another municipality",
            ));
        }
        match state
            .services
            .store
            .get_staff(identity.staff.id_into())
            .await
        {
            Ok(_) => return Ok(identity),
            Err(StoreError::NotFound) => {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::NoRole,
                    "this account has been removed",
                ));
            }
            Err(err) => return Err(Problem::internal(err)),
        }
    }
    // Already a clean display name (see `crate::oidc`).
    let name = &login.name;
    let staff = state
        .services
        .store
        .create_staff(TenantId(login.tenant_id), name, None)
        .await
        // A display name the store refuses (one that looks like a CPR number) stays a 500 here,
        // as before `From<StoreError>`; a 422 would be a behaviour change.
        .map_err(Problem::internal)?;
    Ok(identities
        .link(
            &login.issuer,
            &login.subject,
            &Identity {
                staff: staff.id.id_into(),
                tenant,
            },
            Utc::now(),
        )
        .await?)
}

/// Single sign-on: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/sso/providers", get(providers))
        .route("/auth/oidc/{provider}/login", get(login))
        .route("/auth/oidc/{provider}/callback", get(callback))
}
