// A user's journey through the page (api/web) in headless Chromium, through the UI only:
// sign up, upload a photo and a refused file at once, see the thumbnail, open the photo, have a
// story written and watch it arrive live, rename, delete (through the confirmation dialog),
// sign out, sign in again. Any console error or warning, page error, failed request or HTTP
// error the journey does not expect fails the run.
//
// Usage: node journey.mjs BASE_URL [SCREENSHOT_DIR]      (run by .ci/browser-check.sh)
//   BASE_URL        the API server, which serves the page at /
//   SCREENSHOT_DIR  where gallery.png and story.png go (default: docs/screenshots)
// Environment:
//   CHROMIUM_PATH                  the browser (default /usr/bin/chromium)
//   BROWSER_CHECK_NO_THUMBNAILS=1  development only: a server without the thumbnail endpoint
//                                  (its 404s are expected, no thumbnail is waited for)

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import puppeteer from "puppeteer-core";

const [base, screenshotDir = "docs/screenshots"] = process.argv.slice(2);
if (!base) {
  console.error("usage: node journey.mjs BASE_URL [SCREENSHOT_DIR]");
  process.exit(2);
}
const NO_THUMBNAILS = process.env.BROWSER_CHECK_NO_THUMBNAILS === "1";
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const VIEWPORT = { width: 1200, height: 800 };
const started = Date.now();

// ---- test files: a real PNG (a sunset, made here: no image library needed) and a fake JPEG ----

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes) {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
function pngChunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}
/** An 8-bit RGB PNG; `pixel(x, y)` gives [r, g, b]. */
function encodePng(width, height, pixel) {
  const stride = width * 3 + 1;
  const raw = Buffer.alloc(stride * height); // each row: filter byte 0, then RGB triples
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) raw.set(pixel(x, y), y * stride + 1 + x * 3);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type RGB, deflate, no filter, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", header),
    pngChunk("IDAT", zlib.deflateSync(raw, { level: 9 })),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}
const mix = (a, b, t) => a.map((value, i) => Math.round(value + (b[i] - value) * Math.min(Math.max(t, 0), 1)));
/** A sunset over the sea: a sky from indigo to orange, a sun, its reflection on the water. */
function sunset(x, y) {
  const horizon = 300;
  const sun = { x: 420, y: 268, r: 54 };
  const distance = Math.hypot(x - sun.x, y - sun.y);
  if (y < horizon) {
    let colour = y < 160 ? mix([62, 52, 128], [196, 86, 120], y / 160) : mix([196, 86, 120], [252, 164, 72], (y - 160) / 140);
    colour = mix(colour, [255, 214, 130], Math.max(0, 1 - distance / 190) ** 2); // glow
    return distance < sun.r ? mix([255, 236, 170], [255, 196, 96], distance / sun.r) : colour;
  }
  const depth = (y - horizon) / 180;
  let colour = mix([150, 92, 128], [36, 58, 110], depth);
  const ripple = Math.sin(y * 0.9 + Math.sin(x * 0.05) * 2) > 0.35;
  const path = Math.abs(x - sun.x) < 70 * (1 - depth * 0.4) + 25 * Math.sin(y * 0.3);
  if (ripple && path) colour = mix(colour, [255, 190, 110], 0.75 - depth * 0.5);
  return colour;
}

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "aistory-journey-"));
const photoPath = path.join(scratch, "sunset.png");
const refusedPath = path.join(scratch, "notes.jpg");
fs.writeFileSync(photoPath, encodePng(640, 480, sunset));
fs.writeFileSync(refusedPath, "These are notes, not a photo, whatever the name says.\n");

// ---- what may go wrong on purpose: (method, URL, status), precisely ----

const expected = [
  { what: "the refused upload", method: "POST", url: /\/api\/v1\/photos$/, status: 415, max: 1 },
  // The thumbnail is made by a job after the upload: 404 thumbnail-not-ready until then.
  { what: "a thumbnail not made yet", method: "GET", url: /\/api\/v1\/photos\/\d+\/thumbnail\?size=256$/, status: 404, type: /\/problems\/thumbnail-not-ready$/ },
];
if (NO_THUMBNAILS) {
  expected.push({ what: "no thumbnail endpoint (development)", method: "GET", url: /\/api\/v1\/photos\/\d+\/thumbnail\?size=256$/, status: 404 });
}
const seen = new Map(expected.map((rule) => [rule, 0]));
const problems = [];
const expectedUrls = new Set(); // URLs of expected errors: their "Failed to load resource" lines are fine
const log = { requests: 0, streams: 0, refusedDetail: null };

