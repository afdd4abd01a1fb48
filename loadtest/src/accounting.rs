//! Loss, added latency and join time of one run, from stamps alone: the sender counts what it
//! sent inside the measurement window (by send time), the receiver counts what arrived of those
//! packets and records each one's latency (receive time minus stamped send time, one clock).
//! Packets sent before the window (warm-up) or after it are ignored on both sides, so a packet
//! still in flight when the window closes is not counted as lost as long as it arrives before
//! the report is taken.
//!
//! Simulcast: a publisher sends three video layers and the relay forwards one of them to the
//! subscriber (its choice, which may change at a keyframe), so loss is counted against what the
//! relay forwarded, per publisher's video: when exactly one layer arrived in the window, every
//! packet of that layer sent in the window was expected (as without simulcast); when the relay
//! switched layers inside the window, each layer that arrived is expected from the first to
//! the last of its packets that arrived (by stamp sequence), so the packets of a layer before
//! it was switched to or after it was switched away from are not counted, and neither are
//! losses right at a switch. Layers that never arrived are not expected. Audio is counted as
//! always.

use crate::stamp::{LAYERS, STREAMS_PER_PARTICIPANT, Stamp};
use hdrhistogram::Histogram;
use serde::Serialize;

/// A step of a participant's join, in order (the generator's view of its timeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinMark {
    /// The WebSocket opened (Janus: the first API request; baseline: media started).
    WsOpen,
    /// The server's `joined` message arrived.
    Joined,
    /// The first offer arrived.
    OfferReceived,
    /// The first answer went out.
    AnswerSent,
    /// The client's ICE agent is connected (its nominated pair).
    IceConnected,
    /// DTLS is done: the peer connection is connected.
    DtlsConnected,
    /// The first media packet was sent.
    FirstSent,
    /// The first remote media packet arrived (the end of the join).
    FirstReceived,
}

impl JoinMark {
    /// Every mark, in order.
    pub const ALL: [JoinMark; 8] = [
        JoinMark::WsOpen,
        JoinMark::Joined,
        JoinMark::OfferReceived,
        JoinMark::AnswerSent,
        JoinMark::IceConnected,
        JoinMark::DtlsConnected,
        JoinMark::FirstSent,
        JoinMark::FirstReceived,
    ];
}

/// When, after the WebSocket opened, participants reached one [`JoinMark`].
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Milestone {
    /// The mark (snake case).
    pub mark: String,
    /// Median, ms after the WebSocket opened.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Participants that reached it.
    pub count: u64,
}

/// Highest latency the histograms track (10 s, in microseconds).
const MAX_MICROS: u64 = 10_000_000;

/// Counts and latencies of one run.
#[derive(Debug)]
pub struct Accounting {
    window: Option<(u64, u64)>,
    sent: Vec<u64>,
    received: Vec<u64>,
    /// Lowest and highest stamp sequence received in the window, per stream.
    span: Vec<Option<(u32, u32)>>,
    latency_us: Histogram<u64>,
    /// Packets that carried no stamp or an unknown stream.
    foreign: u64,
    /// Per participant, when it reached each [`JoinMark`] (first time only).
    marks: Vec<[Option<u64>; JoinMark::ALL.len()]>,
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Samples.
    pub count: u64,
}

/// What the window showed.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Packets sent inside the window.
    pub sent: u64,
    /// Of those, packets received.
    pub received: u64,
    /// Lost share in percent.
    pub loss_pct: f64,
    /// Added latency (send → receive through the server).
    pub latency: Percentiles,
    /// WebSocket open → first remote media packet.
    pub join: Percentiles,
    /// The join's steps: when participants reached each mark after the WebSocket opened.
    pub join_timeline: Vec<Milestone>,
    /// Streams that sent nothing inside the window or had nothing received (a participant's
    /// video counts as one stream, whatever its layers).
    pub silent_streams: Vec<u32>,
    /// Video packets received in the window per simulcast layer (q, h, f; without simulcast
    /// everything is f).
    pub layer_packets: [u64; LAYERS],
    /// Participants that never got a remote packet.
    pub not_joined: Vec<u32>,
    /// Packets without a valid stamp.
    pub foreign: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        p50_ms: ms(h.value_at_quantile(0.50)),
        p95_ms: ms(h.value_at_quantile(0.95)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
        count: h.len(),
    }
}

