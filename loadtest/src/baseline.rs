//! The baseline: what this machine can forward with the least a relay must do. A minimal SRTP
//! forwarder (batched UDP receive → SRTP decrypt → SRTP encrypt → batched send; no ICE, no DTLS,
//! no RTCP, no WebRTC state machine) and the generator's matching participant, both keyed from
//! one shared seed so no handshake is needed. Participants `2k` and `2k+1` form visit `k`; the
//! SSRC says who sent a packet; the forwarder learns each participant's address from its first
//! authentic packet. With simulcast, every layer is received and decrypted (authenticated, as a
//! relay must) and only the top layer (f) is forwarded, as a relay forwards one layer per
//! subscriber and loopback leaves room for the top one.

use crate::net::{Outgoing, UdpIo};
use crate::stamp::{Kind, LAYERS, StreamId};
use crate::synth::SynthPacket;
use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use rtc::shared::marshal::{Marshal, Unmarshal};
use rtc::srtp::context::Context as SrtpContext;
use rtc::srtp::protection_profile::ProtectionProfile;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The profile browsers and `rtc` prefer (what the Skærm relay negotiates).
const PROFILE: ProtectionProfile = ProtectionProfile::AeadAes128Gcm;
const KEY_LEN: usize = 16;
const SALT_LEN: usize = 12;
const SSRC_BASE: u32 = 0x5000_0000;
/// Payload types on the wire (informational; the forwarder does not look).
const PT_AUDIO: u8 = 111;
const PT_VIDEO: u8 = 96;
/// How often the forwarder prints its counters.
const REPORT_INTERVAL: Duration = Duration::from_millis(100);

/// Which way a key protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Participant → forwarder.
    Up,
    /// Forwarder → participant.
    Down,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Key and salt of `participant` in `direction` (test keys: derived, not secret).
pub fn key_material(seed: u64, participant: u32, direction: Direction) -> [u8; KEY_LEN + SALT_LEN] {
    let mut out = [0u8; KEY_LEN + SALT_LEN];
    let mut state = seed ^ (u64::from(participant) << 1) ^ u64::from(direction == Direction::Down);
    for chunk in out.chunks_mut(8) {
        state = splitmix(state);
        chunk.copy_from_slice(&state.to_be_bytes()[..chunk.len()]);
    }
    out
}

fn context(seed: u64, participant: u32, direction: Direction) -> Result<SrtpContext> {
    let material = key_material(seed, participant, direction);
    let provider = rtc::crypto::default_provider().map_err(|e| anyhow!("crypto: {e}"))?;
    SrtpContext::new(
        &material[..KEY_LEN],
        &material[KEY_LEN..],
        PROFILE,
        None,
        None,
        provider.crypto(),
    )
    .map_err(|e| anyhow!("SRTP context: {e}"))
}

/// The SSRC of a stream.
pub fn ssrc_of(stream: StreamId) -> u32 {
    SSRC_BASE + stream.0
}

/// The participant an SSRC belongs to, and whether the forwarder passes it on: audio and the
/// top video layer (the one video stream without simulcast) are forwarded; the lower simulcast
/// layers are not.
pub fn participant_of(ssrc: u32) -> Option<(u32, bool)> {
    let stream = StreamId(ssrc.checked_sub(SSRC_BASE)?);
    let forwarded = stream.video_layer().is_none_or(|l| l == LAYERS - 1);
    Some((stream.participant(), forwarded))
}

/// The generator's side: one participant with pre-shared keys.
pub struct SrtpPeer {
    participant: u32,
    local: IpAddr,
    forwarder: SocketAddr,
    tx: SrtpContext,
    rx: SrtpContext,
}

impl SrtpPeer {
    /// Participant `participant` sending from `local` to the forwarder.
    pub fn new(seed: u64, participant: u32, local: IpAddr, forwarder: SocketAddr) -> Result<Self> {
        Ok(SrtpPeer {
            participant,
            local,
            forwarder,
            tx: context(seed, participant, Direction::Up)?,
            rx: context(seed, participant, Direction::Down)?,
        })
    }

