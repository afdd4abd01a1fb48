//! The generator's (and the baseline forwarder's) UDP edge: one socket, datagrams received in
//! batches (`recvmmsg` through `quinn-udp`, GRO-coalesced batches split by stride) and sent in
//! batches (runs of equal-sized datagrams between the same two addresses go out as one GSO
//! `sendmsg`). Each synthetic connection has its own loopback source address (127.2.x.y), set
//! per datagram with `IP_PKTINFO`; received datagrams are told apart by their destination address.

use anyhow::{Context, Result};
use bytes::BytesMut;
use quinn_udp::{RecvMeta, Transmit, UdpSockRef, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per `recvmmsg`.
pub const RECV_BATCH: usize = 32;
const RECV_SLOT: usize = 64 * 1024;
/// Largest GSO batch in bytes.
const MAX_GSO_BYTES: usize = 60_000;

/// First synthetic source address: connection `i` uses `BASE + 1 + i`.
const CONN_BASE: u32 = u32::from_be_bytes([127, 2, 0, 0]);
/// Most synthetic connections (addresses 127.2.0.1 to 127.2.255.254).
pub const MAX_CONNS: usize = 65_000;

/// The loopback address of synthetic connection `index`.
pub fn conn_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(CONN_BASE + 1 + index as u32)
}

/// The connection a loopback destination address belongs to.
pub fn conn_of(ip: IpAddr) -> Option<usize> {
    let IpAddr::V4(v4) = ip else { return None };
    let index = u32::from(v4).checked_sub(CONN_BASE + 1)? as usize;
    (index < MAX_CONNS).then_some(index)
}

/// One datagram to send.
#[derive(Debug)]
pub struct Outgoing {
    /// Source address (a synthetic connection's, or `None` for the socket's own).
    pub from: Option<IpAddr>,
    /// Destination.
    pub to: SocketAddr,
    /// Bytes.
    pub data: BytesMut,
}

/// Send-side counters.
#[derive(Debug, Default, Clone, Copy)]
pub struct SendStats {
    /// Datagrams handed to the kernel.
    pub sent: u64,
    /// Datagrams dropped because the socket buffer was full or sending failed.
    pub failed: u64,
    /// `sendmsg` calls.
    pub calls: u64,
}

/// A batched UDP socket.
pub struct UdpIo {
    socket: UdpSocket,
    state: UdpSocketState,
    recv_storage: Vec<u8>,
    meta: [RecvMeta; RECV_BATCH],
    gso: Vec<u8>,
    /// Counters.
    pub stats: SendStats,
}

