//! Staff sessions: logging in with a local account, refreshing and revoking, the cookies, and
//! the extractors every staff endpoint uses.
//!
//! Two cookies, both HttpOnly and SameSite=Strict (Secure when served over HTTPS):
//! `skaerm_session` holds a short-lived access JWT (EdDSA, 15 minutes) naming the session,
//! `skaerm_refresh` (Path=/api/session) holds the session's opaque refresh secret. Every
//! request checks the access token *and* that its session is still live, so logout revokes at
//! once.
//!
//! Extractors, by what a handler needs:
//! - [`Authenticated`]: any signed-in person (any role), with tenant and roles;
//! - [`StaffSession`]: care work — `staff` or `team_lead`; visit content and citizen data;
//! - [`TeamLeadSession`]: `team_lead` — team reports;
//! - [`OpsSession`]: `ops` or `admin` — live metrics and the call list, no citizen data;
//! - [`AdminSession`]: `admin` — users, settings, the audit log.
//!
//! All carry the tenant; handlers must scope every query by it.

use crate::audit::Actor;
use crate::http::client_ip::ClientIp;
use crate::http::problem::{ErrorCode, Problem};
use crate::ids::IdInto;
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use skaerm_auth::accounts::AccountError;
use skaerm_auth::audit::{AuditAction, AuditEvent, SubjectKind};
use skaerm_auth::password_hashing::HashingError;
use skaerm_auth::rate_limit::{RateLimiter, address_group};
use skaerm_auth::refs::{SessionRef, StaffRef, TenantRef};
use skaerm_auth::roles::{Role, Roles};
use skaerm_auth::sessions::{NewSession, RefreshSecret, Session};
use skaerm_auth::tokens::{ACCESS_LIFETIME_MINUTES, SessionRequest, TokenError};
use skaerm_scheduling::{StaffId, TenantId};
use std::marker::PhantomData;
use std::net::IpAddr;
use std::ops::Deref;

/// Name of the access-token cookie.
pub const SESSION_COOKIE: &str = "skaerm_session";
/// Name of the refresh cookie.
pub const REFRESH_COOKIE: &str = "skaerm_refresh";
/// Path the refresh cookie is sent to.
const REFRESH_PATH: &str = "/api/session";

/// A signed-in person (any role), from the access cookie of a live session.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Their login (revoked on logout).
    pub session: SessionRef,
    /// Who.
    pub staff: StaffId,
    /// Their municipality: every query is scoped to it.
    pub tenant: TenantId,
    /// What they may do.
    pub roles: Roles,
    /// Their display name.
    pub name: String,
    /// The client's address (for the audit log).
    pub client_ip: Option<IpAddr>,
}

impl<S> FromRequestParts<S> for Authenticated
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
        let now = Utc::now();
        let tokens = &state.services.tokens;
        let claims = match tokens.verify_session(&token, now) {
            Err(TokenError::UnknownKid) if state.services.reload_keys_for_unknown_kid().await => {
                tokens.verify_session(&token, now)
            }
            verified => verified,
        }
        .map_err(|_| Problem::unauthenticated())?;
        let live = state.services.sessions.is_live(claims.session, now).await?;
        if !live {
            return Err(Problem::unauthenticated());
        }
        Ok(Authenticated {
            session: claims.session,
            staff: claims.staff.id_into(),
            tenant: claims.tenant.id_into(),
            roles: claims.roles,
            name: claims.name,
            client_ip: crate::http::client_ip::from_parts(parts, &state),
        })
    }
}

impl Authenticated {
    /// Who acts, for the audit log.
    pub fn actor(&self) -> Actor {
        Actor {
            tenant: self.tenant,
            staff: self.staff,
            client_ip: self.client_ip,
        }
    }
}

/// Which roles an extractor admits.
pub trait RolePolicy: Send + Sync + 'static {
    /// Admitted when holding any of these.
    const ANY_OF: &'static [Role];
}

/// A signed-in person holding one of `P`'s roles; 403 `forbidden_role` otherwise. Derefs to
/// [`Authenticated`].
pub struct RequireRole<P: RolePolicy> {
    inner: Authenticated,
    _policy: PhantomData<P>,
}

impl<P: RolePolicy> RequireRole<P> {
    /// The signed-in person.
    pub fn into_inner(self) -> Authenticated {
        self.inner
    }
}

impl<P: RolePolicy> Deref for RequireRole<P> {
    type Target = Authenticated;
    fn deref(&self) -> &Authenticated {
        &self.inner
    }
}

impl<P: RolePolicy> Clone for RequireRole<P> {
    fn clone(&self) -> Self {
        RequireRole {
            inner: self.inner.clone(),
            _policy: PhantomData,
        }
    }
}

impl<P: RolePolicy> std::fmt::Debug for RequireRole<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequireRole").field(&self.inner).finish()
    }
}

