//! The demo municipality: two staff members, three citizens and a few §85/§83 visits today, so
//! a fresh start can be tried at once. Idempotent: people are created once (fixed ids); visits
//! for today are added when the demo staff member has none left today; each start prints a
//! fresh citizen link for the next visit.

use crate::ids::IdInto;
use crate::state::AppState;
use anyhow::Context;
use chrono::{DateTime, Duration, Timelike, Utc};
use skaerm_auth::citizen_link::CitizenLinkSecret;
use skaerm_auth::roles::{Role, Roles};
use skaerm_scheduling::{
    CitizenId, LegalBasis, NewVisit, StaffId, StoreError, TenantId, Visit, VisitStatus,
    copenhagen_day_bounds,
};
use uuid::Uuid;

/// Password of the demo staff accounts.
pub const DEMO_PASSWORD: &str = "skaerm-demo";
/// Username of the demo staff member whose visits the log links to.
pub const DEMO_USER: &str = "mette";

const TENANT: TenantId = TenantId(Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0001));
const METTE: StaffId = StaffId(Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0101));
const JONAS: StaffId = StaffId(Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0102));
const OLE: StaffId = StaffId(Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0103));
const ANNE: StaffId = StaffId(Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0104));
const KAREN: CitizenId = CitizenId(Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0201));
const POUL: CitizenId = CitizenId(Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0202));
const BIRTHE: CitizenId = CitizenId(Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0203));

/// What the demo created or found, for tests and the log.
#[derive(Debug, Clone)]
pub struct DemoSeed {
    /// The demo staff member's next open visit.
    pub next_visit: Option<Visit>,
    /// A fresh citizen link to it.
    pub citizen_link: Option<String>,
}

/// Seeds the demo municipality and prints how to try it.
pub async fn seed(state: &AppState) -> anyhow::Result<DemoSeed> {
    let store = &state.services.store;
    match store.get_staff(METTE).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => create_people(state).await?,
        Err(err) => return Err(err).context("reading demo staff"),
    }

    let now = Utc::now();
    let today = now
        .with_timezone(&chrono_tz::Europe::Copenhagen)
        .date_naive();
    let (from, to) = copenhagen_day_bounds(today);
    let open_today = |visits: &[Visit]| {
        visits
            .iter()
            .filter(|v| !v.status.is_final() && v.planned_end() > now)
            .count()
    };
    let mette_today = store.list_visits_for_staff(METTE, from, to).await?;
    if open_today(&mette_today) == 0 {
        create_visits(state, now).await?;
    }
    let mette_today = store.list_visits_for_staff(METTE, from, to).await?;
    let next_visit = mette_today
        .into_iter()
        .filter(|v| !v.status.is_final() && v.planned_end() > now)
        .min_by_key(|v| v.planned_start);

    // A visit someone is already in keeps the link they used (links are stored hashed, so it
    // cannot be printed again; a new one would revoke theirs).
    let mut citizen_link = None;
    if let Some(visit) = next_visit
        .as_ref()
        .filter(|v| !matches!(v.status, VisitStatus::Waiting | VisitStatus::InProgress))
    {
        let secret = CitizenLinkSecret::generate();
        store
            .set_citizen_link(visit.id, secret.hash().0, now)
            .await?;
        citizen_link = Some(format!("{}/j/{}", state.public_url, secret.expose()));
    }
    tracing::info!(
        "Demo staff login: {}/  (username `{DEMO_USER}` or `jonas`; `ole` for operations at /ops, `anne` as admin; password `{DEMO_PASSWORD}`)",
        state.public_url
    );
    if let (Some(visit), Some(link)) = (&next_visit, &citizen_link) {
        tracing::info!(
            "Demo citizen join link (visit at {} Copenhagen time): {link}",
            visit
                .planned_start
                .with_timezone(&chrono_tz::Europe::Copenhagen)
                .format("%H:%M")
        );
    }
    Ok(DemoSeed {
        next_visit,
        citizen_link,
    })
}

async fn create_people(state: &AppState) -> anyhow::Result<()> {
    let store = &state.services.store;
    store
        .create_tenant_with_id(TENANT, "Demo Kommune")
        .await
        .context("creating the demo municipality")?;
    for (id, name, team) in [
        (METTE, "Mette Jensen", "Bostøtte Nord"),
        (JONAS, "Jonas Holm", "Hjemmeplejen Syd"),
        (OLE, "Ole Drift", "IT-drift"),
        (ANNE, "Anne Admin", "IT-drift"),
    ] {
        store
            .create_staff_with_id(id, TENANT, name, Some(team))
            .await?;
    }
    for (id, name) in [
        (KAREN, "Karen J."),
        (POUL, "Poul A."),
        (BIRTHE, "Birthe S."),
    ] {
        store.create_citizen_with_id(id, TENANT, name).await?;
    }
    // Mette leads her team (reports), Jonas delivers visits, Ole watches call quality, Anne
    // administers accounts and the audit log.
    for (username, staff, roles) in [
        (DEMO_USER, METTE, &[Role::Staff, Role::TeamLead][..]),
        ("jonas", JONAS, &[Role::Staff][..]),
        ("ole", OLE, &[Role::Ops][..]),
        ("anne", ANNE, &[Role::Admin][..]),
    ] {
        state
            .services
            .accounts
            .create_with_roles(
                username,
                DEMO_PASSWORD,
                staff.id_into(),
                TENANT.id_into(),
                Roles::of(roles),
            )
            .await?;
    }
    Ok(())
}

/// Today's visits, relative to now: the first starts in five minutes, inside its link window.
async fn create_visits(state: &AppState, now: DateTime<Utc>) -> anyhow::Result<()> {
    let base = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    let plan = [
        (METTE, KAREN, LegalBasis::Sel85, 5, 15),
        (METTE, POUL, LegalBasis::Sel85, 60, 10),
        (METTE, BIRTHE, LegalBasis::Sel83, 150, 15),
        (JONAS, BIRTHE, LegalBasis::Sel83, 30, 10),
        (JONAS, POUL, LegalBasis::Sel83a, 90, 20),
    ];
    for (staff, citizen, legal_basis, in_minutes, duration) in plan {
        let created = state
            .services
            .store
            .create_visit(NewVisit {
                legal_basis,
                ..NewVisit::simple(
                    TENANT,
                    staff,
                    citizen,
                    base + Duration::minutes(in_minutes),
                    duration,
                )
            })
            .await;
        match created {
            Ok(_) => {}
            // An earlier demo visit still holds the slot: keep it.
            Err(StoreError::Conflict(c)) => {
                tracing::info!(conflict = %c.visit, "demo visit skipped: the slot is taken");
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}
