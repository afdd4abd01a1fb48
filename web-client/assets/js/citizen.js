// The citizen's page: one big "Deltag" button, then the call. No account, no install.
import { api, ApiError } from "./api.js";
import { Call, getLocalMedia } from "./call.js";
import { CallView } from "./call-view.js";
import { t, translate, languageSwitch, clock } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);
const secret = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() ?? "");

function main() {
  translate();
  languageSwitch($("#lang"));
  $("#join").addEventListener("click", join);
}

function say(text) {
  $("#message").textContent = text;
}

async function join() {
  const button = $("#join");
  button.disabled = true;
  button.textContent = t("citizen.joining");
  say("");
  let joined;
  try {
    joined = await api.joinWithLink(secret);
  } catch (e) {
    button.disabled = false;
    button.textContent = t("citizen.join");
    return say(explain(e));
  }
  // Ask for camera and microphone inside the click, so the browser shows its prompt.
  const { stream, error } = await getLocalMedia();
  if (stream.getTracks().length === 0) {
    say(t("citizen.no_devices"));
    console.info("no local media", error);
  } else if (stream.getVideoTracks().length === 0) {
    say(t("citizen.no_camera"));
  }
  const call = new Call({ token: joined.media_token, room: joined.visit.id, localStream: stream });
  new CallView($("#call"), call, { onLeave: () => call.hangUp(), leaveKey: "call.hang_up" });
  call.addEventListener("ended", (e) => finished(e.detail.reason));
  $("#lobby").hidden = true;
  $("#call").hidden = false;
  $("#call-title").textContent = t("citizen.with", { name: joined.visit.staff_display_name });
  try {
    await call.start();
  } catch {
    finished("disconnected");
  }
}

function explain(error) {
  if (!(error instanceof ApiError)) return t("error.generic");
  switch (error.code) {
    case "not_yet_open": return t("citizen.not_yet_open", { time: clock(error.body.opens_at) });
    case "link_expired": return t("citizen.link_expired");
    case "unknown_link": return t("citizen.unknown_link");
    case "rate_limited": return t("citizen.rate_limited");
    case "network": return t("citizen.no_connection");
    default: return t("error.generic");
  }
}

function finished(reason) {
  $("#call").hidden = true;
  $("#lobby").hidden = true;
  const key = reason === "replaced" ? "call.replaced"
    : reason === "media_failed" || reason === "disconnected" ? "call.failed"
    : "call.ended";
  $("#done-text").textContent = t(key);
  $("#done").hidden = false;
  $("#done").focus();
}

main();
