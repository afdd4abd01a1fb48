//! The synthetic media one participant publishes: Opus-like audio (one ~100-byte packet every
//! 20 ms) and VP8-like video (frames at a fixed rate sized for the target bitrate, a larger
//! keyframe periodically, split into packets of at most ~1200 bytes with the marker bit on the
//! last one and a real VP8 payload descriptor and header in front) — one stream, or with
//! simulcast three layers (q, h, f at 1/8, 1/4 and all of the video bitrate) framed in step,
//! keyframes on all layers at once, as a browser's simulcast encoder does. Every payload ends
//! with a [`Stamp`]. A plain function of `now`: the caller owns the clock and the sockets.

use crate::stamp::{Kind, LAYERS, STAMP_LEN, Stamp, StreamId};
use bytes::{BufMut, Bytes, BytesMut};
use std::time::{Duration, Instant};

/// Audio packet interval (Opus 20 ms frames).
pub const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// RTP clock of Opus.
const AUDIO_CLOCK: u64 = 48_000;
/// RTP clock of VP8.
const VIDEO_CLOCK: u64 = 90_000;
/// A keyframe is this many times an average frame.
const KEYFRAME_FACTOR: u64 = 3;
/// A source this far behind its schedule skips ahead instead of bursting (and counts it).
const MAX_LAG: Duration = Duration::from_millis(200);

/// What each participant sends.
#[derive(Debug, Clone, Copy)]
pub struct MediaProfile {
    /// Video bitrate, bits per second.
    pub video_bps: u64,
    /// Video frames per second.
    pub fps: u32,
    /// Frames between keyframes.
    pub keyframe_every: u64,
    /// Largest RTP payload.
    pub max_payload: usize,
    /// Audio payload size.
    pub audio_payload: usize,
    /// Video as three simulcast layers (rid q, h, f) instead of one stream.
    pub simulcast: bool,
}

impl Default for MediaProfile {
    fn default() -> Self {
        MediaProfile {
            video_bps: 1_200_000,
            fps: 30,
            keyframe_every: 90,
            max_payload: 1200,
            audio_payload: 100,
            simulcast: false,
        }
    }
}

/// Each simulcast layer's share of the video bitrate is 1 / this (q, h, f).
pub const LAYER_DIVISORS: [u64; LAYERS] = [8, 4, 1];

impl MediaProfile {
    /// Bitrate of simulcast layer `layer` (0 = q); without simulcast the one stream is layer 2.
    pub fn layer_bps(&self, layer: usize) -> u64 {
        self.video_bps / LAYER_DIVISORS[layer.min(LAYERS - 1)]
    }

    fn frame_bytes(&self, bps: u64, frame: u64, keyframe: bool) -> usize {
        let fps = u64::from(self.fps.max(1));
        let avg = (bps / 8 / fps).max(64);
        let every = self.keyframe_every.max(1);
        if keyframe {
            return usize::try_from(avg * KEYFRAME_FACTOR).unwrap_or(usize::MAX);
        }
        // Deltas shrink so the average over one keyframe interval stays at the bitrate.
        let deltas = every.saturating_sub(1).max(1);
        let delta = (avg * every).saturating_sub(avg * KEYFRAME_FACTOR) / deltas;
        // A little deterministic variation, ±12%.
        let wobble = (frame.wrapping_mul(2_654_435_761) % 25) as i64 - 12;
        let size = delta as i64 + delta as i64 * wobble / 100;
        usize::try_from(size.max(64)).unwrap_or(64)
    }
}

/// One RTP packet to send.
#[derive(Debug, Clone)]
pub struct SynthPacket {
    /// Audio or video.
    pub kind: Kind,
    /// RTP sequence number.
    pub rtp_seq: u16,
    /// RTP timestamp.
    pub rtp_ts: u32,
    /// Marker bit (end of a video frame).
    pub marker: bool,
    /// The simulcast layer (0 = q); `None` for audio and for video without simulcast.
    pub layer: Option<usize>,
    /// Payload, stamp included.
    pub payload: Bytes,
}

