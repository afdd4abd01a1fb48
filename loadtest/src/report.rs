//! The benchmark's outputs: one JSON document with every step, and a Markdown table of the
//! per-mode results with the targets checked against them.

use crate::run::{Mode, ModeResult, RunReport};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// One whole benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    /// When it ran (UTC, RFC 3339).
    pub started_at: String,
    /// The command line.
    pub command: String,
    /// CPU model and count.
    pub machine: String,
    /// CPU the server under test was pinned to.
    pub server_cpu: Option<usize>,
    /// CPU the generator was pinned to.
    pub generator_cpu: Option<usize>,
    /// Video bitrate per participant.
    pub video_kbps: u64,
    /// Video sent as three simulcast layers.
    #[serde(default)]
    pub simulcast: bool,
    /// Measurement window per step, seconds.
    pub window_s: f64,
    /// Per mode.
    pub modes: Vec<ModeResult>,
    /// The targets.
    pub targets: Vec<TargetCheck>,
}

/// One target of the issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetCheck {
    /// What.
    pub target: String,
    /// Measured.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` missed, `None` not measurable in this run.
    pub met: Option<bool>,
}

/// CPU model and count from `/proc/cpuinfo`.
pub fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_owned();
    let count = info.lines().filter(|l| l.starts_with("processor")).count();
    format!("{count} × {model}")
}

/// Forwarded packets/s of a step (the server's count when it has one).
pub fn forwarded_pps(r: &RunReport) -> f64 {
    r.server_forwarded_pps.unwrap_or(r.received_pps)
}

fn mode_result(modes: &[ModeResult], mode: Mode) -> Option<&ModeResult> {
    modes.iter().find(|m| m.mode == mode)
}

/// Checks the targets against the results.
pub fn check_targets(modes: &[ModeResult]) -> Vec<TargetCheck> {
    // Per core: forwarded packets/s divided by the server's CPU share at the largest passing
    // load (the generator's one core may saturate before the server's does).
    let max_pps = |mode| {
        mode_result(modes, mode)
            .and_then(|m| m.at_max())
            .map(|r| r.pps_per_core.unwrap_or_else(|| forwarded_pps(r)))
    };
    let skaerm = mode_result(modes, Mode::Skaerm);
    let ours = max_pps(Mode::Skaerm);
    let mut checks = Vec::new();
    let ratio = |other: Option<f64>, factor: f64, what: &str| {
        let (measured, met) = match (ours, other) {
            (Some(a), Some(b)) if b > 0.0 => (
                format!("{a:.0} vs {b:.0} pkt/s per core = {:.2}×", a / b),
                Some(a >= factor * b),
            ),
            _ => ("not measured".to_owned(), None),
        };
        TargetCheck {
            target: what.to_owned(),
            measured,
            met,
        }
    };
    checks.push(ratio(
        max_pps(Mode::Janus),
        2.0,
        "forwarded pkt/s per core ≥ 2× Janus",
    ));
    checks.push(ratio(
        max_pps(Mode::Baseline),
        0.5,
        "forwarded pkt/s per core ≥ 50% of the baseline forwarder",
    ));
    let half = skaerm.and_then(|m| m.half_load.as_ref());
    checks.push(TargetCheck {
        target: "added latency p99 ≤ 1 ms at half of max load".to_owned(),
        measured: half.map_or("not measured".to_owned(), |h| {
            format!("{:.2} ms at {} visits", h.latency.p99_ms, h.visits)
        }),
        met: half.map(|h| h.latency.p99_ms <= 1.0),
    });
    let at_max = skaerm.and_then(ModeResult::at_max);
    checks.push(TargetCheck {
        target: "relay memory ≤ 1 MiB per participant at max load".to_owned(),
        measured: at_max.map_or("not measured".to_owned(), |r| {
            format!(
                "{:.0} KiB at {} visits",
                r.rss_per_participant_kib, r.visits
            )
        }),
        met: at_max.map(|r| r.rss_per_participant_kib <= 1024.0),
    });
    checks.push(TargetCheck {
        target: "join time p50 ≤ 300 ms on loopback".to_owned(),
        measured: half.map_or("not measured".to_owned(), |h| {
            format!(
                "{:.0} ms (p95 {:.0} ms) at {} visits",
                h.join.p50_ms, h.join.p95_ms, h.visits
            )
        }),
        met: half.map(|h| h.join.p50_ms <= 300.0),
    });
    checks
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.digits$}"))
}

