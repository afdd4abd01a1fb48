// The citizen's media path breaks for real (a firewall rule drops the UDP of its peer
// connection's local ports for a few seconds) while its WebSocket stays up: the page asks the
// relay for an ICE restart, answers the new offer and media flows again both ways — in the same
// session (no new WebSocket), on the same RTCPeerConnection (no rejoin), counted by the server's
// `skaerm_ice_restarts_total`. Needs root and iptables (tests/run-all.sh installs it); without
// them the test is skipped with the reason.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  newPage, inboundMedia, eventually, admitFromWaitingRoom, logInAsStaff, startFirstVisit,
  serverAndBrowser, screenshot,
} from "./harness.mjs";

const RULE_COMMENT = "skaerm-ice-restart-test";

/** Why iptables cannot cut a path here, or null when it can. */
function firewallUnavailable() {
  try {
    execFileSync("iptables", ["-w", "-L", "OUTPUT", "-n"], { stdio: "ignore" });
    return null;
  } catch (error) {
    return `iptables is not usable here (${error.code ?? error.message}); install it and run as root`;
  }
}

/** The iptables rule specs that drop UDP from and to `port` (loopback: both ways in OUTPUT). */
function ruleSpecs(port) {
  return ["--sport", "--dport"].map((dir) => [
    "OUTPUT", "-p", "udp", dir, String(port), "-m", "comment", "--comment", RULE_COMMENT, "-j", "DROP",
  ]);
}

/** Cuts UDP on `ports`; returns a function removing exactly those rules (idempotent). */
function cut(ports) {
  const added = [];
  const remove = () => {
    while (added.length > 0) {
      const spec = added.pop();
      try { execFileSync("iptables", ["-w", "-D", ...spec], { stdio: "ignore" }); } catch { /* already gone */ }
    }
  };
  try {
    for (const port of ports) {
      for (const spec of ruleSpecs(port)) {
        execFileSync("iptables", ["-w", "-I", ...spec]);
        added.push(spec);
      }
    }
  } catch (error) {
    remove();
    throw error;
  }
  return remove;
}

/** UDP ports of the local ICE candidates of the page's open peer connection. */
async function localCandidatePorts(page) {
  return page.evaluate(async () => {
    const ports = new Set();
    for (const pc of window.__skaermTestPeers ?? []) {
      if (pc.connectionState === "closed") continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "local-candidate" && s.protocol === "udp" && s.port) ports.add(s.port);
      });
    }
    return [...ports];
  });
}

/** Counts the page's WebSockets to /ws and the `restart_ice` messages it sends on them. */
function watchSignalling(page) {
  const seen = { sockets: 0, restarts: 0, offers: 0 };
  page.on("websocket", (ws) => {
    if (!ws.url().endsWith("/ws")) return;
    seen.sockets += 1;
    ws.on("framesent", ({ payload }) => {
      if (typeof payload === "string" && payload.includes('"restart_ice"')) seen.restarts += 1;
    });
    ws.on("framereceived", ({ payload }) => {
      if (typeof payload === "string" && payload.includes('"type":"offer"')) seen.offers += 1;
    });
  });
  return seen;
}

/** Remembers every text the page's live status notices show, however briefly. */
async function rememberNotices(page) {
  await page.addInitScript(() => {
    window.__skaermNotices = [];
    new MutationObserver(() => {
      for (const notice of document.querySelectorAll("[data-role=reconnecting]")) {
        const text = notice.textContent.trim();
        if (text && window.__skaermNotices.at(-1) !== text) window.__skaermNotices.push(text);
      }
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
}

async function metric(url, name) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name));
  return line ? Number(line.split(" ").pop()) : 0;
}

/** Waits until the page decodes more video frames and receives more audio than in `since`. */
async function mediaFlows(name, page, since, ms = 30_000) {
  await eventually(`${name} decodes video and receives audio`, async () => {
    const now = await inboundMedia(page);
    return (now.framesDecoded > since.framesDecoded + 10 && now.audioPackets > since.audioPackets + 20) || now;
  }, ms);
}

const unavailable = firewallUnavailable();
const { server, browser } = unavailable ? {} : await serverAndBrowser();

test("a broken media path comes back by ICE restart, not by rejoining", { skip: unavailable ?? false }, async () => {
  const staff = await newPage(browser, { name: "staff", viewport: { width: 1280, height: 800 } });
  await staff.goto(server.url);
  await logInAsStaff(staff);
  const citizenUrl = await startFirstVisit(staff);

  const citizen = await newPage(browser, { name: "citizen", viewport: { width: 820, height: 1180 }, hasTouch: true });
  const citizenWs = watchSignalling(citizen);
  await rememberNotices(citizen);
  await citizen.goto(citizenUrl);
  await citizen.locator("#check-connection[data-state=ok]").waitFor({ timeout: 15_000 });
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await admitFromWaitingRoom(staff, citizen);
  await citizen.getByRole("button", { name: "Læg på" }).waitFor();
  await mediaFlows("staff", staff, { framesDecoded: 0, audioPackets: 0 });
  await mediaFlows("citizen", citizen, { framesDecoded: 0, audioPackets: 0 });

  const ports = await localCandidatePorts(citizen);
  assert.ok(ports.length > 0, "the citizen's peer connection has local UDP candidates");
  const before = {
    sockets: citizenWs.sockets,
    offers: citizenWs.offers,
    peers: { staff: (await inboundMedia(staff)).peers, citizen: (await inboundMedia(citizen)).peers },
    restarts: await metric(server.url, 'skaerm_ice_restarts_total{result="restarted"}'),
  };

  // The citizen's media path goes dead; its WebSocket (TCP) stays up.
  const heal = cut(ports);
  try {
    await eventually("the citizen asks for an ICE restart", async () => citizenWs.restarts > 0 || citizenWs, 20_000);
    // Keep the old path dead a little longer (about 6 s in all), as a real network change
    // would: the new path must not depend on it.
    await new Promise((r) => setTimeout(r, 1500));
  } finally {
    heal();
  }

  // The calm notice was shown meanwhile (it may be brief: the restart is quick).
  assert.ok(
    (await citizen.evaluate(() => window.__skaermNotices ?? [])).includes("Forbinder igen … Du skal ikke gøre noget."),
    "the citizen saw the reconnecting notice",
  );
  const stalled = { staff: await inboundMedia(staff), citizen: await inboundMedia(citizen) };
  await mediaFlows("citizen after the ICE restart", citizen, stalled.citizen);
  await mediaFlows("staff after the ICE restart", staff, stalled.staff);
  await eventually("the reconnect notice goes away", async () =>
    (await citizen.getByText("Forbinder igen", { exact: false }).count()) === 0);
  await screenshot(citizen, "ice-restart-citizen-recovered");

  // A restart, not a rejoin: same WebSocket, same peer connections, a new offer on them, and
  // the relay counted the restart.
  assert.equal(citizenWs.sockets, before.sockets, "the citizen opened no new WebSocket (same session)");
  assert.ok(citizenWs.offers > before.offers, "the relay sent a new offer on the same socket");
  for (const [name, page] of [["staff", staff], ["citizen", citizen]]) {
    const media = await inboundMedia(page);
    assert.equal(media.peers, before.peers[name], `${name} made no new peer connection`);
    assert.equal(media.open, 1, `${name} has exactly one open peer connection`);
  }
  await eventually("the server counted the ICE restart", async () =>
    (await metric(server.url, 'skaerm_ice_restarts_total{result="restarted"}')) > before.restarts, 10_000);
  assert.equal(await citizen.getByRole("button", { name: "Læg på" }).count(), 1, "the citizen is still in the call");
});
