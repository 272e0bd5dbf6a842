// @ts-check
/**
 * Drives the demo page in headless Chromium (playwright-core + Debian's /usr/bin/chromium: no browser
 * download), for tests/integration/test_browser.py and bench/bench_browser.py.
 *
 *   node web/e2e/drive.mjs plan.json out.json
 *
 * plan.json: {"scenarios": [{"name", "url", "files": [paths], "screenshot"?: path, "dialog"?: "accept" |
 * "dismiss", "viewport"?: {width, height}}, ...]}. Each scenario opens the page (answering its dialogs as
 * "dialog" says, accept by default), waits for the model, adds the files through the file picker, waits until
 * every file is done, and records window.clipDemo (results, model, timings), what each card shows (its
 * headline, the labels shown and those folded), the dialogs' messages, every HTTP answer of 400 or more, and
 * whether the page is wider than its screen.
 */
import { readFileSync, writeFileSync } from "node:fs";

import { chromium } from "playwright-core";

const [planPath, outPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  // A closed network: no background connections, no component updates, no first-run work.
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
});
const out = [];
try {
  for (const scenario of plan.scenarios) {
    const page = await browser.newPage({ viewport: scenario.viewport ?? { width: 1280, height: 900 } });
    /** @type {{url: string, status: number}[]} */
    const failed = [];
    page.on("response", (response) => {
      if (response.status() >= 400) failed.push({ url: response.url(), status: response.status() });
    });
    /** @type {string[]} */
    const console_ = [];
    page.on("console", (message) => console_.push(`${message.type()}: ${message.text()}`));
    page.on("pageerror", (error) => console_.push(`pageerror: ${error.message}`));
    /** @type {string[]} */
    const dialogs = [];
    page.on("dialog", (dialog) => {
      dialogs.push(dialog.message());
      return scenario.dialog === "dismiss" ? dialog.dismiss() : dialog.accept();
    });
    const opened = Date.now();
    await page.goto(scenario.url);
    await page.waitForFunction(() => {
      const demo = /** @type {any} */ (window).clipDemo;
      return demo && (demo.ready || demo.modelError);
    }, null, { timeout: 180_000 });
    const modelMs = Date.now() - opened;
    if (scenario.files.length) {
      await page.setInputFiles("#files", scenario.files);
      await page.waitForFunction(
        (count) => {
          const demo = /** @type {any} */ (window).clipDemo;
          return demo.results.length === count && demo.pending === 0;
        },
        scenario.files.length,
        { timeout: 600_000 },
      );
    }
    const firstResultMs = Date.now() - opened;
    const demo = await page.evaluate(() => /** @type {any} */ (window).clipDemo);
    const cards = await page.$$eval(".card", (nodes) =>
      nodes.map((node) => ({
        file: /** @type {HTMLElement} */ (node).dataset.file,
        text: node.textContent,
        headline: node.querySelector(".top")?.textContent ?? null,
        shown: Array.from(node.querySelectorAll(".ranked .bar"), (bar) => [
          bar.querySelector(".label")?.textContent,
          bar.querySelector(".value")?.textContent,
        ]),
        folded: Array.from(node.querySelectorAll("details.more .bar"), (bar) => [
          bar.querySelector(".label")?.textContent,
          bar.querySelector(".value")?.textContent,
        ]),
        foldedOpen: /** @type {HTMLDetailsElement | null} */ (node.querySelector("details.more"))?.open ?? null,
        working: node.querySelector(".progress")?.textContent ?? null,
      })),
    );
    const overflowX = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    const progress = await page.textContent("#progress");
    const status = await page.textContent("#model-status");
    const headStatus = await page.textContent("#head-status");
    if (scenario.screenshot) await page.screenshot({ path: scenario.screenshot, fullPage: false });
    out.push({
      name: scenario.name, modelMs, firstResultMs, demo, cards, status, headStatus, dialogs, console: console_,
      failed, overflowX, progress,
    });
    await page.close();
  }
} finally {
  await browser.close();
}
writeFileSync(outPath, JSON.stringify(out));