/// The Markdown summary.
pub fn markdown(report: &BenchReport) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Relay benchmark, {}\n", report.started_at);
    let _ = writeln!(
        md,
        "Machine: {}. Server pinned to CPU {}, generator to CPU {}. Video {} kbit/s at 30 fps{} plus \
         50 audio packets/s per participant; {:.0} s window per step; a step passes below 0.5% loss \
         with the server's CPU below 97%.\n\nCommand: `{}`\n",
        report.machine,
        opt(report.server_cpu.map(|c| c as f64), 0),
        opt(report.generator_cpu.map(|c| c as f64), 0),
        report.video_kbps,
        if report.simulcast {
            " (top layer of three simulcast layers at 1/8, 1/4 and 1 of it)"
        } else {
            ""
        },
        report.window_s,
        report.command
    );
    let _ = writeln!(
        md,
        "| mode | max visits | fwd pkt/s at max | server CPU at max | pkt/s per core | loss at max | RSS/participant | latency p50/p95/p99 at half | join p50/p95 at half |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for m in &report.modes {
        let at_max = m.at_max();
        let half = m.half_load.as_ref();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.mode,
            m.max_visits.map_or("–".to_owned(), |v| v.to_string()),
            opt(at_max.map(forwarded_pps), 0),
            opt(at_max.map(|r| r.server_cpu_pct), 0) + " %",
            opt(at_max.and_then(|r| r.pps_per_core), 0),
            opt(at_max.map(|r| r.loss_pct), 3) + " %",
            opt(at_max.map(|r| r.rss_per_participant_kib), 0) + " KiB",
            half.map_or("–".to_owned(), |h| format!(
                "{:.2} / {:.2} / {:.2} ms",
                h.latency.p50_ms, h.latency.p95_ms, h.latency.p99_ms
            )),
            half.map_or("–".to_owned(), |h| format!(
                "{:.0} / {:.0} ms",
                h.join.p50_ms, h.join.p95_ms
            )),
        );
    }
    for m in &report.modes {
        if let Some(err) = &m.error {
            let _ = writeln!(md, "\n{}: {}", m.mode, err);
        }
    }
    let _ = writeln!(md, "\n| target | measured | met |\n|---|---|---|");
    for t in &report.targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(md, "| {} | {} | {} |", t.target, t.measured, met);
    }
    let _ = writeln!(md, "\n## Steps\n");
    let _ = writeln!(
        md,
        "| mode | visits | fwd pkt/s | server CPU | generator CPU | loss | p50 / p99 latency | join p50 | RSS/participant | passed |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for m in &report.modes {
        for r in m.steps.iter().chain(m.half_load.iter()) {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.0} % | {:.0} % | {:.3} % | {:.2} / {:.2} ms | {:.0} ms | {:.0} KiB | {} |",
                r.mode,
                r.visits,
                forwarded_pps(r),
                r.server_cpu_pct,
                r.generator_cpu_pct,
                r.loss_pct,
                r.latency.p50_ms,
                r.latency.p99_ms,
                r.join.p50_ms,
                r.rss_per_participant_kib,
                match (&r.failure, r.passed) {
                    (Some(failure), _) => format!("no ({failure})"),
                    (None, true) => "yes".to_owned(),
                    (None, false) => "no".to_owned(),
                }
            );
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounting::Percentiles;

    fn step(mode: Mode, visits: u32, pps: f64, cpu: f64) -> RunReport {
        RunReport {
            mode,
            visits,
            participants: visits * 2,
            window_s: 10.0,
            server_forwarded_pps: Some(pps),
            received_pps: pps,
            sent: 1000,
            received: 1000,
            loss_pct: 0.0,
            latency: Percentiles {
                p99_ms: 0.8,
                ..Percentiles::default()
            },
            join: Percentiles {
                p50_ms: 250.0,
                ..Percentiles::default()
            },
            join_timeline: Vec::new(),
            server_cpu_pct: cpu,
            generator_cpu_pct: 90.0,
            pps_per_core: Some(pps * 100.0 / cpu),
            rss_idle_mib: 10.0,
            rss_loaded_mib: 20.0,
            rss_per_participant_kib: 2048.0,
            server_drops: None,
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

    fn mode(mode: Mode, visits: u32, pps: f64, cpu: f64) -> ModeResult {
        ModeResult {
            mode,
            max_visits: Some(visits),
            steps: vec![step(mode, visits, pps, cpu)],
            half_load: Some(step(mode, visits / 2, pps / 2.0, cpu / 2.0)),
            error: None,
        }
    }

    #[test]
    fn targets_compare_packets_per_core_and_flag_misses() {
        let modes = vec![
            mode(Mode::Baseline, 200, 80_000.0, 20.0), // 400k per core
            mode(Mode::Skaerm, 100, 40_000.0, 50.0),   // 80k per core
            mode(Mode::Janus, 50, 20_000.0, 80.0),     // 25k per core
        ];
        let checks = check_targets(&modes);
        assert_eq!(checks.len(), 5);
        assert_eq!(checks[0].met, Some(true), "{:?}", checks[0]); // 80k ≥ 2 × 25k
        assert_eq!(checks[1].met, Some(false), "{:?}", checks[1]); // 80k < 50% of 400k
        assert_eq!(checks[2].met, Some(true)); // p99 0.8 ms
        assert_eq!(checks[3].met, Some(false)); // 2 MiB per participant
        assert_eq!(checks[4].met, Some(true)); // join 250 ms
        let without_janus = check_targets(&modes[..2]);
        assert_eq!(without_janus[0].met, None);
        let md = markdown(&BenchReport {
            started_at: "t".to_owned(),
            command: "c".to_owned(),
            machine: "m".to_owned(),
            server_cpu: Some(0),
            generator_cpu: Some(1),
            video_kbps: 1200,
            simulcast: false,
            window_s: 10.0,
            modes,
            targets: checks,
        });
        assert!(md.contains("| skaerm | 100 | 40000 |"), "{md}");
        assert!(md.contains("**no**"));
    }
}
