// @ts-check
/**
 * The review page: a reviewer signs in (the stack's Cognito user pool), sees the review queue as a grid of
 * images with the head's top 3 labels, and labels with one click or a key (1–9, n for "none of these"),
 * skips (s), undoes (u) and moves (← →); progress is shown as done / left. Everything the API or a file
 * says is shown as text (textContent), never as HTML.
 *
 * Told where to sign in by its URL: ?client=<ReviewerClientId>&region=<region> (the stack's outputs), or
 * &cognito=<endpoint> for the local stack's moto; &api=<ApiUrl> when the page is not on the API's origin.
 * The ID token is kept in sessionStorage: it ends with the tab, and lives an hour at most.
 */
import { ApiError } from "../src/api.js";
import { percent } from "../src/formats.js";
import { ReviewApi, choices, cognitoEndpoint, signIn } from "../src/review-api.js";

const params = new URLSearchParams(location.search);
const TOKEN_KEY = "clip-review-token";
const PAGE_SIZE = 20;

/** @typedef {import("../src/review-api.js").ReviewItem} ReviewItem */
/** @typedef {{item: ReviewItem, node: HTMLElement, state: "open" | "labelled" | "skipped", label: string | null}} Card */

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
/** @type {HTMLInputElement} */ const apiUrl = $("api-url");
/** @type {HTMLFormElement} */ const form = $("sign-in");
/** @type {HTMLElement} */ const status = $("status");
/** @type {HTMLElement} */ const toolbar = $("toolbar");
/** @type {HTMLElement} */ const progress = $("progress");
/** @type {HTMLElement} */ const grid = $("grid");
/** @type {HTMLButtonElement} */ const undoButton = $("undo");
/** @type {HTMLButtonElement} */ const moreButton = $("more");

/** What the page did, for people (the status line) and for the end-to-end test (window.clipReview). */
const state = {
  signedIn: false,
  loaded: false,
  /** @type {string[]} */ classes: [],
  noneOfThese: "none of these",
  /** @type {string | null} */ cursor: null,
  /** @type {Card[]} */ cards: [],
  current: 0,
  done: 0,
  pending: 0,
  /** @type {{pictureId: string, label: string}[]} */ history: [],
  /** @type {string | null} */ error: null,
};
/** @type {any} */ (window).clipReview = state;

apiUrl.value = params.get("api") ?? `${location.origin}/api`;

function endpoint() {
  const given = params.get("cognito");
  if (given) return given;
  return cognitoEndpoint(params.get("region") ?? "");
}

/** @param {string} text @param {boolean} [isError] */
function say(text, isError = false) {
  status.textContent = text;
  status.className = isError ? "error" : "";
  if (isError) state.error = text;
}

/** @param {string} tag @param {string} [className] @param {string} [text] */
function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function savedToken() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(TOKEN_KEY) ?? "null");
    return saved && typeof saved.idToken === "string" && saved.expiresAt > Date.now() + 30_000 ? saved.idToken : null;
  } catch {
    return null;
  }
}

/** @type {ReviewApi | null} */
let api = null;

function showProgress() {
  const left = state.cards.filter((c) => c.state === "open").length;
  const skipped = state.cards.filter((c) => c.state === "skipped").length;
  const more = state.cursor ? " · more waiting in the queue" : state.loaded ? " · end of the queue" : "";
  progress.textContent = `${state.done} labelled · ${left} left on this page${skipped ? ` · ${skipped} skipped` : ""}${more}`;
  undoButton.disabled = state.history.length === 0;
  moreButton.hidden = !state.cursor || left > 0;
}

/** @param {number} index */
function focusCard(index) {
  if (!state.cards.length) return;
  state.current = Math.max(0, Math.min(index, state.cards.length - 1));
  state.cards.forEach((card, i) => card.node.classList.toggle("current", i === state.current));
  state.cards[state.current].node.scrollIntoView({ block: "nearest" });
}

