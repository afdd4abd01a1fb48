//! The people and visits Skærm schedules.

use crate::ids::{CitizenId, StaffId, TenantId, VisitId};
use crate::lifecycle::VisitStatus;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A municipality.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Its name, e.g. "Aabenraa Kommune".
    pub name: String,
}

/// A staff member (bostøtte, home care, nurse…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Staff {
    /// Their id.
    pub id: StaffId,
    /// Their municipality.
    pub tenant_id: TenantId,
    /// Name shown to colleagues and citizens.
    pub display_name: String,
    /// Team, for reports.
    pub team: Option<String>,
}

/// A citizen receiving help. Only a pseudonymous display name is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Citizen {
    /// Their id.
    pub id: CitizenId,
    /// Their municipality.
    pub tenant_id: TenantId,
    /// Name shown to staff (e.g. "Karen J.").
    pub display_name: String,
}

/// The legal paragraph a visit is delivered under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LegalBasis {
    /// Serviceloven §85: socialpædagogisk støtte (bostøtte).
    #[serde(rename = "sel_85")]
    Sel85,
    /// Serviceloven §83: personlig og praktisk hjælp.
    #[serde(rename = "sel_83")]
    Sel83,
    /// Serviceloven §83a: rehabiliteringsforløb.
    #[serde(rename = "sel_83a")]
    Sel83a,
}

impl LegalBasis {
    /// Every legal basis.
    pub const ALL: [LegalBasis; 3] = [LegalBasis::Sel85, LegalBasis::Sel83, LegalBasis::Sel83a];

    /// Stored and serialised code.
    pub fn code(self) -> &'static str {
        match self {
            LegalBasis::Sel85 => "sel_85",
            LegalBasis::Sel83 => "sel_83",
            LegalBasis::Sel83a => "sel_83a",
        }
    }

    /// The code back to the value.
    pub fn from_code(code: &str) -> Option<Self> {
        LegalBasis::ALL.into_iter().find(|b| b.code() == code)
    }

    /// Danish label.
    pub fn label_da(self) -> &'static str {
        match self {
            LegalBasis::Sel85 => "SEL §85 socialpædagogisk støtte",
            LegalBasis::Sel83 => "SEL §83 personlig og praktisk hjælp",
            LegalBasis::Sel83a => "SEL §83a rehabiliteringsforløb",
        }
    }
}

/// Shortest and longest allowed visit, in minutes.
pub const DURATION_MINUTES: std::ops::RangeInclusive<u32> = 1..=480;

/// One video visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Visit {
    /// Its id.
    pub id: VisitId,
    /// Municipality.
    pub tenant_id: TenantId,
    /// Paragraph it is delivered under.
    pub legal_basis: LegalBasis,
    /// The staff member who runs it.
    pub staff_id: StaffId,
    /// The citizen it is for.
    pub citizen_id: CitizenId,
    /// Planned start.
    pub planned_start: DateTime<Utc>,
    /// Planned length.
    pub duration_minutes: u32,
    /// Where in its lifecycle it is.
    pub status: VisitStatus,
    /// When it actually started.
    pub actual_start: Option<DateTime<Utc>>,
    /// When it actually ended.
    pub actual_end: Option<DateTime<Utc>>,
}

impl Visit {
    /// Planned end.
    pub fn planned_end(&self) -> DateTime<Utc> {
        self.planned_start + Duration::minutes(i64::from(self.duration_minutes))
    }
}

/// What is needed to plan a visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVisit {
    /// Municipality (must match staff's and citizen's).
    pub tenant_id: TenantId,
    /// Paragraph.
    pub legal_basis: LegalBasis,
    /// Staff member.
    pub staff_id: StaffId,
    /// Citizen.
    pub citizen_id: CitizenId,
    /// Planned start.
    pub planned_start: DateTime<Utc>,
    /// Planned length in minutes (1–480).
    pub duration_minutes: u32,
}
