//! Durability under `kill -9`: the real `skaerm` binary (a child process with its own data
//! directory) takes concurrent series edits ("this and following"), visit creates and moves over
//! real HTTP, is killed with SIGKILL at a random moment, and is restarted on the same data. After
//! every restart: each series is wholly old or wholly new (every occurrence exactly once, each
//! visit carrying its own series' template, none after its series' end, none orphaned), no staff
//! member is double-booked, the visit that was `in_progress` is `technical_failure`, and every
//! write that was acknowledged (2xx) is there.
//!
//! SQLite always; PostgreSQL too when `TEST_DATABASE_URL` is set (in a schema of its own).
//! The binary is `target/debug/skaerm` (the workspace build) or `$SKAERM_BIN`.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration as ChronoDuration, NaiveTime, Utc};
use serde_json::{Value, json};
use skaerm_e2e::server::{Browser, Municipality, PASSWORD, TestServer};
use skaerm_scheduling::TIME_ZONE;
use sqlx::Executor;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Kills per run (each at its own random delay; bounded so the test takes seconds).
const ROUNDS: usize = 4;
/// Occurrences of the daily series.
const OCCURRENCES: usize = 20;

fn binary() -> Result<PathBuf> {
    let path = match std::env::var_os("SKAERM_BIN") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/skaerm"),
    };
    if !path.exists() {
        bail!(
            "{} is missing: build it first (`cargo build -p skaerm-server --bin skaerm`)",
            path.display()
        );
    }
    Ok(path)
}

/// The `skaerm` binary running as a child process.
struct Running {
    child: Child,
    url: String,
}