impl<S, P> FromRequestParts<S> for RequireRole<P>
where
    AppState: FromRef<S>,
    S: Send + Sync,
    P: RolePolicy,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let inner = Authenticated::from_request_parts(parts, state).await?;
        if !inner.roles.any_of(P::ANY_OF) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                ErrorCode::ForbiddenRole,
                "your role does not allow this",
            ));
        }
        Ok(RequireRole {
            inner,
            _policy: PhantomData,
        })
    }
}

/// Care work: `staff` or `team_lead`.
#[derive(Debug)]
pub struct CareWork;
impl RolePolicy for CareWork {
    const ANY_OF: &'static [Role] = &[Role::Staff, Role::TeamLead];
}

/// Team reports: `team_lead`.
#[derive(Debug)]
pub struct TeamLeading;
impl RolePolicy for TeamLeading {
    const ANY_OF: &'static [Role] = &[Role::TeamLead];
}

/// Operations: `ops` or `admin`.
#[derive(Debug)]
pub struct Operations;
impl RolePolicy for Operations {
    const ANY_OF: &'static [Role] = &[Role::Ops, Role::Admin];
}

/// Administration: `admin`.
#[derive(Debug)]
pub struct Administration;
impl RolePolicy for Administration {
    const ANY_OF: &'static [Role] = &[Role::Admin];
}

/// Staff doing care work (visit content, citizen data).
pub type StaffSession = RequireRole<CareWork>;
/// A team lead (reports for their team).
pub type TeamLeadSession = RequireRole<TeamLeading>;
/// Operations (metrics, call list; no citizen data).
pub type OpsSession = RequireRole<Operations>;
/// An administrator (users, settings, audit log).
pub type AdminSession = RequireRole<Administration>;

/// Login form.
#[derive(Debug, Deserialize)]
pub struct Login {
    username: String,
    password: String,
}

fn secure(state: &AppState) -> bool {
    state.public_url.starts_with("https://")
}

fn access_cookie(state: &AppState, token: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(state))
        .path("/")
        .max_age(time::Duration::minutes(ACCESS_LIFETIME_MINUTES))
        .build()
}

fn refresh_cookie(state: &AppState, secret: &RefreshSecret, session: &Session) -> Cookie<'static> {
    let seconds = (session.expires_at - Utc::now()).num_seconds().max(0);
    Cookie::build((REFRESH_COOKIE, secret.expose().to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure(state))
        .path(REFRESH_PATH)
        .max_age(time::Duration::seconds(seconds))
        .build()
}

/// Opens a session for a person whose identity is established (local password or single
/// sign-on) and sets both cookies.
pub async fn open_session(
    state: &AppState,
    jar: CookieJar,
    staff: StaffRef,
    tenant: TenantRef,
    roles: Roles,
    name: &str,
) -> Result<(CookieJar, Session), Problem> {
    let now = Utc::now();
    let (session, secret) = state
        .services
        .sessions
        .create(
            &NewSession {
                staff,
                tenant,
                roles,
                name: name.to_owned(),
            },
            now,
        )
        .await?;
    let token = issue_access(state, &session)?;
    let jar = jar
        .add(access_cookie(state, token))
        .add(refresh_cookie(state, &secret, &session));
    Ok((jar, session))
}

fn issue_access(state: &AppState, session: &Session) -> Result<String, Problem> {
    state
        .services
        .tokens
        .issue_session(
            &SessionRequest {
                session: session.id,
                staff: session.staff,
                tenant: session.tenant,
                roles: session.roles,
                name: session.name.clone(),
            },
            Utc::now(),
        )
        .map_err(Problem::internal)
}

fn me_body(staff: StaffId, tenant: TenantId, name: &str, roles: Roles) -> Json<serde_json::Value> {
    Json(json!({
        "staff": {"id": staff, "display_name": name, "roles": roles},
        "tenant": {"id": tenant},
    }))
}

/// `POST /api/session`.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(peer_ip): ClientIp,
    jar: CookieJar,
    Json(login): Json<Login>,
) -> Result<Response, Problem> {
    let now = std::time::Instant::now();
    let limits = &state.services.limits;
    if let Err(retry) = lock(&limits.login_per_ip)?.check_address(peer_ip, now) {
        return Err(Problem::rate_limited(retry.as_secs()));
    }
    if login.username.len() > 200 || login.password.len() > 1024 {
        return Err(bad_credentials());
    }
    // Per account *and* address, so an attacker elsewhere cannot lock the owner out; and per
    // account over an hour from everywhere, so many addresses do not multiply the guesses.
    let username = login.username.trim().to_lowercase();
    let pair = format!("{username} {}", address_group(peer_ip));
    if let Err(retry) = lock(&limits.login_per_user)?.check(&pair, now) {
        return Err(Problem::rate_limited(retry.as_secs()));
    }
    if let Err(retry) = lock(&limits.login_per_user_hourly)?.check(&username, now) {
        return Err(Problem::rate_limited(retry.as_secs()));
    }
    let accounts = state.services.accounts.clone();
    let account = match accounts
        .verify_login(&login.username, &login.password)
        .await
    {
        Ok(account) => account.ok_or_else(bad_credentials)?,
        Err(AccountError::Hashing(HashingError::Busy)) => return Err(hashing_busy()),
        Err(err) => return Err(Problem::internal(err)),
    };
    let staff = state
        .services
        .store
        .get_staff(account.staff_id.id_into())
        .await
        .map_err(Problem::internal)?;
    if staff.tenant_id.0 != account.tenant_id.0 {
        // An account pointing into another municipality's staff is a configuration error;
        // never let it through.
        tracing::error!(staff = %staff.id, "account and staff tenants differ");
        return Err(bad_credentials());
    }
    let (jar, session) = open_session(
        &state,
        jar,
        account.staff_id,
        account.tenant_id,
        account.roles,
        &staff.display_name,
    )
    .await?;
    crate::audit::record_event(
        &state.services,
        AuditEvent::staff(account.tenant_id, account.staff_id.0, AuditAction::Login)
            .about(SubjectKind::Session, session.id.0)
            .from_ip(Some(peer_ip))
            .detail("local account"),
    )
    .await?;
    tracing::info!(staff = %staff.id, "staff logged in");
    Ok((
        jar,
        me_body(
            staff.id,
            staff.tenant_id,
            &staff.display_name,
            session.roles,
        ),
    )
        .into_response())
}

