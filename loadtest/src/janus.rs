//! Janus mode: Debian's `janus` (installed with apt when missing) with a generated loopback-only
//! configuration (VideoRoom plugin and the HTTP transport only, ICE-lite, loopback candidates
//! only, no STUN), driven through Janus's own REST API. Each visit gets a room; each participant
//! has one Janus session with two handles: a publisher (our offer, Janus answers) and a
//! subscriber to the other participant's feed (Janus offers, we answer). With Janus ICE-lite,
//! our `rtc` peers are the controlling agents on both legs, exactly as against Skærm.

use crate::engine::{Command, EngineHandle};
use crate::target::{Target, command, free_port};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const PLUGIN: &str = "janus.plugin.videoroom";
/// Publisher bitrate cap (REMB) Janus applies: far above what we send.
const BITRATE_CAP: u64 = 20_000_000;
const ROOM_BASE: u64 = 1000;

fn lib_dir() -> PathBuf {
    PathBuf::from("/usr/lib/x86_64-linux-gnu/janus")
}

/// Installs Debian's `janus` when it is missing.
pub fn ensure_installed() -> Result<()> {
    if Path::new("/usr/bin/janus").exists() {
        return Ok(());
    }
    eprintln!("janus is missing: apt-get update && apt-get install -y janus");
    let ok = std::process::Command::new("apt-get")
        .arg("update")
        .status()
        .is_ok_and(|s| s.success())
        && std::process::Command::new("apt-get")
            .args(["install", "-y", "janus"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        bail!("could not install janus with apt-get");
    }
    Ok(())
}

/// Writes a loopback-only configuration into `dir` for an HTTP API on `http_port`.
fn write_config(dir: &Path, http_port: u16) -> Result<()> {
    let plugins = dir.join("plugins");
    let transports = dir.join("transports");
    let empty = dir.join("empty");
    for d in [&plugins, &transports, &empty] {
        std::fs::create_dir_all(d)?;
    }
    // Only the VideoRoom plugin and the HTTP transport are loaded.
    std::os::unix::fs::symlink(
        lib_dir().join("plugins/libjanus_videoroom.so"),
        plugins.join("libjanus_videoroom.so"),
    )?;
    std::os::unix::fs::symlink(
        lib_dir().join("transports/libjanus_http.so"),
        transports.join("libjanus_http.so"),
    )?;
    let d = |p: &Path| p.display().to_string();
    std::fs::write(
        dir.join("janus.jcfg"),
        format!(
            r#"general: {{
	configs_folder = "{conf}"
	plugins_folder = "{plugins}"
	transports_folder = "{transports}"
	events_folder = "{empty}"
	loggers_folder = "{empty}"
	debug_level = 3
	session_timeout = 120
	interface = "127.0.0.1"
}}
media: {{
	rtp_port_range = "30000-60000"
	no_media_timer = 5
}}
nat: {{
	nice_debug = false
	ice_lite = true
	ice_enforce_list = "lo"
	ignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
"#,
            conf = d(dir),
            plugins = d(&plugins),
            transports = d(&transports),
            empty = d(&empty),
        ),
    )?;
    std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")?;
    std::fs::write(
        dir.join("janus.transport.http.jcfg"),
        format!(
            r#"general: {{
	json = "compact"
	base_path = "/janus"
	http = true
	port = {http_port}
	ip = "127.0.0.1"
	https = false
}}
admin: {{
	admin_http = false
}}
"#
        ),
    )?;
    Ok(())
}

/// Starts Janus with its configuration in `dir`, pinned to `cpu`.
pub async fn start(dir: &Path, cpu: Option<usize>) -> Result<Target> {
    ensure_installed()?;
    let conf = dir.join("janus");
    std::fs::create_dir_all(&conf)?;
    let http_port = free_port(false)?;
    write_config(&conf, http_port)?;
    let mut cmd = command(Path::new("/usr/bin/janus"), cpu);
    cmd.arg("--configs-folder")
        .arg(&conf)
        .arg("--config")
        .arg(conf.join("janus.jcfg"));
    let full_log = dir.join("janus.log");
    cmd.arg("--log-file").arg(&full_log);
    let (mut target, _) = Target::spawn(cmd, dir.join("janus-stderr.log"), None).await?;
    target.log = full_log;
    let base = format!("http://127.0.0.1:{http_port}/janus");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/info")).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "janus did not answer on {base} (log: {})",
                target.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    target.http = Some(base);
    Ok(target)
}

