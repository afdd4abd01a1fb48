//! Registered citizen tablets over HTTP (see [`skaerm_auth::devices`]).
//!
//! The tablet side (`/api/device/*`) is authenticated by the HttpOnly cookie `skaerm_device`
//! holding the device secret; the staff side (`/api/devices*`) by [`StaffSession`], always
//! within the staff member's municipality and only for the citizens the staff member is
//! responsible for ([`crate::responsibility`]). Staff *call* a paired tablet for a visit in
//! progress; the tablet polls `GET /api/device/call` and joins with the media token it gets.

use crate::http::client_ip::ClientIp;
use crate::http::problem::{ErrorCode, Problem};
use crate::http::session::StaffSession;
use crate::ids::IdInto;
use crate::responsibility::{citizens_in_care_of, is_responsible_for_citizen};
use crate::state::AppState;
use crate::tablet_calls::RING;
use axum::Json;
use axum::extract::{FromRef, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use skaerm_auth::audit::{AuditAction, AuditEvent, SubjectKind};
use skaerm_auth::devices::{
    DeviceError, DeviceRef, DeviceSecret, DeviceState, PairedDevice, PairingCode,
};
use skaerm_auth::tokens::{AnsweredCall, MediaGrantRequest, MediaRole};
use skaerm_scheduling::{CitizenId, StoreError, VisitId, VisitStatus};
use std::time::Instant;
use uuid::Uuid;

/// Name of the device cookie.
pub const DEVICE_COOKIE: &str = "skaerm_device";

/// A tablet, pending or paired, from its cookie.
#[derive(Debug, Clone)]
pub struct DeviceSession(pub DeviceState);

impl<S> FromRequestParts<S> for DeviceSession
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let jar = CookieJar::from_headers(&parts.headers);
        let secret = jar
            .get(DEVICE_COOKIE)
            .and_then(|c| DeviceSecret::parse(c.value()))
            .ok_or_else(Problem::unauthenticated)?;
        state
            .services
            .devices
            .authenticate(&secret, Utc::now())
            .await?
            .map(DeviceSession)
            .ok_or_else(Problem::unauthenticated)
    }
}

fn limited(
    limiter: &std::sync::Mutex<skaerm_auth::rate_limit::RateLimiter>,
    key: &str,
) -> Result<(), Problem> {
    limiter
        .lock()
        .map_err(|_| Problem::internal("limiter poisoned"))?
        .check(key, Instant::now())
        .map_err(|retry| Problem::rate_limited(retry.as_secs()))
}

/// `POST /api/device/pairing`: a tablet asks to be paired.
pub async fn request_pairing(
    State(state): State<AppState>,
    ClientIp(peer_ip): ClientIp,
    jar: CookieJar,
) -> Result<Response, Problem> {
    limited(
        &state.services.limits.pairing_per_ip,
        &skaerm_auth::rate_limit::address_group(peer_ip).to_string(),
    )?;
    let limits = &state.services.limits;
    let (secret, code, expires_at) = match state
        .services
        .devices
        .request_pairing(Utc::now(), limits.max_open_pairing_requests)
        .await
    {
        Ok(requested) => requested,
        Err(DeviceError::TooManyOpenRequests) => {
            limits.pairing_requests_refused.inc();
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Busy,
                "too many tablets are waiting to be paired; try again in a minute",
            )
            .retry_after(60));
        }
        Err(err) => return Err(err.into()),
    };
    let cookie = Cookie::build((DEVICE_COOKIE, secret.expose().to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.public_url.starts_with("https://"))
        .path("/api/device")
        .max_age(time::Duration::days(3650))
        .build();
    Ok((
        StatusCode::CREATED,
        jar.add(cookie),
        Json(json!({"code": code.display(), "expires_at": expires_at})),
    )
        .into_response())
}

/// `GET /api/device/me`.
pub async fn device_me(
    State(state): State<AppState>,
    DeviceSession(device): DeviceSession,
) -> Result<Json<serde_json::Value>, Problem> {
    match device {
        DeviceState::Pending => Ok(Json(json!({"state": "pending"}))),
        DeviceState::Paired(device) => {
            let citizen = state
                .services
                .store
                .get_citizen(CitizenId(device.citizen))
                .await?;
            Ok(Json(json!({
                "state": "paired",
                "device": {"id": device.id, "label": device.label},
                "citizen": {"display_name": citizen.display_name},
            })))
        }
    }
}

fn paired(device: DeviceState) -> Result<PairedDevice, Problem> {
    match device {
        DeviceState::Paired(device) => Ok(device),
        DeviceState::Pending => Err(Problem::new(
            StatusCode::CONFLICT,
            ErrorCode::NotPaired,
            "this device has not been paired yet",
        )),
    }
}