impl SynthPacket {
    /// The stream it belongs to, when `participant` sends it.
    pub fn stream(&self, participant: u32) -> StreamId {
        match (self.kind, self.layer) {
            (Kind::Video, Some(layer)) => StreamId::layer(participant, layer),
            (kind, _) => StreamId::of(participant, kind),
        }
    }
}

/// One participant's media clock.
#[derive(Debug)]
pub struct Source {
    participant: u32,
    profile: MediaProfile,
    epoch: Instant,
    next_audio: Instant,
    next_video: Instant,
    audio_seq: u32,
    /// Per video stream (one, or one per layer).
    video_seq: Vec<u32>,
    /// Per video stream: the next frame is a keyframe (asked for with PLI/FIR).
    keyframe_wanted: Vec<bool>,
    frame: u64,
    lagged: u64,
}

impl Source {
    /// A source whose first packets are due at `start` (callers spread `start` over a frame
    /// interval so participants do not send in lockstep). `epoch` is the generator's clock zero.
    pub fn new(participant: u32, profile: MediaProfile, epoch: Instant, start: Instant) -> Source {
        Source {
            participant,
            profile,
            epoch,
            next_audio: start,
            next_video: start,
            audio_seq: 0,
            video_seq: vec![0; if profile.simulcast { LAYERS } else { 1 }],
            keyframe_wanted: vec![false; if profile.simulcast { LAYERS } else { 1 }],
            frame: 0,
            lagged: 0,
        }
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Instant {
        self.next_audio.min(self.next_video)
    }

    /// Times the source fell more than 200 ms behind and skipped ahead (the generator was
    /// overloaded).
    pub fn lagged(&self) -> u64 {
        self.lagged
    }

    /// The receiver asked for a keyframe (PLI/FIR) of simulcast layer `layer`, or of the one
    /// video stream (`None`): the next frame of it is one, as a browser's encoder does.
    pub fn request_keyframe(&mut self, layer: Option<usize>) {
        let index = layer.unwrap_or(0);
        if let Some(wanted) = self.keyframe_wanted.get_mut(index) {
            *wanted = true;
        }
    }

    fn frame_interval(&self) -> Duration {
        Duration::from_secs(1) / self.profile.fps.max(1)
    }

    /// Emits every packet due at or before `now` into `out`.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<SynthPacket>) {
        let sent_ns =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_duration_since(self.next_due()) > MAX_LAG {
            self.lagged += 1;
        }
        while self.next_audio <= now {
            if now.saturating_duration_since(self.next_audio) > MAX_LAG {
                self.next_audio = now;
            }
            let seq = self.audio_seq;
            self.audio_seq = self.audio_seq.wrapping_add(1);
            let mut payload = BytesMut::zeroed(self.profile.audio_payload.max(STAMP_LEN + 1));
            payload[0] = 0x78; // an Opus TOC byte (SILK wideband 20 ms)
            Stamp {
                stream: StreamId::of(self.participant, Kind::Audio),
                seq,
                sent_ns,
            }
            .write_into(&mut payload);
            out.push(SynthPacket {
                kind: Kind::Audio,
                rtp_seq: seq as u16,
                rtp_ts: (u64::from(seq) * AUDIO_CLOCK / 50) as u32,
                marker: false,
                layer: None,
                payload: payload.freeze(),
            });
            self.next_audio += AUDIO_INTERVAL;
        }
        while self.next_video <= now {
            if now.saturating_duration_since(self.next_video) > MAX_LAG {
                self.next_video = now;
            }
            self.video_frame(sent_ns, out);
            self.next_video += self.frame_interval();
        }
    }

    fn video_frame(&mut self, sent_ns: u64, out: &mut Vec<SynthPacket>) {
        let frame = self.frame;
        self.frame += 1;
        if self.profile.simulcast {
            for layer in 0..LAYERS {
                self.layer_frame(frame, Some(layer), sent_ns, out);
            }
        } else {
            self.layer_frame(frame, None, sent_ns, out);
        }
    }

