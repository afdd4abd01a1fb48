// The citizen's page: a check of camera, microphone and connection with plain advice, one big
// "Deltag" button, then the call — which reconnects by itself. No account, no install.
import { api, ApiError } from "./api.js";
import { Call, getLocalMedia } from "./call.js";
import { CallView, prepareRemoteVideo, keepScreenOn } from "./call-view.js";
import { ChatPanel } from "./chat-panel.js";
import { checkDevices, checkConnection, levelMeter } from "./precheck.js";
import { t, translate, languageSwitch, onLanguageChange, clock } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);
const secret = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() ?? "");

/** The latest check: per row "pending" | "ok" | a problem; the stream it opened. */
let check = { camera: "pending", microphone: "pending", connection: "pending", stream: null };
let checking = Promise.resolve();
let stopMeter = () => {};
let joining = false;
/** The link exchanged on arrival, reused by Deltag while its media token is fresh. */
let early = null;
/** A media token is valid 10 minutes for joining; reuse one only while well inside that. */
const EARLY_TOKEN_MAX_AGE_MS = 4 * 60 * 1000;
/** Waiting for a link to open is only worth it when it opens within this. */
const WAIT_FOR_OPEN_MAX_MS = 2 * 60 * 60 * 1000;

function main() {
  translate();
  languageSwitch($("#lang"));
  onLanguageChange(() => {
    renderCheck();
    if (message) say(message.key, message.params);
  });
  $("#join").addEventListener("click", join);
  $("#recheck").addEventListener("click", () => { checking = runCheck(); });
  $("#again").addEventListener("click", () => location.reload());
  checking = runCheck();
  probeLink();
}

/**
 * Exchanges the link once on arrival so a dead, expired or not-yet-open link is explained
 * before anyone presses Deltag; an early citizen is told when to come, and the page says so
 * by itself when the time comes.
 */
async function probeLink() {
  try {
    early = { joined: await api.joinWithLink(secret), at: Date.now() };
    say();
  } catch (e) {
    early = null;
    say(...explain(e));
    if (e instanceof ApiError && e.code === "not_yet_open") {
      const wait = new Date(e.body.opens_at).getTime() - Date.now() + 1000;
      if (wait > 0 && wait < WAIT_FOR_OPEN_MAX_MS) setTimeout(() => { if (!joining) probeLink(); }, wait);
    }
  }
}

/** The lobby's message, kept as a text key so a language switch re-renders it. */
let message = null;
function say(key = null, params = {}) {
  message = key ? { key, params } : null;
  $("#message").textContent = message ? t(key, params) : "";
}

/** Camera, microphone and connection, in parallel; the page shows each as it finishes. */
async function runCheck() {
  stopMeter();
  for (const track of check.stream?.getTracks() ?? []) track.stop();
  check = { camera: "pending", microphone: "pending", connection: "pending", stream: null };
  $("#recheck").disabled = true;
  renderCheck();
  const devices = checkDevices().then((result) => {
    if (joining) {
      for (const track of result.stream.getTracks()) track.stop();
      return;
    }
    check.stream = result.stream;
    check.camera = result.camera;
    check.microphone = result.microphone;
    const preview = $("#preview");
    preview.muted = true;
    preview.srcObject = result.stream.getVideoTracks().length ? result.stream : null;
    if (preview.srcObject) preview.play().catch(() => { /* autoplay attribute retries */ });
    stopMeter = levelMeter(result.stream, $("#level"));
    renderCheck();
  });
  const connection = checkConnection().then((ok) => {
    check.connection = ok ? "ok" : "failed";
    renderCheck();
  });
  await Promise.all([devices, connection]);
  $("#recheck").disabled = false;
}

function renderCheck() {
  const rows = { camera: check.camera, microphone: check.microphone, connection: check.connection };
  for (const [name, state] of Object.entries(rows)) {
    const row = $(`#check-${name}`);
    row.dataset.state = state === "pending" ? "pending" : state === "ok" ? "ok" : "problem";
    row.querySelector(".check-result").textContent = t(`check.${state}`);
  }
  $("#preview-off").hidden = check.camera === "ok" || check.camera === "pending";
  $("#preview").hidden = !$("#preview-off").hidden;
  $("#level").closest(".level").hidden = check.microphone !== "ok";
  const advice = adviceKeys();
  const box = $("#advice");
  box.replaceChildren(...advice.map((key) => {
    const p = document.createElement("p");
    p.textContent = t(key);
    return p;
  }));
  box.dataset.state = advice.length === 1 && advice[0] === "check.all_ok" ? "ok" : advice.length ? "problem" : "pending";
}

/** Plain-language advice for what failed; "all works" when nothing did. */
function adviceKeys() {
  const { camera, microphone, connection } = check;
  const keys = [];
  if (camera === "denied" || microphone === "denied") keys.push("advice.denied");
  else if (camera === "unsupported") keys.push("advice.unsupported");
  else {
    if (microphone === "missing" || microphone === "busy") keys.push(`advice.microphone_${microphone}`);
    if (camera === "missing" || camera === "busy") keys.push(`advice.camera_${camera}`);
  }
  if (connection === "failed") keys.push("advice.connection");
  if (keys.length === 0 && [camera, microphone, connection].every((s) => s === "ok")) keys.push("check.all_ok");
  return keys;
}

