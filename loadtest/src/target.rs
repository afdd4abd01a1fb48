//! The server under test as a child process: the real `skaerm` binary, the baseline forwarder
//! (this binary's `forwarder` subcommand) or Janus. Starts it on free loopback ports, optionally
//! pinned to one CPU with `taskset`, waits for its readiness line, and reads what it forwarded
//! (Prometheus `/metrics` for skaerm, the forwarder's progress lines, Janus: none).

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a server may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running server under test.
pub struct Target {
    child: Child,
    /// Its process id (for `/proc`).
    pub pid: u32,
    /// HTTP base URL (skaerm, Janus).
    pub http: Option<String>,
    /// The media address (baseline forwarder).
    pub udp: Option<SocketAddr>,
    forwarded: Arc<AtomicU64>,
    /// Where its log goes.
    pub log: PathBuf,
}

/// A free loopback port (TCP or UDP), probed by binding port 0.
pub fn free_port(udp: bool) -> Result<u16> {
    let port = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    };
    Ok(port)
}

/// `program`, pinned to `cpu` through `taskset` when given.
pub fn command(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Pins this process (all its threads) to `cpu`.
pub fn pin_self(cpu: usize) -> Result<()> {
    let status = std::process::Command::new("taskset")
        .args([
            "-a",
            "-c",
            "-p",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    if !status.success() {
        bail!("taskset could not pin the generator to CPU {cpu}");
    }
    Ok(())
}

impl Target {
    /// Starts `cmd`, its stderr into `log`; with `ready_prefix`, waits for a stdout line
    /// starting with it and returns the rest of that line.
    pub async fn spawn(
        mut cmd: Command,
        log: PathBuf,
        ready_prefix: Option<&'static str>,
    ) -> Result<(Target, String)> {
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting the server under test")?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            let Some(ready_prefix) = ready_prefix else {
                return Ok(String::new());
            };
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix(ready_prefix) {
                    return Ok(rest.trim().to_owned());
                }
            }
            bail!(
                "the server exited before it was ready (log: {})",
                log.display()
            )
        })
        .await
        .with_context(|| format!("waiting for the server to start (log: {})", log.display()))??;
        let forwarded = Arc::new(AtomicU64::new(0));
        let counter = forwarded.clone();
        tokio::task::spawn_local(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(n) = line
                    .strip_prefix("forwarded ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                {
                    counter.store(n, Ordering::Relaxed);
                }
            }
        });
        Ok((
            Target {
                child,
                pid,
                http: None,
                udp: None,
                forwarded,
                log,
            },
            ready,
        ))
    }

    /// Starts `skaerm` with its data in `data_dir`, on loopback only; with `simulcast`, the
    /// relay asks publishers for three layers (`--simulcast`). Its `RUST_LOG` is
    /// `$SKAERM_LOADTEST_SERVER_LOG`, else `default_log` (`None`: the server's own default).
    pub async fn skaerm(
        bin: &Path,
        data_dir: &Path,
        cpu: Option<usize>,
        simulcast: bool,
        default_log: Option<&str>,
    ) -> Result<Target> {
        let http_port = free_port(false)?;
        let udp_port = free_port(true)?;
        let mut cmd = command(bin, cpu);
        cmd.arg("--data-dir")
            .arg(data_dir)
            .arg("--no-demo")
            .args(["--listen", &format!("127.0.0.1:{http_port}")])
            .args(["--udp-port", &udp_port.to_string()])
            .args(["--udp-bind-ip", "127.0.0.1"])
            .args(["--announce-ip", "127.0.0.1"])
            .args(["--max-participants", "2"])
            // Every synthetic participant connects from loopback.
            .args(["--max-websockets-per-address", "0"])
            .args(["--max-connections-per-ip", "65536"])
            .env_remove("RUST_LOG");
        let log_filter = std::env::var("SKAERM_LOADTEST_SERVER_LOG")
            .ok()
            .or(default_log.map(str::to_owned));
        if let Some(filter) = log_filter {
            cmd.env("RUST_LOG", filter);
        }
        if simulcast {
            cmd.arg("--simulcast");
        }
        let (mut target, url) =
            Target::spawn(cmd, data_dir.join("skaerm.log"), Some("skaerm ready:")).await?;
        target.http = Some(url);
        Ok(target)
    }

    /// Starts the baseline forwarder for `participants` participants.
    pub async fn forwarder(
        participants: u32,
        seed: u64,
        cpu: Option<usize>,
        log_dir: &Path,
    ) -> Result<Target> {
        let exe = std::env::current_exe().context("locating this binary")?;
        let udp_port = free_port(true)?;
        let mut cmd = command(&exe, cpu);
        cmd.arg("forwarder")
            .args(["--listen", &format!("127.0.0.1:{udp_port}")])
            .args(["--participants", &participants.to_string()])
            .args(["--seed", &seed.to_string()]);
        let (mut target, addr) =
            Target::spawn(cmd, log_dir.join("forwarder.log"), Some("forwarder ready:")).await?;
        target.udp = Some(addr.parse().context("forwarder address")?);
        Ok(target)
    }

    /// Packets the server says it forwarded so far (`None` when it does not say).
    pub async fn forwarded_total(&self, client: &reqwest::Client) -> Option<u64> {
        if self.udp.is_some() {
            return Some(self.forwarded.load(Ordering::Relaxed));
        }
        let url = format!("{}/metrics", self.http.as_ref()?);
        let text = client.get(url).send().await.ok()?.text().await.ok()?;
        metric_sum(&text, "skaerm_rtp_packets_forwarded_total")
    }

    /// Drops counted by the server (skaerm only), except the simulcast layers it did not
    /// select for a subscriber (`reason="layer_not_selected"`: by design, not a loss).
    pub async fn dropped_total(&self, client: &reqwest::Client) -> Option<u64> {
        let url = format!("{}/metrics", self.http.as_ref()?);
        let text = client.get(url).send().await.ok()?.text().await.ok()?;
        let all = metric_sum(&text, "skaerm_packets_dropped_total")?;
        let unselected = metric_sum(
            &text,
            "skaerm_packets_dropped_total{reason=\"layer_not_selected\"}",
        )
        .unwrap_or(0);
        Some(all.saturating_sub(unselected))
    }

    /// Kills it at once (SIGKILL) and reaps it, waiting at most 10 s: for a step abandoned at
    /// its deadline, whose server may be too busy to shut down cleanly.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// Stops it: SIGINT first (skaerm shuts down cleanly, profilers write their output), SIGKILL
    /// after 10 s.
    pub async fn stop(mut self) {
        let interrupted = std::process::Command::new("kill")
            .args(["-INT", &self.pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if interrupted
            && tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_ok()
        {
            return;
        }
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// The sum of every sample of metric `name` (all label sets) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> Option<u64> {
    let mut found = false;
    let mut sum = 0f64;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // `name` may end in a label set (one sample) or not (every label set).
        if !(rest.starts_with(' ') || (rest.starts_with('{') && !name.ends_with('}'))) {
            continue;
        }
        let value = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let Some(v) = value {
            found = true;
            sum += v;
        }
    }
    found.then_some(sum as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_metric_over_its_labels_only() {
        let text = "# HELP skaerm_packets_dropped_total x\n\
                    skaerm_packets_dropped_total{reason=\"malformed\"} 3\n\
                    skaerm_packets_dropped_total{reason=\"queue_full\"} 4\n\
                    skaerm_packets_dropped_total_extra 100\n\
                    skaerm_rtp_packets_forwarded_total 12345\n";
        assert_eq!(metric_sum(text, "skaerm_packets_dropped_total"), Some(7));
        assert_eq!(
            metric_sum(text, "skaerm_rtp_packets_forwarded_total"),
            Some(12345)
        );
        assert_eq!(metric_sum(text, "skaerm_nothing"), None);
        assert_eq!(
            metric_sum(text, "skaerm_packets_dropped_total{reason=\"queue_full\"}"),
            Some(4)
        );
    }
}
