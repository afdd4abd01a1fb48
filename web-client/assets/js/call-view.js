// The in-call screen shared by staff and citizen: the other person large, yourself small,
// further participants (an invited relative, interpreter or colleague) as named tiles below,
// big labelled buttons, a connection-quality line and a live region for what happens.
import { t, onLanguageChange } from "./i18n.js";

export class CallView {
  /**
   * @param {HTMLElement} root   an empty container; the view fills it
   * @param {Call} call
   * @param {{onLeave: () => void, leaveKey: string, remoteVideo?: HTMLVideoElement,
   *   waitingKey?: string, screenShare?: boolean}} options  `waitingKey`: the text while nobody
   *   else is in the room; `screenShare`: offer a "share screen" button (staff)
   *   `remoteVideo`: an element from prepareRemoteVideo(), made in the person's click so iOS
   *   lets it play sound
   */
  constructor(root, call, { onLeave, leaveKey, remoteVideo, waitingKey = "call.waiting_for_other", screenShare = false }) {
    root.replaceChildren(buildCallDom());
    if (remoteVideo) root.querySelector("[data-role=remote-video]").replaceWith(remoteVideo);
    this.root = root;
    this.call = call;
    this.remoteVideo = root.querySelector("[data-role=remote-video]");
    this.remoteName = root.querySelector("[data-role=remote-name]");
    this.remoteMuted = root.querySelector("[data-role=remote-muted]");
    this.waiting = root.querySelector("[data-role=waiting]");
    this.waiting.dataset.i18n = waitingKey;
    this.waiting.textContent = t(waitingKey);
    this.selfVideo = root.querySelector("[data-role=self-video]");
    this.status = root.querySelector("[data-role=status]");
    this.quality = root.querySelector("[data-role=quality]");
    this.qualityText = root.querySelector("[data-role=quality-text]");
    this.reconnectNotice = root.querySelector("[data-role=reconnecting]");
    this.pausedNotice = root.querySelector("[data-role=video-paused]");
    this.missingNotice = root.querySelector("[data-role=media-missing]");
    /** participant id → name of those whose picture and sound the relay says are not arriving */
    this.missing = new Map();
    this.note = root.querySelector("[data-role=note]");
    this.noteKey = null;
    this.micButton = root.querySelector("[data-role=mic]");
    this.camButton = root.querySelector("[data-role=cam]");
    this.leaveButton = root.querySelector("[data-role=leave]");
    this.soundButton = root.querySelector("[data-role=sound]");
    this.shareButton = root.querySelector("[data-role=share]");
    this.sharing = false;
    this.leaveKey = leaveKey;
    this.micOn = true;
    this.camOn = true;
    this.remoteId = null;
    this.qualityLevel = null;
    this.reconnecting = false;
    /** Participants whose video the relay paused for us (null: the relay did not say whose). */
    this.paused = new Set();
    this.othersStrip = root.querySelector("[data-role=others]");
    /** participant id → {tile, video, label} of everyone beyond the first remote */
    this.others = new Map();

    this.selfVideo.muted = true; // before srcObject: iOS only autoplays muted video inline
    this.selfVideo.srcObject = call.localStream;
    this.micButton.disabled = call.localStream.getAudioTracks().length === 0;
    this.camButton.disabled = call.localStream.getVideoTracks().length === 0;
    this.micOn = !this.micButton.disabled;
    this.camOn = !this.camButton.disabled;

    this.micButton.addEventListener("click", () => {
      this.micOn = !this.micOn;
      call.setMicrophone(this.micOn);
      this.render();
    });
    this.camButton.addEventListener("click", () => {
      this.camOn = !this.camOn;
      call.setCamera(this.camOn);
      this.render();
    });
    this.leaveButton.addEventListener("click", () => onLeave());
    this.shareButton.hidden = !(screenShare && navigator.mediaDevices?.getDisplayMedia
      && call.localStream.getVideoTracks().length > 0);
    this.shareButton.addEventListener("click", () => (this.sharing ? this.stopSharing() : this.startSharing()));
    this.soundButton.addEventListener("click", () => this.playRemote());

    call.addEventListener("remote-stream", (e) => {
      this.missing.delete(e.detail.participantId); // their media reaches us: it arrives
      this.showRemote(e.detail.participantId, e.detail.stream);
    });
    call.addEventListener("media-not-arriving", (e) => {
      this.missing.set(e.detail.participantId, call.participants.get(e.detail.participantId)?.display_name ?? "");
      this.render();
    });
    call.addEventListener("media-arriving", (e) => {
      this.missing.delete(e.detail.participantId);
      this.render();
    });
    call.addEventListener("participant-joined", (e) => this.announce(t("call.joined", { name: e.detail.participant.display_name })));
    call.addEventListener("participant-updated", () => this.render());
    call.addEventListener("participant-left", (e) => {
      this.paused.delete(e.detail.participant_id);
      // A rejoin ("replaced") of someone whose media does not arrive keeps the notice.
      if (e.detail.reason !== "replaced") this.missing.delete(e.detail.participant_id);
      const other = this.others.get(e.detail.participant_id);
      if (other) {
        other.tile.remove();
        this.others.delete(e.detail.participant_id);
      }
      if (e.detail.participant_id === this.remoteId) {
        this.remoteId = null;
        this.remoteVideo.srcObject = null;
        // Someone else takes the large view.
        const [nextId, next] = this.others.entries().next().value ?? [];
        if (nextId) {
          const stream = next.video.srcObject;
          next.tile.remove();
          this.others.delete(nextId);
          this.showRemote(nextId, stream);
        }
      }
      const name = e.detail.participant?.display_name ?? "";
      if (e.detail.reason !== "replaced") this.announce(t("call.left", { name }));
      this.render();
    });
    call.addEventListener("state", (e) => {
      if (e.detail.state === "connected") this.announce(t("call.connected"));
    });
    call.addEventListener("quality", (e) => {
      this.qualityLevel = e.detail.level;
      this.render();
    });
    call.addEventListener("joined", () => {
      this.paused.clear(); // a new session starts with everything flowing
      this.missing.clear();
      if (this.remoteId && !call.participants.has(this.remoteId)) {
        this.remoteId = null;
        this.remoteVideo.srcObject = null;
      }
      this.render();
    });
    call.addEventListener("reconnecting", () => {
      this.reconnecting = true;
      this.qualityLevel = null;
      this.announce("");
      this.render();
    });
    call.addEventListener("reconnected", () => {
      this.reconnecting = false;
      this.announce(t("call.reconnected"));
      this.render();
    });
    call.addEventListener("video-paused", (e) => {
      this.paused.add(e.detail.participantId);
      this.render();
    });
    call.addEventListener("video-resumed", (e) => {
      if (e.detail.participantId === null) this.paused.clear();
      else this.paused.delete(e.detail.participantId);
      if (this.paused.size === 0) this.announce(t("call.video_resumed"));
      this.render();
    });
    onLanguageChange(() => this.render());
    this.announce(t("call.connecting"));
    this.render();
  }

