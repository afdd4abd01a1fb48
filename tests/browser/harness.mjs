// Shared pieces of the browser tests: the real server binary on ephemeral ports, Debian's
// Chromium with fake camera and microphone, and reading WebRTC stats from a page without
// test hooks in the product (peer connections are captured by an init script).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import net from "node:net";
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { after } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../..");
export const artifacts = join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });

/** A free TCP port and a free UDP port on loopback, so a restarted server can keep them. */
async function freePorts() {
  const tcp = await new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
  const udp = await new Promise((resolvePort, reject) => {
    const socket = dgram.createSocket("udp4");
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      const { port } = socket.address();
      socket.close(() => resolvePort(port));
    });
  });
  return { tcp, udp };
}

/**
 * Starts `skaerm` with a fresh data directory on fixed free ports; resolves once it is ready.
 * `kill()` stops it abruptly (SIGKILL, as a crash would) and `restart()` starts it again on the
 * same ports and data directory (without re-seeding the demo, which would re-issue the citizen
 * link). `env` adds environment variables (e.g. SKAERM_LINK_OPENS_BEFORE_MIN). `host` is the
 * address it listens, binds its relay and announces candidates on (loopback unless given; the
 * public URL and so the citizen links follow the listen address); `args` adds flags.
 */
export async function startServer({ env = {}, host = "127.0.0.1", args = [] } = {}) {
  const bin = process.env.SKAERM_BIN || join(repoRoot, "target/debug/skaerm");
  const dataDir = mkdtempSync(join(tmpdir(), "skaerm-browser-"));
  const ports = await freePorts();
  let child = null;
  let log = "";

  const spawnServer = async (extraArgs) => {
    child = spawn(bin, [
      "--listen", `${host}:${ports.tcp}`,
      "--data-dir", dataDir,
      "--udp-port", String(ports.udp),
      "--udp-bind-ip", host,
      "--announce-ip", host,
      // One test file logs the same demo accounts in many times a minute from one address; the
      // brute-force limits themselves are proven by tests/e2e/attacks.rs.
      "--login-limit-per-user", "500",
      "--login-limit-per-ip", "500",
      ...args,
      ...extraArgs,
    ], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "info", ...env } });
    const running = child;
    running.stderr.on("data", (chunk) => { log += chunk; });
    return new Promise((resolveUrl, reject) => {
      const timer = setTimeout(() => reject(new Error(`server not ready in 60 s\n${log}`)), 60_000);
      let out = "";
      running.stdout.on("data", (chunk) => {
        out += chunk;
        const match = out.match(/skaerm ready: (\S+)/);
        if (match) { clearTimeout(timer); resolveUrl(match[1]); }
      });
      running.on("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited (${code})\n${log}`)); });
    });
  };

  const waitForExit = (signal) => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null || running.signalCode !== null) return Promise.resolve();
    return new Promise((r) => {
      running.once("exit", r);
      running.kill(signal);
      setTimeout(r, 5000);
    });
  };

  const url = await spawnServer([]);
  return {
    url,
    ports,
    log: () => log,
    /** Kills the server at once, like a crash or a pulled plug; the data stays. */
    kill: () => waitForExit("SIGKILL"),
    /** Starts the server again on the same ports and data directory. */
    async restart() {
      await waitForExit("SIGKILL");
      return spawnServer(["--no-demo"]);
    },
    async stop() {
      await waitForExit("SIGINT");
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Debian Chromium, headless, with fake media devices that need no permission prompt.
 * `executablePath` runs another executable (e.g. a wrapper starting Chromium in a network
 * namespace); `args` adds command-line flags.
 */
export async function launchBrowser({ executablePath, args = [] } = {}) {
  return chromium.launch({
    executablePath: executablePath || process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      "--autoplay-policy=no-user-gesture-required",
      ...args,
    ],
  });
}

/**
 * The setup most test files share: a started server (`startServer(serverOptions)`) and a
 * launched browser, both stopped after the file's tests (browser first). Call it at the top
 * of a test file: `const { server, browser } = await serverAndBrowser({ env: {...} });`.
 */
export async function serverAndBrowser(serverOptions = {}) {
  const running = {};
  after(async () => {
    await running.browser?.close();
    await running.server?.stop();
  });
  running.server = await startServer(serverOptions);
  running.browser = await launchBrowser();
  return running;
}

/** Saves a full-page screenshot of `page` as artifacts/<name>.png. */
export function screenshot(page, name) {
  return page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

/** A page whose RTCPeerConnections are remembered in window.__skaermTestPeers. */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({ ...options });
  const page = await context.newPage();
  await page.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    window.__skaermTestPeers = [];
    window.RTCPeerConnection = class extends Native {
      constructor(...args) {
        super(...args);
        window.__skaermTestPeers.push(this);
      }
    };
  });
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      console.log(`[page ${options.name ?? ""}] ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => console.log(`[page ${options.name ?? ""}] error: ${error.message}`));
  return page;
}

/** Inbound media totals of the page's open peer connections (closed ones are left out). */
export async function inboundMedia(page) {
  return page.evaluate(async () => {
    const totals = { framesDecoded: 0, audioPackets: 0, videoPackets: 0, peers: 0, open: 0, aspect: null };
    for (const pc of window.__skaermTestPeers ?? []) {
      totals.peers += 1;
      if (pc.connectionState === "closed" || pc.signalingState === "closed") continue;
      totals.open += 1;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type !== "inbound-rtp") return;
        if (s.kind === "video") {
          totals.framesDecoded += s.framesDecoded ?? 0;
          if (s.frameWidth) totals.aspect = Math.round((s.frameWidth / s.frameHeight) * 100) / 100;
          totals.videoPackets += s.packetsReceived ?? 0;
        }
        if (s.kind === "audio") totals.audioPackets += s.packetsReceived ?? 0;
      });
    }
    return totals;
  });
}

/** Polls `check` until it returns true, or fails after `ms` with `what`. */
export async function eventually(what, check, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last === true) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what} did not happen within ${ms} ms (last: ${JSON.stringify(last)})`);
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * Runs axe-core on the page as it is now and fails on any serious or critical violation.
 * axe is evaluated through the DevTools protocol, which the page's strict CSP does not block
 * (an injected <script> tag would be, rightly).
 */
