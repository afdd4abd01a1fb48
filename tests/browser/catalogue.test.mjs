// Fast checks without a browser: the Danish and English catalogues hold the same keys, every
// key the pages and scripts use exists, and the connection-quality levels follow getStats.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./harness.mjs";

const client = join(repoRoot, "web-client");
const da = (await import(join(client, "assets/i18n/da.js"))).default;
const en = (await import(join(client, "assets/i18n/en.js"))).default;

test("Danish and English catalogues have the same keys and no empty text", () => {
  assert.deepEqual(Object.keys(en).sort(), Object.keys(da).sort());
  for (const [key, text] of [...Object.entries(da), ...Object.entries(en)]) {
    assert.ok(typeof text === "string" && text.trim().length > 0, `${key} is empty`);
  }
});

test("every text key used by the pages and scripts exists", () => {
  const used = new Set();
  for (const file of readdirSync(client).filter((f) => f.endsWith(".html"))) {
    const html = readFileSync(join(client, file), "utf8");
    for (const m of html.matchAll(/data-i18n(?:-label|-placeholder)?="([^"]+)"/g)) used.add(m[1]);
  }
  const scripts = join(client, "assets/js");
  for (const file of readdirSync(scripts)) {
    const js = readFileSync(join(scripts, file), "utf8");
    // t("key"), "data-i18n": "key", and keys named in plain string literals like "call.hang_up"
    for (const m of js.matchAll(/["'`]((?:app|lang|login|staff|status|call|quality|citizen|check|advice|error|nav|plan|link|cancel|report|basis|weekday|feed|lobby|invite|ops|tablet|devices|chat)(?:\.[a-z_]+)+)["'`]/g)) {
      used.add(m[1]);
    }
  }
  assert.ok(used.size > 50, `found only ${used.size} keys: the scan is broken`);
  // Keys built at run time from a state.
  for (const state of ["pending", "ok", "denied", "missing", "busy", "unsupported", "failed"]) used.add(`check.${state}`);
  for (const device of ["camera", "microphone"]) for (const p of ["missing", "busy"]) used.add(`advice.${device}_${p}`);
  for (const level of ["good", "weak", "poor"]) used.add(`quality.${level}`);
  for (const status of ["planned", "ready", "waiting", "in_progress", "completed", "no_show", "cancelled", "technical_failure"]) {
    used.add(`status.${status}`);
  }
  // The closed set of legal bases (the server's codes).
  for (const basis of ["sel_85", "sel_83", "sel_83a", "sel_86", "sul_138"]) used.add(`basis.${basis}`);
  const missing = [...used].filter((key) => !(key in da) && !/\.$/.test(key));
  assert.deepEqual(missing, [], "keys used but missing from the catalogues");
});

test("connection quality: good, weak and poor from loss, round-trip time and jitter", async () => {
  const { qualityLevel, worstLevel } = await import(join(client, "assets/js/call.js"));
  assert.equal(worstLevel(["good", "good", "good"]), "good");
  assert.equal(worstLevel(["good", "poor", "good"]), "poor");
  assert.equal(worstLevel(["weak", "good", "good"]), "weak");
  assert.equal(worstLevel([]), "good");
  assert.equal(qualityLevel({ lossRatio: 0, rtt: 0.02, jitter: 0.005 }), "good");
  assert.equal(qualityLevel({ lossRatio: 0, rtt: null, jitter: 0 }), "good");
  assert.equal(qualityLevel({ lossRatio: 0.04, rtt: 0.02, jitter: 0.005 }), "weak");
  assert.equal(qualityLevel({ lossRatio: 0, rtt: 0.4, jitter: 0.005 }), "weak");
  assert.equal(qualityLevel({ lossRatio: 0, rtt: 0.02, jitter: 0.05 }), "weak");
  assert.equal(qualityLevel({ lossRatio: 0.1, rtt: 0.02, jitter: 0.005 }), "poor");
  assert.equal(qualityLevel({ lossRatio: 0, rtt: 0.8, jitter: 0.005 }), "poor");
  assert.equal(qualityLevel({ lossRatio: 0, rtt: 0.02, jitter: 0.2 }), "poor");
});
