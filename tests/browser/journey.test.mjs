// One visit's whole journey, in one go, in real browsers against the real binary: staff log in,
// plan a visit in the planner, copy the citizen link; the citizen opens it, passes the check
// (camera preview, microphone meter, connection), presses Deltag and waits; staff's day list
// shows "Borgeren venter" by itself; staff start the call and let the citizen in; both see and
// hear each other; staff invite a relative, who joins from the one-off link as a third
// participant; everyone decodes the others; staff end the visit as completed with a note; the
// day list shows it completed and the team lead's (Mette's) monthly report counts it.
// Every main screen is checked with axe-core and saved to artifacts/journey/.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  newPage, eventually, artifacts, expectAccessible, admitFromWaitingRoom, expectMediaRising, playingVideos,
  reportNumber, copenhagen, serverAndBrowser,
} from "./harness.mjs";

const screens = join(artifacts, "journey");
mkdirSync(screens, { recursive: true });

// The visit is planned from this minute until Mette's next demo visit (a few minutes), and
// the journey on a loaded machine may outlast it: its links keep working for two hours after.
const { server, browser } = await serverAndBrowser({ env: { SKAERM_LINK_CLOSES_AFTER_MIN: "120" } });

/** A main screen: no serious accessibility problem, and a screenshot of it. */
async function mainScreen(page, file, name) {
  await expectAccessible(page, name);
  await page.screenshot({ path: join(screens, `${file}.png`), fullPage: true });
}

/** What the page copied to the clipboard. */
const clipboard = (page) => page.evaluate(() => navigator.clipboard.readText());

const FINAL = new Set(["completed", "no_show", "cancelled", "technical_failure"]);
const WAITING_ROOM = "Din medarbejder lukker dig ind om lidt";

