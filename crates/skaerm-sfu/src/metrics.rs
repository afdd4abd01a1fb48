//! The relay's Prometheus metrics.
//!
//! Media workers count on plain integers ([`crate::media::counters::Counters`]) and publish the
//! difference here periodically, so the packet path never touches a shared atomic.

use crate::media::counters::{Counters, DropReason};
use crate::protocol::ErrorCode;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Handles to every relay metric.
#[derive(Clone)]
pub struct RelayMetrics {
    /// Rooms with at least one participant.
    pub rooms: IntGauge,
    /// Participants (media connections).
    pub participants: IntGauge,
    /// Participants in a waiting room, waiting for a host to admit them.
    pub waiting: IntGauge,
    /// Open signalling sessions.
    pub sessions: IntGauge,
    /// Datagrams received.
    pub packets_in: IntCounter,
    /// Bytes received.
    pub bytes_in: IntCounter,
    /// Datagrams sent.
    pub packets_out: IntCounter,
    /// Bytes sent.
    pub bytes_out: IntCounter,
    /// RTP packets forwarded publisher → subscriber.
    pub packets_forwarded: IntCounter,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests: IntCounter,
    /// NACKs received from subscribers.
    pub nacks_received: IntCounter,
    /// Audio-only fallbacks entered.
    pub video_pauses: IntCounter,
    /// Audio-only fallbacks left.
    pub video_resumes: IntCounter,
    /// Drops by reason.
    pub dropped: IntCounterVec,
    /// Joins by result (`ok` or an error code).
    pub joins: IntCounterVec,
    /// Signalling errors sent, by code.
    pub signalling_errors: IntCounterVec,
}

impl RelayMetrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let counter_vec =
            |name: &str, help: &str, label: &str| -> prometheus::Result<IntCounterVec> {
                let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let metrics = RelayMetrics {
            rooms: gauge("skaerm_rooms_active", "Rooms with at least one participant")?,
            participants: gauge(
                "skaerm_participants",
                "Participants with a media connection",
            )?,
            waiting: gauge(
                "skaerm_participants_waiting",
                "Participants in a waiting room, not yet admitted by a host",
            )?,
            sessions: gauge("skaerm_signalling_sessions", "Open signalling WebSockets")?,
            packets_in: counter("skaerm_udp_packets_in_total", "Datagrams received")?,
            bytes_in: counter("skaerm_udp_bytes_in_total", "Bytes received")?,
            packets_out: counter("skaerm_udp_packets_out_total", "Datagrams sent")?,
            bytes_out: counter("skaerm_udp_bytes_out_total", "Bytes sent")?,
            packets_forwarded: counter(
                "skaerm_rtp_packets_forwarded_total",
                "RTP packets forwarded from a publisher to a subscriber",
            )?,
            keyframe_requests: counter(
                "skaerm_keyframe_requests_total",
                "Keyframe requests (PLI) sent to publishers",
            )?,
            nacks_received: counter(
                "skaerm_nacks_received_total",
                "RTCP NACKs received from subscribers (answered from the send cache)",
            )?,
            video_pauses: counter(
                "skaerm_video_pauses_total",
                "Subscribers switched to audio only for low bandwidth",
            )?,
            video_resumes: counter(
                "skaerm_video_resumes_total",
                "Subscribers whose video resumed after a low-bandwidth pause",
            )?,
            dropped: counter_vec(
                "skaerm_packets_dropped_total",
                "Packets and messages dropped, by reason",
                "reason",
            )?,
            joins: counter_vec("skaerm_joins_total", "Join attempts by result", "result")?,
            signalling_errors: counter_vec(
                "skaerm_signalling_errors_total",
                "Signalling errors sent to clients, by code",
                "code",
            )?,
        };
        // Make every drop reason visible from the start, at zero.
        for reason in DropReason::ALL {
            metrics.dropped.with_label_values(&[reason.as_str()]);
        }
        Ok(metrics)
    }

    /// Publishes what a worker counted since `previous`.
    pub(crate) fn publish(&self, previous: &Counters, now: &Counters) {
        let add = |c: &IntCounter, before: u64, after: u64| c.inc_by(after.saturating_sub(before));
        add(&self.packets_in, previous.datagrams_in, now.datagrams_in);
        add(&self.bytes_in, previous.bytes_in, now.bytes_in);
        add(&self.packets_out, previous.datagrams_out, now.datagrams_out);
        add(&self.bytes_out, previous.bytes_out, now.bytes_out);
        add(
            &self.packets_forwarded,
            previous.rtp_forwarded,
            now.rtp_forwarded,
        );
        add(
            &self.keyframe_requests,
            previous.keyframe_requests,
            now.keyframe_requests,
        );
        add(
            &self.nacks_received,
            previous.nacks_received,
            now.nacks_received,
        );
        add(&self.video_pauses, previous.video_pauses, now.video_pauses);
        add(
            &self.video_resumes,
            previous.video_resumes,
            now.video_resumes,
        );
        for reason in DropReason::ALL {
            let delta = now.drops(reason).saturating_sub(previous.drops(reason));
            if delta > 0 {
                self.dropped
                    .with_label_values(&[reason.as_str()])
                    .inc_by(delta);
            }
        }
    }

    /// Counts a signalling error sent to a client.
    pub(crate) fn signalling_error(&self, code: ErrorCode) {
        self.signalling_errors
            .with_label_values(&[code.as_str()])
            .inc();
    }
}
