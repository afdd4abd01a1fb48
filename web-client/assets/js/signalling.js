// The WebSocket side of crates/skaerm-sfu/PROTOCOL.md: sends typed messages, dispatches the
// server's by `type`, and reports how the socket closed.

/** How long opening the socket may take before we give up on this attempt. */
const OPEN_TIMEOUT_MS = 10_000;

export class Signalling extends EventTarget {
  constructor() {
    super();
    this.socket = null;
  }

  /** Opens the socket; resolves when it is open. */
  open() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.socket = new WebSocket(`${scheme}//${location.host}/ws`);
    this.socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      if (message && typeof message.type === "string") {
        this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
        this.dispatchEvent(new CustomEvent("message", { detail: message }));
      }
    });
    this.socket.addEventListener("close", (event) => {
      this.dispatchEvent(new CustomEvent("closed", { detail: { code: event.code, reason: event.reason } }));
    });
    const socket = this.socket;
    return new Promise((resolve, reject) => {
      // A network that swallows packets would leave the socket connecting for minutes.
      const timer = setTimeout(() => socket.close(), OPEN_TIMEOUT_MS);
      socket.addEventListener("open", () => { clearTimeout(timer); resolve(); }, { once: true });
      socket.addEventListener("error", () => { clearTimeout(timer); reject(new Error("websocket")); }, { once: true });
      socket.addEventListener("close", () => { clearTimeout(timer); reject(new Error("websocket closed")); }, { once: true });
    });
  }

  send(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  join({ token, room, publish }) {
    this.send({ type: "join", protocol: 1, token, room, publish });
  }

  close() {
    this.socket?.close(1000);
  }
}