/** The next open card after ``from`` (wrapping), or the same one when none is open. */
/** @param {number} from */
function nextOpen(from) {
  for (let step = 1; step <= state.cards.length; step += 1) {
    const index = (from + step) % state.cards.length;
    if (state.cards[index].state === "open") return index;
  }
  return from;
}

/** @param {Card} card */
function renderVerdict(card) {
  const verdict = /** @type {HTMLElement} */ (card.node.querySelector(".verdict"));
  verdict.className = "verdict";
  verdict.textContent = card.state === "labelled" ? `labelled: ${card.label}` : card.state === "skipped" ? "skipped" : "";
  card.node.classList.toggle("labelled", card.state === "labelled");
  card.node.classList.toggle("skipped", card.state === "skipped");
  for (const button of card.node.querySelectorAll("button[data-label]")) {
    button.classList.toggle("chosen", card.state === "labelled" && /** @type {HTMLElement} */ (button).dataset.label === card.label);
  }
}

/** @param {Card} card @param {string} text */
function cardError(card, text) {
  const verdict = /** @type {HTMLElement} */ (card.node.querySelector(".verdict"));
  verdict.className = "verdict error";
  verdict.textContent = text;
}

/** @param {unknown} error */
function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.signedIn = false;
    form.hidden = false;
    say("your sign-in has expired: sign in again", true);
    return;
  }
  say(error instanceof Error ? error.message : String(error), true);
}

/** @param {Card} card @param {string} label */
async function give(card, label) {
  if (!api || card.state === "labelled") return;
  state.pending += 1;
  try {
    const result = await api.label(card.item.pictureId, label);
    card.state = "labelled";
    card.label = result.personLabel;
    state.done += 1;
    state.history.push({ pictureId: card.item.pictureId, label });
    renderVerdict(card);
    if (state.cards[state.current] === card) focusCard(nextOpen(state.current));
  } catch (error) {
    if (error instanceof ApiError && error.status !== 401) cardError(card, error.message);
    else failed(error);
  } finally {
    state.pending -= 1;
    showProgress();
  }
}

async function undo() {
  const last = state.history.at(-1);
  if (!api || !last) return;
  const index = state.cards.findIndex((c) => c.item.pictureId === last.pictureId);
  state.pending += 1;
  try {
    await api.unlabel(last.pictureId);
    state.history.pop();
    state.done -= 1;
    if (index >= 0) {
      state.cards[index].state = "open";
      state.cards[index].label = null;
      renderVerdict(state.cards[index]);
      focusCard(index);
    }
  } catch (error) {
    failed(error);
  } finally {
    state.pending -= 1;
    showProgress();
  }
}

/** @param {ReviewItem} item @param {number} index */
function renderCard(item, index) {
  const node = element("article", "card");
  node.dataset.pictureId = item.pictureId;
  const figure = element("figure");
  if (item.imageUrl) {
    const img = /** @type {HTMLImageElement} */ (element("img"));
    img.src = item.imageUrl; // a presigned S3 link, valid a few minutes
    img.alt = item.key ?? item.pictureId;
    img.loading = "lazy";
    img.referrerPolicy = "no-referrer";
    figure.append(img);
  } else {
    figure.append(element("div", "no-image", item.source === "api" ? "scored from features sent to the API: no image" : "no image link"));
  }
  node.append(figure, element("div", "name", item.key ?? item.pictureId));
  /** @type {Card} */
  const card = { item, node, state: "open", label: null };
  const list = element("ol", "choices");
  const rest = /** @type {HTMLDetailsElement} */ (element("details", "rest"));
  rest.append(element("summary", undefined, "other classes"));
  const restList = element("ol", "choices");
  rest.append(restList);
  for (const choice of choices(item, state.classes)) {
    const button = /** @type {HTMLButtonElement} */ (element("button"));
    button.type = "button";
    button.dataset.label = choice.label;
    button.append(
      element("span", "key", choice.key ?? ""),
      element("span", "label", choice.label),
      element("span", "value", choice.probability === null ? "" : percent(choice.probability)),
    );
    button.addEventListener("click", () => {
      focusCard(index);
      void give(card, choice.label);
    });
    const entry = element("li");
    entry.append(button);
    (choice.probability !== null ? list : restList).append(entry);
  }
  const actions = element("div", "actions");
  const none = /** @type {HTMLButtonElement} */ (element("button", undefined, `n — ${state.noneOfThese}`));
  none.type = "button";
  none.dataset.label = state.noneOfThese;
  none.addEventListener("click", () => {
    focusCard(index);
    void give(card, state.noneOfThese);
  });
  const skip = /** @type {HTMLButtonElement} */ (element("button", undefined, "s — skip"));
  skip.type = "button";
  skip.addEventListener("click", () => skipCard(index));
  actions.append(none, skip);
  node.append(list, rest, actions, element("div", "verdict"));
  node.addEventListener("click", () => focusCard(index));
  return card;
}

