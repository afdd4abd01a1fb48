// A staff member and a citizen, in two real browsers, see and hear each other through
// Skærm's relay — from a scheduled visit, on first try.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  newPage, inboundMedia, eventually, expectAccessible, denyMedia, fakeScreen, admitFromWaitingRoom,
  logInAsStaff, serverAndBrowser, screenshot, apiLogin,
} from "./harness.mjs";

  // Links open an hour ahead, so the demo's later visits can be joined too.
const { server, browser } = await serverAndBrowser({ env: { SKAERM_LINK_OPENS_BEFORE_MIN: "60" } });

/** Ends the visit from the staff call page with the default outcome (completed). */
async function endVisit(staff) {
  await staff.getByRole("button", { name: "Afslut besøg" }).click();
  await staff.getByRole("dialog").getByRole("button", { name: "Afslut nu" }).click();
}

/**
 * Plans a visit as `username` through the API in the first free slot that starts within the
 * next 15 minutes (a visit can be started from 15 minutes before it, so the tests below use
 * visits of their own that start soon rather than the demo's later ones).
 */
async function planSoon(username, citizenName, minutes) {
  const cookie = await apiLogin(server, username);
  const listed = await fetch(`${server.url}/api/visits`, { headers: { cookie } });
  assert.equal(listed.status, 200, await listed.clone().text());
  const list = await listed.json();
  const citizen = list.visits.find((v) => v.citizen.display_name === citizenName).citizen;
  const busy = list.visits.filter((v) => !["cancelled", "no_show", "technical_failure"].includes(v.status))
    .map((v) => [Date.parse(v.planned_start), Date.parse(v.planned_end)]);
  const soon = Math.ceil((Date.now() + 60_000) / 60_000) * 60_000;
  const free = [soon, ...busy.map(([, end]) => end)]
    .filter((at) => at >= soon && at <= Date.now() + 14 * 60_000)
    .sort((a, b) => a - b)
    .find((at) => busy.every(([from, to]) => at + minutes * 60_000 <= from || at >= to));
  assert.ok(free, `${username} has a free slot in the next 15 minutes`);
  const start = new Date(free);
  const created = await fetch(`${server.url}/api/visits`, {
    method: "POST",
    headers: { cookie, "content-type": "application/json", "x-skaerm-csrf": "1" },
    body: JSON.stringify({
      legal_basis: "sel_83", citizen_id: citizen.id, planned_start: start.toISOString(), duration_minutes: minutes,
    }),
  });
  const text = await created.text();
  assert.equal(created.status, 201, text);
  return JSON.parse(text).visit;
}

