//! The people and visits Skærm schedules: municipalities, staff, citizens (pseudonymous), the
//! legal bases a visit is delivered under, and the visit itself.

use crate::ids::{CitizenId, SeriesId, StaffId, TenantId, VisitId};
use crate::lifecycle::{READY_BEFORE, VisitStatus};
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// The time zone every visit is planned in (recurrences keep their local wall-clock time).
pub const TIME_ZONE: Tz = chrono_tz::Europe::Copenhagen;

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

/// A citizen receiving help: a pseudonymous id and a display name. Never a CPR number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Citizen {
    /// Their id.
    pub id: CitizenId,
    /// Their municipality.
    pub tenant_id: TenantId,
    /// Name shown to staff (e.g. "Karen J.").
    pub display_name: String,
}

/// The legal paragraph a visit is delivered under: a closed set.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
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
    /// Serviceloven §86: genoptræning og vedligeholdende træning.
    #[serde(rename = "sel_86")]
    Sel86,
    /// Sundhedsloven §138: hjemmesygepleje.
    #[serde(rename = "sul_138")]
    Sul138,
}

impl LegalBasis {
    /// Every legal basis.
    pub const ALL: [LegalBasis; 5] = [
        LegalBasis::Sel85,
        LegalBasis::Sel83,
        LegalBasis::Sel83a,
        LegalBasis::Sel86,
        LegalBasis::Sul138,
    ];

    /// Stored and serialised code.
    pub fn code(self) -> &'static str {
        match self {
            LegalBasis::Sel85 => "sel_85",
            LegalBasis::Sel83 => "sel_83",
            LegalBasis::Sel83a => "sel_83a",
            LegalBasis::Sel86 => "sel_86",
            LegalBasis::Sul138 => "sul_138",
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
            LegalBasis::Sel86 => "SEL §86 genoptræning",
            LegalBasis::Sul138 => "SUL §138 hjemmesygepleje",
        }
    }
}

/// Shortest and longest allowed visit, in minutes.
pub const DURATION_MINUTES: std::ops::RangeInclusive<u32> = 1..=480;

/// Longest purpose text, in characters.
pub const MAX_PURPOSE_CHARS: usize = 500;

/// Longest outcome note, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

/// Who closed a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "staff_id")]
pub enum EndedBy {
    /// A staff member.
    Staff(StaffId),
    /// Skærm itself (recovery after a crash, a lost room).
    System,
}

impl EndedBy {
    /// Stored form: the staff id or `system`.
    pub fn code(self) -> String {
        match self {
            EndedBy::Staff(id) => id.to_string(),
            EndedBy::System => "system".to_owned(),
        }
    }

    /// The stored form back.
    pub fn from_code(code: &str) -> Option<Self> {
        if code == "system" {
            return Some(EndedBy::System);
        }
        code.parse().ok().map(EndedBy::Staff)
    }
}

/// One video visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Visit {
    /// Its id.
    pub id: VisitId,
    /// Municipality.
    pub tenant_id: TenantId,
    /// Paragraph it is delivered under.
    pub legal_basis: LegalBasis,
    /// What the visit is for (free text, no CPR).
    pub purpose: String,
    /// The staff member who owns and runs it.
    pub staff_id: StaffId,
    /// A second staff member taking part, if any.
    pub co_host_id: Option<StaffId>,
    /// The citizen it is for.
    pub citizen_id: CitizenId,
    /// Planned start.
    pub planned_start: DateTime<Utc>,
    /// Planned length.
    pub duration_minutes: u32,
    /// Stored lifecycle state (see [`Visit::status_at`] for the state at an instant).
    pub status: VisitStatus,
    /// When it actually started.
    pub actual_start: Option<DateTime<Utc>>,
    /// When it actually ended.
    pub actual_end: Option<DateTime<Utc>>,
    /// Who closed it.
    pub ended_by: Option<EndedBy>,
    /// A note given with the outcome.
    pub outcome_note: Option<String>,
    /// The series it is an occurrence of.
    pub series_id: Option<SeriesId>,
    /// The occurrence's original start in its series (RFC 5545 RECURRENCE-ID).
    pub occurrence_start: Option<DateTime<Utc>>,
    /// Whether this occurrence was edited on its own ("this one").
    pub is_exception: bool,
}

