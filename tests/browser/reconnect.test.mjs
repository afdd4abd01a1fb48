// The server dies mid-call and comes back on the same ports and data: staff and citizen rejoin
// by themselves, with a calm notice meanwhile, and nobody clicks anything. (The restarted relay
// has forgotten that the citizen was let in; the staff page, which remembers, lets them in
// again by itself.)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  startServer, launchBrowser, newPage, inboundMedia, eventually, artifacts, admitFromWaitingRoom, logInAsStaff, startFirstVisit,
} from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const shot = (page, name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

/** Waits until the page's open peer connection decodes video and receives audio, and keeps on. */
async function decoding(name, page, ms = 30_000) {
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

test("after a server crash and restart, both sides rejoin without a click", async () => {
  const staff = await newPage(browser, { name: "staff", viewport: { width: 1280, height: 800 } });
  await staff.goto(server.url);
  await logInAsStaff(staff);
  const citizenUrl = await startFirstVisit(staff);

  const citizen = await newPage(browser, { name: "citizen", viewport: { width: 820, height: 1180 }, hasTouch: true });
  await citizen.goto(citizenUrl);
  await citizen.locator("#check-connection[data-state=ok]").waitFor({ timeout: 15_000 });
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await admitFromWaitingRoom(staff, citizen);
  await citizen.getByRole("button", { name: "Læg på" }).waitFor();
  await decoding("staff", staff);
  await decoding("citizen", citizen);
  const peersBefore = { staff: (await inboundMedia(staff)).peers, citizen: (await inboundMedia(citizen)).peers };

  // The server process dies (SIGKILL: no goodbye to anyone).
  await server.kill();
  for (const page of [citizen, staff]) {
    await page.getByText("Forbinder igen … Du skal ikke gøre noget.").waitFor({ timeout: 15_000 });
  }
  await shot(citizen, "08-citizen-reconnecting");

  // It comes back on the same ports with the same data; from here on nobody clicks.
  await server.restart();
  for (const [name, page] of [["staff", staff], ["citizen", citizen]]) {
    await decoding(`${name} after the restart`, page, 60_000);
    const media = await inboundMedia(page);
    assert.ok(media.peers > peersBefore[name], `${name} made a new peer connection (${JSON.stringify(media)})`);
    assert.equal(media.open, 1, `${name} has exactly one open peer connection`);
  }
  for (const page of [citizen, staff]) {
    await eventually("the reconnect notice goes away", async () =>
      (await page.getByText("Forbinder igen", { exact: false }).count()) === 0);
    assert.equal(await page.getByRole("button", { name: /Læg på|Afslut besøg/ }).count(), 1, "still in the call");
  }
  await shot(citizen, "09-citizen-reconnected");
  await shot(staff, "10-staff-reconnected");

  // The citizen hangs up by mistake, and comes back with one press (the staff never left).
  await citizen.getByRole("button", { name: "Læg på" }).click();
  await citizen.getByText("Du har lagt på.", { exact: false }).waitFor();
  await shot(citizen, "17-citizen-hung-up");
  await citizen.getByRole("button", { name: "Deltag igen" }).click();
  await citizen.locator("#check-connection[data-state=ok]").waitFor({ timeout: 15_000 });
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await decoding("citizen after joining again", citizen);
  await decoding("staff after the citizen joined again", staff);
});
