//! How many signalling WebSockets the relay holds: at most so many in all and so many per
//! client address (IPv6 counted per /64, which one subscriber usually has whole). A refused
//! upgrade is answered over plain HTTP before any WebSocket exists and counted by reason. The
//! client address is the application's business (behind a trusted proxy it is not the TCP
//! peer), so it comes in from outside ([`crate::signalling::ClientIpResolver`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why an upgrade was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapRefusal {
    /// The address (or /64) already holds the most WebSockets allowed.
    PerAddress,
    /// The relay holds the most WebSockets allowed in all.
    Total,
}

impl CapRefusal {
    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CapRefusal::PerAddress => "per_address",
            CapRefusal::Total => "total",
        }
    }
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64 (an IPv4-mapped IPv6
/// address as the IPv4 address).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The open WebSockets, counted (a short lock per upgrade and per close, never per message).
#[derive(Debug, Clone)]
pub struct WebSocketCaps {
    max_total: usize,
    max_per_address: usize,
    counts: Arc<Mutex<Counts>>,
}

impl WebSocketCaps {
    /// Caps of `max_total` in all and `max_per_address` per address (0: no per-address cap).
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        WebSocketCaps {
            max_total: max_total.max(1),
            max_per_address,
            counts: Arc::default(),
        }
    }

    /// Takes a place for a WebSocket from `ip` (`None`: address unknown, only the total
    /// counts); the place is given back when the returned guard is dropped.
    pub fn acquire(&self, ip: Option<IpAddr>) -> Result<WebSocketPlace, CapRefusal> {
        let key = ip.map(address_key);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.max_total {
            return Err(CapRefusal::Total);
        }
        if let Some(key) = key
            && self.max_per_address > 0
        {
            let held = counts.by_address.get(&key).copied().unwrap_or(0);
            if held >= self.max_per_address {
                return Err(CapRefusal::PerAddress);
            }
            counts.by_address.insert(key, held + 1);
        }
        counts.total += 1;
        Ok(WebSocketPlace {
            caps: self.clone(),
            key: key.filter(|_| self.max_per_address > 0),
        })
    }

    /// WebSockets held now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

/// One held place; dropping it gives the place back.
#[derive(Debug)]
pub struct WebSocketPlace {
    caps: WebSocketCaps,
    key: Option<IpAddr>,
}

impl Drop for WebSocketPlace {
    fn drop(&mut self) {
        let mut counts = self.caps.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(key) = self.key
            && let Some(held) = counts.by_address.get_mut(&key)
        {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.by_address.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap_or_else(|_| unreachable!()))
    }

    #[test]
    fn places_are_capped_per_address_and_in_all_and_given_back() {
        let caps = WebSocketCaps::new(4, 2);
        let a1 = caps
            .acquire(ip("192.0.2.1"))
            .unwrap_or_else(|_| unreachable!());
        let _a2 = caps
            .acquire(ip("192.0.2.1"))
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(
            caps.acquire(ip("192.0.2.1")).err(),
            Some(CapRefusal::PerAddress)
        );
        // The same /64 is one address; another /64 is not.
        let _b1 = caps
            .acquire(ip("2001:db8::1"))
            .unwrap_or_else(|_| unreachable!());
        let _b2 = caps
            .acquire(ip("2001:db8::2"))
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(
            caps.acquire(ip("2001:db8::ffff:1")).err(),
            Some(CapRefusal::Total)
        );
        drop(a1);
        assert_eq!(
            caps.acquire(ip("2001:db8:0:0:ffff::3")).err(),
            Some(CapRefusal::PerAddress)
        );
        assert!(caps.acquire(ip("192.0.2.1")).is_ok());
        assert_eq!(caps.open(), 3, "the place taken just above was given back");
    }
}
