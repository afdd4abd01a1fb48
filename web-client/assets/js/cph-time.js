// Wall-clock time in Europe/Copenhagen, where every visit is planned: local date and time
// fields to UTC instants and back (DST-correct through Intl), and RRULE UNTIL values.

const ZONE = "Europe/Copenhagen";

const partsFormat = new Intl.DateTimeFormat("en-GB", {
  timeZone: ZONE,
  hourCycle: "h23",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

/** {date: "YYYY-MM-DD", time: "HH:MM"} of an instant, in Copenhagen. */
export function localParts(instant) {
  const p = Object.fromEntries(partsFormat.formatToParts(new Date(instant)).map((x) => [x.type, x.value]));
  return { date: `${p.year}-${p.month}-${p.day}`, time: `${p.hour}:${p.minute}`, seconds: p.second };
}

/** Minutes Copenhagen is ahead of UTC at `ms` (60 in winter, 120 in summer). */
function offsetMinutes(ms) {
  const { date, time, seconds } = localParts(ms);
  const asUtc = Date.parse(`${date}T${time}:${seconds}Z`);
  return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60_000);
}

/**
 * The UTC instant (a Date) of a Copenhagen wall-clock `date` ("YYYY-MM-DD") and `time`
 * ("HH:MM"); null when the fields are not a date and time. A time skipped by the spring DST
 * change resolves to the instant an hour later, as a clock would show it.
 */
export function fromLocal(date, time) {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date || "") || !/^\d{2}:\d{2}$/.test(time || "")) return null;
  const naive = Date.parse(`${date}T${time}:00Z`);
  if (Number.isNaN(naive)) return null;
  let guess = naive - offsetMinutes(naive) * 60_000;
  guess = naive - offsetMinutes(guess) * 60_000;
  return new Date(guess);
}

/** Today's date in Copenhagen, YYYY-MM-DD. */
export function todayLocal() {
  return localParts(Date.now()).date;
}

/** RRULE `UNTIL` (UTC, basic format) for the end of a Copenhagen calendar day. */
export function untilEndOfDay(date) {
  const end = fromLocal(date, "23:59");
  if (!end) return null;
  return end.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "").replace(/00Z$/, "59Z");
}

/** RFC 5545 weekday codes, Monday first, as the week view shows them. */
export const WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

/** The RRULE weekday code of a calendar date. */
export function weekdayOf(date) {
  return WEEKDAYS[(new Date(`${date}T12:00:00Z`).getUTCDay() + 6) % 7];
}