/// `GET /api/device/call`: `200` with a media token while staff call this tablet, else `204`.
/// The token names the answered call (this tablet, the visit's staff member), so the tablet
/// goes into the call without waiting in the waiting room (see [`crate::admission`]).
pub async fn device_call(
    State(state): State<AppState>,
    DeviceSession(device): DeviceSession,
) -> Result<Response, Problem> {
    let device = paired(device)?;
    let Some(visit_id) = state.services.tablet_calls.ringing(device.id) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let visit = match state.services.store.get_visit(visit_id).await {
        Ok(visit) => visit,
        Err(StoreError::NotFound) => return Ok(StatusCode::NO_CONTENT.into_response()),
        Err(err) => return Err(Problem::internal(err)),
    };
    if visit.status != VisitStatus::InProgress
        || visit.citizen_id.0 != device.citizen
        || visit.tenant_id.0 != device.tenant.0
    {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let citizen = state.services.store.get_citizen(visit.citizen_id).await?;
    let staff = state.services.store.get_staff(visit.staff_id).await?;
    let token = state.services.tokens.issue_media(
        &MediaGrantRequest {
            participant: citizen.id.id_into(),
            visit: visit.id.id_into(),
            tenant: visit.tenant_id.id_into(),
            role: MediaRole::Guest,
            name: citizen.display_name,
            // Answering is the admission: the calling staff member let the tablet in.
            answered_call: Some(AnsweredCall {
                device: device.id,
                by: visit.staff_id.id_into(),
            }),
            // The answered call names the tablet: the token dies with its pairing.
            issued_on: None,
        },
        Utc::now(),
    )?;
    let staff_first_name = crate::http::join::first_name(&staff.display_name);
    Ok(Json(json!({
        "media_token": token,
        "visit": {"id": visit.id, "staff_display_name": staff_first_name},
    }))
    .into_response())
}

/// Pairing by staff.
#[derive(Debug, Deserialize)]
pub struct Pair {
    code: String,
    citizen_id: Uuid,
    #[serde(default)]
    label: String,
}

fn device_view(device: &PairedDevice, citizen_display_name: &str) -> serde_json::Value {
    json!({
        "id": device.id,
        "citizen_id": device.citizen,
        "citizen_display_name": citizen_display_name,
        "label": device.label,
        "paired_at": device.paired_at,
    })
}

fn not_responsible() -> Problem {
    Problem::new(
        StatusCode::FORBIDDEN,
        ErrorCode::NotResponsible,
        "only staff responsible for the citizen may pair or unpair its tablets",
    )
}

/// The citizen id of a pairing or unpairing, for the audit detail (a pseudonymous id, no name).
fn audit_detail(what: &str, citizen: Uuid) -> String {
    format!("{what} citizen={citizen}")
}

/// `POST /api/devices/pair`.
pub async fn pair(
    State(state): State<AppState>,
    session: StaffSession,
    Json(pair): Json<Pair>,
) -> Result<Response, Problem> {
    let ip = session
        .client_ip
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    limited(
        &state.services.limits.pairing_per_ip,
        &format!("staff:{ip}"),
    )?;
    let unknown = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownCode,
            "no tablet is waiting with this code",
        )
    };
    let code = PairingCode::parse(&pair.code).ok_or_else(unknown)?;
    let citizen = match state
        .services
        .store
        .get_citizen(CitizenId(pair.citizen_id))
        .await
    {
        Ok(citizen) if citizen.tenant_id == session.tenant => citizen,
        Ok(_) | Err(StoreError::NotFound) => return Err(Problem::not_found()),
        Err(err) => return Err(Problem::internal(err)),
    };
    if !is_responsible_for_citizen(
        &state.services,
        session.tenant,
        session.staff,
        session.roles,
        citizen.id,
    )
    .await?
    {
        return Err(not_responsible());
    }
    let device = state
        .services
        .devices
        .pair(
            &code,
            session.tenant.id_into(),
            pair.citizen_id,
            session.staff.id_into(),
            &pair.label,
            Utc::now(),
        )
        .await?
        .ok_or_else(unknown)?;
    crate::audit::record_event(
        &state.services,
        AuditEvent::staff(
            session.tenant.id_into(),
            session.staff.0,
            AuditAction::DeviceChanged,
        )
        .about(SubjectKind::Device, device.id.0)
        .from_ip(session.client_ip)
        .detail(&audit_detail("paired", device.citizen)),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"device": device_view(&device, &citizen.display_name)})),
    )
        .into_response())
}

