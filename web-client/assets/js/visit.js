// The staff call page: start the visit, join its room, end it.
import { api, ApiError } from "./api.js";
import { Call, getLocalMedia } from "./call.js";
import { CallView } from "./call-view.js";
import { InviteForm } from "./invite.js";
import { t, translate, languageSwitch } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);
const visitId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() ?? "");

async function main() {
  translate();
  languageSwitch($("#lang"));
  let started;
  try {
    started = await api.startVisit(visitId);
  } catch (e) {
    return fail(e instanceof ApiError && e.status === 401 ? t("error.session") : t("error.generic"));
  }
  $("#call-title").textContent = started.visit.citizen.display_name;
  const { stream } = await getLocalMedia();
  const call = new Call({ token: started.media_token, room: visitId, localStream: stream });
  new CallView($("#call"), call, { onLeave: () => endVisit(call), leaveKey: "call.end_visit" });
  call.addEventListener("ended", (e) => done(e.detail.reason));
  $("#call").hidden = false;
  new InviteForm($("#invite"), visitId);
  $("#invite").hidden = false;
  try {
    await call.start();
  } catch {
    fail(t("call.failed"));
  }
}

async function endVisit(call) {
  $("#call").querySelector("[data-role=leave]").disabled = true;
  try { await api.endVisit(visitId); } catch { /* the room closes below either way */ }
  call.hangUp();
}

function done(reason) {
  $("#call").hidden = true;
  $("#invite").hidden = true;
  const key = reason === "replaced" ? "call.replaced"
    : reason === "media_failed" || reason === "disconnected" ? "call.failed"
    : "call.ended_staff";
  $("#done-text").textContent = t(key);
  $("#done").hidden = false;
}

function fail(text) {
  $("#call").hidden = true;
  $("#done-text").textContent = text;
  $("#done").hidden = false;
}

main();
