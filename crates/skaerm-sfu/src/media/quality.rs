//! Call quality for operations: a per-participant snapshot of what the relay already knows
//! about each connection, and the good / weak / poor verdict ops sees.
//!
//! The snapshot holds opaque ids and the role only: no display name, nothing about the person.
//! [`classify`] is a pure function of the measurements; its thresholds are below.

use crate::ids::{ParticipantId, RoomId};
use crate::protocol::RoomRole;
use serde::Serialize;
use std::time::Duration;

/// Loss at or above this (percent) is weak.
pub const WEAK_LOSS_PCT: f64 = 3.0;
/// Loss at or above this (percent) is poor: video breaks up, audio concealment is audible.
pub const POOR_LOSS_PCT: f64 = 10.0;
/// Round-trip time at or above this (ms) is weak: conversation starts to feel laggy.
pub const WEAK_RTT_MS: f64 = 200.0;
/// Round-trip time at or above this (ms) is poor: people talk over each other (ITU-T G.114
/// puts one-way delay above 200 ms as unacceptable for most users).
pub const POOR_RTT_MS: f64 = 400.0;
/// Jitter at or above this (ms) is weak.
pub const WEAK_JITTER_MS: f64 = 30.0;
/// Jitter at or above this (ms) is poor: jitter buffers grow and audio stutters.
pub const POOR_JITTER_MS: f64 = 50.0;

/// What ops sees about one participant's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Not connected yet, or nothing measured.
    Unknown,
    /// Nothing to worry about.
    Good,
    /// Noticeable: keep an eye on it.
    Weak,
    /// The visit is suffering (or video is paused for low bandwidth).
    Poor,
}

impl Quality {
    /// All states, for metric labels.
    pub const ALL: [Quality; 4] = [
        Quality::Unknown,
        Quality::Good,
        Quality::Weak,
        Quality::Poor,
    ];

    /// Label and JSON value.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Unknown => "unknown",
            Quality::Good => "good",
            Quality::Weak => "weak",
            Quality::Poor => "poor",
        }
    }
}

/// Good, weak or poor from loss (percent), round-trip time and jitter (ms) — each `None` when
/// not measured yet — and whether video to the participant is paused for low bandwidth (always
/// poor: the relay has already given up on video). The worst measurement decides.
pub fn classify(
    connected: bool,
    loss_pct: Option<f64>,
    rtt_ms: Option<f64>,
    jitter_ms: Option<f64>,
    video_paused: bool,
) -> Quality {
    if !connected {
        return Quality::Unknown;
    }
    let at_least = |value: Option<f64>, threshold: f64| value.is_some_and(|v| v >= threshold);
    if video_paused
        || at_least(loss_pct, POOR_LOSS_PCT)
        || at_least(rtt_ms, POOR_RTT_MS)
        || at_least(jitter_ms, POOR_JITTER_MS)
    {
        Quality::Poor
    } else if at_least(loss_pct, WEAK_LOSS_PCT)
        || at_least(rtt_ms, WEAK_RTT_MS)
        || at_least(jitter_ms, WEAK_JITTER_MS)
    {
        Quality::Weak
    } else {
        Quality::Good
    }
}

/// The connection state as ops sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Joined, ICE/DTLS not up yet.
    Connecting,
    /// Media can flow.
    Connected,
}

/// One participant's connection, sampled about once a second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParticipantQuality {
    /// Opaque participant id.
    pub participant_id: ParticipantId,
    /// Host (staff) or guest.
    pub role: RoomRole,
    /// Connection state.
    pub state: LinkState,
    /// The verdict.
    pub quality: Quality,
    /// Round-trip time relay ↔ participant (RTCP SR/RR, LSR/DLSR).
    pub rtt_ms: Option<f64>,
    /// The worse of the jitter the participant reports for the relay's media and the relay
    /// measures on the participant's media.
    pub jitter_ms: Option<f64>,
    /// The worse of the fraction lost either way, in percent (last receiver reports).
    pub loss_pct: Option<f64>,
    /// RTP the participant sends the relay, over the last interval.
    pub bitrate_in_kbps: f64,
    /// RTP the relay sends the participant, over the last interval.
    pub bitrate_out_kbps: f64,
    /// The relay's send-side bandwidth estimate towards the participant (GCC).
    pub estimate_kbps: Option<f64>,
    /// The simulcast layer it receives (`q`, `h`, `f`), when simulcast is on.
    pub layer: Option<&'static str>,
    /// Video to it is paused for low bandwidth (audio-only fallback).
    pub video_paused: bool,
    /// NACKs it sent the relay so far.
    pub nacks_received: u64,
    /// Keyframe requests (PLI/FIR) it sent the relay so far.
    pub keyframe_requests_received: u64,
    /// NACKs the relay sent it (for its own media) so far.
    pub nacks_sent: u64,
    /// Keyframe requests (PLI/FIR) the relay sent it so far.
    pub plis_sent: u64,
}

