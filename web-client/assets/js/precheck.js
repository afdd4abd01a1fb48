// The citizen's check before joining: can we use the camera and the microphone, is there sound,
// and can we reach the server (HTTP and WebSocket)? Plain functions the join page composes; no
// DOM here except the level meter's element.

const CONNECTION_TIMEOUT_MS = 5000;
const METER_INTERVAL_MS = 100;

const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" };

/**
 * Asks for camera and microphone and says, per device, what happened:
 * "ok", "denied" (no permission), "missing" (no such device) or "busy" (used by another app).
 * Resolves with {stream, camera, microphone}; the stream holds whatever could be opened.
 */
export async function checkDevices() {
  const media = navigator.mediaDevices;
  if (!media?.getUserMedia) {
    return { stream: new MediaStream(), camera: "unsupported", microphone: "unsupported" };
  }
  try {
    const stream = await media.getUserMedia({ audio: true, video: VIDEO });
    return {
      stream,
      camera: stream.getVideoTracks().length ? "ok" : "missing",
      microphone: stream.getAudioTracks().length ? "ok" : "missing",
    };
  } catch (error) {
    if (classify(error) === "denied") return { stream: new MediaStream(), camera: "denied", microphone: "denied" };
  }
  // One of the two is the problem: try each alone to tell which.
  const stream = new MediaStream();
  const result = { stream, camera: "ok", microphone: "ok" };
  for (const [kind, constraints] of [["microphone", { audio: true }], ["camera", { video: VIDEO }]]) {
    try {
      const single = await media.getUserMedia(constraints);
      for (const track of single.getTracks()) stream.addTrack(track);
    } catch (error) {
      result[kind] = classify(error);
    }
  }
  return result;
}

function classify(error) {
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "denied";
    case "NotReadableError":
    case "AbortError":
      return "busy";
    default:
      return "missing"; // NotFoundError, OverconstrainedError, and anything unknown
  }
}

/** Reaches the server over HTTP (/healthz) and opens and closes a WebSocket to /ws. */
export async function checkConnection(timeoutMs = CONNECTION_TIMEOUT_MS) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch("/healthz", { cache: "no-store", signal: controller.signal });
    if (!response.ok) return false;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
  return new Promise((resolve) => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${location.host}/ws`);
    } catch {
      resolve(false);
      return;
    }
    const done = (ok) => {
      clearTimeout(wsTimer);
      try { socket.close(1000); } catch { /* already closed */ }
      resolve(ok);
    };
    const wsTimer = setTimeout(() => done(false), timeoutMs);
    socket.addEventListener("open", () => done(true), { once: true });
    socket.addEventListener("error", () => done(false), { once: true });
  });
}

/**
 * Drives a <meter> (value 0..1) from the stream's microphone with a Web Audio AnalyserNode.
 * Returns a stop function. Browsers may start the AudioContext suspended until the person
 * touches the page; we resume it on the first touch or key.
 */
export function levelMeter(stream, meter) {
  const AudioContextClass = window.AudioContext || window.webkitAudioContext;
  if (!AudioContextClass || stream.getAudioTracks().length === 0) return () => {};
  const context = new AudioContextClass();
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const resume = () => { if (context.state === "suspended") context.resume().catch(() => {}); };
  resume();
  document.addEventListener("pointerdown", resume);
  document.addEventListener("keydown", resume);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const sample of samples) sum += sample * sample;
    const rms = Math.sqrt(sum / samples.length);
    // Speech sits around 0.02–0.2 RMS; scale so normal talking fills most of the bar.
    meter.value = Math.min(1, rms * 5);
  }, METER_INTERVAL_MS);
  return () => {
    clearInterval(timer);
    document.removeEventListener("pointerdown", resume);
    document.removeEventListener("keydown", resume);
    source.disconnect();
    context.close().catch(() => {});
    meter.value = 0;
  };
}