test("staff and citizen see and hear each other through the relay", async () => {
  // Staff: log in with the demo account and see today's visits.
  const staff = await newPage(browser, { name: "staff", viewport: { width: 1280, height: 800 } });
  await staff.goto(server.url);
  await staff.getByLabel("Brugernavn").waitFor();
  await expectAccessible(staff, "staff login");
  await screenshot(staff, "00-staff-login");
  await logInAsStaff(staff);
  const firstVisit = staff.locator("li.visit").first();
  await firstVisit.waitFor();
  assert.match(await firstVisit.innerText(), /SEL §85/);
  await screenshot(staff, "01-staff-today");
  await expectAccessible(staff, "staff day list");

  // Staff hands out the citizen link.
  await firstVisit.getByRole("button", { name: "Kopiér borgerlink" }).click();
  const linkField = firstVisit.locator("input.link-value");
  await linkField.waitFor();
  const citizenUrl = await linkField.inputValue();
  assert.match(citizenUrl, /\/j\/[A-Za-z0-9_-]{27}$/);

  // A second tab keeps the day list open: it will show the visit's status change by itself.
  const list = await staff.context().newPage();
  await list.goto(server.url);
  const listedVisit = list.locator("li.visit").first();
  // Five minutes ahead, the visit is "ready" (its link is open).
  await listedVisit.locator(".visit-status").getByText("Klar").waitFor();

  // Staff starts the visit.
  await firstVisit.getByRole("link", { name: "Start" }).click();
  await staff.waitForURL(/\/visit\//);
  await staff.getByRole("button", { name: "Afslut besøg" }).waitFor();

  // Citizen, on a tablet-sized window: the check, then one big button.
  const citizen = await newPage(browser, { name: "citizen", viewport: { width: 820, height: 1180 }, hasTouch: true });
  await citizen.goto(citizenUrl);
  const join = citizen.getByRole("button", { name: "Deltag" });
  await join.waitFor();
  // The check: all three rows pass with the fake devices, the preview shows the camera, and
  // the microphone level meter moves (Chromium's fake microphone beeps).
  for (const row of ["camera", "microphone", "connection"]) {
    await citizen.locator(`#check-${row}[data-state=ok]`).waitFor({ timeout: 15_000 });
  }
  await citizen.getByText("Alt virker. Tryk på Deltag, når du er klar.").waitFor();
  await eventually("the camera preview shows a picture", async () =>
    (await citizen.locator("#preview").evaluate((v) => v.videoWidth > 0 && !v.paused)) || "no picture");
  const levels = [];
  await eventually("the microphone level meter moves", async () => {
    levels.push(await citizen.locator("#level").evaluate((m) => m.value));
    const distinct = new Set(levels.map((v) => v.toFixed(3)));
    return (levels.length > 3 && Math.max(...levels) > 0.05 && distinct.size >= 3) || levels.slice(-5);
  }, 10_000);
  assert.equal(await citizen.getByRole("button", { name: "Deltag" }).count(), 1, "one Deltag button");
  await screenshot(citizen, "02-citizen-check");
  await expectAccessible(citizen, "citizen join/check");
  await join.click();

  // The citizen waits in the waiting room, calmly, with no media yet.
  await citizen.getByRole("heading", { name: "Din medarbejder lukker dig ind om lidt" }).waitFor({ timeout: 20_000 });
  assert.equal(await citizen.getByRole("button", { name: "Læg på" }).count(), 0, "not in the call yet");
  const waitingMedia = await inboundMedia(citizen);
  assert.equal(waitingMedia.videoPackets + waitingMedia.audioPackets, 0, "no media before admission");
  await screenshot(citizen, "20-citizen-waiting-room");
  await expectAccessible(citizen, "citizen waiting room");
  await citizen.getByRole("button", { name: "Switch to English" }).click();
  await citizen.getByRole("heading", { name: "Your care worker will let you in shortly" }).waitFor();
  await expectAccessible(citizen, "citizen waiting room (English)");
  await citizen.getByRole("button", { name: "Skift til dansk" }).click();
  await citizen.getByRole("heading", { name: "Din medarbejder lukker dig ind om lidt" }).waitFor();

  // Staff see them waiting at once: a panel with the name, a spoken announcement, the tab title.
  const lobby = staff.getByRole("region", { name: "Venteværelse" });
  const waitingRow = lobby.locator("li.waiting-person");
  await waitingRow.waitFor({ timeout: 10_000 });
  assert.match(await waitingRow.locator(".waiting-name").innerText(), /^\S.* venter$/);
  await eventually("the arrival is announced", async () =>
    /venter i venteværelset\.$/.test(await staff.locator("#lobby-announce[aria-live]").innerText())
    || await staff.locator("#lobby-announce").innerText());
  assert.match(await staff.title(), /^\(1\) venter – /);
  await screenshot(staff, "21-staff-waiting-room");
  await expectAccessible(staff, "staff waiting-room panel");
  // Keyboard only: Tab reaches "Lad komme ind", and Enter lets the citizen in.
  await staff.locator("body").focus();
  let onAdmit = false;
  for (let i = 0; i < 12 && !onAdmit; i += 1) {
    await staff.keyboard.press("Tab");
    onAdmit = await staff.evaluate(() => document.activeElement?.dataset.role === "admit");
  }
  assert.ok(onAdmit, "Tab reaches the admit button");
  await staff.keyboard.press("Enter");
  await citizen.getByRole("button", { name: "Læg på" }).waitFor({ timeout: 20_000 });
  await lobby.waitFor({ state: "hidden" });
  assert.equal(await staff.title(), "Skærm – besøg");

  // The other tab's list turned "I gang" without a reload.
  await listedVisit.locator(".visit-status").getByText("I gang").waitFor({ timeout: 20_000 });
  assert.equal(await listedVisit.getAttribute("data-status"), "in_progress");
  await list.close();

  // Both decode the other's video and receive the other's audio.
  for (const [name, page] of [["staff", staff], ["citizen", citizen]]) {
    await eventually(`${name} decodes video and receives audio`, async () => {
      const media = await inboundMedia(page);
      return (media.framesDecoded > 0 && media.audioPackets > 0) || media;
    });
  }
  // And it keeps flowing: frames keep being decoded.
  const before = await inboundMedia(citizen);
  await eventually("citizen keeps decoding", async () => {
    const now = await inboundMedia(citizen);
    return now.framesDecoded > before.framesDecoded + 10 || now;
  });
  await screenshot(staff, "03-staff-in-call");
  await screenshot(citizen, "04-citizen-in-call");
  // The quality indicator says it in words, with an icon, not by colour alone.
  await citizen.locator(".quality[data-level]").getByText(/Forbindelse: (God|Svag|Dårlig)/).waitFor({ timeout: 10_000 });
  assert.equal(await citizen.locator(".quality-icon[aria-hidden=true]").count(), 1);
  await expectAccessible(staff, "staff call");
  await expectAccessible(citizen, "citizen call");

  // The citizen mutes the microphone: the staff page says so.
  await citizen.getByRole("button", { name: "Slå mikrofon fra" }).click();
  await citizen.getByRole("button", { name: "Slå mikrofon til" }).waitFor();
  await eventually("staff sees the citizen muted", async () =>
    (await staff.locator(".remote-muted").innerText()).includes("Mikrofon slået fra"));

  // Staff ends the visit choosing the outcome: the citizen is told, kindly.
  await staff.getByRole("button", { name: "Afslut besøg" }).click();
  const dialog = staff.getByRole("dialog", { name: "Afslut besøget" });
  await dialog.waitFor();
  assert.equal(await dialog.getByRole("radio", { name: "Gennemført" }).isChecked(), true);
  await screenshot(staff, "19-staff-end-dialog");
  await expectAccessible(staff, "staff end-visit dialog");
  // Changing one's mind keeps the call going.
  await dialog.getByRole("button", { name: "Tilbage til besøget" }).click();
  await dialog.waitFor({ state: "hidden" });
  assert.ok((await inboundMedia(staff)).open === 1, "still in the call");
  await staff.getByRole("button", { name: "Afslut besøg" }).click();
  await dialog.getByLabel("Note (valgfri)").fill("Medicin gennemgået.");
  await dialog.getByRole("button", { name: "Afslut nu" }).click();
  await citizen.getByText("Besøget er slut. Tak for i dag.").waitFor({ timeout: 10_000 });
  await staff.getByText("Besøget er afsluttet.").waitFor({ timeout: 10_000 });
  await screenshot(citizen, "05-citizen-ended");
  await expectAccessible(citizen, "citizen ended");
  await expectAccessible(staff, "staff ended");

  // Back on the list, the visit shows as completed.
  await staff.goto(server.url);
  await staff.locator("li.visit[data-status=completed]").first().waitFor();

  // Day and week: yesterday has no demo visits (they are planned from now on); the week shows
  // today's visits in today's column.
  await staff.getByRole("button", { name: "Forrige dag" }).click();
  await staff.getByText("Ingen besøg denne dag.").waitFor();
  assert.match(await staff.locator("#today-title").innerText(), /^Besøg /);
  assert.equal(await staff.locator("li.visit").count(), 0);
  await staff.getByRole("button", { name: "I dag" }).click();
  await staff.locator("li.visit").first().waitFor();
  // Late in the evening today's list also shows the visits of the next hours after midnight
  // (dated); the week's column for today holds today's only.
  const today = new Intl.DateTimeFormat("en-CA", { timeZone: "Europe/Copenhagen" }).format(new Date());
  const todayCount = await staff.locator(`li.visit[data-day="${today}"]`).count();
  await staff.getByRole("button", { name: "Uge" }).click();
  const todayColumn = staff.locator(".week-day[data-today=true]");
  await todayColumn.waitFor();
  assert.equal(await staff.locator(".week-day").count(), 7);
  assert.equal(await todayColumn.locator("li.week-visit").count(), todayCount);
  await todayColumn.locator("li.week-visit[data-status=completed]").first().waitFor();
  await screenshot(staff, "15-staff-week");
  await expectAccessible(staff, "staff week view");
  // The choice survives a reload; a day's heading opens that day.
  await staff.reload();
  await todayColumn.waitFor();
  await todayColumn.getByRole("button").click();
  await staff.locator("li.visit").first().waitFor();
  assert.equal(await staff.locator("#today-title").innerText(), "Dagens besøg");
});

test("the citizen page explains an unknown link in Danish and switches to English", async () => {
  const page = await newPage(browser, { name: "stranger", viewport: { width: 820, height: 1180 } });
  await page.goto(`${server.url}/j/AAAAAAAAAAAAAAAAAAAAAAAAAAA`);
  // Said on arrival, before anyone presses the button; and again when they do.
  await page.getByText("Linket virker ikke.", { exact: false }).waitFor();
  await page.getByRole("button", { name: "Deltag" }).click();
  await page.getByText("Linket virker ikke.", { exact: false }).waitFor();
  await page.getByRole("button", { name: "Switch to English" }).click();
  await page.getByRole("button", { name: "Join" }).waitFor();
  await page.getByText("The link does not work.", { exact: false }).waitFor();
  assert.equal(await page.evaluate(() => document.documentElement.lang), "en");
  await screenshot(page, "06-citizen-unknown-link");
  await expectAccessible(page, "citizen unknown link");
});

test("a link that is not open yet says on arrival when to come", async () => {
  const staff = await newPage(browser, { name: "staff-early", viewport: { width: 1280, height: 800 } });
  await staff.goto(server.url);
  await staff.getByLabel("Brugernavn").fill("jonas");
  await staff.getByLabel("Adgangskode").fill("skaerm-demo");
  await staff.getByRole("button", { name: "Log ind" }).click();
  // Jonas's visit with Poul is 90 minutes ahead; links open 60 minutes ahead in this suite.
  const later = staff.locator("li.visit", { hasText: "Poul A." });
  await later.getByRole("button", { name: "Kopiér borgerlink" }).click();
  const url = await later.locator("input.link-value").inputValue();
  await staff.close();

  const page = await newPage(browser, { name: "early", viewport: { width: 820, height: 1180 } });
  await page.goto(url);
  await page.getByText(/Besøget er ikke begyndt endnu\. Du kan komme ind fra kl\. \d\d\.\d\d\./).waitFor();
  await screenshot(page, "16-citizen-too-early");
});

test("without camera permission and without a connection, the check gives plain advice", async () => {
  const page = await newPage(browser, { name: "denied", viewport: { width: 820, height: 1180 }, hasTouch: true });
  await denyMedia(page);
  await page.route("**/healthz", (route) => route.abort("internetdisconnected"));
  await page.goto(`${server.url}/j/AAAAAAAAAAAAAAAAAAAAAAAAAAA`);
  await page.locator("#check-camera[data-state=problem]").getByText("Ikke tilladt").waitFor();
  await page.locator("#check-microphone[data-state=problem]").getByText("Ikke tilladt").waitFor();
  await page.locator("#check-connection[data-state=problem]").getByText("Ingen forbindelse").waitFor();
  await page.getByText("Skærm har ikke lov til at bruge kamera og mikrofon.", { exact: false }).waitFor();
  await page.getByText("Vi kan ikke få forbindelse til Skærm.", { exact: false }).waitFor();
  assert.equal(await page.getByText("Alt virker.", { exact: false }).count(), 0);
  // Still one big button, and the advice is in English too.
  assert.equal(await page.getByRole("button", { name: "Deltag" }).count(), 1);
  await screenshot(page, "07-citizen-check-denied");
  // Keyboard only: Tab reaches "Tjek igen" and "Deltag", and the focus is visible.
  const reached = [];
  for (let i = 0; i < 8 && !reached.includes("join"); i += 1) {
    await page.keyboard.press("Tab");
    const focus = await page.evaluate(() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return { id: el.id, outline: style.outlineStyle, width: parseFloat(style.outlineWidth) };
    });
    if (focus.id) reached.push(focus.id);
    if (focus.id === "join") assert.ok(focus.outline !== "none" && focus.width >= 2, `focus on Deltag is visible: ${JSON.stringify(focus)}`);
  }
  assert.ok(reached.includes("recheck") && reached.includes("join"), `Tab order reached ${reached.join(", ")}`);
  await expectAccessible(page, "citizen check with advice");
  await page.getByRole("button", { name: "Switch to English" }).click();
  await page.getByText("Skærm is not allowed to use the camera and microphone.", { exact: false }).waitFor();
  // "Check again" runs the check again (and fails again the same way, with the same advice).
  await page.getByRole("button", { name: "Check again" }).click();
  await page.locator("#check-connection[data-state=problem]").getByText("No connection").waitFor();
});

