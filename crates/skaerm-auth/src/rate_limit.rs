//! A keyed fixed-window rate limiter with a hard bound on the number of keys, and time as an
//! input.
//!
//! Used against brute force: login attempts per client address, citizen-link exchanges per
//! address and per link. `governor` was considered; its keyed store grows until the owner
//! prunes it and its clock is a type parameter, while here the bound and a caller-given `now`
//! are the whole point, and the logic is a dozen lines.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The key a client address is limited under: an IPv4 address as it is (IPv4-mapped IPv6
/// too), an IPv6 address by its /64 — one subscriber usually holds a whole /64, so limiting
/// single IPv6 addresses would give an attacker 2^64 fresh budgets.
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

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

    /// Records one event for the client address `ip`, grouped by [`address_group`].
    pub fn check_address(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        self.check(&address_group(ip).to_string(), now)
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
    fn ipv6_addresses_are_limited_by_their_64() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(2, Duration::from_secs(60), 10);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(l.check_address(ip("2001:db8:1:2::1"), t0).is_ok());
        assert!(
            l.check_address(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), t0)
                .is_ok()
        );
        assert!(
            l.check_address(ip("2001:db8:1:2:dead:beef::7"), t0)
                .is_err(),
            "a third address in the same /64 shares its budget"
        );
        assert!(
            l.check_address(ip("2001:db8:1:3::1"), t0).is_ok(),
            "next /64"
        );
        assert_eq!(
            address_group(ip("2001:db8:1:2:dead:beef::7")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(address_group(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(address_group(ip("192.0.2.7")), ip("192.0.2.7"));
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
