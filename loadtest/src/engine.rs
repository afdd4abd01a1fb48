//! The generator's media engine: one thread, one UDP socket, every synthetic connection. It
//! owns the peers (`rtc` peer connections, or pre-shared-key SRTP peers in baseline mode), the
//! media sources and the accounting; signalling tasks talk to it through a bounded command
//! queue. The loop: wait for datagrams, a command or the next due packet; receive in batches;
//! emit due media; fire peer timers every few milliseconds; send in batches.

use crate::accounting::{Accounting, JoinMark, Summary};
use crate::baseline::SrtpPeer;
use crate::net::{Outgoing, UdpIo, conn_of};
use crate::rtc_peer::{Inbound, PeerState, RtcPeer};
use crate::stamp::Stamp;
use crate::synth::{MediaProfile, Source, SynthPacket};
use anyhow::{Result, anyhow};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How often every peer's timers are checked.
const TIMER_SWEEP: Duration = Duration::from_millis(5);

/// A synthetic connection.
pub enum Peer {
    /// A WebRTC peer connection.
    Rtc(Box<RtcPeer>),
    /// A baseline participant.
    Srtp(Box<SrtpPeer>),
}

struct Conn {
    participant: u32,
    publishes: bool,
    peer: Peer,
}

/// Requests to the engine.
#[allow(
    dead_code,
    reason = "Offer and ApplyAnswer serve Janus mode, wired next"
)]
pub enum Command {
    /// Apply `offer` on connection `conn` (created on first use) and reply with the answer.
    Answer {
        /// Connection index (its address is `net::conn_ip(conn)`).
        conn: usize,
        /// Owner.
        participant: u32,
        /// Whether this connection carries the participant's media.
        publishes: bool,
        /// Remote offer SDP.
        offer: String,
        /// The answer SDP.
        reply: oneshot::Sender<Result<String>>,
    },
    /// Create connection `conn` as an offerer and reply with its offer.
    Offer {
        /// Connection index.
        conn: usize,
        /// Owner.
        participant: u32,
        /// The offer SDP.
        reply: oneshot::Sender<Result<String>>,
    },
    /// Apply the remote answer to connection `conn`'s offer.
    ApplyAnswer {
        /// Connection index.
        conn: usize,
        /// Remote answer SDP.
        answer: String,
        /// Done.
        reply: oneshot::Sender<Result<()>>,
    },
    /// Add a baseline participant (publishes at once).
    AddSrtp {
        /// Connection index.
        conn: usize,
        /// Owner.
        participant: u32,
        /// The peer.
        peer: Box<SrtpPeer>,
    },
    /// `participant` opened its WebSocket now (join time starts).
    WsOpen {
        /// Who.
        participant: u32,
    },
    /// `participant` reached a step of its join at `at` (signalling: joined, offer, answer).
    Mark {
        /// Who.
        participant: u32,
        /// Which step.
        mark: JoinMark,
        /// When.
        at: Instant,
    },
    /// Count packets sent from now for `length`.
    Window {
        /// Window length.
        length: Duration,
    },
    /// Report the numbers so far.
    Report {
        /// The report.
        reply: oneshot::Sender<EngineReport>,
    },
    /// Remote media packets `participant` has received so far (soak).
    MediaReceived {
        /// Who.
        participant: u32,
        /// Packets.
        reply: oneshot::Sender<u64>,
    },
    /// Forget connection `conn` and stop `participant`'s media (a session ended; soak).
    Close {
        /// Connection index.
        conn: usize,
        /// Owner.
        participant: u32,
    },
    /// How many of the first `participants` have not received remote media yet.
    WithoutMedia {
        /// Participants 0..this are asked about.
        participants: u32,
        /// Answer.
        reply: oneshot::Sender<usize>,
    },
}

