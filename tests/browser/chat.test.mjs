// In-call text chat: staff and citizen, in two real browsers through the relay, write to each
// other; hostile markup shows as text; the panel passes axe with the chat open.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  newPage, eventually, expectAccessible, admitFromWaitingRoom, logInAsStaff, startFirstVisit, serverAndBrowser,
  screenshot,
} from "./harness.mjs";

const { server, browser } = await serverAndBrowser();

/** The chat log's messages as {who, time, text}. */
async function messages(page) {
  return page.locator("#chat .chat-message").evaluateAll((items) => items.map((li) => ({
    who: li.querySelector("strong")?.textContent ?? "",
    time: li.querySelector("time")?.textContent ?? "",
    text: li.querySelector(".chat-text")?.textContent ?? "",
  })));
}

test("staff and citizen chat both ways in the call; markup shows as text", async () => {
  const staff = await newPage(browser, { name: "staff-chat", viewport: { width: 1280, height: 900 } });
  await staff.goto(server.url);
  await logInAsStaff(staff);
  const citizenUrl = await startFirstVisit(staff);

  const citizen = await newPage(browser, { name: "citizen-chat", viewport: { width: 820, height: 1180 }, hasTouch: true });
  await citizen.goto(citizenUrl);
  await citizen.getByRole("button", { name: "Deltag" }).click();
  // No chat in the waiting room.
  await citizen.getByRole("heading", { name: "Din medarbejder lukker dig ind om lidt" }).waitFor({ timeout: 20_000 });
  assert.equal(await citizen.locator("#chat").isVisible(), false, "no chat while waiting");
  await admitFromWaitingRoom(staff, citizen);
  await citizen.getByRole("button", { name: "Læg på" }).waitFor({ timeout: 20_000 });

  // Staff write (keyboard: the labelled field, Enter sends).
  const staffField = staff.getByLabel("Din besked");
  await staffField.fill("Hej, kan du høre mig?");
  await staffField.press("Enter");

  // The citizen opens the collapsed "Skriv" panel and sees it, with the sender's name and time.
  await citizen.getByText("Skriv", { exact: true }).click();
  await eventually("the citizen sees the staff message", async () => {
    const got = await messages(citizen);
    return (got.length === 1 && got[0].text === "Hej, kan du høre mig?") || got;
  });
  const [fromStaff] = await messages(citizen);
  assert.match(fromStaff.time, /^\d{2}[.:]\d{2}$/);
  assert.ok(fromStaff.who.length > 0 && fromStaff.who !== "Dig", `sender named: ${fromStaff.who}`);
  await eventually("the citizen's page announces it", async () =>
    (await citizen.locator("#chat-announce[aria-live=polite]").innerText()).includes("Hej, kan du høre mig?")
    || await citizen.locator("#chat-announce").innerText());

  // The citizen answers with markup: it is text on both sides, nothing runs.
  const hostile = "<img src=x onerror=\"window.__chatXss=1\"> ja <b>tak</b>";
  await citizen.getByLabel("Din besked").fill(hostile);
  await citizen.getByRole("button", { name: "Send", exact: true }).click();
  for (const [name, page] of [["staff", staff], ["citizen", citizen]]) {
    await eventually(`${name} shows the citizen's message as text`, async () => {
      const got = await messages(page);
      return (got.length === 2 && got[1].text === hostile) || got;
    });
    assert.equal(await page.locator("#chat img, #chat b").count(), 0, `${name}: no markup rendered`);
    assert.equal(await page.evaluate(() => window.__chatXss), undefined, `${name}: no script ran`);
  }
  const staffSees = await messages(staff);
  assert.equal(staffSees[0].who, "Dig");
  assert.equal(staffSees[0].text, "Hej, kan du høre mig?");
  assert.notEqual(staffSees[1].who, "Dig");
  assert.equal((await messages(citizen))[1].who, "Dig");
  await eventually("the staff page announces the citizen's message", async () =>
    (await staff.locator("#chat-announce").innerText()).includes(hostile) || await staff.locator("#chat-announce").innerText());

  await screenshot(staff, "30-staff-chat");
  await screenshot(citizen, "31-citizen-chat");
  await expectAccessible(staff, "staff call with chat");
  await expectAccessible(citizen, "citizen call with chat open");

  // English: the panel follows the language.
  await citizen.getByRole("button", { name: "Switch to English" }).click();
  await citizen.getByRole("button", { name: "Send", exact: true }).waitFor();
  await citizen.getByLabel("Your message").waitFor();
  await citizen.getByRole("button", { name: "Skift til dansk" }).click();

  // Writing too fast: the relay drops the excess and the page says why, in words.
  // (Submitted through the form in one go: typing eight messages on a loaded machine could
  // take long enough for the bucket to refill.)
  await staff.evaluate(() => {
    const form = document.querySelector("#chat form");
    for (let i = 0; i < 8; i += 1) {
      form.elements.text.value = `hurtig ${i}`;
      form.requestSubmit();
    }
  });
  await staff.getByRole("alert").filter({ hasText: "Du sender for hurtigt" }).waitFor({ timeout: 10_000 });
  const fast = async () => (await messages(staff)).filter((m) => m.text.startsWith("hurtig ")).length;
  await eventually("the first five went through", async () => (await fast()) >= 5 || await fast());
  assert.ok((await fast()) < 8, `the rate limit let ${await fast()} of 8 through`);

  await citizen.getByRole("button", { name: "Læg på" }).click();
  await staff.close();
  await citizen.close();
});
