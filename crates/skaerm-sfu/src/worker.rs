//! The I/O edge of a media worker: a dedicated thread that owns its own UDP socket (one port
//! per worker) and one [`MediaCore`], feeds it datagrams in batches (`recvmmsg` through
//! `quinn-udp`), commands from signalling and the clock, and carries its outputs to the socket
//! in batches (`sendmmsg` on Linux) and to signalling sessions. Workers share nothing on the
//! packet path: no lock, no atomic beyond their own connections' estimates.
//!
//! Everything crossing the thread boundary goes through bounded queues: commands in (the
//! signalling side waits or reports `server_busy`), messages out per session (a session that
//! does not keep up is dropped, never buffered without bound).

use crate::grant::JoinGrant;
use crate::gso;
use crate::ids::{RoomId, SessionId};
use crate::media::core::{Command, CoreOutput, MediaCore, RoomEvent, SessionClose, Transmit};
use crate::media::counters::{Counters, DropReason};
use crate::media::drop_report::DropReport;
use crate::media::quality::{QualitySlice, RoomQuality, quality_counts};
use crate::metrics::RelayMetrics;
use crate::protocol::{ErrorCode, LeaveReason, Publish, ServerMessage};
use bytes::BytesMut;
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

/// Datagrams per `recvmmsg` call.
const RECV_BATCH: usize = 32;
/// Receive buffer per slot: large enough for a GRO-coalesced batch.
const RECV_SLOT: usize = 64 * 1024;
/// Datagrams per `sendmmsg` call.
const SEND_BATCH: usize = 32;
/// Datagrams handed to the core between two sends: a packet waits for at most this many
/// others before its forwards go out.
const FORWARD_GROUP: usize = 8;
/// Batches read per wake-up before looking at commands and timers again.
const BATCHES_PER_WAKE: usize = 8;
/// How often counters are published to Prometheus.
const METRICS_INTERVAL: Duration = Duration::from_millis(500);
/// How often each room's quality is sampled and published.
const QUALITY_INTERVAL: Duration = Duration::from_secs(1);
/// Into how many shares the rooms are split for sampling: one share per
/// `QUALITY_INTERVAL / QUALITY_SLICES`, so reading every connection's statistics never stalls
/// the media path for all rooms at once.
const QUALITY_SLICES: u32 = 10;

/// The latest quality snapshot of one worker, as published to the application.
#[derive(Debug, Clone, Default)]
pub struct WorkerQuality {
    /// Which worker.
    pub worker: usize,
    /// Its rooms and their participants (no display names).
    pub rooms: Vec<RoomQuality>,
}

/// What a signalling session receives from the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// A message to send.
    Message(ServerMessage),
    /// Close the WebSocket after the messages before this one.
    Close(SessionClose),
}

/// A request to the worker thread.
#[derive(Debug)]
pub enum ToWorker {
    /// Join a room; `outbox` receives this session's messages from now on.
    Join {
        /// The session.
        session: SessionId,
        /// Checked admission.
        grant: JoinGrant,
        /// What the client sends.
        publish: Publish,
        /// Where the session's messages go.
        outbox: mpsc::Sender<Outbound>,
    },
    /// Any other command.
    Command(Command),
}

/// The signalling side's handle to a worker.
#[derive(Clone)]
pub struct WorkerHandle {
    sender: mpsc::Sender<ToWorker>,
}

impl WorkerHandle {
    /// Sends a request, waiting for queue space at most `wait`. `false` when the worker is
    /// overloaded or gone.
    pub async fn send(&self, message: ToWorker, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.sender.send(message))
            .await
            .is_ok_and(|sent| sent.is_ok())
    }

    /// Sends a request without waiting; `false` when the queue is full or the worker is gone.
    pub fn try_send(&self, message: ToWorker) -> bool {
        self.sender.try_send(message).is_ok()
    }
}

