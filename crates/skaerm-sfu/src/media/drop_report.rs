//! The log line about hostile or broken datagrams: once per interval with counts by reason,
//! never one line per datagram, and no addresses (an attacker chooses how many datagrams it
//! sends and from where; the log must not grow with it). The counts themselves are in
//! `skaerm_packets_dropped_total`.
//!
//! Ordinary churn also drops a few datagrams (a participant who left or reconnected from a new
//! address keeps sending for a moment; media arrives before its connection's keys): such a
//! line is a notice. It is a warning when something looks hostile (a forged or broken ICE
//! check, an undecodable datagram, a candidate flood) or the churn reasons exceed
//! [`CHURN_WARN_THRESHOLD`] in one interval.

use crate::media::counters::{Counters, DropReason};
use std::time::{Duration, Instant};

/// How often at most the line is written.
pub const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// More churn drops than this in one interval make the line a warning (a soak of five visits
/// cycling every 20 s with reconnects and ICE restarts drops at most ~100 a minute).
pub const CHURN_WARN_THRESHOLD: u64 = 1_000;

/// Reasons that ordinary joins, leaves, reconnects and ICE restarts produce too.
const CHURN: [DropReason; 4] = [
    DropReason::UnknownSource,
    DropReason::UnknownUfrag,
    DropReason::PeerRejected,
    DropReason::CandidateIgnored,
];

/// One line about the drops of the last interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropLine {
    /// `reason=count` pairs.
    pub counts: String,
    /// Whether it is worth a warning (see the module doc), or only a notice.
    pub alarming: bool,
}

/// Drops that mean someone sent us something wrong (as opposed to the relay's own choices
/// such as a paused video or an unselected simulcast layer).
const REPORTED: [DropReason; 8] = [
    DropReason::Malformed,
    DropReason::UnknownSource,
    DropReason::UnknownUfrag,
    DropReason::PeerRejected,
    DropReason::StunBadIntegrity,
    DropReason::StunMalformed,
    DropReason::CandidateOverLimit,
    DropReason::CandidateIgnored,
];

/// Remembers what the last line reported.
#[derive(Debug)]
pub struct DropReport {
    reported: [u64; REPORTED.len()],
    next: Instant,
}

impl DropReport {
    /// Nothing reported yet; the first line may come after one interval.
    pub fn new(now: Instant) -> Self {
        DropReport {
            reported: [0; REPORTED.len()],
            next: now + DROP_REPORT_INTERVAL,
        }
    }

    /// The line to log now, if the interval is over and something was dropped since the last
    /// one: `reason=count` pairs of the drops since then.
    pub fn due(&mut self, now: Instant, counters: &Counters) -> Option<DropLine> {
        if now < self.next {
            return None;
        }
        self.next = now + DROP_REPORT_INTERVAL;
        let mut parts = Vec::new();
        let (mut churn, mut hostile) = (0u64, 0u64);
        for (reported, reason) in self.reported.iter_mut().zip(REPORTED) {
            let total = counters.drops(reason);
            let new = total.saturating_sub(*reported);
            *reported = total;
            if new > 0 {
                parts.push(format!("{}={new}", reason.as_str()));
                if CHURN.contains(&reason) {
                    churn += new;
                } else {
                    hostile += new;
                }
            }
        }
        (!parts.is_empty()).then(|| DropLine {
            counts: parts.join(" "),
            alarming: hostile > 0 || churn > CHURN_WARN_THRESHOLD,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_counts_since_the_last() {
        let start = Instant::now();
        let mut report = DropReport::new(start);
        let mut counters = Counters::default();
        counters.drop_many(DropReason::StunBadIntegrity, 44_000);
        counters.drop_many(DropReason::VideoPaused, 5); // the relay's own choice: not reported
        assert_eq!(report.due(start + Duration::from_secs(1), &counters), None);
        let line = report.due(start + DROP_REPORT_INTERVAL, &counters);
        assert_eq!(
            line.map(|l| l.counts).as_deref(),
            Some("stun_bad_integrity=44000")
        );
        counters.drop_many(DropReason::StunBadIntegrity, 10);
        counters.drop(DropReason::Malformed);
        assert_eq!(
            report.due(
                start + DROP_REPORT_INTERVAL + Duration::from_secs(30),
                &counters
            ),
            None,
            "not again within the interval"
        );
        let line = report.due(start + 2 * DROP_REPORT_INTERVAL, &counters);
        assert_eq!(
            line.map(|l| l.counts).as_deref(),
            Some("malformed=1 stun_bad_integrity=10")
        );
        assert_eq!(
            report.due(start + 3 * DROP_REPORT_INTERVAL, &counters),
            None
        );
    }

    #[test]
    fn churn_is_a_notice_hostile_input_or_a_churn_flood_a_warning() {
        let start = Instant::now();
        let mut report = DropReport::new(start);
        let mut counters = Counters::default();
        let mut next = |counters: &Counters, n: u32| {
            report
                .due(start + DROP_REPORT_INTERVAL * n, counters)
                .expect("a line")
        };
        counters.drop_many(DropReason::UnknownSource, 75);
        counters.drop_many(DropReason::PeerRejected, 11);
        assert!(!next(&counters, 1).alarming, "a minute of ordinary churn");
        counters.drop_many(DropReason::UnknownSource, 40);
        counters.drop(DropReason::StunBadIntegrity);
        assert!(next(&counters, 2).alarming, "a forged ICE check");
        counters.drop_many(DropReason::PeerRejected, CHURN_WARN_THRESHOLD as usize + 1);
        assert!(
            next(&counters, 3).alarming,
            "garbage flooding a peer's address"
        );
    }
}
