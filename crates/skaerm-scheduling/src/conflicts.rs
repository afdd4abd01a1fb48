//! Double-booking: a staff member (owner or co-host) cannot be in two visits at once, with a
//! configurable buffer between visits. The rule is a pure function; the store applies it
//! inside the writing transaction.

use chrono::{DateTime, Duration, Utc};

/// Scheduling rules a municipality configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulingRules {
    /// Minimum free time between two visits of the same staff member.
    pub buffer: Duration,
    /// How far ahead series occurrences are materialised as visits.
    pub horizon: Duration,
    /// Most occurrences one series materialises at a time.
    pub max_occurrences: u16,
}

impl Default for SchedulingRules {
    fn default() -> Self {
        SchedulingRules {
            buffer: Duration::zero(),
            horizon: Duration::days(84),
            max_occurrences: 200,
        }
    }
}

/// Whether `[a_start, a_end)` and `[b_start, b_end)` come closer than `buffer`.
pub fn too_close(
    a: (DateTime<Utc>, DateTime<Utc>),
    b: (DateTime<Utc>, DateTime<Utc>),
    buffer: Duration,
) -> bool {
    a.0 < b.1 + buffer && b.0 < a.1 + buffer
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap()
    }

    #[test]
    fn overlap_and_touching() {
        let none = Duration::zero();
        assert!(too_close(
            (at(9, 0), at(9, 15)),
            (at(9, 10), at(9, 20)),
            none
        ));
        assert!(too_close(
            (at(9, 10), at(9, 20)),
            (at(9, 0), at(9, 15)),
            none
        ));
        // One inside the other.
        assert!(too_close(
            (at(9, 0), at(10, 0)),
            (at(9, 10), at(9, 20)),
            none
        ));
        // Back to back is fine without a buffer.
        assert!(!too_close(
            (at(9, 0), at(9, 15)),
            (at(9, 15), at(9, 30)),
            none
        ));
        assert!(!too_close(
            (at(9, 15), at(9, 30)),
            (at(9, 0), at(9, 15)),
            none
        ));
    }

    #[test]
    fn the_buffer_keeps_visits_apart() {
        let five = Duration::minutes(5);
        assert!(too_close(
            (at(9, 0), at(9, 15)),
            (at(9, 19), at(9, 30)),
            five
        ));
        assert!(too_close(
            (at(9, 19), at(9, 30)),
            (at(9, 0), at(9, 15)),
            five
        ));
        assert!(!too_close(
            (at(9, 0), at(9, 15)),
            (at(9, 20), at(9, 30)),
            five
        ));
    }
}
