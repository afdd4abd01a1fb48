// The planning page (`/?page=plan`, `&visit=<id>` to edit): plan a visit or a weekly series,
// move one visit or change "this and following" occurrences of a series, cancel a visit, and
// hand out or re-issue the citizen link. Server refusals (problem+json) become plain words
// next to the form; a double-booking names the visit it would collide with.
import { api, ApiError } from "./api.js";
import { t, onLanguageChange, clock, lang } from "./i18n.js";
import { fromLocal, localParts, untilEndOfDay, weekdayOf } from "./cph-time.js";

const $ = (selector) => document.querySelector(selector);
const DAY_MS = 86_400_000;
/** How far back and ahead the staff member's visits are read to offer their citizens. */
const CITIZEN_WINDOW_DAYS = 90;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FINAL = new Set(["completed", "no_show", "cancelled", "technical_failure"]);

let onLoggedOut = () => {};
/** The visit being edited, or null while planning a new one. */
let editing = null;
/** The visit and series the link box hands out links for. */
let linkTarget = { visitId: null, seriesId: null };
/** The edited occurrence's series: its rule as form values, and whether they were changed. */
let seriesRuleState = null;
/** Texts set from code, re-made when the language changes. */
const dynamicTexts = new Map();

/** Sets `el`'s text from a function of the current language, and keeps it in step. */
function say(el, make) {
  if (!make) {
    dynamicTexts.delete(el);
    el.replaceChildren();
    return;
  }
  dynamicTexts.set(el, make);
  const made = make();
  if (typeof made === "string") el.textContent = made;
  else el.replaceChildren(...made);
}

function dateLabel(iso) {
  return new Intl.DateTimeFormat(lang() === "da" ? "da-DK" : "en-GB", {
    timeZone: "Europe/Copenhagen", weekday: "long", day: "numeric", month: "long",
  }).format(new Date(iso));
}

function kind() {
  return document.querySelector("input[name=kind]:checked").value;
}

function scope() {
  return document.querySelector("input[name=scope]:checked").value;
}

export async function showPlanner(loggedOut) {
  onLoggedOut = loggedOut;
  onLanguageChange(() => {
    for (const [el, make] of dynamicTexts) say(el, make);
    updateForm();
  });
  for (const radio of document.querySelectorAll("input[name=kind], input[name=scope]")) {
    radio.addEventListener("change", updateForm);
  }
  // Until the staff member picks weekdays themselves, the start's weekday is the one ticked.
  let weekdaysTouched = false;
  for (const box of document.querySelectorAll("input[name=weekday]")) {
    box.addEventListener("change", () => { weekdaysTouched = true; });
  }
  $("#plan-date").addEventListener("change", () => {
    if (weekdaysTouched) return;
    for (const box of document.querySelectorAll("input[name=weekday]")) box.checked = false;
    tickWeekdayOfStart();
  });
  $("#series-fields").addEventListener("change", () => {
    if (seriesRuleState) seriesRuleState.touched = true;
  });
  $("#plan-form").addEventListener("submit", submit);
  $("#link-issue").addEventListener("click", () => issueLink("visit"));
  $("#link-series").addEventListener("click", () => issueLink("series"));
  $("#cancel-ask").addEventListener("click", () => {
    $("#cancel-confirm").hidden = false;
    $("#cancel-yes").focus();
  });
  $("#cancel-no").addEventListener("click", () => {
    $("#cancel-confirm").hidden = true;
    $("#cancel-ask").focus();
  });
  $("#cancel-yes").addEventListener("click", cancelVisit);
  const id = new URLSearchParams(location.search).get("visit");
  if (id) await loadForEdit(id);
  else await prepareNew();
}

function checkedWeekdays() {
  return [...document.querySelectorAll("input[name=weekday]:checked")].map((box) => box.value);
}

function tickWeekdayOfStart() {
  const date = $("#plan-date").value;
  if (!date) return;
  const box = document.querySelector(`input[name=weekday][value=${weekdayOf(date)}]`);
  if (box) box.checked = true;
}

