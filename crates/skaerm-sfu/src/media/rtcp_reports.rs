//! What RTCP reports say about one connection's path, measured at the wire end of its
//! interceptor chain.
//!
//! `rtc` 0.21 keeps W3C stats (`get_stats`), but it never feeds *received* RTCP into them
//! (its `process_read_rtcp_for_stats` is not called, and its RR round-trip time is hard-coded
//! to 0), and the jitter it reports for inbound streams is in RTP timestamp units. So
//! [`RtcpReportProbe`] reads, wire-most in every relay-side chain (inside the relay's interceptor,
//! [`crate::media::tap`]) and without changing anything that passes:
//!
//! - the relay's own sender reports on the way out (their NTP middle bits and send instant, a
//!   small ring), and the participant's receiver-report blocks on the way in: the round-trip
//!   time per RFC 3550 §6.4.1 (arrival − LSR send instant − DLSR), plus fraction lost and
//!   jitter of what the relay sends it (downlink);
//! - the relay's own receiver reports on the way out: fraction lost of what the participant
//!   sends (uplink); the uplink jitter is computed here from the participant's RTP (RFC 3550
//!   §A.8, with wrapping timestamp arithmetic: `rtc`'s report interceptor subtracts timestamps
//!   without wrapping, so a stream whose timestamps wrap shows a jitter of minutes);
//! - NACK, PLI and FIR arriving from the participant, and those the relay sends it;
//! - the RTP bytes (header and payload) of every packet each way, for the bit rates.
//!
//! So the core's quality snapshot never asks `rtc` for its statistics: building that report
//! took ~75 µs per connection, a stall every packet behind it waited out.
//!
//! Results go to [`RtcpReportCells`], a handful of relaxed atomics belonging to this one connection
//! (written by its chain, read by the core once a second, both on the worker's thread): nothing
//! is shared across workers and nothing allocates per packet.

use rtc::interceptor::{Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Sender reports remembered to match LSR against (one per stream per second or so).
const SR_MEMORY: usize = 16;
/// Streams whose clock rate is remembered (a connection has a handful).
const MAX_STREAMS: usize = 32;
/// "No value yet" in a cell.
const NONE: u32 = u32::MAX;

/// The latest report-derived numbers of one connection.
#[derive(Debug)]
pub(crate) struct RtcpReportCells {
    rtt_us: AtomicU32,
    down_loss: AtomicU32,
    down_jitter_us: AtomicU32,
    up_loss: AtomicU32,
    up_jitter_us: AtomicU32,
    nacks: AtomicU64,
    keyframe_requests: AtomicU64,
    nacks_sent: AtomicU64,
    keyframe_requests_sent: AtomicU64,
    rtp_bytes_in: AtomicU64,
    rtp_bytes_out: AtomicU64,
}

impl Default for RtcpReportCells {
    fn default() -> Self {
        RtcpReportCells {
            rtt_us: AtomicU32::new(NONE),
            down_loss: AtomicU32::new(NONE),
            down_jitter_us: AtomicU32::new(NONE),
            up_loss: AtomicU32::new(NONE),
            up_jitter_us: AtomicU32::new(NONE),
            nacks: AtomicU64::new(0),
            keyframe_requests: AtomicU64::new(0),
            nacks_sent: AtomicU64::new(0),
            keyframe_requests_sent: AtomicU64::new(0),
            rtp_bytes_in: AtomicU64::new(0),
            rtp_bytes_out: AtomicU64::new(0),
        }
    }
}

/// One reading of [`RtcpReportCells`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RtcpReportReading {
    /// Round-trip time relay ↔ participant.
    pub(crate) rtt: Option<Duration>,
    /// Fraction (0..=1) of the relay's packets the participant reported lost, last report.
    pub(crate) down_loss: Option<f64>,
    /// Interarrival jitter the participant reported for the relay's packets.
    pub(crate) down_jitter: Option<Duration>,
    /// Fraction of the participant's packets the relay found lost, last report.
    pub(crate) up_loss: Option<f64>,
    /// Interarrival jitter of the participant's packets at the relay.
    pub(crate) up_jitter: Option<Duration>,
    /// NACK packets received from the participant so far.
    pub(crate) nacks: u64,
    /// PLI and FIR packets received from the participant so far.
    pub(crate) keyframe_requests: u64,
    /// NACK packets the relay sent the participant (for its media) so far.
    pub(crate) nacks_sent: u64,
    /// PLI and FIR packets the relay sent the participant so far.
    pub(crate) keyframe_requests_sent: u64,
    /// RTP bytes (header and payload) received from the participant so far.
    pub(crate) rtp_bytes_in: u64,
    /// RTP bytes (header and payload, retransmissions included) sent to it so far.
    pub(crate) rtp_bytes_out: u64,
}

