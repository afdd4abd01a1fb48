//! One load step: start the server under test, bring up V visits (2 participants each), let the
//! load settle, measure for a window, and report. Also the step search over a mode.

use crate::accounting::Percentiles;
use crate::baseline::SrtpPeer;
use crate::engine::{Command, Engine, EngineHandle, EngineTask};
use crate::net::conn_ip;
use crate::procstat::{CpuSample, clock_ticks, rss_bytes};
use crate::step::{StepOutcome, StepSearch, passes};
use crate::synth::MediaProfile;
use crate::target::Target;
use crate::{janus, seed, visit};
use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What is under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The real `skaerm` binary (HTTP API, WebSocket signalling, ICE, DTLS-SRTP).
    Skaerm,
    /// The minimal SRTP forwarder with pre-shared keys.
    Baseline,
    /// Debian's Janus with the VideoRoom plugin.
    Janus,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Skaerm => "skaerm",
            Mode::Baseline => "baseline",
            Mode::Janus => "janus",
        })
    }
}

/// Settings shared by every step.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The `skaerm` binary.
    pub skaerm_bin: PathBuf,
    /// CPU the server under test is pinned to.
    pub server_cpu: Option<usize>,
    /// Time between the last join and the window.
    pub warmup: Duration,
    /// Measurement window.
    pub window: Duration,
    /// Visits started per second.
    pub join_rate: f64,
    /// How long to wait for every participant's first media after the last join.
    pub join_timeout: Duration,
    /// What each participant sends.
    pub profile: MediaProfile,
    /// Where logs of servers under test go.
    pub log_dir: PathBuf,
    /// Overrides the deadline of each step ([`RunOptions::step_deadline`]).
    pub step_timeout: Option<Duration>,
}

impl RunOptions {
    /// How long a step of `visits` visits may take from start to report before it is abandoned
    /// and counted as failed: a minute for the server's start, 100 ms per visit for seeding and
    /// the staff logins (argon2), the joins at the join rate, the wait for everyone's media,
    /// the warm-up, the window, and half a minute of margin. Generous: a step that needs it is
    /// one the generator or the server could not keep up with.
    pub fn step_deadline(&self, visits: u32) -> Duration {
        if let Some(timeout) = self.step_timeout {
            return timeout;
        }
        let joins = Duration::from_secs_f64(f64::from(visits) / self.join_rate.max(0.1));
        Duration::from_secs(60)
            + Duration::from_millis(100) * visits
            + joins
            + self.join_timeout
            + self.warmup
            + self.window
            + Duration::from_secs(30)
    }
}

/// The numbers of one step.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunReport {
    /// Mode.
    pub mode: Mode,
    /// Concurrent 1:1 visits.
    pub visits: u32,
    /// Participants (2 per visit).
    pub participants: u32,
    /// Measurement window in seconds.
    pub window_s: f64,
    /// Forwarded packets/s as the server counts them (`/metrics`, the forwarder's counter).
    pub server_forwarded_pps: Option<f64>,
    /// Media packets/s the generator received.
    pub received_pps: f64,
    /// Packets sent inside the window.
    pub sent: u64,
    /// Of those, received.
    pub received: u64,
    /// Loss in percent.
    pub loss_pct: f64,
    /// Added latency through the server.
    pub latency: Percentiles,
    /// WebSocket open → first remote media packet.
    pub join: Percentiles,
    /// The join's steps as the generator saw them (ms after the WebSocket opened).
    #[serde(default)]
    pub join_timeline: Vec<crate::accounting::Milestone>,
    /// Server CPU, percent of one core.
    pub server_cpu_pct: f64,
    /// Generator CPU, percent of one core.
    pub generator_cpu_pct: f64,
    /// Forwarded packets per second per fully used core (forwarded/s ÷ CPU share).
    pub pps_per_core: Option<f64>,
    /// Server RSS before any media session (skaerm: after the staff logins), MiB.
    pub rss_idle_mib: f64,
    /// Server RSS under load, MiB.
    pub rss_loaded_mib: f64,
    /// (loaded − idle) ÷ participants, KiB.
    pub rss_per_participant_kib: f64,
    /// Drops the server counted during the window (skaerm).
    pub server_drops: Option<u64>,
    /// Datagrams the generator failed to send.
    pub generator_send_failures: u64,
    /// Times a synthetic source fell behind (the generator was overloaded).
    pub generator_lag_events: u64,
    /// Participants that never received media.
    pub not_joined: usize,
    /// Streams with nothing sent or nothing received in the window.
    pub silent_streams: usize,
    /// With simulcast: video packets received in the window per layer (q, h, f), i.e. which
    /// layers the server forwarded.
    #[serde(default)]
    pub simulcast_layer_packets: Option<[u64; 3]>,
    /// First errors of participants whose signalling failed.
    pub errors: Vec<String>,
    /// Why the step did not finish ("timed out after … s"); its numbers are then all zero.
    #[serde(default)]
    pub failure: Option<String>,
    /// Whether the step passed (finished, loss < 0.5%, CPU not saturated, everyone joined).
    pub passed: bool,
}

