// Staff invite a relative into a running visit with a one-off link ("Invitér deltager" on the
// call page); the relative opens it at the citizen page and joins as a third participant; all
// three browsers decode the other two's video.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  newPage, eventually, admitFromWaitingRoom, decodingStreams, playingVideos, logInAsStaff, startFirstVisit,
  serverAndBrowser, screenshot,
} from "./harness.mjs";

const { server, browser } = await serverAndBrowser();

test("staff invite a relative who joins as third participant; all three decode video", async () => {
  const staff = await newPage(browser, { name: "staff-invite", viewport: { width: 1280, height: 900 } });
  await staff.goto(server.url);
  await logInAsStaff(staff);
  const citizenUrl = await startFirstVisit(staff);

  const citizen = await newPage(browser, { name: "citizen-invite", viewport: { width: 820, height: 1180 }, hasTouch: true });
  await citizen.goto(citizenUrl);
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await admitFromWaitingRoom(staff, citizen);
  await citizen.getByRole("button", { name: "Læg på" }).waitFor();

  // Staff invite the citizen's son.
  await staff.getByText("Invitér deltager").click();
  await staff.getByLabel("Navn, som de andre ser").fill("Søn <b>Jens</b>");
  await staff.getByLabel("Hvem er det?").selectOption("relative");
  await staff.getByRole("button", { name: "Lav link" }).click();
  const inviteField = staff.getByLabel("Engangslink til dette besøg:");
  await eventually("the invite link is shown", async () => (await inviteField.inputValue()) !== "");
  const inviteUrl = await inviteField.inputValue();
  assert.match(inviteUrl, /\/j\/[A-Za-z0-9_-]{27}$/);
  assert.notEqual(inviteUrl, citizenUrl);
  await staff.getByRole("button", { name: "Kopiér link" }).waitFor();
  await screenshot(staff, "07-staff-invite");

  // The relative opens the same kind of page and joins.
  const relative = await newPage(browser, { name: "relative", viewport: { width: 820, height: 1180 }, hasTouch: true });
  await relative.goto(inviteUrl);
  await relative.getByRole("button", { name: "Deltag" }).click();
  await admitFromWaitingRoom(staff, relative);
  await relative.getByRole("button", { name: "Læg på" }).waitFor();

  for (const [name, page] of [["staff", staff], ["citizen", citizen], ["relative", relative]]) {
    await eventually(`${name} decodes two video streams`, async () => {
      const frames = await decodingStreams(page);
      const playing = await playingVideos(page);
      return (frames.length >= 2 && playing >= 2) || { frames, playing };
    }, 30_000);
  }
  // The name is shown as text, never as markup.
  await eventually("staff show the relative's name", async () =>
    (await staff.locator(".call-layout").innerText()).includes("Søn <b>Jens</b>"));
  assert.equal(await staff.locator(".call-layout b").count(), 0);
  await screenshot(staff, "08-staff-three-way");
  await screenshot(relative, "09-relative-in-call");

  await staff.getByRole("button", { name: "Afslut besøg" }).click();
  await staff.getByRole("dialog").getByRole("button", { name: "Afslut nu" }).click();
  await relative.getByText("Besøget er slut. Tak for i dag.").waitFor({ timeout: 10_000 });
});