/// A Janus session over the REST API.
struct Session {
    client: reqwest::Client,
    url: String,
    transaction: u64,
}

impl Session {
    async fn create(base: &str) -> Result<Session> {
        let client = reqwest::Client::new();
        let mut session = Session {
            client,
            url: base.to_owned(),
            transaction: 0,
        };
        let created = session.post(base, json!({"janus": "create"})).await?;
        let id = created["data"]["id"].as_u64().context("no session id")?;
        session.url = format!("{base}/{id}");
        Ok(session)
    }

    async fn post(&mut self, url: &str, mut body: Value) -> Result<Value> {
        self.transaction += 1;
        body["transaction"] = json!(self.transaction.to_string());
        let response: Value = self
            .client
            .post(url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?
            .json()
            .await?;
        if response["janus"] == "error" {
            bail!("janus error: {response}");
        }
        Ok(response)
    }

    async fn attach(&mut self) -> Result<u64> {
        let url = self.url.clone();
        let attached = self
            .post(&url, json!({"janus": "attach", "plugin": PLUGIN}))
            .await?;
        attached["data"]["id"].as_u64().context("no handle id")
    }

    async fn message(&mut self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value> {
        let url = format!("{}/{handle}", self.url);
        let mut message = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            message["jsep"] = jsep;
        }
        self.post(&url, message).await
    }

    /// Tells Janus there are no more candidates than those in our SDP.
    async fn trickle_done(&mut self, handle: u64) -> Result<()> {
        let url = format!("{}/{handle}", self.url);
        self.post(
            &url,
            json!({"janus": "trickle", "candidate": {"completed": true}}),
        )
        .await?;
        Ok(())
    }

    /// Long-polls for events (up to ~30 s).
    async fn events(&self) -> Result<Vec<Value>> {
        let value: Value = self
            .client
            .get(format!("{}?maxev=10", self.url))
            .send()
            .await?
            .json()
            .await?;
        Ok(match value {
            Value::Array(events) => events,
            event => vec![event],
        })
    }
}

/// The address Janus's candidates use: libnice never offers the loopback interface, so Janus
/// is reached on this host's own (first global IPv4) address, which the kernel delivers through
/// the loopback device. The generator's Janus connections use it as their source too (a
/// loopback source towards a non-loopback destination is not routed back).
pub fn host_ip() -> Result<IpAddr> {
    let output = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .context("running `ip addr`")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|ip| ip.parse().ok())
        .context("this host has no global IPv4 address for Janus's candidates")
}

/// Keeps only Janus's candidates on addresses of this host (libnice never offers `lo`, so
/// Janus's host candidate is the machine's own address, which the kernel delivers through the
/// loopback device); IPv6 and anything not local are dropped, so no load can leave the machine.
pub fn local_candidates_only(sdp: &str) -> String {
    let is_local = |ip: &str| {
        ip.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| std::net::UdpSocket::bind(std::net::SocketAddr::from((ip, 0))).is_ok())
    };
    sdp.split_inclusive('\n')
        .filter(|line| {
            let Some(candidate) = line.strip_prefix("a=candidate:") else {
                return true;
            };
            // foundation component transport priority address port typ …
            candidate.split_whitespace().nth(4).is_some_and(is_local)
        })
        .collect()
}

/// The feed id of `participant` (Janus ids start at 1).
fn feed_of(participant: u32) -> u64 {
    u64::from(participant) + 1
}

