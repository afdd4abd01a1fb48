//! ICE checks that reach a peer before its client's answer does.
//!
//! A client answers the relay's offer and starts its connectivity checks at once; the answer
//! travels over the WebSocket and may reach the media worker after the first checks. `rtc`'s
//! ICE agent refuses a check while it has no remote credentials (`password is empty`), and the
//! client only retries at its next check tick (200 ms in `rtc`, similar in browsers), which
//! costs a join that much. So a peer without an applied answer holds its first few checks —
//! at most [`MAX_EARLY_CHECKS`] of at most [`MAX_EARLY_CHECK_BYTES`] each, for at most
//! [`EARLY_CHECK_TTL`] — and the core feeds them to the connection right after the answer is
//! applied. Nothing is trusted while held: the agent verifies each check's integrity with the
//! peer's password when it finally reads it, as it would have on arrival.

use bytes::BytesMut;
use rtc::shared::TransportContext;
use std::time::{Duration, Instant};

/// Checks held per peer; one per candidate pair a client tries first is plenty.
pub(crate) const MAX_EARLY_CHECKS: usize = 4;
/// Largest check held (a binding request is ~100–200 bytes).
pub(crate) const MAX_EARLY_CHECK_BYTES: usize = 548;
/// How long a check is held: after this, the client's retransmission is on its way anyway.
pub(crate) const EARLY_CHECK_TTL: Duration = Duration::from_secs(1);

/// One check as it arrived.
#[derive(Debug)]
pub(crate) struct EarlyCheck {
    /// When it arrived.
    pub(crate) at: Instant,
    /// Where it came from and to which local address.
    pub(crate) transport: TransportContext,
    /// The STUN message.
    pub(crate) datagram: BytesMut,
}

/// The checks one peer holds until its answer is applied.
#[derive(Debug, Default)]
pub(crate) struct EarlyChecks {
    held: Vec<EarlyCheck>,
}

impl EarlyChecks {
    /// Holds a check. Returns how many checks were dropped doing it (expired ones, and this one
    /// when it is too big or the peer already holds [`MAX_EARLY_CHECKS`]), for counting.
    pub(crate) fn hold(&mut self, check: EarlyCheck) -> usize {
        let mut dropped = self.expire(check.at);
        if check.datagram.len() > MAX_EARLY_CHECK_BYTES || self.held.len() >= MAX_EARLY_CHECKS {
            dropped += 1;
        } else {
            self.held.push(check);
        }
        dropped
    }

    /// Takes the checks still fresh at `now`, oldest first, and how many had expired.
    pub(crate) fn release(&mut self, now: Instant) -> (Vec<EarlyCheck>, usize) {
        let expired = self.expire(now);
        (std::mem::take(&mut self.held), expired)
    }

    /// Checks held.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    fn expire(&mut self, now: Instant) -> usize {
        let before = self.held.len();
        self.held
            .retain(|c| now.saturating_duration_since(c.at) < EARLY_CHECK_TTL);
        before - self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(at: Instant, len: usize, tag: u8) -> EarlyCheck {
        EarlyCheck {
            at,
            transport: TransportContext::default(),
            datagram: BytesMut::from(&vec![tag; len][..]),
        }
    }

    #[test]
    fn checks_are_released_in_arrival_order() {
        let t0 = Instant::now();
        let mut checks = EarlyChecks::default();
        assert_eq!(checks.hold(check(t0, 100, 1)), 0);
        assert_eq!(checks.hold(check(t0 + Duration::from_millis(5), 100, 2)), 0);
        let (released, expired) = checks.release(t0 + Duration::from_millis(30));
        assert_eq!(expired, 0);
        let tags: Vec<u8> = released.iter().map(|c| c.datagram[0]).collect();
        assert_eq!(tags, vec![1, 2]);
        assert_eq!(checks.len(), 0, "released checks are gone");
    }

    #[test]
    fn at_most_a_few_small_checks_are_held() {
        let t0 = Instant::now();
        let mut checks = EarlyChecks::default();
        for i in 0..MAX_EARLY_CHECKS {
            assert_eq!(checks.hold(check(t0, 120, i as u8)), 0);
        }
        assert_eq!(
            checks.hold(check(t0, 120, 99)),
            1,
            "one too many is dropped"
        );
        assert_eq!(checks.len(), MAX_EARLY_CHECKS);

        let mut checks = EarlyChecks::default();
        assert_eq!(
            checks.hold(check(t0, MAX_EARLY_CHECK_BYTES + 1, 1)),
            1,
            "an oversized datagram is not held"
        );
        assert_eq!(checks.len(), 0);
    }

    #[test]
    fn old_checks_expire_and_are_counted() {
        let t0 = Instant::now();
        let mut checks = EarlyChecks::default();
        checks.hold(check(t0, 100, 1));
        checks.hold(check(t0 + Duration::from_millis(600), 100, 2));
        // The first one expires when a later check arrives; the room it leaves is reused.
        assert_eq!(checks.hold(check(t0 + EARLY_CHECK_TTL, 100, 3)), 1);
        assert_eq!(checks.len(), 2);
        let (released, expired) = checks.release(t0 + Duration::from_millis(1_700));
        assert_eq!(expired, 1, "the check from 600 ms has expired by 1.7 s");
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].datagram[0], 3);
    }
}
