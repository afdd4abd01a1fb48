//! Which inbound RTCP reaches the media core.
//!
//! `rtc`'s interceptor chain ends in a terminus that drops inbound RTCP unless an interceptor
//! marked the packet for the application: by default an SFU would never see a subscriber's
//! keyframe request. [`FeedbackTap`] sits at the application end of every relay-side chain and
//! marks the feedback the core acts on — PLI and FIR (relayed to the publisher, throttled) and
//! NACK (already answered by the NACK responder further down the chain; the core only counts
//! it). Receiver reports and transport-wide feedback stay inside the chain, where the report and
//! congestion-control interceptors consume them.
//!
//! [`NackGate`] sits wire-side of the NACK responder and holds a subscriber's NACKs back while
//! its video is paused for lack of bandwidth (the core closes its [`NackSwitch`]): answering
//! them would resend video the subscriber no longer gets, on the very line too weak for video,
//! and crowd out its audio.

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Chain position of the tap: application-most, after every interceptor that reads RTCP.
pub(crate) const FEEDBACK_TAP_SLOT: usize = 20_000;

/// Marks keyframe requests and NACKs for delivery to the application.
#[derive(Default)]
pub(crate) struct FeedbackTap {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

/// Whether the core wants to see this RTCP packet.
pub(crate) fn wanted(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>()
        || any.is::<FullIntraRequest>()
        || any.is::<TransportLayerNack>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && packets.iter().any(|p| wanted(p.as_ref()))
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for FeedbackTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Chain position of the NACK gate: wire-side of the NACK responder ([`rtc::interceptor::Slot::NackResponder`]
/// at 4_000; inbound packets walk from the wire up), so a NACK it holds back is never answered.
pub(crate) const NACK_GATE_SLOT: usize = 3_500;

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
pub(crate) struct NackGate {
    switch: NackSwitch,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl NackGate {
    /// A gate, open, and the switch that closes it.
    pub(crate) fn new() -> (NackGate, NackSwitch) {
        let switch = NackSwitch::default();
        (
            NackGate {
                switch: switch.clone(),
                read: VecDeque::new(),
                write: VecDeque::new(),
            },
            switch,
        )
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for NackGate {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if self.switch.is_closed()
            && let Packet::Rtcp(packets) = &mut msg.message.packet
            && packets
                .iter()
                .any(|p| p.as_any().is::<TransportLayerNack>())
        {
            packets.retain(|p| !p.as_any().is::<TransportLayerNack>());
            // An empty RTCP list is an attribute carrier: keep it only if it carries some.
            if packets.is_empty() && msg.message.attributes.is_empty() {
                return Ok(());
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl Interceptor for NackGate {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::rtcp::receiver_report::ReceiverReport;
    use rtc::shared::TransportContext;

    fn through(packets: Vec<Box<dyn rtc::rtcp::Packet>>) -> TaggedPacket {
        let mut tap = FeedbackTap::default();
        tap.handle_read(TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        })
        .unwrap_or_else(|_| unreachable!());
        tap.poll_read().unwrap_or_else(|| unreachable!())
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

    fn gated(
        gate: &mut NackGate,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    ) -> Option<TaggedPacket> {
        gate.handle_read(TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtcp(packets)),
        })
        .unwrap_or_else(|_| unreachable!());
        gate.poll_read()
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
        let (mut gate, _switch) = NackGate::new();
        let msg = gated(&mut gate, vec![Box::new(TransportLayerNack::default())]);
        assert_eq!(msg.as_ref().map(kinds), Some((1, 0)));
    }

    #[test]
    fn a_closed_gate_holds_nacks_back_and_passes_the_rest() {
        let (mut gate, switch) = NackGate::new();
        switch.set_closed(true);
        assert!(
            gated(&mut gate, vec![Box::new(TransportLayerNack::default())]).is_none(),
            "a lone NACK is dropped"
        );
        let compound = gated(
            &mut gate,
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
        let msg = gated(&mut gate, vec![Box::new(TransportLayerNack::default())]);
        assert_eq!(msg.as_ref().map(kinds), Some((1, 0)), "reopened");
    }

    #[test]
    fn a_closed_gate_keeps_attributes_of_an_emptied_packet() {
        let (mut gate, switch) = NackGate::new();
        switch.set_closed(true);
        let mut message =
            AttributedPacket::new(Packet::Rtcp(vec![Box::new(TransportLayerNack::default())]));
        message.add(Attribute::DeliverToApplication);
        gate.handle_read(TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message,
        })
        .unwrap_or_else(|_| unreachable!());
        let kept = gate.poll_read();
        assert!(
            kept.as_ref()
                .is_some_and(|m| m.message.has(&Attribute::DeliverToApplication))
        );
        assert_eq!(kept.as_ref().map(kinds), Some((0, 0)));
    }
}