// Display names are data: whatever a name holds, pages show it as text. The demo names are
// harmless, so the API answers and signalling messages are rewritten on their way to the page.
const HOSTILE = `<img src=x onerror="document.title='pwned'">`;

function hostileNames(value) {
  if (Array.isArray(value)) return value.map(hostileNames);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, v]) =>
      [key, (key === "display_name" || key === "staff_display_name") && typeof v === "string" ? `${HOSTILE} ${v}` : hostileNames(v)]));
  }
  return value;
}

/** Rewrites names in the page's API answers and WebSocket messages; returns the last socket. */
async function withHostileNames(page) {
  const sockets = [];
  await page.route(/\/api\/(visits|join)/, async (route) => {
    const response = await route.fetch();
    const text = await response.text();
    let json;
    try { json = JSON.parse(text); } catch { return route.fulfill({ response, body: text }); }
    await route.fulfill({ response, json: hostileNames(json) });
  });
  await page.routeWebSocket(/\/ws$/, (ws) => {
    sockets.push(ws);
    const upstream = ws.connectToServer();
    upstream.onMessage((message) => {
      let json;
      try { json = JSON.parse(message); } catch { return ws.send(message); }
      ws.send(JSON.stringify(hostileNames(json)));
    });
  });
  return () => sockets[sockets.length - 1];
}

