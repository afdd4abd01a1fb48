//! Which inbound RTCP reaches the media core.
//!
//! `rtc`'s interceptor chain ends in a terminus that drops inbound RTCP unless an interceptor
//! marked the packet for the application: by default an SFU would never see a subscriber's
//! keyframe request. [`mark_for_core`] marks the feedback the core acts on — PLI and FIR
//! (relayed to the publisher, throttled) and NACK (answered by the NACK responder further up
//! the chain; the core only counts it). Receiver reports and transport-wide feedback stay
//! inside the chain, where the report and congestion-control interceptors consume them.
//!
//! [`NackGate`] holds a subscriber's NACKs back while its video is paused for lack of
//! bandwidth (the core closes its [`NackSwitch`]): answering them would resend video the
//! subscriber no longer gets, on the very line too weak for video, and crowd out its audio.
//!
//! Both run inside the relay's one wire-most interceptor ([`crate::media::tap`]), so a NACK
//! held back never reaches the responder.

use rtc::interceptor::{Attribute, Packet, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the core wants to see this RTCP packet.
pub(crate) fn wanted(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>()
        || any.is::<FullIntraRequest>()
        || any.is::<TransportLayerNack>()
}

/// Marks an inbound message for delivery to the core when it carries feedback the core wants.
pub(crate) fn mark_for_core(msg: &mut TaggedPacket) {
    if let Packet::Rtcp(packets) = &msg.message.packet
        && packets.iter().any(|p| wanted(p.as_ref()))
    {
        msg.message.add(Attribute::DeliverToApplication);
    }
}

/// Whether a connection's inbound NACKs are answered. The core closes it while the subscriber's
/// video is paused and opens it on resume; the connection's [`NackGate`] reads it. One relaxed
/// atomic per connection, used inside one worker.
#[derive(Debug, Clone, Default)]
pub(crate) struct NackSwitch(Arc<AtomicBool>);

impl NackSwitch {
    /// Holds NACKs back (`true`) or lets them through to the responder (`false`).
    pub(crate) fn set_closed(&self, closed: bool) {
        self.0.store(closed, Ordering::Relaxed);
    }

    fn is_closed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Drops inbound NACKs while its [`NackSwitch`] is closed; everything else passes untouched.
#[derive(Debug)]
pub(crate) struct NackGate {
    switch: NackSwitch,
}

impl NackGate {
    /// A gate, open, and the switch that closes it.
    pub(crate) fn new() -> (NackGate, NackSwitch) {
        let switch = NackSwitch::default();
        (
            NackGate {
                switch: switch.clone(),
            },
            switch,
        )
    }

    /// Takes the NACKs out of an inbound message while the gate is closed. Returns whether the
    /// message is still worth passing on (an RTCP list emptied here is dropped unless it
    /// carries attributes).
    pub(crate) fn admit(&self, msg: &mut TaggedPacket) -> bool {
        if self.switch.is_closed()
            && let Packet::Rtcp(packets) = &mut msg.message.packet
            && packets
                .iter()
                .any(|p| p.as_any().is::<TransportLayerNack>())
        {
            packets.retain(|p| !p.as_any().is::<TransportLayerNack>());
            // An empty RTCP list is an attribute carrier: keep it only if it carries some.
            return !(packets.is_empty() && msg.message.attributes.is_empty());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::shared::TransportContext;
    use std::time::Instant;

    fn rtcp(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        }
    }

    fn through(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        let mut msg = rtcp(packets);
        mark_for_core(&mut msg);
        msg
    }

    #[test]
    fn keyframe_requests_and_nacks_are_marked_reports_are_not() {
        let pli = through(vec![Box::new(PictureLossIndication::default())]);
        assert!(pli.message.has(&Attribute::DeliverToApplication));
        let nack = through(vec![
            Box::new(ReceiverReport::default()),
            Box::new(TransportLayerNack::default()),
        ]);
        assert!(nack.message.has(&Attribute::DeliverToApplication));
        let rr = through(vec![Box::new(ReceiverReport::default())]);
        assert!(!rr.message.has(&Attribute::DeliverToApplication));
    }

    fn gated(gate: &NackGate, packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> Option<TaggedPacket> {
        let mut msg = rtcp(packets);
        gate.admit(&mut msg).then_some(msg)
    }

    fn kinds(msg: &TaggedPacket) -> (usize, usize) {
        let Packet::Rtcp(packets) = &msg.message.packet else {
            unreachable!()
        };
        let nacks = packets
            .iter()
            .filter(|p| p.as_any().is::<TransportLayerNack>())
            .count();
        (nacks, packets.len() - nacks)
    }

    #[test]
    fn an_open_gate_lets_nacks_through() {
        let (gate, _switch) = NackGate::new();
        let msg = gated(&gate, vec![Box::new(TransportLayerNack::default())]);
        assert_eq!(msg.as_ref().map(kinds), Some((1, 0)));
    }

    #[test]
    fn a_closed_gate_holds_nacks_back_and_passes_the_rest() {
        let (gate, switch) = NackGate::new();
        switch.set_closed(true);
        assert!(
            gated(&gate, vec![Box::new(TransportLayerNack::default())]).is_none(),
            "a lone NACK is dropped"
        );
        let compound = gated(
            &gate,
            vec![
                Box::new(ReceiverReport::default()),
                Box::new(TransportLayerNack::default()),
                Box::new(PictureLossIndication::default()),
            ],
        );
        assert_eq!(
            compound.as_ref().map(kinds),
            Some((0, 2)),
            "the report and the PLI pass"
        );

        switch.set_closed(false);
        let msg = gated(&gate, vec![Box::new(TransportLayerNack::default())]);
        assert_eq!(msg.as_ref().map(kinds), Some((1, 0)), "reopened");
    }

    #[test]
    fn a_closed_gate_keeps_attributes_of_an_emptied_packet() {
        let (gate, switch) = NackGate::new();
        switch.set_closed(true);
        let mut message =
            AttributedPacket::new(Packet::Rtcp(vec![Box::new(TransportLayerNack::default())]));
        message.add(Attribute::DeliverToApplication);
        let mut msg = TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message,
        };
        let kept = gate.admit(&mut msg).then_some(msg);
        assert!(
            kept.as_ref()
                .is_some_and(|m| m.message.has(&Attribute::DeliverToApplication))
        );
        assert_eq!(kept.as_ref().map(kinds), Some((0, 0)));
    }
}
