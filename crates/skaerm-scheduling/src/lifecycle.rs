//! A visit's lifecycle as a pure function: which events move it from which state to which.
//!
//! `planned → in_progress → completed`. Starting a visit that is already in progress is
//! allowed and changes nothing (staff may reload the call page); nothing leaves `completed`.

use serde::{Deserialize, Serialize};

/// Where a visit is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitStatus {
    /// Planned, not started.
    Planned,
    /// Staff started it.
    InProgress,
    /// Staff ended it.
    Completed,
}

/// Something that happens to a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitEvent {
    /// Staff start the visit.
    Start,
    /// Staff end the visit.
    Complete,
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
    pub const ALL: [VisitStatus; 3] = [
        VisitStatus::Planned,
        VisitStatus::InProgress,
        VisitStatus::Completed,
    ];

    /// The state after `event`, or why it is refused.
    pub fn apply(self, event: VisitEvent) -> Result<VisitStatus, IllegalTransition> {
        use VisitEvent::*;
        use VisitStatus::*;
        match (self, event) {
            (Planned | InProgress, Start) => Ok(InProgress),
            (InProgress, Complete) => Ok(Completed),
            (from, event) => Err(IllegalTransition { from, event }),
        }
    }

    /// The states from which `event` is allowed.
    pub fn sources_of(event: VisitEvent) -> Vec<VisitStatus> {
        VisitStatus::ALL
            .into_iter()
            .filter(|s| s.apply(event).is_ok())
            .collect()
    }

    /// Stored code.
    pub fn code(self) -> &'static str {
        match self {
            VisitStatus::Planned => "planned",
            VisitStatus::InProgress => "in_progress",
            VisitStatus::Completed => "completed",
        }
    }

    /// The code back to the value.
    pub fn from_code(code: &str) -> Option<Self> {
        VisitStatus::ALL.into_iter().find(|s| s.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::VisitEvent::*;
    use super::VisitStatus::*;
    use super::*;

    #[test]
    fn every_pair_follows_the_lifecycle() {
        let expected = [
            (Planned, Start, Ok(InProgress)),
            (Planned, Complete, Err(())),
            (InProgress, Start, Ok(InProgress)),
            (InProgress, Complete, Ok(Completed)),
            (Completed, Start, Err(())),
            (Completed, Complete, Err(())),
        ];
        for (from, event, want) in expected {
            let got = from.apply(event).map_err(|_| ());
            assert_eq!(got, want, "{from:?} + {event:?}");
        }
    }

    #[test]
    fn sources_are_derived_from_the_rules() {
        assert_eq!(VisitStatus::sources_of(Start), vec![Planned, InProgress]);
        assert_eq!(VisitStatus::sources_of(Complete), vec![InProgress]);
    }

    #[test]
    fn codes_round_trip() {
        for s in VisitStatus::ALL {
            assert_eq!(VisitStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(VisitStatus::from_code("nonsense"), None);
    }
}