/** Shows and enables the fields that apply to what is being done. */
function updateForm() {
  const series = !editing && kind() === "series";
  const followingEdit = Boolean(editing?.series_id) && scope() === "following";
  $("#series-fields").hidden = !(series || (followingEdit && seriesRuleState));
  $("#repeat-following-hint").hidden = !followingEdit;
  if (series && !checkedWeekdays().length) tickWeekdayOfStart();
  if (!editing) {
    $("#plan-submit").textContent = t(series ? "plan.create_series" : "plan.create");
    return;
  }
  const following = Boolean(editing.series_id) && scope() === "following";
  // One visit can be moved (day, time, length); what it is for changes only from an
  // occurrence on, and then on the series' own weekdays.
  for (const id of ["#plan-basis", "#plan-purpose", "#plan-cohost"]) $(id).disabled = !following;
  $("#plan-date").disabled = following;
  $("#plan-fixed-hint").hidden = following;
  say($("#plan-fixed-hint"), () => t(editing.series_id ? "plan.fixed_hint_series" : "plan.fixed_hint"));
  $("#plan-submit").textContent = t(following ? "plan.save_following" : "plan.save");
}

/** The citizens the staff member has visits with (the API has no citizen list yet). */
async function knownCitizens() {
  const now = Date.now();
  const from = now - CITIZEN_WINDOW_DAYS * DAY_MS;
  const to = now + CITIZEN_WINDOW_DAYS * DAY_MS;
  const byId = new Map();
  let offset = 0;
  for (let pageNo = 0; pageNo < 5 && offset !== null && offset !== undefined; pageNo += 1) {
    const page = await api.visitsBetween(from, to, offset);
    for (const visit of page.visits) byId.set(visit.citizen.id, visit.citizen.display_name);
    offset = page.next_offset;
  }
  return [...byId].map(([id, name]) => ({ id, name }))
    .sort((a, b) => a.name.localeCompare(b.name, "da"));
}

function fillCitizens(citizens, selected) {
  const select = $("#plan-citizen");
  const choose = document.createElement("option");
  choose.value = "";
  choose.dataset.i18n = "plan.choose_citizen";
  choose.textContent = t("plan.choose_citizen");
  select.replaceChildren(choose);
  for (const citizen of citizens) {
    const option = document.createElement("option");
    option.value = citizen.id;
    option.textContent = citizen.name;
    select.append(option);
  }
  if (selected) select.value = selected;
}

function nextQuarterHour() {
  const now = new Date(Date.now() + 15 * 60_000);
  now.setMinutes(Math.ceil(now.getMinutes() / 15) * 15, 0, 0);
  return now;
}

async function prepareNew() {
  editing = null;
  $("#plan-form").hidden = false;
  let citizens = [];
  try {
    citizens = await knownCitizens();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return onLoggedOut();
    say($("#plan-status"), () => t("error.generic"));
  }
  const params = new URLSearchParams(location.search);
  fillCitizens(citizens, params.get("citizen"));
  if (!citizens.length) say($("#plan-status"), () => t("plan.no_citizens"));
  const start = localParts(nextQuarterHour());
  const day = params.get("day");
  $("#plan-date").value = day && /^\d{4}-\d{2}-\d{2}$/.test(day) ? day : start.date;
  $("#plan-time").value = start.time;
  updateForm();
}

async function loadForEdit(id) {
  let visit;
  try {
    visit = (await api.visit(id)).visit;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return onLoggedOut();
    $("#plan-form").hidden = true;
    say($("#plan-title"), () => t("plan.title_edit"));
    say($("#plan-status"), () => t(e instanceof ApiError && e.status === 404 ? "plan.not_found" : "error.generic"));
    return;
  }
  showVisitForEdit(visit);
}

