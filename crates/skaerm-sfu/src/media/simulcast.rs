//! Switching what a subscriber receives between sources of one video, without the subscriber
//! noticing: which layer to forward, when a switch may happen (only at a VP8 keyframe), and the
//! sequence number/timestamp rewriting that makes the forwarded packets one continuous stream.
//!
//! All of it is plain state of packets and instants. The relay uses it for simulcast (three rid
//! layers, one chosen per subscriber; see docs/simulcast.md for its limits) and for the one-layer
//! case: resuming video after an audio-only fallback is a switch from "nothing" to the camera
//! layer, which waits for a keyframe and continues the subscriber's sequence numbers where they
//! stopped. It also writes the simulcast request into the relay's offers.

use std::time::{Duration, Instant};

/// Whether an RTP payload is the first packet of a VP8 keyframe (RFC 7741): the payload
/// descriptor says "start of partition 0" and the VP8 payload header's P bit is 0.
pub(crate) fn vp8_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let extended = first & 0x80 != 0;
    let start = first & 0x10 != 0;
    let partition = first & 0x07;
    if !start || partition != 0 {
        return false;
    }
    let mut at = 1;
    if extended {
        let Some(&x) = payload.get(at) else {
            return false;
        };
        at += 1;
        if x & 0x80 != 0 {
            // PictureID: one byte, or two when its M bit is set.
            let Some(&pid) = payload.get(at) else {
                return false;
            };
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if x & 0x30 != 0 {
            at += 1; // TID/Y/KEYIDX
        }
    }
    // VP8 payload header: bit 0 of its first byte is P, the inverse key frame flag.
    payload.get(at).is_some_and(|header| header & 0x01 == 0)
}

/// The rids of the layers the relay asks publishers for, lowest quality first.
pub(crate) const LAYER_RIDS: [&str; 3] = ["q", "h", "f"];

/// Nominal bitrates of the layers (quarter, half, full resolution of a 720p camera), for
/// choosing one by a subscriber's estimate.
pub(crate) const SIMULCAST_LAYER_BITRATES: [u64; 3] = [150_000, 500_000, 1_500_000];

/// Adds simulcast reception to every `recvonly` video m-line of an offer (RFC 8853):
/// `a=rid:<id> recv` per layer and `a=simulcast:recv f;h;q`. `rtc` writes these only when
/// answering, and the relay is always the offerer.
pub(crate) fn offer_simulcast_recv(sdp: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 256);
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut String| {
        let video_recv = section.first().is_some_and(|l| l.starts_with("m=video"))
            && section.contains(&"a=recvonly")
            && !section.iter().any(|l| l.starts_with("a=simulcast"));
        for line in section.iter() {
            out.push_str(line);
            out.push_str("\r\n");
        }
        if video_recv {
            for rid in LAYER_RIDS.iter().rev() {
                out.push_str(&format!("a=rid:{rid} recv\r\n"));
            }
            out.push_str("a=simulcast:recv f;h;q\r\n");
        }
        section.clear();
    };
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        if line.starts_with("m=") {
            flush(&mut section, &mut out);
        }
        section.push(line);
    }
    flush(&mut section, &mut out);
    out
}

/// Rewrites sequence numbers and timestamps of a forwarded stream whose source can change
/// (another simulcast layer, or video resuming after a pause), so the subscriber sees one
/// stream: consecutive sequence numbers across a change, timestamps advancing by the time that
/// passed.
#[derive(Debug, Clone)]
pub(crate) struct Continuity {
    clock_rate: u32,
    /// The current segment: first source sequence number, and the offsets to add.
    segment: Option<Segment>,
    /// The next packet starts a new segment.
    switching: bool,
    /// Newest sequence number and timestamp sent, and when.
    last: Option<(u16, u32, Instant)>,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    first_in: u16,
    seq_offset: u16,
    ts_offset: u32,
}

impl Continuity {
    /// A stream with `clock_rate` RTP ticks per second. The first segment keeps the source's
    /// numbering.
    pub(crate) fn new(clock_rate: u32) -> Self {
        Continuity {
            clock_rate,
            segment: None,
            switching: true,
            last: None,
        }
    }

