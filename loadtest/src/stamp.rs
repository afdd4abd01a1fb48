//! The trailer every synthetic payload carries: which stream it belongs to, its sequence in that
//! stream and when the generator sent it (nanoseconds on the generator's one monotonic clock).
//! It sits at the end of the payload so codec headers (the VP8 payload descriptor) stay in front.

/// Bytes the trailer takes at the end of a payload.
pub const STAMP_LEN: usize = 20;
const MAGIC: [u8; 4] = *b"SKLT";

/// A stream: one publisher's audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Opus-like, 50 packets/s.
    Audio,
    /// VP8-like frames.
    Video,
}

impl StreamId {
    /// The stream of `participant`'s `kind`.
    pub fn of(participant: u32, kind: Kind) -> StreamId {
        StreamId(participant * 2 + u32::from(kind == Kind::Video))
    }

    /// The publishing participant.
    #[cfg_attr(not(test), expect(dead_code, reason = "tests read stamps back"))]
    pub fn participant(self) -> u32 {
        self.0 / 2
    }

    /// Audio or video.
    #[cfg_attr(not(test), expect(dead_code, reason = "tests read stamps back"))]
    pub fn kind(self) -> Kind {
        if self.0 % 2 == 1 {
            Kind::Video
        } else {
            Kind::Audio
        }
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
