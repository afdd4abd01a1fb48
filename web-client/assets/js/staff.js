// The staff app's front page: log in, then one of its pages (`?page=`): the visits of a day
// (kept live) or a week, start one, hand out the citizen link; planning (planner.js); the
// team's monthly report (report.js); the citizens' tablets (devices.js).
import { api, ApiError } from "./api.js";
import { localParts } from "./cph-time.js";
import { t, translate, languageSwitch, onLanguageChange, clock, lang } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);
/** How often the day list asks the server for fresh statuses while it is on screen. */
const REFRESH_MS = 10_000;
let visits = [];
/** The week view's days: [{day, visits}], or null when showing a day. */
let week = null;
let refreshTimer = null;
/** Statuses after which a visit cannot be started or joined. */
const FINAL = new Set(["completed", "no_show", "cancelled", "technical_failure"]);
/** What is shown: a day (YYYY-MM-DD, Copenhagen) and "day" or "week"; kept in the URL. */
const view = initialView();
/** Which page of the app: "visits" (default), "plan" or "report". */
const page = ["plan", "report"].includes(new URLSearchParams(location.search).get("page"))
  ? new URLSearchParams(location.search).get("page") : "visits";

function initialView() {
  const params = new URLSearchParams(location.search);
  const day = params.get("day");
  return {
    day: day && /^\d{4}-\d{2}-\d{2}$/.test(day) ? day : todayInCopenhagen(),
    mode: params.get("view") === "week" ? "week" : "day",
  };
}

function todayInCopenhagen() {
  // en-CA formats dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Europe/Copenhagen" }).format(new Date());
}

/** The calendar day `n` days after `day` (both YYYY-MM-DD). */
function addDays(day, n) {
  const date = new Date(`${day}T12:00:00Z`);
  date.setUTCDate(date.getUTCDate() + n);
  return date.toISOString().slice(0, 10);
}

/** A day's visits; today's include the next hours past midnight (the server's default list),
 *  so an evening or night shift sees its next visits on its start page. */
function dayVisits(day) {
  return day === todayInCopenhagen() ? api.visitsToday() : api.visitsOn(day);
}

function mondayOf(day) {
  const weekday = (new Date(`${day}T12:00:00Z`).getUTCDay() + 6) % 7; // Monday = 0
  return addDays(day, -weekday);
}

function dayLabel(day, options = { weekday: "long", day: "numeric", month: "long" }) {
  return new Intl.DateTimeFormat(lang() === "da" ? "da-DK" : "en-GB", { ...options, timeZone: "UTC" })
    .format(new Date(`${day}T12:00:00Z`));
}

async function main() {
  translate();
  languageSwitch($("#lang"));
  onLanguageChange(() => render());
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  const step = (n) => () => go(addDays(view.day, view.mode === "week" ? 7 * n : n), view.mode);
  $("#prev").addEventListener("click", step(-1));
  $("#next").addEventListener("click", step(1));
  $("#today").addEventListener("click", () => go(todayInCopenhagen(), view.mode));
  $("#view-day").addEventListener("click", () => go(view.day, "day"));
  $("#view-week").addEventListener("click", () => go(view.day, "week"));
  const current = $(`#nav-${page}`);
  current.setAttribute("aria-current", "page");
  try {
    const me = await api.me();
    showApp(me.staff);
  } catch {
    showLogin();
  }
}

function showLogin() {
  clearInterval(refreshTimer);
  $("#login").hidden = false;
  $("#app").hidden = true;
  $("#username").focus();
}

async function login(event) {
  event.preventDefault();
  const error = $("#login-error");
  error.textContent = "";
  try {
    const me = await api.login($("#username").value, $("#password").value);
    $("#password").value = "";
    showApp(me.staff);
  } catch (e) {
    error.textContent = e instanceof ApiError && e.code === "rate_limited" ? t("login.rate_limited") : t("login.failed");
  }
}

async function logout() {
  clearInterval(refreshTimer);
  try { await api.logout(); } catch { /* the cookie is gone either way */ }
  showLogin();
}

function showApp(staff) {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#staff-name").textContent = staff.display_name;
  $(`#page-${page}`).hidden = false;
  if (page === "plan") {
    import("./planner.js").then((m) => m.showPlanner(showLogin));
    return;
  }
  if (page === "report") {
    import("./report.js").then((m) => m.showReport(showLogin));
    return;
  }
  import("./calendar-feed.js").then((m) => m.wireCalendarFeed(showLogin));
  import("./devices.js").then((m) => m.wireDevices(showLogin));
  load();
  clearInterval(refreshTimer);
  refreshTimer = setInterval(refreshVisits, REFRESH_MS);
}