fn cell(value: &AtomicU32) -> Option<u32> {
    match value.load(Ordering::Relaxed) {
        NONE => None,
        v => Some(v),
    }
}

impl RtcpReportCells {
    /// The current values.
    pub(crate) fn read(&self) -> RtcpReportReading {
        let micros = |c: &AtomicU32| cell(c).map(|us| Duration::from_micros(u64::from(us)));
        let fraction = |c: &AtomicU32| cell(c).map(|q| f64::from(q) / 256.0);
        RtcpReportReading {
            rtt: micros(&self.rtt_us),
            down_loss: fraction(&self.down_loss),
            down_jitter: micros(&self.down_jitter_us),
            up_loss: fraction(&self.up_loss),
            up_jitter: micros(&self.up_jitter_us),
            nacks: self.nacks.load(Ordering::Relaxed),
            keyframe_requests: self.keyframe_requests.load(Ordering::Relaxed),
            nacks_sent: self.nacks_sent.load(Ordering::Relaxed),
            keyframe_requests_sent: self.keyframe_requests_sent.load(Ordering::Relaxed),
            rtp_bytes_in: self.rtp_bytes_in.load(Ordering::Relaxed),
            rtp_bytes_out: self.rtp_bytes_out.load(Ordering::Relaxed),
        }
    }
}

/// The probe. See the module documentation.
pub(crate) struct RtcpReportProbe {
    cells: Arc<RtcpReportCells>,
    /// Our sender reports: (NTP middle 32 bits, when they left).
    sent: VecDeque<(u32, Instant)>,
    /// SSRC → clock rate of every stream bound to this connection.
    clock_rates: Vec<(u32, u32)>,
    /// Interarrival jitter of each inbound stream (bounded by [`MAX_STREAMS`]).
    inbound: Vec<InboundJitter>,
}

impl RtcpReportProbe {
    /// A probe and the cells it writes.
    pub(crate) fn new() -> (RtcpReportProbe, Arc<RtcpReportCells>) {
        let cells = Arc::new(RtcpReportCells::default());
        (
            RtcpReportProbe {
                cells: cells.clone(),
                sent: VecDeque::with_capacity(SR_MEMORY),
                clock_rates: Vec::new(),
                inbound: Vec::new(),
            },
            cells,
        )
    }

    fn clock_rate(&self, ssrc: u32) -> Option<u32> {
        self.clock_rates
            .iter()
            .find(|(s, _)| *s == ssrc)
            .map(|(_, r)| *r)
            .filter(|r| *r > 0)
    }

    /// One of the participant's RTP packets arrived at `now`.
    fn on_rtp(&mut self, now: Instant, ssrc: u32, seq: u16, timestamp: u32) {
        if let Some(stream) = self.inbound.iter_mut().find(|s| s.ssrc == ssrc) {
            stream.arrived(now, seq, timestamp);
        }
    }

    /// The worst inbound jitter, in µs.
    fn inbound_jitter_us(&self) -> Option<u32> {
        self.inbound
            .iter()
            .filter(|s| s.last.is_some())
            .map(|s| (s.jitter / f64::from(s.clock_rate) * 1e6).min(f64::from(NONE - 1)) as u32)
            .max()
    }

