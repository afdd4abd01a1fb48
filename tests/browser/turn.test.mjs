// A citizen behind a firewall that lets no UDP out still gets into the call: the server hands
// out coturn's address with the join, and the citizen's browser relays its media through a
// real coturn over TCP. The citizen page is forced the way such a network forces it: only
// relay candidates (iceTransportPolicy "relay") and only the TCP TURN URL (an init script in
// the test; the product has no switch for it). The staff page is left alone.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  startServer, startTurnServer, turnserverBinary, launchBrowser, newPage, admitFromWaitingRoom, logInAsStaff,
  startFirstVisit, expectDecoding,
} from "./harness.mjs";

const coturnMissing = turnserverBinary() === null;
const skip = coturnMissing && "coturn is not installed (apt-get install coturn): TURN test skipped";

let turn;
let server;
let browser;

before(async () => {
  if (coturnMissing) return;
  const secret = randomBytes(24).toString("hex");
  turn = await startTurnServer({ secret });
  server = await startServer({
    env: {
      SKAERM_TURN_URLS: [
        `turn:127.0.0.1:${turn.port}?transport=udp`,
        `turn:127.0.0.1:${turn.port}?transport=tcp`,
      ].join(","),
      SKAERM_TURN_SECRET: secret,
      // One media worker: one relay port, so the test knows the far end of the TURN path.
      SKAERM_MEDIA_WORKERS: "1",
    },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await turn?.stop();
});

/** The selected candidate pair of the page's open peer connection, from getStats. */
function selectedPair(page) {
  return page.evaluate(async () => {
    const pc = (window.__skaermTestPeers ?? []).filter((p) => p.connectionState !== "closed").at(-1);
    if (!pc) return { error: "no open peer connection" };
    const stats = await pc.getStats();
    let pairId = null;
    stats.forEach((s) => { if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
    const pair = pairId && stats.get(pairId);
    if (!pair) return { error: "no selected candidate pair" };
    const local = stats.get(pair.localCandidateId) ?? {};
    const remote = stats.get(pair.remoteCandidateId) ?? {};
    return {
      state: pair.state,
      localType: local.candidateType,
      localProtocol: local.protocol,
      relayProtocol: local.relayProtocol,
      localAddress: local.address,
      localPort: local.port,
      url: local.url,
      remoteType: remote.candidateType,
      remoteAddress: remote.address,
      remotePort: remote.port,
    };
  });
}

test("a citizen whose network blocks UDP joins through coturn over TCP", { skip }, async () => {
  const staff = await newPage(browser, { name: "staff", viewport: { width: 1280, height: 800 } });
  await staff.goto(server.url);
  await logInAsStaff(staff);
  const citizenUrl = await startFirstVisit(staff);

  const citizen = await newPage(browser, { name: "citizen", viewport: { width: 820, height: 1180 }, hasTouch: true });
  // The UDP-blocking network: relay candidates only, TURN over TCP only. What the page asked
  // for (the server's ICE servers) is kept in window.__turnRequested.
  await citizen.addInitScript(() => {
    const Base = window.RTCPeerConnection;
    window.__turnRequested = [];
    const force = (config = {}) => ({
      ...config,
      iceTransportPolicy: "relay",
      iceServers: (config.iceServers ?? [])
        .map((server) => ({ ...server, urls: [].concat(server.urls).filter((url) => url.endsWith("?transport=tcp")) }))
        .filter((server) => server.urls.length > 0),
    });
    window.RTCPeerConnection = class extends Base {
      constructor(config, ...rest) {
        super(force(config), ...rest);
      }
      setConfiguration(config) {
        window.__turnRequested.push(JSON.parse(JSON.stringify(config?.iceServers ?? [])));
        super.setConfiguration(force(config));
      }
    };
  });
  await citizen.goto(citizenUrl);
  await citizen.locator("#check-connection[data-state=ok]").waitFor({ timeout: 15_000 });
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await admitFromWaitingRoom(staff, citizen);
  await citizen.getByRole("button", { name: "Læg på" }).waitFor();

  // The web client took the TURN servers from `joined` (both URLs, one short-lived credential).
  const requested = await citizen.evaluate(() => window.__turnRequested);
  assert.ok(requested.length >= 1, "the citizen page set ICE servers from joined");
  const [iceServer] = requested.at(-1);
  assert.deepEqual(iceServer.urls, [
    `turn:127.0.0.1:${turn.port}?transport=udp`,
    `turn:127.0.0.1:${turn.port}?transport=tcp`,
  ]);
  const [expiry, opaque] = iceServer.username.split(":");
  const lifetime = Number(expiry) - Date.now() / 1000;
  assert.ok(lifetime > 3600 && lifetime <= 6 * 3600, `the credential lives a few hours (${lifetime} s)`);
  assert.match(opaque, /^[0-9a-f]{32}$/, "the username carries an opaque id only");

  await expectDecoding("staff", staff);
  await expectDecoding("citizen", citizen);

  const pair = await selectedPair(citizen);
  assert.equal(pair.state, "succeeded", JSON.stringify(pair));
  assert.equal(pair.localType, "relay", `the citizen's media goes through TURN: ${JSON.stringify(pair)}`);
  assert.equal(pair.relayProtocol, "tcp", `to coturn over TCP: ${JSON.stringify(pair)}`);
  assert.equal(pair.localAddress, "127.0.0.1", JSON.stringify(pair));
  assert.ok(pair.localPort >= turn.relayPorts[0] && pair.localPort <= turn.relayPorts[1],
    `the relayed address is one of coturn's relay ports: ${JSON.stringify(pair)}`);
  assert.equal(pair.remotePort, server.ports.udp, `the other end is the relay's UDP port: ${JSON.stringify(pair)}`);

  // coturn checked the credential and allocated under the opaque username.
  assert.ok(turn.log().includes(`user <${iceServer.username}>: incoming packet ALLOCATE processed, success`),
    "coturn allocated a relay for the credential from joined");
});
