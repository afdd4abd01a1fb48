//! Administrators manage their municipality's local accounts: list, create (a staff member and
//! their login, so nobody shares one), and change roles (which ends the person's sessions, so
//! the new roles apply at once).

use crate::http::problem::{ErrorCode, Problem};
use crate::http::session::AdminSession;
use crate::ids::IdInto;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use skaerm_auth::accounts::{AccountError, LocalAccount};
use skaerm_auth::audit::{AuditAction, AuditEvent, SubjectKind};
use skaerm_auth::display_name::{self, MAX_STAFF_NAME_CHARS, MAX_TEAM_NAME_CHARS};
use skaerm_auth::refs::StaffRef;
use skaerm_auth::roles::{Role, Roles};

fn view(account: &LocalAccount) -> serde_json::Value {
    json!({
        "username": account.username,
        "staff_id": account.staff_id,
        "roles": account.roles,
    })
}

fn roles_of(list: &[Role]) -> Result<Roles, Problem> {
    let roles = Roles::of(list);
    if roles.is_empty() {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::Invalid,
            "an account needs at least one role",
        ));
    }
    Ok(roles)
}

async fn audit(
    state: &AppState,
    admin: &AdminSession,
    staff: StaffRef,
    what: &str,
) -> Result<(), Problem> {
    crate::audit::record_event(
        &state.services,
        AuditEvent::staff(
            admin.tenant.id_into(),
            admin.staff.0,
            AuditAction::AccountChanged,
        )
        .about(SubjectKind::Account, staff.0)
        .from_ip(admin.client_ip)
        .detail(what),
    )
    .await?;
    Ok(())
}

/// `GET /api/admin/accounts`.
pub async fn list(
    State(state): State<AppState>,
    admin: AdminSession,
) -> Result<Json<serde_json::Value>, Problem> {
    let accounts = state.services.accounts.list(admin.tenant.id_into()).await?;
    Ok(Json(
        json!({"accounts": accounts.iter().map(view).collect::<Vec<_>>()}),
    ))
}

/// A new account.
#[derive(Debug, Deserialize)]
pub struct NewAccount {
    username: String,
    password: String,
    display_name: String,
    #[serde(default)]
    team: Option<String>,
    roles: Vec<Role>,
}

/// `POST /api/admin/accounts`: a staff member in the admin's municipality and their login.
pub async fn create(
    State(state): State<AppState>,
    admin: AdminSession,
    Json(new): Json<NewAccount>,
) -> Result<Response, Problem> {
    let roles = roles_of(&new.roles)?;
    let name = display_name::validate(&new.display_name, MAX_STAFF_NAME_CHARS)?;
    // A team name is a display name too (shown in reports); blank means none.
    let team = match new.team.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(team) => Some(display_name::validate(team, MAX_TEAM_NAME_CHARS)?),
    };
    if new.password.chars().count() < skaerm_auth::accounts::MIN_PASSWORD_LEN
        || new.password.len() > skaerm_auth::accounts::MAX_PASSWORD_LEN
    {
        return Err(Problem::from(AccountError::Invalid(
            "password must be 8–1024 characters",
        )));
    }
    // Checked before the staff record is created (the insert below still guards the race).
    if state.services.accounts.exists(&new.username).await? {
        return Err(Problem::from(AccountError::Duplicate));
    }
    let staff = state
        .services
        .store
        .create_staff(admin.tenant, &name, team.as_deref())
        .await
        // A display name the store refuses (one that looks like a CPR number) stays a 500 here,
        // as before `From<StoreError>`; a 422 would be a behaviour change.
        .map_err(Problem::internal)?;
    let account = state
        .services
        .accounts
        .create_with_roles(
            &new.username,
            &new.password,
            staff.id.id_into(),
            admin.tenant.id_into(),
            roles,
        )
        .await?;
    audit(&state, &admin, account.staff_id, "created").await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"account": view(&account)})),
    )
        .into_response())
}

/// New roles.
#[derive(Debug, Deserialize)]
pub struct SetRoles {
    roles: Vec<Role>,
}

/// `PUT /api/admin/accounts/{username}/roles`: replaces the roles and ends the person's
/// sessions.
pub async fn set_roles(
    State(state): State<AppState>,
    admin: AdminSession,
    Path(username): Path<String>,
    Json(body): Json<SetRoles>,
) -> Result<Json<serde_json::Value>, Problem> {
    let roles = roles_of(&body.roles)?;
    refuse_granting_oneself_care(&state, &admin, &username, roles).await?;
    let account = state
        .services
        .accounts
        .set_roles_in(admin.tenant.id_into(), &username, roles)
        .await?
        .ok_or_else(Problem::not_found)?;
    state
        .services
        .sessions
        .revoke_all_for(account.staff_id, Utc::now())
        .await?;
    audit(
        &state,
        &admin,
        account.staff_id,
        &format!("roles changed to {}", roles.to_list()),
    )
    .await?;
    Ok(Json(json!({"account": view(&account)})))
}

/// An administrator may not give herself a care role (`staff`, `team_lead`: access to
/// citizens) she does not hold: a second administrator must. 403 `self_grant_refused`.
async fn refuse_granting_oneself_care(
    state: &AppState,
    admin: &AdminSession,
    username: &str,
    roles: Roles,
) -> Result<(), Problem> {
    let accounts = state.services.accounts.list(admin.tenant.id_into()).await?;
    let Some(own) = accounts
        .iter()
        .find(|a| a.username == username && a.staff_id.0 == admin.staff.0)
    else {
        return Ok(());
    };
    let gained = [Role::Staff, Role::TeamLead]
        .into_iter()
        .any(|care| roles.contains(care) && !own.roles.contains(care));
    if gained {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            ErrorCode::SelfGrantRefused,
            "another administrator must give you a care role",
        ));
    }
    Ok(())
}

/// Accounts (admin): this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, put};
    axum::Router::new()
        .route("/api/admin/accounts", get(list).post(create))
        .route("/api/admin/accounts/{username}/roles", put(set_roles))
}