    fn bind(&mut self, info: &StreamInfo) {
        self.clock_rates.retain(|(s, _)| *s != info.ssrc);
        if self.clock_rates.len() < MAX_STREAMS {
            self.clock_rates.push((info.ssrc, info.clock_rate));
        }
    }

    /// The worst block of a report: (fraction lost 0..=255, jitter in µs).
    fn worst(&self, blocks: &[ReceptionReport]) -> Option<(u32, Option<u32>)> {
        let mut worst: Option<(u32, Option<u32>)> = None;
        for block in blocks {
            let jitter = self.clock_rate(block.ssrc).map(|rate| {
                (u64::from(block.jitter) * 1_000_000 / u64::from(rate)).min(u64::from(NONE - 1))
                    as u32
            });
            let loss = u32::from(block.fraction_lost);
            worst = Some(match worst {
                None => (loss, jitter),
                Some((l, j)) => (l.max(loss), j.max(jitter)),
            });
        }
        worst
    }

    fn on_inbound(&mut self, now: Instant, packets: &[Box<dyn rtc::rtcp::Packet>]) {
        for packet in packets {
            let any = packet.as_any();
            let blocks: &[ReceptionReport] = if let Some(rr) = any.downcast_ref::<ReceiverReport>()
            {
                &rr.reports
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                &sr.reports
            } else {
                if any.is::<TransportLayerNack>() {
                    self.cells.nacks.fetch_add(1, Ordering::Relaxed);
                } else if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                    self.cells.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            };
            for block in blocks {
                if block.last_sender_report == 0 {
                    continue;
                }
                if let Some(rtt) = round_trip(&self.sent, block, now) {
                    let us = rtt.as_micros().min(u128::from(NONE - 1)) as u32;
                    self.cells.rtt_us.store(us, Ordering::Relaxed);
                }
            }
            if let Some((loss, jitter)) = self.worst(blocks) {
                self.cells.down_loss.store(loss, Ordering::Relaxed);
                if let Some(j) = jitter {
                    self.cells.down_jitter_us.store(j, Ordering::Relaxed);
                }
            }
        }
    }