async function assertNoMarkup(page, where) {
  const injected = await page.evaluate(() => document.querySelectorAll("img").length);
  assert.equal(injected, 0, `${where}: a display name became an <img> element`);
  assert.notEqual(await page.title(), "pwned", `${where}: a display name ran script`);
}

test("display names are shown as text; a citizen without devices joins to watch; the weak-connection notice comes and goes; a cut socket rejoins; staff shares the screen", async () => {
  // Jonas's demo visits are 30 and 90 minutes ahead: this one starts within minutes.
  await planSoon("jonas", "Birthe S.", 10);
  const staff = await newPage(browser, { name: "staff-jonas", viewport: { width: 1280, height: 800 } });
  await withHostileNames(staff);
  await fakeScreen(staff);
  await staff.goto(server.url);
  await staff.getByLabel("Brugernavn").fill("jonas");
  await staff.getByLabel("Adgangskode").fill("skaerm-demo");
  await staff.getByRole("button", { name: "Log ind" }).click();
  const visit = staff.locator("li.visit").first();
  await visit.getByText(HOSTILE, { exact: false }).waitFor();
  await assertNoMarkup(staff, "staff day list");
  await visit.getByRole("button", { name: "Kopiér borgerlink" }).click();
  const citizenUrl = await visit.locator("input.link-value").inputValue();
  await visit.getByRole("link", { name: "Start" }).click();
  await staff.getByRole("button", { name: "Afslut besøg" }).waitFor();
  await staff.locator("#call-title").getByText(HOSTILE, { exact: false }).waitFor();

  const citizen = await newPage(browser, { name: "citizen-birthe", viewport: { width: 820, height: 1180 }, hasTouch: true });
  const citizenSocket = await withHostileNames(citizen);
  // This citizen said no to camera and microphone: they can still join, see and hear.
  await denyMedia(citizen);
  await citizen.goto(citizenUrl);
  await citizen.locator("#check-connection[data-state=ok]").waitFor({ timeout: 15_000 });
  await citizen.locator("#check-camera[data-state=problem]").waitFor();
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await staff.locator(".waiting-name").getByText(HOSTILE, { exact: false }).waitFor({ timeout: 20_000 });
  await assertNoMarkup(staff, "staff waiting-room panel");
  await admitFromWaitingRoom(staff, citizen);
  await citizen.getByText("Mikrofon og kamera kan ikke bruges, så din medarbejder kan hverken se eller høre dig.", { exact: false }).waitFor();
  await citizen.locator("#call-title").getByText(HOSTILE, { exact: false }).waitFor();
  // Names from signalling: the other participant's label, on both sides.
  await citizen.locator(".remote-name").getByText(HOSTILE, { exact: false }).waitFor({ timeout: 20_000 });
  await staff.locator(".remote-name").getByText(HOSTILE, { exact: false }).waitFor({ timeout: 20_000 });
  await assertNoMarkup(citizen, "citizen call");
  await assertNoMarkup(staff, "staff call");
  await screenshot(citizen, "11-citizen-hostile-name");

  // The relay pauses video for this weak connection, and later resumes it (messages as in
  // PROTOCOL.md, injected into the real socket). Per participant: two paused, one resumed.
  const paused = { type: "video_paused", reason: "low_bandwidth" };
  citizenSocket().send(JSON.stringify({ ...paused, participant_id: "p-a" }));
  citizenSocket().send(JSON.stringify({ ...paused, participant_id: "p-b" }));
  await citizen.getByText("Din forbindelse er svag – vi viser kun lyd for at holde samtalen i gang.").waitFor();
  await screenshot(citizen, "12-citizen-video-paused");
  await expectAccessible(citizen, "citizen call with the weak-connection notice");
  citizenSocket().send(JSON.stringify({ type: "video_resumed", participant_id: "p-a" }));
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(await citizen.getByText("Din forbindelse er svag", { exact: false }).count(), 1, "still paused for p-b");
  citizenSocket().send(JSON.stringify({ type: "video_resumed", participant_id: "p-b" }));
  await citizen.getByText("Billedet er tilbage.").waitFor();
  assert.equal(await citizen.getByText("Din forbindelse er svag", { exact: false }).count(), 0);

  // The citizen's signalling connection is cut (the server stays up): the page rejoins with a
  // fresh token from the link, the relay replaces the old session, and media flows again.
  await eventually("citizen decodes video", async () => (await inboundMedia(citizen)).framesDecoded > 0);
  const peersBefore = (await inboundMedia(citizen)).peers;
  citizenSocket().close({ code: 4000, reason: "route cut by the test" });
  await eventually("citizen rejoined and decodes video again", async () => {
    const media = await inboundMedia(citizen);
    return (media.peers > peersBefore && media.open === 1 && media.framesDecoded > 10 && media.audioPackets > 0) || media;
  }, 30_000);
  await citizen.getByRole("button", { name: "Læg på" }).waitFor();
  assert.equal(await citizen.getByText("Forbinder igen", { exact: false }).count(), 0);

  // Staff shares the screen (16:9) in place of the camera (4:3), and stops again.
  await eventually("citizen decodes the 4:3 camera", async () => {
    const media = await inboundMedia(citizen);
    return (media.aspect !== null && media.aspect < 1.45) || media;
  });
  await staff.getByRole("button", { name: "Del skærm" }).click();
  await staff.getByRole("button", { name: "Stop deling" }).waitFor();
  await eventually("citizen decodes the 16:9 shared screen", async () => {
    const media = await inboundMedia(citizen);
    return (media.aspect !== null && media.aspect > 1.6) || media;
  });
  await screenshot(staff, "13-staff-sharing-screen");
  await screenshot(citizen, "14-citizen-sees-shared-screen");
  await staff.getByRole("button", { name: "Stop deling" }).click();
  await eventually("citizen decodes the camera again", async () => {
    const media = await inboundMedia(citizen);
    return (media.aspect !== null && media.aspect < 1.45) || media;
  });

  await endVisit(staff);
  await citizen.getByText("Besøget er slut. Tak for i dag.").waitFor({ timeout: 10_000 });
});

