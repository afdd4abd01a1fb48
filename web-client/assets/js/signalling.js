// The WebSocket side of crates/skaerm-sfu/PROTOCOL.md: sends typed messages, dispatches the
// server's by `type`, and reports how the socket closed.

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
    return new Promise((resolve, reject) => {
      this.socket.addEventListener("open", () => resolve(), { once: true });
      this.socket.addEventListener("error", () => reject(new Error("websocket")), { once: true });
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