    /// Frame `frame` of one video stream: simulcast layer `layer`, or the one stream.
    fn layer_frame(
        &mut self,
        frame: u64,
        layer: Option<usize>,
        sent_ns: u64,
        out: &mut Vec<SynthPacket>,
    ) {
        let top = layer.unwrap_or(LAYERS - 1);
        let wanted = &mut self.keyframe_wanted[layer.unwrap_or(0)];
        let keyframe = frame.is_multiple_of(self.profile.keyframe_every.max(1)) || *wanted;
        *wanted = false;
        let size = self
            .profile
            .frame_bytes(self.profile.layer_bps(top), frame, keyframe);
        let max = self.profile.max_payload.max(STAMP_LEN + 16);
        let count = size.div_ceil(max).max(1);
        let per_packet = size.div_ceil(count).max(STAMP_LEN + 16);
        let rtp_ts = (frame * VIDEO_CLOCK / u64::from(self.profile.fps.max(1))) as u32;
        // Quarter, half and full size of 640x480.
        let shift = (LAYERS - 1 - top) as u32;
        let stream = StreamId::layer(self.participant, top);
        let seq_slot = &mut self.video_seq[layer.unwrap_or(0)];
        for i in 0..count {
            let seq = *seq_slot;
            *seq_slot = seq.wrapping_add(1);
            let len = if i + 1 == count {
                (size - per_packet * (count - 1)).max(STAMP_LEN + 16)
            } else {
                per_packet
            };
            let mut payload = BytesMut::with_capacity(len);
            // VP8 payload descriptor: S (start of partition) on the frame's first packet.
            payload.put_u8(if i == 0 { 0x10 } else { 0x00 });
            if i == 0 {
                // VP8 payload header: P bit (bit 0) clear on keyframes, show_frame set.
                payload.put_u8(if keyframe { 0x10 } else { 0x11 });
                payload.put_u8(0x00);
                payload.put_u8(0x00);
                if keyframe {
                    payload.put_slice(&[0x9d, 0x01, 0x2a]); // start code
                    payload.put_u16_le(640 >> shift);
                    payload.put_u16_le(480 >> shift);
                }
            }
            payload.resize(len, 0);
            Stamp {
                stream,
                seq,
                sent_ns,
            }
            .write_into(&mut payload);
            out.push(SynthPacket {
                kind: Kind::Video,
                rtp_seq: seq as u16,
                rtp_ts,
                marker: i + 1 == count,
                layer,
                payload: payload.freeze(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_second_has_the_configured_rates_sizes_and_markers() {
        let epoch = Instant::now();
        let profile = MediaProfile::default();
        let mut source = Source::new(3, profile, epoch, epoch);
        let mut out = Vec::new();
        let mut now = epoch;
        // Three seconds in 1 ms steps: one keyframe interval.
        while now < epoch + Duration::from_secs(3) {
            source.poll(now, &mut out);
            now += Duration::from_millis(1);
        }
        let audio: Vec<_> = out.iter().filter(|p| p.kind == Kind::Audio).collect();
        let video: Vec<_> = out.iter().filter(|p| p.kind == Kind::Video).collect();
        assert_eq!(audio.len(), 150);
        assert!(audio.iter().all(|p| p.payload.len() == 100));
        assert!(video.iter().all(|p| p.payload.len() <= 1200));
        let frames = video.iter().filter(|p| p.marker).count();
        assert_eq!(frames, 90);
        let bytes: usize = video.iter().map(|p| p.payload.len()).sum();
        let bps = bytes as f64 * 8.0 / 3.0;
        assert!(
            (1_000_000.0..1_400_000.0).contains(&bps),
            "video at {bps} bit/s"
        );
        // Frame starts carry the S bit; exactly one of them (the first) is a keyframe (P clear).
        let starts: Vec<_> = video.iter().filter(|p| p.payload[0] & 0x10 != 0).collect();
        assert_eq!(starts.len(), 90);
        let keyframes: Vec<_> = starts.iter().filter(|p| p.payload[1] & 0x01 == 0).collect();
        assert_eq!(keyframes.len(), 1);
        assert_eq!(
            &keyframes[0].payload[4..7],
            &[0x9d, 0x01, 0x2a],
            "keyframe start code"
        );
        // Stamps count up per stream with the participant's id.
        for (i, p) in video.iter().enumerate() {
            let stamp = Stamp::read_from(&p.payload).expect("stamped");
            assert_eq!(stamp.stream, StreamId::of(3, Kind::Video));
            assert_eq!(stamp.seq as usize, i);
        }
        assert_eq!(source.lagged(), 0);
    }

    #[test]
    fn a_late_source_skips_ahead_instead_of_bursting() {
        let epoch = Instant::now();
        let mut source = Source::new(0, MediaProfile::default(), epoch, epoch);
        let mut out = Vec::new();
        source.poll(epoch + Duration::from_secs(2), &mut out);
        let audio = out.iter().filter(|p| p.kind == Kind::Audio).count();
        assert!(audio <= 2, "{audio} audio packets after a 2 s stall");
        assert_eq!(source.lagged(), 1);
    }

    #[test]
    fn a_keyframe_request_makes_the_next_frame_of_that_stream_a_keyframe() {
        let epoch = Instant::now();
        let profile = MediaProfile {
            simulcast: true,
            ..MediaProfile::default()
        };
        let mut source = Source::new(0, profile, epoch, epoch);
        let mut out = Vec::new();
        let frame = Duration::from_secs(1) / 30;
        source.poll(epoch, &mut out); // frame 0: keyframes everywhere
        out.clear();
        source.request_keyframe(Some(1));
        source.poll(epoch + frame, &mut out);
        let starts: Vec<(Option<usize>, bool)> = out
            .iter()
            .filter(|p| p.kind == Kind::Video && p.payload[0] & 0x10 != 0)
            .map(|p| (p.layer, p.payload[1] & 0x01 == 0))
            .collect();
        assert_eq!(
            starts,
            [(Some(0), false), (Some(1), true), (Some(2), false)]
        );
        // Once: the frame after is a delta frame again.
        out.clear();
        source.poll(epoch + frame * 2, &mut out);
        assert!(
            out.iter()
                .filter(|p| p.kind == Kind::Video && p.payload[0] & 0x10 != 0)
                .all(|p| p.payload[1] & 0x01 == 1)
        );
    }

    #[test]
    fn simulcast_sends_three_layers_at_their_shares_with_keyframes_together() {
        let epoch = Instant::now();
        let profile = MediaProfile {
            simulcast: true,
            ..MediaProfile::default()
        };
        let mut source = Source::new(1, profile, epoch, epoch);
        let mut out = Vec::new();
        let mut now = epoch;
        while now < epoch + Duration::from_secs(3) {
            source.poll(now, &mut out);
            now += Duration::from_millis(1);
        }
        assert_eq!(out.iter().filter(|p| p.kind == Kind::Audio).count(), 150);
        for (layer, expected_bps) in [(0, 150_000.0), (1, 300_000.0), (2, 1_200_000.0)] {
            let packets: Vec<_> = out.iter().filter(|p| p.layer == Some(layer)).collect();
            assert!(packets.iter().all(|p| p.kind == Kind::Video));
            assert_eq!(
                packets.iter().filter(|p| p.marker).count(),
                90,
                "layer {layer}"
            );
            let bytes: usize = packets.iter().map(|p| p.payload.len()).sum();
            let bps = bytes as f64 * 8.0 / 3.0;
            assert!(
                (expected_bps * 0.8..expected_bps * 1.2).contains(&bps),
                "layer {layer} at {bps} bit/s"
            );
            // Each layer is its own stream, numbered from 0, and starts with a keyframe.
            for (i, p) in packets.iter().enumerate() {
                let stamp = Stamp::read_from(&p.payload).expect("stamped");
                assert_eq!(stamp.stream, StreamId::layer(1, layer));
                assert_eq!(stamp.seq as usize, i);
                assert_eq!(p.rtp_seq as usize, i);
            }
            assert_eq!(
                packets[0].payload[1] & 0x01,
                0,
                "layer {layer} opens with a keyframe"
            );
            let width = u16::from_le_bytes([packets[0].payload[7], packets[0].payload[8]]);
            assert_eq!(width, 640 >> (2 - layer));
        }
    }
}
