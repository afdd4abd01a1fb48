// The team lead's monthly report (`/?page=report&month=YYYY-MM`): per team and paragraph the
// planned, completed, no-show and cancelled visits, the technical-failure rate, the average
// length and the driving time saved. A table carries every number (it is what a screen reader
// reads); a bar chart drawn as SVG with DOM APIs shows planned against completed; the CSV
// download is the server's own (`format=csv`).
import { api, ApiError } from "./api.js";
import { t, onLanguageChange, lang } from "./i18n.js";
import { localParts } from "./cph-time.js";

const $ = (selector) => document.querySelector(selector);
const SVG = "http://www.w3.org/2000/svg";

let report = null;
let onLoggedOut = () => {};

function locale() {
  return lang() === "da" ? "da-DK" : "en-GB";
}

function currentMonth() {
  return localParts(Date.now()).date.slice(0, 7);
}

export async function showReport(loggedOut) {
  onLoggedOut = loggedOut;
  const asked = new URLSearchParams(location.search).get("month");
  const month = asked && /^\d{4}-\d{2}$/.test(asked) ? asked : currentMonth();
  $("#report-month").value = month;
  $("#report-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = $("#report-month").value;
    if (!/^\d{4}-\d{2}$/.test(chosen)) {
      $("#report-status").textContent = t("report.bad_month");
      $("#report-month").focus();
      return;
    }
    history.replaceState(null, "", `/?page=report&month=${chosen}`);
    load(chosen);
  });
  onLanguageChange(() => render());
  await load(month);
}

let loading = 0;
async function load(month) {
  const ticket = ++loading;
  $("#report-csv").href = api.reportCsvUrl(month);
  $("#report-status").textContent = t("report.loading");
  try {
    const fresh = await api.monthlyReport(month);
    if (ticket !== loading) return;
    report = fresh;
    $("#report-status").textContent = "";
  } catch (e) {
    if (ticket !== loading) return;
    if (e instanceof ApiError && e.status === 401) return onLoggedOut();
    report = null;
    $("#report-status").textContent = t(e instanceof ApiError && e.code === "forbidden_team" ? "report.forbidden" : "error.generic");
  }
  render();
}

function monthLabel(month) {
  return new Intl.DateTimeFormat(locale(), { month: "long", year: "numeric", timeZone: "UTC" })
    .format(new Date(`${month}-15T12:00:00Z`));
}

function count(n) {
  return new Intl.NumberFormat(locale()).format(n);
}

function percent(rate) {
  if (rate === null || rate === undefined) return t("report.none");
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 1 }).format(rate);
}

function averageMinutes(seconds) {
  if (seconds === null || seconds === undefined) return t("report.none");
  return t("report.minutes", {
    n: new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(seconds / 60),
  });
}

function hoursMinutes(minutes) {
  if (minutes < 60) return t("report.minutes", { n: count(minutes) });
  return t("report.hours_minutes", { h: count(Math.floor(minutes / 60)), m: minutes % 60 });
}

function basisLabel(line) {
  return line.legal_basis ? t(`basis.${line.legal_basis}`) : t("report.all_bases");
}

function cells(row, line, header) {
  const first = document.createElement("th");
  first.scope = "row";
  first.textContent = header ?? (line.team || t("report.no_team"));
  const values = [
    basisLabel(line),
    count(line.planned),
    count(line.completed),
    count(line.no_show),
    count(line.cancelled),
    percent(line.technical_failure_rate),
    averageMinutes(line.average_duration_seconds),
    hoursMinutes(line.saved_driving_minutes),
  ];
  row.append(first);
  values.forEach((value, i) => {
    const cell = document.createElement("td");
    cell.textContent = value;
    if (i > 0) cell.className = "num";
    row.append(cell);
  });
}

function render() {
  $("#report-body").hidden = !report;
  if (!report) return;
  $("#report-caption").textContent = t("report.caption", { month: monthLabel(report.month) });
  $("#report-team").textContent = report.team
    ? t("report.team", { team: report.team })
    : t("report.all_teams");
  const rows = $("#report-rows");
  rows.replaceChildren();
  for (const line of report.lines) {
    const row = document.createElement("tr");
    row.dataset.basis = line.legal_basis ?? "";
    cells(row, line);
    rows.append(row);
  }
  if (!report.lines.length) {
    const row = document.createElement("tr");
    const cell = document.createElement("td");
    cell.colSpan = 9;
    cell.textContent = t("report.empty");
    row.append(cell);
    rows.append(row);
  }
  const total = document.createElement("tr");
  total.dataset.basis = "total";
  cells(total, report.total, t("report.total"));
  $("#report-total").replaceChildren(total);
  $("#report-drive-note").textContent = t("report.drive_note", { n: report.minutes_per_avoided_drive });
  drawChart(report.lines);
}

/** Planned against completed per team and paragraph, as horizontal bars with their numbers. */
function drawChart(lines) {
  const root = $("#report-chart");
  root.replaceChildren();
  if (!lines.length) {
    const none = document.createElement("p");
    none.className = "muted";
    none.textContent = t("report.empty");
    root.append(none);
    return;
  }
  // Each line: its label on a row of its own, then the planned and the completed bar.
  const width = 660;
  const barArea = width - 70;
  const rowHeight = 78;
  const legendHeight = 36;
  const height = legendHeight + lines.length * rowHeight + 4;
  const max = Math.max(1, ...lines.map((l) => l.planned));
  const el = (name, attrs = {}, text) => {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const svg = el("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "report-chart-svg-title", class: "bars",
  });
  svg.append(el("title", { id: "report-chart-svg-title" }, t("report.chart_summary", {
    planned: count(report.total.planned), completed: count(report.total.completed),
  })));
  // Legend: outlined = planned, filled = completed (told by shape and words, not colour alone).
  svg.append(
    el("rect", { x: 1, y: 8, width: 18, height: 14, class: "bar-planned" }),
    el("text", { x: 26, y: 20, class: "legend" }, t("report.col_planned")),
    el("rect", { x: 180, y: 8, width: 18, height: 14, class: "bar-completed" }),
    el("text", { x: 205, y: 20, class: "legend" }, t("report.col_completed")),
  );
  lines.forEach((line, i) => {
    const y = legendHeight + i * rowHeight;
    const label = line.team ? `${line.team} · ${basisLabel(line)}` : basisLabel(line);
    svg.append(el("text", { x: 0, y: y + 16, class: "bar-label" }, label.length > 70 ? `${label.slice(0, 69)}…` : label));
    const planned = Math.max(2, (line.planned / max) * barArea);
    const completed = line.completed ? Math.max(2, (line.completed / max) * barArea) : 0;
    svg.append(
      el("rect", { x: 1, y: y + 24, width: planned, height: 20, class: "bar-planned" }),
      el("text", { x: planned + 8, y: y + 39, class: "bar-value" }, count(line.planned)),
      el("rect", { x: 1, y: y + 48, width: completed, height: 20, class: "bar-completed" }),
      el("text", { x: completed + 8, y: y + 63, class: "bar-value" }, count(line.completed)),
    );
  });
  root.append(svg);
}