impl RunReport {
    /// What the step search judges.
    pub fn outcome(&self) -> StepOutcome {
        StepOutcome {
            loss_pct: self.loss_pct,
            server_cpu_pct: self.server_cpu_pct,
            all_joined: self.not_joined == 0 && self.silent_streams == 0,
            timed_out: self.failure.is_some(),
        }
    }

    /// A step that did not finish, for `reason`.
    pub fn failed(mode: Mode, visits: u32, window: Duration, reason: String) -> RunReport {
        let participants = visits * 2;
        RunReport {
            mode,
            visits,
            participants,
            window_s: window.as_secs_f64(),
            server_forwarded_pps: None,
            received_pps: 0.0,
            sent: 0,
            received: 0,
            loss_pct: 100.0,
            latency: Percentiles::default(),
            join: Percentiles::default(),
            join_timeline: Vec::new(),
            server_cpu_pct: 0.0,
            generator_cpu_pct: 0.0,
            pps_per_core: None,
            rss_idle_mib: 0.0,
            rss_loaded_mib: 0.0,
            rss_per_participant_kib: 0.0,
            server_drops: None,
            generator_send_failures: 0,
            generator_lag_events: 0,
            not_joined: participants as usize,
            silent_streams: 0,
            simulcast_layer_packets: None,
            errors: Vec::new(),
            failure: Some(reason),
            passed: false,
        }
    }
}

/// A mode's search result.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ModeResult {
    /// Mode.
    pub mode: Mode,
    /// Largest passing visit count.
    pub max_visits: Option<u32>,
    /// Every step, in order.
    pub steps: Vec<RunReport>,
    /// A run at half the maximum (latency, join time).
    pub half_load: Option<RunReport>,
    /// Why the mode could not run at all.
    pub error: Option<String>,
}

impl ModeResult {
    /// The step at the maximum.
    pub fn at_max(&self) -> Option<&RunReport> {
        let max = self.max_visits?;
        self.steps
            .iter()
            .rev()
            .find(|s| s.visits == max && s.passed)
    }
}

const BASELINE_SEED: u64 = 0x5ca1_ab1e;

/// Everything a step starts that must be stopped whatever becomes of the step (it may be
/// abandoned at its deadline in the middle of any await): the server under test, the media
/// engine and the participants' signalling tasks.
struct StepResources {
    target: Option<Target>,
    /// The server's log, kept after the target is gone.
    log: Option<PathBuf>,
    engine: Option<EngineTask>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<Result<()>>>,
}