fn lock(
    limiter: &std::sync::Mutex<RateLimiter>,
) -> Result<std::sync::MutexGuard<'_, RateLimiter>, Problem> {
    limiter
        .lock()
        .map_err(|_| Problem::internal("limiter poisoned"))
}

/// 503 with Retry-After: every password-hashing slot is taken (a login spray); counted in
/// `skaerm_password_hashes_refused_total`.
fn hashing_busy() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Busy,
        "too many logins at once; try again in a moment",
    )
    .retry_after(1)
}

fn bad_credentials() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::BadCredentials,
        "wrong username or password",
    )
}

fn cleared(jar: CookieJar) -> CookieJar {
    jar.remove(Cookie::build((SESSION_COOKIE, "")).path("/").build())
        .remove(
            Cookie::build((REFRESH_COOKIE, ""))
                .path(REFRESH_PATH)
                .build(),
        )
}

/// `POST /api/session/refresh`: a new access token (and refresh secret) for a live session.
pub async fn refresh(State(state): State<AppState>, jar: CookieJar) -> Result<Response, Problem> {
    let Some(secret) = jar
        .get(REFRESH_COOKIE)
        .and_then(|c| RefreshSecret::parse(c.value()))
    else {
        return Ok((cleared(jar), Problem::unauthenticated()).into_response());
    };
    let Some((session, next)) = state.services.sessions.refresh(&secret, Utc::now()).await? else {
        return Ok((cleared(jar), Problem::unauthenticated()).into_response());
    };
    let token = issue_access(&state, &session)?;
    let jar = jar
        .add(access_cookie(&state, token))
        .add(refresh_cookie(&state, &next, &session));
    Ok((
        jar,
        me_body(
            session.staff.id_into(),
            session.tenant.id_into(),
            &session.name,
            session.roles,
        ),
    )
        .into_response())
}

/// `DELETE /api/session`: revokes the session (found through the access token or the refresh
/// secret) and clears the cookies.
pub async fn logout(
    State(state): State<AppState>,
    ClientIp(peer_ip): ClientIp,
    jar: CookieJar,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let from_access = jar
        .get(SESSION_COOKIE)
        .and_then(|c| state.services.tokens.verify_session(c.value(), now).ok());
    let mut audited = None;
    if let Some(claims) = &from_access {
        audited = Some((claims.tenant, claims.staff));
    }
    let from_access = from_access.map(|claims| claims.session);
    let from_refresh = match jar
        .get(REFRESH_COOKIE)
        .and_then(|c| RefreshSecret::parse(c.value()))
    {
        // Refreshing spends the secret; the session is revoked right after.
        Some(secret) => state
            .services
            .sessions
            .refresh(&secret, now)
            .await?
            .map(|(session, _)| {
                audited.get_or_insert((session.tenant, session.staff));
                session.id
            }),
        None => None,
    };
    let mut revoked = None;
    for session in from_access.into_iter().chain(from_refresh) {
        state.services.sessions.revoke(session, now).await?;
        tracing::info!(session = %session.0, "staff logged out");
        revoked = Some(session);
    }
    if let (Some((tenant, staff)), Some(session)) = (audited, revoked) {
        crate::audit::record_event(
            &state.services,
            AuditEvent::staff(tenant, staff.0, AuditAction::Logout)
                .about(SubjectKind::Session, session.0)
                .from_ip(Some(peer_ip)),
        )
        .await?;
    }
    Ok((cleared(jar), StatusCode::NO_CONTENT).into_response())
}

/// `GET /api/me`.
pub async fn me(session: Authenticated) -> Json<serde_json::Value> {
    me_body(session.staff, session.tenant, &session.name, session.roles)
}

/// Staff sessions: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/session", post(login).delete(logout))
        .route("/api/session/refresh", post(refresh))
        .route("/api/me", get(me))
}