test("a visit from planning to the report: plan, link, check, waiting room, call, relative, end, report", async () => {
  // Staff log in on the real page.
  const staff = await newPage(browser, { name: "staff", viewport: { width: 1280, height: 900 } });
  await staff.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  await staff.goto(server.url);
  await staff.getByLabel("Brugernavn", { exact: true }).waitFor();
  await mainScreen(staff, "01-login", "login");
  await staff.getByLabel("Brugernavn", { exact: true }).fill("mette");
  await staff.getByLabel("Adgangskode", { exact: true }).fill("skaerm-demo");
  await staff.getByRole("button", { name: "Log ind" }).click();
  await staff.locator("li.visit").first().waitFor({ timeout: 30_000 });
  await mainScreen(staff, "02-visit-list", "visit list");

  // A slot that can be started now: from this minute until Mette's next visit (the demo's first
  // is five minutes after the server started).
  const { visits } = await (await staff.request.get(`${server.url}/api/visits`)).json();
  const startMs = Math.floor(Date.now() / 60_000) * 60_000;
  const nextStart = Math.min(...visits.filter((v) => !FINAL.has(v.status))
    .map((v) => Date.parse(v.planned_start)).filter((at) => at > startMs));
  const minutes = Math.min(15, Math.floor((nextStart - startMs) / 60_000));
  assert.ok(minutes >= 1, `Mette has a free slot now (next visit at ${new Date(nextStart).toISOString()})`);
  const slot = copenhagen(startMs);

  // The planner: a §85 visit with Birthe.
  await staff.getByRole("navigation", { name: "Sider" }).getByRole("link", { name: "Planlæg besøg" }).click();
  await staff.waitForURL(/page=plan/);
  await eventually("citizens are offered", async () =>
    (await staff.locator("#plan-citizen option").count()) > 1 || "no citizens", 30_000);
  await staff.getByLabel("Borger", { exact: true }).selectOption({ label: "Birthe S." });
  await staff.getByLabel("Lovgrundlag", { exact: true }).selectOption({ label: "SEL §85 socialpædagogisk støtte" });
  await staff.getByLabel("Formål (valgfrit)", { exact: true }).fill("Ugens aftaler");
  await staff.getByLabel("Dato", { exact: true }).fill(slot.date);
  await staff.getByLabel("Klokkeslæt", { exact: true }).fill(slot.time);
  await staff.getByLabel("Længde i minutter", { exact: true }).fill(String(minutes));
  await mainScreen(staff, "03-planner", "planner");
  const [created] = await Promise.all([
    staff.waitForResponse((r) => new URL(r.url()).pathname === "/api/visits" && r.request().method() === "POST"),
    staff.getByRole("button", { name: "Planlæg besøget" }).click(),
  ]);
  assert.equal(created.status(), 201, await created.text());
  const visitId = (await created.json()).visit.id;
  await staff.getByRole("heading", { name: "Besøget er planlagt" }).waitFor();
  assert.match(await staff.locator("#plan-summary").innerText(), new RegExp(`Birthe S\\., SEL §85.*${slot.time.replace(":", ".")}`));

  // The citizen link: issued and copied from the page.
  await staff.getByRole("button", { name: "Lav borgerlink" }).click();
  const linkField = staff.getByLabel("Borgerlink til besøget", { exact: true });
  await linkField.waitFor();
  await staff.getByRole("button", { name: "Kopiér link" }).click();
  await staff.getByText("Linket er kopieret.").waitFor();
  const citizenUrl = await clipboard(staff);
  assert.equal(citizenUrl, await linkField.inputValue(), "the clipboard holds the link shown");
  assert.match(citizenUrl, /\/j\/[A-Za-z0-9_-]{27}$/);
  await mainScreen(staff, "04-planner-link", "planner with the citizen link");

  // Back to the day list, which stays open: it shows the visit as ready.
  await staff.getByRole("navigation", { name: "Sider" }).getByRole("link", { name: "Besøg", exact: true }).click();
  const listed = staff.locator(`li.visit[data-visit-id="${visitId}"]`);
  await listed.locator(".visit-status").getByText("Klar").waitFor({ timeout: 30_000 });

  // The citizen opens the link on a tablet: the check before joining.
  const citizen = await newPage(browser, { name: "citizen", viewport: { width: 820, height: 1180 }, hasTouch: true });
  await citizen.goto(citizenUrl);
  for (const row of ["camera", "microphone", "connection"]) {
    await citizen.locator(`#check-${row}[data-state=ok]`).waitFor({ timeout: 30_000 });
  }
  await citizen.getByText("Alt virker.", { exact: false }).waitFor();
  // The camera preview plays (frames move) and the microphone meter moves.
  const preview = citizen.locator("#preview");
  const previewAt = await preview.evaluate((v) => v.currentTime);
  await eventually("the camera preview plays", async () => preview.evaluate((v, at) =>
    (v.videoWidth > 0 && v.currentTime > at + 0.5) || { width: v.videoWidth, time: v.currentTime }, previewAt), 30_000);
  await eventually("the microphone meter moves", async () => {
    const level = await citizen.locator("#level").evaluate((m) => m.value);
    return level > 0 || level;
  }, 30_000);
  await mainScreen(citizen, "05-citizen-precheck", "citizen pre-join check");

  // Deltag: into the waiting room.
  await citizen.getByRole("button", { name: "Deltag" }).click();
  await citizen.getByRole("heading", { name: WAITING_ROOM }).waitFor({ timeout: 30_000 });
  await mainScreen(citizen, "06-waiting-room", "citizen waiting room");

  // Staff's day list, untouched since, shows that the citizen waits (it refreshes by itself).
  await listed.locator(".visit-status").getByText("Borgeren venter").waitFor({ timeout: 45_000 });
  assert.equal(await listed.getAttribute("data-status"), "waiting");
  await mainScreen(staff, "07-visit-list-waiting", "visit list with a waiting citizen");

  // Staff start the call: the waiting room panel names the citizen; they let her in.
  await listed.getByRole("link", { name: "Start" }).click();
  await staff.waitForURL(new RegExp(`/visit/${visitId}$`));
  const lobby = staff.getByRole("region", { name: "Venteværelse" });
  await lobby.getByText("Birthe S.").waitFor({ timeout: 30_000 });
  await lobby.getByRole("button", { name: "Lad komme ind" }).waitFor();
  await mainScreen(staff, "08-staff-call-lobby", "staff call with the waiting room panel");
  await admitFromWaitingRoom(staff, citizen, 30_000);
  await citizen.getByRole("button", { name: "Læg på" }).waitFor({ timeout: 30_000 });

  // Both see and hear each other: decoded video frames and received audio keep rising.
  await expectMediaRising(staff, "staff", { videos: 1, audios: 1 });
  await expectMediaRising(citizen, "citizen", { videos: 1, audios: 1 });
  await mainScreen(citizen, "09-citizen-call", "citizen in the call");

  // Staff invite the citizen's son with a one-off link, copied from the invite form.
  await staff.getByText("Invitér deltager").click();
  await staff.getByLabel("Navn, som de andre ser").fill("Søn Jens");
  await staff.getByLabel("Hvem er det?").selectOption("relative");
  await staff.getByRole("button", { name: "Lav link" }).click();
  const inviteField = staff.getByLabel("Engangslink til dette besøg:");
  await eventually("the invite link is shown", async () => (await inviteField.inputValue()) !== "");
  await staff.getByRole("button", { name: "Kopiér link" }).click();
  await staff.getByText("Linket er kopieret. Det virker kun til dette besøg.").waitFor();
  const inviteUrl = await clipboard(staff);
  assert.equal(inviteUrl, await inviteField.inputValue());
  assert.match(inviteUrl, /\/j\/[A-Za-z0-9_-]{27}$/);
  assert.notEqual(inviteUrl, citizenUrl);

  // The relative opens it in a third browser, passes the check, waits and is let in.
  const relative = await newPage(browser, { name: "relative", viewport: { width: 390, height: 844 }, hasTouch: true });
  await relative.goto(inviteUrl);
  await relative.locator("#check-connection[data-state=ok]").waitFor({ timeout: 30_000 });
  await relative.getByRole("button", { name: "Deltag" }).click();
  await relative.getByRole("heading", { name: WAITING_ROOM }).waitFor({ timeout: 30_000 });
  await staff.getByRole("region", { name: "Venteværelse" }).getByText("Søn Jens").waitFor({ timeout: 30_000 });
  await admitFromWaitingRoom(staff, relative, 30_000);
  await relative.getByRole("button", { name: "Læg på" }).waitFor({ timeout: 30_000 });

  // Three ways: everyone decodes and hears the two others.
  for (const [name, page] of [["staff", staff], ["citizen", citizen], ["relative", relative]]) {
    await expectMediaRising(page, `${name} in the three-way call`, { videos: 2, audios: 2 }, 60_000);
    await eventually(`${name} shows two pictures`, async () => (await playingVideos(page)) >= 2 || await playingVideos(page));
  }
  await eventually("staff show the relative's name", async () =>
    (await staff.locator(".call-layout").innerText()).includes("Søn Jens"));
  await mainScreen(staff, "10-three-way-call", "staff in the three-way call");
  await mainScreen(relative, "10b-relative-in-call", "relative in the three-way call");

  // Staff end the visit: completed, with a note.
  const note = "Birthe har styr på ugens aftaler. Ny samtale om en uge.";
  await staff.getByRole("button", { name: "Afslut besøg" }).click();
  const dialog = staff.getByRole("dialog");
  await dialog.getByLabel("Gennemført").check();
  await dialog.getByLabel("Note (valgfri)").fill(note);
  await mainScreen(staff, "11-end-dialog", "end-of-visit dialog");
  await dialog.getByRole("button", { name: "Afslut nu" }).click();
  await staff.locator("#done").waitFor({ timeout: 30_000 });
  for (const page of [citizen, relative]) {
    await page.getByText("Besøget er slut. Tak for i dag.").waitFor({ timeout: 30_000 });
  }

  // The day list shows it completed, with nothing left to start.
  await staff.goto(server.url);
  await listed.locator(".visit-status").getByText("Afsluttet").waitFor({ timeout: 30_000 });
  assert.equal(await listed.getByRole("link", { name: "Start" }).count(), 0);
  await mainScreen(staff, "12-visit-list-after", "visit list after the visit");
  const ended = (await (await staff.request.get(`${server.url}/api/visits/${visitId}`)).json()).visit;
  assert.equal(ended.status, "completed");
  assert.equal(ended.outcome_note, note);

  // Mette leads the team: her monthly report counts the completed §85 visit (the only visit
  // completed on this fresh server).
  await staff.getByRole("navigation", { name: "Sider" }).getByRole("link", { name: "Rapport" }).click();
  await staff.waitForURL(/page=report/);
  await staff.locator("#report-table tfoot tr").waitFor({ timeout: 30_000 });
  await eventually("the report counts the visit", async () =>
    (await reportNumber(staff, "sel_85", "Gennemført")) === 1 || await reportNumber(staff, "sel_85", "Gennemført"));
  assert.equal(await reportNumber(staff, "total", "Gennemført"), 1);
  assert.match(await staff.locator("#report-team").innerText(), /Bostøtte Nord/);
  await mainScreen(staff, "13-report", "monthly report");
});