    /// Encrypts one packet into `out`.
    pub fn send(&mut self, packet: &SynthPacket, out: &mut Vec<Outgoing>) -> Result<()> {
        let rtp = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                payload_type: if packet.kind == Kind::Audio {
                    PT_AUDIO
                } else {
                    PT_VIDEO
                },
                sequence_number: packet.rtp_seq,
                timestamp: packet.rtp_ts,
                ssrc: ssrc_of(packet.stream(self.participant)),
                marker: packet.marker,
                ..Default::default()
            },
            payload: packet.payload.clone(),
        };
        let plain = rtp.marshal().map_err(|e| anyhow!("marshal: {e}"))?;
        let data = self
            .tx
            .encrypt_rtp(&plain)
            .map_err(|e| anyhow!("encrypt: {e}"))?;
        out.push(Outgoing {
            from: Some(self.local),
            to: self.forwarder,
            data,
        });
        Ok(())
    }

    /// Decrypts a datagram; returns the RTP payload.
    pub fn receive(&mut self, data: &[u8]) -> Option<Bytes> {
        let plain = self.rx.decrypt_rtp(data).ok()?;
        let packet = rtc::rtp::Packet::unmarshal(&mut &plain[..]).ok()?;
        Some(packet.payload)
    }
}

/// What the forwarder did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForwarderCounters {
    /// Packets forwarded.
    pub forwarded: u64,
    /// Packets dropped (unknown SSRC, failed decryption, other side not seen yet).
    pub dropped: u64,
    /// Lower simulcast layers received and decrypted but not forwarded.
    pub not_forwarded: u64,
}

/// The forwarder's state for `participants` participants.
pub struct Forwarder {
    up: Vec<SrtpContext>,
    down: Vec<SrtpContext>,
    addrs: Vec<Option<SocketAddr>>,
    /// Counters.
    pub counters: ForwarderCounters,
}

impl Forwarder {
    /// Keys for `participants` participants.
    pub fn new(seed: u64, participants: u32) -> Result<Forwarder> {
        let mut up = Vec::with_capacity(participants as usize);
        let mut down = Vec::with_capacity(participants as usize);
        for p in 0..participants {
            up.push(context(seed, p, Direction::Up)?);
            down.push(context(seed, p, Direction::Down)?);
        }
        Ok(Forwarder {
            up,
            down,
            addrs: vec![None; participants as usize],
            counters: ForwarderCounters::default(),
        })
    }

    /// Forwards one datagram from `from` into `out` (or counts it dropped).
    pub fn handle(&mut self, from: SocketAddr, data: &[u8], out: &mut Vec<Outgoing>) {
        if self.forward(from, data, out).is_none() {
            self.counters.dropped += 1;
        }
    }

    fn forward(&mut self, from: SocketAddr, data: &[u8], out: &mut Vec<Outgoing>) -> Option<()> {
        let ssrc = u32::from_be_bytes(data.get(8..12)?.try_into().ok()?);
        let (sender, forwarded) = participant_of(ssrc)?;
        let sender = sender as usize;
        let plain = self.up.get_mut(sender)?.decrypt_rtp(data).ok()?;
        self.addrs[sender] = Some(from);
        if !forwarded {
            self.counters.not_forwarded += 1;
            return Some(());
        }
        let receiver = sender ^ 1;
        let to = (*self.addrs.get(receiver)?)?;
        let encrypted = self.down.get_mut(receiver)?.encrypt_rtp(&plain).ok()?;
        out.push(Outgoing {
            from: None,
            to,
            data: encrypted,
        });
        self.counters.forwarded += 1;
        Some(())
    }
}