    /// The next packet forwarded comes from a new source (or after a gap): continue from
    /// where the stream stopped.
    pub(crate) fn switch(&mut self) {
        self.switching = true;
    }

    /// The subscriber-side sequence number and timestamp of a source packet, or `None` for a
    /// packet older than the start of the current segment (a late packet of what was there
    /// before the switch: forwarding it would go backwards).
    pub(crate) fn rewrite(&mut self, now: Instant, seq: u16, ts: u32) -> Option<(u16, u32)> {
        if self.switching || self.segment.is_none() {
            self.switching = false;
            let segment = match self.last {
                None => Segment {
                    first_in: seq,
                    seq_offset: 0,
                    ts_offset: 0,
                },
                Some((last_seq, last_ts, at)) => {
                    let elapsed = now
                        .saturating_duration_since(at)
                        .max(Duration::from_millis(1));
                    let ticks = (elapsed.as_secs_f64() * f64::from(self.clock_rate)) as u32;
                    let out_ts = last_ts.wrapping_add(ticks.max(1));
                    Segment {
                        first_in: seq,
                        seq_offset: last_seq.wrapping_add(1).wrapping_sub(seq),
                        ts_offset: out_ts.wrapping_sub(ts),
                    }
                }
            };
            self.segment = Some(segment);
        }
        let segment = self.segment?;
        if (seq.wrapping_sub(segment.first_in) as i16) < 0 {
            return None;
        }
        let out = (
            seq.wrapping_add(segment.seq_offset),
            ts.wrapping_add(segment.ts_offset),
        );
        let newer = self
            .last
            .is_none_or(|(last_seq, _, _)| (out.0.wrapping_sub(last_seq) as i16) > 0);
        if newer {
            self.last = Some((out.0, out.1, now));
        }
        Some(out)
    }
}

/// What to do with a packet of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerVerdict {
    /// Forward it.
    Forward,
    /// Forward it: it is the keyframe the pending switch waited for, and starts the new layer
    /// (call [`Continuity::switch`] first).
    SwitchHere,
    /// Not forwarded to this subscriber.
    Skip,
}

/// Which of a publisher's layers one subscriber receives. Layers are indexed from the lowest
/// quality; each has a nominal bitrate. Only layers that arrive are chosen: a browser may send
/// fewer layers than asked for (Chromium sends no quarter layer of a 640x480 camera, and turns
/// layers off when its uplink is short).
#[derive(Debug, Clone)]
pub(crate) struct LayerSelector {
    bitrates: Vec<u64>,
    current: Option<usize>,
    target: usize,
    /// Layers (bit per index) that delivered a packet since the last `choose`, and in the
    /// interval before that: what arrived in either counts as live.
    seen: u64,
    seen_before: u64,
    /// Bandwidth checks since the target's keyframe was last asked for, while the switch to it
    /// is pending.
    waiting: u32,
}

/// Bandwidth checks (of 250 ms) after which a pending switch asks for the keyframe again: a
/// keyframe request can be lost or ignored, and browsers send no periodic keyframes.
const KEYFRAME_RETRY_CHECKS: u32 = 4;

/// Share of the estimate a layer may use (the rest is headroom for audio and retransmissions).
const ESTIMATE_SHARE: f64 = 0.85;

impl LayerSelector {
    /// A selector over layers with these nominal bitrates (lowest first), starting with the
    /// lowest until an estimate says more fits.
    pub(crate) fn new(bitrates: Vec<u64>) -> Self {
        LayerSelector {
            bitrates,
            current: None,
            target: 0,
            seen: 0,
            seen_before: 0,
            waiting: 0,
        }
    }

    /// The layer being forwarded, if any.
    pub(crate) fn current(&self) -> Option<usize> {
        self.current
    }

    /// Forwarding restarts (after a pause) at the next keyframe of the target layer.
    pub(crate) fn restart(&mut self) {
        self.current = None;
    }