export async function expectAccessible(page, name) {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
      resultTypes: ["violations"],
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
    }));
  });
  const serious = violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const minor = violations.filter((v) => !serious.includes(v));
  if (minor.length) console.log(`[axe ${name}] minor: ${minor.map((v) => `${v.id} (${v.impact})`).join(", ")}`);
  if (serious.length) {
    throw new Error(`axe found serious/critical violations on ${name}:\n${JSON.stringify(serious, null, 2)}`);
  }
  return violations;
}

/** Rejects getUserMedia as a browser does when the person (or policy) said no. */
export async function denyMedia(page) {
  await page.addInitScript(() => {
    const deny = () => Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
    Object.defineProperty(navigator.mediaDevices, "getUserMedia", { value: deny, configurable: true });
  });
}

/**
 * getDisplayMedia answers with a 16:9 animated canvas (the fake camera is 4:3), so a test can
 * tell a shared screen from the camera by the aspect ratio the other side decodes.
 */
export async function fakeScreen(page) {
  await page.addInitScript(() => {
    navigator.mediaDevices.getDisplayMedia = async () => {
      const canvas = document.createElement("canvas");
      canvas.width = 640;
      canvas.height = 360;
      const context = canvas.getContext("2d");
      let n = 0;
      setInterval(() => {
        n += 1;
        context.fillStyle = n % 2 ? "#0b5cab" : "#ffffff";
        context.fillRect(0, 0, canvas.width, canvas.height);
        context.fillStyle = "#000000";
        context.fillRect((n * 7) % canvas.width, 100, 80, 80);
      }, 66);
      const stream = canvas.captureStream(15);
      for (const track of stream.getVideoTracks()) track.contentHint = "detail";
      return stream;
    };
  });
}

/** Logs `page` in through the real login form as a demo staff member (password `skaerm-demo`). */
export async function logInAsStaff(page, username = "mette") {
  await page.getByLabel("Brugernavn", { exact: true }).fill(username);
  await page.getByLabel("Adgangskode").fill("skaerm-demo");
  await page.getByRole("button", { name: "Log ind" }).click();
}

/**
 * On the staff day list: hands out the first visit's citizen link, starts that visit and waits
 * for the call page. Returns the citizen's link.
 */
