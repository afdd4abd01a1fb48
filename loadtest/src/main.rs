//! `skaerm-loadtest`: the relay benchmark. Synthetic 1:1 visits (two participants each, audio
//! and video with stamped payloads) against the real `skaerm` binary, a baseline SRTP forwarder
//! or Debian's Janus; a step search for the largest load below 0.5% loss; JSON and Markdown
//! results. `smoke` is the short CI run. See loadtest/README.md.

mod accounting;
mod baseline;
mod engine;
mod janus;
mod net;
mod procstat;
mod report;
mod rtc_peer;
mod run;
mod seed;
mod soak;
mod stamp;
mod step;
mod synth;
mod target;
mod visit;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use run::{Mode, RunOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "skaerm-loadtest", about = "Skærm relay benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Short CI run against skaerm: asserts zero loss and media both ways in every visit.
    Smoke {
        #[command(flatten)]
        common: Common,
        /// Concurrent visits.
        #[arg(long, default_value_t = 3)]
        visits: u32,
    },
    /// One load step of one mode; prints its report as JSON.
    Run {
        #[command(flatten)]
        common: Common,
        /// What to load.
        #[arg(long, value_enum, default_value_t = Mode::Skaerm)]
        mode: Mode,
        /// Concurrent visits.
        #[arg(long, default_value_t = 10)]
        visits: u32,
    },
    /// Step search over every mode; writes JSON and Markdown results.
    Bench {
        #[command(flatten)]
        common: Common,
        /// Modes, in order.
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "baseline,skaerm,janus"
        )]
        modes: Vec<Mode>,
        /// First step.
        #[arg(long, default_value_t = 10)]
        start: u32,
        /// Never more visits than this.
        #[arg(long, default_value_t = 2000)]
        max: u32,
        /// Results directory.
        #[arg(long, default_value = "loadtest/results")]
        out: PathBuf,
    },
    /// Soak (not CI): visits cycling for --minutes (joins, leaves, ICE restarts, reconnects)
    /// against one server; fails unless its RSS and open files are back within 10 % of the
    /// start (after a warm-up) once the load stopped and settled, with no WARN/ERROR log line.
    Soak {
        /// The skaerm binary under test.
        #[arg(long, default_value = "target/release/skaerm")]
        skaerm_bin: PathBuf,
        /// Minutes of load.
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
        /// Concurrent visits (each cycles: staff + citizen join, ICE restart, reconnect, leave).
        #[arg(long, default_value_t = 5)]
        visits: u32,
        /// Seconds the staff member stays per cycle (the citizen reconnects halfway).
        #[arg(long, default_value_t = 20.0)]
        hold: f64,
        /// Seconds between two cycles of a visit.
        #[arg(long, default_value_t = 2.0)]
        gap: f64,
        /// Seconds of load before the start sample.
        #[arg(long, default_value_t = 60.0)]
        warmup: f64,
        /// Seconds between the end of the load and the end sample.
        #[arg(long, default_value_t = 60.0)]
        settle: f64,
        /// Video bitrate per participant, kbit/s.
        #[arg(long, default_value_t = 300)]
        video_kbps: u64,
        /// Results directory (a JSON report `soak-<UTC time>.json`).
        #[arg(long, default_value = "loadtest/results")]
        out: PathBuf,
    },
    /// Re-renders a bench JSON file as Markdown (targets re-checked) on stdout.
    Report {
        /// The `bench-….json` file.
        json: PathBuf,
    },
    /// The baseline forwarder (started by `run`/`bench` in baseline mode).
    Forwarder {
        /// UDP address to bind.
        #[arg(long)]
        listen: SocketAddr,
        /// Participants (2 per visit).
        #[arg(long)]
        participants: u32,
        /// Key seed shared with the generator.
        #[arg(long)]
        seed: u64,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// The skaerm binary under test.
    #[arg(long, default_value = "target/release/skaerm")]
    skaerm_bin: PathBuf,
    /// Pin the server under test to this CPU (taskset).
    #[arg(long)]
    server_cpu: Option<usize>,
    /// Pin the generator to this CPU.
    #[arg(long)]
    generator_cpu: Option<usize>,
    /// Measurement window, seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Settling time after everyone has joined, seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Visits started per second.
    #[arg(long, default_value_t = 20.0)]
    join_rate: f64,
    /// Video bitrate per participant, kbit/s.
    #[arg(long, default_value_t = 1200)]
    video_kbps: u64,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Publish video as three simulcast layers (rid q, h, f at 1/8, 1/4 and all of
    /// --video-kbps: 150/300/1200 kbit/s by default), each its own SSRC with the mid and rid
    /// header extensions; skaerm is started with --simulcast and forwards one layer per
    /// subscriber, the baseline forwards the top layer, Janus picks one per subscriber.
    #[arg(long)]
    simulcast: bool,
    /// Deadline of each step, seconds (setup, joins, warm-up, window). Default: derived from
    /// the step (60 s + 0.1 s per visit + joins at the join rate + 20 s for media + warm-up +
    /// window + 30 s). A step past its deadline is stopped and counted as failed.
    #[arg(long)]
    step_timeout: Option<f64>,
}

impl Common {
    fn options(&self) -> RunOptions {
        RunOptions {
            skaerm_bin: self.skaerm_bin.clone(),
            server_cpu: self.server_cpu,
            warmup: Duration::from_secs_f64(self.warmup.max(0.0)),
            window: Duration::from_secs_f64(self.seconds.max(0.5)),
            join_rate: self.join_rate,
            join_timeout: Duration::from_secs(20),
            profile: synth::MediaProfile {
                video_bps: self.video_kbps * 1000,
                fps: self.fps.max(1),
                simulcast: self.simulcast,
                ..synth::MediaProfile::default()
            },
            log_dir: PathBuf::from("loadtest/results/logs"),
            step_timeout: self
                .step_timeout
                .map(|s| Duration::from_secs_f64(s.max(0.001))),
        }
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rtc=off,rtc_ice=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // reqwest is built with rustls (without a default provider) for the whole workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, run_command(cli.command))
}

async fn run_command(command: Cmd) -> Result<()> {
    match command {
        Cmd::Forwarder {
            listen,
            participants,
            seed,
        } => baseline::run_forwarder(listen, participants, seed).await,
        Cmd::Report { json } => {
            let text = std::fs::read_to_string(&json)
                .with_context(|| format!("reading {}", json.display()))?;
            let mut bench: report::BenchReport = serde_json::from_str(&text)?;
            bench.targets = report::check_targets(&bench.modes);
            println!("{}", report::markdown(&bench));
            Ok(())
        }
        Cmd::Soak {
            skaerm_bin,
            minutes,
            visits,
            hold,
            gap,
            warmup,
            settle,
            video_kbps,
            out,
        } => {
            let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
            let options = soak::SoakOptions {
                skaerm_bin,
                duration: secs(minutes * 60.0),
                visits: visits.max(1),
                hold: secs(hold.max(4.0)),
                gap: secs(gap),
                warmup: secs(warmup),
                settle: secs(settle),
                sample_every: Duration::from_secs(10),
                profile: synth::MediaProfile {
                    video_bps: video_kbps * 1000,
                    ..synth::MediaProfile::default()
                },
                log_dir: PathBuf::from("loadtest/results/logs"),
            };
            let report = soak::run(&options).await?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
            let json = out.join(format!("soak-{stamp}.json"));
            std::fs::write(&json, serde_json::to_string_pretty(&report)?)?;
            println!("{}", report.text());
            for line in &report.log_problems {
                println!("  server: {line}");
            }
            eprintln!("results: {}", json.display());
            if !report.passed() {
                anyhow::bail!("soak failed");
            }
            Ok(())
        }
        Cmd::Smoke { common, visits } => {
            pin(&common)?;
            let report = run::run_step(Mode::Skaerm, visits, &common.options()).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            run::check_smoke(&report)?;
            eprintln!(
                "smoke run passed: {visits} visits, {} packets, 0 lost, latency p99 {:.2} ms, join p50 {:.0} ms",
                report.sent, report.latency.p99_ms, report.join.p50_ms
            );
            Ok(())
        }
        Cmd::Run {
            common,
            mode,
            visits,
        } => {
            pin(&common)?;
            let report = run::run_step(mode, visits, &common.options()).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Cmd::Bench {
            common,
            modes,
            start,
            max,
            out,
        } => {
            pin(&common)?;
            let options = common.options();
            let started_at = chrono::Utc::now();
            let mut results = Vec::new();
            for mode in modes {
                results.push(run::search(mode, start, max, &options).await);
            }
            let targets = report::check_targets(&results);
            let bench = report::BenchReport {
                started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                command: std::env::args().collect::<Vec<_>>().join(" "),
                machine: report::machine(),
                server_cpu: common.server_cpu,
                generator_cpu: common.generator_cpu,
                video_kbps: common.video_kbps,
                simulcast: common.simulcast,
                window_s: options.window.as_secs_f64(),
                modes: results,
                targets,
            };
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let stamp = started_at.format("%Y%m%dT%H%M%SZ");
            let json = out.join(format!("bench-{stamp}.json"));
            let md = out.join(format!("bench-{stamp}.md"));
            std::fs::write(&json, serde_json::to_string_pretty(&bench)?)?;
            let table = report::markdown(&bench);
            std::fs::write(&md, &table)?;
            println!("{table}");
            eprintln!("results: {} and {}", json.display(), md.display());
            Ok(())
        }
    }
}

fn pin(common: &Common) -> Result<()> {
    if let Some(cpu) = common.generator_cpu {
        target::pin_self(cpu)?;
    }
    Ok(())
}
