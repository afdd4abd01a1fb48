//! The trailer every synthetic payload carries: which stream it belongs to, its sequence in that
//! stream and when the generator sent it (nanoseconds on the generator's one monotonic clock).
//! It sits at the end of the payload so codec headers (the VP8 payload descriptor) stay in front.

/// Bytes the trailer takes at the end of a payload.
pub const STAMP_LEN: usize = 20;
const MAGIC: [u8; 4] = *b"SKLT";

/// A stream: one publisher's audio, its video, or one simulcast layer of its video. Each
/// participant has [`STREAMS_PER_PARTICIPANT`] slots: audio, layers q and h, and the full video
/// (layer f, or the one stream without simulcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

/// Stream slots per participant.
pub const STREAMS_PER_PARTICIPANT: u32 = 4;
/// Simulcast layers, lowest first (rid q, h, f).
pub const LAYERS: usize = 3;
/// The rids of the layers, lowest first.
pub const LAYER_RIDS: [&str; LAYERS] = ["q", "h", "f"];

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Opus-like, 50 packets/s.
    Audio,
    /// VP8-like frames.
    Video,
}

impl StreamId {
    /// The stream of `participant`'s `kind` (video: the one stream, or the top layer).
    pub fn of(participant: u32, kind: Kind) -> StreamId {
        match kind {
            Kind::Audio => StreamId(participant * STREAMS_PER_PARTICIPANT),
            Kind::Video => StreamId::layer(participant, LAYERS - 1),
        }
    }

    /// Simulcast layer `layer` (0 = q, lowest) of `participant`'s video.
    pub fn layer(participant: u32, layer: usize) -> StreamId {
        let layer = layer.min(LAYERS - 1) as u32;
        StreamId(participant * STREAMS_PER_PARTICIPANT + 1 + layer)
    }

    /// The publishing participant.
    pub fn participant(self) -> u32 {
        self.0 / STREAMS_PER_PARTICIPANT
    }

    /// Audio or video.
    #[cfg_attr(not(test), expect(dead_code, reason = "tests read stamps back"))]
    pub fn kind(self) -> Kind {
        if self.0.is_multiple_of(STREAMS_PER_PARTICIPANT) {
            Kind::Audio
        } else {
            Kind::Video
        }
    }

    /// The video layer (0 = q … 2 = f, which is also the one stream without simulcast).
    pub fn video_layer(self) -> Option<usize> {
        (self.0 % STREAMS_PER_PARTICIPANT)
            .checked_sub(1)
            .map(|l| l as usize)
    }
}

/// What a payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Whose stream.
    pub stream: StreamId,
    /// Sequence within the stream, from 0.
    pub seq: u32,
    /// Send time, nanoseconds since the generator's epoch.
    pub sent_ns: u64,
}

impl Stamp {
    /// Writes the trailer into the last [`STAMP_LEN`] bytes of `payload`. Returns `false` (and
    /// writes nothing) when the payload is too short.
    pub fn write_into(&self, payload: &mut [u8]) -> bool {
        let Some(start) = payload.len().checked_sub(STAMP_LEN) else {
            return false;
        };
        let tail = &mut payload[start..];
        tail[..4].copy_from_slice(&MAGIC);
        tail[4..8].copy_from_slice(&self.stream.0.to_be_bytes());
        tail[8..12].copy_from_slice(&self.seq.to_be_bytes());
        tail[12..20].copy_from_slice(&self.sent_ns.to_be_bytes());
        true
    }

    /// Reads the trailer of `payload`; `None` when it has none.
    pub fn read_from(payload: &[u8]) -> Option<Stamp> {
        let start = payload.len().checked_sub(STAMP_LEN)?;
        let tail = &payload[start..];
        if tail[..4] != MAGIC {
            return None;
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([tail[i], tail[i + 1], tail[i + 2], tail[i + 3]]);
        let mut ns = [0u8; 8];
        ns.copy_from_slice(&tail[12..20]);
        Some(Stamp {
            stream: StreamId(u32_at(4)),
            seq: u32_at(8),
            sent_ns: u64::from_be_bytes(ns),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_survives_the_round_trip_at_the_end_of_a_payload() {
        let stamp = Stamp {
            stream: StreamId::of(7, Kind::Video),
            seq: 123_456,
            sent_ns: 9_876_543_210,
        };
        let mut payload = vec![0xAB; 100];
        assert!(stamp.write_into(&mut payload));
        assert_eq!(&payload[..80], &[0xAB; 80][..], "the front is untouched");
        assert_eq!(Stamp::read_from(&payload), Some(stamp));
        assert_eq!(stamp.stream.participant(), 7);
        assert_eq!(stamp.stream.kind(), Kind::Video);
        assert_eq!(StreamId::of(7, Kind::Audio).kind(), Kind::Audio);
        assert_eq!(StreamId::of(7, Kind::Audio).video_layer(), None);
        assert_eq!(StreamId::of(7, Kind::Video).video_layer(), Some(2));
        let q = StreamId::layer(7, 0);
        assert_eq!(
            (q.participant(), q.kind(), q.video_layer()),
            (7, Kind::Video, Some(0))
        );
        assert_eq!(StreamId::layer(7, 2), StreamId::of(7, Kind::Video));
        assert_ne!(StreamId::layer(6, 2), StreamId::of(7, Kind::Audio));
    }

    #[test]
    fn short_or_foreign_payloads_have_no_stamp() {
        let stamp = Stamp {
            stream: StreamId(1),
            seq: 1,
            sent_ns: 1,
        };
        let mut short = vec![0; STAMP_LEN - 1];
        assert!(!stamp.write_into(&mut short));
        assert_eq!(Stamp::read_from(&short), None);
        let mut payload = vec![0; 40];
        assert!(stamp.write_into(&mut payload));
        payload[20] ^= 0xFF; // corrupt the magic
        assert_eq!(Stamp::read_from(&payload), None);
        assert_eq!(Stamp::read_from(&[]), None);
    }
}