export async function startFirstVisit(staff) {
  const firstVisit = staff.locator("li.visit").first();
  await firstVisit.waitFor();
  await firstVisit.getByRole("button", { name: "Kopiér borgerlink" }).click();
  const linkField = firstVisit.locator("input.link-value");
  await linkField.waitFor();
  const citizenUrl = await linkField.inputValue();
  await firstVisit.getByRole("link", { name: "Start" }).click();
  await staff.waitForURL(/\/visit\//);
  await staff.getByRole("button", { name: "Afslut besøg" }).waitFor();
  return citizenUrl;
}

/**
 * The citizen lands in the waiting room ("Din medarbejder lukker dig ind om lidt") and the
 * staff member lets them in with the panel's "Lad komme ind" button.
 */
export async function admitFromWaitingRoom(staff, citizen, ms = 20_000) {
  await citizen.getByRole("heading", { name: "Din medarbejder lukker dig ind om lidt" }).waitFor({ timeout: ms });
  await staff.getByRole("region", { name: "Venteværelse" }).getByRole("button", { name: "Lad komme ind" }).click({ timeout: ms });
}

/** Inbound video streams of a page that have decoded frames, and how many frames each. */
export async function decodingStreams(page) {
  return page.evaluate(async () => {
    const frames = [];
    for (const pc of window.__skaermTestPeers ?? []) {
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video" && (s.framesDecoded ?? 0) > 0) {
          frames.push(s.framesDecoded);
        }
      });
    }
    return frames;
  });
}

/** Video elements (not the self view) that show a picture. */
export async function playingVideos(page) {
  return page.evaluate(() => [...document.querySelectorAll("video.remote-video, video.other-video")]
    .filter((v) => v.videoWidth > 0 && v.readyState >= 2).length);
}

/** Waits until the page's open peer connection decodes video and receives audio, and keeps on. */
export async function expectDecoding(name, page, ms = 30_000) {
  let first;
  await eventually(`${name} decodes video and receives audio`, async () => {
    first = await inboundMedia(page);
    return (first.framesDecoded > 0 && first.audioPackets > 0) || first;
  }, ms);
  await eventually(`${name} keeps decoding`, async () => {
    const now = await inboundMedia(page);
    return now.framesDecoded > first.framesDecoded + 10 || now;
  }, ms);
}

/**
 * Logs a demo account (password `skaerm-demo`) in through the API, asserting 200; returns
 * every cookie the login set (session and refresh) as a `cookie` header value, as a browser
 * would send them back.
 */
export async function apiLogin(server, username) {
  const response = await fetch(`${server.url}/api/session`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-skaerm-csrf": "1" },
    body: JSON.stringify({ username, password: "skaerm-demo" }),
  });
  assert.equal(response.status, 200);
  return response.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
}

/**
 * Per inbound stream of the page's open peer connections: frames decoded (video) and bytes
 * and packets received (audio), keyed by connection and stats id.
 */
async function inboundStreams(page) {
  return page.evaluate(async () => {
    const video = {};
    const audio = {};
    const peers = window.__skaermTestPeers ?? [];
    for (const [i, pc] of peers.entries()) {
      if (pc.connectionState === "closed" || pc.signalingState === "closed") continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type !== "inbound-rtp") return;
        if (s.kind === "video") video[`${i}:${s.id}`] = s.framesDecoded ?? 0;
        if (s.kind === "audio") audio[`${i}:${s.id}`] = { bytes: s.bytesReceived ?? 0, packets: s.packetsReceived ?? 0 };
      });
    }
    return { video, audio };
  });
}

/**
 * Waits until `videos` inbound video streams each decode frames and `audios` inbound audio
 * streams each receive packets and bytes — counted from now (getStats twice, the second time
 * higher), so a stream that stalled does not pass on what it did before.
 */
export async function expectMediaRising(page, what, { videos, audios }, ms = 45_000) {
  const before = await inboundStreams(page);
  await eventually(`${what}: ${videos} video stream(s) decode and ${audios} audio stream(s) arrive`, async () => {
    const now = await inboundStreams(page);
    const risingVideo = Object.entries(now.video)
      .filter(([id, frames]) => frames > (before.video[id] ?? 0) + 10).length;
    const risingAudio = Object.entries(now.audio).filter(([id, { bytes, packets }]) => {
      const then = before.audio[id] ?? { bytes: 0, packets: 0 };
      return bytes > then.bytes && packets > then.packets + 10;
    }).length;
    return (risingVideo >= videos && risingAudio >= audios) || { risingVideo, risingAudio, now };
  }, ms);
}

