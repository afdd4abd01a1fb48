// Simulcast with a real browser as the answerer: the relay (`--simulcast`) asks the staff
// page for three VP8 layers (rid f/h/q) in its offer, Chromium answers with
// `a=simulcast:send` and sends rid-tagged layers, and the citizen receives one of them as one
// continuous stream — also across a layer switch as the relay's estimate towards it grows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, eventually, admitFromWaitingRoom, expectMediaRising, serverAndBrowser, apiLogin } from "./harness.mjs";

const { server, browser } = await serverAndBrowser({ env: { SKAERM_SIMULCAST: "true", SKAERM_LINK_OPENS_BEFORE_MIN: "60" } });

/** The relay's view of the live calls' participants (GET /api/ops/calls as ops). */
async function opsParticipants(cookie) {
  const response = await fetch(`${server.url}/api/ops/calls`, { headers: { cookie } });
  assert.equal(response.status, 200);
  const { calls } = await response.json();
  return calls.flatMap((c) => c.participants);
}

/** The page's outbound video encodings by rid: frames encoded, size, and whether active. */
async function outboundLayers(page) {
  return page.evaluate(async () => {
    const layers = {};
    for (const pc of window.__skaermTestPeers ?? []) {
      if (pc.connectionState === "closed") continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type !== "outbound-rtp" || s.kind !== "video") return;
        layers[s.rid ?? "-"] = {
          ssrc: s.ssrc,
          framesEncoded: s.framesEncoded ?? 0,
          width: s.frameWidth ?? 0,
          height: s.frameHeight ?? 0,
          active: s.active,
          limitation: s.qualityLimitationReason,
          target: s.targetBitrate,
        };
      });
    }
    return layers;
  });
}

/** The inbound video streams of the page's open connections: id → frames decoded, size. */
async function inboundVideo(page) {
  return page.evaluate(async () => {
    const streams = {};
    for (const [i, pc] of (window.__skaermTestPeers ?? []).entries()) {
      if (pc.connectionState === "closed") continue;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") {
          streams[`${i}:${s.id}`] = {
            framesDecoded: s.framesDecoded ?? 0, width: s.frameWidth ?? 0, ssrc: s.ssrc,
            framesReceived: s.framesReceived, keyFramesDecoded: s.keyFramesDecoded, packetsReceived: s.packetsReceived,
            packetsLost: s.packetsLost, pliCount: s.pliCount, nackCount: s.nackCount, framesDropped: s.framesDropped,
          };
        }
      });
    }
    return streams;
  });
}

/**
 * The page's camera is an HD webcam: getUserMedia is asked for 1280x720 (call.js asks for
 * 640x480 ideally, and Chromium's fake camera gives what it is asked for). Chromium sends
 * three simulcast layers only from 960x540 up; a 640x480 camera gets two (no quarter layer).
 */
async function hdCamera(page) {
  await page.addInitScript(() => {
    const native = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = (constraints) => native(constraints?.video
      ? { ...constraints, video: { ...(typeof constraints.video === "object" ? constraints.video : {}), width: { ideal: 1280 }, height: { ideal: 720 } } }
      : constraints);
  });
}

/** Layers whose framesEncoded rose by more than 10 between two samples `ms` apart. */
async function risingLayers(page, ms = 2000) {
  const before = await outboundLayers(page);
  await new Promise((r) => setTimeout(r, ms));
  const after = await outboundLayers(page);
  const rising = Object.keys(after).filter((rid) => after[rid].framesEncoded > (before[rid]?.framesEncoded ?? 0) + 10);
  return { rising: rising.sort(), after };
}

/** The one inbound video stream of `page` that decodes: its frames, or the streams it has. */
async function oneDecodingStream(page) {
  const streams = Object.values(await inboundVideo(page));
  const decoding = streams.filter((s) => s.framesDecoded > 0);
  return decoding.length === 1 ? decoding[0] : { streams };
}

test("the staff page publishes rid-tagged layers and the citizen decodes one stream of them, across a layer switch", async () => {
  let diagnose = async () => {};
  try {
    await simulcastCall((d) => { diagnose = d; });
  } catch (error) {
    await diagnose();
    throw error;
  }
});

