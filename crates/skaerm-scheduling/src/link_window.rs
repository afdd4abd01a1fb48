//! When a citizen's link works: from a while before the planned start (15 minutes by default,
//! as the national FHIR video-appointment profile opens the meeting URL) until the planned end
//! plus an optional grace period — and never after the visit has ended (any end state).

use crate::model::Visit;
use chrono::{DateTime, Duration, Utc};

/// The policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkWindow {
    /// How long before the planned start the link opens.
    pub opens_before: Duration,
    /// How long after the planned end the link still works.
    pub closes_after_end: Duration,
}

impl Default for LinkWindow {
    fn default() -> Self {
        LinkWindow {
            opens_before: Duration::minutes(15),
            closes_after_end: Duration::zero(),
        }
    }
}

/// Why a link does not work now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkWindowError {
    /// Too early.
    #[error("the link opens at {opens_at}")]
    NotYetOpen {
        /// When it opens.
        opens_at: DateTime<Utc>,
    },
    /// Too late, or the visit is over.
    #[error("the link has closed")]
    Closed,
}

impl LinkWindow {
    /// When the link opens for `visit`.
    pub fn opens_at(&self, visit: &Visit) -> DateTime<Utc> {
        visit.planned_start - self.opens_before
    }

    /// When the link closes for `visit` (exclusive).
    pub fn closes_at(&self, visit: &Visit) -> DateTime<Utc> {
        visit.planned_end() + self.closes_after_end
    }

    /// Whether `visit`'s link works at `now`.
    pub fn check(&self, visit: &Visit, now: DateTime<Utc>) -> Result<(), LinkWindowError> {
        if visit.status.is_final() || now >= self.closes_at(visit) {
            return Err(LinkWindowError::Closed);
        }
        let opens_at = self.opens_at(visit);
        if now < opens_at {
            return Err(LinkWindowError::NotYetOpen { opens_at });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CitizenId, StaffId, TenantId, VisitId};
    use crate::lifecycle::VisitStatus;
    use crate::model::LegalBasis;
    use chrono::TimeZone;

    fn visit() -> Visit {
        Visit {
            id: VisitId::new(),
            tenant_id: TenantId::new(),
            legal_basis: LegalBasis::Sel85,
            purpose: String::new(),
            staff_id: StaffId::new(),
            co_host_id: None,
            citizen_id: CitizenId::new(),
            planned_start: Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap(),
            duration_minutes: 15,
            status: VisitStatus::Planned,
            actual_start: None,
            actual_end: None,
            ended_by: None,
            outcome_note: None,
            series_id: None,
            occurrence_start: None,
            is_exception: false,
        }
    }

    #[test]
    fn opens_exactly_fifteen_minutes_before() {
        let w = LinkWindow::default();
        let v = visit();
        let open = Utc.with_ymd_and_hms(2026, 11, 22, 9, 45, 0).unwrap();
        assert_eq!(w.check(&v, open), Ok(()));
        assert_eq!(
            w.check(&v, open - Duration::milliseconds(1)),
            Err(LinkWindowError::NotYetOpen { opens_at: open })
        );
    }

    #[test]
    fn closes_at_the_planned_end() {
        let w = LinkWindow::default();
        let v = visit();
        let end = v.planned_end();
        assert_eq!(w.check(&v, end - Duration::milliseconds(1)), Ok(()));
        assert_eq!(w.check(&v, end), Err(LinkWindowError::Closed));
        let lenient = LinkWindow {
            closes_after_end: Duration::minutes(10),
            ..w
        };
        assert_eq!(lenient.check(&v, end + Duration::minutes(9)), Ok(()));
    }

    #[test]
    fn an_ended_visit_closes_the_link_at_once() {
        let w = LinkWindow::default();
        for status in VisitStatus::ALL.into_iter().filter(|s| s.is_final()) {
            let mut v = visit();
            v.status = status;
            assert_eq!(w.check(&v, v.planned_start), Err(LinkWindowError::Closed));
        }
    }
}
