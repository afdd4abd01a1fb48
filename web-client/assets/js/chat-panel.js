// The in-call text chat: a labelled text field with a "Send" button and the messages of this
// call (sender name and time, shown with textContent only). Messages from others are read out
// by a polite live region. Nothing is stored: the messages live in this page only and are gone
// when it closes. The panel shows while we are in the call, not in the waiting room.
import { t, clock } from "./i18n.js";

/** The relay's limit (crates/skaerm-sfu/src/chat.rs). */
const MAX_CHARS = 1000;

export class ChatPanel {
  /**
   * @param {HTMLElement} root  the panel markup ([data-role=log], form, [data-role=error])
   * @param {Call} call
   * @param {HTMLElement} live  a polite live region outside the panel (it must announce while
   *   the panel is collapsed)
   */
  constructor(root, call, live) {
    this.root = root;
    this.call = call;
    this.log = root.querySelector("[data-role=log]");
    this.form = root.querySelector("form");
    this.input = this.form.elements.text;
    this.input.maxLength = MAX_CHARS;
    this.announceEl = live;
    this.errorEl = root.querySelector("[data-role=error]");

    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = this.input.value.trim();
      if (!text) return;
      this.errorEl.textContent = "";
      call.sendChat(text);
      this.input.value = "";
      this.input.focus();
    });
    // Enter sends; Shift+Enter makes a new line.
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    call.addEventListener("chat", (e) => this.add(e.detail));
    call.addEventListener("chat-refused", (e) => {
      this.errorEl.textContent = t(e.detail.code === "rate_limited" ? "chat.rate_limited" : "chat.refused");
    });
    call.addEventListener("joined", () => { root.hidden = false; });
    call.addEventListener("waiting", () => { root.hidden = true; });
    call.addEventListener("ended", () => { root.hidden = true; });
  }

  add({ text, at, name, own }) {
    const who = own ? t("chat.you") : name || t("chat.someone");
    const item = document.createElement("li");
    item.className = own ? "chat-message own" : "chat-message";
    const head = document.createElement("span");
    head.className = "chat-head";
    const sender = document.createElement("strong");
    sender.textContent = who;
    const time = document.createElement("time");
    const when = Number.isFinite(at) ? new Date(at) : new Date();
    time.dateTime = when.toISOString();
    time.textContent = clock(when);
    head.append(sender, " ", time);
    const body = document.createElement("span");
    body.className = "chat-text";
    body.textContent = text;
    item.append(head, body);
    this.log.append(item);
    item.scrollIntoView({ block: "nearest" });
    if (!own) this.announce(t("chat.announce", { name: who, text }));
  }

  announce(text) {
    // Cleared first so the same sentence twice is read twice.
    this.announceEl.textContent = "";
    setTimeout(() => { this.announceEl.textContent = text; }, 50);
  }
}
