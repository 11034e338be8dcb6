// A visitor on the music-share web site, in headless Chromium: uploads a track (a
// real audio file) and sees it appear, opens it, posts a comment and sees it
// appear, and meets a clear error for a file that is not audio and for an empty
// comment. Screenshots go to the directory given, as the run's artifacts.
//
//   node site.mjs http://127.0.0.1:8000 <screenshot dir>
//
// Chromium is Debian's (/usr/bin/chromium, or $CHROMIUM), driven by playwright-core.

import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";

const [base, shots] = process.argv.slice(2);
assert.ok(base && shots, "usage: node site.mjs <site url> <screenshot dir>");
mkdirSync(shots, { recursive: true });

// A short, valid WAV file: 0.2 s of a 440 Hz tone, 8 kHz mono 8-bit.
function wav() {
  const rate = 8000, n = 1600;
  const b = Buffer.alloc(44 + n);
  b.write("RIFF", 0); b.writeUInt32LE(36 + n, 4); b.write("WAVE", 8);
  b.write("fmt ", 12); b.writeUInt32LE(16, 16); b.writeUInt16LE(1, 20); b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24); b.writeUInt32LE(rate, 28); b.writeUInt16LE(1, 32); b.writeUInt16LE(8, 34);
  b.write("data", 36); b.writeUInt32LE(n, 40);
  for (let i = 0; i < n; i++) b[44 + i] = 128 + Math.round(100 * Math.sin((2 * Math.PI * 440 * i) / rate));
  return b;
}

const audioPath = join(shots, "night-drive.wav");
writeFileSync(audioPath, wav());
const notAudio = join(shots, "notes.txt");
writeFileSync(notAudio, "these are my lyrics, not a song");

// Reloads `page` until `locator` shows `text` (messaging mode stores asynchronously).
async function eventually(page, locator, text, what) {
  for (let i = 0; i < 60; i++) {
    if ((await page.locator(locator).innerText()).includes(text)) return;
    await page.waitForTimeout(500);
    await page.reload();
  }
  throw new Error(`${what}: "${text}" never appeared in ${locator}`);
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"] });
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  await page.goto(base);
  assert.match(await page.title(), /music-share/);

  // Bad input first: a text file is refused with a clear message, nothing stored.
  await page.fill("#title", "Not a song");
  await page.fill("#artist", "Nobody");
  await page.setInputFiles("#audio", notAudio);
  await page.click("button[type=submit]");
  assert.match(await page.locator(".flash.bad").innerText(), /not an audio file/);
  await page.goto(base);
  assert.ok(!(await page.locator("#tracks").innerText()).includes("Not a song"), "a refused upload is not listed");

  // Upload a track and see it listed.
  // The title carries markup, which every page must show as text.
  await page.fill("#title", "Night Drive <i>live</i>");
  await page.fill("#artist", "The Lapis Trio");
  await page.setInputFiles("#audio", audioPath);
  await page.click("button[type=submit]");
  assert.match(await page.locator(".flash.ok").innerText(), /Night Drive/);
  await eventually(page, "#tracks", "Night Drive", "the upload");
  await page.screenshot({ path: join(shots, "home.png"), fullPage: true });

  // Open it, play it, comment on it, and see the comment.
  await page.click("#tracks >> text=Night Drive");
  await page.waitForSelector("audio[data-track]");
  const audioOk = await page.evaluate(async () => (await fetch(document.querySelector("audio").src)).ok);
  assert.ok(audioOk, "the track's audio is served");
  // Playing it counts a play (Event Hubs in messaging mode, then the trending aggregator).
  await page.evaluate(() => document.querySelector("audio").play());
  await page.fill("#author", "ana");
  await page.fill("#body", "Love the bass line!");
  await page.click("form[action$='/comments'] button");
  assert.match(await page.locator(".flash.ok").innerText(), /comment is posted/);
  await eventually(page, "#comments", "Love the bass line!", "the comment");

  // An empty comment (past the browser's own check) gets a clear error.
  const track = page.url().split("?")[0];
  const empty = await page.evaluate(async (url) => {
    const r = await fetch(url + "/comments", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "comment_id=x&author=ana&body=%20%20" });
    return [r.status, await r.text()];
  }, track);
  assert.equal(empty[0], 400);
  assert.match(empty[1], /needs some text/);
  await page.screenshot({ path: join(shots, "track.png"), fullPage: true });

  // The live side bar hears of the new track through the notifications handler.
  await page.goto(base);
  await page.waitForFunction(() => document.getElementById("published").innerText.includes("Night Drive <i>live</i>"), null, { timeout: 30000 });
  assert.equal(await page.locator("#published i, #tracks i").count(), 0, "an uploader's markup is shown as text, not run");
  await page.waitForFunction(() => /Night Drive[^\n]*1 plays/.test(document.getElementById("trending").innerText), null, { timeout: 30000 });
  await page.screenshot({ path: join(shots, "live.png"), fullPage: true });
  console.log("browser test passed; screenshots in " + shots);
} finally {
  await browser.close();
}