/** The address of the page that edits (moves, cancels, links) a visit. */
function editHref(visit) {
  return `/?page=plan&visit=${encodeURIComponent(visit.id)}`;
}

/** Shows another day or mode, remembering it in the address (a reload keeps it). */
function go(day, mode) {
  view.day = day;
  view.mode = mode;
  const params = new URLSearchParams(location.search);
  params.set("day", day);
  params.set("view", mode);
  history.replaceState(null, "", `${location.pathname}?${params}`);
  load();
}

let loading = 0;
async function load() {
  const ticket = ++loading;
  $("#visits-status").textContent = t("staff.loading");
  try {
    if (view.mode === "day") {
      const fresh = (await dayVisits(view.day)).visits;
      if (ticket !== loading) return;
      visits = fresh;
      week = null;
    } else {
      const monday = mondayOf(view.day);
      const days = Array.from({ length: 7 }, (_, i) => addDays(monday, i));
      const lists = await Promise.all(days.map((day) => api.visitsOn(day)));
      if (ticket !== loading) return;
      week = days.map((day, i) => ({ day, visits: lists[i].visits }));
    }
    $("#visits-status").textContent = "";
  } catch (e) {
    if (ticket !== loading) return;
    if (e instanceof ApiError && e.status === 401) return showLogin();
    $("#visits-status").textContent = t("error.generic");
    visits = [];
    week = null;
  }
  render();
}

function render() {
  const isWeek = view.mode === "week";
  const today = todayInCopenhagen();
  $("#today-title").textContent = isWeek
    ? t("staff.week_title", {
      from: dayLabel(mondayOf(view.day), { day: "numeric", month: "long" }),
      to: dayLabel(addDays(mondayOf(view.day), 6), { day: "numeric", month: "long" }),
    })
    : view.day === today ? t("staff.today") : t("staff.day_title", { date: dayLabel(view.day) });
  $("#prev").textContent = t(isWeek ? "staff.prev_week" : "staff.prev_day");
  $("#next").textContent = t(isWeek ? "staff.next_week" : "staff.next_day");
  $("#today").textContent = t("staff.go_today");
  $("#plan-here").href = `/?page=plan&day=${encodeURIComponent(view.day)}`;
  $("#view-day").setAttribute("aria-pressed", String(!isWeek));
  $("#view-week").setAttribute("aria-pressed", String(isWeek));
  $("#visits").hidden = isWeek;
  $("#week").hidden = !isWeek;
  if (isWeek) renderWeek();
  else renderVisits();
}

function renderWeek() {
  const root = $("#week");
  root.replaceChildren();
  const today = todayInCopenhagen();
  for (const { day, visits: dayVisits } of week ?? []) {
    const column = document.createElement("section");
    column.className = "week-day";
    column.dataset.day = day;
    if (day === today) column.dataset.today = "true";
    const heading = document.createElement("h2");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "button link";
    const label = dayLabel(day, { weekday: "long", day: "numeric", month: "short" });
    open.textContent = label.charAt(0).toUpperCase() + label.slice(1);
    open.addEventListener("click", () => go(day, "day"));
    heading.append(open);
    const list = document.createElement("ul");
    for (const visit of dayVisits) {
      const item = document.createElement("li");
      item.className = "week-visit";
      item.dataset.status = visit.status;
      item.dataset.visitId = visit.id;
      const time = document.createElement("span");
      time.className = "visit-time";
      time.textContent = clock(visit.planned_start);
      const who = FINAL.has(visit.status) ? document.createElement("span") : document.createElement("a");
      who.textContent = visit.citizen.display_name;
      if (!FINAL.has(visit.status)) {
        who.href = editHref(visit);
        who.setAttribute("aria-label", t("staff.edit_named", { name: visit.citizen.display_name, time: clock(visit.planned_start) }));
      }
      const status = document.createElement("span");
      status.className = "visit-status";
      status.textContent = t(`status.${visit.status}`);
      item.append(time, " ", who, " · ", status);
      list.append(item);
    }
    if (dayVisits.length === 0) {
      const none = document.createElement("li");
      none.className = "muted";
      none.textContent = t("staff.week_none");
      list.append(none);
    }
    column.append(heading, list);
    root.append(column);
  }
}

