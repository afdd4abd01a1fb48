// The ops page: live calls and each participant's connection quality (opaque ids and roles,
// never names), failed joins in the last hour by reason, node health. Refreshes every 2 s.
// Everything is written with textContent; every text comes from the i18n catalogues.
import { api, ApiError } from "./api.js";
import { t, translate, languageSwitch, onLanguageChange, clock } from "./i18n.js";

const REFRESH_MS = 2000;
const $ = (selector) => document.querySelector(selector);
let last = null;
let lastError = null;

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// Ids are UUIDv7: the first digits are a timestamp, the last ones tell ids apart.
const shortId = (id) => String(id).slice(-8);

const number = (value, unit) =>
  value === null || value === undefined ? t("ops.none") : t(unit, { n: Number(value).toLocaleString(document.documentElement.lang) });

const COLUMNS = [
  ["ops.col.participant", (p) => `${t(`ops.role.${p.role}`)} · ${shortId(p.participant_id)}`],
  ["ops.col.state", (p) => t(`ops.state.${p.state}`)],
  ["ops.col.quality", (p) => t(`quality.${p.quality}`)],
  ["ops.col.rtt", (p) => number(p.rtt_ms, "ops.unit.ms")],
  ["ops.col.jitter", (p) => number(p.jitter_ms, "ops.unit.ms")],
  ["ops.col.loss", (p) => number(p.loss_pct, "ops.unit.pct")],
  ["ops.col.in", (p) => number(p.bitrate_in_kbps, "ops.unit.kbps")],
  ["ops.col.out", (p) => number(p.bitrate_out_kbps, "ops.unit.kbps")],
  ["ops.col.estimate", (p) => number(p.estimate_kbps, "ops.unit.kbps")],
  ["ops.col.layer", (p) => (p.layer ? t(`ops.layer.${p.layer}`) : t("ops.none"))],
  ["ops.col.video", (p) => (p.video_paused ? t("ops.video.paused") : t("ops.video.on"))],
];

function renderCall(call) {
  const poor = call.participants.filter((p) => p.quality === "poor").length;
  const title = el("h3", {
    text: t("ops.call", { time: clock(call.started_at), worker: call.worker, n: call.participants.length }),
  });
  const table = el("table", { class: "ops-table" });
  const caption = t("ops.call.caption", { id: shortId(call.room) });
  table.append(el("caption", { class: "visually-hidden", text: caption }));
  const head = el("tr", {}, COLUMNS.map(([key]) => el("th", { scope: "col", text: t(key) })));
  table.append(el("thead", {}, [head]));
  const body = el("tbody");
  for (const p of call.participants) {
    const row = el("tr", { dataset: { quality: p.quality, participant: p.participant_id } });
    for (const [key, value] of COLUMNS) {
      const cell = el(key === "ops.col.participant" ? "th" : "td", key === "ops.col.participant" ? { scope: "row" } : {});
      if (key === "ops.col.quality") {
        cell.append(el("span", { class: "ops-quality", dataset: { level: p.quality }, text: value(p) }));
      } else {
        cell.textContent = value(p);
      }
      row.append(cell);
    }
    body.append(row);
  }
  table.append(body);
  const article = el("article", { class: "card ops-call", dataset: { room: call.room, poor: poor > 0 ? "true" : "false" } }, [title]);
  if (poor > 0) article.append(el("p", { class: "ops-alert", text: t("ops.call.poor", { n: poor }) }));
  // Wide tables scroll sideways on small screens: the region takes keyboard focus for that.
  article.append(el("div", { class: "ops-scroll", tabindex: "0", role: "region", "aria-label": caption }, [table]));
  return article;
}

function render() {
  if (lastError) {
    $("#ops-status").textContent = lastError;
  }
  if (!last) return;
  const calls = $("#ops-calls");
  calls.replaceChildren(...last.calls.map(renderCall));
  $("#ops-no-calls").hidden = last.calls.length > 0;

  const failures = Object.entries(last.join_failures_last_hour ?? {});
  $("#ops-failures").replaceChildren(
    ...failures.map(([reason, count]) =>
      el("li", { dataset: { reason } }, [
        el("span", { text: t(`ops.reason.${reason}`) }),
        el("strong", { text: String(count) }),
      ])),
  );
  $("#ops-no-failures").hidden = failures.length > 0;

  $("#ops-nodes").replaceChildren(
    ...last.nodes.map((node) =>
      el("li", { dataset: { health: node.health } }, [
        el("span", { text: t(`ops.health.${node.health}`) }),
        el("span", { text: t("ops.node", { rooms: node.rooms, participants: node.participants, workers: node.workers }) }),
      ])),
  );
  const time = new Intl.DateTimeFormat(document.documentElement.lang === "da" ? "da-DK" : "en-GB", {
    timeZone: "Europe/Copenhagen", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).format(new Date());
  $("#ops-updated").textContent = t("ops.updated", { time });
}

async function refresh() {
  try {
    last = await api.opsCalls();
    lastError = null;
    $("#ops-status").textContent = "";
    $("#ops-login").hidden = true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      lastError = t("ops.unauthenticated");
      $("#ops-login").hidden = false;
    } else {
      lastError = t("ops.unreachable");
    }
  }
  render();
  setTimeout(refresh, REFRESH_MS);
}

translate();
languageSwitch($("#lang"));
onLanguageChange(() => render());
refresh();
