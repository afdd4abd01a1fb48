//! The RRULE of a visit series (`Recurrence::new`, what `POST /api/series` parses), with a
//! fuzzed local start; what is accepted is expanded over a year (bounded) and restarted.
#![no_main]

use arbitrary::Arbitrary;
use chrono::{DateTime, NaiveDate, Utc};
use libfuzzer_sys::fuzz_target;
use skaerm_scheduling::recurrence::Recurrence;

#[derive(Debug, Arbitrary)]
struct Input {
    /// Days from 2000-01-01 (wrapped to ~200 years) and seconds into the day.
    day: u16,
    second: u32,
    rule: String,
    from_offset_days: i16,
    span_days: u16,
    limit: u16,
    restart_count: Option<u32>,
}

fuzz_target!(|input: Input| {
    let Some(date) = NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.checked_add_days(chrono::Days::new(u64::from(input.day % 36_500))))
    else {
        return;
    };
    let Some(start) = date.and_hms_opt(0, 0, 0).and_then(|d| {
        d.checked_add_signed(chrono::Duration::seconds(i64::from(input.second % 86_400)))
    }) else {
        return;
    };
    let Ok(recurrence) = Recurrence::new(start, &input.rule) else {
        return;
    };
    let _ = recurrence.count();
    let Ok(first) = recurrence.dtstart() else {
        return;
    };
    let from: DateTime<Utc> =
        first.with_timezone(&Utc) + chrono::Duration::days(i64::from(input.from_offset_days));
    let to = from + chrono::Duration::days(i64::from(input.span_days % 400));
    let _ = recurrence.occurrences(from, to, input.limit % 1000);
    let _ = recurrence.restarted(start, input.restart_count.map(|c| c % 1000));
});
