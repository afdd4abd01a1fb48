// The in-call screen shared by staff and citizen: the other person large, yourself small,
// further participants (an invited relative, interpreter or colleague) as named tiles below,
// big labelled buttons, a connection-quality line and a live region for what happens.
import { t, onLanguageChange } from "./i18n.js";

export class CallView {
  /**
   * @param {HTMLElement} root   an empty container; the view fills it
   * @param {Call} call
   * @param {{onLeave: () => void, leaveKey: string}} options
   */
  constructor(root, call, { onLeave, leaveKey }) {
    root.replaceChildren(buildCallDom());
    this.root = root;
    this.call = call;
    this.remoteVideo = root.querySelector("[data-role=remote-video]");
    this.remoteName = root.querySelector("[data-role=remote-name]");
    this.remoteMuted = root.querySelector("[data-role=remote-muted]");
    this.waiting = root.querySelector("[data-role=waiting]");
    this.selfVideo = root.querySelector("[data-role=self-video]");
    this.status = root.querySelector("[data-role=status]");
    this.quality = root.querySelector("[data-role=quality]");
    this.micButton = root.querySelector("[data-role=mic]");
    this.camButton = root.querySelector("[data-role=cam]");
    this.leaveButton = root.querySelector("[data-role=leave]");
    this.soundButton = root.querySelector("[data-role=sound]");
    this.leaveKey = leaveKey;
    this.micOn = true;
    this.camOn = true;
    this.remoteId = null;
    this.qualityLevel = null;
    this.othersStrip = root.querySelector("[data-role=others]");
    /** participant id → {tile, video, label} of everyone beyond the first remote */
    this.others = new Map();

    this.selfVideo.srcObject = call.localStream;
    this.selfVideo.muted = true;
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
    this.soundButton.addEventListener("click", () => this.playRemote());

    call.addEventListener("remote-stream", (e) => this.showRemote(e.detail.participantId, e.detail.stream));
    call.addEventListener("participant-joined", (e) => this.announce(t("call.joined", { name: e.detail.participant.display_name })));
    call.addEventListener("participant-updated", () => this.render());
    call.addEventListener("participant-left", (e) => {
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
    onLanguageChange(() => this.render());
    this.announce(t("call.connecting"));
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

  announce(text) {
    this.status.textContent = text;
  }

  render() {
    const remote = this.remoteId ? this.call.participants.get(this.remoteId) : null;
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
    this.leaveButton.textContent = t(this.leaveKey);
    if (this.qualityLevel) {
      this.quality.hidden = false;
      this.quality.textContent = `${t("call.quality")}: ${t(`quality.${this.qualityLevel}`)}`;
      this.quality.dataset.level = this.qualityLevel;
    }
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

/** The call screen's elements; texts are filled by render(). */
function buildCallDom() {
  return element("div", { class: "call-layout" }, [
    element("div", { class: "stage" }, [
      element("video", { "data-role": "remote-video", class: "remote-video", autoplay: "", playsinline: "" }),
      element("p", { "data-role": "waiting", class: "waiting", "data-i18n": "call.waiting_for_other" }, [t("call.waiting_for_other")]),
      element("div", { class: "remote-label" }, [
        element("span", { "data-role": "remote-name", class: "remote-name" }),
        element("span", { "data-role": "remote-muted", class: "remote-muted" }),
      ]),
      element("video", { "data-role": "self-video", class: "self-video", autoplay: "", playsinline: "", "aria-label": t("call.you") }),
      element("button", { type: "button", "data-role": "sound", class: "button sound", hidden: true, "data-i18n": "call.tap_for_sound" }, [t("call.tap_for_sound")]),
    ]),
    element("div", { "data-role": "others", class: "others" }),
    element("p", { "data-role": "quality", class: "quality", hidden: true }),
    element("p", { "data-role": "status", class: "status", role: "status", "aria-live": "polite" }),
    element("div", { class: "controls" }, [
      element("button", { type: "button", "data-role": "mic", class: "button control" }),
      element("button", { type: "button", "data-role": "cam", class: "button control" }),
      element("button", { type: "button", "data-role": "leave", class: "button control danger" }),
    ]),
  ]);
}