function showVisitForEdit(visit) {
  editing = visit;
  linkTarget = { visitId: visit.id, seriesId: visit.series_id };
  say($("#plan-title"), () => t("plan.title_edit_named", { name: visit.citizen.display_name }));
  document.title = `${t("plan.title_edit")} – Skærm`;
  $("#kind-field").hidden = true;
  $("#scope-field").hidden = !visit.series_id;
  fillCitizens([{ id: visit.citizen.id, name: visit.citizen.display_name }], visit.citizen.id);
  $("#plan-citizen").disabled = true;
  $("#plan-citizen-hint").hidden = true;
  $("#plan-basis").value = visit.legal_basis;
  $("#plan-purpose").value = visit.purpose ?? "";
  $("#plan-cohost").value = visit.co_host_id ?? "";
  const start = localParts(visit.planned_start);
  $("#plan-date").value = start.date;
  $("#plan-time").value = start.time;
  $("#plan-duration").value = String(visit.duration_minutes);
  const closed = FINAL.has(visit.status) || ["in_progress", "waiting"].includes(visit.status);
  $("#plan-form").hidden = closed;
  $("#link-box").hidden = FINAL.has(visit.status);
  $("#link-series").hidden = !visit.series_id;
  $("#cancel-box").hidden = closed;
  say($("#cancel-hint"), () => t(visit.series_id ? "cancel.hint_series" : "cancel.hint"));
  seriesRuleState = null;
  if (visit.series_id && !closed) loadSeriesRule(visit);
  say($("#plan-status"), closed
    ? () => t("plan.closed", { status: t(`status.${visit.status}`) })
    : () => t("plan.editing", {
      date: dateLabel(visit.planned_start), from: clock(visit.planned_start), to: clock(visit.planned_end),
    }));
  updateForm();
}

/** Fills the repeat fields from the occurrence's series, for "this and following" edits. */
async function loadSeriesRule(visit) {
  let found;
  try {
    found = await api.series(visit.series_id);
  } catch {
    return; // the series stays editable in time, length and purpose only
  }
  if (editing?.id !== visit.id) return;
  const rule = Object.fromEntries(found.series.rrule.split(";").map((part) => part.split("=")));
  const days = (rule.BYDAY || weekdayOf(localParts(visit.planned_start).date)).split(",");
  for (const box of document.querySelectorAll("input[name=weekday]")) box.checked = days.includes(box.value);
  $("#plan-interval").value = rule.INTERVAL === "2" ? "2" : "1";
  const fromHere = found.visits.filter((v) => v.occurrence_start >= visit.occurrence_start).length;
  if (rule.UNTIL) {
    const m = rule.UNTIL.match(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/);
    if (m) $("#plan-until").value = localParts(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6])).date;
    document.querySelector("input[name=ends][value=until]").checked = true;
  } else {
    $("#plan-count").value = String(Math.max(1, fromHere));
    document.querySelector("input[name=ends][value=count]").checked = true;
  }
  seriesRuleState = { touched: false };
  updateForm();
}

/** Reads the form; returns {error} (a catalogue key) or the values. */
function readForm() {
  const date = $("#plan-date").value;
  const time = $("#plan-time").value;
  const start = fromLocal(date, time);
  if (!start) return { error: "plan.bad_time", field: "#plan-time" };
  const duration = Number($("#plan-duration").value);
  if (!Number.isInteger(duration) || duration < 1 || duration > 480) {
    return { error: "plan.bad_duration", field: "#plan-duration" };
  }
  const coHost = $("#plan-cohost").value.trim();
  if (coHost && !UUID.test(coHost)) return { error: "plan.bad_cohost", field: "#plan-cohost" };
  return {
    date, time, start, duration,
    coHost: coHost || null,
    citizen: $("#plan-citizen").value,
    basis: $("#plan-basis").value,
    purpose: $("#plan-purpose").value.trim(),
  };
}

/**
 * The RRULE of the repeat fields. A new series must start on one of its weekdays; "this and
 * following" may move to other weekdays (the occurrences then start on the first of them).
 */
function seriesRule(form, { startOnWeekday = true } = {}) {
  const days = checkedWeekdays();
  if (!days.length) return { error: "plan.no_weekdays", field: "#series-fields input[name=weekday]" };
  if (startOnWeekday && !days.includes(weekdayOf(form.date))) return { error: "plan.weekday_mismatch", field: "#plan-date" };
  const interval = $("#plan-interval").value === "2" ? 2 : 1;
  let end;
  if (document.querySelector("input[name=ends]:checked").value === "until") {
    const until = untilEndOfDay($("#plan-until").value);
    if (!until || $("#plan-until").value < form.date) return { error: "plan.bad_until", field: "#plan-until" };
    end = `UNTIL=${until}`;
  } else {
    const count = Number($("#plan-count").value);
    if (!Number.isInteger(count) || count < 1 || count > 200) return { error: "plan.bad_count", field: "#plan-count" };
    end = `COUNT=${count}`;
  }
  return { rrule: `FREQ=WEEKLY;INTERVAL=${interval};BYDAY=${days.join(",")};${end}` };
}

