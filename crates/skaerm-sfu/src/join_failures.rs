//! Joins that failed, by reason: a Prometheus counter (`skaerm_join_failures_total{reason}`)
//! and a bounded per-minute ring for "the last hour" on the ops page.
//!
//! [`JoinFailureLog`] is a plain state machine of instants (60 buckets, one per minute, no
//! allocation after the first hour). [`JoinFailures`] is the shared handle signalling and the
//! media workers record into; a failed join is rare and never on the packet path, so a short
//! mutex is fine there.

use crate::protocol::ErrorCode;
use prometheus::{IntCounterVec, Opts, Registry};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Minutes kept.
const MINUTES: u64 = 60;

/// Why a join failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JoinFailure {
    /// Forged, malformed or foreign token.
    TokenInvalid,
    /// Expired or not yet valid token.
    TokenExpired,
    /// Valid token, but no access now (visit over, link revoked, wrong room).
    Forbidden,
    /// The client speaks another protocol version.
    UnsupportedProtocol,
    /// The room had reached its participant limit.
    RoomFull,
    /// A worker was overloaded or admission could not be checked.
    ServerBusy,
    /// The media connection failed (ICE or DTLS broke).
    MediaFailed,
    /// The media connection never came up: no ICE/DTLS within the relay's limit after joining
    /// (typically UDP blocked on the participant's network).
    IceTimeout,
    /// A server fault while joining.
    Internal,
}

impl JoinFailure {
    /// All reasons, for metric labels.
    pub const ALL: [JoinFailure; 9] = [
        JoinFailure::TokenInvalid,
        JoinFailure::TokenExpired,
        JoinFailure::Forbidden,
        JoinFailure::UnsupportedProtocol,
        JoinFailure::RoomFull,
        JoinFailure::ServerBusy,
        JoinFailure::MediaFailed,
        JoinFailure::IceTimeout,
        JoinFailure::Internal,
    ];

    /// The join failure a protocol error code stands for, if it is one.
    pub fn from_code(code: ErrorCode) -> Option<JoinFailure> {
        Some(match code {
            ErrorCode::TokenInvalid => JoinFailure::TokenInvalid,
            ErrorCode::TokenExpired => JoinFailure::TokenExpired,
            ErrorCode::Forbidden => JoinFailure::Forbidden,
            ErrorCode::UnsupportedProtocol => JoinFailure::UnsupportedProtocol,
            ErrorCode::RoomFull => JoinFailure::RoomFull,
            ErrorCode::ServerBusy => JoinFailure::ServerBusy,
            ErrorCode::MediaFailed => JoinFailure::MediaFailed,
            ErrorCode::Internal => JoinFailure::Internal,
            _ => return None,
        })
    }

    /// Label and JSON key.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinFailure::TokenInvalid => "token_invalid",
            JoinFailure::TokenExpired => "token_expired",
            JoinFailure::Forbidden => "forbidden",
            JoinFailure::UnsupportedProtocol => "unsupported_protocol",
            JoinFailure::RoomFull => "room_full",
            JoinFailure::ServerBusy => "server_busy",
            JoinFailure::MediaFailed => "media_failed",
            JoinFailure::IceTimeout => "ice_timeout",
            JoinFailure::Internal => "internal",
        }
    }

    fn index(self) -> usize {
        JoinFailure::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or_default()
    }
}

/// Failures per minute over the last hour.
#[derive(Debug, Clone)]
pub struct JoinFailureLog {
    origin: Instant,
    /// (minute since origin, counts by reason), oldest first, at most [`MINUTES`].
    buckets: VecDeque<(u64, [u32; JoinFailure::ALL.len()])>,
}

impl JoinFailureLog {
    /// An empty log whose minutes count from `origin`.
    pub fn new(origin: Instant) -> Self {
        JoinFailureLog {
            origin,
            buckets: VecDeque::with_capacity(MINUTES as usize),
        }
    }

    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / 60
    }

    /// Counts one failure at `now`.
    pub fn record(&mut self, now: Instant, reason: JoinFailure) {
        let minute = self.minute(now);
        self.expire(minute);
        match self.buckets.back_mut() {
            Some((m, counts)) if *m == minute => counts[reason.index()] += 1,
            _ => {
                let mut counts = [0; JoinFailure::ALL.len()];
                counts[reason.index()] = 1;
                if self.buckets.len() == MINUTES as usize {
                    self.buckets.pop_front();
                }
                self.buckets.push_back((minute, counts));
            }
        }
    }

    fn expire(&mut self, minute: u64) {
        while self
            .buckets
            .front()
            .is_some_and(|(m, _)| m + MINUTES <= minute)
        {
            self.buckets.pop_front();
        }
    }

    /// Failures by reason in the last hour (the current minute and the 59 before it); reasons
    /// with none are left out.
    pub fn last_hour(&self, now: Instant) -> BTreeMap<&'static str, u64> {
        let minute = self.minute(now);
        let mut out = BTreeMap::new();
        for (m, counts) in &self.buckets {
            if m + MINUTES <= minute {
                continue;
            }
            for reason in JoinFailure::ALL {
                let n = counts[reason.index()];
                if n > 0 {
                    *out.entry(reason.as_str()).or_insert(0) += u64::from(n);
                }
            }
        }
        out
    }
}