/** Live status: fetches the day again and updates what changed, keeping shown links. */
async function refreshVisits() {
  if ($("#app").hidden || view.mode !== "day" || document.visibilityState !== "visible") return;
  const day = view.day;
  let fresh;
  try {
    fresh = (await dayVisits(day)).visits;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) showLogin();
    return;
  }
  if (view.mode !== "day" || view.day !== day) return;
  const sameVisits = fresh.length === visits.length && fresh.every((v, i) => v.id === visits[i].id);
  const changed = fresh.filter((v, i) => !sameVisits || v.status !== visits[i].status);
  visits = fresh;
  if (!sameVisits) return renderVisits();
  for (const visit of changed) {
    const item = $(`#visits li[data-visit-id="${CSS.escape(visit.id)}"]`);
    if (!item) continue;
    item.dataset.status = visit.status;
    item.querySelector(".visit-status").textContent = t(`status.${visit.status}`);
    const start = item.querySelector("[data-action=start]");
    if (FINAL.has(visit.status)) item.querySelector(".visit-actions")?.replaceChildren();
    else if (start) start.textContent = t(visit.status === "in_progress" ? "staff.resume" : "staff.start");
  }
}

function renderVisits() {
  const list = $("#visits");
  list.replaceChildren();
  if (!$("#app").hidden && visits.length === 0) {
    $("#visits-status").textContent = t(view.day === todayInCopenhagen() ? "staff.none" : "staff.none_day");
  }
  for (const visit of visits) {
    const item = document.createElement("li");
    item.className = "visit";
    item.dataset.visitId = visit.id;
    item.dataset.status = visit.status;
    const startDay = localParts(visit.planned_start).date;
    item.dataset.day = startDay;

    const time = document.createElement("p");
    time.className = "visit-time";
    time.textContent = `${clock(visit.planned_start)}–${clock(visit.planned_end)}`;
    // Past midnight on today's list: the day is said too.
    if (view.mode === "day" && startDay !== view.day) {
      time.textContent = `${dayLabel(startDay, { weekday: "short", day: "numeric", month: "short" })} ${time.textContent}`;
    }
    const who = document.createElement("p");
    who.className = "visit-citizen";
    who.textContent = visit.citizen.display_name;
    const what = document.createElement("p");
    what.className = "visit-basis";
    what.textContent = `${visit.legal_basis_label} · ${t("staff.minutes", { n: visit.duration_minutes })}`;
    const status = document.createElement("p");
    status.className = "visit-status";
    status.textContent = t(`status.${visit.status}`);

    const actions = document.createElement("div");
    actions.className = "visit-actions";
    if (!FINAL.has(visit.status)) {
      const start = document.createElement("a");
      start.className = "button primary";
      start.href = `/visit/${encodeURIComponent(visit.id)}`;
      start.textContent = t(visit.status === "in_progress" ? "staff.resume" : "staff.start");
      start.dataset.action = "start";
      const link = document.createElement("button");
      link.type = "button";
      link.className = "button";
      link.textContent = t("staff.copy_link");
      link.dataset.action = "copy-link";
      link.addEventListener("click", () => copyLink(visit, item));
      const edit = document.createElement("a");
      edit.className = "button";
      edit.href = editHref(visit);
      edit.textContent = t("staff.edit");
      edit.dataset.action = "edit";
      actions.append(start, link, edit);
    }
    if (visit.series_id) what.textContent += ` · ${t("staff.in_series")}`;
    const output = document.createElement("p");
    output.className = "visit-link";
    output.setAttribute("role", "status");
    item.append(time, who, what, status, actions, output);
    list.append(item);
  }
}

async function copyLink(visit, item) {
  const output = item.querySelector(".visit-link");
  try {
    const { url } = await api.citizenLink(visit.id);
    output.replaceChildren();
    const label = document.createElement("span");
    label.textContent = `${t("staff.link_shown")} `;
    const value = document.createElement("input");
    value.readOnly = true;
    value.value = url;
    value.className = "link-value";
    value.setAttribute("aria-label", t("staff.link_shown"));
    const replaced = document.createElement("span");
    replaced.className = "hint";
    replaced.textContent = ` ${t("link.old_stops")}`;
    output.append(label, value, replaced);
    try {
      await navigator.clipboard.writeText(url);
      const note = document.createElement("span");
      note.textContent = ` ${t("staff.link_copied")}`;
      output.append(note);
    } catch { value.select(); }
  } catch {
    output.textContent = t("error.generic");
  }
}

main();
