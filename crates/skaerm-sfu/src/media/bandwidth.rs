//! A subscriber's bandwidth: the send-side estimate and the audio-only fallback it drives.
//!
//! The estimate is `rtc`'s GCC ([`rtc::interceptor::Gcc`]) running in the congestion-control
//! interceptor of the subscriber's connection, fed by the subscriber's transport-wide feedback
//! on everything the relay sends it. [`EstimateProbe`] wraps it so the core can read the
//! current target (one relaxed atomic load; the atomic belongs to one connection inside one
//! worker, so nothing is shared across workers).
//!
//! [`Fallback`] is the decision, as a plain state machine of estimates and instants: pause the
//! subscriber's video when the estimate stays below the floor for the hold time, resume when it
//! stays at or above floor + margin for the resume hold. Audio is never part of the decision.

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Initial target: above the default floor, so a fresh connection is not paused on no evidence.
const GCC_INITIAL_BPS: f64 = 300_000.0;
/// Highest target.
const GCC_MAX_BPS: f64 = 20_000_000.0;

/// The current estimate of one connection, readable by the core.
#[derive(Debug, Clone, Default)]
pub(crate) struct Estimate(Arc<AtomicU64>);

impl Estimate {
    /// Bits per second, or `None` before the first transport-wide feedback.
    pub(crate) fn get(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            bps => Some(bps),
        }
    }

    fn set(&self, bps: f64) {
        self.0.store((bps.max(1.0)) as u64, Ordering::Relaxed);
    }
}

/// GCC, publishing its target to an [`Estimate`] after each feedback.
pub(crate) struct EstimateProbe {
    gcc: Gcc,
    estimate: Estimate,
}

impl EstimateProbe {
    /// A probe and the handle to read it. The estimate never goes below `min_bps`: half the
    /// fallback floor keeps a collapse visible while letting recovery start from close by
    /// (GCC climbs ~5% per 200 ms on a clean path).
    pub(crate) fn new(min_bps: u64) -> (EstimateProbe, Estimate) {
        let estimate = Estimate::default();
        let min = (min_bps as f64).clamp(10_000.0, GCC_INITIAL_BPS);
        (
            EstimateProbe {
                gcc: Gcc::new(GCC_INITIAL_BPS, min, GCC_MAX_BPS),
                estimate: estimate.clone(),
            },
            estimate,
        )
    }
}

impl BandwidthEstimator for EstimateProbe {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.gcc.on_reports(now, reports);
        if !reports.is_empty() {
            self.estimate.set(self.gcc.target_bitrate());
        }
    }

    fn target_bitrate(&self) -> f64 {
        self.gcc.target_bitrate()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.gcc.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.gcc.poll_timeout()
    }

    fn stats(&self) -> EstimatorStats {
        self.gcc.stats()
    }
}

/// When to fall back to audio only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackPolicy {
    /// Below this estimate (bits/s) video is at risk.
    pub floor_bps: u64,
    /// Video resumes only at or above `floor_bps + resume_margin_bps` (hysteresis).
    pub resume_margin_bps: u64,
    /// How long the estimate must stay below the floor before video pauses.
    pub pause_after: Duration,
    /// How long it must stay above floor + margin before video resumes.
    pub resume_after: Duration,
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        FallbackPolicy {
            floor_bps: 150_000,
            resume_margin_bps: 100_000,
            pause_after: Duration::from_secs(2),
            resume_after: Duration::from_secs(3),
        }
    }
}

/// A change of the fallback state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Stop forwarding video to the subscriber.
    Pause,
    /// Forward video again (and ask the publishers for a keyframe).
    Resume,
}

/// The audio-only fallback of one subscriber.
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    policy: FallbackPolicy,
    paused: bool,
    /// Since when the estimate has been on the "other side" (below the floor while playing,
    /// above floor + margin while paused).
    since: Option<Instant>,
}

impl Fallback {
    pub(crate) fn new(policy: FallbackPolicy) -> Self {
        Fallback {
            policy,
            paused: false,
            since: None,
        }
    }

