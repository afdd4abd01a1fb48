//! Days as municipal staff live them: calendar days in Europe/Copenhagen, turned into UTC
//! instants (a day is 23 or 25 hours long on the daylight-saving Sundays).

use chrono::{DateTime, Days, Duration, NaiveDate, TimeZone, Utc};
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

/// How far ahead a staff member's default visit list reaches, whatever the time of day.
pub const LIST_AHEAD_HOURS: i64 = 6;

/// `[start, end)` of a staff member's default visit list at `now`: today in Copenhagen, and,
/// late in the day, the next [`LIST_AHEAD_HOURS`] hours too, so an evening or night shift's
/// visits after midnight are on the list before midnight (§83 home care runs at night).
pub fn today_and_ahead(now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let (start, end) = copenhagen_day_bounds(now.with_timezone(&Copenhagen).date_naive());
    (start, end.max(now + Duration::hours(LIST_AHEAD_HOURS)))
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

    #[test]
    fn the_default_list_is_today_and_at_night_the_next_six_hours() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap_or_default();
        // 10:00 in Copenhagen (CET, UTC+1): today only.
        let (from, to) = today_and_ahead(at("2026-12-06T09:00:00Z"));
        assert_eq!(
            (from, to),
            (at("2026-12-05T23:00:00Z"), at("2026-12-06T23:00:00Z"))
        );
        // 23:05 in Copenhagen: from this morning's midnight to 05:05 tomorrow.
        let (from, to) = today_and_ahead(at("2026-12-06T22:05:00Z"));
        assert_eq!(
            (from, to),
            (at("2026-12-05T23:00:00Z"), at("2026-12-07T04:05:00Z"))
        );
    }

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
