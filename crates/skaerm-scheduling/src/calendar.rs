//! Days as municipal staff live them: calendar days in Europe/Copenhagen, turned into UTC
//! instants (a day is 23 or 25 hours long on the daylight-saving Sundays).

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Copenhagen;

/// `[start, end)` of `date` in Copenhagen, as UTC instants.
pub fn copenhagen_day_bounds(date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = local_midnight(date);
    let end = date
        .checked_add_days(Days::new(1))
        .map(local_midnight)
        .unwrap_or(start);
    (start, end)
}

/// The first instant of `date` in Copenhagen. Midnight always exists there (the clocks change
/// at 02:00/03:00), but the earliest mapping is taken should a rule ever make it ambiguous.
fn local_midnight(date: NaiveDate) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    Copenhagen
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&naive))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(date: (i32, u32, u32)) -> i64 {
        let d = NaiveDate::from_ymd_opt(date.0, date.1, date.2).unwrap();
        let (start, end) = copenhagen_day_bounds(d);
        (end - start).num_hours()
    }

    #[test]
    fn ordinary_days_are_24_hours_and_start_at_local_midnight() {
        assert_eq!(hours((2026, 11, 22)), 24);
        let (start, _) = copenhagen_day_bounds(NaiveDate::from_ymd_opt(2026, 11, 22).unwrap());
        assert_eq!(start.to_rfc3339(), "2026-11-21T23:00:00+00:00");
        let (start, _) = copenhagen_day_bounds(NaiveDate::from_ymd_opt(2026, 7, 1).unwrap());
        assert_eq!(start.to_rfc3339(), "2026-06-30T22:00:00+00:00");
    }

    #[test]
    fn daylight_saving_sundays_are_23_and_25_hours() {
        // 2026: summer time starts Sunday 29 March, ends Sunday 25 October.
        assert_eq!(hours((2026, 3, 29)), 23);
        assert_eq!(hours((2026, 10, 25)), 25);
    }
}
