// One participant's call: the RTCPeerConnection to the relay and the signalling that drives
// it. The relay always offers; this side answers, one offer at a time.
//
// Events: "joined" {you, participants}, "participant-joined"/"participant-updated"
// {participant}, "participant-left" {participant_id, reason}, "remote-stream"
// {participantId, stream}, "state" {state}, "quality" {level}, "ended" {reason},
// "error" {code, fatal}.
import { Signalling } from "./signalling.js";

const STATS_INTERVAL_MS = 2000;

export class Call extends EventTarget {
  constructor({ token, room, localStream }) {
    super();
    this.token = token;
    this.room = room;
    this.localStream = localStream;
    this.signalling = new Signalling();
    this.pc = null;
    this.negotiation = Promise.resolve();
    this.remoteStreams = new Map();
    this.participants = new Map();
    this.muted = { audio: false, video: false };
    this.ended = false;
    this.statsTimer = null;
    this.lastStats = null;
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async start() {
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    this.pc = pc;
    // Local tracks first: the relay's first offer carries recvonly m-lines for them.
    for (const track of this.localStream?.getTracks() ?? []) pc.addTrack(track, this.localStream);
    pc.addEventListener("track", (event) => this.onTrack(event));
    pc.addEventListener("icecandidate", (event) => {
      if (event.candidate) this.signalling.send({ type: "candidate", candidate: event.candidate.toJSON() });
    });
    pc.addEventListener("connectionstatechange", () => this.emit("state", { state: pc.connectionState }));

    const s = this.signalling;
    s.addEventListener("joined", (e) => {
      for (const p of e.detail.participants) this.participants.set(p.id, p);
      this.emit("joined", e.detail);
    });
    s.addEventListener("offer", (e) => this.answer(e.detail));
    s.addEventListener("participant_joined", (e) => {
      this.participants.set(e.detail.participant.id, e.detail.participant);
      this.emit("participant-joined", e.detail);
    });
    s.addEventListener("participant_updated", (e) => {
      this.participants.set(e.detail.participant.id, e.detail.participant);
      this.emit("participant-updated", e.detail);
    });
    s.addEventListener("participant_left", (e) => {
      const id = e.detail.participant_id;
      const participant = this.participants.get(id);
      this.participants.delete(id);
      this.remoteStreams.delete(id);
      this.emit("participant-left", { ...e.detail, participant });
    });
    s.addEventListener("ended", (e) => this.finish(e.detail.reason));
    s.addEventListener("error", (e) => {
      this.emit("error", e.detail);
      if (e.detail.fatal) this.finish(e.detail.code);
    });
    s.addEventListener("closed", (e) => {
      if (!this.ended) this.finish(e.detail.code === 1000 ? "closed" : "disconnected");
    });

    await s.open();
    const publish = {
      audio: (this.localStream?.getAudioTracks().length ?? 0) > 0,
      video: (this.localStream?.getVideoTracks().length ?? 0) > 0,
    };
    s.join({ token: this.token, room: this.room, publish });
    this.statsTimer = setInterval(() => this.measure(), STATS_INTERVAL_MS);
  }

  answer({ sdp, revision }) {
    // Offers are applied strictly in order.
    this.negotiation = this.negotiation.then(async () => {
      if (!this.pc || this.pc.signalingState === "closed") return;
      await this.pc.setRemoteDescription({ type: "offer", sdp });
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      this.signalling.send({ type: "answer", sdp: this.pc.localDescription.sdp, revision });
    }).catch((error) => {
      console.warn("could not answer the offer", error);
      this.emit("error", { code: "negotiation", fatal: false });
    });
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
    this.signalling.send({ type: "mute", ...this.muted });
  }

  setCamera(on) {
    for (const track of this.localStream?.getVideoTracks() ?? []) track.enabled = on;
    this.muted.video = !on;
    this.signalling.send({ type: "mute", ...this.muted });
  }

  hangUp() {
    this.signalling.send({ type: "leave" });
    this.finish("left");
  }

  finish(reason) {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.statsTimer);
    this.pc?.close();
    this.signalling.close();
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
    this.emit("ended", { reason });
  }

  /** Connection quality from getStats: loss on what we receive and the round-trip time. */
  async measure() {
    if (!this.pc || this.pc.connectionState === "closed") return;
    let received = 0;
    let lost = 0;
    let rtt = null;
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        received += s.packetsReceived ?? 0;
        lost += s.packetsLost ?? 0;
      } else if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) {
        rtt = s.currentRoundTripTime;
      }
    });
    const previous = this.lastStats;
    this.lastStats = { received, lost };
    if (!previous) return;
    const dReceived = received - previous.received;
    const dLost = Math.max(0, lost - previous.lost);
    const lossRatio = dReceived + dLost > 0 ? dLost / (dReceived + dLost) : 0;
    let level = "good";
    if (lossRatio > 0.08 || (rtt !== null && rtt > 0.6)) level = "poor";
    else if (lossRatio > 0.02 || (rtt !== null && rtt > 0.3)) level = "weak";
    this.emit("quality", { level, lossRatio, rtt });
  }
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
