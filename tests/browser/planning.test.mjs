// Staff plan their week in a real browser: a visit with its citizen link (re-issued, the old
// one dead), a refused double-booking in plain words, a weekly series in the week view with
// "this one" and "this and following" edits and a cancellation, and the team lead's monthly
// report with its chart and CSV download. axe-core on every new screen; screenshots saved.
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  newPage, eventually, expectAccessible, reportNumber, copenhagen, serverAndBrowser, screenshot, logInAsStaff,
} from "./harness.mjs";

// Links open an hour ahead, so a visit planned for half an hour from now can be opened.
const { server, browser } = await serverAndBrowser({ env: { SKAERM_LINK_OPENS_BEFORE_MIN: "60" } });
let staff;
/** The visit planned in the first test: {date, time} in Copenhagen. */
let planned;

before(async () => {
  staff = await newPage(browser, { name: "staff", viewport: { width: 1280, height: 900 } });
  await staff.goto(server.url);
  await logInAsStaff(staff);
  await staff.locator("li.visit").first().waitFor();
});

async function openPlanner() {
  await staff.getByRole("navigation", { name: "Sider" }).getByRole("link", { name: "Planlæg besøg" }).click();
  await staff.waitForURL(/page=plan/);
  // The citizen list comes from the staff member's visits.
  await eventually("citizens are offered", async () =>
    (await staff.locator("#plan-citizen option").count()) > 1 || "no citizens");
}

async function planVisit(citizen, { date, time }, minutes = 15) {
  await staff.getByLabel("Borger", { exact: true }).selectOption({ label: citizen });
  await staff.getByLabel("Lovgrundlag", { exact: true }).selectOption({ label: "SEL §85 socialpædagogisk støtte" });
  await staff.getByLabel("Formål (valgfrit)", { exact: true }).fill("Samtale om ugens aftaler");
  await staff.getByLabel("Dato", { exact: true }).fill(date);
  await staff.getByLabel("Klokkeslæt", { exact: true }).fill(time);
  await staff.getByLabel("Længde i minutter", { exact: true }).fill(String(minutes));
}

test("staff plans a visit, re-issues the citizen link, and the citizen's check opens from it", async () => {
  await openPlanner();
  await expectAccessible(staff, "plan a visit");
  await screenshot(staff, "10-plan-visit");

  // Half an hour from now, between the demo's visits (now+5 for 15 min, now+60).
  const start = Math.ceil((Date.now() + 30 * 60_000) / 300_000) * 300_000;
  planned = copenhagen(start);
  await planVisit("Karen J.", planned);
  await staff.getByRole("button", { name: "Planlæg besøget" }).click();
  await staff.getByRole("heading", { name: "Besøget er planlagt" }).waitFor();
  assert.match(await staff.locator("#plan-summary").innerText(), new RegExp(`Karen J\\., SEL §85.*${planned.time.replace(":", ".")}`));

  // The citizen link: made, shown, then re-issued — the page says the old one stops working.
  await staff.getByRole("button", { name: "Lav borgerlink" }).click();
  const field = staff.getByLabel("Borgerlink til besøget", { exact: true });
  await field.waitFor();
  const first = await field.inputValue();
  assert.match(first, /\/j\/[A-Za-z0-9_-]{27}$/);
  await expectAccessible(staff, "visit planned, with its link");
  await screenshot(staff, "11-plan-visit-done-link");
  await staff.getByRole("button", { name: /Lav et nyt link/ }).click();
  await staff.getByText("Det gamle link virker ikke længere").waitFor();
  const second = await staff.getByLabel("Borgerlink til besøget", { exact: true }).inputValue();
  assert.notEqual(second, first);
  await screenshot(staff, "12-plan-link-reissued");

  // The old link is dead at the API and says so on the citizen's page; the new one opens the check.
  const old = await fetch(`${server.url}/api/join/${first.split("/j/")[1]}`, { method: "POST" });
  assert.equal(old.status, 404);
  const citizen = await newPage(browser, { name: "citizen", viewport: { width: 820, height: 1180 }, hasTouch: true });
  await citizen.goto(first);
  await citizen.getByText("Linket virker ikke. Spørg din medarbejder om et nyt link.").waitFor();
  await citizen.goto(second);
  await citizen.getByRole("button", { name: "Deltag" }).waitFor();
  for (const row of ["camera", "microphone", "connection"]) {
    await citizen.locator(`#check-${row}[data-state=ok]`).waitFor({ timeout: 15_000 });
  }
  await screenshot(citizen, "13-citizen-check-from-planned-link");
  await citizen.context().close();
});

