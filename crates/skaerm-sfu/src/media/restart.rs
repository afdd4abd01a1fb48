//! How often one participant may make the relay restart ICE: a token bucket per connection.
//!
//! An ICE restart costs the relay a new offer, fresh credentials and a new round of checks, so
//! a client cannot ask for one in a loop: a few at once (a flaky network), then one per refill
//! interval. Refusals are counted by the core and answered with `rate_limited`.

use std::time::{Duration, Instant};

/// Restarts allowed at once.
pub(crate) const RESTART_BURST: u32 = 3;
/// One more restart becomes available after this long.
pub(crate) const RESTART_REFILL: Duration = Duration::from_secs(10);

/// The restart allowance of one connection.
#[derive(Debug, Clone)]
pub(crate) struct RestartBudget {
    tokens: u32,
    /// When the next token is added (only meaningful below the burst).
    refill_at: Instant,
}

impl RestartBudget {
    /// A full budget at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        RestartBudget {
            tokens: RESTART_BURST,
            refill_at: now + RESTART_REFILL,
        }
    }

    /// Takes one restart if the budget allows it at `now`.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        while self.tokens < RESTART_BURST && now >= self.refill_at {
            self.tokens += 1;
            self.refill_at += RESTART_REFILL;
        }
        if self.tokens == RESTART_BURST {
            // A full bucket does not bank time: the refill clock starts at the first use.
            self.refill_at = now + RESTART_REFILL;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_refill_interval() {
        let t0 = Instant::now();
        let mut b = RestartBudget::new(t0);
        for _ in 0..RESTART_BURST {
            assert!(b.allow(t0));
        }
        assert!(!b.allow(t0), "the burst is spent");
        assert!(!b.allow(t0 + RESTART_REFILL - Duration::from_millis(1)));
        assert!(b.allow(t0 + RESTART_REFILL), "one token came back");
        assert!(!b.allow(t0 + RESTART_REFILL));
        // A long quiet spell refills to the burst, never beyond.
        let later = t0 + RESTART_REFILL * 100;
        for _ in 0..RESTART_BURST {
            assert!(b.allow(later));
        }
        assert!(!b.allow(later));
    }

    #[test]
    fn a_loop_of_requests_gets_a_bounded_number() {
        let t0 = Instant::now();
        let mut b = RestartBudget::new(t0);
        // Asking every 100 ms for a minute.
        let granted = (0..600)
            .filter(|i| b.allow(t0 + Duration::from_millis(100 * i)))
            .count();
        assert_eq!(
            granted,
            RESTART_BURST as usize + 5,
            "burst plus one per 10 s"
        );
    }
}
