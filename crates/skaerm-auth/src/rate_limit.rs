//! A keyed fixed-window rate limiter with a hard bound on the number of keys, and time as an
//! input.
//!
//! Used against brute force: login attempts per client address, citizen-link exchanges per
//! address and per link. `governor` was considered; its keyed store grows until the owner
//! prunes it and its clock is a type parameter, while here the bound and a caller-given `now`
//! are the whole point, and the logic is a dozen lines.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Counts events per key in fixed windows.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    window: Duration,
    max_keys: usize,
    windows: HashMap<String, (Instant, u32)>,
}

impl RateLimiter {
    /// At most `limit` events per key per `window`, tracking at most `max_keys` keys.
    pub fn new(limit: u32, window: Duration, max_keys: usize) -> Self {
        RateLimiter {
            limit: limit.max(1),
            window,
            max_keys: max_keys.max(1),
            windows: HashMap::new(),
        }
    }

    /// Records one event for `key` at `now`. `Err(wait)` when over the limit: try again after
    /// `wait`.
    pub fn check(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        if !self.windows.contains_key(key) && self.windows.len() >= self.max_keys {
            self.evict(now);
        }
        let entry = self.windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err(self.window.saturating_sub(now.duration_since(entry.0)));
        }
        entry.1 += 1;
        Ok(())
    }

    /// Keys tracked now.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Frees room: first every expired window; if none expired, the oldest one.
    fn evict(&mut self, now: Instant) {
        let window = self.window;
        self.windows
            .retain(|_, (start, _)| now.duration_since(*start) < window);
        if self.windows.len() >= self.max_keys
            && let Some(oldest) = self
                .windows
                .iter()
                .min_by_key(|(_, (start, _))| *start)
                .map(|(k, _)| k.clone())
        {
            self.windows.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_limit_then_refuses_until_the_window_ends() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(3, Duration::from_secs(60), 10);
        for _ in 0..3 {
            assert!(l.check("ip", t0).is_ok());
        }
        assert_eq!(
            l.check("ip", t0 + Duration::from_secs(20)),
            Err(Duration::from_secs(40))
        );
        assert!(l.check("other", t0).is_ok(), "keys are independent");
        assert!(l.check("ip", t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn never_tracks_more_than_max_keys() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(1, Duration::from_secs(60), 100);
        for i in 0..10_000 {
            let _ = l.check(&i.to_string(), t0 + Duration::from_millis(i));
            assert!(l.len() <= 100);
        }
    }
}
