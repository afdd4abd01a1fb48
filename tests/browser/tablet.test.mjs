// A registered citizen tablet, in a real browser: staff pair it from the staff page by the
// code it shows, call it from a visit in progress, the tablet rings (sound, a big green and a
// big red button), the citizen answers and the tablet goes straight into the call (staff called
// it: no waiting room, no "Lad komme ind"), and both decode video; staff unpair it and the
// tablet is signed out (shows a new pairing code).
import { test } from "node:test";
import assert from "node:assert/strict";
import { newPage, inboundMedia, eventually, expectAccessible, logInAsStaff, serverAndBrowser, screenshot } from "./harness.mjs";

const { server, browser } = await serverAndBrowser({ env: { SKAERM_LINK_OPENS_BEFORE_MIN: "60" } });

test("staff pair a tablet, call it from a visit, the tablet answers, both see video, unpair signs it out", async () => {
  const tablet = await newPage(browser, { name: "tablet", viewport: { width: 820, height: 1180 }, hasTouch: true });
  await tablet.goto(`${server.url}/tablet`);
  const codeText = tablet.locator("#pairing-code");
  await eventually("the tablet shows a pairing code", async () =>
    /^[A-Z2-9]{4}-[A-Z2-9]{4}$/.test(await codeText.innerText()) || await codeText.innerText());
  const code = await codeText.innerText();
  await screenshot(tablet, "60-tablet-pairing-code");

  // Staff log in; the visits page has the tablets card.
  const staff = await newPage(browser, { name: "staff", viewport: { width: 1280, height: 900 } });
  // What the relay tells each side (to prove that nobody is put in or asked about the waiting
  // room, not even for a moment).
  const signalled = { tablet: [], staff: [] };
  for (const [name, page] of [["tablet", tablet], ["staff", staff]]) {
    page.on("websocket", (ws) => ws.on("framereceived", ({ payload }) => signalled[name].push(String(payload))));
  }
  await staff.goto(server.url);
  await logInAsStaff(staff);
  const firstVisit = staff.locator("li.visit").first();
  await firstVisit.waitFor();
  const citizenName = await firstVisit.locator(".visit-citizen").innerText();
  const card = staff.getByRole("region", { name: "Borgertablets" });
  await card.getByText("Ingen tablets er tilknyttet endnu.").waitFor();

  // A wrong code is refused in plain words.
  await card.getByLabel("Kode fra tabletten").fill("AAAA-BBBB");
  await card.getByLabel("Borger, tabletten tilhører").selectOption({ label: citizenName });
  await card.getByRole("button", { name: "Tilknyt tablet" }).click();
  await card.getByText("Koden passer ikke.", { exact: false }).waitFor();

  await card.getByLabel("Kode fra tabletten").fill(code);
  await card.getByLabel("Navn på tabletten (valgfrit)").fill("Stuen");
  await card.getByRole("button", { name: "Tilknyt tablet" }).click();
  await card.getByText(`Tablet tilknyttet: ${citizenName}`).waitFor();
  const listed = card.locator("li.device");
  await listed.waitFor();
  assert.equal(await listed.count(), 1);
  assert.match(await listed.innerText(), new RegExp(`${citizenName} · Stuen`));
  await screenshot(staff, "61-staff-tablets");
  await expectAccessible(staff, "staff tablets card");

  // The tablet notices by itself that it is paired.
  await tablet.getByText("Tabletten er klar.", { exact: false }).waitFor({ timeout: 10_000 });
  await tablet.getByRole("heading", { name: `${citizenName}s tablet` }).waitFor();
  await expectAccessible(tablet, "tablet paired and waiting");

  // Staff start the visit and call the tablet.
  await firstVisit.getByRole("link", { name: "Start" }).click();
  await staff.waitForURL(/\/visit\//);
  await staff.getByRole("button", { name: "Afslut besøg" }).waitFor();
  const callButton = staff.getByRole("button", { name: "Ring til borgerens tablet" });
  await callButton.click();
  await staff.getByText("Tabletten ringer i 60 sekunder.", { exact: false }).waitFor();
  await expectAccessible(staff, "staff call page with the tablet call");

  // The tablet rings: a sound, a big green answer and a big red decline button.
  const accept = tablet.getByRole("button", { name: "Tag imod" });
  await accept.waitFor({ timeout: 10_000 });
  const decline = tablet.getByRole("button", { name: "Afvis" });
  assert.equal(await tablet.evaluate(() => document.body.dataset.ringing), "true", "the ring tone plays");
  const looks = await tablet.evaluate(() => ["#accept", "#decline"].map((s) => {
    const el = document.querySelector(s);
    const box = el.getBoundingClientRect();
    return { color: getComputedStyle(el).backgroundColor, height: box.height, width: box.width };
  }));
  assert.equal(looks[0].color, "rgb(20, 108, 46)", "answer is green");
  assert.equal(looks[1].color, "rgb(179, 38, 30)", "decline is red");
  for (const look of looks) assert.ok(look.height >= 100 && look.width >= 250, `big buttons: ${JSON.stringify(look)}`);
  assert.equal(await decline.count(), 1);
  await screenshot(tablet, "62-tablet-ringing");
  await expectAccessible(tablet, "tablet ringing");

  // The citizen answers; the tablet goes straight into the call: staff called it, so nobody
  // has to let it in.
  await accept.click();
  await eventually("the ring stops", async () =>
    (await tablet.evaluate(() => document.body.dataset.ringing ?? "stopped")) === "stopped" || "still ringing", 5_000);
  await tablet.getByRole("button", { name: "Læg på" }).waitFor({ timeout: 20_000 });
  await staff.locator(".remote-name").getByText(citizenName).waitFor({ timeout: 20_000 });
  for (const [name, page] of [["staff", staff], ["tablet", tablet]]) {
    let first = null;
    await eventually(`${name} decodes video`, async () => {
      const media = await inboundMedia(page);
      if (first === null && media.framesDecoded > 0) first = media.framesDecoded;
      return (first !== null && media.framesDecoded > first + 10) || media;
    }, 30_000);
  }
  // Neither side ever saw the waiting room.
  assert.ok(signalled.tablet.some((m) => JSON.parse(m).type === "joined"), "the tablet joined");
  assert.ok(!signalled.tablet.some((m) => JSON.parse(m).type === "waiting"), "the tablet never waited");
  assert.ok(!signalled.staff.some((m) => JSON.parse(m).type === "participant_waiting"), "staff were never asked");
  assert.equal(await tablet.getByRole("heading", { name: "Din medarbejder lukker dig ind om lidt" }).count(), 0);
  assert.equal(await staff.getByRole("button", { name: "Lad komme ind" }).count(), 0, "staff are not asked to let the tablet in");
  assert.equal(await staff.locator("#lobby-panel").isHidden(), true);
  await expectAccessible(tablet, "tablet in the call");
  await screenshot(tablet, "63-tablet-in-call");
  await screenshot(staff, "64-staff-in-call-with-tablet");

  // Staff hang up and unpair the tablet from the staff page: the tablet is signed out.
  await staff.getByRole("button", { name: "Afslut besøg" }).click();
  await staff.getByRole("dialog").getByRole("button", { name: "Afslut nu" }).click();
  await staff.locator("#done").waitFor();
  // The visit is over: the tablet leaves the call and waits for the next one.
  await tablet.getByText("Tabletten er klar.", { exact: false }).waitFor({ timeout: 15_000 });
  await staff.goto(server.url);
  const again = staff.getByRole("region", { name: "Borgertablets" });
  await again.getByRole("button", { name: `Fjern tilknytning: ${citizenName} · Stuen` }).click();
  await again.getByText(`${citizenName}s tablet er ikke længere tilknyttet.`, { exact: false }).waitFor();
  await again.getByText("Ingen tablets er tilknyttet endnu.").waitFor();
  await tablet.getByRole("heading", { name: "Tilknyt tablet" }).waitFor({ timeout: 15_000 });
  await eventually("the tablet shows a new pairing code", async () => {
    const fresh = await codeText.innerText();
    return (/^[A-Z2-9]{4}-[A-Z2-9]{4}$/.test(fresh) && fresh !== code) || fresh;
  });
  await screenshot(tablet, "65-tablet-signed-out");
});
