//! The soak run (`skaerm-loadtest soak`, not in CI): one real `skaerm` server, V visit slots
//! cycling for N minutes. Each cycle of a slot: the staff member gets a fresh media token and
//! joins; the citizen exchanges the link, joins (admitted from the waiting room), asks for an
//! ICE restart once media flows (`restart_ice`, PROTOCOL.md), then drops its WebSocket without
//! a word and rejoins with the same token on a fresh connection (a reconnect); both leave.
//! The server's RSS and open file descriptors are sampled throughout; after the load stops and
//! a settle period they must be back within 10 % of the start (taken after a warm-up), and the
//! server's log (stderr, at the server's default log filter as deployed) must hold no WARN or
//! ERROR line.

use crate::engine::{Command, Engine, EngineHandle};
use crate::procstat::{open_fds, rss_bytes};
use crate::seed::{self, PASSWORD, SeededVisit};
use crate::synth::MediaProfile;
use crate::target::Target;
use crate::visit::{admit, answer_offer, client_ip, open_and_join, post};
use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use skaerm_sfu::protocol::ClientMessage;
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// How far RSS and open files may be above the start after the settle period.
const TOLERANCE: f64 = 0.10;
/// Media packets that must arrive after an ICE restart's answer for the restart to count.
const MEDIA_AFTER_RESTART: u64 = 25;
/// How long media may take to resume after an ICE restart.
const RESTART_TIMEOUT: Duration = Duration::from_secs(10);

/// What the soak does.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// The `skaerm` binary.
    pub skaerm_bin: PathBuf,
    /// Load duration.
    pub duration: Duration,
    /// Concurrent visit slots.
    pub visits: u32,
    /// How long the staff member stays in each cycle (the citizen's two sessions share it).
    pub hold: Duration,
    /// Pause between two cycles of a slot.
    pub gap: Duration,
    /// Load time before the start sample.
    pub warmup: Duration,
    /// Idle time between the end of the load and the end sample.
    pub settle: Duration,
    /// Time between samples.
    pub sample_every: Duration,
    /// What each participant sends.
    pub profile: MediaProfile,
    /// Where the server's log is copied.
    pub log_dir: PathBuf,
}

/// One sample of the server process.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the load started.
    pub at_s: f64,
    /// Resident memory, MiB.
    pub rss_mib: f64,
    /// Open file descriptors.
    pub fds: usize,
    /// Participants connected at the time.
    pub live_sessions: u32,
}

/// What happened, counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SoakCounts {
    /// Visit cycles completed.
    pub cycles: u64,
    /// WebSocket sessions opened (joins).
    pub joins: u64,
    /// Sessions that ended with `leave`.
    pub leaves: u64,
    /// Sessions that dropped their WebSocket without a word (then rejoined).
    pub reconnects: u64,
    /// ICE restarts asked for.
    pub ice_restarts: u64,
    /// Of those, answered with a new offer and followed by media.
    pub ice_restarts_ok: u64,
    /// Sessions that never received remote media.
    pub sessions_without_media: u64,
    /// Sessions or cycles that failed (signalling error, token refused, …).
    pub failures: u64,
}

/// The soak's result.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// When it started (UTC).
    pub started_at: String,
    /// Load minutes.
    pub minutes: f64,
    /// Concurrent visit slots.
    pub visits: u32,
    /// Counts.
    pub counts: SoakCounts,
    /// The sample taken after the warm-up (the reference).
    pub start: Sample,
    /// The highest RSS and fd count seen under load.
    pub peak_rss_mib: f64,
    /// The highest fd count seen under load.
    pub peak_fds: usize,
    /// Before any load (for information).
    pub idle: Sample,
    /// After the load stopped and the settle period.
    pub end: Sample,
    /// The server's WARN and ERROR lines (the first 20) and how many there were.
    pub log_problems: Vec<String>,
    /// WARN/ERROR lines in all.
    pub log_problem_count: usize,
    /// Every sample.
    pub samples: Vec<Sample>,
    /// Why it failed (empty: passed).
    pub verdict: Vec<String>,
}