impl UdpIo {
    /// Binds `addr` with large kernel buffers. Call inside a Tokio runtime.
    pub fn bind(addr: SocketAddr, buffer_bytes: usize) -> Result<UdpIo> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        // Best effort: the kernel caps these at net.core.[rw]mem_max.
        let _ = socket.set_recv_buffer_size(buffer_bytes);
        let _ = socket.set_send_buffer_size(buffer_bytes);
        socket.set_nonblocking(true)?;
        socket
            .bind(&addr.into())
            .with_context(|| format!("binding UDP {addr}"))?;
        let socket = UdpSocket::from_std(socket.into())?;
        let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
        Ok(UdpIo {
            socket,
            state,
            recv_storage: vec![0; RECV_BATCH * RECV_SLOT],
            meta: [RecvMeta::default(); RECV_BATCH],
            gso: Vec::with_capacity(MAX_GSO_BYTES + 2048),
            stats: SendStats::default(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits until datagrams may be waiting.
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// One `recvmmsg`: calls `deliver(source, destination ip, datagram)` for each datagram and
    /// returns how many slots were filled (0 when nothing was waiting).
    pub fn recv_batch(
        &mut self,
        mut deliver: impl FnMut(SocketAddr, Option<IpAddr>, &[u8]),
    ) -> io::Result<usize> {
        let mut chunks = self.recv_storage.chunks_mut(RECV_SLOT);
        let mut slices: [IoSliceMut<'_>; RECV_BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let (socket, state, meta) = (&self.socket, &self.state, &mut self.meta);
        let received = socket.try_io(Interest::READABLE, || {
            state.recv(UdpSockRef::from(socket), &mut slices, meta)
        });
        let count = match received {
            Ok(count) => count,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(err) => return Err(err),
        };
        for (meta, slice) in self.meta.iter().zip(slices.iter()).take(count) {
            let stride = meta.stride.max(1);
            for datagram in slice[..meta.len.min(slice.len())].chunks(stride) {
                deliver(meta.addr, meta.dst_ip, datagram);
            }
        }
        Ok(count)
    }

    /// Sends everything in `out` (emptying it), coalescing runs for GSO.
    pub fn send_all(&mut self, out: &mut Vec<Outgoing>) {
        let max_segments = self.state.max_gso_segments().max(1);
        let mut i = 0;
        while i < out.len() {
            let first = &out[i];
            let size = first.data.len();
            let mut end = i + 1;
            let mut bytes = size;
            while end < out.len()
                && end - i < max_segments
                && out[end].to == first.to
                && out[end].from == first.from
                && out[end].data.len() <= size
                && out[end - 1].data.len() == size
                && bytes + out[end].data.len() <= MAX_GSO_BYTES
            {
                bytes += out[end].data.len();
                end += 1;
            }
            let (to, from) = (first.to, first.from);
            let count = (end - i) as u64;
            let contents: &[u8] = if end - i == 1 {
                &out[i].data
            } else {
                self.gso.clear();
                for o in &out[i..end] {
                    self.gso.extend_from_slice(&o.data);
                }
                &self.gso
            };
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents,
                segment_size: (end - i > 1).then_some(size),
                src_ip: from,
            };
            // Straight to the non-blocking socket: a full buffer is a counted failure, and
            // Tokio's write readiness (never awaited here) is not consulted.
            let result = self
                .state
                .try_send(UdpSockRef::from(&self.socket), &transmit);
            self.stats.calls += 1;
            match result {
                Ok(()) => self.stats.sent += count,
                Err(_) => self.stats.failed += count,
            }
            i = end;
        }
        out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_addresses_map_back_to_their_index() {
        assert_eq!(conn_ip(0), Ipv4Addr::new(127, 2, 0, 1));
        assert_eq!(conn_ip(300), Ipv4Addr::new(127, 2, 1, 45));
        for i in [0, 1, 254, 255, 256, 4000] {
            assert_eq!(conn_of(IpAddr::V4(conn_ip(i))), Some(i));
        }
        assert_eq!(conn_of("127.0.0.1".parse().expect("ip")), None);
        assert_eq!(conn_of("::1".parse().expect("ip")), None);
    }

    #[tokio::test]
    async fn batches_reach_their_synthetic_destination_on_loopback() {
        let mut a = UdpIo::bind("0.0.0.0:0".parse().expect("addr"), 1 << 20).expect("bind a");
        let mut b = UdpIo::bind("0.0.0.0:0".parse().expect("addr"), 1 << 20).expect("bind b");
        let port_b = b.local_addr().expect("addr").port();
        let to = SocketAddr::new(IpAddr::V4(conn_ip(5)), port_b);
        let mut out: Vec<Outgoing> = (0..10u8)
            .map(|i| Outgoing {
                from: Some(IpAddr::V4(conn_ip(7))),
                to,
                data: BytesMut::from(&[i; 1000][..if i == 9 { 500 } else { 1000 }]),
            })
            .collect();
        a.send_all(&mut out);
        assert_eq!(a.stats.sent, 10);
        assert!(a.stats.calls < 10, "coalesced into GSO batches");
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while got.len() < 10 && std::time::Instant::now() < deadline {
            b.readable().await.expect("readable");
            b.recv_batch(|from, dst, data| got.push((from, dst, data.to_vec())))
                .expect("recv");
        }
        assert_eq!(got.len(), 10);
        for (i, (from, dst, data)) in got.iter().enumerate() {
            assert_eq!(from.ip(), IpAddr::V4(conn_ip(7)));
            assert_eq!(*dst, Some(IpAddr::V4(conn_ip(5))));
            assert_eq!(data[0], i as u8);
        }
        assert_eq!(got[9].2.len(), 500);
    }
}