    /// Chooses the target layer for `estimate` among the live layers (all of them before any
    /// packet arrived): the best whose bitrate fits in its share, else the lowest. Without an
    /// estimate the target changes only when it stopped arriving. Called once per bandwidth
    /// check; returns the target when its keyframe is to be asked for: when it changed, and
    /// again every `KEYFRAME_RETRY_CHECKS` checks while the switch to it is pending.
    pub(crate) fn choose(&mut self, estimate: Option<u64>) -> Option<usize> {
        let arrived = self.seen | self.seen_before;
        self.seen_before = self.seen;
        self.seen = 0;
        let live = |layer: usize| arrived == 0 || arrived & (1u64 << layer.min(63)) != 0;
        let target = match estimate {
            Some(estimate) => {
                let budget = estimate as f64 * ESTIMATE_SHARE;
                let mut live_layers = (0..self.bitrates.len()).filter(|l| live(*l));
                let lowest = live_layers.clone().next().unwrap_or(0);
                live_layers
                    .rfind(|l| self.bitrates[*l] as f64 <= budget)
                    .unwrap_or(lowest)
            }
            None if live(self.target) => self.target,
            None => (0..self.bitrates.len()).find(|l| live(*l)).unwrap_or(0),
        };
        if target != self.target {
            self.target = target;
            self.waiting = 0;
            return Some(target);
        }
        if self.current == Some(target) {
            self.waiting = 0;
            return None;
        }
        self.waiting += 1;
        (self.waiting >= KEYFRAME_RETRY_CHECKS).then(|| {
            self.waiting = 0;
            target
        })
    }