/// Runs one participant against Janus until `stop`: publishes on engine connection
/// `participant`, subscribes on connection `participants + participant`.
pub async fn participant(
    base: String,
    visit: u32,
    participant: u32,
    participants: u32,
    engine: EngineHandle,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let room = ROOM_BASE + u64::from(visit);
    let me = feed_of(participant);
    let other = feed_of(participant ^ 1);
    let pub_conn = participant as usize;
    let sub_conn = (participants + participant) as usize;
    let mut session = Session::create(&base).await?;
    engine.send(Command::WsOpen { participant }).await?;
    let publisher = session.attach().await?;
    // Both participants try to create the room; the second finds it there.
    let created = session
        .message(
            publisher,
            json!({"request": "create", "room": room, "publishers": 2, "bitrate": BITRATE_CAP,
                   "audiocodec": "opus", "videocodec": "vp8", "notify_joining": false}),
            None,
        )
        .await?;
    let data = &created["plugindata"]["data"];
    if data["error_code"].as_u64().is_some_and(|c| c != 427) {
        bail!("creating room {room}: {data}");
    }
    session
        .message(
            publisher,
            json!({"request": "join", "ptype": "publisher", "room": room, "id": me}),
            None,
        )
        .await?;
    let mut subscriber: Option<u64> = None;
    loop {
        let events = tokio::select! {
            events = session.events() => events?,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        for event in events {
            tracing::debug!(participant, %event, "janus event");
            let sender = event["sender"].as_u64();
            let data = &event["plugindata"]["data"];
            if let Some(code) = data["error_code"].as_u64() {
                bail!("janus plugin error {code}: {data}");
            }
            if event["janus"] == "hangup" {
                bail!("janus hung up on participant {participant}: {event}");
            }
            let kind = data["videoroom"].as_str().unwrap_or_default();
            let jsep = &event["jsep"];
            if sender == Some(publisher) {
                if kind == "joined" {
                    let offer = engine
                        .ask(|reply| Command::Offer {
                            conn: pub_conn,
                            participant,
                            reply,
                        })
                        .await??;
                    tracing::debug!(participant, %offer, "publisher offer");
                    session
                        .message(
                            publisher,
                            json!({"request": "publish", "audio": true, "video": true,
                                   "bitrate": BITRATE_CAP}),
                            Some(json!({"type": "offer", "sdp": offer})),
                        )
                        .await?;
                    session.trickle_done(publisher).await?;
                }
                if jsep["type"] == "answer" {
                    let answer =
                        local_candidates_only(jsep["sdp"].as_str().context("answer without sdp")?);
                    engine
                        .ask(|reply| Command::ApplyAnswer {
                            conn: pub_conn,
                            answer,
                            reply,
                        })
                        .await??;
                }
                let other_published = data["publishers"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|p| p["id"].as_u64() == Some(other)));
                if other_published && subscriber.is_none() {
                    let handle = session.attach().await?;
                    subscriber = Some(handle);
                    session
                        .message(
                            handle,
                            json!({"request": "join", "ptype": "subscriber", "room": room,
                                   "streams": [{"feed": other}]}),
                            None,
                        )
                        .await?;
                }
            } else if sender.is_some() && sender == subscriber && jsep["type"] == "offer" {
                let offer =
                    local_candidates_only(jsep["sdp"].as_str().context("offer without sdp")?);
                let answer = engine
                    .ask(|reply| Command::Answer {
                        conn: sub_conn,
                        participant,
                        publishes: false,
                        offer,
                        reply,
                    })
                    .await??;
                session
                    .message(
                        subscriber.unwrap_or_default(),
                        json!({"request": "start", "room": room}),
                        Some(json!({"type": "answer", "sdp": answer})),
                    )
                    .await?;
                session.trickle_done(subscriber.unwrap_or_default()).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_ipv4_candidates_survive() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=candidate:1 1 udp 2015363327 127.0.0.1 48834 typ host\r\n\
                   a=candidate:2 1 udp 2015363583 fd00::2 33655 typ host\r\n\
                   a=candidate:3 1 udp 2015363583 203.0.113.9 33655 typ host\r\n\
                   a=end-of-candidates\r\n";
        let kept = local_candidates_only(sdp);
        assert!(kept.contains("127.0.0.1 48834"));
        assert!(!kept.contains("fd00::2"));
        assert!(!kept.contains("203.0.113.9"), "not an address of this host");
        assert!(kept.starts_with("v=0\r\nm=audio") && kept.ends_with("a=end-of-candidates\r\n"));
    }
}
