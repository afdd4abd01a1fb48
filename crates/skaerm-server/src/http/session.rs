//! Staff sessions: logging in with a local account, the session cookie, and the [`StaffSession`]
//! extractor that every staff endpoint uses.

use crate::http::problem::Problem;
use crate::state::AppState;
use axum::Json;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use skaerm_auth::tokens::SessionClaims;
use skaerm_scheduling::{StaffId, TenantId};
use std::net::SocketAddr;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "skaerm_session";

/// A logged-in staff member, taken from the session cookie.
#[derive(Debug, Clone)]
pub struct StaffSession {
    /// Who.
    pub staff: StaffId,
    /// Their municipality.
    pub tenant: TenantId,
    /// Their display name.
    pub name: String,
}

impl<S> FromRequestParts<S> for StaffSession
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let jar = CookieJar::from_headers(&parts.headers);
        let token = jar
            .get(SESSION_COOKIE)
            .map(|c| c.value().to_owned())
            .ok_or_else(Problem::unauthenticated)?;
        let claims: SessionClaims = state
            .services
            .tokens
            .verify_session(&token, Utc::now())
            .map_err(|_| Problem::unauthenticated())?;
        Ok(StaffSession {
            staff: StaffId(claims.staff.0),
            tenant: TenantId(claims.tenant.0),
            name: claims.name,
        })
    }
}

/// Login form.
#[derive(Debug, Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

/// `POST /api/session`.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    jar: CookieJar,
    Json(login): Json<Login>,
) -> Result<Response, Problem> {
    if let Err(retry) = state
        .services
        .limits
        .login_per_ip
        .lock()
        .map_err(|_| Problem::internal("limiter poisoned"))?
        .check(&peer.ip().to_string(), std::time::Instant::now())
    {
        return Err(Problem::rate_limited(retry.as_secs()));
    }
    if login.username.len() > 200 || login.password.len() > 1024 {
        return Err(bad_credentials());
    }
    let accounts = state.services.accounts.clone();
    let account = accounts
        .verify_login(&login.username, &login.password)
        .await
        .map_err(Problem::internal)?
        .ok_or_else(bad_credentials)?;
    let staff = state
        .services
        .store
        .get_staff(StaffId(account.staff_id.0))
        .await
        .map_err(Problem::internal)?;
    let token = state
        .services
        .tokens
        .issue_session(
            &skaerm_auth::tokens::SessionRequest {
                staff: account.staff_id,
                tenant: account.tenant_id,
                name: staff.display_name.clone(),
            },
            Utc::now(),
        )
        .map_err(Problem::internal)?;
    let cookie = Cookie::build((SESSION_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.public_url.starts_with("https://"))
        .path("/")
        .build();
    tracing::info!(staff = %staff.id, "staff logged in");
    Ok((
        jar.add(cookie),
        Json(json!({"staff": {"id": staff.id, "display_name": staff.display_name}})),
    )
        .into_response())
}

fn bad_credentials() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "bad_credentials",
        "wrong username or password",
    )
}

/// `DELETE /api/session`.
pub async fn logout(jar: CookieJar) -> Response {
    let removal = Cookie::build((SESSION_COOKIE, "")).path("/").build();
    (jar.remove(removal), StatusCode::NO_CONTENT).into_response()
}

/// `GET /api/me`.
pub async fn me(session: StaffSession) -> Json<serde_json::Value> {
    Json(json!({"staff": {"id": session.staff, "display_name": session.name}}))
}
