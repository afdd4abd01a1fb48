//! What `/proc` says about the server under test: CPU time (user + system, all threads) and
//! resident memory, open file descriptors. Parsing is pure; reading is one file each.

use anyhow::{Context, Result};
use std::time::Instant;

/// Clock ticks per second of `/proc/<pid>/stat` times.
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// `utime + stime` in ticks from the text of `/proc/<pid>/stat`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS` in bytes from the text of `/proc/<pid>/status`.
pub fn parse_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU ticks of `pid` now.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_cpu_ticks(&text).context("parsing /proc/<pid>/stat")
}

/// Resident memory of `pid` now.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_rss_bytes(&text).context("no VmRSS in /proc/<pid>/status")
}

/// Open file descriptors of `pid` now (entries of `/proc/<pid>/fd`).
pub fn open_fds(pid: u32) -> Result<usize> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("reading /proc/{pid}/fd"))?;
    Ok(entries.count())
}

/// A CPU-time sample to measure a span against.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    ticks: u64,
    at: Instant,
}

impl CpuSample {
    /// Samples `pid`.
    pub fn take(pid: u32) -> Result<CpuSample> {
        Ok(CpuSample {
            ticks: cpu_ticks(pid)?,
            at: Instant::now(),
        })
    }

    /// CPU use between `self` and `later`, in percent of one core.
    pub fn percent_until(&self, later: &CpuSample, ticks_per_second: u64) -> f64 {
        let secs = later.at.saturating_duration_since(self.at).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        let used = later.ticks.saturating_sub(self.ticks) as f64 / ticks_per_second.max(1) as f64;
        used * 100.0 / secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_ticks_even_with_a_hostile_command_name() {
        let stat = "4242 (sk (a) erm) S 1 4242 4242 0 -1 4194560 1234 0 0 0 750 250 0 0 20 0 9 0 \
                    100 2000000 3000 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(1000));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert_eq!(parse_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_rss_and_reads_our_own_process() {
        let status = "Name:\tskaerm\nVmPeak:\t  999 kB\nVmRSS:\t   2048 kB\nThreads:\t4\n";
        assert_eq!(parse_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(parse_rss_bytes("Name: x\n"), None);
        let me = std::process::id();
        assert!(rss_bytes(me).expect("own status") > 0);
        cpu_ticks(me).expect("own stat");
        assert!(
            open_fds(me).expect("own fds") >= 3,
            "stdin, stdout, stderr at least"
        );
    }
}
