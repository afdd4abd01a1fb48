// One participant's call: the RTCPeerConnection to the relay and the signalling that drives
// it. The relay always offers; this side answers, one offer at a time. When the media path
// breaks (disconnected for a moment, or failed) while the socket is up, the call first asks the
// relay for an ICE restart (`restart_ice`; the relay's next offer has fresh ICE credentials and
// the browser finds a new path, same session); if media is not back within a few seconds, or
// the socket is lost, the server restarts or a recoverable error arrives, the call rejoins by
// itself with a fresh media token, backing off; the relay treats the second join of the same
// participant as a replacement of the first.
//
// Events: "joined" {you, participants}, "participant-joined"/"participant-updated"
// {participant}, "participant-left" {participant_id, reason}, "remote-stream"
// {participantId, stream}, "state" {state}, "quality" {level, lossRatio, rtt, jitter},
// "video-paused" {participantId, reason}, "video-resumed" {participantId},
// "media-not-arriving" {participantId} / "media-arriving" {participantId}, "reconnecting"
// {cause}, "reconnected",
// "ended" {reason}, "error" {code, fatal}.
// The waiting room: "waiting" {you} (we wait for a host; no media until "joined"); for hosts
// "lobby" {waiting: [Participant]} whenever the list of people waiting changes, with
// "participant-waiting" {participant} when someone arrives and "waiting-left" {participant,
// reason} when someone leaves it without being let in (gone, or denied). A host lets someone in
// with admit(id) or turns them away with deny(id).
// Chat: sendChat(text); "chat" {from, text, at, name, own} for every relayed message (ours
// too, in the relay's order), "chat-refused" {code} when the relay refused ours.
import { Signalling } from "./signalling.js";

const STATS_INTERVAL_MS = 2000;
/** Measurements the quality level is smoothed over (the worst of them is shown). */
const QUALITY_WINDOW = 3;
/** How long the media may stay "disconnected" before we ask for an ICE restart. */
const DISCONNECTED_GRACE_MS = 2000;
/** How long an ICE restart may take to bring the media back before we rejoin instead. */
const ICE_RESTART_TIMEOUT_MS = 6000;
/** Waits between rejoin attempts (with ±20% jitter); the last repeats. */
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
/** After this long without a connection the call ends and the person is told. */
const RECONNECT_GIVE_UP_MS = 5 * 60 * 1000;
/** Fatal errors a rejoin with a fresh token can cure. */
const RECOVERABLE_ERRORS = new Set(["media_failed", "server_busy", "internal", "token_expired"]);
/** How much smaller than the camera each simulcast layer the relay asks for is, by rid. */
const SIMULCAST_SCALE = { f: 1, h: 2, q: 4 };

/** Token-renewal answers that mean the visit is over. */
const VISIT_OVER_CODES = new Set(["link_expired", "visit_closed"]);

/** The relay's `joined.ice_servers` as RTCIceServer objects (anything malformed is left out). */
function turnServers(list) {
  if (!Array.isArray(list)) return [];
  return list
    .filter((server) => Array.isArray(server?.urls) && typeof server.username === "string"
      && typeof server.credential === "string")
    .map((server) => ({
      urls: server.urls.filter((url) => typeof url === "string"),
      username: server.username,
      credential: server.credential,
    }));
}