/// What the engine measured.
#[derive(Debug, Clone, Serialize)]
pub struct EngineReport {
    /// Loss, latency, join times.
    pub summary: Summary,
    /// Media packets received since the window opened, per second of window.
    pub received_pps: f64,
    /// Datagrams the generator's socket failed to send.
    pub send_failures: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Times a source fell behind its schedule (the generator was overloaded).
    pub generator_lag_events: u64,
    /// Connections that failed (ICE/DTLS).
    pub failed_connections: usize,
}

/// The engine.
pub struct Engine {
    epoch: Instant,
    io: UdpIo,
    profile: MediaProfile,
    conns: Vec<Option<Conn>>,
    sources: Vec<Option<Source>>,
    publisher_conn: Vec<Option<usize>>,
    schedule: BinaryHeap<Reverse<(Instant, u32)>>,
    acc: Accounting,
    out: Vec<Outgoing>,
    packets: Vec<SynthPacket>,
    window: Option<(Instant, Instant)>,
    received_in_window: u64,
    next_sweep: Instant,
    /// When set, every connection uses this address (Janus mode) and datagrams are told apart
    /// by their source instead of their destination.
    shared_ip: Option<IpAddr>,
    by_remote: HashMap<SocketAddr, usize>,
    touched: Vec<usize>,
    /// Remote media packets received per participant, all time.
    media_received: Vec<u64>,
}

/// A handle to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    sender: mpsc::Sender<Command>,
}

/// The engine's task: stopping it does not go through the (possibly full) command queue.
pub struct EngineTask {
    stop: Option<oneshot::Sender<()>>,
    join: tokio::task::JoinHandle<()>,
}

impl EngineTask {
    /// Tells the engine to stop and waits for it, at most `grace`; a task still running then
    /// is aborted (dropped at its next await: it never blocks without one). Returns whether it
    /// stopped by itself. Either way its socket and peer connections are gone afterwards.
    pub async fn shutdown(mut self, grace: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(grace, &mut self.join).await.is_ok() {
            return true;
        }
        self.join.abort();
        let _ = tokio::time::timeout(grace, &mut self.join).await;
        false
    }
}

impl EngineHandle {
    /// Sends a command.
    pub async fn send(&self, command: Command) -> Result<()> {
        self.sender
            .send(command)
            .await
            .map_err(|_| anyhow!("the media engine stopped"))
    }

    /// Sends a command carrying a reply channel and waits for the reply.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        rx.await
            .map_err(|_| anyhow!("the media engine dropped a request"))
    }
}

fn ns_since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

impl Engine {
    /// Starts the engine task on the current (single-threaded) runtime for `participants`.
    /// With `shared_ip`, all connections use that one local address (see [`Engine`]).
    pub fn spawn(
        participants: u32,
        profile: MediaProfile,
        shared_ip: Option<IpAddr>,
    ) -> Result<(EngineHandle, EngineTask)> {
        let io = UdpIo::bind("0.0.0.0:0".parse()?, 16 << 20)?;
        let epoch = Instant::now();
        let (sender, receiver) = mpsc::channel(1024);
        let engine = Engine {
            epoch,
            io,
            profile,
            conns: Vec::new(),
            sources: (0..participants).map(|_| None).collect(),
            publisher_conn: vec![None; participants as usize],
            schedule: BinaryHeap::new(),
            acc: Accounting::new(participants),
            out: Vec::with_capacity(1024),
            packets: Vec::with_capacity(64),
            window: None,
            received_in_window: 0,
            next_sweep: epoch,
            shared_ip,
            by_remote: HashMap::new(),
            touched: Vec::with_capacity(64),
            media_received: vec![0; participants as usize],
        };
        let (stop, stop_rx) = oneshot::channel();
        let join = tokio::task::spawn_local(engine.run(receiver, stop_rx));
        Ok((
            EngineHandle { sender },
            EngineTask {
                stop: Some(stop),
                join,
            },
        ))
    }

    fn local(&self, conn: usize) -> SocketAddr {
        let ip = self
            .shared_ip
            .unwrap_or_else(|| crate::net::conn_ip(conn).into());
        SocketAddr::new(ip, self.io_port())
    }

