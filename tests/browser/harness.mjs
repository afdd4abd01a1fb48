// Shared pieces of the browser tests: the real server binary on ephemeral ports, Debian's
// Chromium with fake camera and microphone, and reading WebRTC stats from a page without
// test hooks in the product (peer connections are captured by an init script).
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../..");
export const artifacts = join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });

/** Starts `skaerm` with a fresh data directory; resolves with its URL once it is ready. */
export async function startServer() {
  const bin = process.env.SKAERM_BIN || join(repoRoot, "target/debug/skaerm");
  const dataDir = mkdtempSync(join(tmpdir(), "skaerm-browser-"));
  const child = spawn(bin, [
    "--listen", "127.0.0.1:0",
    "--data-dir", dataDir,
    "--udp-port", "0",
    "--udp-bind-ip", "127.0.0.1",
    "--announce-ip", "127.0.0.1",
  ], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "info" } });
  let log = "";
  child.stderr.on("data", (chunk) => { log += chunk; });
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`server not ready in 60 s\n${log}`)), 60_000);
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/skaerm ready: (\S+)/);
      if (match) { clearTimeout(timer); resolveUrl(match[1]); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited (${code})\n${log}`)); });
  });
  return {
    url,
    log: () => log,
    async stop() {
      child.kill("SIGINT");
      await new Promise((r) => { child.on("exit", r); setTimeout(r, 5000); });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Debian Chromium, headless, with fake media devices that need no permission prompt. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
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
    ],
  });
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

/** Inbound media totals of every peer connection on the page. */
export async function inboundMedia(page) {
  return page.evaluate(async () => {
    const totals = { framesDecoded: 0, audioPackets: 0, videoPackets: 0 };
    for (const pc of window.__skaermTestPeers ?? []) {
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type !== "inbound-rtp") return;
        if (s.kind === "video") {
          totals.framesDecoded += s.framesDecoded ?? 0;
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