impl SoakReport {
    /// Whether every check held.
    pub fn passed(&self) -> bool {
        self.verdict.is_empty()
    }

    /// A short human-readable report.
    pub fn text(&self) -> String {
        let c = &self.counts;
        let pct = |end: f64, start: f64| {
            if start > 0.0 {
                (end / start - 1.0) * 100.0
            } else {
                0.0
            }
        };
        format!(
            "soak {started}: {minutes:.0} min, {visits} visit slots\n\
             cycles {cycles}, joins {joins}, leaves {leaves}, reconnects {reconnects}, \
             ICE restarts {restarts} ({restarts_ok} with media after), sessions without media \
             {no_media}, failures {failures}\n\
             RSS  idle {idle_rss:.1} MiB, start (after warm-up) {start_rss:.1} MiB, peak {peak_rss:.1} MiB, \
             end {end_rss:.1} MiB ({rss_pct:+.1} %)\n\
             fds  idle {idle_fds}, start {start_fds}, peak {peak_fds}, end {end_fds} ({fds_pct:+.1} %)\n\
             server WARN/ERROR lines: {log}\n\
             {verdict}",
            started = self.started_at,
            minutes = self.minutes,
            visits = self.visits,
            cycles = c.cycles,
            joins = c.joins,
            leaves = c.leaves,
            reconnects = c.reconnects,
            restarts = c.ice_restarts,
            restarts_ok = c.ice_restarts_ok,
            no_media = c.sessions_without_media,
            failures = c.failures,
            idle_rss = self.idle.rss_mib,
            start_rss = self.start.rss_mib,
            peak_rss = self.peak_rss_mib,
            end_rss = self.end.rss_mib,
            rss_pct = pct(self.end.rss_mib, self.start.rss_mib),
            idle_fds = self.idle.fds,
            start_fds = self.start.fds,
            peak_fds = self.peak_fds,
            end_fds = self.end.fds,
            fds_pct = pct(self.end.fds as f64, self.start.fds as f64),
            log = self.log_problem_count,
            verdict = if self.passed() {
                "PASSED".to_owned()
            } else {
                format!("FAILED: {}", self.verdict.join("; "))
            },
        )
    }
}

/// How one WebSocket session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `leave`, then a close.
    Leave,
    /// The socket is dropped without a word (the client then reconnects).
    Drop,
}

/// What one session does.
#[derive(Debug, Clone, Copy)]
struct Plan {
    hold: Duration,
    restart_ice: bool,
    end: End,
}

/// What one session saw.
#[derive(Debug, Default)]
struct SessionResult {
    media: bool,
    /// `Some(ok)` when an ICE restart was asked for.
    restart: Option<bool>,
    error: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Restart {
    NotYet,
    Asked,
    Answered { media_before: u64, at: Instant },
    Done(bool),
}

/// Shared state of the running soak (one thread).
struct Shared {
    engine: EngineHandle,
    ws_url: String,
    base: String,
    next_participant: Cell<u32>,
    max_participants: u32,
    live: Cell<u32>,
    counts: RefCell<SoakCounts>,
    errors: RefCell<Vec<String>>,
}

impl Shared {
    fn participant(&self) -> Result<u32> {
        let p = self.next_participant.get();
        if p >= self.max_participants {
            bail!("out of participant slots ({})", self.max_participants);
        }
        self.next_participant.set(p + 1);
        Ok(p)
    }

