//! The relay's own interceptor: one stage, wire-most in every relay-side chain, that does the
//! relay's three per-packet jobs on the way through.
//!
//! - On the way in: the report probe reads every message ([`crate::media::rtcp_reports`]), the
//!   NACK gate takes a paused subscriber's NACKs out ([`crate::media::feedback`]), and the
//!   feedback the core acts on (PLI, FIR, NACK) is marked for delivery to it.
//! - On the way out: the report probe reads every message.
//!
//! They share one stage because every stage of `rtc`'s chain costs each packet a hop through
//! its queue in both directions, whatever the stage does: three stages were ~3 % of the
//! relay's instructions per forwarded packet for work that is a few comparisons. Wire-most is
//! where each of the three belongs: the probe sees the participant's own packets and the
//! relay's final ones (retransmissions included), a NACK held back never reaches the NACK
//! responder, and a marked packet keeps its mark up to the chain's terminus, which delivers it.

use crate::media::feedback::{NackGate, mark_for_core};
use crate::media::rtcp_reports::RtcpReportProbe;
use rtc::interceptor::{Interceptor, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use std::collections::VecDeque;
use std::time::Instant;

/// Chain position of the tap: wire-most, before congestion control (1 000).
pub(crate) const RELAY_TAP_SLOT: usize = 500;

/// The interceptor. See the module documentation.
pub(crate) struct RelayTap {
    probe: RtcpReportProbe,
    gate: NackGate,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl RelayTap {
    pub(crate) fn new(probe: RtcpReportProbe, gate: NackGate) -> RelayTap {
        RelayTap {
            probe,
            gate,
            read: VecDeque::new(),
            write: VecDeque::new(),
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RelayTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        // The probe first: it counts the NACKs the gate may hold back.
        self.probe.on_read(&msg);
        if !self.gate.admit(&mut msg) {
            return Ok(());
        }
        mark_for_core(&mut msg);
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.probe.on_write(&msg);
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for RelayTap {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.probe.bind_local(info);
    }
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        self.probe.bind_remote(info);
    }
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::{Attribute, AttributedPacket, Packet};
    use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
    use rtc::shared::TransportContext;

    fn tagged(packet: Packet) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(packet),
        }
    }

    fn rtp(ssrc: u32, payload: usize) -> Packet {
        Packet::Rtp(rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                ssrc,
                ..Default::default()
            },
            payload: vec![0u8; payload].into(),
        })
    }

    fn tap() -> (
        RelayTap,
        crate::media::feedback::NackSwitch,
        std::sync::Arc<crate::media::rtcp_reports::RtcpReportCells>,
    ) {
        let (probe, cells) = RtcpReportProbe::new();
        let (gate, switch) = NackGate::new();
        (RelayTap::new(probe, gate), switch, cells)
    }

    fn read_through(tap: &mut RelayTap, packet: Packet) -> Option<TaggedPacket> {
        tap.handle_read(tagged(packet))
            .unwrap_or_else(|_| unreachable!());
        tap.poll_read()
    }

    #[test]
    fn media_passes_both_ways_and_is_counted() {
        let (mut tap, _switch, cells) = tap();
        let inbound = read_through(&mut tap, rtp(7, 100));
        assert!(matches!(
            inbound.map(|m| m.message.packet),
            Some(Packet::Rtp(p)) if p.header.ssrc == 7 && p.payload.len() == 100
        ));
        tap.handle_write(tagged(rtp(9, 1000)))
            .unwrap_or_else(|_| unreachable!());
        assert!(matches!(
            tap.poll_write().map(|m| m.message.packet),
            Some(Packet::Rtp(p)) if p.header.ssrc == 9
        ));
        let r = cells.read();
        // A 12-byte fixed header with each payload.
        assert_eq!((r.rtp_bytes_in, r.rtp_bytes_out), (112, 1012));
        assert!(tap.poll_read().is_none() && tap.poll_write().is_none());
    }

    #[test]
    fn feedback_for_the_core_is_marked_reports_are_not() {
        let (mut tap, _switch, cells) = tap();
        let pli = read_through(
            &mut tap,
            Packet::Rtcp(vec![Box::new(PictureLossIndication::default())]),
        );
        assert!(pli.is_some_and(|m| m.message.has(&Attribute::DeliverToApplication)));
        let rr = read_through(
            &mut tap,
            Packet::Rtcp(vec![Box::new(ReceiverReport::default())]),
        );
        assert!(rr.is_some_and(|m| !m.message.has(&Attribute::DeliverToApplication)));
        assert_eq!(cells.read().keyframe_requests, 1);
    }

    #[test]
    fn a_held_back_nack_is_still_counted_but_goes_no_further() {
        let (mut tap, switch, cells) = tap();
        switch.set_closed(true);
        let nack = read_through(
            &mut tap,
            Packet::Rtcp(vec![Box::new(TransportLayerNack::default())]),
        );
        assert!(
            nack.is_none(),
            "a paused subscriber's NACK must not reach the responder"
        );
        assert_eq!(cells.read().nacks, 1);
        switch.set_closed(false);
        let nack = read_through(
            &mut tap,
            Packet::Rtcp(vec![Box::new(TransportLayerNack::default())]),
        );
        assert!(nack.is_some_and(|m| m.message.has(&Attribute::DeliverToApplication)));
    }

    #[test]
    fn feedback_the_relay_sends_is_counted() {
        let (mut tap, _switch, cells) = tap();
        tap.handle_write(tagged(Packet::Rtcp(vec![
            Box::new(TransportLayerNack::default()),
            Box::new(PictureLossIndication::default()),
            Box::new(TransportLayerNack::default()),
        ])))
        .unwrap_or_else(|_| unreachable!());
        assert!(tap.poll_write().is_some());
        let r = cells.read();
        assert_eq!((r.nacks_sent, r.keyframe_requests_sent), (2, 1));
    }
}