/** @param {number} index */
function skipCard(index) {
  const card = state.cards[index];
  if (card && card.state === "open") {
    card.state = "skipped";
    renderVerdict(card);
  }
  focusCard(nextOpen(index));
  showProgress();
}

async function loadPage() {
  if (!api) return;
  say("loading the review queue…");
  state.pending += 1;
  try {
    const page = await api.queue({ limit: PAGE_SIZE, cursor: state.cursor });
    state.classes = page.classes;
    state.noneOfThese = page.noneOfThese;
    state.cursor = page.cursor;
    state.cards = [];
    grid.replaceChildren();
    page.items.forEach((item, index) => {
      const card = renderCard(item, index);
      state.cards.push(card);
      grid.append(card.node);
    });
    state.loaded = true;
    focusCard(0);
    say(page.items.length ? `head ${page.headVersion.slice(0, 8)} · ${page.classes.length} classes` : "nothing waits for review");
  } catch (error) {
    failed(error);
  } finally {
    state.pending -= 1;
    showProgress();
  }
}

/** @param {string} token */
async function start(token) {
  api = new ReviewApi({ baseUrl: apiUrl.value, token });
  state.signedIn = true;
  form.hidden = true;
  toolbar.hidden = false;
  await loadPage();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const email = /** @type {HTMLInputElement} */ ($("email")).value.trim();
  const password = /** @type {HTMLInputElement} */ ($("password")).value;
  say("signing in…");
  try {
    const clientId = params.get("client");
    if (!clientId) throw new ApiError("this page needs ?client=<ReviewerClientId> (a stack output) in its URL", 0, "no_client");
    const session = await signIn({ endpoint: endpoint(), clientId, email, password });
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify(session));
    /** @type {HTMLInputElement} */ ($("password")).value = "";
    await start(session.idToken);
  } catch (error) {
    say(error instanceof Error ? error.message : String(error), true);
  }
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});
undoButton.addEventListener("click", () => void undo());
moreButton.addEventListener("click", () => void loadPage());

document.addEventListener("keydown", (event) => {
  const target = /** @type {HTMLElement} */ (event.target);
  if (!state.signedIn || event.altKey || event.metaKey || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
  const card = state.cards[state.current];
  if ((event.key === "u" || (event.key === "z" && event.ctrlKey)) && !event.repeat) {
    event.preventDefault();
    void undo();
  } else if (event.ctrlKey || !card) {
    return;
  } else if (/^[1-9]$/.test(event.key)) {
    const choice = choices(card.item, state.classes).find((c) => c.key === event.key);
    if (choice) void give(card, choice.label);
  } else if (event.key === "n") {
    void give(card, state.noneOfThese);
  } else if (event.key === "s" || event.key === "ArrowRight") {
    if (event.key === "s") skipCard(state.current);
    else focusCard(state.current + 1);
  } else if (event.key === "ArrowLeft") {
    focusCard(state.current - 1);
  }
});

const token = savedToken();
if (token) void start(token);
else if (!params.get("client")) say("this page needs ?client=<ReviewerClientId>&region=<region> (the stack's outputs) in its URL", true);