    fn io_port(&self) -> u16 {
        self.io.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    fn slot(&mut self, conn: usize) -> &mut Option<Conn> {
        if self.conns.len() <= conn {
            self.conns.resize_with(conn + 1, || None);
        }
        &mut self.conns[conn]
    }

    async fn run(mut self, mut receiver: mpsc::Receiver<Command>, mut stop: oneshot::Receiver<()>) {
        loop {
            self.io.send_all(&mut self.out);
            let now = Instant::now();
            let next_media = self.schedule.peek().map(|Reverse((t, _))| *t);
            let deadline = next_media.map_or(self.next_sweep, |t| t.min(self.next_sweep));
            // A deadline already passed fires at once (the next timer tick).
            let sleep = deadline.max(now);
            tokio::select! {
                biased;
                // Told to stop, or the owner is gone.
                _ = &mut stop => return,
                command = receiver.recv() => match command {
                    Some(command) => self.handle_command(command),
                    None => return,
                },
                ready = self.io.readable() => {
                    if ready.is_err() { return; }
                    self.receive();
                },
                () = tokio::time::sleep_until(sleep.into()) => {}
            }
            let now = Instant::now();
            self.emit_due(now);
            if now >= self.next_sweep {
                self.sweep(now);
                self.next_sweep = now + TIMER_SWEEP;
            }
        }
    }

    fn handle_command(&mut self, command: Command) {
        let now = Instant::now();
        let simulcast = self.profile.simulcast;
        match command {
            Command::Answer {
                conn,
                participant,
                publishes,
                offer,
                reply,
            } => {
                let local = self.local(conn);
                let result = (|| {
                    let slot = self.slot(conn);
                    if slot.is_none() {
                        let peer = RtcPeer::new(
                            now,
                            local,
                            publishes,
                            simulcast,
                            &format!("p{participant}"),
                        )?;
                        *slot = Some(Conn {
                            participant,
                            publishes,
                            peer: Peer::Rtc(Box::new(peer)),
                        });
                    }
                    match slot.as_mut().map(|c| &mut c.peer) {
                        Some(Peer::Rtc(peer)) => peer.answer(now, offer),
                        _ => Err(anyhow!("connection {conn} is not a WebRTC peer")),
                    }
                })();
                let _ = reply.send(result);
                self.drain(conn);
            }
            Command::Offer {
                conn,
                participant,
                reply,
            } => {
                let local = self.local(conn);
                let result = (|| {
                    let mut peer =
                        RtcPeer::new(now, local, true, simulcast, &format!("p{participant}"))?;
                    let offer = peer.offer(now)?;
                    *self.slot(conn) = Some(Conn {
                        participant,
                        publishes: true,
                        peer: Peer::Rtc(Box::new(peer)),
                    });
                    Ok(offer)
                })();
                let _ = reply.send(result);
                self.drain(conn);
            }
            Command::ApplyAnswer {
                conn,
                answer,
                reply,
            } => {
                let result = match self.slot(conn).as_mut().map(|c| &mut c.peer) {
                    Some(Peer::Rtc(peer)) => peer.apply_answer(now, answer),
                    _ => Err(anyhow!("connection {conn} has no offer out")),
                };
                let _ = reply.send(result);
                self.drain(conn);
            }
            Command::AddSrtp {
                conn,
                participant,
                peer,
            } => {
                *self.slot(conn) = Some(Conn {
                    participant,
                    publishes: true,
                    peer: Peer::Srtp(peer),
                });
                self.acc.on_ws_open(participant, ns_since(self.epoch, now));
                self.drain(conn);
                self.start_source(participant, now);
            }
            Command::WsOpen { participant } => {
                self.acc.on_ws_open(participant, ns_since(self.epoch, now));
            }
            Command::Mark {
                participant,
                mark,
                at,
            } => {
                self.acc
                    .on_mark(participant, mark, ns_since(self.epoch, at));
            }
            Command::Window { length } => {
                self.window = Some((now, now + length));
                self.received_in_window = 0;
                self.acc.set_window(
                    ns_since(self.epoch, now),
                    ns_since(self.epoch, now + length),
                );
            }
            Command::Report { reply } => {
                let received_pps = match self.window {
                    Some((start, end)) => {
                        let secs = now.min(end).saturating_duration_since(start).as_secs_f64();
                        if secs > 0.0 {
                            self.received_in_window as f64 / secs
                        } else {
                            0.0
                        }
                    }
                    None => 0.0,
                };
                let lag = self.sources.iter().flatten().map(Source::lagged).sum();
                let failed = self
                    .conns
                    .iter()
                    .flatten()
                    .filter(|c| matches!(&c.peer, Peer::Rtc(p) if p.state() == PeerState::Failed))
                    .count();
                let _ = reply.send(EngineReport {
                    summary: self.acc.summary(),
                    received_pps,
                    send_failures: self.io.stats.failed,
                    datagrams_sent: self.io.stats.sent,
                    generator_lag_events: lag,
                    failed_connections: failed,
                });
            }
            Command::MediaReceived { participant, reply } => {
                let count = self
                    .media_received
                    .get(participant as usize)
                    .copied()
                    .unwrap_or(0);
                let _ = reply.send(count);
            }
            Command::Close { conn, participant } => {
                if let Some(slot) = self.conns.get_mut(conn) {
                    *slot = None;
                }
                if let Some(source) = self.sources.get_mut(participant as usize) {
                    *source = None;
                }
                if let Some(publisher) = self.publisher_conn.get_mut(participant as usize) {
                    *publisher = None;
                }
            }
            Command::WithoutMedia {
                participants,
                reply,
            } => {
                let missing = (0..participants)
                    .filter(|p| !self.acc.has_media(*p))
                    .count();
                let _ = reply.send(missing);
            }
        }
    }

    fn start_source(&mut self, participant: u32, now: Instant) {
        let Some(slot) = self.sources.get_mut(participant as usize) else {
            return;
        };
        if slot.is_some() {
            return;
        }
        // Spread participants over one frame interval.
        let phase = Duration::from_micros(rand::random::<u64>() % 33_000);
        let source = Source::new(participant, self.profile, self.epoch, now + phase);
        self.schedule
            .push(Reverse((source.next_due(), participant)));
        *slot = Some(source);
    }

    /// Moves a connection's writes to the send queue and starts its media once connected.
    fn drain(&mut self, conn: usize) {
        let Some(Some(c)) = self.conns.get_mut(conn) else {
            return;
        };
        if c.publishes
            && let Some(p) = self.publisher_conn.get_mut(c.participant as usize)
        {
            *p = Some(conn);
        }
        let mut start = None;
        if let Peer::Rtc(peer) = &mut c.peer {
            let first = self.out.len();
            peer.drain(&mut self.out);
            for (mark, at) in peer.take_marks() {
                self.acc
                    .on_mark(c.participant, mark, ns_since(self.epoch, at));
            }
            if self.shared_ip.is_some() {
                for o in &self.out[first..] {
                    self.by_remote.insert(o.to, conn);
                }
            }
            if c.publishes && peer.can_send() {
                start = Some(c.participant);
            }
        }
        if let Some(participant) = start
            && self
                .sources
                .get(participant as usize)
                .is_some_and(Option::is_none)
        {
            self.start_source(participant, Instant::now());
        }
    }

    fn receive(&mut self) {
        for _ in 0..16 {
            let now = Instant::now();
            let now_ns = ns_since(self.epoch, now);
            let (conns, acc, received, by_remote, touched, sources, media_received) = (
                &mut self.conns,
                &mut self.acc,
                &mut self.received_in_window,
                &self.by_remote,
                &mut self.touched,
                &mut self.sources,
                &mut self.media_received,
            );
            touched.clear();
            let in_window = self
                .window
                .is_some_and(|(start, end)| now >= start && now < end);
            let result = self.io.recv_batch(|from, dst, data| {
                let Some(index) = dst
                    .and_then(conn_of)
                    .or_else(|| by_remote.get(&from).copied())
                else {
                    return;
                };
                let Some(Some(conn)) = conns.get_mut(index) else {
                    return;
                };
                let participant = conn.participant;
                let mut on_media = |payload: &[u8]| {
                    if in_window {
                        *received += 1;
                    }
                    if let Some(n) = media_received.get_mut(participant as usize) {
                        *n += 1;
                    }
                    acc.on_received(participant, Stamp::read_from(payload), now_ns);
                };
                match &mut conn.peer {
                    Peer::Rtc(peer) => {
                        peer.handle_datagram(now, from, data, |inbound| match inbound {
                            Inbound::Media(payload) => on_media(payload),
                            Inbound::KeyframeRequest(layer) => {
                                if let Some(Some(source)) = sources.get_mut(participant as usize) {
                                    source.request_keyframe(layer);
                                }
                            }
                        });
                        if !touched.contains(&index) {
                            touched.push(index);
                        }
                    }
                    Peer::Srtp(peer) => {
                        if let Some(payload) = peer.receive(data) {
                            on_media(&payload);
                        }
                    }
                }
            });
            for i in 0..self.touched.len() {
                let index = self.touched[i];
                self.drain(index);
            }
            match result {
                Ok(count) if count == crate::net::RECV_BATCH => {
                    self.io.send_all(&mut self.out);
                }
                _ => return,
            }
        }
    }

    fn emit_due(&mut self, now: Instant) {
        while let Some(Reverse((due, participant))) = self.schedule.peek().copied() {
            if due > now {
                break;
            }
            self.schedule.pop();
            let Some(Some(source)) = self.sources.get_mut(participant as usize) else {
                continue;
            };
            self.packets.clear();
            source.poll(now, &mut self.packets);
            if !self.packets.is_empty() {
                self.acc
                    .on_mark(participant, JoinMark::FirstSent, ns_since(self.epoch, now));
            }
            self.schedule
                .push(Reverse((source.next_due(), participant)));
            // The publishing connection of this participant.
            let Some(Some(conn_index)) = self.publisher_conn.get(participant as usize).copied()
            else {
                continue;
            };
            let Some(Some(conn)) = self.conns.get_mut(conn_index) else {
                continue;
            };
            for packet in &self.packets {
                if let Some(stamp) = Stamp::read_from(&packet.payload) {
                    self.acc.on_sent(&stamp);
                }
                let _ = match &mut conn.peer {
                    Peer::Rtc(peer) => peer.send(now, packet),
                    Peer::Srtp(peer) => peer.send(packet, &mut self.out),
                };
            }
            if let Peer::Rtc(peer) = &mut conn.peer {
                peer.drain(&mut self.out);
            }
            if self.out.len() >= 256 {
                self.io.send_all(&mut self.out);
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        for index in 0..self.conns.len() {
            let Some(Some(conn)) = self.conns.get_mut(index) else {
                continue;
            };
            if let Peer::Rtc(peer) = &mut conn.peer
                && peer.poll_timeout().is_some_and(|t| t <= now)
            {
                peer.handle_timeout(now);
                self.drain(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_engine_is_gone_and_refuses_commands() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        tokio::task::LocalSet::new().block_on(&runtime, async {
            let (handle, task) = Engine::spawn(2, MediaProfile::default(), None).expect("engine");
            let missing = handle
                .ask(|reply| Command::WithoutMedia {
                    participants: 2,
                    reply,
                })
                .await
                .expect("a running engine answers");
            assert_eq!(missing, 2);
            // The handle (a sender) is still alive: only the stop signal ends the engine.
            assert!(
                task.shutdown(Duration::from_secs(2)).await,
                "stopped by itself"
            );
            let after = handle.send(Command::WsOpen { participant: 0 }).await;
            assert!(after.is_err(), "the engine still takes commands");
        });
    }
}
