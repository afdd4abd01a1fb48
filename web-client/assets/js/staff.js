// The staff app's front page: log in, today's visits (kept live), start one, hand out the
// citizen link.
import { api, ApiError } from "./api.js";
import { t, translate, languageSwitch, onLanguageChange, clock } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);
/** How often the list asks the server for fresh statuses while it is on screen. */
const REFRESH_MS = 10_000;
let visits = [];
let refreshTimer = null;

async function main() {
  translate();
  languageSwitch($("#lang"));
  onLanguageChange(() => renderVisits());
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  try {
    const me = await api.me();
    showApp(me.staff);
  } catch {
    showLogin();
  }
}

function showLogin() {
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

async function showApp(staff) {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#staff-name").textContent = staff.display_name;
  $("#visits-status").textContent = t("staff.loading");
  try {
    visits = (await api.visitsToday()).visits;
    $("#visits-status").textContent = "";
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return showLogin();
    $("#visits-status").textContent = t("error.generic");
    visits = [];
  }
  renderVisits();
  clearInterval(refreshTimer);
  refreshTimer = setInterval(refreshVisits, REFRESH_MS);
}

/** Live status: fetches the list again and updates what changed, keeping shown links. */
async function refreshVisits() {
  if ($("#app").hidden || document.visibilityState !== "visible") return;
  let fresh;
  try {
    fresh = (await api.visitsToday()).visits;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      clearInterval(refreshTimer);
      showLogin();
    }
    return;
  }
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
    if (visit.status === "completed") item.querySelector(".visit-actions")?.replaceChildren();
    else if (start) start.textContent = t(visit.status === "in_progress" ? "staff.resume" : "staff.start");
  }
}

function renderVisits() {
  const list = $("#visits");
  list.replaceChildren();
  if (!$("#app").hidden && visits.length === 0) $("#visits-status").textContent = t("staff.none");
  for (const visit of visits) {
    const item = document.createElement("li");
    item.className = "visit";
    item.dataset.visitId = visit.id;
    item.dataset.status = visit.status;

    const time = document.createElement("p");
    time.className = "visit-time";
    time.textContent = `${clock(visit.planned_start)}–${clock(visit.planned_end)}`;
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
    if (visit.status !== "completed") {
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
      actions.append(start, link);
    }
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
    output.append(label, value);
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
