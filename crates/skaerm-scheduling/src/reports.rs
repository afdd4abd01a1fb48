//! Monthly numbers for management: per team and legal basis, how many visits were planned,
//! completed, missed (no-show), cancelled and lost to technical failure, the failure rate,
//! the average actual duration and the estimated driving time saved. A pure aggregation over
//! the month's visits (the store supplies them).

use crate::lifecycle::VisitStatus;
use crate::model::{LegalBasis, TIME_ZONE};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// One visit as the report sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportVisit {
    /// Team of the owning staff member.
    pub team: Option<String>,
    /// Paragraph.
    pub legal_basis: LegalBasis,
    /// Stored state.
    pub status: VisitStatus,
    /// Actual length in seconds, when it has one.
    pub duration_seconds: Option<i64>,
}

/// The numbers of one team and paragraph (or a total).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReportLine {
    /// Team (`null`: staff without a team, or the total line).
    pub team: Option<String>,
    /// Paragraph (`null` on the total line).
    pub legal_basis: Option<LegalBasis>,
    /// Its Danish label.
    pub legal_basis_label: Option<&'static str>,
    /// Visits planned in the month (every state).
    pub planned: u64,
    /// Delivered.
    pub completed: u64,
    /// The citizen did not come.
    pub no_show: u64,
    /// Called off.
    pub cancelled: u64,
    /// Lost to technical failure.
    pub technical_failure: u64,
    /// Technical failures per attempted visit (completed + no-show + technical failure).
    pub technical_failure_rate: Option<f64>,
    /// Average actual length of completed visits, in seconds.
    pub average_duration_seconds: Option<f64>,
    /// Completed visits × minutes of driving one avoided home visit saves.
    pub saved_driving_minutes: u64,
}

/// A month's report.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MonthlyReport {
    /// `YYYY-MM`.
    pub month: String,
    /// Only this team, when asked.
    pub team: Option<String>,
    /// Minutes of driving one avoided home visit is assumed to save.
    pub minutes_per_avoided_drive: u32,
    /// One line per team and paragraph, sorted.
    pub lines: Vec<ReportLine>,
    /// All lines together.
    pub total: ReportLine,
}

/// `[start, end)` of a calendar month in Copenhagen, as UTC instants.
pub fn month_bounds(year: i32, month: u32) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)?
    };
    let at = |d: NaiveDate| {
        TIME_ZONE
            .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    };
    Some((at(first)?, at(next)?))
}

#[derive(Default)]
struct Tally {
    planned: u64,
    completed: u64,
    no_show: u64,
    cancelled: u64,
    technical_failure: u64,
    duration_sum: i64,
    durations: u64,
}

impl Tally {
    fn add(&mut self, v: &ReportVisit) {
        self.planned += 1;
        match v.status {
            VisitStatus::Completed => {
                self.completed += 1;
                if let Some(d) = v.duration_seconds {
                    self.duration_sum = self.duration_sum.saturating_add(d);
                    self.durations += 1;
                }
            }
            VisitStatus::NoShow => self.no_show += 1,
            VisitStatus::Cancelled => self.cancelled += 1,
            VisitStatus::TechnicalFailure => self.technical_failure += 1,
            _ => {}
        }
    }

    fn line(&self, team: Option<String>, basis: Option<LegalBasis>, per_drive: u32) -> ReportLine {
        let attempted = self.completed + self.no_show + self.technical_failure;
        ReportLine {
            team,
            legal_basis: basis,
            legal_basis_label: basis.map(LegalBasis::label_da),
            planned: self.planned,
            completed: self.completed,
            no_show: self.no_show,
            cancelled: self.cancelled,
            technical_failure: self.technical_failure,
            technical_failure_rate: (attempted > 0)
                .then(|| self.technical_failure as f64 / attempted as f64),
            average_duration_seconds: (self.durations > 0)
                .then(|| self.duration_sum as f64 / self.durations as f64),
            saved_driving_minutes: self.completed * u64::from(per_drive),
        }
    }
}

/// Aggregates a month's visits.
pub fn aggregate(
    month: (i32, u32),
    team: Option<String>,
    visits: &[ReportVisit],
    minutes_per_avoided_drive: u32,
) -> MonthlyReport {
    let mut groups: BTreeMap<(Option<String>, LegalBasis), Tally> = BTreeMap::new();
    let mut total = Tally::default();
    for v in visits {
        groups
            .entry((v.team.clone(), v.legal_basis))
            .or_default()
            .add(v);
        total.add(v);
    }
    let lines = groups
        .into_iter()
        .map(|((team, basis), tally)| tally.line(team, Some(basis), minutes_per_avoided_drive))
        .collect();
    MonthlyReport {
        month: format!("{:04}-{:02}", month.0, month.1),
        team,
        minutes_per_avoided_drive,
        lines,
        total: total.line(None, None, minutes_per_avoided_drive),
    }
}

/// The month an instant falls in, in Copenhagen.
pub fn month_of(t: DateTime<Utc>) -> (i32, u32) {
    let local = t.with_timezone(&TIME_ZONE);
    (local.year(), local.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(team: &str, basis: LegalBasis, status: VisitStatus, secs: Option<i64>) -> ReportVisit {
        ReportVisit {
            team: Some(team.into()),
            legal_basis: basis,
            status,
            duration_seconds: secs,
        }
    }

    #[test]
    fn counts_rates_durations_and_savings_per_team_and_paragraph() {
        use LegalBasis::*;
        use VisitStatus::*;
        let visits = vec![
            v("Nord", Sel85, Completed, Some(180)),
            v("Nord", Sel85, Completed, Some(240)),
            v("Nord", Sel85, NoShow, None),
            v("Nord", Sel85, TechnicalFailure, None),
            v("Nord", Sel85, Cancelled, None),
            v("Nord", Sel85, Planned, None),
            v("Syd", Sel83, Completed, Some(600)),
        ];
        let r = aggregate((2026, 11), None, &visits, 30);
        assert_eq!(r.month, "2026-11");
        assert_eq!(r.lines.len(), 2);
        let nord = &r.lines[0];
        assert_eq!(nord.team.as_deref(), Some("Nord"));
        assert_eq!(
            (
                nord.planned,
                nord.completed,
                nord.no_show,
                nord.cancelled,
                nord.technical_failure
            ),
            (6, 2, 1, 1, 1)
        );
        assert_eq!(nord.technical_failure_rate, Some(0.25));
        assert_eq!(nord.average_duration_seconds, Some(210.0));
        assert_eq!(nord.saved_driving_minutes, 60);
        assert_eq!(r.total.planned, 7);
        assert_eq!(r.total.completed, 3);
        assert_eq!(r.total.saved_driving_minutes, 90);
        assert_eq!(r.total.average_duration_seconds, Some(340.0));
    }

    #[test]
    fn an_empty_month_has_no_rates() {
        let r = aggregate((2026, 2), None, &[], 30);
        assert!(r.lines.is_empty());
        assert_eq!(r.total.technical_failure_rate, None);
        assert_eq!(r.total.average_duration_seconds, None);
    }

    #[test]
    fn months_are_copenhagen_months() {
        let (start, end) = month_bounds(2026, 3).unwrap();
        assert_eq!(start.to_rfc3339(), "2026-02-28T23:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-03-31T22:00:00+00:00");
        let (_, end) = month_bounds(2026, 12).unwrap();
        assert_eq!(end.to_rfc3339(), "2026-12-31T23:00:00+00:00");
        assert!(month_bounds(2026, 13).is_none());
    }
}