  async startSharing() {
    let track;
    try {
      const display = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      track = display.getVideoTracks()[0];
    } catch {
      return this.announce(t("call.share_failed"));
    }
    if (!track) return;
    track.addEventListener("ended", () => this.stopSharing()); // the browser's own "stop" bar
    await this.call.shareScreen(track);
    this.sharing = true;
    this.selfVideo.srcObject = new MediaStream([track]);
    this.selfVideo.classList.add("screen");
    this.announce(t("call.sharing"));
    this.render();
  }

  async stopSharing() {
    if (!this.sharing) return;
    const track = this.call.screenTrack;
    this.sharing = false;
    await this.call.shareScreen(null);
    track?.stop();
    this.selfVideo.srcObject = this.call.localStream;
    this.selfVideo.classList.remove("screen");
    this.announce(t("call.sharing_stopped"));
    this.render();
  }

  showRemote(participantId, stream) {
    if (this.remoteId && this.remoteId !== participantId) return this.showOther(participantId, stream);
    this.remoteId = participantId;
    this.remoteVideo.srcObject = stream;
    this.playRemote();
    this.render();
  }

  showOther(participantId, stream) {
    let other = this.others.get(participantId);
    if (!other) {
      const video = element("video", { class: "other-video", autoplay: "", playsinline: "", "data-participant": participantId });
      const label = element("span", { class: "other-name" });
      const tile = element("figure", { class: "other" }, [video, element("figcaption", {}, [label])]);
      this.othersStrip.append(tile);
      other = { tile, video, label };
      this.others.set(participantId, other);
    }
    other.video.srcObject = stream;
    other.video.play().catch(() => { this.soundButton.hidden = false; });
    this.render();
  }

  playRemote() {
    // Autoplay with sound needs the user's gesture (the Start/Deltag click); if the browser
    // still refuses, offer a button.
    const videos = [this.remoteVideo, ...[...this.others.values()].map((o) => o.video)];
    Promise.all(videos.filter((v) => v.srcObject).map((v) => v.play())).then(
      () => { this.soundButton.hidden = true; },
      () => { this.soundButton.hidden = false; },
    );
  }

  /** A lasting note under the picture (e.g. "your camera cannot be used"), by text key. */
  setNote(key) {
    this.noteKey = key;
    this.render();
  }

  announce(text) {
    this.status.textContent = text;
  }