function clearError() {
  say($("#plan-error"), null);
  for (const el of document.querySelectorAll("#plan-form [aria-invalid]")) el.removeAttribute("aria-invalid");
}

function showError(key, field, params = {}) {
  say($("#plan-error"), () => t(key, params));
  if (field) {
    const el = document.querySelector(field);
    el?.setAttribute("aria-invalid", "true");
    el?.focus();
  }
}

let busy = false;
async function submit(event) {
  event.preventDefault();
  if (busy) return;
  clearError();
  const form = readForm();
  if (form.error) return showError(form.error, form.field);
  if (!editing && !form.citizen) return showError("plan.no_citizen", "#plan-citizen");
  busy = true;
  $("#plan-submit").disabled = true;
  try {
    if (editing) await saveEdit(form);
    else if (kind() === "series") await createSeries(form);
    else await createVisit(form);
  } catch (e) {
    await showProblem(e);
  } finally {
    busy = false;
    $("#plan-submit").disabled = false;
  }
}

async function createVisit(form) {
  const body = {
    legal_basis: form.basis,
    purpose: form.purpose,
    citizen_id: form.citizen,
    planned_start: form.start.toISOString(),
    duration_minutes: form.duration,
  };
  if (form.coHost) body.co_host_id = form.coHost;
  const { visit } = await api.createVisit(body);
  showDone([visit], null);
}

async function createSeries(form) {
  const rule = seriesRule(form);
  if (rule.error) return showError(rule.error, rule.field);
  const body = {
    legal_basis: form.basis,
    purpose: form.purpose,
    citizen_id: form.citizen,
    start_local: `${form.date}T${form.time}:00`,
    duration_minutes: form.duration,
    rrule: rule.rrule,
  };
  if (form.coHost) body.co_host_id = form.coHost;
  const { series, visits } = await api.createSeries(body);
  showDone(visits, series);
}

/** After planning: what was made, where to see it, and the citizen link. */
function showDone(visits, series) {
  $("#plan-form").hidden = true;
  say($("#plan-status"), null);
  const done = $("#plan-done");
  done.hidden = false;
  const first = visits[0];
  say($("#plan-done-title"), () => (series
    ? t("plan.created_series", { n: visits.length })
    : t("plan.created")));
  say($("#plan-summary"), () => (first
    ? t("plan.summary", {
      name: first.citizen.display_name,
      basis: t(`basis.${first.legal_basis}`),
      date: dateLabel(first.planned_start),
      from: clock(first.planned_start),
      to: clock(first.planned_end),
    })
    : t("plan.created_none")));
  const list = $("#plan-occurrences");
  list.replaceChildren();
  if (series) {
    for (const visit of visits.slice(0, 12)) {
      const item = document.createElement("li");
      say(item, () => `${dateLabel(visit.planned_start)} ${clock(visit.planned_start)}–${clock(visit.planned_end)}`);
      list.append(item);
    }
    if (visits.length > 12) {
      const more = document.createElement("li");
      say(more, () => t("plan.more", { n: visits.length - 12 }));
      list.append(more);
    }
  }
  if (first) {
    $("#plan-week-link").href = `/?day=${localParts(first.planned_start).date}&view=week`;
    linkTarget = { visitId: first.id, seriesId: series?.id ?? null };
    $("#link-box").hidden = false;
    // A series has one link for all its visits.
    $("#link-issue").hidden = Boolean(series);
    $("#link-series").hidden = !series;
  } else {
    $("#plan-week-link").hidden = true;
  }
  $("#plan-done-title").focus();
}

async function saveEdit(form) {
  if (editing.series_id && scope() === "following") {
    const body = {
      from_occurrence: editing.occurrence_start,
      legal_basis: form.basis,
      purpose: form.purpose,
      co_host_id: form.coHost,
      duration_minutes: form.duration,
      start_time: `${form.time}:00`,
    };
    if (seriesRuleState?.touched) {
      const rule = seriesRule(form, { startOnWeekday: false });
      if (rule.error) return showError(rule.error, rule.field);
      body.rrule = rule.rrule;
    }
    const { series, visits } = await api.editSeries(editing.series_id, body);
    const next = visits[0];
    if (next) {
      history.replaceState(null, "", `/?page=plan&visit=${encodeURIComponent(next.id)}`);
      showVisitForEdit(next);
    }
    say($("#plan-status"), () => t("plan.saved_following", { n: visits.length }));
    linkTarget.seriesId = series.id;
    return;
  }
  const { visit } = await api.moveVisit(editing.id, {
    planned_start: form.start.toISOString(),
    duration_minutes: form.duration,
  });
  showVisitForEdit(visit);
  say($("#plan-status"), () => t("plan.moved", {
    date: dateLabel(visit.planned_start), from: clock(visit.planned_start), to: clock(visit.planned_end),
  }));
}