async function join() {
  const button = $("#join");
  // Made inside the click, before any await, so iOS lets it play the other person's sound.
  const remoteVideo = prepareRemoteVideo();
  button.disabled = true;
  button.textContent = t("citizen.joining");
  say();
  let joined;
  try {
    joined = early && Date.now() - early.at < EARLY_TOKEN_MAX_AGE_MS
      ? early.joined
      : await api.joinWithLink(secret);
    early = null;
  } catch (e) {
    button.disabled = false;
    button.textContent = t("citizen.join");
    return say(...explain(e));
  }
  await checking;
  joining = true;
  stopMeter();
  let stream = check.stream;
  if (!stream || stream.getTracks().length === 0) {
    // The check got nothing; asking again from the click may bring up the browser's prompt.
    const retry = await getLocalMedia();
    stream = retry.stream;
  }
  $("#preview").srcObject = null;

  const call = new Call({
    token: joined.media_token,
    room: joined.visit.id,
    localStream: stream,
    // After a lost connection: exchange the link again for a fresh media token.
    renewToken: async () => (await api.joinWithLink(secret)).media_token,
  });
  const view = new CallView($("#call"), call, { onLeave: () => call.hangUp(), leaveKey: "call.hang_up", remoteVideo, waitingKey: "citizen.waiting" });
  if (stream.getTracks().length === 0) view.setNote("citizen.no_devices");
  else if (stream.getVideoTracks().length === 0) view.setNote("citizen.no_camera");
  else if (stream.getAudioTracks().length === 0) view.setNote("citizen.no_microphone");
  new ChatPanel($("#chat"), call, $("#chat-announce"));
  call.addEventListener("ended", (e) => finished(e.detail.reason));
  // The waiting room: a calm screen until staff let us in (again after a restart of the
  // server, which forgets who was let in); then the call.
  call.addEventListener("waiting", () => {
    const self = $("#waiting-self");
    self.muted = true;
    self.srcObject = stream.getVideoTracks().length ? stream : null;
    self.hidden = !self.srcObject;
    const focused = $("#call").contains(document.activeElement) || document.activeElement === $("#call");
    $("#call").hidden = true;
    $("#waiting-room").hidden = false;
    if (focused || document.activeElement === document.body) $("#waiting-room").focus();
  });
  call.addEventListener("joined", () => {
    if ($("#waiting-room").hidden) return;
    $("#waiting-room").hidden = true;
    $("#waiting-self").srcObject = null;
    $("#call").hidden = false;
    $("#call").focus();
  });
  $("#waiting-leave").onclick = () => call.hangUp();
  keepScreenOn(call);
  $("#lobby").hidden = true;
  $("#call").hidden = false;
  $("#call-title").textContent = t("citizen.with", { name: joined.visit.staff_display_name });
  $("#call-title").hidden = false;
  $("#call").setAttribute("aria-labelledby", "call-title");
  $("#call").focus(); // the button that had focus is gone with the lobby
  try {
    await call.start();
  } catch {
    finished("disconnected");
  }
}

/** [text key, params] for why the link exchange failed. */
function explain(error) {
  if (!(error instanceof ApiError)) return ["error.generic"];
  switch (error.code) {
    case "not_yet_open": return ["citizen.not_yet_open", { time: clock(error.body.opens_at) }];
    case "link_expired": return ["citizen.link_expired"];
    case "unknown_link": return ["citizen.unknown_link"];
    case "rate_limited": return ["citizen.rate_limited"];
    case "network": return ["citizen.no_connection"];
    default: return ["error.generic"];
  }
}

/** The end screen. Hanging up oneself (perhaps by mistake) or a lost line can be undone. */
function finished(reason) {
  $("#call").hidden = true;
  $("#chat").hidden = true;
  $("#lobby").hidden = true;
  $("#waiting-room").hidden = true;
  $("#waiting-self").srcObject = null;
  const key = reason === "replaced" ? "call.replaced"
    : reason === "left" ? "citizen.left"
    : reason === "denied" ? "citizen.denied"
    : reason === "access_revoked" ? "citizen.revoked"
    : reason === "cancelled" ? "citizen.cancelled"
    : reason === "media_failed" || reason === "disconnected" ? "call.failed"
    : "call.ended";
  const again = key === "citizen.left" ? "citizen.rejoin" : key === "call.failed" ? "citizen.try_again" : null;
  const render = () => {
    $("#done-text").textContent = t(key);
    if (again) $("#again").textContent = t(again);
  };
  render();
  onLanguageChange(render);
  $("#again").hidden = !again;
  $("#done").hidden = false;
  $("#done").focus();
}

main();
