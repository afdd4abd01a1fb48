//! Seeding the server's database before it starts: one municipality, and per visit one staff
//! member (with a local account), one citizen, one §85 visit starting in a few minutes and a
//! citizen link. Everything goes through the scheduling and auth crates' own APIs, as an
//! administrator's tooling would; this is the only module that knows them (the scheduling
//! store's API may change). Their ids meet through the server's one table, `skaerm_server::ids`.

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use futures_util::{StreamExt, TryStreamExt, stream};
use skaerm_auth::accounts::AccountStore;
use skaerm_auth::citizen_link::CitizenLinkSecret;
use skaerm_scheduling::{NewVisit, Store};
use skaerm_server::ids::IdInto;

/// Password of every seeded staff account.
pub const PASSWORD: &str = "loadtest-password";

/// What a synthetic visit needs to get its tokens the way users do.
#[derive(Debug, Clone)]
pub struct SeededVisit {
    /// The visit id (for `POST /api/visits/{id}/start`).
    pub visit_id: String,
    /// The staff member's username (password [`PASSWORD`]).
    pub username: String,
    /// The citizen link secret (for `POST /api/join/{secret}`).
    pub citizen_secret: String,
}

/// The SQLite URL the server uses for `data_dir` (its default when no URL is given).
pub fn sqlite_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}/skaerm.db", data_dir.display())
}

/// Creates `visits` visits in the database at `url` (created and migrated when missing).
pub async fn seed(url: &str, visits: u32) -> Result<Vec<SeededVisit>> {
    let store = Store::open(url).await.context("opening the database")?;
    skaerm_auth::migrate(store.pool())
        .await
        .context("migrating auth tables")?;
    let accounts = AccountStore::new(store.pool().clone());
    let tenant = store.create_tenant("Loadtest Kommune").await?;
    let now = Utc::now();
    let mut people = Vec::with_capacity(visits as usize);
    for i in 0..visits {
        let staff = store
            .create_staff(tenant.id, &format!("Staff {i}"), Some("Load"))
            .await?;
        let citizen = store
            .create_citizen(tenant.id, &format!("Citizen {i}"))
            .await?;
        let visit = store
            .create_visit(NewVisit::simple(
                tenant.id,
                staff.id,
                citizen.id,
                now + Duration::minutes(5),
                240,
            ))
            .await?;
        let secret = CitizenLinkSecret::generate();
        store
            .set_citizen_link(visit.id, secret.hash().0, now)
            .await?;
        people.push((staff.id, visit.id, secret.expose().to_owned()));
    }
    // Password hashing is the slow part: a few at a time.
    let seeded: Vec<SeededVisit> = stream::iter(people)
        .map(|(staff, visit, secret)| {
            let accounts = accounts.clone();
            let tenant = tenant.id;
            async move {
                let username = format!("load-{staff}");
                accounts
                    .create(&username, PASSWORD, staff.id_into(), tenant.id_into())
                    .await
                    .context("creating a staff account")?;
                anyhow::Ok(SeededVisit {
                    visit_id: visit.to_string(),
                    username,
                    citizen_secret: secret,
                })
            }
        })
        .buffered(4)
        .try_collect()
        .await?;
    store.pool().close().await;
    Ok(seeded)
}
