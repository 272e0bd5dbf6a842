// @ts-check
/**
 * Drives the review page in headless Chromium (playwright-core + Debian's /usr/bin/chromium), for
 * tests/integration/test_review_loop.py.
 *
 *   node web/e2e/review.mjs plan.json out.json
 *
 * plan.json: {"url", "email", "password", "actions": [{"key": "1"} | {"click": "choice" | "none" | "skip",
 * "index"?: n}], "viewport"?: {width, height}, "screenshot"?: path}. It signs in through the form, waits for
 * the queue, performs each action on the current card (a key press, or a click on its n-th choice, its
 * "none of these" or its skip button), waiting after each until no request is pending, and records
 * window.clipReview, what every card shows, the progress and status lines, every HTTP answer of 400 or
 * more, the console's errors, the images that did not load, and whether the page is wider than its screen.
 */
import { readFileSync, writeFileSync } from "node:fs";

import { chromium } from "playwright-core";

const [planPath, outPath] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planPath, "utf8"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: plan.viewport ?? { width: 1280, height: 900 } });
  /** @type {{url: string, status: number}[]} */
  const failed = [];
  page.on("response", (response) => {
    if (response.status() >= 400) failed.push({ url: response.url().split("?")[0], status: response.status() });
  });
  /** @type {string[]} */
  const console_ = [];
  page.on("console", (message) => {
    if (message.type() === "error") console_.push(message.text());
  });
  page.on("pageerror", (error) => console_.push(`pageerror: ${error.message}`));
  await page.goto(plan.url);
  await page.fill("#email", plan.email);
  await page.fill("#password", plan.password);
  await page.click("#sign-in button[type=submit]");
  await page.waitForFunction(() => {
    const review = /** @type {any} */ (window).clipReview;
    return review.loaded || review.error;
  }, null, { timeout: 60_000 });
  const idle = () => page.waitForFunction(() => /** @type {any} */ (window).clipReview.pending === 0, null, { timeout: 30_000 });
  for (const action of plan.actions) {
    if (action.key) {
      await page.keyboard.press(action.key);
    } else {
      const card = page.locator(".card.current");
      const target =
        action.click === "choice" ? card.locator(".choices button").nth(action.index ?? 0) : card.locator(".actions button").nth(action.click === "none" ? 0 : 1);
      await target.click();
    }
    await idle();
  }
  // Every image a card shows has loaded (the presigned links work from the page's origin); they load lazily,
  // so each card is scrolled to first.
  for (const card of await page.locator(".card").all()) await card.scrollIntoViewIfNeeded();
  await page.waitForFunction(() => Array.from(document.querySelectorAll(".card img")).every((img) => /** @type {HTMLImageElement} */ (img).complete), null, { timeout: 30_000 });
  const brokenImages = await page.$$eval(".card img", (imgs) => imgs.filter((img) => /** @type {HTMLImageElement} */ (img).naturalWidth === 0).length);
  const review = await page.evaluate(() => {
    const state = /** @type {any} */ (window).clipReview;
    return {
      signedIn: state.signedIn,
      done: state.done,
      history: state.history,
      error: state.error,
      cursor: state.cursor,
      cards: state.cards.map((/** @type {any} */ c) => ({ pictureId: c.item.pictureId, state: c.state, label: c.label })),
    };
  });
  const shown = await page.$$eval(".card", (nodes) =>
    nodes.map((node) => ({
      pictureId: /** @type {HTMLElement} */ (node).dataset.pictureId,
      top: Array.from(node.querySelectorAll(":scope > .choices button"), (b) => b.textContent),
      verdict: node.querySelector(".verdict")?.textContent ?? "",
      hasImage: node.querySelector("img") !== null,
    })),
  );
  const layout = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
  if (plan.screenshot) {
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: plan.screenshot, fullPage: false });
  }
  writeFileSync(
    outPath,
    JSON.stringify({
      review,
      shown,
      progress: await page.textContent("#progress"),
      signInShown: await page.isVisible("#sign-in"),
      toolbarShown: await page.isVisible("#toolbar"),
      status: await page.textContent("#status"),
      failed,
      console: console_,
      brokenImages,
      overflow: layout.scrollWidth > layout.innerWidth,
    }),
  );
} finally {
  await browser.close();
}