/** The rule an error response matches (its problem `type` is checked once the body is read). */
function ruleFor(method, url, status) {
  const rule = expected.find((candidate) => candidate.method === method && candidate.url.test(url) && candidate.status === status);
  if (!rule) return null;
  seen.set(rule, seen.get(rule) + 1);
  return rule.max && seen.get(rule) > rule.max ? null : rule;
}

function watch(page) {
  page.on("console", (message) => {
    const type = message.type();
    if (type !== "error" && type !== "warn" && type !== "warning") return;
    const text = message.text();
    const source = message.location()?.url ?? "";
    // Chromium reports every HTTP error as "Failed to load resource"; the expected ones are fine.
    if (/^Failed to load resource: the server responded with a status of \d+/.test(text) && expectedUrls.has(source)) return;
    problems.push(`console ${type}: ${text}${source ? ` (${source})` : ""}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("request", (request) => {
    log.requests += 1;
    if (/\/events\?ticket=/.test(request.url())) log.streams += 1;
  });
  page.on("requestfailed", (request) => {
    const reason = request.failure()?.errorText ?? "failed";
    if (reason === "net::ERR_ABORTED") {
      // Chromium reports a 204 answer (DELETE, logout) as aborted: it has no body to load.
      if (request.response()?.status() === 204) return;
      // The page closes its event stream when the story is there (or the dialog closes).
      if (/\/api\/v1\/photos\/\d+\/events\?ticket=/.test(request.url())) return;
    }
    problems.push(`request failed: ${request.method()} ${request.url()}: ${reason}`);
  });
  page.on("response", async (response) => {
    const status = response.status();
    if (status < 400) return;
    const request = response.request();
    const url = response.url();
    // Decided at once: Chromium's "Failed to load resource" line may come before the body.
    const rule = ruleFor(request.method(), url, status);
    if (rule) expectedUrls.add(url);
    let body = null;
    try {
      body = await response.json();
    } catch {
      // not JSON
    }
    if (rule && rule.type && !rule.type.test(body?.type ?? "")) {
      // Several rules may share a URL and status (development mode): look for one that fits.
      const other = expected.find((candidate) => candidate !== rule && !candidate.type && candidate.url.test(url) && candidate.status === status);
      if (!other) problems.push(`HTTP ${status} ${request.method()} ${url} has type ${body?.type}, expected ${rule.type}`);
    }
    if (rule) {
      if (status === 415) log.refusedDetail = body?.detail ?? null;
      return;
    }
    problems.push(`unexpected HTTP ${status}: ${request.method()} ${url}${body?.detail ? `: ${body.detail}` : ""}`);
  });
}

// ---- the journey ----

let page;
let currentStep = "start";
const steps = [];

async function step(name, action) {
  currentStep = name;
  const begun = Date.now();
  try {
    await action();
  } catch (error) {
    // What the page or the server did wrong usually explains a time-out: say both.
    throw new Error(problems.length ? `${error.message}\n  and unexpected:\n  ${problems.join("\n  ")}` : error.message);
  }
  // Problems reported while the step ran (console lines arrive a moment after responses).
  await new Promise((resolve) => setTimeout(resolve, 50));
  if (problems.length) throw new Error(`unexpected:\n  ${problems.join("\n  ")}`);
  const seconds = ((Date.now() - begun) / 1000).toFixed(1);
  steps.push(name);
  console.log(`ok ${name} (${seconds} s)`);
}

const visible = (selector, timeout = 15_000) => page.waitForSelector(selector, { visible: true, timeout });
const textOf = (selector) => page.$eval(selector, (node) => node.textContent.trim());

async function typeInto(selector, text) {
  await page.click(selector, { clickCount: 3 });
  await page.keyboard.press("Backspace");
  await page.type(selector, text);
}

async function main() {
  const username = `journey_${Date.now().toString(36)}`;
  const password = "correct horse battery staple";
  const newTitle = "Sunset over the bay";

  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    defaultViewport: VIEWPORT,
  });
  try {
    page = await browser.newPage();
    page.setDefaultTimeout(15_000);
    watch(page);
    let navigations = 0;
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) navigations += 1;
    });

    await step("open the page", async () => {
      const answer = await page.goto(base, { waitUntil: "load" });
      if (answer?.status() !== 200) throw new Error(`GET ${base}/ answered ${answer?.status()}: the server does not serve the page`);
      await visible("#signin-form");
      await visible("#signup-form");
    });

    await step("sign up", async () => {
      await page.type("#signup-username", username);
      await page.type("#signup-email", `${username}@example.com`);
      await page.type("#signup-password", password);
      await page.click('#signup-form button[type="submit"]');
      const outcome = await page.waitForFunction(
        () => {
          if (!document.querySelector("#app").hidden) return "signed in";
          const errors = [...document.querySelectorAll("#signup-form [data-error-for]")].map((n) => n.textContent).join(" ").trim();
          return errors ? `error: ${errors}` : false;
        },
        { timeout: 15_000 },
      ).then((handle) => handle.jsonValue()).catch(() => "still signed out");
      if (outcome.startsWith("error")) throw new Error(`sign-up refused: ${outcome}`);
      if (outcome === "still signed out") {
        // A page that only registers: sign in with the new account.
        await page.type("#signin-username", username);
        await page.type("#signin-password", password);
        await page.click('#signin-form button[type="submit"]');
        await visible("#app");
      }
      await visible("#gallery-empty");
      const shown = await textOf("#account-name");
      if (shown !== username) throw new Error(`the page shows the account as "${shown}", not "${username}"`);
      // Marks this document: if the page reloaded, the mark would be gone.
      await page.evaluate(() => { window.journeyMark = "same document"; });
    });

    await step("upload a photo and a refused file at once", async () => {
      const input = await page.$("#file-input");
      await input.uploadFile(photoPath, refusedPath);
      await page.waitForFunction(
        () => {
          const rows = [...document.querySelectorAll(".upload")];
          return rows.length === 2 && rows.every((row) => ["done", "error"].includes(row.dataset.state));
        },
        { timeout: 30_000 },
      );
      const done = await page.$$eval('.upload[data-state="done"]', (rows) => rows.map((row) => ({ name: row.dataset.name, value: row.querySelector("progress").value })));
      const failed = await page.$$eval('.upload[data-state="error"]', (rows) => rows.map((row) => ({ name: row.dataset.name, text: row.querySelector(".upload-status").textContent })));
      if (done.length !== 1 || done[0].name !== "sunset.png" || done[0].value !== 100) {
        throw new Error(`expected sunset.png done at 100%, got ${JSON.stringify(done)}`);
      }
      if (failed.length !== 1 || failed[0].name !== "notes.jpg") throw new Error(`expected notes.jpg refused, got ${JSON.stringify(failed)}`);
      if (!log.refusedDetail || failed[0].text !== log.refusedDetail) {
        throw new Error(`the refused row says "${failed[0].text}", the server said "${log.refusedDetail}"`);
      }
      const tiles = await page.$$eval(".tile", (nodes) => nodes.length);
      if (tiles !== 1) throw new Error(`expected the new photo in the gallery at once, found ${tiles} tiles`);
    });

    await step(NO_THUMBNAILS ? "gallery tile (thumbnail not waited for)" : "thumbnail in the gallery", async () => {
      if (NO_THUMBNAILS) {
        await page.waitForFunction(() => document.querySelector(".tile .thumb")?.dataset.thumb !== "loading", { timeout: 30_000 });
        return;
      }
      await page.waitForFunction(
        () => {
          const image = document.querySelector('.tile .thumb[data-thumb="ready"] img');
          return image && image.src.startsWith("blob:") && image.complete && image.naturalWidth > 0;
        },
        { timeout: 30_000 },
      );
    });

    await step("screenshot gallery.png", async () => {
      fs.mkdirSync(screenshotDir, { recursive: true });
      await page.evaluate(() => document.activeElement?.blur());
      await page.screenshot({ path: path.join(screenshotDir, "gallery.png") });
    });

    await step("readable at 375 px", async () => {
      await page.setViewport({ width: 375, height: 812 });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      await page.setViewport(VIEWPORT);
      if (overflow > 0) throw new Error(`the page is ${overflow} px wider than a 375 px screen`);
    });

    await step("open the photo with the keyboard", async () => {
      await page.focus(".tile-button");
      await page.keyboard.press("Enter");
      await visible("#photo-dialog[open]");
      await page.waitForFunction(() => {
        const image = document.querySelector("#photo-image");
        return document.querySelector("#photo-frame").dataset.state === "ready" && image.naturalWidth === 640;
      });
      const details = await textOf("#photo-details");
      if (!details.includes("640 × 480")) throw new Error(`the details do not give 640 × 480: ${details}`);
      if (!/\d/.test(details) || !details.includes("Uploaded")) throw new Error(`the details lack the upload date: ${details}`);
    });

    await step("write a story and watch it arrive live", async () => {
      // Record every state of the story area, to know the progress indicator was shown.
      await page.evaluate(() => {
        window.storyStates = [];
        new MutationObserver(() => window.storyStates.push(document.querySelector("#story").dataset.state)).observe(
          document.querySelector("#story"),
          { attributes: true, attributeFilter: ["data-state"] },
        );
      });
      await page.select("#story-style", "bedtime");
      await page.click("#story-submit");
      await page.waitForFunction(
        () => document.querySelector("#story").dataset.state === "ready" && document.querySelector("#story-body").textContent.trim().length > 40,
        { timeout: 60_000 },
      );
      const states = await page.evaluate(() => window.storyStates);
      if (!states.includes("processing")) throw new Error(`no progress was shown while writing (states: ${states.join(", ")})`);
      if (log.streams < 1) throw new Error("the story arrived without the event stream");
      const mark = await page.evaluate(() => window.journeyMark);
      if (mark !== "same document" || navigations !== 1) throw new Error("the page reloaded while the story was written");
      const meta = await textOf("#story-meta");
      if (!meta.startsWith("bedtime")) throw new Error(`the story is not the bedtime one asked for: ${meta}`);
      const label = await textOf("#story-submit");
      if (label !== "Regenerate") throw new Error(`after a story the button says "${label}", not "Regenerate"`);
    });

    await step("screenshot story.png", async () => {
      await page.evaluate(() => document.activeElement?.blur());
      await page.screenshot({ path: path.join(screenshotDir, "story.png") });
    });

    await step("rename the photo", async () => {
      await typeInto("#rename-input", newTitle);
      await page.keyboard.press("Enter");
      await page.waitForFunction(
        (title) => document.querySelector("#photo-title").textContent === title && document.querySelector(".tile .tile-title").textContent === title,
        {},
        newTitle,
      );
    });

    await step("cancel a deletion with Escape", async () => {
      await page.click("#photo-delete");
      await visible("#confirm-dialog[open]");
      await page.keyboard.press("Escape");
      await page.waitForSelector("#confirm-dialog:not([open])");
      if (!(await page.$("#photo-dialog[open]"))) throw new Error("Escape on the confirmation closed the photo too");
      if ((await page.$$(".tile")).length !== 1) throw new Error("the photo went away after a cancelled deletion");
    });

    await step("delete the photo", async () => {
      await page.click("#photo-delete");
      await visible("#confirm-dialog[open]");
      await page.click("#confirm-delete");
      await page.waitForSelector("#photo-dialog:not([open])");
      await page.waitForFunction(() => document.querySelectorAll(".tile").length === 0);
      await visible("#gallery-empty");
    });

    await step("sign out", async () => {
      await page.click("#signout");
      await visible("#signin-form");
      const stored = await page.evaluate(() => Object.keys(sessionStorage).length + Object.keys(localStorage).length);
      if (stored) throw new Error("tokens are still stored after signing out");
    });

    await step("sign in again: an empty gallery", async () => {
      await page.type("#signin-username", `${username}@example.com`);
      await page.type("#signin-password", password);
      await page.click('#signin-form button[type="submit"]');
      await visible("#app");
      await visible("#gallery-empty");
      await page.waitForFunction(() => !document.querySelector("#gallery-more").textContent);
      if ((await page.$$(".tile")).length !== 0) throw new Error("the deleted photo is back");
      if ((await textOf("#account-name")) !== username) throw new Error("signed in with the email, the page does not show the username");
    });

    if (seen.get(expected[0]) !== 1) throw new Error("the refused upload was never answered 415");
  } finally {
    await browser.close();
  }
}

try {
  await main();
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    `browser journey passed: ${steps.length} steps in ${seconds} s, ${log.requests} requests, ` +
      `${log.streams} event stream(s), 0 console errors${NO_THUMBNAILS ? " (thumbnails not checked)" : ""}`,
  );
} catch (error) {
  console.error(`browser journey failed at "${currentStep}": ${error.message}`);
  process.exitCode = 1;
} finally {
  fs.rmSync(scratch, { recursive: true, force: true });
}
