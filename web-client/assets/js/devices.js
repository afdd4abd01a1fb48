// The staff member's citizen tablets (HTTP_API.md, "Registered citizen tablets"): pair a tablet
// by the code it shows, see the tablets of the citizens the staff member is responsible for
// (citizen, label and when it was paired, so two "Stue" tablets are told apart), unpair one (it
// is signed out at once). Calling a tablet is on the call page (tablet-call.js).
import { api, ApiError } from "./api.js";
import { lang, t } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);
const DAY_MS = 86_400_000;
/** How far back and ahead the staff member's visits are read to offer their citizens. */
const CITIZEN_WINDOW_DAYS = 60;
/** Citizen names by id, from the staff member's visits (the API has no citizen list yet). */
let citizens = new Map();
let devices = [];

/** Wires the tablets card on the visits page; `loggedOut` is called on a 401. */
export async function wireDevices(loggedOut) {
  $("#devices-form").addEventListener("submit", (event) => pair(event, loggedOut));
  try {
    citizens = await knownCitizens();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return loggedOut();
  }
  fillCitizens();
  await refresh(loggedOut);
}

async function knownCitizens() {
  const now = Date.now();
  const byId = new Map();
  let offset = 0;
  for (let pageNo = 0; pageNo < 5 && offset !== null && offset !== undefined; pageNo += 1) {
    const page = await api.visitsBetween(now - CITIZEN_WINDOW_DAYS * DAY_MS, now + CITIZEN_WINDOW_DAYS * DAY_MS, offset);
    for (const visit of page.visits) byId.set(visit.citizen.id, visit.citizen.display_name);
    offset = page.next_offset;
  }
  return new Map([...byId].sort((a, b) => a[1].localeCompare(b[1], "da")));
}

function fillCitizens() {
  const select = $("#devices-citizen");
  const choose = document.createElement("option");
  choose.value = "";
  choose.textContent = t("devices.choose_citizen");
  select.replaceChildren(choose);
  for (const [id, name] of citizens) {
    const option = document.createElement("option");
    option.value = id;
    option.textContent = name;
    select.append(option);
  }
}

async function refresh(loggedOut) {
  try {
    devices = (await api.devices()).devices;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return loggedOut();
    $("#devices-status").textContent = t("error.generic");
    return;
  }
  render(loggedOut);
}

function render(loggedOut) {
  const list = $("#devices-list");
  list.replaceChildren();
  for (const device of devices) {
    const item = document.createElement("li");
    item.className = "device";
    item.dataset.deviceId = device.id;
    const name = document.createElement("span");
    const citizen = device.citizen_display_name ?? citizens.get(device.citizen_id) ?? t("devices.unknown_citizen");
    name.textContent = device.label ? `${citizen} · ${device.label}` : citizen;
    const when = document.createElement("span");
    when.className = "muted";
    when.textContent = t("devices.paired_at", { when: pairedAt(device.paired_at) });
    const unpair = document.createElement("button");
    unpair.type = "button";
    unpair.className = "button";
    unpair.textContent = t("devices.unpair");
    unpair.setAttribute("aria-label", t("devices.unpair_named", { name: name.textContent }));
    unpair.addEventListener("click", async () => {
      unpair.disabled = true;
      try {
        await api.unpairDevice(device.id);
        $("#devices-status").textContent = t("devices.unpaired", { name: citizen });
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) return loggedOut();
        unpair.disabled = false;
        $("#devices-status").textContent = t("error.generic");
        return;
      }
      await refresh(loggedOut);
    });
    item.append(name, " ", when, " ", unpair);
    list.append(item);
  }
  if (devices.length === 0) {
    const none = document.createElement("li");
    none.className = "muted";
    none.textContent = t("devices.none");
    list.append(none);
  }
}

async function pair(event, loggedOut) {
  event.preventDefault();
  const error = $("#devices-error");
  error.textContent = "";
  const code = $("#devices-code").value.trim().toUpperCase();
  const citizenId = $("#devices-citizen").value;
  if (!citizenId) {
    error.textContent = t("devices.choose_citizen_first");
    return;
  }
  const submit = $("#devices-submit");
  submit.disabled = true;
  try {
    await api.pairDevice(code, citizenId, $("#devices-label").value.trim());
    $("#devices-code").value = "";
    $("#devices-label").value = "";
    $("#devices-status").textContent = t("devices.paired", { name: citizens.get(citizenId) ?? "" });
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return loggedOut();
    error.textContent = t({
      unknown_code: "devices.unknown_code",
      rate_limited: "devices.rate_limited",
      not_responsible: "devices.not_responsible",
    }[e instanceof ApiError ? e.code : ""] ?? "error.generic");
    return;
  } finally {
    submit.disabled = false;
  }
  await refresh(loggedOut);
}

/** When a tablet was paired, in Copenhagen, e.g. "8. dec. 2026 09.30". */
function pairedAt(iso) {
  return new Intl.DateTimeFormat(lang() === "da" ? "da-DK" : "en-GB", {
    timeZone: "Europe/Copenhagen",
    dateStyle: "medium",
    timeStyle: "short",
  }).format(new Date(iso));
}
