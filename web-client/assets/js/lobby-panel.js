// The staff member's waiting-room panel: who waits to be let in, each with large "Lad komme
// ind" and "Afvis" buttons. An arrival is announced to screen readers (live region), shown
// with a highlight and a short chime, and put in the tab title so it is noticed in another tab.
// Someone this staff member already had in the call is let in again without asking.
import { t, onLanguageChange } from "./i18n.js";

export class LobbyPanel {
  /**
   * @param {HTMLElement} root  the panel (holds [data-role=list]); hidden while nobody waits
   * @param {Call} call  a host's call
   * @param {HTMLElement} live  a live region outside the panel (it must stay in the page when
   *   the panel hides, to say who left or was let in)
   * @param {string} visitId  names the tab's memory of whom this staff member let in
   */
  constructor(root, call, live, visitId) {
    this.root = root;
    this.call = call;
    this.list = root.querySelector("[data-role=list]");
    this.live = live;
    this.waiting = [];
    this.baseTitle = document.title;
    /** Rows by participant id, kept across renders so keyboard focus stays on its button. */
    this.rows = new Map();
    // Whom this staff member has had in the call: after a relay restart (which forgets who
    // was let in) they are let in again at once, so the citizen's reconnection needs no click
    // on either side. Kept for the tab's life (a reload of the page too).
    this.storageKey = `skaerm.admitted.${visitId}`;
    this.known = new Set(readList(this.storageKey));
    this.readmitting = new Set();

    call.addEventListener("joined", () => {
      this.readmitting.clear();
      for (const id of call.participants.keys()) this.remember(id);
      // Joining (or rejoining) a room where someone new already waits is an arrival too.
      const fresh = [...call.waitingList.values()].find((p) => !this.known.has(p.id));
      if (fresh) this.arrived(fresh);
    });
    call.addEventListener("participant-waiting", (e) => {
      if (!this.known.has(e.detail.participant.id)) this.arrived(e.detail.participant);
    });
    call.addEventListener("lobby", (e) => {
      for (const p of e.detail.waiting) {
        if (this.known.has(p.id) && !this.readmitting.has(p.id)) {
          this.readmitting.add(p.id);
          call.admit(p.id);
        }
      }
      this.waiting = e.detail.waiting.filter((p) => !this.readmitting.has(p.id));
      this.render();
    });
    call.addEventListener("waiting-left", (e) => {
      const name = e.detail.participant?.display_name ?? "";
      this.readmitting.delete(e.detail.participant_id);
      this.announce(t(e.detail.reason === "denied" ? "lobby.denied" : "lobby.gone", { name }));
    });
    // (The call view says "… er kommet ind" when someone is let in.)
    call.addEventListener("participant-joined", (e) => {
      this.remember(e.detail.participant.id);
      this.readmitting.delete(e.detail.participant.id);
    });
    onLanguageChange(() => {
      this.rows.clear();
      this.render();
    });
    this.render();
  }

  remember(id) {
    if (this.known.has(id)) return;
    this.known.add(id);
    try { sessionStorage.setItem(this.storageKey, JSON.stringify([...this.known].slice(-20))); } catch { /* private mode */ }
  }

  arrived(participant) {
    this.announce(t("lobby.arrived", { name: participant.display_name }));
    this.cue();
  }

  announce(text) {
    // Cleared first so the same sentence twice is read twice.
    this.live.textContent = "";
    setTimeout(() => { this.live.textContent = text; }, 50);
  }

  /** A short two-tone chime (Web Audio: no file, no autoplay of media) and a highlight. */
  cue() {
    this.root.classList.remove("arrived");
    void this.root.offsetWidth; // restart the highlight animation
    this.root.classList.add("arrived");
    try {
      this.audio ??= new AudioContext();
      const ctx = this.audio;
      ctx.resume().catch(() => {});
      const gain = ctx.createGain();
      gain.connect(ctx.destination);
      gain.gain.setValueAtTime(0.0001, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.2, ctx.currentTime + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.9);
      for (const [freq, at] of [[660, 0], [880, 0.25]]) {
        const tone = ctx.createOscillator();
        tone.frequency.value = freq;
        tone.connect(gain);
        tone.start(ctx.currentTime + at);
        tone.stop(ctx.currentTime + at + 0.6);
      }
    } catch {
      // No audio: the highlight and the live region remain.
    }
  }

  render() {
    this.root.hidden = this.waiting.length === 0;
    document.title = this.waiting.length
      ? `${t("lobby.tab_title", { n: this.waiting.length })} – ${this.baseTitle}`
      : this.baseTitle;
    const rows = new Map();
    for (const p of this.waiting) rows.set(p.id, this.rows.get(p.id) ?? this.row(p));
    this.rows = rows;
    const wanted = [...rows.values()];
    if (wanted.length !== this.list.children.length || wanted.some((row, i) => this.list.children[i] !== row)) {
      this.list.replaceChildren(...wanted);
    }
  }

  row(participant) {
    const li = document.createElement("li");
    li.className = "waiting-person";
    li.dataset.participant = participant.id;
    const name = document.createElement("span");
    name.className = "waiting-name";
    name.textContent = t("lobby.person_waiting", { name: participant.display_name });
    const admit = button("button primary admit", t("lobby.admit"), t("lobby.admit_named", { name: participant.display_name }));
    admit.dataset.role = "admit";
    admit.addEventListener("click", () => {
      admit.disabled = true;
      deny.disabled = true;
      this.call.admit(participant.id);
    });
    const deny = button("button danger deny", t("lobby.deny"), t("lobby.deny_named", { name: participant.display_name }));
    deny.dataset.role = "deny";
    deny.addEventListener("click", () => {
      admit.disabled = true;
      deny.disabled = true;
      this.call.deny(participant.id);
    });
    const actions = document.createElement("span");
    actions.className = "waiting-actions";
    actions.append(admit, deny);
    li.append(name, actions);
    return li;
  }
}

function button(className, text, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  return b;
}

function readList(key) {
  try {
    const list = JSON.parse(sessionStorage.getItem(key) ?? "[]");
    return Array.isArray(list) ? list.filter((id) => typeof id === "string") : [];
  } catch {
    return [];
  }
}
