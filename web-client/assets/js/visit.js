// The staff call page: start the visit, join its room (rejoining by itself after a lost
// connection), end it.
import { api, ApiError } from "./api.js";
import { Call, getLocalMedia } from "./call.js";
import { CallView } from "./call-view.js";
import { LobbyPanel } from "./lobby-panel.js";
import { InviteForm } from "./invite.js";
import { wireTabletCall } from "./tablet-call.js";
import { ChatPanel } from "./chat-panel.js";
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
    const why = {
      unauthenticated: "error.session",
      visit_not_ready: "call.not_ready",
      visit_closed: "call.closed",
      not_found: "plan.not_found",
    }[e instanceof ApiError ? e.code : ""];
    return fail(t(why ?? "error.generic"));
  }
  $("#call-title").textContent = started.visit.citizen.display_name;
  const { stream } = await getLocalMedia();
  const call = new Call({
    token: started.media_token,
    room: visitId,
    localStream: stream,
    // After a lost connection: a fresh media token for the visit in progress.
    renewToken: async () => (await api.mediaToken(visitId)).media_token,
  });
  new CallView($("#call"), call, { onLeave: () => endVisit(call), leaveKey: "call.end_visit", screenShare: true });
  new LobbyPanel($("#lobby-panel"), call, $("#lobby-announce"), visitId);
  new ChatPanel($("#chat"), call, $("#chat-announce"));
  call.addEventListener("ended", (e) => done(e.detail.reason));
  $("#call").hidden = false;
  new InviteForm($("#invite"), visitId);
  $("#invite").hidden = false;
  wireTabletCall($("#tablet-call"), visitId, started.visit.citizen.id);
  try {
    await call.start();
  } catch {
    fail(t("call.failed"));
  }
}

/** "Afslut besøg" asks how it went (completed, no-show, technical failure) and for a note. */
function endVisit(call) {
  const dialog = $("#end-dialog");
  const form = $("#end-form");
  $("#end-error").textContent = "";
  form.onsubmit = async (event) => {
    event.preventDefault();
    const outcome = form.elements.outcome.value;
    const note = form.elements.note.value.trim();
    const submit = form.querySelector("[type=submit]");
    submit.disabled = true;
    try {
      await api.endVisit(visitId, note ? { outcome, note } : { outcome });
    } catch (e) {
      submit.disabled = false;
      // Gone already (ended elsewhere) is fine; anything else may be retried.
      if (!(e instanceof ApiError && e.status === 409)) {
        $("#end-error").textContent = t("end.failed");
        return;
      }
    }
    dialog.close();
    call.hangUp();
  };
  $("#end-cancel").onclick = () => dialog.close();
  dialog.showModal();
}

function done(reason) {
  if ($("#end-dialog").open) $("#end-dialog").close();
  $("#call").hidden = true;
  $("#lobby-panel").hidden = true;
  $("#invite").hidden = true;
  $("#tablet-call").hidden = true;
  $("#chat").hidden = true;
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