async function simulcastCall(setDiagnose) {
  const staff = await newPage(browser, { name: "staff", viewport: { width: 1280, height: 800 } });
  await hdCamera(staff);
  await staff.goto(server.url);
  await staff.getByLabel("Brugernavn").fill("mette");
  await staff.getByLabel("Adgangskode").fill("skaerm-demo");
  await staff.getByRole("button", { name: "Log ind" }).click();
  const visit = staff.locator("li.visit").first();
  await visit.getByRole("button", { name: "Kopiér borgerlink" }).click();
  const citizenUrl = await visit.locator("input.link-value").inputValue();
  await visit.getByRole("link", { name: "Start" }).click();
  await staff.getByRole("button", { name: "Afslut besøg" }).waitFor();
  // The staff publishes alone for a few seconds first: the relay's receiver reports acknowledge
  // the layers' SSRCs, Chromium stops tagging them with mid/rid, and the citizen's arrival then
  // renegotiates the staff's connection. `rtc` 0.21.1 lost the layers there (the fix we carry:
  // crates/vendor/README.md).
  await eventually("the staff page encodes before the citizen comes", async () =>
    (await risingLayers(staff, 1000)).rising.length >= 2, 30_000);
  await new Promise((r) => setTimeout(r, 3000));

  // The citizen keeps the client's own camera request (640x480).
  const citizen = await newPage(browser, { name: "citizen", viewport: { width: 820, height: 1180 } });
  await citizen.goto(citizenUrl);
  await citizen.locator("#check-connection[data-state=ok]").waitFor({ timeout: 15_000 });
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await admitFromWaitingRoom(staff, citizen);
  await citizen.getByRole("button", { name: "Læg på" }).waitFor();

  const ops0 = await apiLogin(server, "ole");
  setDiagnose(async () => {
    console.log("DIAG citizen inbound", JSON.stringify(await inboundVideo(citizen)));
    console.log("DIAG staff inbound", JSON.stringify(await inboundVideo(staff)));
    console.log("DIAG staff outbound", JSON.stringify(await outboundLayers(staff)));
    console.log("DIAG ops", JSON.stringify(await opsParticipants(ops0)));
    console.log("DIAG metrics", (await (await fetch(`${server.url}/metrics`)).text()).split("\n").filter((l) => /^skaerm_(packets_dropped|keyframe|pli|layer|nack)/.test(l) && !/ 0$/.test(l)).join("\n"));
  });

  // Both pages answered the relay's simulcast offer with three send rids on their camera line.
  for (const [name, page] of [["staff", staff], ["citizen", citizen]]) {
    const sdp = await page.evaluate(() => window.__skaermTestPeers.at(-1).localDescription?.sdp ?? "");
    assert.match(sdp, /a=rid:f send\r\na=rid:h send\r\na=rid:q send\r\na=simulcast:send f;h;q\r\n/, `${name}'s answer`);
    assert.doesNotMatch(sdp, /a=inactive/, `${name}'s answer leaves no m-line inactive`);
  }

  // The staff's HD camera: rid-tagged layers, each encoding frames (three once Chromium's
  // bandwidth estimate has room for the full layer; two while it has not).
  let staffLayers;
  await eventually("the staff page encodes three layers", async () => {
    staffLayers = await risingLayers(staff);
    return staffLayers.rising.length === 3 || staffLayers;
  }, 45_000).catch(async (error) => {
    assert.ok(staffLayers.rising.length >= 2, `${error.message}; not even two`);
    console.log(`only ${staffLayers.rising.join(",")} encode: ${JSON.stringify(staffLayers.after)}`);
  });
  assert.equal(staffLayers.after.f.width, 1280);
  assert.equal(staffLayers.after.h.width, 640);
  if (staffLayers.rising.includes("q")) assert.equal(staffLayers.after.q.width, 320);
  // The citizen's 640x480 camera: Chromium sends the full and half layers only.
  const citizenLayers = await risingLayers(citizen);
  assert.deepEqual(citizenLayers.rising, ["f", "h"], JSON.stringify(citizenLayers.after));
  assert.equal(citizenLayers.after.q.framesEncoded, 0);

  // Each side decodes one continuous video stream of the other's layers.
  await expectMediaRising(citizen, "citizen", { videos: 1, audios: 1 });
  await expectMediaRising(staff, "staff", { videos: 1, audios: 1 });
  for (const [name, page] of [["staff", staff], ["citizen", citizen]]) {
    const one = await oneDecodingStream(page);
    assert.ok(one.framesDecoded > 0, `${name}: ${JSON.stringify(one)}`);
  }

  // The relay says which layer each subscriber gets (ops view): the citizen one of the
  // staff's three, the staff one the citizen sends (never the missing quarter layer).
  const ops = await apiLogin(server, "ole");
  let roles;
  await eventually("the relay reports a layer per subscriber", async () => {
    roles = Object.fromEntries((await opsParticipants(ops)).map((p) => [p.role, p]));
    return (roles.guest?.layer && roles.host?.layer) ? true : roles;
  });
  assert.ok(staffLayers.rising.includes(roles.guest.layer), JSON.stringify(roles.guest));
  assert.ok(["h", "f"].includes(roles.host.layer), JSON.stringify(roles.host));
  console.log(`layers: citizen gets ${roles.guest.layer} (estimate ${roles.guest.estimate_kbps} kbit/s), staff gets ${roles.host.layer} (estimate ${roles.host.estimate_kbps} kbit/s)`);

  // A layer switch, with the citizen decoding one stream throughout: the relay's estimate
  // towards the citizen starts at 300 kbit/s (a low layer) and grows on loopback, and the
  // citizen is switched up to the full layer at its keyframe. (A forced switch down is not
  // done here: Chromium's network emulation reaches WebRTC sockets only when set before they
  // are made, and a call's sockets outlive it; the way down is the same selector, proven in
  // tests/media_core.rs.)
  const layers = [roles.guest.layer];
  const before = (await oneDecodingStream(citizen)).framesDecoded;
  await eventually("the citizen is switched up to the full layer", async () => {
    const guest = (await opsParticipants(ops)).find((p) => p.role === "guest");
    if (guest?.layer && guest.layer !== layers.at(-1)) layers.push(guest.layer);
    return guest?.layer === "f" || guest;
  }, 60_000);
  console.log(`the citizen's layers over time: ${layers.join(" → ")}`);
  assert.ok(layers.length >= 2, `a switch happened: ${layers.join(" → ")}`);
  await expectMediaRising(citizen, "citizen after the switch", { videos: 1, audios: 1 });
  const after = await oneDecodingStream(citizen);
  assert.ok(after.framesDecoded > before, `one stream, decoding on: ${JSON.stringify(after)} after ${before}`);

  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /skaerm_packets_dropped_total\{reason="layer_not_selected"\} [1-9]/);
}