    fn fail(&self, what: String) {
        self.counts.borrow_mut().failures += 1;
        let mut errors = self.errors.borrow_mut();
        if errors.len() < 20 {
            errors.push(what);
        }
    }
}

async fn media_received(engine: &EngineHandle, participant: u32) -> Result<u64> {
    engine
        .ask(|reply| Command::MediaReceived { participant, reply })
        .await
}

/// One WebSocket session of participant slot `p` with `token`, following `plan`.
async fn session(shared: &Shared, token: String, p: u32, plan: Plan) -> SessionResult {
    let mut result = SessionResult::default();
    shared.live.set(shared.live.get() + 1);
    shared.counts.borrow_mut().joins += 1;
    if let Err(err) = drive(shared, token, p, plan, &mut result).await {
        result.error = Some(format!("{err:#}"));
    }
    shared.live.set(shared.live.get() - 1);
    let _ = shared
        .engine
        .send(Command::Close {
            conn: p as usize,
            participant: p,
        })
        .await;
    result
}

async fn drive(
    shared: &Shared,
    token: String,
    p: u32,
    plan: Plan,
    result: &mut SessionResult,
) -> Result<()> {
    let engine = &shared.engine;
    let (mut sink, mut stream) = open_and_join(&shared.ws_url, engine, p, token).await?;
    let started = Instant::now();
    let deadline = started + plan.hold;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut media_since: Option<Instant> = None;
    let mut restart = Restart::NotYet;
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = tokio::time::sleep_until(deadline.into()) => break,
            _ = tick.tick() => {
                let received = media_received(engine, p).await?;
                if media_since.is_none() && received > 0 {
                    media_since = Some(Instant::now());
                    result.media = true;
                }
                match restart {
                    Restart::NotYet if plan.restart_ice
                        && media_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(2)) => {
                        sink.send(Message::text(serde_json::to_string(&ClientMessage::RestartIce)?)).await?;
                        shared.counts.borrow_mut().ice_restarts += 1;
                        restart = Restart::Asked;
                    }
                    Restart::Answered { media_before, at } => {
                        if received >= media_before + MEDIA_AFTER_RESTART {
                            restart = Restart::Done(true);
                        } else if at.elapsed() > RESTART_TIMEOUT {
                            restart = Restart::Done(false);
                        }
                    }
                    _ => {}
                }
                continue;
            }
        };
        let Some(frame) = frame else {
            bail!("the server closed the WebSocket");
        };
        let text = match frame.context("WebSocket")? {
            Message::Text(text) => text,
            Message::Close(close) => bail!("closed by the server: {close:?}"),
            _ => continue,
        };
        let message: Value = serde_json::from_str(text.as_str()).context("server message")?;
        match message["type"].as_str() {
            Some("offer") => {
                answer_offer(engine, &mut sink, p as usize, p, &message).await?;
                if matches!(restart, Restart::Asked) {
                    restart = Restart::Answered {
                        media_before: media_received(engine, p).await?,
                        at: Instant::now(),
                    };
                }
            }
            Some("participant_waiting") => admit(&mut sink, &message["participant"]["id"]).await?,
            Some("joined") => {
                for waiting in message["waiting"].as_array().into_iter().flatten() {
                    admit(&mut sink, &waiting["id"]).await?;
                }
            }
            Some("error") if message["fatal"].as_bool() == Some(true) => {
                bail!("fatal error {message}");
            }
            Some("error") => bail!("error {message}"),
            Some("ended") => bail!("ended {message}"),
            _ => {}
        }
    }
    if plan.restart_ice {
        result.restart = Some(matches!(restart, Restart::Done(true)));
    }
    match plan.end {
        End::Leave => {
            let leave = serde_json::to_string(&ClientMessage::Leave)?;
            sink.send(Message::text(leave)).await?;
            // The server answers with a close (1000); read until it comes, briefly.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(frame)) = stream.next().await {
                    if matches!(frame, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
            let _ = sink.close().await;
            shared.counts.borrow_mut().leaves += 1;
        }
        End::Drop => {
            drop((sink, stream));
            shared.counts.borrow_mut().reconnects += 1;
        }
    }
    Ok(())
}

/// A visit slot's staff member, logged in once (again when the session has expired).
struct Staff {
    client: reqwest::Client,
    visit: SeededVisit,
}