/// The shared recorder: the counter and the log.
#[derive(Clone)]
pub struct JoinFailures {
    counter: IntCounterVec,
    log: Arc<Mutex<JoinFailureLog>>,
}

impl JoinFailures {
    /// Registers `skaerm_join_failures_total{reason}` (every reason at zero).
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let counter = IntCounterVec::new(
            Opts::new(
                "skaerm_join_failures_total",
                "Joins that failed, by reason (refused by signalling or admission, room full, busy, media failed)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(counter.clone()))?;
        for reason in JoinFailure::ALL {
            counter.with_label_values(&[reason.as_str()]);
        }
        Ok(JoinFailures {
            counter,
            log: Arc::new(Mutex::new(JoinFailureLog::new(Instant::now()))),
        })
    }

    /// Counts one failure now.
    pub fn record(&self, reason: JoinFailure) {
        self.record_many(reason, 1);
    }

    /// Counts `n` failures now.
    pub fn record_many(&self, reason: JoinFailure, n: u64) {
        if n == 0 {
            return;
        }
        self.counter.with_label_values(&[reason.as_str()]).inc_by(n);
        if let Ok(mut log) = self.log.lock() {
            for _ in 0..n.min(10_000) {
                log.record(Instant::now(), reason);
            }
        }
    }

    /// Failures by reason in the last hour.
    pub fn last_hour(&self) -> BTreeMap<&'static str, u64> {
        self.log
            .lock()
            .map(|log| log.last_hour(Instant::now()))
            .unwrap_or_default()
    }
}

/// How long one bucket spans.
pub const BUCKET: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_reason_within_the_hour_and_forgets_older_minutes() {
        let t0 = Instant::now();
        let mut log = JoinFailureLog::new(t0);
        assert!(log.last_hour(t0).is_empty());
        log.record(t0, JoinFailure::Forbidden);
        log.record(t0 + Duration::from_secs(30), JoinFailure::Forbidden);
        log.record(t0 + Duration::from_secs(61), JoinFailure::MediaFailed);
        let at = t0 + Duration::from_secs(120);
        let counts = log.last_hour(at);
        assert_eq!(counts.get("forbidden"), Some(&2));
        assert_eq!(counts.get("media_failed"), Some(&1));
        assert_eq!(counts.len(), 2);
        // 59 minutes after the first minute: still there; at 60 the first minute is gone.
        assert_eq!(log.last_hour(t0 + BUCKET * 59).get("forbidden"), Some(&2));
        assert_eq!(log.last_hour(t0 + BUCKET * 60).get("forbidden"), None);
        assert_eq!(
            log.last_hour(t0 + BUCKET * 60).get("media_failed"),
            Some(&1)
        );
        assert!(log.last_hour(t0 + BUCKET * 61).is_empty());
    }

    #[test]
    fn the_ring_stays_bounded_under_a_steady_stream() {
        let t0 = Instant::now();
        let mut log = JoinFailureLog::new(t0);
        for minute in 0..500u32 {
            for _ in 0..3 {
                log.record(t0 + BUCKET * minute, JoinFailure::TokenExpired);
            }
        }
        assert!(log.buckets.len() <= MINUTES as usize);
        assert_eq!(
            log.last_hour(t0 + BUCKET * 499).get("token_expired"),
            Some(&180)
        );
    }

    #[test]
    fn join_codes_map_to_reasons_and_others_do_not() {
        assert_eq!(
            JoinFailure::from_code(ErrorCode::RoomFull),
            Some(JoinFailure::RoomFull)
        );
        assert_eq!(JoinFailure::from_code(ErrorCode::BadSdp), None);
        assert_eq!(JoinFailure::from_code(ErrorCode::BadMessage), None);
    }
}
