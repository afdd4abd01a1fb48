//! A visit's lifecycle as a pure function: which events move it from which state to which.
//!
//! ```text
//! planned ─(15 min before start)─▶ ready ─citizen arrives─▶ waiting ─staff start─▶ in_progress
//!    │                               │  ◀─citizen leaves──    │                       │
//!    └──────── cancel ───────────────┴──────── cancel ────────┘        end(outcome) ──┴─▶
//!                         completed | no_show | technical_failure   (cancelled by cancel)
//! ```
//!
//! `ready` is reached by time alone ([`READY_BEFORE`], as the national FHIR video-appointment
//! profile opens the meeting 15 minutes early), so it is computed from the planned start rather
//! than written by a timer. Staff may start a ready visit before the citizen arrives. Starting
//! a visit in progress again, or a citizen arriving again, changes nothing (reloads). The four
//! end states are final. Recovery after a crash closes `waiting`/`in_progress` as
//! `technical_failure`.

use chrono::Duration;
use serde::{Deserialize, Serialize};

/// How long before the planned start a visit becomes ready (its link opens).
pub const READY_BEFORE: Duration = Duration::minutes(15);

/// Where a visit is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitStatus {
    /// Planned, more than 15 minutes ahead.
    Planned,
    /// The link is open; nobody is there yet.
    Ready,
    /// The citizen is present, staff have not started.
    Waiting,
    /// Staff started it.
    InProgress,
    /// Delivered.
    Completed,
    /// The citizen did not come.
    NoShow,
    /// Called off before it started.
    Cancelled,
    /// It could not be delivered because the technology failed.
    TechnicalFailure,
}

/// How staff close a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Delivered.
    Completed,
    /// The citizen did not come.
    NoShow,
    /// The technology failed.
    TechnicalFailure,
}

impl Outcome {
    /// The end state it leads to.
    pub fn status(self) -> VisitStatus {
        match self {
            Outcome::Completed => VisitStatus::Completed,
            Outcome::NoShow => VisitStatus::NoShow,
            Outcome::TechnicalFailure => VisitStatus::TechnicalFailure,
        }
    }
}

/// Something that happens to a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitEvent {
    /// The citizen joined the room.
    CitizenArrived,
    /// The citizen left before staff started.
    CitizenLeft,
    /// Staff start the visit.
    Start,
    /// Staff close the visit with an outcome.
    End(Outcome),
    /// Staff call it off before it starts.
    Cancel,
    /// The server restarted while the visit was live.
    Recover,
}

/// A transition the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from:?} visit cannot take {event:?}")]
pub struct IllegalTransition {
    /// State it was in.
    pub from: VisitStatus,
    /// What was attempted.
    pub event: VisitEvent,
}

impl VisitStatus {
    /// Every status.
    pub const ALL: [VisitStatus; 8] = [
        VisitStatus::Planned,
        VisitStatus::Ready,
        VisitStatus::Waiting,
        VisitStatus::InProgress,
        VisitStatus::Completed,
        VisitStatus::NoShow,
        VisitStatus::Cancelled,
        VisitStatus::TechnicalFailure,
    ];

    /// The state after `event`, or why it is refused.
    pub fn apply(self, event: VisitEvent) -> Result<VisitStatus, IllegalTransition> {
        use VisitEvent::*;
        use VisitStatus::*;
        match (self, event) {
            (Ready | Waiting, CitizenArrived) => Ok(Waiting),
            (InProgress, CitizenArrived) => Ok(InProgress),
            (Ready | Waiting, CitizenLeft) => Ok(Ready),
            (InProgress, CitizenLeft) => Ok(InProgress),
            (Ready | Waiting | InProgress, Start) => Ok(InProgress),
            (InProgress, End(Outcome::Completed)) => Ok(Completed),
            (
                Ready | Waiting | InProgress,
                End(outcome @ (Outcome::NoShow | Outcome::TechnicalFailure)),
            ) => Ok(outcome.status()),
            (Planned | Ready | Waiting, Cancel) => Ok(Cancelled),
            (Waiting | InProgress, Recover) => Ok(TechnicalFailure),
            (from, event) => Err(IllegalTransition { from, event }),
        }
    }