impl Accounting {
    /// Accounting for `participants` publishers.
    pub fn new(participants: u32) -> Accounting {
        let streams = (participants * STREAMS_PER_PARTICIPANT) as usize;
        Accounting {
            window: None,
            sent: vec![0; streams],
            received: vec![0; streams],
            span: vec![None; streams],
            latency_us: histogram(),
            foreign: 0,
            marks: vec![[None; JoinMark::ALL.len()]; participants as usize],
        }
    }

    /// Starts counting packets sent in `[start_ns, end_ns)`; clears earlier counts.
    pub fn set_window(&mut self, start_ns: u64, end_ns: u64) {
        self.window = Some((start_ns, end_ns));
        self.sent.iter_mut().for_each(|n| *n = 0);
        self.received.iter_mut().for_each(|n| *n = 0);
        self.span.iter_mut().for_each(|s| *s = None);
        self.latency_us.reset();
    }

    fn in_window(&self, sent_ns: u64) -> bool {
        self.window
            .is_some_and(|(start, end)| sent_ns >= start && sent_ns < end)
    }

    /// The generator sent a packet with this stamp.
    pub fn on_sent(&mut self, stamp: &Stamp) {
        if self.in_window(stamp.sent_ns)
            && let Some(n) = self.sent.get_mut(stamp.stream.0 as usize)
        {
            *n += 1;
        }
    }

    /// `receiver` got a media packet at `now_ns` whose payload had `stamp` (or none).
    pub fn on_received(&mut self, receiver: u32, stamp: Option<Stamp>, now_ns: u64) {
        let Some(stamp) = stamp else {
            self.foreign += 1;
            return;
        };
        if stamp.stream.0 as usize >= self.received.len() {
            self.foreign += 1;
            return;
        }
        self.on_mark(receiver, JoinMark::FirstReceived, now_ns);
        if self.in_window(stamp.sent_ns) {
            let stream = stamp.stream.0 as usize;
            self.received[stream] += 1;
            let span = &mut self.span[stream];
            *span = Some(match *span {
                None => (stamp.seq, stamp.seq),
                Some((lo, hi)) => (lo.min(stamp.seq), hi.max(stamp.seq)),
            });
            let us = now_ns.saturating_sub(stamp.sent_ns) / 1000;
            self.latency_us.saturating_record(us.clamp(1, MAX_MICROS));
        }
    }

    /// `participant` reached `mark` at `ns` (only the first time counts; the WebSocket opening
    /// restarts the timeline: a reconnect is a new join).
    pub fn on_mark(&mut self, participant: u32, mark: JoinMark, ns: u64) {
        let Some(marks) = self.marks.get_mut(participant as usize) else {
            return;
        };
        let slot = &mut marks[mark as usize];
        if slot.is_none() || mark == JoinMark::WsOpen {
            *slot = Some(ns);
        }
    }

    /// `participant`'s WebSocket opened (or, without signalling, its media started) at `ns`.
    pub fn on_ws_open(&mut self, participant: u32, ns: u64) {
        self.on_mark(participant, JoinMark::WsOpen, ns);
    }

    /// Whether `participant` has received remote media.
    pub fn has_media(&self, participant: u32) -> bool {
        self.marks
            .get(participant as usize)
            .is_some_and(|m| m[JoinMark::FirstReceived as usize].is_some())
    }

    /// Packets expected and received of stream `i` when its expectation is all it sent.
    fn whole(&self, i: usize) -> (u64, u64) {
        // Duplicates never push a stream above what it sent.
        (self.sent[i], self.received[i].min(self.sent[i]))
    }

    /// Expected and received video packets of one publisher whose first video slot is `first`
    /// (see the module documentation for simulcast).
    fn video(&self, first: usize) -> (u64, u64) {
        let layers = first..first + LAYERS;
        let arrived: Vec<usize> = layers.clone().filter(|i| self.received[*i] > 0).collect();
        match arrived.as_slice() {
            // Nothing arrived: everything of the top layer (the one stream) is lost.
            [] => self.whole(first + LAYERS - 1),
            [one] => self.whole(*one),
            several => several
                .iter()
                .map(|i| {
                    let (lo, hi) = self.span[*i].unwrap_or_default();
                    let expected = (u64::from(hi.saturating_sub(lo)) + 1).min(self.sent[*i]);
                    (expected, self.received[*i].min(expected))
                })
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
        }
    }

