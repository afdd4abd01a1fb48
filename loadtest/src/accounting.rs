//! Loss, added latency and join time of one run, from stamps alone: the sender counts what it
//! sent inside the measurement window (by send time), the receiver counts what arrived of those
//! packets and records each one's latency (receive time minus stamped send time, one clock).
//! Packets sent before the window (warm-up) or after it are ignored on both sides, so a packet
//! still in flight when the window closes is not counted as lost as long as it arrives before
//! the report is taken.

use crate::stamp::{Stamp, StreamId};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms track (10 s, in microseconds).
const MAX_MICROS: u64 = 10_000_000;

/// Counts and latencies of one run.
#[derive(Debug)]
pub struct Accounting {
    window: Option<(u64, u64)>,
    sent: Vec<u64>,
    received: Vec<u64>,
    latency_us: Histogram<u64>,
    /// Packets that carried no stamp or an unknown stream.
    foreign: u64,
    ws_open_ns: Vec<Option<u64>>,
    first_media_ns: Vec<Option<u64>>,
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
    /// Streams that sent nothing inside the window or had nothing received.
    pub silent_streams: Vec<u32>,
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
    /// Accounting for `participants` publishers (two streams each).
    pub fn new(participants: u32) -> Accounting {
        let streams = participants as usize * 2;
        Accounting {
            window: None,
            sent: vec![0; streams],
            received: vec![0; streams],
            latency_us: histogram(),
            foreign: 0,
            ws_open_ns: vec![None; participants as usize],
            first_media_ns: vec![None; participants as usize],
        }
    }

    /// Starts counting packets sent in `[start_ns, end_ns)`; clears earlier counts.
    pub fn set_window(&mut self, start_ns: u64, end_ns: u64) {
        self.window = Some((start_ns, end_ns));
        self.sent.iter_mut().for_each(|n| *n = 0);
        self.received.iter_mut().for_each(|n| *n = 0);
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
        if let Some(first) = self.first_media_ns.get_mut(receiver as usize)
            && first.is_none()
        {
            *first = Some(now_ns);
        }
        if self.in_window(stamp.sent_ns) {
            self.received[stamp.stream.0 as usize] += 1;
            let us = now_ns.saturating_sub(stamp.sent_ns) / 1000;
            self.latency_us.saturating_record(us.clamp(1, MAX_MICROS));
        }
    }

    /// `participant`'s WebSocket opened (or, without signalling, its media started) at `ns`.
    pub fn on_ws_open(&mut self, participant: u32, ns: u64) {
        if let Some(slot) = self.ws_open_ns.get_mut(participant as usize) {
            *slot = Some(ns);
        }
    }

    /// Whether `participant` has received remote media.
    pub fn has_media(&self, participant: u32) -> bool {
        self.first_media_ns
            .get(participant as usize)
            .is_some_and(Option::is_some)
    }

    /// The numbers so far.
    pub fn summary(&self) -> Summary {
        let sent: u64 = self.sent.iter().sum();
        // Duplicates never push a stream above what it sent.
        let received: u64 = self
            .sent
            .iter()
            .zip(&self.received)
            .map(|(s, r)| (*r).min(*s))
            .sum();
        let loss_pct = if sent == 0 {
            100.0
        } else {
            (sent - received) as f64 * 100.0 / sent as f64
        };
        let silent_streams = self
            .sent
            .iter()
            .zip(&self.received)
            .enumerate()
            .filter(|(_, (s, r))| **s == 0 || **r == 0)
            .map(|(i, _)| StreamId(i as u32).0)
            .collect();
        let mut join = histogram();
        let mut not_joined = Vec::new();
        for (p, (open, first)) in self.ws_open_ns.iter().zip(&self.first_media_ns).enumerate() {
            match (open, first) {
                (Some(open), Some(first)) => {
                    join.saturating_record(
                        (first.saturating_sub(*open) / 1000).clamp(1, MAX_MICROS),
                    );
                }
                _ => not_joined.push(p as u32),
            }
        }
        Summary {
            sent,
            received,
            loss_pct,
            latency: percentiles(&self.latency_us),
            join: percentiles(&join),
            silent_streams,
            not_joined,
            foreign: self.foreign,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::Kind;

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
        assert_eq!(summary.silent_streams, vec![0, 2, 3]);
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
        assert_eq!(summary.foreign, 1);
        assert!(acc.has_media(0) && !acc.has_media(1));
        assert_eq!(
            summary.loss_pct, 100.0,
            "no window: nothing counted as delivered"
        );
    }
}
