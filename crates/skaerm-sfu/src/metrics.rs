//! The relay's Prometheus metrics.
//!
//! Media workers count on plain integers ([`crate::media::counters::Counters`]) and publish the
//! difference here periodically, so the packet path never touches a shared atomic.

use crate::join_failures::{JoinFailure, JoinFailures};
use crate::media::counters::{Counters, DropReason};
use crate::media::quality::{Quality, RoomQuality};
use crate::protocol::ErrorCode;
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

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
    /// ICE restarts asked for by clients, by result (`restarted`, `rate_limited`).
    pub ice_restarts: IntCounterVec,
    /// ICE checks that arrived before the client's answer, held and answered after it.
    pub early_checks_replayed: IntCounter,
    /// Drops by reason.
    pub dropped: IntCounterVec,
    /// Joins by result (`ok` or an error code).
    pub joins: IntCounterVec,
    /// Signalling errors sent, by code.
    pub signalling_errors: IntCounterVec,
    /// Client messages dropped or coalesced by the per-session rate limits, by message type.
    pub rate_limited: IntCounterVec,
    /// WebSocket upgrades refused by the caps, by reason (`per_address`, `total`).
    pub websockets_refused: IntCounterVec,
    /// Failed joins by reason (counter and last-hour log).
    pub join_failures: JoinFailures,
    /// Participants' round-trip times, one observation per participant per snapshot.
    pub rtt: Histogram,
    /// Participants' jitter, one observation per participant per snapshot.
    pub jitter: Histogram,
    /// Participants' loss (ratio 0..1), one observation per participant per snapshot.
    pub loss: Histogram,
    /// Participants by quality state (`good`, `weak`, `poor`, `unknown`).
    pub participants_by_quality: IntGaugeVec,
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
            ice_restarts: counter_vec(
                "skaerm_ice_restarts_total",
                "ICE restarts asked for by clients (restart_ice), by result",
                "result",
            )?,
            early_checks_replayed: counter(
                "skaerm_early_ice_checks_replayed_total",
                "ICE checks that arrived before the client's answer, held and fed to the connection once it was applied",
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
            rate_limited: counter_vec(
                "skaerm_signalling_rate_limited_total",
                "Client signalling messages dropped (or, for mute/publish, overtaken by a newer state) by the per-session rate limits, by message type",
                "type",
            )?,
            websockets_refused: counter_vec(
                "skaerm_websockets_refused_total",
                "Signalling WebSocket upgrades refused by the connection caps, by reason",
                "reason",
            )?,
            join_failures: JoinFailures::register(registry)?,
            rtt: histogram(
                registry,
                "skaerm_participant_rtt_seconds",
                "Round-trip time relay <-> participant (RTCP SR/RR), sampled per participant each second",
                vec![0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 1.0, 2.0],
            )?,
            jitter: histogram(
                registry,
                "skaerm_participant_jitter_seconds",
                "Interarrival jitter (worse direction), sampled per participant each second",
                vec![0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2],
            )?,
            loss: histogram(
                registry,
                "skaerm_participant_loss_ratio",
                "Fraction of packets lost (worse direction), sampled per participant each second",
                vec![0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5],
            )?,
            participants_by_quality: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "skaerm_participants_by_quality",
                        "Participants by call quality state",
                    ),
                    &["quality"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
        };
        for quality in Quality::ALL {
            metrics
                .participants_by_quality
                .with_label_values(&[quality.as_str()]);
        }
        for reason in ["per_address", "total"] {
            metrics.websockets_refused.with_label_values(&[reason]);
        }
        for result in ["restarted", "rate_limited"] {
            metrics.ice_restarts.with_label_values(&[result]);
        }
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
        self.ice_restarts
            .with_label_values(&["restarted"])
            .inc_by(now.ice_restarts.saturating_sub(previous.ice_restarts));
        self.ice_restarts
            .with_label_values(&["rate_limited"])
            .inc_by(
                now.ice_restarts_refused
                    .saturating_sub(previous.ice_restarts_refused),
            );
        add(
            &self.early_checks_replayed,
            previous.early_checks_replayed,
            now.early_checks_replayed,
        );
        self.join_failures.record_many(
            JoinFailure::IceTimeout,
            now.ice_timeouts.saturating_sub(previous.ice_timeouts),
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

    /// Observes a quality sample: each participant's RTT, jitter and loss into the histograms
    /// (no per-participant labels).
    pub(crate) fn observe_quality(&self, rooms: &[RoomQuality]) {
        for p in rooms.iter().flat_map(|r| &r.participants) {
            if let Some(ms) = p.rtt_ms {
                self.rtt.observe(ms / 1000.0);
            }
            if let Some(ms) = p.jitter_ms {
                self.jitter.observe(ms / 1000.0);
            }
            if let Some(pct) = p.loss_pct {
                self.loss.observe(pct / 100.0);
            }
        }
    }

    /// Moves the by-quality gauges from a worker's previous counts to its current ones.
    pub(crate) fn publish_quality_counts(&self, previous: &[i64; 4], now: &[i64; 4]) {
        for (i, quality) in Quality::ALL.iter().enumerate() {
            let delta = now[i] - previous[i];
            if delta != 0 {
                self.participants_by_quality
                    .with_label_values(&[quality.as_str()])
                    .add(delta);
            }
        }
    }

    /// Counts a failed join (when `code` is one a join fails with).
    pub(crate) fn join_failed(&self, code: ErrorCode) {
        if let Some(reason) = JoinFailure::from_code(code) {
            self.join_failures.record(reason);
        }
    }

    /// Counts a signalling error sent to a client.
    pub(crate) fn signalling_error(&self, code: ErrorCode) {
        self.signalling_errors
            .with_label_values(&[code.as_str()])
            .inc();
    }
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}