export class Call extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.token        media token for the first join
   * @param {string} options.room         the visit id
   * @param {MediaStream} options.localStream
   * @param {() => Promise<string>} [options.renewToken]  a fresh media token for a rejoin;
   *   without it the call ends when the connection is lost
   */
  constructor({ token, room, localStream, renewToken }) {
    super();
    this.token = token;
    this.room = room;
    this.localStream = localStream;
    this.renewToken = renewToken ?? null;
    this.signalling = null;
    this.pc = null;
    this.generation = 0;
    this.negotiation = Promise.resolve();
    this.remoteStreams = new Map();
    this.participants = new Map();
    /** Hosts: who waits in the waiting room, by participant id. */
    this.waitingList = new Map();
    /** We ourselves wait to be admitted. */
    this.inLobby = false;
    /** Hosts: the participant of the last admit/deny sent (to clean up after a refusal). */
    this.pendingDecision = null;
    this.muted = { audio: false, video: false };
    this.ended = false;
    this.statsTimer = null;
    this.lastStats = null;
    this.disconnectedTimer = null;
    /** The ICE restart under way: its deadline timer (null when none). */
    this.iceRestartTimer = null;
    this.reconnectTimer = null;
    this.reconnecting = false;
    this.rejoining = false;
    this.screenTrack = null;
    this.attempt = 0;
    this.lostAt = null;
    /** Chat messages sent and not yet echoed or refused by the relay. */
    this.chatPending = 0;
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** The first join; rejects when the server cannot be reached at all. */
  async start() {
    this.statsTimer = setInterval(() => this.measure(), STATS_INTERVAL_MS);
    // Back on the network (a tablet's wifi returns): try at once rather than after the backoff.
    this.onOnline = () => {
      if (this.reconnecting && !this.ended) {
        clearTimeout(this.reconnectTimer);
        this.rejoin();
      }
    };
    window.addEventListener("online", this.onOnline);
    await this.connect(this.token);
  }

  /** One session: a fresh peer connection and signalling socket, joined with `token`. */
  async connect(token) {
    this.teardown();
    const generation = ++this.generation;
    const current = () => generation === this.generation && !this.ended;
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    const s = new Signalling();
    this.pc = pc;
    this.signalling = s;
    this.negotiation = Promise.resolve();
    this.lastStats = null;
    this.qualityHistory = [];
    this.videoSender = null;

    // Local tracks first: the relay's first offer carries recvonly m-lines for them. A shared
    // screen takes the camera's place.
    for (const track of this.localStream?.getTracks() ?? []) {
      const sent = track.kind === "video" && this.screenTrack ? this.screenTrack : track;
      const sender = pc.addTrack(sent, this.localStream);
      if (track.kind === "video") this.videoSender = sender;
    }
    pc.addEventListener("track", (event) => { if (current()) this.onTrack(event); });
    pc.addEventListener("icecandidate", (event) => {
      if (current() && event.candidate) s.send({ type: "candidate", candidate: event.candidate.toJSON() });
    });
    pc.addEventListener("connectionstatechange", () => {
      if (!current()) return;
      const state = pc.connectionState;
      this.emit("state", { state });
      clearTimeout(this.disconnectedTimer);
      if (state === "connected") {
        clearTimeout(this.iceRestartTimer);
        this.iceRestartTimer = null;
        this.attempt = 0;
        this.lostAt = null;
        if (this.reconnecting) {
          this.reconnecting = false;
          this.emit("reconnected");
        }
      } else if (state === "failed") {
        this.restartIce("media_failed");
      } else if (state === "disconnected") {
        this.disconnectedTimer = setTimeout(() => {
          if (current() && pc.connectionState === "disconnected") this.restartIce("media_disconnected");
        }, DISCONNECTED_GRACE_MS);
      }
    });

    s.addEventListener("joined", (e) => {
      if (!current()) return;
      // TURN servers come with the join (for networks that block UDP); the first offer follows,
      // so they are in place before this side gathers candidates.
      const iceServers = turnServers(e.detail.ice_servers);
      if (iceServers.length > 0) {
        try {
          pc.setConfiguration({ ...pc.getConfiguration(), iceServers });
        } catch (error) {
          console.warn("TURN servers not usable", error); // the call still tries without them
        }
      }
      this.you = e.detail.you ?? null;
      this.participants.clear();
      this.remoteStreams.clear();
      for (const p of e.detail.participants) this.participants.set(p.id, p);
      this.inLobby = false;
      this.waitingList.clear();
      for (const p of e.detail.waiting ?? []) this.waitingList.set(p.id, p);
      if (this.muted.audio || this.muted.video) s.send({ type: "mute", ...this.muted });
      this.emit("joined", e.detail);
      this.emitLobby();
    });
    s.addEventListener("waiting", (e) => {
      if (!current()) return;
      this.inLobby = true;
      this.participants.clear();
      if (this.muted.audio || this.muted.video) s.send({ type: "mute", ...this.muted });
      this.emit("waiting", e.detail);
    });
    s.addEventListener("participant_waiting", (e) => {
      if (!current()) return;
      this.waitingList.set(e.detail.participant.id, e.detail.participant);
      this.emit("participant-waiting", e.detail);
      this.emitLobby();
    });
    s.addEventListener("offer", (e) => { if (current()) this.answer(e.detail); });
    s.addEventListener("participant_joined", (e) => {
      if (!current()) return;
      this.participants.set(e.detail.participant.id, e.detail.participant);
      this.emit("participant-joined", e.detail);
      if (this.waitingList.delete(e.detail.participant.id)) this.emitLobby();
    });
    s.addEventListener("participant_updated", (e) => {
      if (!current()) return;
      this.participants.set(e.detail.participant.id, e.detail.participant);
      this.emit("participant-updated", e.detail);
    });
    s.addEventListener("participant_left", (e) => {
      if (!current()) return;
      const id = e.detail.participant_id;
      const waiting = this.waitingList.get(id);
      if (waiting && !this.participants.has(id)) {
        this.waitingList.delete(id);
        this.emit("waiting-left", { ...e.detail, participant: waiting });
        this.emitLobby();
        return;
      }
      const participant = this.participants.get(id);
      this.participants.delete(id);
      this.remoteStreams.delete(id);
      this.emit("participant-left", { ...e.detail, participant });
    });
    // The relay stops forwarding someone's video to us when our downlink is too weak (audio
    // goes on), and resumes it when it recovers; per participant.
    s.addEventListener("video_paused", (e) => {
      if (current()) this.emit("video-paused", { participantId: e.detail.participant_id ?? null, reason: e.detail.reason ?? null });
    });
    s.addEventListener("video_resumed", (e) => {
      if (current()) this.emit("video-resumed", { participantId: e.detail.participant_id ?? null });
    });
    // Someone is in the room but their picture and sound do not reach the relay (their network
    // blocks the media), and later when they do.
    s.addEventListener("media_not_arriving", (e) => {
      if (current() && e.detail.participant_id) this.emit("media-not-arriving", { participantId: e.detail.participant_id });
    });
    s.addEventListener("media_arriving", (e) => {
      if (current() && e.detail.participant_id) this.emit("media-arriving", { participantId: e.detail.participant_id });
    });
    s.addEventListener("chat", (e) => {
      if (!current() || typeof e.detail.text !== "string") return;
      if (e.detail.from === this.you?.id) this.chatPending = Math.max(0, this.chatPending - 1);
      const own = e.detail.from === this.you?.id;
      const name = own ? this.you.display_name : this.participants.get(e.detail.from)?.display_name ?? "";
      this.emit("chat", { from: e.detail.from, text: e.detail.text, at: e.detail.at, name, own });
    });
    s.addEventListener("ended", (e) => {
      if (!current()) return;
      // A server restart is not the end of the visit: come back when it is up again.
      if (e.detail.reason === "server_shutdown") this.reconnect("server_shutdown");
      else this.finish(e.detail.reason);
    });
    s.addEventListener("error", (e) => {
      if (!current()) return;
      this.emit("error", e.detail);
      // The relay refused our ICE restart (asked too often): rejoin instead.
      if (e.detail.code === "rate_limited" && this.iceRestartTimer && this.chatPending === 0) {
        this.reconnect("ice_restart_refused");
        return;
      }
      // Otherwise only chat is rate limited; a bad_message/not_joined refuses our chat while
      // one is out.
      if (e.detail.code === "rate_limited"
        || (["bad_message", "not_joined"].includes(e.detail.code) && this.chatPending > 0)) {
        this.chatPending = Math.max(0, this.chatPending - 1);
        this.emit("chat-refused", { code: e.detail.code });
      }
      // An admit/deny for someone no longer waiting (they left as we pressed): drop them.
      if (e.detail.code === "unknown_participant" && this.pendingDecision) {
        const participant = this.waitingList.get(this.pendingDecision);
        if (participant) {
          this.waitingList.delete(this.pendingDecision);
          this.emit("waiting-left", { participant_id: participant.id, reason: "left", participant });
          this.emitLobby();
        }
      }
      if (!e.detail.fatal) return;
      if (RECOVERABLE_ERRORS.has(e.detail.code)) this.reconnect(e.detail.code);
      else this.finish(e.detail.code);
    });
    s.addEventListener("closed", () => {
      // Every deliberate end (leave, ended, fatal error) is handled before the socket closes;
      // a close we did not expect means the connection was lost.
      if (current()) this.reconnect("socket_closed");
    });

    try {
      await s.open();
    } catch (error) {
      if (!this.renewToken) throw error;
      // The socket's close event may already have started a rejoin; only one may run.
      if (current()) this.reconnect("socket_open");
      return;
    }
    if (!current()) return;
    const publish = {
      audio: (this.localStream?.getAudioTracks().length ?? 0) > 0,
      video: (this.localStream?.getVideoTracks().length ?? 0) > 0,
    };
    s.join({ token, room: this.room, publish });
  }

  emitLobby() {
    this.emit("lobby", { waiting: [...this.waitingList.values()] });
  }

  /** (Host.) Lets a waiting participant in. */
  admit(participantId) {
    this.pendingDecision = participantId;
    this.signalling?.send({ type: "admit", participant_id: participantId });
  }

  /** Sends a chat message to everyone in the call (it comes back as a "chat" event). */
  sendChat(text) {
    this.chatPending += 1;
    this.signalling?.send({ type: "chat", text });
  }

  /** (Host.) Turns a waiting participant away. */
  deny(participantId) {
    this.pendingDecision = participantId;
    this.signalling?.send({ type: "deny", participant_id: participantId });
  }

  /**
   * The media path broke but the session may be fine: ask the relay for an ICE restart on the
   * open socket and answer its offer (as any offer); rejoin if media is not back in time, or
   * at once when the socket is not open. One restart at a time.
   */
  restartIce(cause) {
    if (this.ended || this.iceRestartTimer) return;
    if (this.signalling?.socket?.readyState !== WebSocket.OPEN || !this.pc) {
      this.reconnect(cause);
      return;
    }
    if (!this.reconnecting) {
      this.reconnecting = true;
      this.emit("reconnecting", { cause });
    }
    const generation = this.generation;
    this.iceRestartTimer = setTimeout(() => {
      this.iceRestartTimer = null;
      if (generation === this.generation && this.pc?.connectionState !== "connected") this.reconnect(cause);
    }, ICE_RESTART_TIMEOUT_MS);
    this.signalling.send({ type: "restart_ice" });
  }

  /** Closes the current session's socket and peer connection, keeping the local media. */
  teardown() {
    this.generation++;
    clearTimeout(this.disconnectedTimer);
    clearTimeout(this.iceRestartTimer);
    this.iceRestartTimer = null;
    this.pc?.close();
    this.pc = null;
    this.signalling?.close();
    this.signalling = null;
    // A new session learns the waiting room afresh (from `joined`).
    if (this.waitingList.size > 0) {
      this.waitingList.clear();
      this.emitLobby();
    }
  }

  /** The connection was lost: rejoin with a fresh token, backing off, without anyone's click. */
  reconnect(cause) {
    if (this.ended) return;
    this.teardown();
    if (!this.renewToken) {
      this.finish("disconnected");
      return;
    }
    this.lostAt ??= Date.now();
    if (Date.now() - this.lostAt > RECONNECT_GIVE_UP_MS) {
      this.finish("disconnected");
      return;
    }
    if (!this.reconnecting) {
      this.reconnecting = true;
      this.emit("reconnecting", { cause });
    }
    const base = RECONNECT_DELAYS_MS[Math.min(this.attempt, RECONNECT_DELAYS_MS.length - 1)];
    const delay = base * (0.8 + Math.random() * 0.4);
    this.attempt++;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.rejoin(), delay);
  }

  async rejoin() {
    if (this.ended || this.rejoining) return;
    this.rejoining = true;
    let token;
    try {
      token = await this.renewToken();
    } catch (error) {
      this.rejoining = false;
      if (isPermanent(error)) {
        this.finish(VISIT_OVER_CODES.has(error.code) ? "visit_ended" : "disconnected");
      } else {
        this.reconnect("token");
      }
      return;
    }
    this.rejoining = false;
    if (this.ended) return;
    await this.connect(token);
  }

  answer({ sdp, revision }) {
    // Offers are applied strictly in order.
    const pc = this.pc;
    const s = this.signalling;
    this.negotiation = this.negotiation.then(async () => {
      if (!pc || pc.signalingState === "closed" || pc !== this.pc) return;
      await pc.setRemoteDescription({ type: "offer", sdp });
      if (/^a=simulcast:recv /m.test(sdp)) await this.sendSimulcast(pc);
      await pc.setLocalDescription(await pc.createAnswer());
      s.send({ type: "answer", sdp: pc.localDescription.sdp, revision });
    }).catch((error) => {
      if (pc !== this.pc) return;
      console.warn("could not answer the offer", error);
      this.emit("error", { code: "negotiation", fatal: false });
    });
  }

  /**
   * The relay asks for simulcast (`a=simulcast:recv`): Chromium does not associate an
   * `addTrack` transceiver with an offered simulcast m-line, but makes a new receive-only
   * transceiver whose sender has the offer's rids as encodings. The camera moves onto that
   * sender (its layers scaled f = full, h = half, q = quarter) and the unassociated `addTrack`
   * transceiver is stopped; later offers find the camera sender associated and change nothing.
   */
  async sendSimulcast(pc) {
    const camera = pc.getTransceivers().find((t) => t.sender === this.videoSender);
    if (!camera || camera.mid !== null || !camera.sender.track) return;
    const offered = pc.getTransceivers().find((t) => t !== camera && t.mid !== null && !t.currentDirection
      && t.receiver.track.kind === "video" && !t.sender.track
      && t.sender.getParameters().encodings.some((e) => e.rid));
    if (!offered) return;
    const track = camera.sender.track;
    await offered.sender.replaceTrack(track);
    if (this.localStream) offered.sender.setStreams(this.localStream);
    offered.direction = "sendrecv";
    const parameters = offered.sender.getParameters();
    for (const encoding of parameters.encodings) {
      encoding.scaleResolutionDownBy = SIMULCAST_SCALE[encoding.rid] ?? 1;
    }
    await offered.sender.setParameters(parameters);
    camera.stop();
    this.videoSender = offered.sender;
  }

  onTrack(event) {
    // The relay puts each participant's tracks in a stream whose id is their participant id.
    const stream = event.streams[0];
    if (!stream) return;
    const participantId = stream.id;
    this.remoteStreams.set(participantId, stream);
    this.emit("remote-stream", { participantId, stream });
  }

  setMicrophone(on) {
    for (const track of this.localStream?.getAudioTracks() ?? []) track.enabled = on;
    this.muted.audio = !on;
    this.signalling?.send({ type: "mute", ...this.muted });
  }

  setCamera(on) {
    for (const track of this.localStream?.getVideoTracks() ?? []) track.enabled = on;
    this.muted.video = !on;
    this.signalling?.send({ type: "mute", ...this.muted });
  }

  /**
   * Sends `track` (a shared screen) in place of the camera, or the camera again with null. The
   * relay forwards whatever the video sender carries, so no renegotiation is needed; it needs
   * a camera sender to replace (without a camera there is nothing to swap).
   */
  async shareScreen(track) {
    this.screenTrack = track;
    const camera = this.localStream?.getVideoTracks()[0] ?? null;
    if (this.videoSender && this.pc?.signalingState !== "closed") await this.videoSender.replaceTrack(track ?? camera);
  }

  hangUp() {
    this.signalling?.send({ type: "leave" });
    this.finish("left");
  }

  finish(reason) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.statsTimer);
    clearTimeout(this.reconnectTimer);
    if (this.onOnline) window.removeEventListener("online", this.onOnline);
    this.teardown();
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
    this.screenTrack?.stop();
    this.emit("ended", { reason });
  }

  /** Connection quality from getStats: loss and jitter on what we receive, and round-trip time. */
  async measure() {
    const pc = this.pc;
    if (!pc || pc.connectionState !== "connected") return;
    let received = 0;
    let lost = 0;
    let rtt = null;
    let jitter = 0;
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        received += s.packetsReceived ?? 0;
        lost += s.packetsLost ?? 0;
        if (s.kind === "audio" && typeof s.jitter === "number") jitter = Math.max(jitter, s.jitter);
      } else if (s.type === "candidate-pair" && s.nominated && typeof s.currentRoundTripTime === "number") {
        rtt = s.currentRoundTripTime;
      } else if (s.type === "remote-inbound-rtp" && rtt === null && typeof s.roundTripTime === "number") {
        rtt = s.roundTripTime;
      }
    });
    if (pc !== this.pc) return;
    const previous = this.lastStats;
    this.lastStats = { received, lost };
    if (!previous) return;
    const dReceived = received - previous.received;
    const dLost = Math.max(0, lost - previous.lost);
    const lossRatio = dReceived + dLost > 0 ? dLost / (dReceived + dLost) : 0;
    this.qualityHistory = [...(this.qualityHistory ?? []), qualityLevel({ lossRatio, rtt, jitter })].slice(-QUALITY_WINDOW);
    const level = worstLevel(this.qualityHistory);
    this.emit("quality", { level, lossRatio, rtt, jitter });
  }
}