/// `GET /api/devices`: the tablets of the citizens the caller is responsible for, each with
/// its citizen's name, label and pairing time.
pub async fn list(
    State(state): State<AppState>,
    session: StaffSession,
) -> Result<Json<serde_json::Value>, Problem> {
    let in_care = citizens_in_care_of(
        &state.services,
        session.tenant,
        session.staff,
        session.roles,
    )
    .await?;
    let devices = state
        .services
        .devices
        .list(session.tenant.id_into())
        .await?;
    let mut names: std::collections::HashMap<Uuid, String> = std::collections::HashMap::new();
    let mut views = Vec::new();
    for device in devices
        .iter()
        .filter(|d| in_care.includes(CitizenId(d.citizen)))
    {
        let name = match names.get(&device.citizen) {
            Some(name) => name.clone(),
            None => {
                let name = match state
                    .services
                    .store
                    .get_citizen(CitizenId(device.citizen))
                    .await
                {
                    Ok(citizen) => citizen.display_name,
                    Err(StoreError::NotFound) => String::new(),
                    Err(err) => return Err(Problem::internal(err)),
                };
                names.insert(device.citizen, name.clone());
                name
            }
        };
        views.push(device_view(device, &name));
    }
    Ok(Json(json!({"devices": views})))
}

fn device_id(id: &str) -> Result<DeviceRef, Problem> {
    Uuid::parse_str(id)
        .map(DeviceRef)
        .map_err(|_| Problem::not_found())
}

/// `DELETE /api/devices/{id}`: unpairs; the tablet's secret stops working at once.
pub async fn unpair(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let id = device_id(&id)?;
    let device = state
        .services
        .devices
        .get(session.tenant.id_into(), id)
        .await?
        .ok_or_else(Problem::not_found)?;
    if !is_responsible_for_citizen(
        &state.services,
        session.tenant,
        session.staff,
        session.roles,
        CitizenId(device.citizen),
    )
    .await?
    {
        return Err(not_responsible());
    }
    let done = state
        .services
        .devices
        .unpair(session.tenant.id_into(), id, Utc::now())
        .await?;
    if !done {
        return Err(Problem::not_found());
    }
    state.services.tablet_calls.hang_up(id);
    crate::audit::record_event(
        &state.services,
        AuditEvent::staff(
            session.tenant.id_into(),
            session.staff.0,
            AuditAction::DeviceChanged,
        )
        .about(SubjectKind::Device, id.0)
        .from_ip(session.client_ip)
        .detail(&audit_detail("unpaired", device.citizen)),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A call.
#[derive(Debug, Deserialize)]
pub struct Call {
    visit_id: Uuid,
}

/// `POST /api/devices/{id}/call`: rings the citizen's tablet for a visit in progress that the
/// caller runs.
pub async fn call(
    State(state): State<AppState>,
    session: StaffSession,
    Path(id): Path<String>,
    Json(call): Json<Call>,
) -> Result<Response, Problem> {
    let id = device_id(&id)?;
    let tenant = session.tenant.id_into();
    let device = state
        .services
        .devices
        .get(tenant, id)
        .await?
        .ok_or_else(Problem::not_found)?;
    let visit = match state.services.store.get_visit(VisitId(call.visit_id)).await {
        Ok(visit) => visit,
        Err(StoreError::NotFound) => return Err(Problem::not_found()),
        Err(err) => return Err(Problem::internal(err)),
    };
    if visit.staff_id != session.staff
        || visit.tenant_id != session.tenant
        || visit.citizen_id.0 != device.citizen
    {
        return Err(Problem::not_found());
    }
    if visit.status != VisitStatus::InProgress {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            ErrorCode::VisitNotStarted,
            "start the visit first",
        ));
    }
    state
        .services
        .tablet_calls
        .ring(id, visit.id)
        .map_err(|_| Problem::rate_limited(RING.as_secs()))?;
    crate::audit::record_event(
        &state.services,
        AuditEvent::staff(tenant, session.staff.0, AuditAction::DeviceCalled)
            .visit(visit.id.0)
            .from_ip(session.client_ip),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"ringing_seconds": RING.as_secs()})),
    )
        .into_response())
}

/// Tablets (the tablet's and the staff side): this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{delete, get, post};
    axum::Router::new()
        .route("/api/device/pairing", post(request_pairing))
        .route("/api/device/me", get(device_me))
        .route("/api/device/call", get(device_call))
        .route("/api/devices", get(list))
        .route("/api/devices/pair", post(pair))
        .route("/api/devices/{id}", delete(unpair))
        .route("/api/devices/{id}/call", post(call))
}