    /// Video to this subscriber is paused.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Takes the estimate at `now` (`None`: no feedback yet, which never pauses anything).
    pub(crate) fn update(&mut self, now: Instant, estimate: Option<u64>) -> Option<Transition> {
        let Some(bps) = estimate else {
            self.since = None;
            return None;
        };
        let (crossing, hold) = if self.paused {
            (
                bps >= self
                    .policy
                    .floor_bps
                    .saturating_add(self.policy.resume_margin_bps),
                self.policy.resume_after,
            )
        } else {
            (bps < self.policy.floor_bps, self.policy.pause_after)
        };
        if !crossing {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) < hold {
            return None;
        }
        self.since = None;
        self.paused = !self.paused;
        Some(if self.paused {
            Transition::Pause
        } else {
            Transition::Resume
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_millis(250);

    fn policy() -> FallbackPolicy {
        FallbackPolicy::default()
    }

    /// Feeds `bps` every [`STEP`] for `span`, returning the transitions with their offsets.
    fn feed(
        fallback: &mut Fallback,
        clock: &mut Instant,
        start: Instant,
        bps: Option<u64>,
        span: Duration,
    ) -> Vec<(Duration, Transition)> {
        let end = *clock + span;
        let mut out = Vec::new();
        while *clock < end {
            *clock += STEP;
            if let Some(t) = fallback.update(*clock, bps) {
                out.push((*clock - start, t));
            }
        }
        out
    }

    #[test]
    fn pauses_only_after_the_estimate_stays_below_the_floor_for_the_hold() {
        let start = Instant::now();
        let mut clock = start;
        let mut f = Fallback::new(policy());
        assert!(
            feed(
                &mut f,
                &mut clock,
                start,
                Some(600_000),
                Duration::from_secs(2)
            )
            .is_empty()
        );
        // Dips shorter than the hold, broken by a good sample, never pause.
        for _ in 0..3 {
            assert!(
                feed(
                    &mut f,
                    &mut clock,
                    start,
                    Some(100_000),
                    Duration::from_millis(1500)
                )
                .is_empty()
            );
            assert!(feed(&mut f, &mut clock, start, Some(400_000), STEP).is_empty());
        }
        assert!(!f.is_paused());
        let t = feed(
            &mut f,
            &mut clock,
            start,
            Some(100_000),
            Duration::from_secs(3),
        );
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].1, Transition::Pause);
        assert!(f.is_paused());
    }

    #[test]
    fn the_pause_lands_exactly_one_hold_after_the_first_low_sample() {
        let start = Instant::now();
        let mut f = Fallback::new(policy());
        assert_eq!(f.update(start, Some(100_000)), None);
        assert_eq!(
            f.update(start + Duration::from_millis(1999), Some(100_000)),
            None
        );
        assert_eq!(
            f.update(start + Duration::from_secs(2), Some(100_000)),
            Some(Transition::Pause)
        );
    }

    #[test]
    fn resumes_only_above_floor_plus_margin_for_the_resume_hold() {
        let start = Instant::now();
        let mut clock = start;
        let mut f = Fallback::new(policy());
        feed(
            &mut f,
            &mut clock,
            start,
            Some(50_000),
            Duration::from_secs(3),
        );
        assert!(f.is_paused());
        // Above the floor but inside the margin: stays paused however long it lasts.
        assert!(
            feed(
                &mut f,
                &mut clock,
                start,
                Some(200_000),
                Duration::from_secs(10)
            )
            .is_empty()
        );
        assert!(f.is_paused());
        // Above floor + margin, but interrupted before the hold: stays paused.
        assert!(
            feed(
                &mut f,
                &mut clock,
                start,
                Some(300_000),
                Duration::from_secs(2)
            )
            .is_empty()
        );
        assert!(feed(&mut f, &mut clock, start, Some(200_000), STEP).is_empty());
        let t = feed(
            &mut f,
            &mut clock,
            start,
            Some(300_000),
            Duration::from_secs(4),
        );
        assert_eq!(t.len(), 1, "{t:?}");
        assert_eq!(t[0].1, Transition::Resume);
        assert!(!f.is_paused());
    }

    #[test]
    fn no_estimate_never_pauses_and_resets_the_hold() {
        let start = Instant::now();
        let mut clock = start;
        let mut f = Fallback::new(policy());
        assert!(feed(&mut f, &mut clock, start, None, Duration::from_secs(10)).is_empty());
        feed(
            &mut f,
            &mut clock,
            start,
            Some(100_000),
            Duration::from_millis(1500),
        );
        feed(&mut f, &mut clock, start, None, STEP);
        assert!(
            feed(
                &mut f,
                &mut clock,
                start,
                Some(100_000),
                Duration::from_millis(1500)
            )
            .is_empty(),
            "the hold restarts after a gap in the evidence"
        );
    }

    #[test]
    fn the_probe_publishes_only_after_feedback() {
        let (mut probe, estimate) = EstimateProbe::new(75_000);
        assert_eq!(estimate.get(), None);
        probe.on_reports(Instant::now(), &[]);
        assert_eq!(estimate.get(), None);
    }
}