    fn on_outbound(&mut self, now: Instant, packets: &[Box<dyn rtc::rtcp::Packet>]) {
        for packet in packets {
            let any = packet.as_any();
            if any.is::<TransportLayerNack>() {
                self.cells.nacks_sent.fetch_add(1, Ordering::Relaxed);
            } else if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                self.cells
                    .keyframe_requests_sent
                    .fetch_add(1, Ordering::Relaxed);
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                if self.sent.len() == SR_MEMORY {
                    self.sent.pop_front();
                }
                self.sent.push_back(((sr.ntp_time >> 16) as u32, now));
            } else if let Some(rr) = any.downcast_ref::<ReceiverReport>()
                && let Some((loss, _)) = self.worst(&rr.reports)
            {
                self.cells.up_loss.store(loss, Ordering::Relaxed);
                if let Some(j) = self.inbound_jitter_us() {
                    self.cells.up_jitter_us.store(j, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Adds an RTP packet's size (header, extensions and payload, as `rtc`'s stats count it) to a
/// byte counter.
fn count_bytes(counter: &AtomicU64, packet: &rtc::rtp::Packet) {
    use rtc::shared::marshal::MarshalSize;
    let bytes = packet.header.marshal_size() + packet.payload.len();
    counter.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// RFC 3550 §A.8 interarrival jitter of one inbound stream, in timestamp units.
#[derive(Debug)]
struct InboundJitter {
    ssrc: u32,
    clock_rate: u32,
    /// Arrival, sequence number and RTP timestamp of the newest packet so far.
    last: Option<(Instant, u16, u32)>,
    jitter: f64,
}

/// A transit difference this large is a new timestamp base (the sender replaced its track,
/// restarted its encoder…), not jitter; like libwebrtc, it is not counted.
const JITTER_JUMP: Duration = Duration::from_secs(5);

impl InboundJitter {
    /// Only packets newer than the newest so far count (reordered and repeated ones do not).
    fn arrived(&mut self, now: Instant, seq: u16, timestamp: u32) {
        if let Some((at, last_seq, ts)) = self.last {
            if (seq.wrapping_sub(last_seq) as i16) <= 0 {
                return;
            }
            let arrival = if now >= at {
                now.duration_since(at).as_secs_f64()
            } else {
                -at.duration_since(now).as_secs_f64()
            };
            // The timestamp difference wraps: a 32-bit difference read as signed.
            let sent = f64::from(timestamp.wrapping_sub(ts) as i32);
            let d = arrival * f64::from(self.clock_rate) - sent;
            if d.abs() < JITTER_JUMP.as_secs_f64() * f64::from(self.clock_rate) {
                self.jitter += (d.abs() - self.jitter) / 16.0;
            }
        }
        self.last = Some((now, seq, timestamp));
    }
}

/// RFC 3550 §6.4.1: the round trip implied by one report block, from the send instant of the
/// sender report its LSR names. `None` when that report is not remembered.
pub(crate) fn round_trip(
    sent: &VecDeque<(u32, Instant)>,
    block: &ReceptionReport,
    arrival: Instant,
) -> Option<Duration> {
    let (_, sent_at) = sent
        .iter()
        .rev()
        .find(|(mid, _)| *mid == block.last_sender_report)?;
    let held = Duration::from_secs_f64(f64::from(block.delay) / 65_536.0);
    Some(
        arrival
            .saturating_duration_since(*sent_at)
            .saturating_sub(held),
    )
}

impl RtcpReportProbe {
    /// A message arrived from the participant.
    pub(crate) fn on_read(&mut self, msg: &TaggedPacket) {
        match &msg.message.packet {
            Packet::Rtcp(packets) => self.on_inbound(msg.now, packets),
            Packet::Rtp(packet) => {
                count_bytes(&self.cells.rtp_bytes_in, packet);
                self.on_rtp(
                    msg.now,
                    packet.header.ssrc,
                    packet.header.sequence_number,
                    packet.header.timestamp,
                );
            }
            _ => {}
        }
    }

    /// A message leaves for the participant.
    pub(crate) fn on_write(&mut self, msg: &TaggedPacket) {
        match &msg.message.packet {
            Packet::Rtcp(packets) => self.on_outbound(msg.now, packets),
            Packet::Rtp(packet) => count_bytes(&self.cells.rtp_bytes_out, packet),
            _ => {}
        }
    }

    /// A stream the relay sends on this connection.
    pub(crate) fn bind_local(&mut self, info: &StreamInfo) {
        self.bind(info);
    }

    /// A stream the participant sends on this connection.
    pub(crate) fn bind_remote(&mut self, info: &StreamInfo) {
        self.bind(info);
        self.inbound.retain(|s| s.ssrc != info.ssrc);
        if info.clock_rate > 0 && self.inbound.len() < MAX_STREAMS {
            self.inbound.push(InboundJitter {
                ssrc: info.ssrc,
                clock_rate: info.clock_rate,
                last: None,
                jitter: 0.0,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::shared::TransportContext;

    fn tagged(now: Instant, packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        }
    }

    fn info(ssrc: u32, clock_rate: u32) -> StreamInfo {
        StreamInfo {
            ssrc,
            clock_rate,
            ..Default::default()
        }
    }

    #[test]
    fn rtt_loss_and_jitter_come_from_reports_both_ways() {
        let (mut probe, cells) = RtcpReportProbe::new();
        probe.bind_local(&info(111, 90_000));
        probe.bind_remote(&info(222, 48_000));
        assert_eq!(cells.read(), RtcpReportReading::default());
        let t0 = Instant::now();
        let ntp: u64 = 0x1234_5678_9abc_def0;
        probe.on_write(&tagged(
            t0,
            vec![Box::new(SenderReport {
                ssrc: 111,
                ntp_time: ntp,
                ..Default::default()
            })],
        ));
        // The participant held our SR 50 ms; its report arrives 130 ms after we sent: 80 ms.
        let block = ReceptionReport {
            ssrc: 111,
            fraction_lost: 64, // 25 %
            jitter: 900,       // 10 ms at 90 kHz
            last_sender_report: (ntp >> 16) as u32,
            delay: 65_536 / 20,
            ..Default::default()
        };
        probe.on_read(&tagged(
            t0 + Duration::from_millis(130),
            vec![Box::new(ReceiverReport {
                ssrc: 9,
                reports: vec![block],
                ..Default::default()
            })],
        ));
        // The participant's audio arrives every 20 ms, its timestamps wrapping past 2^32 on
        // the way: no jitter. Then our own RR about it says 2 % lost.
        for i in 0..20u32 {
            let rtp = rtc::rtp::Packet {
                header: rtc::rtp::Header {
                    ssrc: 222,
                    sequence_number: 65_530u16.wrapping_add(i as u16),
                    timestamp: (u32::MAX - 5_000).wrapping_add(i * 960),
                    ..Default::default()
                },
                ..Default::default()
            };
            probe.on_read(&TaggedPacket {
                now: t0 + Duration::from_millis(20 * u64::from(i)),
                transport: TransportContext::default(),
                message: AttributedPacket::new(Packet::Rtp(rtp)),
            });
        }
        probe.on_write(&tagged(
            t0,
            vec![Box::new(ReceiverReport {
                ssrc: 1,
                reports: vec![ReceptionReport {
                    ssrc: 222,
                    fraction_lost: 5,
                    jitter: 96_000_000, // what a non-wrapping subtraction makes of it
                    ..Default::default()
                }],
                ..Default::default()
            })],
        ));
        probe.on_read(&tagged(
            t0,
            vec![
                Box::new(TransportLayerNack::default()),
                Box::new(PictureLossIndication::default()),
            ],
        ));
        let r = cells.read();
        let rtt = r.rtt.map(|d| d.as_millis());
        assert!(rtt.is_some_and(|ms| (79..=81).contains(&ms)), "{rtt:?}");
        assert_eq!(r.down_loss, Some(0.25));
        assert_eq!(r.down_jitter, Some(Duration::from_millis(10)));
        assert_eq!(r.up_loss, Some(5.0 / 256.0));
        assert!(
            r.up_jitter.is_some_and(|j| j < Duration::from_millis(1)),
            "timestamps that wrap are no jitter: {:?}",
            r.up_jitter
        );
        assert_eq!((r.nacks, r.keyframe_requests), (1, 1));
    }

    #[test]
    fn late_packets_make_jitter() {
        let t0 = Instant::now();
        let mut stream = InboundJitter {
            ssrc: 1,
            clock_rate: 48_000,
            last: None,
            jitter: 0.0,
        };
        for i in 0..100u32 {
            // Every other packet 10 ms late.
            let late = if i % 2 == 1 { 10 } else { 0 };
            stream.arrived(
                t0 + Duration::from_millis(u64::from(20 * i + late)),
                i as u16,
                i * 960,
            );
        }
        let ms = stream.jitter / 48.0;
        assert!((8.0..=10.5).contains(&ms), "{ms} ms");
        // A new timestamp base (a replaced track) and a repeated old packet change nothing.
        let before = stream.jitter;
        stream.arrived(t0 + Duration::from_millis(2000), 100, 0x8000_0000);
        stream.arrived(t0 + Duration::from_millis(2001), 50, 7);
        assert_eq!(stream.jitter, before);
    }

    #[test]
    fn an_unknown_lsr_gives_no_round_trip() {
        let sent = VecDeque::from([(7u32, Instant::now())]);
        let block = ReceptionReport {
            last_sender_report: 8,
            ..Default::default()
        };
        assert_eq!(round_trip(&sent, &block, Instant::now()), None);
    }
}
