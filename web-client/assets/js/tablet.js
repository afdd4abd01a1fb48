// A registered citizen tablet (HTTP_API.md, "Registered citizen tablets"): shows a pairing code
// until staff pair it, then waits for calls; a call rings with a green and a red button.
// The device secret is an HttpOnly cookie: this script never sees it.
import { ApiError } from "./api.js";
import { Call, getLocalMedia } from "./call.js";
import { CallView } from "./call-view.js";
import { t, translate, languageSwitch } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);
const POLL_MS = 3000;
let declined = null;
let inCall = false;

async function request(method, path) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "x-skaerm-csrf": "1" },
  });
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function show(section) {
  for (const id of ["pairing", "waiting", "ringing", "admission", "call"]) $(`#${id}`).hidden = id !== section;
  if (section === "ringing") ring.start();
  else ring.stop();
}

/** The ring tone: two short beeps every two seconds (Web Audio, no file to load). */
const ring = {
  context: null,
  timer: null,
  start() {
    if (this.timer) return;
    try {
      this.context ??= new AudioContext();
      this.context.resume().catch(() => {});
    } catch {
      return; // no audio: the screen still shows the call
    }
    const beep = () => {
      const now = this.context.currentTime;
      for (const at of [0, 0.4]) {
        const tone = this.context.createOscillator();
        const gain = this.context.createGain();
        tone.frequency.value = 880;
        gain.gain.setValueAtTime(0.3, now + at);
        gain.gain.setValueAtTime(0, now + at + 0.25);
        tone.connect(gain).connect(this.context.destination);
        tone.start(now + at);
        tone.stop(now + at + 0.3);
      }
    };
    beep();
    this.timer = setInterval(beep, 2000);
    document.body.dataset.ringing = "true";
  },
  stop() {
    clearInterval(this.timer);
    this.timer = null;
    delete document.body.dataset.ringing;
  },
};

async function tick() {
  if (inCall) return;
  try {
    const me = await request("GET", "/api/device/me").catch(async (e) => {
      if (e instanceof ApiError && e.status === 401) {
        const pairing = await request("POST", "/api/device/pairing");
        $("#pairing-code").textContent = pairing.code;
        return { state: "pending" };
      }
      throw e;
    });
    $("#message").textContent = "";
    if (me.state === "pending") return show("pairing");
    $("#waiting-title").textContent = t("tablet.paired", { name: me.citizen.display_name });
    const call = await request("GET", "/api/device/call");
    if (call && call.visit.id !== declined) {
      $("#ringing-title").textContent = t("tablet.calling", { name: call.visit.staff_display_name });
      $("#accept").onclick = () => accept(call);
      $("#decline").onclick = () => { declined = call.visit.id; show("waiting"); };
      return show("ringing");
    }
    show("waiting");
  } catch {
    $("#message").textContent = t("citizen.no_connection");
  }
}

async function accept(ringing) {
  inCall = true;
  ring.stop();
  // Fetch a fresh token inside the click (the one from the ring may be minutes old).
  const fresh = (await request("GET", "/api/device/call").catch(() => null)) || ringing;
  const { stream } = await getLocalMedia();
  const call = new Call({ token: fresh.media_token, room: fresh.visit.id, localStream: stream });
  new CallView($("#call"), call, { onLeave: () => call.hangUp(), leaveKey: "call.hang_up" });
  // Answered, the tablet joins as the citizen and goes straight into the call: the staff member
  // called it, so answering is the admission. (Should the call have stopped ringing meanwhile,
  // the relay puts it in the waiting room like a citizen from a link.)
  call.addEventListener("waiting", () => show("admission"));
  call.addEventListener("joined", () => show("call"));
  call.addEventListener("ended", () => {
    inCall = false;
    declined = fresh.visit.id;
    $("#call").replaceChildren();
    $("#call-title").hidden = true;
    show("waiting");
  });
  $("#call-title").textContent = t("citizen.with", { name: fresh.visit.staff_display_name });
  $("#call-title").hidden = false;
  show("call");
  try {
    await call.start();
  } catch {
    inCall = false;
    show("waiting");
  }
}

translate();
languageSwitch($("#lang"));
tick();
setInterval(tick, POLL_MS);
