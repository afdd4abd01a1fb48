//! Recurring visits: an RFC 5545 RRULE anchored at a local wall-clock start in
//! Europe/Copenhagen, expanded with the `rrule` crate. Occurrences keep their local time across
//! daylight-saving changes (a 09:00 weekly visit is 09:00 in both winter and summer time), so
//! their UTC instants shift by an hour at the transitions.

use crate::model::TIME_ZONE;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use rrule::{RRule, Tz, Unvalidated};

/// Why a recurrence is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecurrenceError {
    /// The RRULE does not parse or validate.
    #[error("invalid RRULE: {0}")]
    Invalid(String),
    /// Visits recur daily at most often.
    #[error("visits recur at most daily (FREQ=DAILY, WEEKLY, MONTHLY or YEARLY)")]
    TooFrequent,
    /// More occurrences a day than visits can sensibly have (BYHOUR × BYMINUTE × BYSECOND).
    #[error("at most {MAX_PER_DAY} visits a day; the rule makes {0}")]
    TooManyPerDay(usize),
    /// The local start does not exist (it falls in the spring-forward gap).
    #[error("the start {0} does not exist in Europe/Copenhagen")]
    NoSuchLocalTime(NaiveDateTime),
}

/// A recurrence: the first occurrence's local start and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    /// First occurrence, local time in Europe/Copenhagen.
    pub dtstart_local: NaiveDateTime,
    /// The RRULE value (without `RRULE:`), e.g. `FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;COUNT=10`.
    pub rrule: String,
}

const TZ: Tz = Tz::Tz(TIME_ZONE);

/// Most occurrences one day may have.
pub const MAX_PER_DAY: usize = 4;

/// Longest accepted RRULE text.
pub const MAX_RULE_LEN: usize = 300;

impl Recurrence {
    /// Parses and validates; the stored RRULE is normalised by the crate.
    pub fn new(dtstart_local: NaiveDateTime, rrule: &str) -> Result<Recurrence, RecurrenceError> {
        let rule = rrule.trim().trim_start_matches("RRULE:");
        if rule.len() > MAX_RULE_LEN {
            return Err(RecurrenceError::Invalid(format!(
                "longer than {MAX_RULE_LEN} characters"
            )));
        }
        let recurrence = Recurrence {
            dtstart_local,
            rrule: rule.to_owned(),
        };
        let parsed = recurrence.parsed()?;
        if matches!(
            parsed.get_freq(),
            rrule::Frequency::Hourly | rrule::Frequency::Minutely | rrule::Frequency::Secondly
        ) {
            return Err(RecurrenceError::TooFrequent);
        }
        let per_day = [
            parsed.get_by_hour().len(),
            parsed.get_by_minute().len(),
            parsed.get_by_second().len(),
        ]
        .into_iter()
        .map(|n| n.max(1))
        .product::<usize>();
        if per_day > MAX_PER_DAY {
            return Err(RecurrenceError::TooManyPerDay(per_day));
        }
        recurrence.rule_set()?;
        Ok(recurrence)
    }

    /// The first occurrence as an instant.
    pub fn dtstart(&self) -> Result<DateTime<Tz>, RecurrenceError> {
        TZ.from_local_datetime(&self.dtstart_local)
            .earliest()
            .ok_or(RecurrenceError::NoSuchLocalTime(self.dtstart_local))
    }

    fn parsed(&self) -> Result<RRule<Unvalidated>, RecurrenceError> {
        self.rrule
            .parse::<RRule<Unvalidated>>()
            .map_err(|e| RecurrenceError::Invalid(e.to_string()))
    }

    fn rule_set(&self) -> Result<rrule::RRuleSet, RecurrenceError> {
        let dtstart = self.dtstart()?;
        self.parsed()?
            .build(dtstart)
            .map_err(|e| RecurrenceError::Invalid(e.to_string()))
    }

    /// The COUNT of the rule, if it has one.
    pub fn count(&self) -> Option<u32> {
        self.parsed().ok().and_then(|r| r.get_count())
    }

    /// The same rule starting at `dtstart_local`, with COUNT replaced by `count` when given.
    pub fn restarted(
        &self,
        dtstart_local: NaiveDateTime,
        count: Option<u32>,
    ) -> Result<Recurrence, RecurrenceError> {
        let mut rule = self.parsed()?;
        if let Some(count) = count {
            rule = rule.count(count);
        }
        Recurrence::new(dtstart_local, &rule.to_string())
    }

