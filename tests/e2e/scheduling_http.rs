//! The scheduling API end to end over real HTTP: a weekly series, one occurrence moved, a
//! double-booking refused, a visit completed and seen in the monthly report and delivered to a
//! real local webhook receiver (JSON + FHIR R4 Encounter, retried until acknowledged); the
//! OpenAPI document; recovery of a live visit after a restart.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::Result;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Duration as ChronoDuration, Timelike, Utc};
use serde_json::{Value, json};
use skaerm_e2e::participant::Participant;
use skaerm_e2e::server::{Browser, Municipality, TestServer};
use skaerm_e2e::setup::AUDIO_ONLY;
use skaerm_scheduling::{NewVisit, OutboxKind, Store, TIME_ZONE, Visit};
use skaerm_server::config::FeedNames;
use skaerm_server::jobs::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver saw: (Idempotency-Key, body, status it answered).
type Seen = Arc<Mutex<Vec<(String, Value, u16)>>>;

/// A care-record receiver on 127.0.0.1:0 that refuses the first delivery (503) and accepts
/// the rest, recording everything.
async fn receiver() -> Result<(String, Seen)> {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/records",
            post(
                |State(seen): State<Seen>, headers: HeaderMap, body: axum::Json<Value>| async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let mut seen = seen.lock().unwrap();
                    let status = if seen.is_empty() {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    seen.push((key, body.0, status.as_u16()));
                    status
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/records", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, seen))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_move_conflict_completion_report_and_export() -> Result<()> {
    let (webhook, seen) = receiver().await?;
    let server = TestServer::start_adjusted(&[], |c| {
        c.scheduling.export_webhook_url = Some(webhook.clone());
        c.scheduling.jobs_interval_secs = 1;
        c.scheduling.saved_drive_minutes = 40;
    })
    .await?;
    let m = server.municipality("Testkommune").await?;
    let tab = server.signed_in(&m.username).await?;

    // A weekly series whose first occurrence starts in five minutes (Copenhagen time).
    let first = (Utc::now() + ChronoDuration::minutes(5)).with_timezone(&TIME_ZONE);
    let start_local = first
        .naive_local()
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let (status, body) = tab
        .post(
            "/api/series",
            json!({
                "legal_basis": "sel_85",
                "purpose": "Struktur på ugen",
                "citizen_id": m.citizen.id,
                "start_local": start_local.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "duration_minutes": 15,
                "rrule": "FREQ=WEEKLY;COUNT=4",
            }),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let visits = body["visits"].as_array().unwrap().clone();
    assert_eq!(visits.len(), 4);
    assert_eq!(body["series"]["time_zone"], "Europe/Copenhagen");
    let local_hour_minute: Vec<String> = visits
        .iter()
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v["planned_start"].as_str().unwrap())
                .unwrap()
                .with_timezone(&TIME_ZONE)
                .format("%a %H:%M")
                .to_string()
        })
        .collect();
    assert!(
        local_hour_minute.iter().all(|t| *t == local_hour_minute[0]),
        "same weekday and local time every week: {local_hour_minute:?}"
    );
    assert_eq!(visits[0]["status"], "ready");
    assert_eq!(visits[1]["status"], "planned");
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();

    // Move the second occurrence ("this one") a day later.
    let second_start =
        chrono::DateTime::parse_from_rfc3339(visits[1]["planned_start"].as_str().unwrap())?;
    let moved_to = second_start + ChronoDuration::days(1);
    let (status, body) = tab
        .post(
            &format!("/api/visits/{}/move", id(&visits[1])),
            json!({"planned_start": moved_to.to_rfc3339()}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"]["is_exception"], true);
    assert_eq!(
        body["visit"]["occurrence_start"],
        visits[1]["planned_start"]
    );

    // A visit overlapping the third occurrence is refused, naming it.
    let third_start =
        chrono::DateTime::parse_from_rfc3339(visits[2]["planned_start"].as_str().unwrap())?;
    let (status, body) = tab
        .post(
            "/api/visits",
            json!({
                "legal_basis": "sel_83",
                "citizen_id": m.citizen.id,
                "planned_start": (third_start + ChronoDuration::minutes(10)).to_rfc3339(),
                "duration_minutes": 10,
            }),
        )
        .await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "conflict");
    assert_eq!(body["conflicting_visit"]["id"], visits[2]["id"]);
    let (_, content_type, _) = tab
        .get_text(&format!("/api/visits/{}", "not-a-uuid"))
        .await?;
    assert_eq!(content_type, "application/problem+json");
    // So is moving the fourth occurrence onto the third.
    let (status, body) = tab
        .post(
            &format!("/api/visits/{}/move", id(&visits[3])),
            json!({"planned_start": third_start.to_rfc3339()}),
        )
        .await?;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")));
    // "This and following" from the fourth occurrence: 20 minutes under §83 from there on.
    let series_id = visits[0]["series_id"].as_str().unwrap().to_owned();
    let (status, body) = tab
        .post(
            &format!("/api/series/{series_id}/edit"),
            json!({"from_occurrence": visits[3]["occurrence_start"],
                   "duration_minutes": 20, "legal_basis": "sel_83"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["series"]["id"], series_id.as_str());
    let edited = body["visits"].as_array().unwrap();
    assert_eq!(edited.len(), 1);
    assert_eq!(edited[0]["duration_minutes"], 20);
    assert_eq!(edited[0]["legal_basis"], "sel_83");
    assert_eq!(edited[0]["planned_start"], visits[3]["planned_start"]);
    let (status, body) = tab.get(&format!("/api/series/{series_id}")).await?;
    assert_eq!(status, 200);
    assert_eq!(body["visits"].as_array().unwrap().len(), 3);
    assert!(body["series"]["ends_before"].is_string());
    // An unknown legal basis is refused with a problem, not a crash.
    let (status, body) = tab
        .post(
            "/api/visits",
            json!({"legal_basis": "sel_999", "citizen_id": m.citizen.id,
                   "planned_start": Utc::now().to_rfc3339(), "duration_minutes": 10}),
        )
        .await?;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));

    // One citizen link for the whole series opens the occurrence that is due.
    let (status, body) = tab
        .post(&format!("/api/series/{series_id}/citizen-link"), json!({}))
        .await?;
    assert_eq!(status, 200, "{body}");
    let series_secret = body["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let citizen_tab = Browser::new(&server.url())?;
    let (status, body) = citizen_tab.exchange_link(&series_secret).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"]["id"], visits[0]["id"]);

    // Complete the first occurrence.
    let (status, body) = tab
        .post(&format!("/api/visits/{}/start", id(&visits[0])), json!({}))
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"]["status"], "in_progress");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = tab
        .post(
            &format!("/api/visits/{}/end", id(&visits[0])),
            json!({"outcome": "completed", "note": "Gik godt"}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"]["status"], "completed");
    assert_eq!(body["visit"]["ended_by"], m.staff.id.to_string());
    assert!(body["visit"]["actual_duration_seconds"].as_i64().unwrap() >= 1);
    // Ending it again is an illegal transition.
    let (status, body) = tab
        .post(
            &format!("/api/visits/{}/end", id(&visits[0])),
            json!({"outcome": "no_show"}),
        )
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("illegal_transition"))
    );

    // The series link now points at the next occurrence, a week (and a day) away.
    let (status, body) = citizen_tab.exchange_link(&series_secret).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("not_yet_open")),
        "{body}"
    );

    // The monthly report counts it.
    let month = first.format("%Y-%m").to_string();
    let (status, report) = tab
        .get(&format!("/api/reports/monthly?month={month}"))
        .await?;
    assert_eq!(status, 200, "{report}");
    let line = report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["legal_basis"] == "sel_85")
        .cloned()
        .unwrap();
    assert_eq!(line["team"], "Team");
    assert_eq!(line["completed"], 1);
    assert_eq!(line["saved_driving_minutes"], 40);
    assert!(line["average_duration_seconds"].as_f64().unwrap() >= 1.0);
    let (status, content_type, csv) = tab
        .get_text(&format!("/api/reports/monthly?month={month}&format=csv"))
        .await?;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(csv.starts_with("month,team,legal_basis,"), "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("{month},Team,sel_85,"))),
        "{csv}"
    );
    let (status, body) = tab.get("/api/reports/monthly?team=Other").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden_team"))
    );
    // Reports are for team leads: a colleague doing care work only is refused.
    let colleague = server.colleague(&m, "Plain Staff").await?;
    let plain = server.signed_in(&colleague.username).await?;
    let (status, body) = plain.get("/api/reports/monthly").await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden_role")),
        "{body}"
    );

    // The export reaches the receiver: refused once, retried with the same key, acknowledged.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let done = seen.lock().unwrap().iter().any(|(_, _, s)| *s == 200);
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no acknowledged export: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give a wrongly repeated delivery the chance to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        2,
        "one refusal and one acknowledged delivery: {seen:?}"
    );
    assert_eq!(seen[0].0, seen[1].0, "same Idempotency-Key on retry");
    assert!(!seen[1].0.is_empty());
    let body = &seen[1].1;
    assert_eq!(body["type"], "care_record");
    assert_eq!(body["record"]["visit_id"], visits[0]["id"]);
    assert_eq!(body["record"]["legal_basis"], "sel_85");
    assert_eq!(body["record"]["outcome"], "completed");
    assert_eq!(body["record"]["citizen_id"], m.citizen.id.to_string());
    assert_eq!(body["record"]["note"], "Gik godt");
    assert_eq!(body["fhir"]["resourceType"], "Encounter");
    assert_eq!(body["fhir"]["status"], "finished");
    assert_eq!(body["fhir"]["class"]["code"], "VR");
    assert_eq!(body["fhir"]["id"], visits[0]["id"]);
    // Nothing about the citizen but the pseudonymous id leaves Skærm.
    assert!(!body.to_string().contains(&m.citizen.display_name));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_api() -> Result<()> {
    let server = TestServer::start().await?;
    let (status, doc) = Browser::new(&server.url())?
        .get("/api/openapi.json")
        .await?;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/visits",
        "/api/visits/{id}/move",
        "/api/visits/{id}/end",
        "/api/series",
        "/api/series/{id}/edit",
        "/api/reports/monthly",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    let bases = &doc["components"]["schemas"]["LegalBasis"]["enum"];
    assert_eq!(
        bases,
        &json!(["sel_85", "sel_83", "sel_83a", "sel_86", "sul_138"])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_live_at_restart_is_closed_as_technical_failure() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let tab = server.signed_in(&m.username).await?;
    tab.start_visit(&visit).await?;

    // No export webhook before the restart: the record waits in the outbox. After it, with
    // a receiver configured, the recovered visit's record is delivered.
    let (webhook, seen) = receiver().await?;
    let server = server
        .restart_with(|c| {
            c.scheduling.export_webhook_url = Some(webhook);
            c.scheduling.jobs_interval_secs = 1;
        })
        .await?;
    let tab = server.signed_in(&m.username).await?;
    let (status, body) = tab.get(&format!("/api/visits/{}", visit.id)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"]["status"], "technical_failure");
    assert_eq!(body["visit"]["ended_by"], "system");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.lock().unwrap().iter().any(|(_, _, s)| *s == 200) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "export not delivered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let record = &seen.last().unwrap().1;
    assert_eq!(record["record"]["visit_id"], visit.id.to_string());
    assert_eq!(record["record"]["outcome"], "technical_failure");
    assert_eq!(record["record"]["ended_by"]["kind"], "system");
    Ok(())
}

/// A visit its staff member started, then a restart of the server with a rejoin grace of 2 s:
/// the restarted server, the visit and the staff member's new signed-in tab.
async fn a_visit_started_then_a_restart_with_grace() -> Result<(TestServer, Visit, Browser)> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    server
        .signed_in(&m.username)
        .await?
        .start_visit(&visit)
        .await?;

    let server = server
        .restart_with(|c| c.scheduling.rejoin_grace_secs = 2)
        .await?;
    let tab = server.signed_in(&m.username).await?;
    Ok((server, visit, tab))
}

#[tokio::test]
async fn after_a_restart_a_live_visit_waits_for_a_rejoin_then_is_closed_if_nobody_came()
-> Result<()> {
    let (_server, abandoned, tab) = a_visit_started_then_a_restart_with_grace().await?;
    // Inside the grace period the visit is still live and staff can rejoin it.
    let (status, body) = tab.get(&format!("/api/visits/{}", abandoned.id)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"]["status"], "in_progress");
    let (status, body) = tab
        .post(
            &format!("/api/visits/{}/media-token", abandoned.id),
            json!({}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    // Nobody did: after the grace it is closed as a technical failure by the system.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = tab.get(&format!("/api/visits/{}", abandoned.id)).await?;
        if body["visit"]["status"] == "technical_failure" {
            assert_eq!(body["visit"]["ended_by"], "system");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not closed: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

#[tokio::test]
async fn after_a_restart_a_visit_whose_staff_rejoined_stays_live() -> Result<()> {
    let (server, visit, tab) = a_visit_started_then_a_restart_with_grace().await?;
    let (status, body) = tab
        .post(&format!("/api/visits/{}/media-token", visit.id), json!({}))
        .await?;
    assert_eq!(status, 200, "{body}");
    let token = body["media_token"].as_str().unwrap_or_default().to_owned();
    let staff = Participant::join(&server.ws_url(), &token, AUDIO_ONLY, None)
        .await?
        .joined();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, body) = tab.get(&format!("/api/visits/{}", visit.id)).await?;
    assert_eq!(body["visit"]["status"], "in_progress", "{body}");
    staff.leave().await?;
    Ok(())
}

/// Makes sure Python's `icalendar` (an independent RFC 5545 parser, from PyPI) is importable.
fn python_icalendar() -> Result<()> {
    let ok = |out: std::io::Result<std::process::Output>| {
        out.map(|o| o.status.success()).unwrap_or(false)
    };
    let check = || {
        std::process::Command::new("python3")
            .args(["-c", "import icalendar"])
            .output()
    };
    if ok(check()) {
        return Ok(());
    }
    for extra in [&[][..], &["--break-system-packages"][..]] {
        let _ = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--user", "icalendar"])
            .args(extra)
            .output();
        if ok(check()) {
            return Ok(());
        }
    }
    anyhow::bail!("python3 with the icalendar package is needed (pip install icalendar)")
}

/// Parses an iCalendar text with Python's `icalendar` and returns what it found as JSON.
fn parse_with_python(ics: &str) -> Result<Value> {
    python_icalendar()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("feed.ics");
    std::fs::write(&path, ics)?;
    let script = r#"
import json, sys, icalendar
cal = icalendar.Calendar.from_ical(open(sys.argv[1], 'rb').read())
tzs = [str(c['TZID']) for c in cal.walk('VTIMEZONE')]
events = []
for e in cal.walk('VEVENT'):
    start = e.decoded('DTSTART')
    events.append({
        'uid': str(e['UID']),
        'summary': str(e['SUMMARY']),
        'description': str(e.get('DESCRIPTION', '')),
        'status': str(e.get('STATUS', '')),
        'tzid': e['DTSTART'].params.get('TZID'),
        'start_utc': start.astimezone(__import__('datetime').timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'local_hour': start.hour,
    })
print(json.dumps({'timezones': tzs, 'events': events}))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&path)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "python could not parse the feed: {}\n{ics}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_feed_parses_with_an_independent_parser() -> Result<()> {
    for (names, expected) in [
        (FeedNames::Full, None),
        (FeedNames::Initials, Some("C. o. T.")),
    ] {
        let server = TestServer::start_adjusted(&[], |c| c.scheduling.feed_names = names).await?;
        let m = server.municipality("Testkommune").await?;
        let soon = server.visit_soon(&m).await?;
        let tab = server.signed_in(&m.username).await?;
        let (status, body) = tab.post("/api/calendar-feed", json!({})).await?;
        assert_eq!(status, 200, "{body}");
        let url = body["url"].as_str().unwrap().to_owned();
        let path = url.trim_start_matches(&server.url()).to_owned();
        assert!(
            path.starts_with("/calendar/") && path.ends_with(".ics"),
            "{url}"
        );

        // Anyone with the URL (a calendar program, no session) can read it.
        let anonymous = Browser::new(&server.url())?;
        let (status, content_type, ics) = anonymous.get_text(&path).await?;
        assert_eq!(status, 200);
        assert!(content_type.starts_with("text/calendar"), "{content_type}");
        let parsed = parse_with_python(&ics)?;
        assert_eq!(parsed["timezones"], json!(["Europe/Copenhagen"]));
        let events = parsed["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{parsed}");
        let event = &events[0];
        assert_eq!(event["uid"], format!("{}@skaerm", soon.id));
        assert_eq!(event["tzid"], "Europe/Copenhagen");
        assert_eq!(
            event["start_utc"],
            soon.planned_start.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        );
        assert_eq!(
            event["local_hour"],
            soon.planned_start.with_timezone(&TIME_ZONE).hour()
        );
        assert_eq!(event["description"], "SEL §85 socialpædagogisk støtte");
        let summary = event["summary"].as_str().unwrap();
        match expected {
            None => assert_eq!(summary, format!("Skærmbesøg: {}", m.citizen.display_name)),
            Some(initials) => {
                assert_eq!(summary, format!("Skærmbesøg: {initials}"));
                assert!(!ics.contains(&m.citizen.display_name));
            }
        }

        // Re-issuing revokes the old URL; revoking ends the new one too.
        let (_, body) = tab.post("/api/calendar-feed", json!({})).await?;
        let new_path = body["url"]
            .as_str()
            .unwrap()
            .trim_start_matches(&server.url())
            .to_owned();
        assert_eq!(anonymous.get_text(&path).await?.0, 404);
        assert_eq!(anonymous.get_text(&new_path).await?.0, 200);
        let (response, _) = tab.delete("/api/calendar-feed").await?;
        assert_eq!(response, 204);
        assert_eq!(anonymous.get_text(&new_path).await?.0, 404);
        assert_eq!(anonymous.get_text("/calendar/garbage.ics").await?.0, 404);
    }
    Ok(())
}

/// A reminder sender that records what it was given, or fails.
#[derive(Default)]
struct Recording {
    sent: Mutex<Vec<skaerm_scheduling::OutboxMessage>>,
    fail: bool,
}

impl Sender for Recording {
    fn send<'a>(
        &'a self,
        message: &'a skaerm_scheduling::OutboxMessage,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if self.fail {
                return Err("receiver down".into());
            }
            self.sent.lock().unwrap().push(message.clone());
            Ok(())
        })
    }
}

/// A 15-minute visit of `m` starting `minutes` after `now`, planned a day before `now`.
async fn planned_a_day_before(
    store: &Store,
    m: &Municipality,
    now: DateTime<Utc>,
    minutes: i64,
) -> Result<Visit> {
    let planned = NewVisit::simple(
        m.tenant.id,
        m.staff.id,
        m.citizen.id,
        now + ChronoDuration::minutes(minutes),
        15,
    );
    Ok(store
        .create_visit_at(planned, now - ChronoDuration::days(1))
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_go_out_once_retry_and_skip_moved_visits() -> Result<()> {
    let server =
        TestServer::start_adjusted(&[], |c| c.scheduling.jobs_interval_secs = 3600).await?;
    let m = server.municipality("Testkommune").await?;
    let services = &server.server.state().services;
    let store = &services.store;
    let now = Utc::now();
    // Planned yesterday for in ten minutes: both reminders (24 h and 15 min before) are due.
    let visit = planned_a_day_before(store, &m, now, 10).await?;
    let ok = Recording::default();
    assert_eq!(jobs::deliver(services, OutboxKind::Reminder, &ok).await?, 2);
    let sent = ok.sent.lock().unwrap().clone();
    let mut minutes: Vec<i64> = sent
        .iter()
        .map(|m| m.payload["minutes_before"].as_i64().unwrap())
        .collect();
    minutes.sort();
    assert_eq!(minutes, vec![15, 1440]);
    assert!(sent.iter().all(|m| m.visit_id == Some(visit.id)));
    // Delivered once: a second run sends nothing.
    assert_eq!(jobs::deliver(services, OutboxKind::Reminder, &ok).await?, 0);
    assert_eq!(ok.sent.lock().unwrap().len(), 2);

    // A failing receiver: the reminder stays and is retried after the backoff.
    let later = planned_a_day_before(store, &m, now, 40).await?;
    let down = Recording {
        fail: true,
        ..Recording::default()
    };
    assert_eq!(
        jobs::deliver(services, OutboxKind::Reminder, &down).await?,
        0
    );
    let queued = store.messages_for_visit(later.id).await?;
    let failed = queued.iter().find(|m| m.attempts == 1).unwrap();
    assert_eq!(failed.last_error.as_deref(), Some("receiver down"));
    assert_eq!(failed.delivered_at, None);
    // The visit is moved meanwhile: the old reminder is dropped, not sent.
    store
        .move_visit(
            later.id,
            now + ChronoDuration::minutes(50),
            None,
            Utc::now(),
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let fresh = Recording::default();
    jobs::deliver(services, OutboxKind::Reminder, &fresh).await?;
    assert!(fresh.sent.lock().unwrap().is_empty());
    let dropped = store
        .messages_for_visit(later.id)
        .await?
        .into_iter()
        .find(|m| m.id == failed.id)
        .unwrap();
    assert!(dropped.dropped_at.is_some());
    assert_eq!(dropped.last_error.as_deref(), Some("visit moved"));
    Ok(())
}

/// Polls the visit until its status is `want`.
async fn wait_status(tab: &Browser, visit: &str, want: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, body) = tab.get(&format!("/api/visits/{visit}")).await?;
        if body["visit"]["status"] == want {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "status stayed {} instead of {want}",
            body["visit"]["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_citizen_joining_and_leaving_moves_the_visit_between_ready_and_waiting() -> Result<()> {
    let server = TestServer::start().await?;
    let m = server.municipality("Testkommune").await?;
    let visit = server.visit_soon(&m).await?;
    let id = visit.id.to_string();
    let staff = server.signed_in(&m.username).await?;
    wait_status(&staff, &id, "ready").await?;
    let secret = staff.citizen_link(&visit).await?;
    let (status, body) = Browser::new(&server.url())?.exchange_link(&secret).await?;
    assert_eq!(status, 200, "{body}");
    let token = body["media_token"].as_str().unwrap().to_owned();
    let citizen = Participant::join(&server.ws_url(), &token, AUDIO_ONLY, None)
        .await?
        .joined();
    wait_status(&staff, &id, "waiting").await?;
    citizen.leave().await?;
    wait_status(&staff, &id, "ready").await?;
    staff.start_visit(&visit).await?;
    wait_status(&staff, &id, "in_progress").await?;
    Ok(())
}