test("on a lossy line the quality indicator says so in words, on both sides", async () => {
  // Jonas's next free slot: a visit with Poul that can be started now.
  await planSoon("jonas", "Poul A.", 10);
  const staff = await newPage(browser, { name: "staff-lossy", viewport: { width: 1280, height: 800 } });
  await staff.goto(server.url);
  await staff.getByLabel("Brugernavn").fill("jonas");
  await staff.getByLabel("Adgangskode").fill("skaerm-demo");
  await staff.getByRole("button", { name: "Log ind" }).click();
  const visit = staff.locator("li.visit", { hasText: "Poul A." }).first();
  await visit.getByRole("button", { name: "Kopiér borgerlink" }).click();
  const url = await visit.locator("input.link-value").inputValue();
  await visit.getByRole("link", { name: "Start" }).click();
  await staff.getByRole("button", { name: "Afslut besøg" }).waitFor();

  const citizen = await newPage(browser, { name: "citizen-lossy", viewport: { width: 820, height: 1180 }, hasTouch: true });
  await citizen.goto(url);
  await citizen.locator("#check-connection[data-state=ok]").waitFor({ timeout: 15_000 });
  // Turned away from the waiting room ("Afvis"): told kindly, and not rejoined by itself.
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await citizen.getByRole("heading", { name: "Din medarbejder lukker dig ind om lidt" }).waitFor({ timeout: 20_000 });
  await staff.getByRole("region", { name: "Venteværelse" }).getByRole("button", { name: "Afvis" }).click({ timeout: 20_000 });
  await citizen.getByText("Din medarbejder har ikke lukket dig ind i besøget.", { exact: false }).waitFor({ timeout: 10_000 });
  await staff.getByRole("region", { name: "Venteværelse" }).waitFor({ state: "hidden" });
  await eventually("staff hear that the citizen was turned away", async () =>
    /er afvist\.$/.test(await staff.locator("#lobby-announce").innerText()) || await staff.locator("#lobby-announce").innerText());
  await screenshot(citizen, "22-citizen-denied");
  await expectAccessible(citizen, "citizen denied");
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal((await inboundMedia(citizen)).open, 0, "a denied citizen does not rejoin by itself");
  // Asked again by phone, the citizen opens the link once more and is let in this time.
  await citizen.reload();
  await citizen.locator("#check-connection[data-state=ok]").waitFor({ timeout: 15_000 });
  // Chromium drops a quarter of the citizen's WebRTC packets (both ways) from here on (packet
  // loss applies only while some throttling is on, hence the small latency).
  const cdp = await citizen.context().newCDPSession(citizen);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: -1, packetLoss: 25,
  });
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await admitFromWaitingRoom(staff, citizen);
  for (const [name, page] of [["citizen", citizen], ["staff", staff]]) {
    await eventually(`${name} shows a poor connection`, async () =>
      (await page.locator(".quality[data-level=poor]").getByText("Forbindelse: Dårlig").count()) === 1
      || await page.locator(".quality").evaluate((e) => `${e.dataset.level} ${e.textContent} ${e.hidden}`), 30_000);
    assert.equal(await page.locator(".quality[data-level=poor] .quality-icon[aria-hidden=true]").count(), 1, name);
  }
  await screenshot(citizen, "18-citizen-poor-connection");
  await endVisit(staff);
  await citizen.getByText("Besøget er slut. Tak for i dag.").waitFor({ timeout: 10_000 });
});