impl Staff {
    async fn login(&self, base: &str) -> Result<()> {
        post(
            &self.client,
            format!("{base}/api/session"),
            json!({"username": self.visit.username, "password": PASSWORD}),
        )
        .await?;
        Ok(())
    }

    /// A fresh media token for the (started) visit.
    async fn media_token(&self, base: &str) -> Result<String> {
        let url = format!("{base}/api/visits/{}/media-token", self.visit.visit_id);
        let body = match post(&self.client, url.clone(), json!({})).await {
            Ok(body) => body,
            Err(_) => {
                self.login(base).await?;
                post(&self.client, url, json!({})).await?
            }
        };
        body["media_token"]
            .as_str()
            .map(str::to_owned)
            .context("no staff media token")
    }
}

/// Logs every slot's staff member in and starts its visit.
async fn prepare(base: &str, seeded: Vec<SeededVisit>) -> Result<Vec<(Staff, reqwest::Client)>> {
    let mut slots = Vec::new();
    for (i, visit) in seeded.into_iter().enumerate() {
        let i = i as u32;
        let staff = Staff {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .local_address(client_ip(i * 2))
                .build()?,
            visit,
        };
        staff.login(base).await?;
        post(
            &staff.client,
            format!("{base}/api/visits/{}/start", staff.visit.visit_id),
            json!({}),
        )
        .await?;
        let citizen = reqwest::Client::builder()
            .local_address(client_ip(i * 2 + 1))
            .build()?;
        slots.push((staff, citizen));
    }
    Ok(slots)
}

