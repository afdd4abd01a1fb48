//! How often a signalling session may send each kind of message: a token bucket per message
//! class, per connection. Pure (input and `now`); the session applies it before anything
//! reaches a media worker, so no client can make the worker (shared by many visits) do more
//! than a small, fixed amount of work per second on its behalf.
//!
//! A refused message is dropped and counted; the client hears `rate_limited` once per run of
//! refusals of that class (not once per message: a flood must not turn into a flood of
//! answers). State updates (`mute`, `publish`) are not refused but coalesced by the session:
//! the latest state waits for the next token and overwrites any older one still waiting, so
//! the others always end up with the sender's final state, never with a queue of its history.

use std::time::{Duration, Instant};

/// The classes of client messages, each with its own bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageClass {
    /// `candidate` (the media core also caps how many it takes per ICE session).
    Candidate,
    /// `answer`.
    Answer,
    /// `mute` and `publish` (coalesced, never refused).
    State,
    /// `restart_ice` (the media core has its own, stricter budget too).
    RestartIce,
    /// `admit` and `deny`.
    Moderation,
    /// Messages answered with an error (not JSON, unknown type, not joined, already joined…):
    /// beyond this budget they get no answer at all.
    Refused,
}

impl MessageClass {
    const COUNT: usize = 6;

    fn index(self) -> usize {
        self as usize
    }

    /// `(burst, tokens per second)` of the class.
    fn budget(self) -> (u32, u32) {
        match self {
            // A browser trickles a few per interface; restarts bring a few more.
            MessageClass::Candidate => (32, 8),
            // One per offer; offers come from the relay.
            MessageClass::Answer => (10, 2),
            // Toggling mute or camera is a human action.
            MessageClass::State => (10, 5),
            MessageClass::RestartIce => (5, 1),
            MessageClass::Moderation => (20, 5),
            MessageClass::Refused => (10, 2),
        }
    }
}

/// A token bucket: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, per_second: u32, now: Instant) -> Self {
        let capacity = f64::from(burst.max(1));
        TokenBucket {
            capacity,
            per_second: f64::from(per_second.max(1)),
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
    }

    /// Takes a token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token is there (`now` when there is one already).
    pub fn next_token_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            return now;
        }
        now + Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
    }
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle it.
    Allow,
    /// Drop it and answer `rate_limited` (the first refusal of a run).
    RefuseAndTell,
    /// Drop it silently (the client was already told).
    Refuse,
}

/// Every class's bucket of one session.
#[derive(Debug, Clone)]
pub struct SignalLimits {
    buckets: [TokenBucket; MessageClass::COUNT],
    told: [bool; MessageClass::COUNT],
}

impl SignalLimits {
    /// Full buckets for a new session.
    pub fn new(now: Instant) -> Self {
        let classes = [
            MessageClass::Candidate,
            MessageClass::Answer,
            MessageClass::State,
            MessageClass::RestartIce,
            MessageClass::Moderation,
            MessageClass::Refused,
        ];
        SignalLimits {
            buckets: classes.map(|class| {
                let (burst, per_second) = class.budget();
                TokenBucket::new(burst, per_second, now)
            }),
            told: [false; MessageClass::COUNT],
        }
    }

    /// Judges one message of `class`.
    pub fn judge(&mut self, class: MessageClass, now: Instant) -> Verdict {
        let i = class.index();
        if self.buckets[i].allow(now) {
            self.told[i] = false;
            Verdict::Allow
        } else if self.told[i] {
            Verdict::Refuse
        } else {
            self.told[i] = true;
            Verdict::RefuseAndTell
        }
    }

    /// Takes a token of `class` if there is one, without the telling of [`Self::judge`] (for
    /// coalesced state updates, which are delayed, never refused).
    pub fn take(&mut self, class: MessageClass, now: Instant) -> bool {
        self.buckets[class.index()].allow(now)
    }

    /// When a message of `class` would next be allowed.
    pub fn next_allowed_at(&mut self, class: MessageClass, now: Instant) -> Instant {
        self.buckets[class.index()].next_token_at(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_told_once_then_dropped_silently_and_the_bucket_refills() {
        let start = Instant::now();
        let mut limits = SignalLimits::new(start);
        let verdicts: Vec<Verdict> = (0..1000)
            .map(|_| limits.judge(MessageClass::Candidate, start))
            .collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::Allow).count(),
            32
        );
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| **v == Verdict::RefuseAndTell)
                .count(),
            1
        );
        // Other classes are untouched.
        assert_eq!(limits.judge(MessageClass::Answer, start), Verdict::Allow);
        let later = limits.next_allowed_at(MessageClass::Candidate, start);
        assert!(later > start && later <= start + Duration::from_millis(130));
        assert_eq!(limits.judge(MessageClass::Candidate, later), Verdict::Allow);
        // After an allowed one, the next refusal is told again.
        assert_eq!(
            limits.judge(MessageClass::Candidate, later),
            Verdict::RefuseAndTell
        );
    }
}
