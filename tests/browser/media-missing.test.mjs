// When the citizen's picture and sound never reach the relay (a network that lets the page and
// its WebSocket through but no media), staff are told so in plain words and what to try —
// not "er kommet ind" and a good connection over a black picture.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  startServer, launchBrowser, newPage, eventually, artifacts, admitFromWaitingRoom, logInAsStaff, startFirstVisit,
} from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startServer({ env: { SKAERM_LINK_OPENS_BEFORE_MIN: "60" } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("staff are told plainly when the citizen's picture and sound do not arrive, and when they do", async () => {
  const staff = await newPage(browser, { name: "staff-missing", viewport: { width: 1280, height: 800 } });
  await staff.goto(server.url);
  await logInAsStaff(staff);
  const citizenUrl = await startFirstVisit(staff);
  const citizen = await newPage(browser, { name: "citizen-missing", viewport: { width: 820, height: 1180 } });
  await citizen.goto(citizenUrl);
  await citizen.locator("#check-connection[data-state=ok]").waitFor({ timeout: 15_000 });
  // From here on Chromium loses every WebRTC packet of the citizen (the page and its
  // WebSocket still work).
  const cdp = await citizen.context().newCDPSession(citizen);
  await cdp.send("Network.enable");
  const loss = (packetLoss) => cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: -1, packetLoss,
  });
  await loss(100);
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await admitFromWaitingRoom(staff, citizen);
  const notice = staff.locator("[data-role=media-missing]");
  await eventually("staff hear that the citizen's picture and sound do not arrive", async () =>
    /^Billede og lyd fra .+ når ikke frem til os\. Bed .+ om at prøve et andet netværk/.test(await notice.innerText())
    || await notice.innerText(), 30_000);
  assert.equal(await notice.getAttribute("role"), "status", "a live region: screen readers hear it too");
  await staff.screenshot({ path: join(artifacts, "media-missing-staff.png"), fullPage: true });
  // The citizen's line recovers: once their media arrives, the notice goes.
  await loss(0);
  await eventually("the notice goes when the citizen's media arrives", async () =>
    (await notice.innerText()) === "" || await notice.innerText(), 60_000);
});
