//! The scheduling API end to end over real HTTP: a weekly series, one occurrence moved, a
//! double-booking refused, a visit completed and seen in the monthly report and delivered to a
//! real local webhook receiver (JSON + FHIR R4 Encounter, retried until acknowledged); the
//! OpenAPI document; recovery of a live visit after a restart.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::Result;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{Duration as ChronoDuration, Timelike, Utc};
use serde_json::{Value, json};
use skaerm_e2e::server::{Browser, PASSWORD, TestServer};
use skaerm_scheduling::TIME_ZONE;
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
    let server = TestServer::start_with(|c| {
        c.scheduling.export_webhook_url = Some(webhook.clone());
        c.scheduling.jobs_interval_secs = 1;
        c.scheduling.saved_drive_minutes = 40;
    })
    .await?;
    let m = server.municipality("Testkommune").await?;
    let tab = Browser::new(&server.url())?;
    tab.login(&m.username, PASSWORD).await?;

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
    // An unknown legal basis is refused with a problem, not a crash.
    let (status, body) = tab
        .post(
            "/api/visits",
            json!({"legal_basis": "sel_999", "citizen_id": m.citizen.id,
                   "planned_start": Utc::now().to_rfc3339(), "duration_minutes": 10}),
        )
        .await?;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));

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
    let tab = Browser::new(&server.url())?;
    tab.login(&m.username, PASSWORD).await?;
    tab.start_visit(&visit).await?;

    let server = server.restart().await?;
    let tab = Browser::new(&server.url())?;
    tab.login(&m.username, PASSWORD).await?;
    let (status, body) = tab.get(&format!("/api/visits/{}", visit.id)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["visit"]["status"], "technical_failure");
    assert_eq!(body["visit"]["ended_by"], "system");
    Ok(())
}