    /// The verdict for a packet of `layer`. The current layer keeps flowing until the target
    /// layer delivers a keyframe; only then does the switch happen.
    pub(crate) fn accept(&mut self, layer: usize, keyframe_start: bool) -> LayerVerdict {
        self.seen |= 1u64 << layer.min(63);
        if self.current == Some(self.target) {
            return if layer == self.target {
                LayerVerdict::Forward
            } else {
                LayerVerdict::Skip
            };
        }
        // Nothing flows yet: any keyframe up to the target starts the stream (the target's own
        // keyframe may be slow to come); the switch up to the target follows at its keyframe.
        let starts = self.current.is_none() && layer <= self.target;
        if keyframe_start && (layer == self.target || starts) {
            self.current = Some(layer);
            return LayerVerdict::SwitchHere;
        }
        if Some(layer) == self.current {
            LayerVerdict::Forward
        } else {
            LayerVerdict::Skip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload: descriptor with S=1/PID=0 when `start`, extended with a 15-bit picture
    /// id, then a payload header whose P bit says key (0) or delta (1).
    fn vp8(start: bool, key: bool) -> Vec<u8> {
        let first = 0x80 | if start { 0x10 } else { 0 };
        vec![first, 0x80, 0x81, 0x23, if key { 0x10 } else { 0x11 }, 0, 0]
    }

    #[test]
    fn offers_ask_for_simulcast_only_on_receiving_video_lines() {
        let sdp = "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=sendonly\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=rid:x recv\r\n\
                   a=simulcast:recv x\r\na=recvonly\r\n";
        let out = offer_simulcast_recv(sdp);
        let sections: Vec<&str> = out.split("m=").collect();
        assert!(sections[0].starts_with("v=0"));
        assert!(!sections[1].contains("a=rid"), "audio untouched");
        assert!(sections[2].contains("a=rid:q recv\r\n"));
        assert!(sections[2].contains("a=rid:f recv\r\n"));
        assert!(sections[2].ends_with("a=simulcast:recv f;h;q\r\n"));
        assert!(
            !sections[3].contains("a=rid"),
            "the relay's sending lines untouched"
        );
        assert_eq!(
            sections[4].matches("a=simulcast").count(),
            1,
            "an existing simulcast line is kept as is"
        );
    }

    #[test]
    fn vp8_keyframes_are_recognised_from_the_descriptor() {
        assert!(vp8_keyframe_start(&vp8(true, true)));
        assert!(!vp8_keyframe_start(&vp8(true, false)), "delta frame");
        assert!(
            !vp8_keyframe_start(&vp8(false, true)),
            "not the first packet"
        );
        // Minimal descriptor (no X), keyframe.
        assert!(vp8_keyframe_start(&[0x10, 0x00, 0x01]));
        // Partition 1 is not the start of a frame.
        assert!(!vp8_keyframe_start(&[0x11, 0x00]));
        // Truncated and empty payloads are not keyframes, and do not panic.
        assert!(!vp8_keyframe_start(&[]));
        assert!(!vp8_keyframe_start(&[0x90, 0x80]));
        assert!(!vp8_keyframe_start(&[0x10]));
    }

    #[test]
    fn sequence_numbers_stay_continuous_across_a_switch() {
        let t0 = Instant::now();
        let mut c = Continuity::new(90_000);
        // Layer A: seq 100.., ts 5000 + 3000 per frame.
        let mut out = Vec::new();
        for i in 0..5u16 {
            let at = t0 + Duration::from_millis(33 * u64::from(i));
            out.push(c.rewrite(at, 100 + i, 5000 + 3000 * u32::from(i)).unwrap());
        }
        assert_eq!(
            out[0],
            (100, 5000),
            "the first segment keeps the source numbering"
        );
        // Switch to layer B with an unrelated sequence and timestamp space, near wrap-around.
        c.switch();
        let switched_at = t0 + Duration::from_millis(33 * 5);
        for i in 0..5u16 {
            let at = switched_at + Duration::from_millis(33 * u64::from(i));
            out.push(
                c.rewrite(
                    at,
                    65533u16.wrapping_add(i),
                    7_000_000 + 3000 * u32::from(i),
                )
                .unwrap(),
            );
        }
        for pair in out.windows(2) {
            assert_eq!(pair[1].0, pair[0].0.wrapping_add(1), "{out:?}");
            let step = pair[1].1.wrapping_sub(pair[0].1);
            assert!(
                (1..=4000).contains(&step),
                "timestamps advance by about one frame: {out:?}"
            );
        }
        // A late packet of layer B from before the switch point is refused.
        assert_eq!(c.rewrite(switched_at, 65530, 6_999_000), None);
        // Retransmissions inside the segment map consistently.
        assert_eq!(c.rewrite(switched_at, 65534, 7_003_000), Some(out[6]));
    }

    #[test]
    fn a_switch_waits_for_a_keyframe_of_the_target_layer() {
        // Layers: 150 kbit/s, 500 kbit/s, 1.5 Mbit/s.
        let mut s = LayerSelector::new(vec![150_000, 500_000, 1_500_000]);
        // Start: the lowest layer, from its first keyframe.
        assert_eq!(
            s.accept(0, false),
            LayerVerdict::Skip,
            "nothing before a keyframe"
        );
        assert_eq!(s.accept(0, true), LayerVerdict::SwitchHere);
        assert_eq!(s.accept(0, false), LayerVerdict::Forward);
        assert_eq!(s.accept(2, false), LayerVerdict::Skip);
        // The estimate grows: target the top layer, keep the low one flowing meanwhile.
        assert_eq!(s.choose(Some(2_000_000)), Some(2));
        assert_eq!(s.choose(Some(2_000_000)), None, "unchanged");
        assert_eq!(
            s.accept(2, false),
            LayerVerdict::Skip,
            "no delta frame switch"
        );
        assert_eq!(s.accept(0, false), LayerVerdict::Forward);
        assert_eq!(
            s.accept(1, true),
            LayerVerdict::Skip,
            "not the target layer"
        );
        assert_eq!(s.accept(2, true), LayerVerdict::SwitchHere);
        assert_eq!(s.current(), Some(2));
        assert_eq!(s.accept(0, false), LayerVerdict::Skip);
        assert_eq!(s.accept(2, false), LayerVerdict::Forward);
        // It falls: the middle layer fits 85% of 700 kbit/s.
        assert_eq!(s.choose(Some(700_000)), Some(1));
        assert_eq!(s.accept(2, false), LayerVerdict::Forward);
        assert_eq!(s.accept(1, true), LayerVerdict::SwitchHere);
        // Nothing fits: the lowest, never nothing.
        assert_eq!(s.accept(0, false), LayerVerdict::Skip);
        assert_eq!(s.choose(Some(50_000)), Some(0));
        assert_eq!(s.choose(None), None, "no estimate, no change");
    }

    #[test]
    fn only_layers_that_arrive_are_chosen() {
        let mut s = LayerSelector::new(vec![150_000, 500_000, 1_500_000]);
        // Before any packet: by the estimate alone (the lowest fits 400 kbit/s).
        assert_eq!(s.choose(Some(400_000)), None);
        // The publisher sends only the half and full layers (no quarter layer).
        assert_eq!(s.accept(1, false), LayerVerdict::Skip);
        assert_eq!(s.accept(2, true), LayerVerdict::Skip);
        assert_eq!(
            s.choose(Some(400_000)),
            Some(1),
            "nothing live fits: the lowest live layer, not the missing one"
        );
        assert_eq!(s.accept(1, true), LayerVerdict::SwitchHere);
        assert_eq!(s.accept(2, false), LayerVerdict::Skip);
        // More room: the top layer.
        assert_eq!(s.choose(Some(2_000_000)), Some(2));
        assert_eq!(s.accept(2, true), LayerVerdict::SwitchHere);
        // The top layer stops (the publisher's uplink is short): after two quiet intervals the
        // half layer is the target again, even with room for the top.
        s.accept(1, false);
        assert_eq!(
            s.choose(Some(2_000_000)),
            None,
            "it arrived in this interval"
        );
        s.accept(1, false);
        assert_eq!(s.choose(Some(2_000_000)), None, "and in the one before");
        s.accept(1, false);
        assert_eq!(s.choose(Some(2_000_000)), Some(1));
        // Without an estimate, a live target stays; a target that stopped is replaced.
        s.accept(0, false);
        s.accept(1, false);
        assert_eq!(s.choose(None), None);
        s.accept(0, false);
        assert_eq!(s.choose(None), None, "the half layer arrived last interval");
        s.accept(0, false);
        assert_eq!(s.choose(None), Some(0));
    }

    #[test]
    fn a_pending_switch_asks_again_and_a_lower_keyframe_starts_the_stream() {
        let mut s = LayerSelector::new(vec![150_000, 500_000, 1_500_000]);
        assert_eq!(s.choose(Some(2_000_000)), Some(2));
        // The top layer's keyframe does not come: asked for again every fourth check.
        let asked: Vec<Option<usize>> = (0..8)
            .map(|_| {
                s.accept(2, false);
                s.choose(Some(2_000_000))
            })
            .collect();
        assert_eq!(
            asked,
            [None, None, None, Some(2), None, None, None, Some(2)]
        );
        // Meanwhile a keyframe of a lower layer starts the stream; the top one follows.
        assert_eq!(s.accept(1, true), LayerVerdict::SwitchHere);
        assert_eq!(s.accept(1, false), LayerVerdict::Forward);
        assert_eq!(s.accept(0, true), LayerVerdict::Skip, "already flowing");
        assert_eq!(s.accept(2, true), LayerVerdict::SwitchHere);
        s.accept(2, false);
        for _ in 0..8 {
            assert_eq!(s.choose(Some(2_000_000)), None, "switched: nothing to ask");
            s.accept(2, false);
        }
    }

    #[test]
    fn selector_and_continuity_together_give_one_stream() {
        let t0 = Instant::now();
        let mut s = LayerSelector::new(vec![150_000, 1_500_000]);
        let mut c = Continuity::new(90_000);
        let mut sent = Vec::new();
        let mut send = |s: &mut LayerSelector, c: &mut Continuity, layer, seq, key, ms| match s
            .accept(layer, key)
        {
            LayerVerdict::Skip => {}
            verdict => {
                if verdict == LayerVerdict::SwitchHere {
                    c.switch();
                }
                let at = t0 + Duration::from_millis(ms);
                if let Some(out) = c.rewrite(at, seq, seq as u32 * 3000) {
                    sent.push((layer, out.0));
                }
            }
        };
        send(&mut s, &mut c, 0, 10, true, 0);
        send(&mut s, &mut c, 1, 900, false, 0);
        send(&mut s, &mut c, 0, 11, false, 33);
        s.choose(Some(3_000_000));
        send(&mut s, &mut c, 1, 901, false, 66);
        send(&mut s, &mut c, 0, 12, false, 66);
        send(&mut s, &mut c, 1, 902, true, 99);
        send(&mut s, &mut c, 0, 13, false, 99);
        send(&mut s, &mut c, 1, 903, false, 132);
        assert_eq!(sent, vec![(0, 10), (0, 11), (0, 12), (1, 13), (1, 14)]);
    }
}