/** good / weak / poor from loss (ratio), round-trip time and jitter (seconds). */
export function qualityLevel({ lossRatio, rtt, jitter }) {
  if (lossRatio > 0.08 || (rtt !== null && rtt > 0.6) || jitter > 0.1) return "poor";
  if (lossRatio > 0.02 || (rtt !== null && rtt > 0.3) || jitter > 0.04) return "weak";
  return "good";
}

/**
 * The worst of the recent levels: a drop shows at once, a recovery only after it has held for
 * the whole window, so the indicator does not flicker.
 */
export function worstLevel(levels) {
  const order = ["good", "weak", "poor"];
  return levels.reduce((worst, level) => (order.indexOf(level) > order.indexOf(worst) ? level : worst), "good");
}

function isPermanent(error) {
  // The server answered and said no (the link is gone, the visit closed, the session ended);
  // asking again will not help. Network errors (status 0), 429 and 5xx are worth retrying.
  return typeof error?.status === "number" && error.status >= 400 && error.status < 500 && error.status !== 429;
}

/** Camera and microphone, degrading gracefully: both, then audio only, then video only. */
export async function getLocalMedia() {
  const attempts = [
    { audio: true, video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" } },
    { audio: true, video: false },
    { audio: false, video: true },
  ];
  let lastError = null;
  for (const constraints of attempts) {
    try {
      return { stream: await navigator.mediaDevices.getUserMedia(constraints), error: null };
    } catch (error) {
      lastError = error;
    }
  }
  return { stream: new MediaStream(), error: lastError };
}