/// One cycle of a visit slot.
async fn cycle(
    shared: &Shared,
    staff: &Staff,
    citizen: &reqwest::Client,
    hold: Duration,
) -> Result<()> {
    let staff_token = staff.media_token(&shared.base).await?;
    let joined = post(
        citizen,
        format!("{}/api/join/{}", shared.base, staff.visit.citizen_secret),
        json!({}),
    )
    .await?;
    let citizen_token = joined["media_token"]
        .as_str()
        .context("no citizen media token")?
        .to_owned();
    let staff_p = shared.participant()?;
    let first = shared.participant()?;
    let second = shared.participant()?;
    let staff_session = session(
        shared,
        staff_token,
        staff_p,
        Plan {
            hold: hold + Duration::from_secs(1),
            restart_ice: false,
            end: End::Leave,
        },
    );
    let citizen_sessions = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let half = hold / 2;
        let a = session(
            shared,
            citizen_token.clone(),
            first,
            Plan {
                hold: half,
                restart_ice: true,
                end: End::Drop,
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let b = session(
            shared,
            citizen_token,
            second,
            Plan {
                hold: half.saturating_sub(Duration::from_millis(500)),
                restart_ice: false,
                end: End::Leave,
            },
        )
        .await;
        [a, b]
    };
    let (s, [a, b]) = futures_util::join!(staff_session, citizen_sessions);
    let mut counts = shared.counts.borrow_mut();
    let mut problems = Vec::new();
    for (who, r) in [("staff", &s), ("citizen", &a), ("citizen (rejoined)", &b)] {
        if !r.media {
            counts.sessions_without_media += 1;
        }
        if let Some(ok) = r.restart
            && ok
        {
            counts.ice_restarts_ok += 1;
        }
        if let Some(err) = &r.error {
            problems.push(format!("{who}: {err}"));
        }
    }
    counts.cycles += 1;
    drop(counts);
    for problem in problems {
        shared.fail(problem);
    }
    Ok(())
}

fn sample(pid: u32, started: Instant, live: u32) -> Result<Sample> {
    Ok(Sample {
        at_s: started.elapsed().as_secs_f64(),
        rss_mib: rss_bytes(pid)? as f64 / 1048576.0,
        fds: open_fds(pid)?,
        live_sessions: live,
    })
}

/// The server log's WARN and ERROR lines (ANSI colours removed).
pub fn log_problems(log: &str) -> Vec<String> {
    log.lines()
        .map(strip_ansi)
        .filter(|line| {
            line.split_whitespace()
                .take(3)
                .any(|w| w == "WARN" || w == "ERROR")
                || line.contains("panicked")
        })
        .collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ … final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs the soak.
pub async fn run(options: &SoakOptions) -> Result<SoakReport> {
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let data = tempfile::Builder::new()
        .prefix("skaerm-soak-")
        .tempdir()
        .context("temporary data directory")?;
    let seeded = seed::seed(&seed::sqlite_url(data.path()), options.visits).await?;
    let target = Target::skaerm(&options.skaerm_bin, data.path(), None, false, None).await?;
    let outcome = soak(options, &target, seeded, started_at).await;
    let log = std::fs::read_to_string(&target.log).unwrap_or_default();
    let _ = std::fs::create_dir_all(&options.log_dir);
    let _ = std::fs::write(options.log_dir.join("soak-skaerm.log"), &log);
    target.stop().await;
    outcome
}

async fn soak(
    options: &SoakOptions,
    target: &Target,
    seeded: Vec<SeededVisit>,
    started_at: String,
) -> Result<SoakReport> {
    let base = target.http.clone().context("no HTTP address")?;
    let pid = target.pid;
    let slots = prepare(&base, seeded).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let load_started = Instant::now();
    let idle = sample(pid, load_started, 0)?;
    // Three sessions per cycle; a cycle takes at least hold + gap.
    let cycles_per_slot =
        options.duration.as_secs_f64() / (options.hold + options.gap).as_secs_f64() + 2.0;
    let max_participants = ((cycles_per_slot * f64::from(options.visits) * 3.0) as u32 + 16)
        .min(crate::net::MAX_CONNS as u32);
    let (engine, engine_task) = Engine::spawn(max_participants, options.profile, None)?;
    let shared = Rc::new(Shared {
        engine,
        ws_url: format!("{}/ws", base.replacen("http://", "ws://", 1)),
        base,
        next_participant: Cell::new(0),
        max_participants,
        live: Cell::new(0),
        counts: RefCell::new(SoakCounts::default()),
        errors: RefCell::new(Vec::new()),
    });
    let load_end = load_started + options.duration;
    let mut loops = Vec::new();
    for (i, (staff, citizen)) in slots.into_iter().enumerate() {
        let shared = shared.clone();
        let options = options.clone();
        // Slots start spread over one cycle, so the load is steady.
        let offset = (options.hold + options.gap).mul_f64(i as f64 / f64::from(options.visits));
        loops.push(tokio::task::spawn_local(async move {
            tokio::time::sleep(offset).await;
            while Instant::now() + options.hold < load_end {
                if let Err(err) = cycle(&shared, &staff, &citizen, options.hold).await {
                    shared.fail(format!("cycle: {err:#}"));
                }
                tokio::time::sleep(options.gap).await;
            }
        }));
    }
    // Samples under load; the start sample after the warm-up.
    let mut samples = vec![idle];
    let mut start = None;
    let warmup_end = load_started + options.warmup;
    let mut next = load_started + options.sample_every;
    while loops.iter().any(|l| !l.is_finished()) {
        tokio::time::sleep_until(next.into()).await;
        next += options.sample_every;
        let s = sample(pid, load_started, shared.live.get())?;
        samples.push(s);
        if start.is_none() && Instant::now() >= warmup_end {
            start = Some(s);
            eprintln!(
                "soak: start sample after {:.0} s of warm-up: RSS {:.1} MiB, {} fds",
                s.at_s, s.rss_mib, s.fds
            );
        }
        if samples.len() % 6 == 0 {
            let c = shared.counts.borrow();
            eprintln!(
                "soak: {:.0} s: RSS {:.1} MiB, {} fds, {} live sessions; cycles {}, failures {}",
                s.at_s, s.rss_mib, s.fds, s.live_sessions, c.cycles, c.failures
            );
        }
    }
    for l in loops {
        let _ = l.await;
    }
    let load_stopped = Instant::now();
    engine_task.shutdown(Duration::from_secs(2)).await;
    eprintln!(
        "soak: load stopped after {:.0} s; settling for {:.0} s",
        load_started.elapsed().as_secs_f64(),
        options.settle.as_secs_f64()
    );
    let settle_end = load_stopped + options.settle;
    while Instant::now() < settle_end {
        tokio::time::sleep(options.sample_every.min(settle_end - Instant::now())).await;
        samples.push(sample(pid, load_started, 0)?);
    }
    let end = sample(pid, load_started, 0)?;
    samples.push(end);
    let log = std::fs::read_to_string(&target.log).unwrap_or_default();
    let problems = log_problems(&log);
    let counts = shared.counts.borrow().clone();
    let errors = shared.errors.borrow().clone();

    let mut verdict = Vec::new();
    let start = match start {
        Some(start) => start,
        None => {
            verdict.push("the load ended before the warm-up did: no start sample".to_owned());
            idle
        }
    };
    let under_load = samples
        .iter()
        .filter(|s| s.at_s <= load_stopped.duration_since(load_started).as_secs_f64());
    let peak_rss_mib = under_load.clone().map(|s| s.rss_mib).fold(0.0, f64::max);
    let peak_fds = under_load.map(|s| s.fds).max().unwrap_or(0);
    if end.rss_mib > start.rss_mib * (1.0 + TOLERANCE) {
        verdict.push(format!(
            "RSS {:.1} MiB after settling, more than 10 % above the start ({:.1} MiB)",
            end.rss_mib, start.rss_mib
        ));
    }
    if end.fds as f64 > start.fds as f64 * (1.0 + TOLERANCE) {
        verdict.push(format!(
            "{} open files after settling, more than 10 % above the start ({})",
            end.fds, start.fds
        ));
    }
    if !problems.is_empty() {
        verdict.push(format!(
            "{} WARN/ERROR lines in the server's log",
            problems.len()
        ));
    }
    if counts.cycles == 0 {
        verdict.push("no cycle completed".to_owned());
    }
    // A loaded shared machine may lose the odd session; more than 1 % is a finding.
    if counts.failures * 100 > counts.joins.max(1) {
        verdict.push(format!(
            "{} of {} sessions failed: {errors:?}",
            counts.failures, counts.joins
        ));
    } else if !errors.is_empty() {
        eprintln!("soak: session failures (within 1 %): {errors:?}");
    }
    if counts.ice_restarts_ok < counts.ice_restarts {
        verdict.push(format!(
            "{} of {} ICE restarts were not followed by media",
            counts.ice_restarts - counts.ice_restarts_ok,
            counts.ice_restarts
        ));
    }
    Ok(SoakReport {
        started_at,
        minutes: load_stopped.duration_since(load_started).as_secs_f64() / 60.0,
        visits: options.visits,
        counts,
        start,
        peak_rss_mib,
        peak_fds,
        idle,
        end,
        log_problem_count: problems.len(),
        log_problems: problems.into_iter().take(20).collect(),
        samples,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_warn_and_error_lines_with_or_without_colours() {
        let log = "2026-12-08T01:00:00.000000Z  WARN skaerm_sfu::worker: dropped\n\
                   \u{1b}[2m2026-12-08T01:00:01Z\u{1b}[0m \u{1b}[31mERROR\u{1b}[0m skaerm: boom\n\
                   2026-12-08T01:00:02Z  INFO skaerm: a WARN inside a message is not a level\n\
                   thread 'main' panicked at src/x.rs:1:1\n";
        let found = log_problems(log);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[1].contains("ERROR skaerm: boom"), "{found:?}");
        assert!(log_problems("2026-12-08T01:00:02Z  INFO skaerm: fine\n").is_empty());
    }
}