    /// The numbers so far.
    pub fn summary(&self) -> Summary {
        if std::env::var_os("SKAERM_LOADTEST_DEBUG").is_some() {
            eprintln!(
                "sent {:?}\nreceived {:?}\nspans {:?}",
                self.sent, self.received, self.span
            );
            for (p, marks) in self.marks.iter().enumerate() {
                let open = marks[0].unwrap_or_default();
                let ms: Vec<String> = marks
                    .iter()
                    .map(|m| {
                        m.map_or("-".to_owned(), |m| {
                            format!("{:.1}", m.saturating_sub(open) as f64 / 1e6)
                        })
                    })
                    .collect();
                eprintln!("participant {p} join marks (ms): {}", ms.join(" "));
            }
        }
        let per = STREAMS_PER_PARTICIPANT as usize;
        let (mut sent, mut received) = (0, 0);
        let mut silent_streams = Vec::new();
        let mut layer_packets = [0; LAYERS];
        for first in (0..self.sent.len()).step_by(per) {
            let audio = self.whole(first);
            let video = self.video(first + 1);
            sent += audio.0 + video.0;
            received += audio.1 + video.1;
            let video_sent: u64 = self.sent[first + 1..first + per].iter().sum();
            let video_received: u64 = self.received[first + 1..first + per].iter().sum();
            if self.sent[first] == 0 || self.received[first] == 0 {
                silent_streams.push(first as u32);
            }
            if video_sent == 0 || video_received == 0 {
                silent_streams.push((first + per - 1) as u32);
            }
            for (layer, n) in layer_packets.iter_mut().enumerate() {
                *n += self.received[first + 1 + layer];
            }
        }
        let loss_pct = if sent == 0 {
            100.0
        } else {
            (sent - received) as f64 * 100.0 / sent as f64
        };
        let mut timeline: Vec<Histogram<u64>> = JoinMark::ALL.iter().map(|_| histogram()).collect();
        let mut not_joined = Vec::new();
        for (p, marks) in self.marks.iter().enumerate() {
            let Some(open) = marks[JoinMark::WsOpen as usize] else {
                not_joined.push(p as u32);
                continue;
            };
            if marks[JoinMark::FirstReceived as usize].is_none() {
                not_joined.push(p as u32);
            }
            for (at, h) in marks.iter().zip(&mut timeline) {
                if let Some(at) = at {
                    h.saturating_record((at.saturating_sub(open) / 1000).clamp(1, MAX_MICROS));
                }
            }
        }
        let join = &timeline[JoinMark::FirstReceived as usize];
        let join_timeline = JoinMark::ALL
            .iter()
            .zip(&timeline)
            .skip(1)
            .map(|(mark, h)| {
                let p = percentiles(h);
                Milestone {
                    mark: serde_json::to_value(mark)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    p50_ms: p.p50_ms,
                    p95_ms: p.p95_ms,
                    count: p.count,
                }
            })
            .collect();
        Summary {
            sent,
            received,
            loss_pct,
            latency: percentiles(&self.latency_us),
            join: percentiles(join),
            join_timeline,
            silent_streams,
            layer_packets,
            not_joined,
            foreign: self.foreign,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::{Kind, StreamId};

    fn stamp(participant: u32, kind: Kind, seq: u32, sent_ns: u64) -> Stamp {
        Stamp {
            stream: StreamId::of(participant, kind),
            seq,
            sent_ns,
        }
    }

    #[test]
    fn loss_and_latency_count_only_the_window() {
        let mut acc = Accounting::new(2);
        acc.set_window(1_000_000, 2_000_000);
        // Before the window: ignored on both sides.
        let early = stamp(0, Kind::Audio, 0, 500_000);
        acc.on_sent(&early);
        acc.on_received(1, Some(early), 600_000);
        // Ten packets from participant 0 in the window, nine arrive 2 ms later.
        for i in 0..10 {
            let s = stamp(0, Kind::Video, i, 1_000_000 + u64::from(i) * 10_000);
            acc.on_sent(&s);
            if i != 4 {
                acc.on_received(1, Some(s), s.sent_ns + 2_000_000);
            }
        }
        // Duplicates never push a stream above what it sent.
        let dup = stamp(0, Kind::Video, 0, 1_000_000);
        acc.on_received(1, Some(dup), 3_100_000);
        acc.on_received(1, Some(dup), 3_100_000);
        let summary = acc.summary();
        assert_eq!(summary.sent, 10);
        assert_eq!(summary.received, 10, "capped at what was sent per stream");
        acc.set_window(1_000_000, 2_000_000);
        for i in 0..10 {
            let s = stamp(0, Kind::Video, i, 1_000_000 + u64::from(i) * 10_000);
            acc.on_sent(&s);
            if i != 4 {
                acc.on_received(1, Some(s), s.sent_ns + 2_000_000);
            }
        }
        let summary = acc.summary();
        assert_eq!((summary.sent, summary.received), (10, 9));
        assert!((summary.loss_pct - 10.0).abs() < 1e-9);
        assert!((summary.latency.p50_ms - 2.0).abs() < 0.01);
        assert!((summary.latency.p99_ms - 2.0).abs() < 0.01);
        assert_eq!(summary.latency.count, 9);
        // Participant 1 published nothing: its two streams are silent, and so is 0's audio.
        assert_eq!(summary.silent_streams, vec![0, 4, 7]);
        assert_eq!(summary.layer_packets, [0, 0, 9]);
    }

    /// Participant 0 publishes three layers, 100 packets each in the window; participant 1
    /// receives what the relay forwards.
    fn simulcast_window(forwarded: impl Fn(usize, u32) -> bool) -> Summary {
        let mut acc = Accounting::new(2);
        acc.set_window(0, 10_000_000);
        for seq in 0..100u32 {
            for layer in 0..LAYERS {
                let s = Stamp {
                    stream: StreamId::layer(0, layer),
                    seq,
                    sent_ns: 1_000 + u64::from(seq) * 1_000,
                };
                acc.on_sent(&s);
                if forwarded(layer, seq) {
                    acc.on_received(1, Some(s), s.sent_ns + 500_000);
                }
            }
        }
        acc.summary()
    }

    #[test]
    fn simulcast_loss_counts_against_the_layer_the_relay_forwarded() {
        // The relay forwards the h layer all window long; one packet is lost.
        let one = simulcast_window(|layer, seq| layer == 1 && seq != 40);
        assert_eq!((one.sent, one.received), (100, 99), "{one:?}");
        assert_eq!(one.layer_packets, [0, 99, 0]);
        // It switches from q to f at packet 50 (the f layer's keyframe); q lost packet 20.
        let switched = simulcast_window(|layer, seq| match layer {
            0 => seq < 50 && seq != 20,
            2 => seq >= 50,
            _ => false,
        });
        assert_eq!(
            (switched.sent, switched.received),
            (100, 99),
            "{switched:?}"
        );
        assert_eq!(switched.layer_packets, [49, 0, 50]);
        // Nothing forwarded: the top layer's packets count as lost, and the video is silent.
        let none = simulcast_window(|_, _| false);
        assert_eq!((none.sent, none.received), (100, 0));
        assert!(
            none.silent_streams.contains(&3),
            "{:?}",
            none.silent_streams
        );
        // Participant 0's video arrived in the first two cases: only the empty audio streams
        // and participant 1's silent video are silent.
        assert_eq!(one.silent_streams, vec![0, 4, 7]);
        assert_eq!(switched.silent_streams, vec![0, 4, 7]);
    }

    #[test]
    fn join_time_runs_from_websocket_open_to_first_remote_packet() {
        let mut acc = Accounting::new(2);
        acc.on_ws_open(0, 1_000_000);
        acc.on_ws_open(1, 1_000_000);
        acc.on_received(0, Some(stamp(1, Kind::Audio, 0, 100)), 151_000_000);
        acc.on_received(0, Some(stamp(1, Kind::Audio, 1, 100)), 300_000_000);
        acc.on_received(0, None, 300_000_000);
        let summary = acc.summary();
        assert!(
            (summary.join.p50_ms - 150.0).abs() < 0.2,
            "{:?}",
            summary.join
        );
        assert_eq!(summary.not_joined, vec![1]);
        let received = summary
            .join_timeline
            .iter()
            .find(|m| m.mark == "first_received")
            .expect("the last mark");
        assert_eq!(received.count, 1);
        assert!((received.p50_ms - 150.0).abs() < 0.2);
        assert_eq!(summary.join_timeline.len(), JoinMark::ALL.len() - 1);
        assert_eq!(summary.foreign, 1);
        assert!(acc.has_media(0) && !acc.has_media(1));
        assert_eq!(
            summary.loss_pct, 100.0,
            "no window: nothing counted as delivered"
        );
    }
}