test("a double-booking is refused next to the form, naming the visit it collides with", async () => {
  assert.ok(planned, "the first test planned a visit");
  await staff.goto(`${server.url}/?page=plan`);
  await openPlanner();
  await planVisit("Poul A.", planned, 10);
  await staff.getByRole("button", { name: "Planlæg besøget" }).click();
  const error = staff.locator("#plan-error");
  await error.getByText("Du har allerede et besøg med Karen J.").waitFor();
  assert.match(await error.innerText(), new RegExp(`kl\\. ${planned.time.replace(":", ".")}–`));
  assert.equal(await staff.getByLabel("Klokkeslæt", { exact: true }).getAttribute("aria-invalid"), "true");
  // Nothing was planned: the form is still there.
  assert.equal(await staff.locator("#plan-done").isHidden(), true);
  await expectAccessible(staff, "conflict message");
  await screenshot(staff, "14-plan-conflict");

  // Moving Karen's visit onto the demo visit with Poul (an hour ahead) is refused the same way;
  // five minutes later than planned is fine.
  const today = await (await staff.request.get(`${server.url}/api/visits`)).json();
  const karen = today.visits.find((v) => v.citizen.display_name === "Karen J." && v.purpose === "Samtale om ugens aftaler");
  const poul = today.visits.find((v) => v.citizen.display_name === "Poul A.");
  assert.ok(karen && poul);
  await staff.goto(`${server.url}/?page=plan&visit=${karen.id}`);
  await staff.getByRole("heading", { name: "Ret besøget med Karen J." }).waitFor();
  assert.equal(await staff.locator("#scope-field").isHidden(), true, "a single visit has no series scope");
  assert.equal(await staff.getByLabel("Lovgrundlag", { exact: true }).isDisabled(), true);
  const onPoul = copenhagen(Date.parse(poul.planned_start));
  await staff.getByLabel("Dato", { exact: true }).fill(onPoul.date);
  await staff.getByLabel("Klokkeslæt", { exact: true }).fill(onPoul.time);
  await staff.getByRole("button", { name: "Flyt besøget" }).click();
  // (Poul's demo time is any minute: the time field must take it, not only every fifth.)
  await staff.locator("#plan-error").getByText("Du har allerede et besøg med Poul A.").waitFor();
  const later = copenhagen(Date.parse(karen.planned_start) + 5 * 60_000);
  await staff.getByLabel("Dato", { exact: true }).fill(later.date);
  await staff.getByLabel("Klokkeslæt", { exact: true }).fill(later.time);
  await staff.getByRole("button", { name: "Flyt besøget" }).click();
  await staff.locator("#plan-status").getByText(`kl. ${later.time.replace(":", ".")}–`, { exact: false }).waitFor();
  assert.equal(await staff.locator("#plan-error").innerText(), "", "the conflict message is gone");
  const moved = (await (await staff.request.get(`${server.url}/api/visits/${karen.id}`)).json()).visit;
  assert.equal(Date.parse(moved.planned_start), Date.parse(karen.planned_start) + 5 * 60_000);
  planned = later;
});