/**
 * The number in `column` of the monthly report's row for `basis` on the report page (0 when
 * the row is absent).
 */
export async function reportNumber(page, basis, column) {
  const row = page.locator(`#report-table tr[data-basis="${basis}"]`);
  if (!(await row.count())) return 0;
  const headers = await page.locator("#report-table thead th").allInnerTexts();
  const index = headers.indexOf(column);
  if (index <= 0) throw new Error(`the report has no column ${column}: ${headers.join(", ")}`);
  return Number((await row.locator("th, td").nth(index).innerText()).replace(/\D/g, ""));
}

/** {date: YYYY-MM-DD, time: HH:MM} of an instant in Copenhagen. */
export function copenhagen(ms) {
  const date = new Intl.DateTimeFormat("en-CA", { timeZone: "Europe/Copenhagen" }).format(new Date(ms));
  const time = new Intl.DateTimeFormat("en-GB", {
    timeZone: "Europe/Copenhagen", hourCycle: "h23", hour: "2-digit", minute: "2-digit",
  }).format(new Date(ms));
  return { date, time };
}

/** A free TCP port on loopback. */
function freeTcpPort() {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** Where coturn's `turnserver` is, or null when it is not installed. */
export function turnserverBinary() {
  const candidates = [process.env.TURNSERVER, "/usr/bin/turnserver", "/usr/local/bin/turnserver"];
  return candidates.find((path) => path && existsSync(path)) ?? null;
}

/**
 * Starts a real coturn on loopback (UDP and TCP on one free port, no TLS) with REST-API
 * credentials (`use-auth-secret`, `static-auth-secret`), a generated config in a temp dir, and
 * only the relay's address (127.0.0.1 in the tests: loopback peers allowed, which production
 * must not do) as a peer. Resolves once it accepts TCP connections.
 */
export async function startTurnServer({ secret }) {
  const bin = turnserverBinary();
  if (!bin) throw new Error("coturn's turnserver is not installed");
  const dir = mkdtempSync(join(tmpdir(), "skaerm-coturn-"));
  const port = await freeTcpPort();
  // A relay port range away from the ephemeral ports the other servers get.
  const minPort = 20000 + Math.floor(Math.random() * 9000);
  const config = [
    "listening-ip=127.0.0.1",
    "relay-ip=127.0.0.1",
    `listening-port=${port}`,
    `min-port=${minPort}`,
    `max-port=${minPort + 99}`,
    "use-auth-secret",
    `static-auth-secret=${secret}`,
    "realm=skaerm.test",
    "fingerprint",
    "no-tls",
    "no-dtls",
    "no-cli",
    "no-rfc5780",
    "no-stun-backward-compatibility",
    "allow-loopback-peers",
    "no-multicast-peers",
    // As in production (deploy/coturn/turnserver.conf): every peer refused but the relay's.
    "denied-peer-ip=0.0.0.0-255.255.255.255",
    "allowed-peer-ip=127.0.0.1",
    `userdb=${join(dir, "turndb")}`,
    `pidfile=${join(dir, "turnserver.pid")}`,
    "log-file=stdout",
    "simple-log",
    "verbose",
  ].join("\n");
  const configPath = join(dir, "turnserver.conf");
  writeFileSync(configPath, `${config}\n`);
  let log = "";
  const child = spawn(bin, ["-c", configPath], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (chunk) => { log += chunk; });
  child.stderr.on("data", (chunk) => { log += chunk; });
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`turnserver exited (${child.exitCode})\n${log}`);
    const up = await new Promise((resolveUp) => {
      const socket = net.connect(port, "127.0.0.1");
      socket.once("connect", () => { socket.destroy(); resolveUp(true); });
      socket.once("error", () => resolveUp(false));
    });
    if (up) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`turnserver not listening within 15 s\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    relayPorts: [minPort, minPort + 99],
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise((r) => {
          child.once("exit", r);
          child.kill("SIGTERM");
          setTimeout(r, 5000);
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