impl Visit {
    /// Planned end.
    pub fn planned_end(&self) -> DateTime<Utc> {
        self.planned_start + Duration::minutes(i64::from(self.duration_minutes))
    }

    /// The lifecycle state at `now`: a planned visit is `ready` from 15 minutes before start.
    pub fn status_at(&self, now: DateTime<Utc>) -> VisitStatus {
        if self.status == VisitStatus::Planned && now >= self.planned_start - READY_BEFORE {
            VisitStatus::Ready
        } else {
            self.status
        }
    }

    /// How long it actually lasted.
    pub fn actual_duration(&self) -> Option<Duration> {
        match (self.actual_start, self.actual_end) {
            (Some(start), Some(end)) if end >= start => Some(end - start),
            _ => None,
        }
    }

    /// Every staff member booked by the visit.
    pub fn booked_staff(&self) -> Vec<StaffId> {
        let mut staff = vec![self.staff_id];
        staff.extend(self.co_host_id);
        staff
    }
}

/// What is needed to plan a visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVisit {
    /// Municipality (must match staff's and citizen's).
    pub tenant_id: TenantId,
    /// Paragraph.
    pub legal_basis: LegalBasis,
    /// What it is for.
    pub purpose: String,
    /// Staff member who owns it.
    pub staff_id: StaffId,
    /// Optional second staff member.
    pub co_host_id: Option<StaffId>,
    /// Citizen.
    pub citizen_id: CitizenId,
    /// Planned start.
    pub planned_start: DateTime<Utc>,
    /// Planned length in minutes (1–480).
    pub duration_minutes: u32,
}

impl NewVisit {
    /// The simplest visit: `staff` sees `citizen` under §85 from `planned_start` for `minutes`
    /// (what demo data and load tests seed).
    pub fn simple(
        tenant_id: TenantId,
        staff_id: StaffId,
        citizen_id: CitizenId,
        planned_start: DateTime<Utc>,
        duration_minutes: u32,
    ) -> NewVisit {
        NewVisit {
            tenant_id,
            legal_basis: LegalBasis::Sel85,
            purpose: String::new(),
            staff_id,
            co_host_id: None,
            citizen_id,
            planned_start,
            duration_minutes,
        }
    }
}

/// Checks a purpose text: bounded, and no CPR number.
pub fn check_purpose(purpose: &str) -> Result<(), String> {
    if purpose.chars().count() > MAX_PURPOSE_CHARS {
        return Err(format!(
            "purpose is longer than {MAX_PURPOSE_CHARS} characters"
        ));
    }
    check_no_cpr(purpose)
}

/// Refuses text that contains what looks like a CPR number (`DDMMYY-SSSS` or ten digits in a
/// row): citizens are known by a pseudonymous id only.
pub fn check_no_cpr(text: &str) -> Result<(), String> {
    let chars: Vec<char> = text.chars().collect();
    let digits = |s: &[char]| s.iter().all(char::is_ascii_digit);
    let not_digit = |c: Option<&char>| c.is_none_or(|c| !c.is_ascii_digit());
    for start in 0..chars.len() {
        if start > 0 && !not_digit(chars.get(start - 1)) {
            continue;
        }
        for (len, dash) in [(10usize, false), (11, true)] {
            let Some(window) = chars.get(start..start + len) else {
                continue;
            };
            let shaped = if dash {
                digits(&window[..6]) && window[6] == '-' && digits(&window[7..])
            } else {
                digits(window)
            };
            if shaped && not_digit(chars.get(start + len)) {
                return Err("the text must not contain a CPR number".into());
            }
        }
    }
    Ok(())
}

/// Checks a duration.
pub fn check_duration(minutes: u32) -> Result<(), String> {
    if !DURATION_MINUTES.contains(&minutes) {
        return Err(format!(
            "duration must be {}–{} minutes",
            DURATION_MINUTES.start(),
            DURATION_MINUTES.end()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_no_cpr;

    #[test]
    fn cpr_numbers_are_refused() {
        assert!(check_no_cpr("Borger 010190-1234 har brug for hjælp").is_err());
        assert!(check_no_cpr("0101901234").is_err());
        assert!(check_no_cpr("Medicin kl. 9, tlf. 12345678, 3 piller").is_ok());
        assert!(check_no_cpr("ordre 123456789012").is_ok());
        assert!(check_no_cpr("").is_ok());
    }
}
