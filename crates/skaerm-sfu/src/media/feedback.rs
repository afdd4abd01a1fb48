//! Which inbound RTCP reaches the media core.
//!
//! `rtc`'s interceptor chain ends in a terminus that drops inbound RTCP unless an interceptor
//! marked the packet for the application: by default an SFU would never see a subscriber's
//! keyframe request. [`FeedbackTap`] sits at the application end of every relay-side chain and
//! marks the feedback the core acts on — PLI and FIR (relayed to the publisher, throttled) and
//! NACK (already answered by the NACK responder further down the chain; the core only counts
//! it). Receiver reports and transport-wide feedback stay inside the chain, where the report and
//! congestion-control interceptors consume them.

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use std::collections::VecDeque;
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
}
