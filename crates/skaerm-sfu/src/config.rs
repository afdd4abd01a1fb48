//! How the relay is configured: its UDP port, the addresses it announces, and its limits.

use crate::media::bandwidth::FallbackPolicy;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Relay settings. `Default` is right for a developer machine; production sets the announced
/// address to the public IP when the host sits behind 1:1 NAT.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Where media worker 0's UDP socket binds; worker `i` binds the port plus `i`, so the relay
    /// uses a small consecutive port range. Port 0 gives every worker a free port (tests).
    pub udp_bind: SocketAddr,
    /// Addresses put in the SDP as host candidates, each with the port of the participant's
    /// worker. Empty means: the bind address if it is specific, otherwise loopback plus the
    /// host's primary address.
    pub announce_ips: Vec<IpAddr>,
    /// Media workers (threads, each with its own socket and media core; rooms are pinned to
    /// one). Default: one per CPU core.
    pub media_workers: usize,
    /// Most participants in one room (staff, citizen, relative, interpreter…).
    pub max_participants_per_room: usize,
    /// Most peer connections one media worker takes before refusing joins.
    pub max_peers_per_worker: usize,
    /// Capacity of the command queue from signalling to a media worker.
    pub command_queue: usize,
    /// Capacity of each session's outbound signalling queue.
    pub session_queue: usize,
    /// How long a client has to send `join` after the WebSocket opens.
    pub join_timeout: Duration,
    /// Interval of WebSocket pings; a client silent for three intervals is dropped.
    pub ping_interval: Duration,
    /// Largest signalling frame accepted.
    pub max_signalling_frame: usize,
    /// Socket buffer sizes asked of the kernel.
    pub socket_buffer_bytes: usize,
    /// Minimum time between keyframe requests relayed to one publisher track (PLI/FIR from
    /// subscribers inside the window are merged into one sent when it ends).
    pub keyframe_request_interval: Duration,
    /// When a subscriber falls back to audio only (floor, margin, hold times).
    pub fallback: FallbackPolicy,
    /// Ask publishers for three simulcast layers.
    pub simulcast: bool,
    /// Most signalling WebSockets held at once, in all.
    pub max_websockets: usize,
    /// Most signalling WebSockets held at once from one client address (IPv6: one /64);
    /// 0 means no per-address cap.
    pub max_websockets_per_address: usize,
    /// How long one write to a signalling WebSocket may take: a client that does not read its
    /// socket is dropped after this instead of holding the server's send buffers.
    pub write_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            udp_bind: SocketAddr::from(([0, 0, 0, 0], 50000)),
            announce_ips: Vec::new(),
            media_workers: default_media_workers(),
            max_participants_per_room: 6,
            max_peers_per_worker: 2000,
            command_queue: 1024,
            session_queue: 64,
            join_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            max_signalling_frame: 64 * 1024,
            socket_buffer_bytes: 4 * 1024 * 1024,
            keyframe_request_interval: Duration::from_millis(500),
            fallback: FallbackPolicy::default(),
            simulcast: false,
            max_websockets: 10_000,
            max_websockets_per_address: 100,
            write_timeout: Duration::from_secs(5),
        }
    }
}

/// One media worker per CPU core available to the process.
pub fn default_media_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