    /// Whether nothing can happen to it any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            VisitStatus::Completed
                | VisitStatus::NoShow
                | VisitStatus::Cancelled
                | VisitStatus::TechnicalFailure
        )
    }

    /// Whether it may still be moved or edited (it has not begun).
    pub fn is_movable(self) -> bool {
        matches!(self, VisitStatus::Planned | VisitStatus::Ready)
    }

    /// Whether the visit keeps its staff busy (for double-booking): everything but the end
    /// states that freed the slot (cancelled, no-show, technical failure).
    pub fn occupies_staff(self) -> bool {
        !matches!(
            self,
            VisitStatus::Cancelled | VisitStatus::NoShow | VisitStatus::TechnicalFailure
        )
    }

    /// Stored code.
    pub fn code(self) -> &'static str {
        match self {
            VisitStatus::Planned => "planned",
            VisitStatus::Ready => "ready",
            VisitStatus::Waiting => "waiting",
            VisitStatus::InProgress => "in_progress",
            VisitStatus::Completed => "completed",
            VisitStatus::NoShow => "no_show",
            VisitStatus::Cancelled => "cancelled",
            VisitStatus::TechnicalFailure => "technical_failure",
        }
    }

    /// The code back to the value.
    pub fn from_code(code: &str) -> Option<Self> {
        VisitStatus::ALL.into_iter().find(|s| s.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome as O;
    use super::VisitEvent::*;
    use super::VisitStatus::*;
    use super::*;

    const EVENTS: [VisitEvent; 8] = [
        CitizenArrived,
        CitizenLeft,
        Start,
        End(O::Completed),
        End(O::NoShow),
        End(O::TechnicalFailure),
        Cancel,
        Recover,
    ];

    /// The whole table, written out: every (state, event) pair not listed is refused.
    fn allowed() -> Vec<(VisitStatus, VisitEvent, VisitStatus)> {
        vec![
            (Ready, CitizenArrived, Waiting),
            (Waiting, CitizenArrived, Waiting),
            (InProgress, CitizenArrived, InProgress),
            (Ready, CitizenLeft, Ready),
            (Waiting, CitizenLeft, Ready),
            (InProgress, CitizenLeft, InProgress),
            (Ready, Start, InProgress),
            (Waiting, Start, InProgress),
            (InProgress, Start, InProgress),
            (InProgress, End(O::Completed), Completed),
            (Ready, End(O::NoShow), NoShow),
            (Waiting, End(O::NoShow), NoShow),
            (InProgress, End(O::NoShow), NoShow),
            (Ready, End(O::TechnicalFailure), TechnicalFailure),
            (Waiting, End(O::TechnicalFailure), TechnicalFailure),
            (InProgress, End(O::TechnicalFailure), TechnicalFailure),
            (Planned, Cancel, Cancelled),
            (Ready, Cancel, Cancelled),
            (Waiting, Cancel, Cancelled),
            (Waiting, Recover, TechnicalFailure),
            (InProgress, Recover, TechnicalFailure),
        ]
    }

    #[test]
    fn every_pair_follows_the_table() {
        let table = allowed();
        for from in VisitStatus::ALL {
            for event in EVENTS {
                let want = table
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                let got = from.apply(event);
                match want {
                    Some(to) => assert_eq!(got, Ok(to), "{from:?} + {event:?}"),
                    None => assert_eq!(
                        got,
                        Err(IllegalTransition { from, event }),
                        "{from:?} + {event:?} must be refused"
                    ),
                }
            }
        }
    }

    #[test]
    fn end_states_are_final_and_take_nothing() {
        for from in VisitStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for event in EVENTS {
                assert!(from.apply(event).is_err(), "{from:?} + {event:?}");
            }
        }
        assert!(!Planned.is_final() && !InProgress.is_final());
    }

    #[test]
    fn a_planned_visit_cannot_start_or_end_before_it_is_ready() {
        assert!(Planned.apply(Start).is_err());
        assert!(Planned.apply(End(O::Completed)).is_err());
        assert!(Ready.apply(End(O::Completed)).is_err());
    }

    #[test]
    fn codes_round_trip() {
        for s in VisitStatus::ALL {
            assert_eq!(VisitStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(VisitStatus::from_code("nonsense"), None);
    }
}