impl StepResources {
    fn new() -> StepResources {
        StepResources {
            target: None,
            log: None,
            engine: None,
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// Stops everything, each part within a bounded time: the participants are told to leave,
    /// the engine to stop (aborted after 2 s), participants still running after a shared grace
    /// period are aborted, and the server is stopped (killed at once after a timeout).
    async fn release(&mut self, timed_out: bool) {
        let _ = self.stop.send(true);
        let grace = Instant::now() + Duration::from_secs(if timed_out { 1 } else { 3 });
        if timed_out && let Some(engine) = self.engine.take() {
            // Free the generator's core first: an overloaded engine is what hangs a step.
            engine.shutdown(Duration::from_secs(2)).await;
        }
        for task in &mut self.tasks {
            let _ = tokio::time::timeout_at(grace.into(), task).await;
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        if let Some(engine) = self.engine.take()
            && !engine.shutdown(Duration::from_secs(2)).await
        {
            eprintln!("the media engine did not stop within 2 s: aborted");
        }
        if let Some(target) = self.target.take() {
            if timed_out {
                target.kill().await;
            } else {
                target.stop().await;
            }
        }
    }
}

/// Runs one step of `mode` with `visits` visits. A step that does not finish within its
/// deadline ([`RunOptions::step_deadline`]) is abandoned: everything it started is stopped and
/// it comes back as a failed step ([`RunReport::failure`]).
pub async fn run_step(mode: Mode, visits: u32, options: &RunOptions) -> Result<RunReport> {
    let data = tempfile::Builder::new()
        .prefix("skaerm-loadtest-")
        .tempdir()
        .context("temporary data directory")?;
    let deadline = options.step_deadline(visits);
    let mut resources = StepResources::new();
    let outcome = tokio::time::timeout(
        deadline,
        step(mode, visits, options, data.path(), &mut resources),
    )
    .await;
    resources.release(outcome.is_err()).await;
    // The server's log of every step is kept for inspection.
    if let Some(log) = &resources.log {
        let _ = std::fs::create_dir_all(&options.log_dir);
        let _ = std::fs::copy(log, options.log_dir.join(format!("{mode}-{visits}.log")));
    }
    if std::env::var_os("SKAERM_LOADTEST_KEEP").is_some() {
        eprintln!("keeping {}", data.keep().display());
    }
    match outcome {
        Ok(result) => result,
        Err(_) => {
            let reason = format!("timed out after {:.0} s", deadline.as_secs_f64());
            eprintln!("[{mode}] {visits} visits: {reason}");
            Ok(RunReport::failed(mode, visits, options.window, reason))
        }
    }
}

/// Starts the server under test and drives the step; what it starts goes into `resources`.
async fn step(
    mode: Mode,
    visits: u32,
    options: &RunOptions,
    data: &std::path::Path,
    resources: &mut StepResources,
) -> Result<RunReport> {
    let participants = visits * 2;
    let http = reqwest::Client::new();
    let mut seeded = None;
    let target = match mode {
        Mode::Skaerm => {
            let visits_seeded = seed::seed(&seed::sqlite_url(data), visits).await?;
            let target = Target::skaerm(
                &options.skaerm_bin,
                data,
                options.server_cpu,
                options.profile.simulcast,
                Some("warn"),
            )
            .await?;
            seeded = Some(visits_seeded);
            target
        }
        Mode::Baseline => {
            Target::forwarder(participants, BASELINE_SEED, options.server_cpu, data).await?
        }
        Mode::Janus => janus::start(data, options.server_cpu).await?,
    };
    resources.log = Some(target.log.clone());
    let target = &*resources.target.insert(target);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rss_idle = rss_bytes(target.pid)?;
    let shared_ip = match mode {
        Mode::Janus => Some(janus::host_ip()?),
        _ => None,
    };
    let (engine, engine_task) = Engine::spawn(participants, options.profile, shared_ip)?;
    resources.engine = Some(engine_task);
    let stop_rx = resources.stop.subscribe();
    let tasks = &mut resources.tasks;
    let interval = Duration::from_secs_f64(1.0 / options.join_rate.max(0.1));
    match mode {
        Mode::Skaerm => {
            let base = target.http.clone().context("no HTTP address")?;
            let seeded = seeded.context("no seeded visits")?;
            let tokens: Vec<visit::VisitTokens> = stream::iter(seeded.iter().enumerate())
                .map(|(i, v)| visit::tokens(&base, i as u32, v))
                .buffered(8)
                .try_collect()
                .await?;
            // The baseline is taken after the logins: password hashing (argon2, ~8 MiB per
            // login) leaves freed memory in the allocator's arenas, which is not relay state.
            tokio::time::sleep(Duration::from_millis(300)).await;
            rss_idle = rss_bytes(target.pid)?;
            let ws_url = format!("{}/ws", base.replacen("http://", "ws://", 1));
            let start = Instant::now();
            for (i, t) in tokens.into_iter().enumerate() {
                tokio::time::sleep_until((start + interval * i as u32).into()).await;
                for (p, token) in [(2 * i as u32, t.staff), (2 * i as u32 + 1, t.citizen)] {
                    tasks.push(tokio::task::spawn_local(visit::participant(
                        ws_url.clone(),
                        token,
                        p,
                        p as usize,
                        engine.clone(),
                        stop_rx.clone(),
                    )));
                }
            }
        }
        Mode::Baseline => {
            let forwarder = target.udp.context("no forwarder address")?;
            let start = Instant::now();
            for i in 0..visits {
                tokio::time::sleep_until((start + interval * i).into()).await;
                for p in [2 * i, 2 * i + 1] {
                    let peer =
                        SrtpPeer::new(BASELINE_SEED, p, conn_ip(p as usize).into(), forwarder)?;
                    engine
                        .send(Command::AddSrtp {
                            conn: p as usize,
                            participant: p,
                            peer: Box::new(peer),
                        })
                        .await?;
                }
            }
        }
        Mode::Janus => {
            let base = target.http.clone().context("no HTTP address")?;
            let start = Instant::now();
            for i in 0..visits {
                tokio::time::sleep_until((start + interval * i).into()).await;
                for p in [2 * i, 2 * i + 1] {
                    tasks.push(tokio::task::spawn_local(janus::participant(
                        base.clone(),
                        i,
                        p,
                        participants,
                        engine.clone(),
                        stop_rx.clone(),
                    )));
                }
            }
        }
    }
    let step = StepId {
        mode,
        visits,
        rss_idle,
    };
    measure(step, options, target, &engine, tasks, &http).await
}

async fn wait_for_media(participants: u32, engine: &EngineHandle, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let missing = engine
            .ask(|reply| Command::WithoutMedia {
                participants,
                reply,
            })
            .await?;
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Which step is being measured.
struct StepId {
    mode: Mode,
    visits: u32,
    rss_idle: u64,
}

async fn measure(
    step: StepId,
    options: &RunOptions,
    target: &Target,
    engine: &EngineHandle,
    tasks: &mut Vec<JoinHandle<Result<()>>>,
    http: &reqwest::Client,
) -> Result<RunReport> {
    let StepId {
        mode,
        visits,
        rss_idle,
    } = step;
    let participants = visits * 2;
    wait_for_media(participants, engine, options.join_timeout).await?;
    let mut errors = Vec::new();
    for task in tasks.iter_mut() {
        if task.is_finished() {
            match task.await {
                Ok(Err(err)) => errors.push(format!("{err:#}")),
                Err(err) => errors.push(err.to_string()),
                Ok(Ok(())) => errors.push("a participant stopped early".to_owned()),
            }
        }
    }
    tasks.retain(|t| !t.is_finished());
    errors.truncate(5);
    tokio::time::sleep(options.warmup).await;

    let ticks = clock_ticks();
    let me = std::process::id();
    let (cpu0, gen0) = (CpuSample::take(target.pid)?, CpuSample::take(me)?);
    let fwd0 = target.forwarded_total(http).await;
    let drops0 = target.dropped_total(http).await;
    let t0 = Instant::now();
    engine
        .send(Command::Window {
            length: options.window,
        })
        .await?;
    tokio::time::sleep(options.window).await;
    let (cpu1, gen1) = (CpuSample::take(target.pid)?, CpuSample::take(me)?);
    let fwd1 = target.forwarded_total(http).await;
    let drops1 = target.dropped_total(http).await;
    let elapsed = t0.elapsed().as_secs_f64();
    let rss_loaded = rss_bytes(target.pid)?;
    // Let packets still in flight arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = engine.ask(|reply| Command::Report { reply }).await?;

    let server_cpu_pct = cpu0.percent_until(&cpu1, ticks);
    let server_forwarded_pps = match (fwd0, fwd1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / elapsed),
        _ => None,
    };
    let forwarded = server_forwarded_pps.unwrap_or(report.received_pps);
    let s = report.summary;
    let rss_per_participant_kib =
        rss_loaded.saturating_sub(rss_idle) as f64 / 1024.0 / f64::from(participants.max(1));
    let mut run = RunReport {
        mode,
        visits,
        participants,
        window_s: elapsed,
        server_forwarded_pps,
        received_pps: report.received_pps,
        sent: s.sent,
        received: s.received,
        loss_pct: s.loss_pct,
        latency: s.latency,
        join: s.join,
        join_timeline: s.join_timeline,
        server_cpu_pct,
        generator_cpu_pct: gen0.percent_until(&gen1, ticks),
        pps_per_core: (server_cpu_pct > 1.0).then(|| forwarded * 100.0 / server_cpu_pct),
        rss_idle_mib: rss_idle as f64 / 1048576.0,
        rss_loaded_mib: rss_loaded as f64 / 1048576.0,
        rss_per_participant_kib,
        server_drops: match (drops0, drops1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        generator_send_failures: report.send_failures,
        generator_lag_events: report.generator_lag_events,
        not_joined: s.not_joined.len(),
        silent_streams: s.silent_streams.len(),
        simulcast_layer_packets: options.profile.simulcast.then_some(s.layer_packets),
        errors,
        failure: None,
        passed: false,
    };
    run.passed = passes(&run.outcome());
    Ok(run)
}

/// Finds the largest passing load of `mode`, then measures at half of it.
pub async fn search(mode: Mode, start: u32, max: u32, options: &RunOptions) -> ModeResult {
    let mut search = StepSearch::new(start, max);
    let mut steps = Vec::new();
    let mut error = None;
    while let Some(visits) = search.next() {
        eprintln!("[{mode}] step: {visits} visits");
        match run_step(mode, visits, options).await {
            Ok(report) => {
                if let Some(failure) = &report.failure {
                    eprintln!("[{mode}] {visits} visits failed: {failure}");
                }
                eprintln!(
                    "[{mode}] {visits} visits: loss {:.3}%, server {:.0}% CPU, {:.0} fwd pkt/s, p99 {:.2} ms, join p50 {:.0} ms, passed {}",
                    report.loss_pct,
                    report.server_cpu_pct,
                    report.server_forwarded_pps.unwrap_or(report.received_pps),
                    report.latency.p99_ms,
                    report.join.p50_ms,
                    report.passed
                );
                search.record(visits, passes(&report.outcome()));
                steps.push(report);
            }
            Err(err) => {
                eprintln!("[{mode}] {visits} visits failed: {err:#}");
                error = Some(format!("{err:#}"));
                search.record(visits, false);
            }
        }
    }
    let mut half_load = None;
    if let Some(max) = search.best() {
        let half = (max / 2).max(1);
        eprintln!("[{mode}] half load: {half} visits");
        match run_step(mode, half, options).await {
            Ok(report) => half_load = Some(report),
            Err(err) => error = Some(format!("half load: {err:#}")),
        }
    }
    ModeResult {
        mode,
        max_visits: search.best(),
        steps,
        half_load,
        error,
    }
}

/// Fails unless the run shows zero loss and media both ways in every visit.
pub fn check_smoke(report: &RunReport) -> Result<()> {
    let mut problems = Vec::new();
    if let Some(failure) = &report.failure {
        problems.push(failure.clone());
    }
    if report.sent == 0 {
        problems.push("nothing was sent".to_owned());
    }
    if report.received != report.sent {
        problems.push(format!(
            "loss: {} of {} packets missing ({:.3}%)",
            report.sent - report.received.min(report.sent),
            report.sent,
            report.loss_pct
        ));
    }
    if report.not_joined > 0 {
        problems.push(format!(
            "{} participants never received media",
            report.not_joined
        ));
    }
    if report.silent_streams > 0 {
        problems.push(format!(
            "{} audio/video streams carried nothing in one direction",
            report.silent_streams
        ));
    }
    if !report.errors.is_empty() {
        problems.push(format!("signalling errors: {:?}", report.errors));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("smoke run failed: {}", problems.join("; "))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn report() -> RunReport {
        RunReport {
            mode: Mode::Skaerm,
            visits: 3,
            participants: 6,
            window_s: 3.0,
            server_forwarded_pps: Some(1000.0),
            received_pps: 1000.0,
            sent: 3000,
            received: 3000,
            loss_pct: 0.0,
            latency: Percentiles::default(),
            join: Percentiles::default(),
            join_timeline: Vec::new(),
            server_cpu_pct: 10.0,
            generator_cpu_pct: 10.0,
            pps_per_core: None,
            rss_idle_mib: 20.0,
            rss_loaded_mib: 25.0,
            rss_per_participant_kib: 800.0,
            server_drops: Some(0),
            generator_send_failures: 0,
            generator_lag_events: 0,
            not_joined: 0,
            silent_streams: 0,
            simulcast_layer_packets: None,
            errors: Vec::new(),
            failure: None,
            passed: true,
        }
    }

    #[test]
    fn the_smoke_check_fails_on_any_loss_silence_or_error() {
        assert!(check_smoke(&report()).is_ok());
        let lossy = RunReport {
            received: 2999,
            ..report()
        };
        assert!(check_smoke(&lossy).is_err());
        let silent = RunReport {
            silent_streams: 1,
            ..report()
        };
        assert!(check_smoke(&silent).is_err());
        let unjoined = RunReport {
            not_joined: 2,
            ..report()
        };
        assert!(check_smoke(&unjoined).is_err());
        let empty = RunReport {
            sent: 0,
            received: 0,
            ..report()
        };
        assert!(check_smoke(&empty).is_err());
        let failed = RunReport {
            errors: vec!["fatal".to_owned()],
            ..report()
        };
        assert!(check_smoke(&failed).is_err());
        let timed_out = RunReport::failed(Mode::Skaerm, 3, Duration::from_secs(3), "t".into());
        assert!(check_smoke(&timed_out).is_err());
        assert!(!passes(&timed_out.outcome()));
    }

    /// The `skaerm` binary of the workspace build (or `$SKAERM_BIN`).
    pub(crate) fn skaerm_bin() -> PathBuf {
        let path = std::env::var_os("SKAERM_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/skaerm"),
            PathBuf::from,
        );
        assert!(
            path.exists(),
            "{} is missing: run `cargo build --workspace` first",
            path.display()
        );
        path
    }

    /// Processes whose parent is this test process.
    fn children() -> Vec<u32> {
        let me = std::process::id();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …; comm may contain spaces, so split after the ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(me) {
                found.push(pid);
            }
        }
        found
    }

    pub(crate) fn options(log_dir: &std::path::Path) -> RunOptions {
        RunOptions {
            skaerm_bin: skaerm_bin(),
            server_cpu: None,
            warmup: Duration::from_millis(500),
            window: Duration::from_secs(2),
            join_rate: 20.0,
            join_timeout: Duration::from_secs(20),
            profile: MediaProfile::default(),
            log_dir: log_dir.to_owned(),
            step_timeout: None,
        }
    }

    pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        tokio::task::LocalSet::new().block_on(&runtime, future)
    }

    /// A step whose window outlasts its deadline by far comes back as a timed-out failure soon
    /// after the deadline, with its server gone, instead of running on.
    #[test]
    fn a_step_past_its_deadline_stops_everything_and_fails() {
        let logs = tempfile::tempdir().expect("tempdir");
        let options = RunOptions {
            window: Duration::from_secs(600),
            step_timeout: Some(Duration::from_secs(8)),
            ..options(logs.path())
        };
        let started = Instant::now();
        let report = block_on(run_step(Mode::Skaerm, 1, &options)).expect("a report");
        let took = started.elapsed();
        assert!(
            report.failure.as_deref() == Some("timed out after 8 s"),
            "{report:?}"
        );
        assert!(!report.passed && !passes(&report.outcome()));
        assert!(took < Duration::from_secs(8 + 12), "took {took:?}");
        assert!(took >= Duration::from_secs(8), "took {took:?}");
        assert_eq!(children(), Vec::<u32>::new(), "the server is still running");
        let log = logs.path().join("skaerm-1.log");
        let log = std::fs::read_to_string(&log).expect("the server's log is kept");
        assert!(log.is_empty() || !log.contains("panicked"), "{log}");
    }

    /// Two visits through the real (debug) server with simulcast on both sides: every
    /// participant gets audio and video both ways, the video as one layer at a time chosen by
    /// the relay — the lowest at first, as its bandwidth estimate starts low — and nothing is
    /// lost beyond what a layer switch may cost at its edges.
    #[test]
    fn a_simulcast_step_through_the_real_server_carries_audio_and_video_both_ways() {
        let logs = tempfile::tempdir().expect("tempdir");
        let options = RunOptions {
            profile: MediaProfile {
                simulcast: true,
                ..MediaProfile::default()
            },
            step_timeout: Some(Duration::from_secs(120)),
            ..options(logs.path())
        };
        let report = block_on(run_step(Mode::Skaerm, 2, &options)).expect("a report");
        assert_eq!(report.failure, None);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.not_joined, 0, "{report:?}");
        assert_eq!(
            report.silent_streams, 0,
            "audio and video both ways: {report:?}"
        );
        let layers = report.simulcast_layer_packets.expect("layers counted");
        assert!(
            layers[0] > 0,
            "the relay starts subscribers on layer q: {layers:?}"
        );
        assert!(report.sent > 0 && report.loss_pct < 1.0, "{report:?}");
        assert_eq!(report.server_drops, Some(0), "{report:?}");
    }
}