/// Starts a worker thread over `socket`.
/// `quality` receives the worker's quality snapshot about once a second.
pub fn spawn(
    index: usize,
    socket: std::net::UdpSocket,
    core: MediaCore,
    metrics: RelayMetrics,
    events: mpsc::Sender<RoomEvent>,
    queue: usize,
    quality: watch::Sender<Arc<WorkerQuality>>,
) -> io::Result<WorkerHandle> {
    let (sender, receiver) = mpsc::channel(queue.max(1));
    socket.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name(format!("skaerm-media-{index}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(err) => {
                    tracing::error!(%err, "media worker runtime failed to start");
                    return;
                }
            };
            runtime.block_on(async move {
                match Worker::new(socket, core, metrics, events, index, quality) {
                    Ok(worker) => worker.run(receiver).await,
                    Err(err) => tracing::error!(%err, "media worker failed to start"),
                }
            });
        })?;
    Ok(WorkerHandle { sender })
}

struct Worker {
    socket: UdpSocket,
    state: UdpSocketState,
    core: MediaCore,
    metrics: RelayMetrics,
    published: Counters,
    /// The once-per-interval log line about hostile drops.
    drop_report: DropReport,
    published_rooms: i64,
    published_participants: i64,
    published_waiting: i64,
    events: mpsc::Sender<RoomEvent>,
    outboxes: HashMap<SessionId, mpsc::Sender<Outbound>>,
    recv_storage: Vec<u8>,
    recv_meta: [RecvMeta; RECV_BATCH],
    /// The datagrams of one receive batch, on their way into the core (reused).
    received: Vec<(std::net::SocketAddr, Option<std::net::IpAddr>, BytesMut)>,
    /// Datagrams being sent in one batch (reused).
    send_batch: Vec<Transmit>,
    /// One GSO run's datagrams back to back (at most [`gso::MAX_BYTES`]).
    gso_buffer: Vec<u8>,
    index: usize,
    quality: watch::Sender<Arc<WorkerQuality>>,
    /// Participants by quality state as last published to the gauges.
    published_quality: [i64; 4],
    /// The latest quality sample of every room, and the share of rooms sampled next.
    room_quality: HashMap<RoomId, RoomQuality>,
    quality_slice: u32,
}

impl Worker {
    fn new(
        socket: std::net::UdpSocket,
        core: MediaCore,
        metrics: RelayMetrics,
        events: mpsc::Sender<RoomEvent>,
        index: usize,
        quality: watch::Sender<Arc<WorkerQuality>>,
    ) -> io::Result<Self> {
        let socket = UdpSocket::from_std(socket)?;
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        Ok(Worker {
            socket,
            state,
            core,
            metrics,
            published: Counters::default(),
            drop_report: DropReport::new(Instant::now()),
            published_rooms: 0,
            published_participants: 0,
            published_waiting: 0,
            events,
            outboxes: HashMap::new(),
            recv_storage: vec![0u8; RECV_BATCH * RECV_SLOT],
            recv_meta: [RecvMeta::default(); RECV_BATCH],
            received: Vec::with_capacity(RECV_BATCH),
            send_batch: Vec::with_capacity(SEND_BATCH),
            gso_buffer: Vec::with_capacity(gso::MAX_BYTES),
            index,
            quality,
            published_quality: [0; 4],
            room_quality: HashMap::new(),
            quality_slice: 0,
        })
    }

