//! Rewriting a publisher's RTP packet for one subscriber's leg.
//!
//! A forwarded packet keeps its payload, sequence number and timestamp but takes the
//! subscriber-side SSRC, carries the subscriber-side `mid`, and keeps only the header
//! extensions whose meaning survives forwarding (audio level, video orientation), renumbered
//! to the subscriber leg's ids. Transport-bound extensions (transport-cc, abs-send-time) and
//! m-line bound ones (rid) are dropped. The plan is computed once per subscription, so the
//! per-packet work is a few comparisons and no allocation beyond what `rtp::Packet` holds.

use bytes::Bytes;
use rtc::rtp::header::EXTENSION_PROFILE_ONE_BYTE;

/// How to turn a publisher's packet into the subscriber's.
#[derive(Debug, Clone, Default)]
pub(crate) struct RewritePlan {
    /// Subscriber-side SSRC.
    pub(crate) ssrc: u32,
    /// `(extension id, value)` of the subscriber-side mid, when negotiated.
    pub(crate) mid: Option<(u8, Bytes)>,
    /// Publisher extension id → subscriber extension id, for the forwarded extensions.
    pub(crate) extension_ids: Vec<(u8, u8)>,
    /// Payload types negotiated on the subscriber leg (bit n set = PT n allowed).
    pub(crate) payload_types: u128,
}

/// A packet this plan cannot carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RewriteRefusal {
    /// Its payload type is not negotiated on the subscriber leg.
    PayloadType(u8),
}

impl RewritePlan {
    /// Allows payload type `pt` on the subscriber leg.
    pub(crate) fn allow_payload_type(&mut self, pt: u8) {
        if pt < 128 {
            self.payload_types |= 1u128 << pt;
        }
    }

    fn allows(&self, pt: u8) -> bool {
        pt < 128 && self.payload_types & (1u128 << pt) != 0
    }

    /// Rewrites `packet` in place for the subscriber.
    pub(crate) fn apply(&self, packet: &mut rtc::rtp::Packet) -> Result<(), RewriteRefusal> {
        let header = &mut packet.header;
        if !self.allows(header.payload_type) {
            return Err(RewriteRefusal::PayloadType(header.payload_type));
        }
        header.ssrc = self.ssrc;

        let one_byte = !header.extension || header.extension_profile == EXTENSION_PROFILE_ONE_BYTE;
        header.extensions.retain_mut(|extension| {
            match self
                .extension_ids
                .iter()
                .find(|(from, _)| *from == extension.id)
            {
                Some(&(_, to)) if !(one_byte && (to > 14 || extension.payload.is_empty())) => {
                    extension.id = to;
                    true
                }
                _ => false,
            }
        });
        if let Some((id, value)) = &self.mid
            && !(one_byte && (*id > 14 || value.len() > 16))
        {
            header.extensions.push(rtc::rtp::header::Extension {
                id: *id,
                payload: value.clone(),
            });
        }
        if header.extensions.is_empty() {
            header.extension = false;
            header.extension_profile = 0;
        } else if !header.extension {
            header.extension = true;
            header.extension_profile = EXTENSION_PROFILE_ONE_BYTE;
        }
        // Marshalling pads the block to 32 bits itself; stale padding would mis-size it.
        header.extensions_padding = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::header::{EXTENSION_PROFILE_TWO_BYTE, Extension, Header};
    use rtc::shared::marshal::{Marshal, Unmarshal};

    fn packet(extensions: Vec<(u8, &'static [u8])>, profile: u16) -> rtc::rtp::Packet {
        let mut header = Header {
            version: 2,
            payload_type: 96,
            sequence_number: 7,
            timestamp: 9000,
            ssrc: 0xdead_beef,
            ..Default::default()
        };
        if !extensions.is_empty() {
            header.extension = true;
            header.extension_profile = profile;
            header.extensions = extensions
                .into_iter()
                .map(|(id, p)| Extension {
                    id,
                    payload: Bytes::from_static(p),
                })
                .collect();
        }
        rtc::rtp::Packet {
            header,
            payload: Bytes::from_static(b"media payload"),
        }
    }

    fn plan() -> RewritePlan {
        let mut plan = RewritePlan {
            ssrc: 42,
            mid: Some((3, Bytes::from_static(b"2"))),
            extension_ids: vec![(1, 5)],
            payload_types: 0,
        };
        plan.allow_payload_type(96);
        plan
    }

    fn roundtrip(p: &rtc::rtp::Packet) -> rtc::rtp::Packet {
        let raw = p.marshal().unwrap();
        rtc::rtp::Packet::unmarshal(&mut raw.clone()).unwrap()
    }

    #[test]
    fn ssrc_mid_and_extensions_are_rewritten_payload_kept() {
        // id 1 = audio level (forwarded, renumbered to 5); id 2 = transport-cc (dropped);
        // id 3 = the publisher's mid (replaced by the subscriber's).
        let mut p = packet(
            vec![(1, b"\x80"), (2, b"\x00\x01"), (3, b"0")],
            EXTENSION_PROFILE_ONE_BYTE,
        );
        plan().apply(&mut p).unwrap();
        let p = roundtrip(&p);
        assert_eq!(p.header.ssrc, 42);
        assert_eq!(p.header.sequence_number, 7);
        assert_eq!(p.header.timestamp, 9000);
        assert_eq!(&p.payload[..], b"media payload");
        assert_eq!(p.header.get_extension(5).as_deref(), Some(&b"\x80"[..]));
        assert_eq!(p.header.get_extension(3).as_deref(), Some(&b"2"[..]));
        assert_eq!(p.header.get_extension(2), None);
        assert_eq!(p.header.get_extension(1), None);
    }

    #[test]
    fn packet_without_extensions_gets_the_mid() {
        let mut p = packet(vec![], 0);
        plan().apply(&mut p).unwrap();
        let p = roundtrip(&p);
        assert_eq!(p.header.get_extension(3).as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn two_byte_profile_is_kept_and_marshals() {
        let mut p = packet(vec![(1, b""), (9, b"x")], EXTENSION_PROFILE_TWO_BYTE);
        plan().apply(&mut p).unwrap();
        let p = roundtrip(&p);
        assert_eq!(p.header.extension_profile, EXTENSION_PROFILE_TWO_BYTE);
        assert_eq!(p.header.get_extension(5).as_deref(), Some(&b""[..]));
        assert_eq!(p.header.get_extension(3).as_deref(), Some(&b"2"[..]));
    }

    #[test]
    fn unnegotiated_payload_type_is_refused() {
        let mut p = packet(vec![], 0);
        p.header.payload_type = 100;
        assert_eq!(plan().apply(&mut p), Err(RewriteRefusal::PayloadType(100)));
    }

    #[test]
    fn no_mid_and_nothing_forwarded_clears_the_extension_block() {
        let mut p = packet(vec![(2, b"\x00\x01")], EXTENSION_PROFILE_ONE_BYTE);
        let mut plan = plan();
        plan.mid = None;
        plan.apply(&mut p).unwrap();
        assert!(!p.header.extension);
        let p = roundtrip(&p);
        assert!(p.header.extensions.is_empty());
    }
}
