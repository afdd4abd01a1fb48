// The server dies mid-call and comes back on the same ports and data: staff and citizen rejoin
// by themselves, with a calm notice meanwhile, and nobody clicks anything. (The restarted relay
// has forgotten that the citizen was let in; the staff page, which remembers, lets them in
// again by itself.)
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  newPage, inboundMedia, eventually, admitFromWaitingRoom, logInAsStaff, startFirstVisit, serverAndBrowser,
  screenshot, expectDecoding,
} from "./harness.mjs";

const { server, browser } = await serverAndBrowser();

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
  await expectDecoding("staff", staff);
  await expectDecoding("citizen", citizen);
  const peersBefore = { staff: (await inboundMedia(staff)).peers, citizen: (await inboundMedia(citizen)).peers };

  // The server process dies (SIGKILL: no goodbye to anyone).
  await server.kill();
  for (const page of [citizen, staff]) {
    await page.getByText("Forbinder igen … Du skal ikke gøre noget.").waitFor({ timeout: 15_000 });
  }
  await screenshot(citizen, "08-citizen-reconnecting");

  // It comes back on the same ports with the same data; from here on nobody clicks.
  await server.restart();
  for (const [name, page] of [["staff", staff], ["citizen", citizen]]) {
    await expectDecoding(`${name} after the restart`, page, 60_000);
    const media = await inboundMedia(page);
    assert.ok(media.peers > peersBefore[name], `${name} made a new peer connection (${JSON.stringify(media)})`);
    assert.equal(media.open, 1, `${name} has exactly one open peer connection`);
  }
  for (const page of [citizen, staff]) {
    await eventually("the reconnect notice goes away", async () =>
      (await page.getByText("Forbinder igen", { exact: false }).count()) === 0);
    assert.equal(await page.getByRole("button", { name: /Læg på|Afslut besøg/ }).count(), 1, "still in the call");
  }
  await screenshot(citizen, "09-citizen-reconnected");
  await screenshot(staff, "10-staff-reconnected");

  // The citizen hangs up by mistake, and comes back with one press (the staff never left).
  await citizen.getByRole("button", { name: "Læg på" }).click();
  await citizen.getByText("Du har lagt på.", { exact: false }).waitFor();
  await screenshot(citizen, "17-citizen-hung-up");
  await citizen.getByRole("button", { name: "Deltag igen" }).click();
  await citizen.locator("#check-connection[data-state=ok]").waitFor({ timeout: 15_000 });
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await expectDecoding("citizen after joining again", citizen);
  await expectDecoding("staff after the citizen joined again", staff);
});