    async fn run(mut self, mut receiver: mpsc::Receiver<ToWorker>) {
        let mut metrics_tick = tokio::time::interval(METRICS_INTERVAL);
        metrics_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut quality_tick = tokio::time::interval(QUALITY_INTERVAL / QUALITY_SLICES);
        quality_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.flush();
            let deadline = self
                .core
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                biased;
                message = receiver.recv() => match message {
                    Some(message) => self.handle_message(message),
                    None => break,
                },
                ready = self.socket.readable() => {
                    if let Err(err) = ready {
                        tracing::error!(%err, "UDP socket failed");
                        break;
                    }
                    self.receive();
                },
                () = tokio::time::sleep_until(deadline.into()) => {
                    self.core.handle_timeout(Instant::now());
                },
                _ = metrics_tick.tick() => self.publish_metrics(),
                _ = quality_tick.tick() => self.publish_quality(),
            }
        }
        self.publish_metrics();
        self.metrics
            .publish_quality_counts(&self.published_quality, &[0; 4]);
        tracing::info!("media worker stopped");
    }

    fn handle_message(&mut self, message: ToWorker) {
        let now = Instant::now();
        match message {
            ToWorker::Join {
                session,
                grant,
                publish,
                outbox,
            } => {
                self.outboxes.insert(session, outbox);
                self.core.handle_command(
                    now,
                    Command::Join {
                        session,
                        grant,
                        publish,
                    },
                );
            }
            ToWorker::Command(command) => {
                let leaving = match &command {
                    Command::Leave { session, .. } => Some(*session),
                    _ => None,
                };
                self.core.handle_command(now, command);
                if let Some(session) = leaving {
                    self.flush();
                    self.outboxes.remove(&session);
                }
            }
        }
    }

    /// Reads up to a few batches of datagrams into the core.
    fn receive(&mut self) {
        for _ in 0..BATCHES_PER_WAKE {
            let mut chunks = self.recv_storage.chunks_mut(RECV_SLOT);
            let mut slices: [IoSliceMut<'_>; RECV_BATCH] =
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
            let (socket, state, meta) = (&self.socket, &self.state, &mut self.recv_meta);
            let received = socket.try_io(Interest::READABLE, || {
                state.recv(UdpSockRef::from(socket), &mut slices, meta)
            });
            let count = match received {
                Ok(count) => count,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => {
                    tracing::warn!(%err, "UDP receive failed");
                    return;
                }
            };
            let now = Instant::now();
            let mut received = std::mem::take(&mut self.received);
            received.extend(
                self.recv_meta
                    .iter()
                    .zip(slices.iter())
                    .take(count)
                    .flat_map(|(meta, slice)| {
                        slice[..meta.len.min(slice.len())]
                            .chunks(meta.stride.max(1))
                            .map(|datagram| (meta.addr, meta.dst_ip, BytesMut::from(datagram)))
                    }),
            );
            // A few datagrams at a time, each group's forwards sent before the next group is
            // read: the first packet of a batch does not wait for the whole batch.
            while !received.is_empty() {
                let group = received.len().min(FORWARD_GROUP);
                self.core.handle_datagrams(now, received.drain(..group));
                self.send_transmits();
            }
            self.received = received;
            if count < RECV_BATCH {
                return;
            }
        }
    }

    /// Carries the core's outputs out: datagrams to the socket, messages to sessions, room
    /// events to the application.
    fn flush(&mut self) {
        self.send_transmits();
        while let Some(output) = self.core.poll_output() {
            match output {
                CoreOutput::Signal(session, message) => {
                    if let ServerMessage::Error { code, .. } = &message {
                        self.metrics.signalling_error(*code);
                        // The core refuses joins (room full, worker full, connection not
                        // built) and ends media that failed; signalling counts the rest.
                        if matches!(
                            code,
                            ErrorCode::RoomFull
                                | ErrorCode::ServerBusy
                                | ErrorCode::MediaFailed
                                | ErrorCode::Internal
                        ) {
                            self.metrics.join_failed(*code);
                        }
                    }
                    self.deliver(session, Outbound::Message(message));
                }
                CoreOutput::Close(session, close) => {
                    self.deliver(session, Outbound::Close(close));
                    self.outboxes.remove(&session);
                }
                CoreOutput::Room(event) => {
                    if self.events.try_send(event).is_err() {
                        tracing::warn!("room event queue full or closed; event dropped");
                    }
                }
            }
        }
        self.send_transmits();
    }

    fn deliver(&mut self, session: SessionId, outbound: Outbound) {
        let Some(outbox) = self.outboxes.get(&session) else {
            return;
        };
        match outbox.try_send(outbound) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // The client does not read its messages: drop it rather than buffer forever.
                tracing::info!(session = %session, "signalling queue full; dropping session");
                self.core.count_drop(DropReason::SignalQueueFull);
                self.outboxes.remove(&session);
                self.core.handle_command(
                    Instant::now(),
                    Command::Leave {
                        session,
                        reason: LeaveReason::Disconnected,
                    },
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.outboxes.remove(&session);
            }
        }
    }

    /// Sends everything the core has queued: runs of datagrams that can share one GSO send
    /// (`gso.rs`: a video frame to one subscriber) as one, the others up to [`SEND_BATCH`] per
    /// `sendmmsg`, in the order the core queued them. Datagrams the socket refuses (buffer full)
    /// are dropped and counted, never queued.
    fn send_transmits(&mut self) {
        let max_segments = self.state.max_gso_segments();
        loop {
            self.send_batch.clear();
            while self.send_batch.len() < SEND_BATCH {
                match self.core.poll_transmit() {
                    Some(transmit) => self.send_batch.push(transmit),
                    None => break,
                }
            }
            if self.send_batch.is_empty() {
                return;
            }
            let batch = std::mem::take(&mut self.send_batch);
            let mut singles = 0; // start of the datagrams not yet sent
            let mut at = 0;
            while at < batch.len() {
                let run = gso::run_length(&batch[at..], max_segments);
                if run < 2 {
                    at += 1;
                    continue;
                }
                self.send_singles(&batch[singles..at]);
                self.send_run(&batch[at..at + run]);
                at += run;
                singles = at;
            }
            self.send_singles(&batch[singles..]);
            self.send_batch = batch;
        }
    }

    /// Sends datagrams one each, in as few `sendmmsg` calls as the socket allows.
    fn send_singles(&mut self, transmits: &[Transmit]) {
        if transmits.is_empty() {
            return;
        }
        let sent = send_batch(&self.socket, &self.state, transmits);
        for (i, transmit) in transmits.iter().enumerate() {
            if i < sent {
                self.core.count_sent(transmit.payload.len());
            } else {
                self.core.count_drop(DropReason::SendFailed);
            }
        }
    }

    /// Sends a GSO run (same destination, equal sizes but a shorter last) as one buffer.
    fn send_run(&mut self, run: &[Transmit]) {
        self.gso_buffer.clear();
        for transmit in run {
            self.gso_buffer.extend_from_slice(&transmit.payload);
        }
        let first = &run[0];
        let udp = quinn_udp::Transmit {
            destination: first.to,
            ecn: None,
            contents: &self.gso_buffer,
            segment_size: Some(first.payload.len()),
            src_ip: None,
        };
        let (socket, state) = (&self.socket, &self.state);
        let result = socket.try_io(Interest::WRITABLE, || {
            state.try_send(UdpSockRef::from(socket), &udp)
        });
        for transmit in run {
            if result.is_ok() {
                self.core.count_sent(transmit.payload.len());
            } else {
                self.core.count_drop(DropReason::SendFailed);
            }
        }
    }

    /// Samples the next share of the rooms, observes the sample into the histograms, and
    /// publishes every room's latest sample to the application and the by-quality gauges
    /// (replacing the previous publication; nothing queues up). A room that ended drops out
    /// when its share comes round again.
    fn publish_quality(&mut self) {
        let slice = QualitySlice {
            index: self.quality_slice,
            of: QUALITY_SLICES,
        };
        self.quality_slice = (self.quality_slice + 1) % QUALITY_SLICES;
        let sampled = self.core.quality_snapshot(Instant::now(), slice);
        self.metrics.observe_quality(&sampled);
        self.room_quality.retain(|room, _| !slice.contains(*room));
        self.room_quality
            .extend(sampled.into_iter().map(|room| (room.room, room)));
        let mut rooms: Vec<RoomQuality> = self.room_quality.values().cloned().collect();
        rooms.sort_by_key(|r| std::cmp::Reverse(r.age));
        let counts = quality_counts(&rooms);
        self.metrics
            .publish_quality_counts(&self.published_quality, &counts);
        self.published_quality = counts;
        self.quality.send_replace(Arc::new(WorkerQuality {
            worker: self.index,
            rooms,
        }));
    }

    fn publish_metrics(&mut self) {
        if let Some(line) = self.drop_report.due(Instant::now(), self.core.counters()) {
            let drops = line.counts;
            if line.alarming {
                tracing::warn!(worker = self.index, %drops, "datagrams and candidates dropped in the last interval");
            } else {
                tracing::info!(worker = self.index, %drops, "datagrams and candidates dropped in the last interval");
            }
        }
        let now = self.core.counters().clone();
        self.metrics.publish(&self.published, &now);
        self.published = now;
        let rooms = self.core.room_count() as i64;
        let participants = self.core.participant_count() as i64;
        self.metrics.rooms.add(rooms - self.published_rooms);
        self.metrics
            .participants
            .add(participants - self.published_participants);
        self.published_rooms = rooms;
        self.published_participants = participants;
        let waiting = self.core.waiting_count() as i64;
        self.metrics.waiting.add(waiting - self.published_waiting);
        self.published_waiting = waiting;
    }
}