/** A refusal from the server, in plain words next to the form. */
async function showProblem(e) {
  if (!(e instanceof ApiError)) return showError("error.generic");
  if (e.status === 401) return onLoggedOut();
  if (e.code === "conflict") {
    const other = e.body.conflicting_visit ?? {};
    let name = null;
    if (other.id) {
      try { name = (await api.visit(other.id)).visit.citizen.display_name; } catch { /* a colleague's visit */ }
    }
    const params = () => ({
      name,
      date: other.planned_start ? dateLabel(other.planned_start) : "",
      from: other.planned_start ? clock(other.planned_start) : "",
      to: other.planned_end ? clock(other.planned_end) : "",
    });
    say($("#plan-error"), () => t(name ? "plan.conflict_named" : "plan.conflict", params()));
    for (const id of ["#plan-date", "#plan-time"]) $(id).setAttribute("aria-invalid", "true");
    $("#plan-time").focus();
    return;
  }
  const known = {
    invalid: "plan.invalid",
    invalid_rrule: "plan.invalid_rrule",
    visit_not_changeable: "plan.not_changeable",
    illegal_transition: "plan.not_changeable",
    not_owner: "plan.not_owner",
    busy: "plan.busy",
    not_found: "plan.not_found",
  };
  showError(known[e.code] ?? "error.generic");
}

async function issueLink(which) {
  const out = $("#link-out");
  const button = which === "series" ? $("#link-series") : $("#link-issue");
  const reissue = button.dataset.issued === "true";
  button.disabled = true;
  try {
    const { url, expires_at: expiresAt } = which === "series"
      ? await api.seriesCitizenLink(linkTarget.seriesId)
      : await api.citizenLink(linkTarget.visitId);
    button.dataset.issued = "true";
    button.dataset.i18n = which === "series" ? "link.reissue_series" : "link.reissue";
    button.textContent = t(button.dataset.i18n);
    const label = document.createElement("label");
    label.htmlFor = "link-value";
    label.textContent = t(which === "series" ? "link.label_series" : "link.label");
    const value = document.createElement("input");
    value.id = "link-value";
    value.readOnly = true;
    value.value = url;
    value.className = "link-value";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "button";
    copy.textContent = t("link.copy");
    const note = document.createElement("p");
    note.className = "hint";
    const old = document.createElement("p");
    old.className = reissue ? "notice-line" : "hint";
    say(old, () => t(reissue ? "link.reissued" : "link.old_stops"));
    const when = document.createElement("p");
    when.className = "hint";
    say(when, () => (expiresAt
      ? t("link.window", { date: dateLabel(expiresAt), time: clock(expiresAt) })
      : t("link.window_series")));
    copy.addEventListener("click", () => copyText(value, note));
    out.replaceChildren(label, value, copy, note, old, when);
    await copyText(value, note);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return onLoggedOut();
    say(out, () => t(e instanceof ApiError && e.code === "visit_closed" ? "link.closed" : "error.generic"));
  } finally {
    button.disabled = false;
  }
}

async function copyText(input, note) {
  try {
    await navigator.clipboard.writeText(input.value);
    say(note, () => t("link.copied"));
  } catch {
    input.focus();
    input.select();
    say(note, () => t("link.select"));
  }
}

async function cancelVisit() {
  $("#cancel-yes").disabled = true;
  try {
    const { visit } = await api.cancelVisit(editing.id);
    showVisitForEdit(visit);
    $("#cancel-box").hidden = false;
    $("#cancel-ask").hidden = true;
    $("#cancel-confirm").hidden = true;
    say($("#cancel-result"), () => t("cancel.done"));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return onLoggedOut();
    say($("#cancel-result"), () => t(e instanceof ApiError && e.code === "illegal_transition" ? "plan.not_changeable" : "error.generic"));
  } finally {
    $("#cancel-yes").disabled = false;
  }
}