async fn spawn(data_dir: &Path, database_url: Option<&str>) -> Result<Running> {
    let mut command = Command::new(binary()?);
    command
        .args(["--listen", "127.0.0.1:0", "--no-demo", "--udp-port", "0"])
        .args(["--udp-bind-ip", "127.0.0.1", "--announce-ip", "127.0.0.1"])
        .args(["--rejoin-grace-secs", "0"])
        .args(["--media-workers", "1", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    let mut child = command.spawn().context("spawning skaerm")?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("skaerm did not get ready in 60 s")??
        .context("skaerm exited before it was ready")?;
    let url = line
        .strip_prefix("skaerm ready: ")
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_owned();
    Ok(Running { child, url })
}

/// What the clients sent and what was acknowledged.
#[derive(Default, Clone)]
struct Ledger {
    /// Visit id → the planned starts it may have now: the last acknowledged one and every one
    /// attempted after it (a write may commit and the process die before answering).
    visits: HashMap<String, Vec<DateTime<Utc>>>,
    /// Acknowledged series edits: new series id → its purpose.
    series: Vec<(String, String)>,
    /// Visits that were `in_progress` when the process was killed.
    live: Vec<String>,
    acked: usize,
}

type Shared = Arc<Mutex<Ledger>>;

fn rand_below(n: u64) -> u64 {
    rand::random::<u64>() % n
}

fn parse_time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// A random afternoon slot 1–10 days ahead (the series is in the morning).
fn random_slot() -> DateTime<Utc> {
    let day = Utc::now().with_timezone(&TIME_ZONE).date_naive()
        + ChronoDuration::days(1 + rand_below(10) as i64);
    let time =
        NaiveTime::from_hms_opt(12 + rand_below(4) as u32, 5 * rand_below(12) as u32, 0).unwrap();
    day.and_time(time)
        .and_local_timezone(TIME_ZONE)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

/// The series at the end of the chain: the one owning the last occurrence.
async fn head_series(tab: &Browser) -> Result<String> {
    let visits = all_visits(tab).await?;
    visits
        .iter()
        .filter(|v| !v["series_id"].is_null())
        .max_by_key(|v| parse_time(&v["occurrence_start"]))
        .map(|v| v["series_id"].as_str().unwrap().to_owned())
        .context("no series visits")
}

async fn all_visits(tab: &Browser) -> Result<Vec<Value>> {
    let from = (Utc::now() - ChronoDuration::days(1)).to_rfc3339();
    let to = (Utc::now() + ChronoDuration::days(60)).to_rfc3339();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let (status, body) = tab
            .get(&format!(
                "/api/visits?from={}&to={}&limit=500&offset={offset}",
                urlencode(&from),
                urlencode(&to)
            ))
            .await?;
        if status != 200 {
            bail!("listing visits: {status} {body}");
        }
        out.extend(body["visits"].as_array().unwrap().iter().cloned());
        match body["next_offset"].as_u64() {
            Some(next) => offset = next,
            None => return Ok(out),
        }
    }
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// "This and following" edits on the head of the series chain, until stopped or refused by a
/// dead server.
async fn series_editor(
    tab: Arc<Browser>,
    ledger: Shared,
    stop: Arc<AtomicBool>,
    n: Arc<AtomicU32>,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(head) = head_series(&tab).await else {
            return;
        };
        let Ok((200, body)) = tab.get(&format!("/api/series/{head}")).await else {
            return;
        };
        let visits = body["visits"].as_array().cloned().unwrap_or_default();
        if visits.len() < 2 {
            // Editing from the first occurrence would only replace the series as a whole.
            continue;
        }
        let from = &visits[1 + rand_below(visits.len() as u64 - 1) as usize]["occurrence_start"];
        let k = n.fetch_add(1, Ordering::Relaxed);
        let purpose = format!("edit {k}");
        let result = tab
            .post(
                &format!("/api/series/{head}/edit"),
                json!({"from_occurrence": from, "purpose": purpose,
                       "duration_minutes": 30 + 5 * (k % 3)}),
            )
            .await;
        match result {
            Ok((200, body)) => {
                let mut ledger = ledger.lock().unwrap();
                ledger.acked += 1;
                ledger
                    .series
                    .push((body["series"]["id"].as_str().unwrap().to_owned(), purpose));
            }
            Ok((409, body)) => eprintln!("edit refused: {}", body["code"]), // stale or conflict
            Ok((status, body)) => panic!("series edit answered {status} {body}"),
            Err(_) => return, // killed
        }
    }
}

/// Creates visits and moves the ones it created (only those, so each visit's writes are
/// sequential and its possible states known), until stopped or refused by a dead server.
async fn booker(tab: Arc<Browser>, m: Arc<Municipality>, ledger: Shared, stop: Arc<AtomicBool>) {
    let mut mine: Vec<String> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let slot = random_slot();
        if mine.is_empty() || rand_below(2) == 0 {
            let result = tab
                .post(
                    "/api/visits",
                    json!({"legal_basis": "sel_83", "citizen_id": m.citizen.id,
                           "planned_start": slot, "duration_minutes": 30}),
                )
                .await;
            match result {
                Ok((201, body)) => {
                    let mut ledger = ledger.lock().unwrap();
                    ledger.acked += 1;
                    let id = body["visit"]["id"].as_str().unwrap().to_owned();
                    ledger.visits.insert(id.clone(), vec![slot]);
                    mine.push(id);
                }
                Ok((409, _)) => {}
                Ok((status, body)) => panic!("create answered {status} {body}"),
                Err(_) => return,
            }
        } else {
            let id = &mine[rand_below(mine.len() as u64) as usize];
            ledger
                .lock()
                .unwrap()
                .visits
                .get_mut(id)
                .unwrap()
                .push(slot);
            let result = tab
                .post(
                    &format!("/api/visits/{id}/move"),
                    json!({"planned_start": slot}),
                )
                .await;
            match result {
                Ok((200, _)) => {
                    let mut ledger = ledger.lock().unwrap();
                    ledger.acked += 1;
                    *ledger.visits.get_mut(id).unwrap() = vec![slot];
                }
                Ok((409, _)) => {
                    // Refused: the attempt is not a possible state.
                    ledger.lock().unwrap().visits.get_mut(id).unwrap().pop();
                }
                Ok((status, body)) => panic!("move answered {status} {body}"),
                Err(_) => return,
            }
        }
    }
}

async fn logged_in(url: &str, m: &Municipality) -> Result<Arc<Browser>> {
    let tab = Browser::new(url)?;
    tab.login(&m.username, PASSWORD).await?;
    Ok(Arc::new(tab))
}

/// The invariants after a restart.
async fn check(
    tab: &Browser,
    ledger: &Ledger,
    occurrences: &BTreeSet<DateTime<Utc>>,
) -> Result<()> {
    let visits = all_visits(tab).await?;

    // No double booking among visits that occupy the staff member.
    let mut busy: Vec<(DateTime<Utc>, DateTime<Utc>, String)> = visits
        .iter()
        .filter(|v| {
            !matches!(
                v["status"].as_str().unwrap(),
                "cancelled" | "no_show" | "technical_failure"
            )
        })
        .map(|v| {
            (
                parse_time(&v["planned_start"]),
                parse_time(&v["planned_end"]),
                v["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    busy.sort();
    for pair in busy.windows(2) {
        assert!(
            pair[0].1 <= pair[1].0,
            "double-booked: {} and {}",
            pair[0].2,
            pair[1].2
        );
    }

    // Nothing live survives a restart; the visits that were live are technical failures.
    assert!(
        visits
            .iter()
            .all(|v| !matches!(v["status"].as_str().unwrap(), "in_progress" | "waiting")),
        "a visit is still live after the restart"
    );
    for id in &ledger.live {
        let (status, body) = tab.get(&format!("/api/visits/{id}")).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["visit"]["status"], "technical_failure", "{body}");
        assert_eq!(body["visit"]["ended_by"], "system", "{body}");
    }

    // The series chain: every occurrence exactly once, every visit matching its own series.
    let mut seen: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
    let mut series_cache: HashMap<String, Value> = HashMap::new();
    for v in visits.iter().filter(|v| !v["series_id"].is_null()) {
        let occurrence = parse_time(&v["occurrence_start"]);
        *seen.entry(occurrence).or_default() += 1;
        let sid = v["series_id"].as_str().unwrap().to_owned();
        if !series_cache.contains_key(&sid) {
            let (status, body) = tab.get(&format!("/api/series/{sid}")).await?;
            assert_eq!(
                status, 200,
                "orphan occurrence {}: series {sid} is gone",
                v["id"]
            );
            series_cache.insert(sid.clone(), body);
        }
        let series = &series_cache[&sid]["series"];
        assert_eq!(
            v["purpose"], series["purpose"],
            "half-split series: {v} of {series}"
        );
        assert_eq!(
            v["duration_minutes"], series["duration_minutes"],
            "half-split series: {v} of {series}"
        );
        if let Some(end) = series["ends_before"].as_str() {
            assert!(
                occurrence < parse_time(&json!(end)),
                "occurrence {occurrence} after its series ended: {series}"
            );
        }
        // The series' own listing agrees (no occurrence listed elsewhere).
        let listed = series_cache[&sid]["visits"].as_array().unwrap();
        assert!(
            listed.iter().any(|l| l["id"] == v["id"]),
            "{v} not in its series"
        );
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        duplicated.is_empty(),
        "duplicated occurrences: {duplicated:?}"
    );
    let got: BTreeSet<_> = seen.keys().copied().collect();
    assert_eq!(&got, occurrences, "occurrences lost or invented");

    // Every acknowledged write is there.
    for (sid, purpose) in &ledger.series {
        let (status, body) = tab.get(&format!("/api/series/{sid}")).await?;
        assert_eq!(status, 200, "acknowledged series {sid} is gone");
        assert_eq!(body["series"]["purpose"], json!(purpose));
    }
    for (id, possible) in &ledger.visits {
        let (status, body) = tab.get(&format!("/api/visits/{id}")).await?;
        assert_eq!(status, 200, "acknowledged visit {id} is gone");
        let start = parse_time(&body["visit"]["planned_start"]);
        assert!(
            possible.contains(&start),
            "visit {id} at {start}, expected one of {possible:?}"
        );
    }
    Ok(())
}

async fn run(database_url: Option<String>) -> Result<()> {
    let data = tempfile::tempdir()?;
    // Seed through the library crates (the in-process server on the same data), then stop it.
    let seeder = TestServer::start_adjusted(&[], |c| {
        c.data_dir = data.path().to_path_buf();
        c.database_url = database_url.clone();
    })
    .await?;
    let m = Arc::new(seeder.municipality("Kill-9 kommune").await?);
    seeder.server.shutdown().await;

    let mut running = spawn(data.path(), database_url.as_deref()).await?;
    let mut tab = logged_in(&running.url, &m).await?;
    let first = Utc::now().with_timezone(&TIME_ZONE).date_naive() + ChronoDuration::days(1);
    let (status, body) = tab
        .post(
            "/api/series",
            json!({"legal_basis": "sel_85", "purpose": "original", "citizen_id": m.citizen.id,
                   "start_local": format!("{first}T08:00:00"), "duration_minutes": 30,
                   "rrule": format!("FREQ=DAILY;COUNT={OCCURRENCES}")}),
        )
        .await?;
    assert_eq!(status, 201, "{body}");
    let occurrences: BTreeSet<DateTime<Utc>> = body["visits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| parse_time(&v["occurrence_start"]))
        .collect();
    assert_eq!(occurrences.len(), OCCURRENCES);

    let ledger: Shared = Arc::default();
    let edits = Arc::new(AtomicU32::new(0));
    for round in 0..ROUNDS {
        // A visit in progress when the process dies.
        let (status, body) = tab
            .post(
                "/api/visits",
                json!({"legal_basis": "sel_85", "citizen_id": m.citizen.id,
                       "planned_start": Utc::now() + ChronoDuration::minutes(2),
                       "duration_minutes": 5}),
            )
            .await?;
        assert_eq!(status, 201, "{body}");
        let live = body["visit"]["id"].as_str().unwrap().to_owned();
        let (status, body) = tab
            .post(&format!("/api/visits/{live}/start"), json!({}))
            .await?;
        assert_eq!(status, 200, "{body}");
        ledger.lock().unwrap().live.push(live);

        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..2 {
            tasks.push(tokio::spawn(series_editor(
                tab.clone(),
                ledger.clone(),
                stop.clone(),
                edits.clone(),
            )));
            tasks.push(tokio::spawn(booker(
                tab.clone(),
                m.clone(),
                ledger.clone(),
                stop.clone(),
            )));
        }
        let delay = 200 + rand_below(1000);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        running.child.start_kill()?; // SIGKILL
        running.child.wait().await?;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await?;
        }

        running = spawn(data.path(), database_url.as_deref()).await?;
        let fresh = logged_in(&running.url, &m).await?;
        let snapshot = ledger.lock().unwrap().clone();
        eprintln!(
            "round {round}: killed after {delay} ms; {} writes acknowledged so far, {} series edits",
            snapshot.acked,
            snapshot.series.len()
        );
        check(&fresh, &snapshot, &occurrences).await?;
        // The next round talks to the restarted process.
        tab = fresh;
    }
    let acked = ledger.lock().unwrap().acked;
    assert!(
        acked > 0,
        "no write was acknowledged: the test exercised nothing"
    );
    running.child.start_kill()?;
    running.child.wait().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_kill_9_mid_stream() -> Result<()> {
    run(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_kill_9_mid_stream() -> Result<()> {
    let Ok(base) = std::env::var("TEST_DATABASE_URL") else {
        eprintln!("TEST_DATABASE_URL is not set: PostgreSQL case skipped");
        return Ok(());
    };
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&base).await?;
    let schema = format!("skaerm_kill9_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await?;
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
    let result = run(Some(url)).await;
    admin
        .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await?;
    result
}
