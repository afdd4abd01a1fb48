//! The staff calendar feed: a per-staff secret URL serving the staff member's visits as an
//! RFC 5545 iCalendar (with a VTIMEZONE for Europe/Copenhagen) that Outlook and other
//! calendars subscribe to. The token is stored only as a hash, revocable and re-issuable.
//! Events carry no citizen data beyond the display name (or initials, by configuration);
//! no purpose text, no notes.

use crate::config::FeedNames;
use crate::http::problem::Problem;
use crate::http::session::StaffSession;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus};
use serde::Serialize;
use skaerm_auth::citizen_link::CitizenLinkSecret;
use skaerm_scheduling::{CitizenId, TIME_ZONE, Visit, VisitStatus};
use std::collections::HashMap;
use utoipa::ToSchema;

/// How far back and ahead the feed reaches.
const PAST: Duration = Duration::days(31);
const AHEAD: Duration = Duration::days(120);
/// Most events in one feed.
const MAX_EVENTS: usize = 2000;

/// Europe/Copenhagen as RFC 5545 VTIMEZONE (EU rules: last Sunday of March and October).
const VTIMEZONE: &str = "BEGIN:VTIMEZONE\r\n\
TZID:Europe/Copenhagen\r\n\
X-LIC-LOCATION:Europe/Copenhagen\r\n\
BEGIN:DAYLIGHT\r\n\
TZOFFSETFROM:+0100\r\n\
TZOFFSETTO:+0200\r\n\
TZNAME:CEST\r\n\
DTSTART:19700329T020000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n\
END:DAYLIGHT\r\n\
BEGIN:STANDARD\r\n\
TZOFFSETFROM:+0200\r\n\
TZOFFSETTO:+0100\r\n\
TZNAME:CET\r\n\
DTSTART:19701025T030000\r\n\
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n\
END:STANDARD\r\n\
END:VTIMEZONE\r\n";

/// The subscription URL (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedUrl {
    url: String,
}

/// Issues the caller's calendar-feed URL, revoking the previous one.
#[utoipa::path(post, path = "/api/calendar-feed", tag = "calendar",
    responses((status = 200, body = FeedUrl)))]
pub async fn issue(
    State(state): State<AppState>,
    session: StaffSession,
) -> Result<Json<FeedUrl>, Problem> {
    let secret = CitizenLinkSecret::generate();
    state
        .services
        .store
        .set_calendar_feed(session.staff, secret.hash().0, Utc::now())
        .await?;
    tracing::info!(staff = %session.staff, "calendar feed issued");
    Ok(Json(FeedUrl {
        url: format!("{}/calendar/{}.ics", state.public_url, secret.expose()),
    }))
}

/// Revokes the caller's calendar-feed URL.
#[utoipa::path(delete, path = "/api/calendar-feed", tag = "calendar",
    responses((status = 204, description = "revoked")))]
pub async fn revoke(
    State(state): State<AppState>,
    session: StaffSession,
) -> Result<StatusCode, Problem> {
    state
        .services
        .store
        .revoke_calendar_feeds(session.staff, Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `K. J.` from `Karen J.`.
fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().next())
        .map(|c| format!("{c}."))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The feed (`GET /calendar/{token}.ics`); unknown and revoked tokens are 404.
#[utoipa::path(get, path = "/calendar/{token}", tag = "calendar",
    params(("token" = String, Path, description = "the secret token, with `.ics`")),
    responses((status = 200, description = "text/calendar"), (status = 404, description = "`not_found`")))]
pub async fn feed(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, Problem> {
    let token = token.strip_suffix(".ics").unwrap_or(&token);
    let secret = CitizenLinkSecret::parse(token).map_err(|_| Problem::not_found())?;
    let store = &state.services.store;
    let staff = store
        .find_calendar_feed(&secret.hash().0)
        .await?
        .ok_or_else(Problem::not_found)?;
    let now = Utc::now();
    let mut visits = store
        .list_visits_for_staff(staff, now - PAST, now + AHEAD)
        .await?;
    visits.truncate(MAX_EVENTS);
    let mut names: HashMap<CitizenId, String> = HashMap::new();
    let mut calendar = Calendar::new();
    calendar.name("Skærmbesøg");
    for visit in &visits {
        let name = match names.get(&visit.citizen_id) {
            Some(name) => name.clone(),
            None => {
                let citizen = store.get_citizen(visit.citizen_id).await?;
                let shown = match state.services.scheduling.feed_names {
                    FeedNames::Full => citizen.display_name,
                    FeedNames::Initials => initials(&citizen.display_name),
                };
                names.insert(visit.citizen_id, shown.clone());
                shown
            }
        };
        calendar.push(event(&state, visit, &name, now));
    }
    let text = calendar.done().to_string();
    // icalendar has no VTIMEZONE builder: the block goes right after the calendar's own
    // properties, before the first component.
    let at = text
        .find("BEGIN:VEVENT")
        .or_else(|| text.find("END:VCALENDAR"))
        .unwrap_or(text.len());
    let body = format!("{}{VTIMEZONE}{}", &text[..at], &text[at..]);
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response())
}

fn event(state: &AppState, visit: &Visit, citizen: &str, now: chrono::DateTime<Utc>) -> Event {
    let local = |t: chrono::DateTime<Utc>| (t.with_timezone(&TIME_ZONE).naive_local(), TIME_ZONE);
    let mut event = Event::new();
    event
        .uid(&format!("{}@skaerm", visit.id))
        .timestamp(now)
        .starts(local(visit.planned_start))
        .ends(local(visit.planned_end()))
        .summary(&format!("Skærmbesøg: {citizen}"))
        .description(visit.legal_basis.label_da())
        .url(&format!("{}/visit/{}", state.public_url, visit.id))
        .status(if visit.status == VisitStatus::Cancelled {
            EventStatus::Cancelled
        } else {
            EventStatus::Confirmed
        });
    event.done()
}

/// The staff calendar feed: this area's routes (merged in [`crate::http::router`]).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/calendar-feed", post(issue).delete(revoke))
        .route("/calendar/{token}", get(feed))
}

#[cfg(test)]
mod tests {
    use super::initials;

    #[test]
    fn initials_keep_only_first_letters() {
        assert_eq!(initials("Karen J."), "K. J.");
        assert_eq!(initials("Ærling Østergaard"), "Æ. Ø.");
        assert_eq!(initials(""), "");
    }
}