/// Runs the forwarder process on `listen` until killed. Prints `forwarder ready: <addr>` and
/// then `forwarded <n> dropped <m>` every 100 ms on stdout.
pub async fn run_forwarder(listen: SocketAddr, participants: u32, seed: u64) -> Result<()> {
    let mut io = UdpIo::bind(listen, 8 << 20).context("binding the forwarder")?;
    let mut forwarder = Forwarder::new(seed, participants)?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "forwarder ready: {}", io.local_addr()?)?;
    stdout.flush()?;
    let mut out = Vec::with_capacity(256);
    let mut report_at = Instant::now() + REPORT_INTERVAL;
    loop {
        tokio::select! {
            ready = io.readable() => ready?,
            () = tokio::time::sleep_until(report_at.into()) => {}
        }
        for _ in 0..8 {
            let count = io.recv_batch(|from, _, data| forwarder.handle(from, data, &mut out))?;
            io.send_all(&mut out);
            if count < crate::net::RECV_BATCH {
                break;
            }
        }
        if Instant::now() >= report_at {
            report_at = Instant::now() + REPORT_INTERVAL;
            writeln!(
                stdout,
                "forwarded {} dropped {}",
                forwarder.counters.forwarded, forwarder.counters.dropped
            )?;
            stdout.flush()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::{Stamp, StreamId};
    use crate::synth::{MediaProfile, Source};
    use bytes::BytesMut;

    #[test]
    fn the_forwarder_reencrypts_for_the_other_participant_of_the_visit() {
        let seed = 42;
        let fwd_addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let a_addr: SocketAddr = "127.2.0.1:5000".parse().expect("addr");
        let b_addr: SocketAddr = "127.2.0.2:5000".parse().expect("addr");
        let mut a = SrtpPeer::new(seed, 0, a_addr.ip(), fwd_addr).expect("a");
        let mut b = SrtpPeer::new(seed, 1, b_addr.ip(), fwd_addr).expect("b");
        let mut forwarder = Forwarder::new(seed, 2).expect("forwarder");
        let epoch = Instant::now();
        let mut source = Source::new(0, MediaProfile::default(), epoch, epoch);
        let mut packets = Vec::new();
        source.poll(epoch, &mut packets);
        let mut wire = Vec::new();
        // B has not been seen: the forwarder cannot deliver A's first packet.
        a.send(&packets[0], &mut wire).expect("send");
        let mut out = Vec::new();
        forwarder.handle(a_addr, &wire[0].data, &mut out);
        assert!(out.is_empty());
        assert_eq!(forwarder.counters.dropped, 1);
        // B speaks once; now A's packets reach B, decryptable only with B's keys.
        let mut b_wire = Vec::new();
        b.send(&packets[0], &mut b_wire).expect("send");
        forwarder.handle(b_addr, &b_wire[0].data, &mut out);
        out.clear();
        wire.clear();
        for p in &packets {
            a.send(p, &mut wire).expect("send");
        }
        for w in &wire {
            forwarder.handle(a_addr, &w.data, &mut out);
        }
        assert_eq!(out.len(), packets.len());
        for (o, p) in out.iter().zip(&packets) {
            assert_eq!(o.to, b_addr);
            assert!(
                a.receive(&o.data).is_none(),
                "A's keys must not open B's packets"
            );
            let payload = b.receive(&o.data).expect("B decrypts");
            assert_eq!(payload, p.payload);
            let stamp = Stamp::read_from(&payload).expect("stamp");
            assert_eq!(stamp.stream.participant(), 0);
        }
        // A forged packet is dropped and counted.
        let dropped = forwarder.counters.dropped;
        let mut forged = BytesMut::from(&wire[0].data[..]);
        let last = forged.len() - 1;
        forged[last] ^= 1;
        forwarder.handle(a_addr, &forged, &mut out);
        assert_eq!(forwarder.counters.dropped, dropped + 1);
        assert_eq!(StreamId::of(0, Kind::Video).participant(), 0);
    }

    #[test]
    fn with_simulcast_only_the_top_layer_is_forwarded_after_decryption() {
        let seed = 7;
        let fwd_addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let a_addr: SocketAddr = "127.2.0.1:5000".parse().expect("addr");
        let b_addr: SocketAddr = "127.2.0.2:5000".parse().expect("addr");
        let mut a = SrtpPeer::new(seed, 0, a_addr.ip(), fwd_addr).expect("a");
        let mut b = SrtpPeer::new(seed, 1, b_addr.ip(), fwd_addr).expect("b");
        let mut forwarder = Forwarder::new(seed, 2).expect("forwarder");
        let epoch = Instant::now();
        let profile = MediaProfile {
            simulcast: true,
            ..MediaProfile::default()
        };
        let mut packets = Vec::new();
        Source::new(0, profile, epoch, epoch).poll(epoch, &mut packets);
        let mut out = Vec::new();
        let mut wire = Vec::new();
        b.send(&packets[0], &mut wire).expect("send");
        forwarder.handle(b_addr, &wire[0].data, &mut out);
        assert_eq!(forwarder.counters.dropped, 1, "A not seen yet");
        out.clear();
        wire.clear();
        for p in &packets {
            a.send(p, &mut wire).expect("send");
        }
        for w in &wire {
            forwarder.handle(a_addr, &w.data, &mut out);
        }
        let lower = packets
            .iter()
            .filter(|p| p.layer.is_some_and(|l| l < LAYERS - 1))
            .count();
        assert!(lower >= 2, "q and h packets in the first frame");
        assert_eq!(out.len(), packets.len() - lower);
        assert_eq!(forwarder.counters.not_forwarded, lower as u64);
        assert_eq!(forwarder.counters.dropped, 1, "nothing of A's dropped");
        for o in &out {
            let stamp = Stamp::read_from(&b.receive(&o.data).expect("B decrypts")).expect("stamp");
            assert!(stamp.stream.video_layer().is_none_or(|l| l == LAYERS - 1));
        }
    }
}
