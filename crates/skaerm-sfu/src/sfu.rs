//! [`Sfu`]: starting the relay (one socket and worker per core, signalling) and the handle the
//! server keeps.

use crate::config::RelayConfig;
use crate::grant::JoinAuthorizer;
use crate::ids::{ParticipantId, RoomId};
use crate::media::core::{Command, CoreConfig, MediaCore, RoomEvent};
use crate::media::engine::EngineError;
use crate::metrics::RelayMetrics;
use crate::protocol::EndReason;
use crate::signalling::Signalling;
pub use crate::worker::WorkerQuality;
use crate::worker::{self, ToWorker, WorkerHandle};
use axum::Router;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Capacity of the room-event queue to the application.
const ROOM_EVENT_QUEUE: usize = 4096;

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum SfuError {
    /// The UDP socket could not be set up.
    #[error("UDP socket {addr}: {source}")]
    Socket {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The media engine could not be set up.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The worker thread could not start.
    #[error("media worker: {0}")]
    Worker(std::io::Error),
}

/// What operations see of the relay right now.
#[derive(Debug, Clone)]
pub struct OpsView {
    /// Each worker's latest quality snapshot, in worker order.
    pub workers: Vec<Arc<WorkerQuality>>,
    /// Failed joins by reason in the last hour.
    pub join_failures_last_hour: std::collections::BTreeMap<&'static str, u64>,
}

/// The running relay.
pub struct Sfu {
    quality: Vec<watch::Receiver<Arc<WorkerQuality>>>,
    metrics: RelayMetrics,
    signalling: Signalling,
    workers: Vec<WorkerHandle>,
    udp_addrs: Vec<SocketAddr>,
    announced: Vec<SocketAddr>,
    events: Option<mpsc::Receiver<RoomEvent>>,
}

impl Sfu {
    /// Binds one UDP port per media worker (consecutive from `udp_bind`), starts the workers
    /// and prepares signalling. Must be called inside a Tokio runtime.
    pub fn start(
        config: RelayConfig,
        authorizer: Arc<dyn JoinAuthorizer>,
        registry: &prometheus::Registry,
    ) -> Result<Sfu, SfuError> {
        let metrics = RelayMetrics::register(registry)?;
        let (event_sender, events) = mpsc::channel(ROOM_EVENT_QUEUE);
        let count = config.media_workers.max(1);
        let mut workers = Vec::with_capacity(count);
        let mut quality = Vec::with_capacity(count);
        let mut udp_addrs = Vec::with_capacity(count);
        let mut announced = Vec::new();
        let mut announce: Option<Vec<IpAddr>> = None;
        for index in 0..count {
            let bind = worker_bind_addr(config.udp_bind, index)?;
            let socket = bind_udp(bind, config.socket_buffer_bytes)?;
            let udp_addr = socket
                .local_addr()
                .map_err(|source| SfuError::Socket { addr: bind, source })?;
            let ips = announce.get_or_insert_with(|| announce_ips(&config, udp_addr));
            let local_addrs: Vec<SocketAddr> = ips
                .iter()
                .map(|ip| SocketAddr::new(*ip, udp_addr.port()))
                .collect();
            let core = MediaCore::new(CoreConfig {
                local_addrs: local_addrs.clone(),
                max_participants_per_room: config.max_participants_per_room,
                max_peers: config.max_peers_per_worker,
                keyframe_request_interval: config.keyframe_request_interval,
                fallback: config.fallback,
                simulcast: config.simulcast,
            })?;
            let (quality_sender, quality_receiver) = watch::channel(Arc::new(WorkerQuality {
                worker: index,
                rooms: Vec::new(),
            }));
            quality.push(quality_receiver);
            let worker = worker::spawn(
                index,
                socket,
                core,
                metrics.clone(),
                event_sender.clone(),
                config.command_queue,
                quality_sender,
            )
            .map_err(SfuError::Worker)?;
            workers.push(worker);
            udp_addrs.push(udp_addr);
            announced.extend(local_addrs);
        }
        tracing::info!(?udp_addrs, ?announced, "media relay listening");
        Ok(Sfu {
            signalling: Signalling::new(workers.clone(), authorizer, config, metrics.clone()),
            quality,
            metrics,
            workers,
            udp_addrs,
            announced,
            events: Some(events),
        })
    }

    /// The signalling route (`/ws`); the per-address WebSocket cap counts TCP peers.
    pub fn router(&self) -> Router {
        self.signalling.router()
    }

    /// The signalling route with the application's rule for a request's client address (e.g.
    /// `X-Forwarded-For` from trusted proxies), which the per-address WebSocket cap counts.
    pub fn router_with_client_ip(&self, client_ip: crate::signalling::ClientIpResolver) -> Router {
        self.signalling.router_with_client_ip(client_ip)
    }

    /// The bound UDP address of the first media worker.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addrs[0]
    }

    /// The bound UDP address of every media worker, in worker order.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The host candidates put in offers, over all workers (each offer carries only its
    /// worker's).
    pub fn announced_addrs(&self) -> &[SocketAddr] {
        &self.announced
    }

    /// Room events (joins, leaves), once; the application must keep draining it.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<RoomEvent>> {
        self.events.take()
    }

    /// Ends a room for everyone in it (e.g. staff ended the visit).
    pub async fn close_room(&self, room: RoomId, reason: EndReason) -> bool {
        let Some(worker) = self.signalling.worker_for(room) else {
            return false;
        };
        worker
            .send(
                ToWorker::Command(Command::CloseRoom { room, reason }),
                Duration::from_secs(5),
            )
            .await
    }

    /// Takes one participant out of a room, from the call or its waiting room (e.g. its
    /// invitation was revoked); it is told `reason`. False when the worker could not be reached.
    pub async fn remove_participant(
        &self,
        room: RoomId,
        participant: ParticipantId,
        reason: EndReason,
    ) -> bool {
        let Some(worker) = self.signalling.worker_for(room) else {
            return false;
        };
        worker
            .send(
                ToWorker::Command(Command::RemoveParticipant {
                    room,
                    participant,
                    reason,
                }),
                Duration::from_secs(5),
            )
            .await
    }

    /// The latest quality snapshot of every worker (taken about once a second; reading it
    /// never touches a worker) and the failed joins of the last hour.
    pub fn ops_view(&self) -> OpsView {
        OpsView {
            workers: self.quality.iter().map(|r| r.borrow().clone()).collect(),
            join_failures_last_hour: self.metrics.join_failures.last_hour(),
        }
    }

    /// Number of media workers.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }
}