  render() {
    // The person on screen; someone who sends no media yet is still named.
    const remote = (this.remoteId && this.call.participants.get(this.remoteId))
      || this.call.participants.values().next().value || null;
    const anyone = this.call.participants.size > 0;
    this.waiting.hidden = anyone;
    this.remoteName.textContent = remote?.display_name ?? "";
    const notes = [];
    if (remote?.muted?.audio) notes.push(t("call.muted"));
    if (remote?.muted?.video) notes.push(t("call.camera_off"));
    this.remoteMuted.textContent = notes.join(" · ");
    for (const [id, other] of this.others) {
      other.label.textContent = this.call.participants.get(id)?.display_name ?? "";
    }
    this.micButton.textContent = t(this.micOn ? "call.mic_off" : "call.mic_on");
    this.micButton.setAttribute("aria-pressed", String(!this.micOn));
    this.camButton.textContent = t(this.camOn ? "call.cam_off" : "call.cam_on");
    this.camButton.setAttribute("aria-pressed", String(!this.camOn));
    this.camButton.disabled = this.sharing || this.call.localStream.getVideoTracks().length === 0;
    this.shareButton.textContent = t(this.sharing ? "call.share_stop" : "call.share");
    this.shareButton.setAttribute("aria-pressed", String(this.sharing));
    this.leaveButton.textContent = t(this.leaveKey);
    this.quality.hidden = !this.qualityLevel;
    if (this.qualityLevel) {
      this.qualityText.textContent = `${t("call.quality")}: ${t(`quality.${this.qualityLevel}`)}`;
      this.quality.dataset.level = this.qualityLevel;
    }
    // Notices are live regions that stay in the page; only their text changes.
    this.reconnectNotice.textContent = this.reconnecting ? t("call.reconnecting") : "";
    this.pausedNotice.textContent = this.paused.size > 0 && !this.reconnecting ? t("call.video_paused") : "";
    this.missingNotice.textContent = [...this.missing.values()]
      .map((name) => t("call.media_not_arriving", { name }))
      .join(" ");
    this.note.textContent = this.noteKey ? t(this.noteKey) : "";
  }
}

function element(tag, attributes = {}, children = []) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "hidden") el.hidden = value;
    else el.setAttribute(name, value);
  }
  el.append(...children);
  return el;
}

/**
 * Keeps a tablet's screen on while the call lasts (Screen Wake Lock API where the browser has
 * it); the lock is dropped when the page is hidden, so it is asked for again on return.
 */
export function keepScreenOn(call) {
  if (!navigator.wakeLock?.request) return;
  let lock = null;
  const request = () => {
    if (call.ended || document.visibilityState !== "visible") return;
    navigator.wakeLock.request("screen").then((l) => { lock = l; }, () => { /* not allowed: fine */ });
  };
  document.addEventListener("visibilitychange", request);
  call.addEventListener("ended", () => {
    document.removeEventListener("visibilitychange", request);
    lock?.release().catch(() => {});
  });
  request();
}

function remoteVideoElement() {
  return element("video", { "data-role": "remote-video", class: "remote-video", autoplay: "", playsinline: "" });
}

/**
 * The remote video element, to be made inside the person's click (before any await): calling
 * play() there lets iOS Safari play the remote sound later without another tap.
 */
export function prepareRemoteVideo() {
  const video = remoteVideoElement();
  video.play().catch(() => { /* nothing to play yet; the gesture is what counts */ });
  return video;
}

/** The call screen's elements; texts are filled by render(). */
function buildCallDom() {
  return element("div", { class: "call-layout" }, [
    element("div", { class: "stage" }, [
      remoteVideoElement(),
      element("p", { "data-role": "waiting", class: "waiting", "data-i18n": "call.waiting_for_other" }, [t("call.waiting_for_other")]),
      element("div", { class: "remote-label" }, [
        element("span", { "data-role": "remote-name", class: "remote-name" }),
        element("span", { "data-role": "remote-muted", class: "remote-muted" }),
      ]),
      element("video", { "data-role": "self-video", class: "self-video", autoplay: "", playsinline: "", muted: "", "aria-label": t("call.you") }),
      element("p", { "data-role": "reconnecting", class: "notice reconnecting", role: "status" }),
      element("button", { type: "button", "data-role": "sound", class: "button sound", hidden: true, "data-i18n": "call.tap_for_sound" }, [t("call.tap_for_sound")]),
    ]),
    element("p", { "data-role": "video-paused", class: "notice paused", role: "status" }),
    element("p", { "data-role": "media-missing", class: "notice paused", role: "status" }),
    element("p", { "data-role": "note", class: "notice note", role: "status" }),
    element("p", { "data-role": "quality", class: "quality", hidden: true }, [
      element("span", { class: "quality-icon", "aria-hidden": "true" }),
      element("span", { "data-role": "quality-text" }),
    ]),
    element("div", { "data-role": "others", class: "others" }),
    element("p", { "data-role": "status", class: "status", role: "status", "aria-live": "polite" }),
    element("div", { class: "controls" }, [
      element("button", { type: "button", "data-role": "mic", class: "button control" }),
      element("button", { type: "button", "data-role": "cam", class: "button control" }),
      element("button", { type: "button", "data-role": "share", class: "button control", hidden: true }),
      element("button", { type: "button", "data-role": "leave", class: "button control danger" }),
    ]),
  ]);
}