/** The Monday of the week two weeks from now, in Copenhagen. */
function mondayInTwoWeeks() {
  const today = copenhagen(Date.now()).date;
  const d = new Date(`${today}T12:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 14 - ((d.getUTCDay() + 6) % 7));
  return d.toISOString().slice(0, 10);
}

test("a weekly series shows in the week view; one occurrence moves, the rest change, one is cancelled", async () => {
  await staff.goto(`${server.url}/?page=plan`);
  await openPlanner();
  await staff.getByLabel("Fast besøg hver uge (en serie)", { exact: true }).check();
  const monday = mondayInTwoWeeks();
  await planVisit("Birthe S.", { date: monday, time: "08:00" }, 20);
  const weekdays = staff.getByRole("group", { name: "Ugedage" });
  assert.equal(await weekdays.getByLabel("Mandag", { exact: true }).isChecked(), true, "the start's weekday is ticked");
  await weekdays.getByLabel("Torsdag", { exact: true }).check();
  await staff.getByLabel("Hvor ofte", { exact: true }).selectOption({ label: "Hver uge" });
  await staff.getByLabel("Efter et antal besøg", { exact: true }).check();
  await staff.getByLabel("Antal besøg", { exact: true }).fill("4");
  await expectAccessible(staff, "plan a series");
  await screenshot(staff, "15-plan-series");
  await staff.getByRole("button", { name: "Planlæg serien" }).click();
  await staff.getByRole("heading", { name: "Serien er planlagt: 4 besøg" }).waitFor();
  assert.equal(await staff.locator("#plan-occurrences li").count(), 4);
  await staff.getByRole("button", { name: "Lav ét link til hele serien" }).click();
  assert.match(await staff.getByLabel("Borgerlink til alle besøg i serien", { exact: true }).inputValue(), /\/j\//);
  await expectAccessible(staff, "series planned");
  await screenshot(staff, "16-plan-series-done");

  // The week view of that week shows Monday's and Thursday's occurrences.
  await staff.getByRole("link", { name: "Se ugen" }).click();
  await staff.waitForURL(/view=week/);
  const thursday = new Date(`${monday}T12:00:00Z`);
  thursday.setUTCDate(thursday.getUTCDate() + 3);
  const thursdayDay = thursday.toISOString().slice(0, 10);
  const mondayVisit = staff.locator(`.week-day[data-day="${monday}"] .week-visit`, { hasText: "Birthe S." });
  const thursdayVisit = staff.locator(`.week-day[data-day="${thursdayDay}"] .week-visit`, { hasText: "Birthe S." });
  await mondayVisit.waitFor();
  await thursdayVisit.waitFor();
  assert.match(await mondayVisit.innerText(), /08\.00/);
  await expectAccessible(staff, "week view with a series");
  await screenshot(staff, "17-week-series");

  // "This one": Thursday's visit moves to 09:30 on its own.
  await thursdayVisit.getByRole("link").click();
  await staff.getByRole("heading", { name: "Ret besøget med Birthe S." }).waitFor();
  await staff.getByLabel("Kun dette besøg", { exact: true }).check();
  await staff.getByLabel("Klokkeslæt", { exact: true }).fill("09:30");
  await expectAccessible(staff, "edit a series occurrence");
  await screenshot(staff, "18-edit-occurrence");
  await staff.getByRole("button", { name: "Flyt besøget" }).click();
  await staff.locator("#plan-status").getByText(/Besøget er flyttet til .* kl\. 09\.30/).waitFor();

  // "This and following" from the next Monday: Tuesdays and Thursdays, 30 minutes, from then on.
  const nextMonday = new Date(`${monday}T12:00:00Z`);
  nextMonday.setUTCDate(nextMonday.getUTCDate() + 7);
  const nextMondayDay = nextMonday.toISOString().slice(0, 10);
  await staff.goto(`${server.url}/?day=${nextMondayDay}&view=week`);
  await staff.locator(`.week-day[data-day="${nextMondayDay}"] .week-visit`, { hasText: "Birthe S." }).getByRole("link").click();
  await staff.getByRole("heading", { name: "Ret besøget med Birthe S." }).waitFor();
  await staff.getByLabel("Dette og alle følgende besøg i serien", { exact: true }).check();
  assert.equal(await staff.getByLabel("Dato", { exact: true }).isDisabled(), true, "the day follows the series' weekdays");
  await staff.getByLabel("Længde i minutter", { exact: true }).fill("30");
  const repeat = staff.getByRole("group", { name: "Ugedage" });
  // The repeat fields show the series' rule: Monday and Thursday, two visits from here.
  assert.equal(await repeat.getByLabel("Mandag", { exact: true }).isChecked(), true);
  assert.equal(await repeat.getByLabel("Torsdag", { exact: true }).isChecked(), true);
  assert.equal(await staff.getByLabel("Antal besøg", { exact: true }).inputValue(), "2");
  await repeat.getByLabel("Mandag", { exact: true }).uncheck();
  await repeat.getByLabel("Tirsdag", { exact: true }).check();
  await expectAccessible(staff, "edit this and following");
  await screenshot(staff, "18b-edit-following");
  await staff.getByRole("button", { name: "Gem for dette og følgende besøg" }).click();
  await staff.locator("#plan-status").getByText("Ændret for dette og følgende besøg (2 besøg).").waitFor();
  const tuesday = new Date(`${nextMondayDay}T12:00:00Z`);
  tuesday.setUTCDate(tuesday.getUTCDate() + 1);
  const tuesdayDay = tuesday.toISOString().slice(0, 10);
  await staff.goto(`${server.url}/?day=${nextMondayDay}&view=week`);
  await staff.locator(`.week-day[data-day="${tuesdayDay}"] .week-visit`, { hasText: "Birthe S." }).waitFor();
  assert.equal(await staff.locator(`.week-day[data-day="${nextMondayDay}"] .week-visit`, { hasText: "Birthe S." }).count(), 0,
    "Monday's occurrence left the series");
  await staff.goto(`${server.url}/?day=${tuesdayDay}`);
  const changed = staff.locator("li.visit", { hasText: "Birthe S." });
  await changed.waitFor();
  assert.match(await changed.innerText(), /08\.00–08\.30/);

  // Cancel that one.
  await changed.getByRole("link", { name: "Ret eller aflys" }).click();
  await staff.getByRole("button", { name: "Aflys besøget" }).click();
  await staff.getByText("Vil du aflyse besøget? Det kan ikke fortrydes.").waitFor();
  await expectAccessible(staff, "cancel a visit");
  await screenshot(staff, "19-cancel-visit");
  await staff.getByRole("button", { name: "Ja, aflys" }).click();
  await staff.getByText("Besøget er aflyst.").waitFor();
  await staff.goto(`${server.url}/?day=${tuesdayDay}`);
  await staff.locator("li.visit", { hasText: "Birthe S." }).locator(".visit-status").getByText("Aflyst").waitFor();
});

test("the monthly report counts a visit ended as completed; chart and CSV download", async () => {
  await staff.goto(server.url);
  await staff.getByRole("navigation", { name: "Sider" }).getByRole("link", { name: "Rapport" }).click();
  await staff.waitForURL(/page=report/);
  await staff.locator("#report-table tfoot tr").waitFor();
  const completedBefore = await reportNumber(staff, "sel_85", "Gennemført");
  const totalBefore = await reportNumber(staff, "total", "Gennemført");

  // The demo's first visit (Karen, §85, in five minutes) is started and ended as completed.
  const today = await (await staff.request.get(`${server.url}/api/visits`)).json();
  const karen = today.visits.find((v) => v.citizen.display_name === "Karen J." && v.legal_basis === "sel_85" && v.status !== "completed");
  assert.ok(karen, "the demo visit with Karen exists");
  assert.equal((await staff.request.post(`${server.url}/api/visits/${karen.id}/start`, { data: {}, headers: { "x-skaerm-csrf": "1" } })).status(), 200);
  const ended = await staff.request.post(`${server.url}/api/visits/${karen.id}/end`, { data: { outcome: "completed" }, headers: { "x-skaerm-csrf": "1" } });
  assert.equal(ended.status(), 200);

  await staff.getByRole("button", { name: "Vis rapport" }).click();
  await eventually("the report counts the completed visit", async () =>
    (await reportNumber(staff, "sel_85", "Gennemført")) === completedBefore + 1 || await reportNumber(staff, "sel_85", "Gennemført"));
  assert.equal(await reportNumber(staff, "total", "Gennemført"), totalBefore + 1);
  assert.ok((await reportNumber(staff, "sel_85", "Planlagt")) >= 2, "the planned §85 visits are counted");
  assert.match(await staff.locator("#report-team").innerText(), /Bostøtte Nord/);
  // The chart: one SVG with an accessible name and a completed bar for §85.
  const chart = staff.locator("#report-chart svg[role=img]");
  assert.match(await chart.getAttribute("aria-labelledby"), /report-chart-svg-title/);
  assert.ok((await chart.locator("rect.bar-completed").count()) >= 2);
  await expectAccessible(staff, "monthly report");
  await screenshot(staff, "20-report");

  // The CSV download holds the same number.
  const [download] = await Promise.all([
    staff.waitForEvent("download"),
    staff.getByRole("link", { name: "Hent som CSV" }).click(),
  ]);
  assert.match(download.suggestedFilename(), /^skaerm-\d{4}-\d{2}\.csv$/);
  const csv = readFileSync(await download.path(), "utf8").trim().split("\n");
  assert.match(csv[0], /^month,team,legal_basis,/);
  const header = csv[0].split(",");
  const sel85 = csv.find((line) => line.split(",")[2] === "sel_85").split(",");
  assert.equal(Number(sel85[header.indexOf("completed")]), completedBefore + 1);

  // English works too.
  await staff.getByRole("button", { name: "Switch to English" }).click();
  await staff.getByRole("columnheader", { name: "Completed" }).waitFor();
  await expectAccessible(staff, "monthly report, English");
  await staff.getByRole("button", { name: "Skift til dansk" }).click();
  await staff.getByRole("columnheader", { name: "Gennemført" }).waitFor();
});

test("starting a visit more than 15 minutes early says when it can start", async () => {
  const today = await (await staff.request.get(`${server.url}/api/visits`)).json();
  // The demo's visit with Poul is an hour ahead.
  const poul = today.visits.find((v) => v.citizen.display_name === "Poul A." && v.status === "planned");
  assert.ok(poul, "the demo visit with Poul exists");
  await staff.goto(`${server.url}/visit/${poul.id}`);
  await staff.getByText(/Besøget kan startes fra 15 minutter før det begynder/).waitFor();
});

test("staff subscribe to their visits: the calendar address works, a new one retires the old, stop ends it", async () => {
  await staff.goto(server.url);
  await staff.locator("li.visit").first().waitFor();
  await staff.getByRole("button", { name: "Lav kalenderadresse" }).click();
  const field = staff.getByLabel("Kalenderadresse", { exact: true });
  await field.waitFor();
  const first = await field.inputValue();
  assert.match(first, /\/calendar\/[A-Za-z0-9_-]+\.ics$/);
  const feed = await fetch(first);
  assert.equal(feed.status, 200);
  assert.match(feed.headers.get("content-type"), /text\/calendar/);
  const ics = await feed.text();
  assert.match(ics, /BEGIN:VCALENDAR/);
  assert.match(ics, /Birthe S\./, "the series planned above is in the feed");
  await expectAccessible(staff, "calendar address");
  await screenshot(staff, "21-calendar-feed");

  await staff.getByRole("button", { name: /Lav en ny adresse/ }).click();
  await staff.getByText("Ny adresse lavet. Den gamle virker ikke længere").waitFor();
  const second = await staff.getByLabel("Kalenderadresse", { exact: true }).inputValue();
  assert.notEqual(second, first);
  assert.equal((await fetch(first)).status, 404);
  assert.equal((await fetch(second)).status, 200);

  await staff.getByRole("button", { name: "Stop kalenderadressen" }).click();
  await staff.getByText("Kalenderadressen er stoppet.", { exact: false }).waitFor();
  assert.equal((await fetch(second)).status, 404);
});

test("the planning page in English, and planning by keyboard alone", async () => {
  await staff.goto(`${server.url}/?page=plan`);
  await openPlanner();
  await staff.getByRole("button", { name: "Switch to English" }).click();
  await staff.getByRole("heading", { name: "Plan a visit" }).waitFor();
  assert.equal(await staff.locator("#plan-basis option[value=sel_85]").innerText(), "SEL §85 socio-pedagogical support");
  assert.equal(await staff.locator("html").getAttribute("lang"), "en");
  await expectAccessible(staff, "plan a visit, English");
  await screenshot(staff, "22-plan-visit-english");
  await staff.getByRole("button", { name: "Skift til dansk" }).click();
  await staff.getByRole("heading", { name: "Planlæg et besøg" }).waitFor();

  // Keyboard only: the citizen by arrow key, the rest by typing, Enter submits. Tomorrow at
  // 13.07 is free (the demo's visits are today).
  const tomorrow = copenhagen(Date.now() + 86_400_000).date;
  await staff.getByLabel("Borger", { exact: true }).focus();
  await staff.keyboard.press("ArrowDown");
  await staff.keyboard.press("Tab"); // the hint is not focusable: next is the legal basis
  assert.equal(await staff.evaluate(() => document.activeElement.id), "plan-basis");
  await staff.getByLabel("Dato", { exact: true }).fill(tomorrow);
  await staff.getByLabel("Klokkeslæt", { exact: true }).fill("13:07");
  await staff.getByLabel("Længde i minutter", { exact: true }).focus();
  await staff.keyboard.press("Enter");
  await staff.getByRole("heading", { name: "Besøget er planlagt" }).waitFor();
  assert.equal(await staff.evaluate(() => document.activeElement.id), "plan-done-title", "focus moves to the result");
  assert.match(await staff.locator("#plan-summary").innerText(), /kl\. 13\.07–13\.22/);
});