/// Sends `batch` with as few `sendmmsg` calls as the socket allows; returns how many datagrams
/// (from the front) went out. No heap allocation: the message headers live on the stack.
#[cfg(target_os = "linux")]
fn send_batch(socket: &UdpSocket, _state: &UdpSocketState, batch: &[Transmit]) -> usize {
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny, sendmmsg};
    use std::io::IoSlice;
    use std::net::SocketAddr;

    let count = batch.len().min(SEND_BATCH);
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
    let addrs: [SocketAddrAny; SEND_BATCH] =
        std::array::from_fn(|i| SocketAddrAny::from(batch.get(i).map_or(unspecified, |t| t.to)));
    let iovs: [[IoSlice<'_>; 1]; SEND_BATCH] = std::array::from_fn(|i| {
        [IoSlice::new(
            batch.get(i).map_or(&[][..], |t| &t.payload[..]),
        )]
    });
    let mut controls: [SendAncillaryBuffer<'_, '_, '_>; SEND_BATCH] =
        std::array::from_fn(|_| SendAncillaryBuffer::default());
    let mut index = 0;
    let mut messages: [MMsgHdr<'_>; SEND_BATCH] = controls.each_mut().map(|control| {
        let message = MMsgHdr::new_with_addr(&addrs[index], &iovs[index], control);
        index += 1;
        message
    });
    let mut sent = 0;
    while sent < count {
        let result = socket.try_io(Interest::WRITABLE, || {
            sendmmsg(socket, &mut messages[sent..count], SendFlags::empty())
                .map_err(io::Error::from)
        });
        match result {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    sent
}

/// One datagram per call where `sendmmsg` is not available.
#[cfg(not(target_os = "linux"))]
fn send_batch(socket: &UdpSocket, state: &UdpSocketState, batch: &[Transmit]) -> usize {
    use quinn_udp::Transmit as UdpTransmit;
    let mut sent = 0;
    for transmit in batch {
        let udp = UdpTransmit {
            destination: transmit.to,
            ecn: None,
            contents: &transmit.payload,
            segment_size: None,
            src_ip: None,
        };
        let result = socket.try_io(Interest::WRITABLE, || {
            state.try_send(UdpSockRef::from(socket), &udp)
        });
        if result.is_err() {
            break;
        }
        sent += 1;
    }
    sent
}