/// One room (a visit) on a worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomQuality {
    /// The room (the visit id).
    pub room: RoomId,
    /// Since the relay first saw someone in it (its oldest participant's join).
    #[serde(skip)]
    pub age: Duration,
    /// Everyone in it.
    pub participants: Vec<ParticipantQuality>,
}

/// Participants by quality state, in the order of [`Quality::ALL`].
pub fn quality_counts(rooms: &[RoomQuality]) -> [i64; 4] {
    let mut counts = [0i64; 4];
    for p in rooms.iter().flat_map(|r| &r.participants) {
        if let Some(i) = Quality::ALL.iter().position(|q| *q == p.quality) {
            counts[i] += 1;
        }
    }
    counts
}

/// Which rooms one quality sample covers: those whose id falls into share `index` of `of`.
/// Sampling a worker's rooms a share at a time spreads the cost of reading every connection's
/// statistics over the sampling period, so the media path never stalls for all of them at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QualitySlice {
    /// Which share, `0..of`.
    pub index: u32,
    /// Into how many shares the rooms are split.
    pub of: u32,
}

impl QualitySlice {
    /// Every room.
    pub const ALL: QualitySlice = QualitySlice { index: 0, of: 1 };

    /// Whether `room` belongs to this share.
    pub fn contains(self, room: RoomId) -> bool {
        room.0.as_u128() % u128::from(self.of.max(1)) == u128::from(self.index)
    }
}

/// Bit rate in kbit/s of `bytes` over `elapsed`.
pub(crate) fn kbps(bytes: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    (bytes as f64 * 8.0 / 1000.0 / seconds * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_room_is_in_exactly_one_share_and_the_shares_are_even() {
        let mut per_share = [0usize; 10];
        for _ in 0..1000 {
            let room = RoomId(uuid::Uuid::new_v4());
            assert!(QualitySlice::ALL.contains(room));
            let shares: Vec<u32> = (0..10)
                .filter(|&index| QualitySlice { index, of: 10 }.contains(room))
                .collect();
            assert_eq!(shares.len(), 1, "{room:?} is in {shares:?}");
            per_share[shares[0] as usize] += 1;
        }
        assert!(per_share.iter().all(|&n| n > 50), "{per_share:?}");
    }

    #[test]
    fn thresholds_decide_good_weak_and_poor() {
        let c = |loss, rtt, jitter| classify(true, loss, rtt, jitter, false);
        assert_eq!(c(None, None, None), Quality::Good);
        assert_eq!(c(Some(0.0), Some(40.0), Some(5.0)), Quality::Good);
        assert_eq!(c(Some(2.9), Some(199.0), Some(29.0)), Quality::Good);
        assert_eq!(c(Some(3.0), Some(20.0), Some(1.0)), Quality::Weak);
        assert_eq!(c(Some(0.0), Some(200.0), None), Quality::Weak);
        assert_eq!(c(None, None, Some(30.0)), Quality::Weak);
        assert_eq!(c(Some(10.0), Some(20.0), Some(1.0)), Quality::Poor);
        assert_eq!(c(Some(0.0), Some(400.0), None), Quality::Poor);
        assert_eq!(c(None, None, Some(50.0)), Quality::Poor);
        // The worst measurement wins.
        assert_eq!(c(Some(4.0), Some(500.0), Some(1.0)), Quality::Poor);
    }

    #[test]
    fn paused_video_is_poor_and_an_unconnected_link_is_unknown() {
        assert_eq!(classify(true, Some(0.0), None, None, true), Quality::Poor);
        assert_eq!(
            classify(false, Some(50.0), None, None, true),
            Quality::Unknown
        );
    }

    #[test]
    fn bit_rates_are_per_second() {
        assert_eq!(kbps(125_000, Duration::from_secs(1)), 1000.0);
        assert_eq!(kbps(125_000, Duration::from_secs(2)), 500.0);
        assert_eq!(kbps(5, Duration::ZERO), 0.0);
    }
}