/// Worker `index` binds the configured port plus `index` (port 0: a free port each).
fn worker_bind_addr(base: SocketAddr, index: usize) -> Result<SocketAddr, SfuError> {
    if base.port() == 0 {
        return Ok(base);
    }
    let port = u16::try_from(usize::from(base.port()) + index).map_err(|_| SfuError::Socket {
        addr: base,
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the UDP port range of the media workers passes 65535",
        ),
    })?;
    Ok(SocketAddr::new(base.ip(), port))
}

fn bind_udp(addr: SocketAddr, buffer: usize) -> Result<UdpSocket, SfuError> {
    let io = |source| SfuError::Socket { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP)).map_err(io)?;
    // Bigger kernel buffers absorb bursts (a keyframe is dozens of packets at once); the kernel
    // may clamp them to its maximum, which is fine.
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.bind(&addr.into()).map_err(io)?;
    Ok(socket.into())
}

/// The addresses to announce: configured ones, else the bind address when specific, else
/// loopback and the host's primary address.
fn announce_ips(config: &RelayConfig, bound: SocketAddr) -> Vec<IpAddr> {
    if !config.announce_ips.is_empty() {
        return config.announce_ips.clone();
    }
    if !bound.ip().is_unspecified() {
        return vec![bound.ip()];
    }
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if let Some(primary) = primary_ip()
        && !ips.contains(&primary)
    {
        ips.push(primary);
    }
    ips
}

/// The address the host would use to reach the outside (no packet is sent: connecting a UDP
/// socket only selects a route).
fn primary_ip() -> Option<IpAddr> {
    let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    probe.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    let ip = probe.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_take_consecutive_ports_and_the_range_is_checked() {
        let base: SocketAddr = "0.0.0.0:50000".parse().unwrap_or_else(|_| unreachable!());
        let ports: Vec<u16> = (0..3)
            .map(|i| worker_bind_addr(base, i).map_or(0, |a| a.port()))
            .collect();
        assert_eq!(ports, vec![50000, 50001, 50002]);
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(worker_bind_addr(any, 5).map_or(1, |a| a.port()), 0);
        let top: SocketAddr = "0.0.0.0:65535".parse().unwrap_or_else(|_| unreachable!());
        assert!(worker_bind_addr(top, 1).is_err());
    }
}