    /// Occurrence starts in `[from, to)`, at most `limit` of them, earliest first.
    pub fn occurrences(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u16,
    ) -> Result<Vec<DateTime<Utc>>, RecurrenceError> {
        if to <= from {
            return Ok(Vec::new());
        }
        let set = self
            .rule_set()?
            .after(from.with_timezone(&TZ))
            .before(to.with_timezone(&TZ));
        let result = set.all(limit);
        Ok(result
            .dates
            .into_iter()
            .map(|d| d.with_timezone(&Utc))
            .filter(|d| *d >= from && *d < to)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, Timelike};

    fn local(y: i32, m: u32, d: u32, h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap()
    }

    fn local_hours(times: &[DateTime<Utc>]) -> Vec<u32> {
        times
            .iter()
            .map(|t| t.with_timezone(&TIME_ZONE).hour())
            .collect()
    }

    #[test]
    fn a_visit_every_minute_is_refused_a_few_a_day_are_not() {
        let every_minute = format!(
            "FREQ=DAILY;BYHOUR={};BYMINUTE={}",
            (0..24).map(|h| h.to_string()).collect::<Vec<_>>().join(","),
            (0..60).map(|m| m.to_string()).collect::<Vec<_>>().join(",")
        );
        // Longer than the text limit already; the per-day rule holds for short ones too.
        assert!(Recurrence::new(local(2026, 3, 2, 9), &every_minute).is_err());
        assert_eq!(
            Recurrence::new(
                local(2026, 3, 2, 9),
                "FREQ=DAILY;BYHOUR=8,9,10;BYMINUTE=0,30"
            ),
            Err(RecurrenceError::TooManyPerDay(6))
        );
        assert!(
            Recurrence::new(local(2026, 3, 2, 9), "FREQ=DAILY;BYHOUR=9,15;BYMINUTE=0,30").is_ok()
        );
    }

    #[test]
    fn weekly_09_00_stays_09_00_across_the_last_sunday_of_march() {
        // Sundays 22 and 29 March 2026 (summer time starts 29 March at 02:00) and 5 April.
        let r = Recurrence::new(local(2026, 3, 22, 9), "FREQ=WEEKLY;BYDAY=SU;COUNT=3").unwrap();
        let times = r.occurrences(utc(2026, 3, 1), utc(2026, 5, 1), 50).unwrap();
        assert_eq!(local_hours(&times), vec![9, 9, 9]);
        let utc_hours: Vec<u32> = times.iter().map(|t| t.hour()).collect();
        assert_eq!(utc_hours, vec![8, 7, 7], "UTC shifts by an hour: {times:?}");
        assert_eq!(
            times[1],
            Utc.with_ymd_and_hms(2026, 3, 29, 7, 0, 0).unwrap()
        );
    }

    #[test]
    fn weekly_09_00_stays_09_00_across_the_last_sunday_of_october() {
        // Summer time ends Sunday 25 October 2026.
        let r = Recurrence::new(local(2026, 10, 18, 9), "FREQ=WEEKLY;BYDAY=SU;COUNT=3").unwrap();
        let times = r
            .occurrences(utc(2026, 10, 1), utc(2026, 12, 1), 50)
            .unwrap();
        assert_eq!(local_hours(&times), vec![9, 9, 9]);
        assert_eq!(
            times,
            vec![
                Utc.with_ymd_and_hms(2026, 10, 18, 7, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 10, 25, 8, 0, 0).unwrap(),
                Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap(),
            ]
        );
    }

    #[test]
    fn every_other_week_on_two_weekdays_until_a_date() {
        // Monday 2 November 2026; Mondays and Thursdays every other week until 30 November.
        let r = Recurrence::new(
            local(2026, 11, 2, 10),
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;UNTIL=20261130T230000Z",
        )
        .unwrap();
        let days: Vec<u32> = r
            .occurrences(utc(2026, 10, 1), utc(2027, 1, 1), 50)
            .unwrap()
            .iter()
            .map(|t| t.with_timezone(&TIME_ZONE).day())
            .collect();
        assert_eq!(days, vec![2, 5, 16, 19, 30]);
    }

    #[test]
    fn a_window_and_a_limit_bound_the_expansion() {
        let r = Recurrence::new(local(2026, 1, 5, 9), "FREQ=DAILY").unwrap();
        let times = r
            .occurrences(utc(2026, 2, 1), utc(2026, 2, 8), 100)
            .unwrap();
        assert_eq!(times.len(), 7);
        let capped = r.occurrences(utc(2026, 2, 1), utc(2027, 2, 1), 10).unwrap();
        assert_eq!(capped.len(), 10);
        assert_eq!(
            capped[0].with_timezone(&TIME_ZONE).date_naive(),
            NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()
        );
    }

    #[test]
    fn bad_rules_and_missing_local_times_are_refused() {
        assert!(matches!(
            Recurrence::new(local(2026, 1, 5, 9), "FREQ=SOMETIMES"),
            Err(RecurrenceError::Invalid(_))
        ));
        assert_eq!(
            Recurrence::new(local(2026, 1, 5, 9), "FREQ=MINUTELY"),
            Err(RecurrenceError::TooFrequent)
        );
        let long = format!("FREQ=WEEKLY;BYDAY={}", vec!["MO"; 200].join(","));
        assert!(matches!(
            Recurrence::new(local(2026, 1, 5, 9), &long),
            Err(RecurrenceError::Invalid(_))
        ));
        // 02:30 on 29 March 2026 does not exist in Copenhagen.
        let gap = NaiveDate::from_ymd_opt(2026, 3, 29)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert!(matches!(
            Recurrence::new(gap, "FREQ=WEEKLY"),
            Err(RecurrenceError::NoSuchLocalTime(_))
        ));
    }

    #[test]
    fn count_is_rewritten_when_restarting() {
        let r = Recurrence::new(local(2026, 1, 5, 9), "FREQ=WEEKLY;COUNT=10").unwrap();
        assert_eq!(r.count(), Some(10));
        let rest = r.restarted(local(2026, 2, 2, 11), Some(6)).unwrap();
        assert_eq!(rest.count(), Some(6));
        let times = rest
            .occurrences(utc(2026, 1, 1), utc(2027, 1, 1), 50)
            .unwrap();
        assert_eq!(times.len(), 6);
        assert_eq!(local_hours(&times[..1]), vec![11]);
    }
}
