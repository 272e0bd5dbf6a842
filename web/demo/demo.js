// @ts-check
/**
 * The demo page: drop or pick images; each is embedded in the page, scored through POST /v1/scores
 * (stored as "browser-<file name>") and read back with GET /v1/classifications/{id}.
 *
 * Settings come from the URL: ?api=<base URL, default this origin's /api>&model=<folder, default /model>,
 * and the API key from the fragment (#key=..., never sent to a server) or the key field. Keys are kept per
 * API origin and sent only to it; an ?api= on another origin is used only once the person approves it.
 * For tests, window.clipDemo holds every result; with ?debug=1 also each image's cropped 8-bit RGB.
 */

import { ApiError, ClassifierApi } from "../src/api.js";
import { Embedder, ModelLoadError, UnsupportedImageError } from "../src/embedder.js";
import { percent } from "../src/formats.js";
import { apiOrigin, chooseApi, KeyStore } from "../src/keys.js";

const params = new URLSearchParams(location.search);
const fragment = new URLSearchParams(location.hash.slice(1));
const modelFolder = (params.get("model") ?? "/model").replace(/\/+$/, "");
const debug = params.get("debug") === "1";

/** @type {HTMLInputElement} */ const apiUrl = /** @type {any} */ (document.getElementById("api-url"));
/** @type {HTMLInputElement} */ const apiKey = /** @type {any} */ (document.getElementById("api-key"));
const status = /** @type {HTMLElement} */ (document.getElementById("model-status"));
const results = /** @type {HTMLElement} */ (document.getElementById("results"));
const drop = /** @type {HTMLElement} */ (document.getElementById("drop"));
/** @type {HTMLInputElement} */ const picker = /** @type {any} */ (document.getElementById("files"));

const keys = new KeyStore(localStorage);
const chosen = chooseApi({
  pageOrigin: location.origin,
  requested: params.get("api"),
  keys,
  ask: (origin) =>
    window.confirm(
      `This link asks the page to send your images' features, and an API key, to ${origin}.\n\n` +
        `Use the API at ${origin}? (Cancel uses this site's own API.)`,
    ),
});
apiUrl.value = chosen.baseUrl;
apiKey.value = fragment.get("key") ?? keys.get(chosen.origin);
/** The origin the key field belongs to: a key typed for one API is never sent to another. */
let keyOrigin = chosen.origin;
apiKey.addEventListener("change", () => {
  keys.set(keyOrigin, apiKey.value);
  showHead();
});
apiUrl.addEventListener("change", () => {
  keyOrigin = apiOrigin(apiUrl.value, location.origin) ?? location.origin;
  apiKey.value = keys.get(keyOrigin);
  showHead();
});

/** What the page did, for people (the cards) and for tests (this object). */
const state = {
  ready: false,
  /** The ?api= origin the person declined (the page then uses its own). */
  refusedApi: chosen.refused,
  /** @type {string | null} */ modelError: null,
  /** @type {Record<string, unknown>} */ model: {},
  /** The head the API serves (GET /v1/model's head), once read. */
  /** @type {Record<string, any> | null} */ head: null,
  /** @type {Record<string, any>[]} */ results: [],
  pending: 0,
  /** Milliseconds from navigation start to the first embedding (model download and load included). */
  /** @type {number | null} */ firstEmbeddingMs: null,
};
Object.assign(window, { clipDemo: state });

/** @type {HTMLElement} */ const headStatus = /** @type {any} */ (document.getElementById("head-status"));

/** Name the head the API serves (its version and where it came from): text only, never HTML. */
async function showHead() {
  if (!apiKey.value || apiOrigin(apiUrl.value, location.origin) !== keyOrigin) return;
  try {
    const info = await new ClassifierApi({ baseUrl: apiUrl.value, apiKey: apiKey.value }).model();
    const head = info.head ?? {};
    state.head = head;
    const who = head.activatedBy ? `, activated by ${head.activatedBy} ${String(head.activatedAt ?? "").slice(0, 19)}` : "";
    headStatus.textContent =
      `head ${String(head.version ?? info.headVersion).slice(0, 12)} (${info.headType}, ${info.classes.length} classes): ` +
      `${head.source ?? "unknown source"}${who}`;
    headStatus.classList.toggle("error", head.meaningful === false);
  } catch (error) {
    headStatus.textContent = `the API did not describe its head: ${error instanceof ApiError ? error.message : error}`;
  }
}
showHead();

const threads = globalThis.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
const loadStart = performance.now();
/** @type {Promise<Embedder>} */
const embedderReady = Embedder.load({
  modelUrl: `${modelFolder}/model.onnx`,
  manifestUrl: `${modelFolder}/manifest.json`,
  wasmPaths: "/ort/",
  threads,
});
embedderReady.then(
  (embedder) => {
    const m = embedder.manifest;
    state.model = {
      modelId: m.model_id,
      sha256: m.model_sha256,
      bytes: embedder.modelBytes,
      quantization: m.quantization,
      threads,
      loadMs: performance.now() - loadStart,
    };
    state.ready = true;
    status.textContent =
      `${m.model_id} (${m.quantization}, ${(embedder.modelBytes / 1e6).toFixed(1)} MB, sha256 ${m.model_sha256.slice(0, 8)}…)` +
      ` ready in ${((performance.now() - loadStart) / 1000).toFixed(1)} s` +
      (m.random_init ? " — a randomly initialised model: its labels mean nothing" : "");
  },
  (error) => {
    state.modelError = String(error.message ?? error);
    status.textContent = error instanceof ModelLoadError ? error.message : `the model did not load: ${error}`;
    status.classList.add("error");
  },
);

/** @param {string} name */
function pictureIdFor(name) {
  return `browser-${name.replace(/[^A-Za-z0-9._~:@!$&'()*+,;=-]/g, "_")}`.slice(0, 200);
}

/** @param {string} tag @param {string} [className] @param {string} [text] */
function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** How many labels are shown before the rest is folded (the API's `top` has as many). */
const SHOWN = 3;

/** @param {any} result @param {string} label */
function bar(result, label) {
  const p = result.probabilities[label];
  const row = element("div", label === result.topLabel ? "bar best" : "bar");
  const track = element("div", "track");
  const fill = element("div", "fill");
  fill.style.width = `${Math.max(0, Math.min(1, p / Math.max(result.topProbability, 1e-9))) * 100}%`;
  track.append(fill);
  row.append(element("span", "label", label), track, element("span", "value", percent(p)));
  return row;
}

/** The top 3 first, most probable first; the other classes folded below, also most probable first. */
/** @param {HTMLElement} card @param {any} result */
function showScores(card, result) {
  card.append(element("div", "top", `${result.topLabel} — ${percent(result.topProbability)}`));
  if (result.ambiguous === true) {
    card.append(element("div", "ambiguous", "ambiguous: below the head's guard; see the top 3 rather than act on the top label"));
  }
  const ranked = [...result.classes].sort((a, b) => result.probabilities[b] - result.probabilities[a]);
  const top = element("div", "ranked");
  for (const label of ranked.slice(0, SHOWN)) top.append(bar(result, label));
  card.append(top);
  if (ranked.length > SHOWN) {
    const more = /** @type {HTMLDetailsElement} */ (element("details", "more"));
    more.append(element("summary", undefined, `the other ${ranked.length - SHOWN} classes`));
    for (const label of ranked.slice(SHOWN)) more.append(bar(result, label));
    card.append(more);
  }
}

/** The page-level progress line: how many images are done, of how many added. */
const progress = /** @type {HTMLElement} */ (document.getElementById("progress"));
function showProgress() {
  const done = state.results.length - state.pending;
  progress.textContent = state.pending ? `working: ${done} of ${state.results.length} done` : state.results.length ? `${done} of ${state.results.length} done` : "";
}

/** @param {File} file */
async function classify(file) {
  const card = element("article", "card");
  card.dataset.file = file.name;
  const head = element("header");
  const thumb = /** @type {HTMLImageElement} */ (element("img"));
  thumb.alt = "";
  thumb.src = URL.createObjectURL(file);
  thumb.onerror = () => thumb.remove();
  head.append(thumb, element("h2", undefined, file.name));
  card.append(head);
  results.prepend(card);
  /** @type {Record<string, any>} */
  const record = { name: file.name, status: "pending", steps: [] };
  state.results.push(record);
  state.pending += 1;
  showProgress();
  // What is happening to this image now, until its result replaces it: people see that work goes on.
  const step = element("div", "progress", "");
  step.setAttribute("role", "status");
  card.append(step);
  const say = (/** @type {string} */ text) => {
    step.textContent = text;
    record.steps.push(text);
  };
  try {
    say(state.ready ? "embedding in the page…" : "waiting for the model to load…");
    const embedder = await embedderReady;
    if (record.steps.length === 1 && !record.steps[0].startsWith("embedding")) say("embedding in the page…");
    const embedded = await embedder.embed(file);
    record.ms = embedded.ms;
    state.firstEmbeddingMs ??= performance.now();
    record.embedding = Array.from(embedded.embedding);
    if (debug) record.crop = Array.from(embedded.crop.data);
    card.append(
      element(
        "div",
        "timing",
        `${embedded.width}×${embedded.height}: decode ${embedded.ms.decode.toFixed(0)} ms, ` +
          `preprocess ${embedded.ms.preprocess.toFixed(0)} ms, embed ${embedded.ms.embed.toFixed(0)} ms`,
      ),
    );
    if (apiOrigin(apiUrl.value, location.origin) !== keyOrigin) throw new ApiError("the API URL is not an http(s) URL", 0, "bad_url");
    const api = new ClassifierApi({ baseUrl: apiUrl.value, apiKey: apiKey.value });
    const pictureId = pictureIdFor(file.name);
    say("scoring through the API…");
    const scored = await api.score(embedded.embedding, { pictureId });
    record.result = scored;
    showScores(card, scored);
    const stored = await api.classification(pictureId);
    record.stored = stored;
    card.append(
      element("div", "stored", `stored as ${stored.pictureId} (${stored.status}, head ${String(stored.headVersion).slice(0, 8)}…, ${stored.updatedAt})`),
    );
    record.status = "classified";
  } catch (error) {
    const message =
      error instanceof UnsupportedImageError || error instanceof ApiError || error instanceof ModelLoadError
        ? error.message
        : `unexpected error: ${error}`;
    record.status = "error";
    record.error = message;
    record.errorKind = error instanceof Error ? error.name : "Error";
    if (error instanceof ApiError) record.httpStatus = error.status;
    card.append(element("div", "error", message));
  } finally {
    step.remove();
    state.pending -= 1;
    showProgress();
  }
}

/** @param {FileList | File[]} files */
async function classifyAll(files) {
  for (const file of Array.from(files)) await classify(file);
}

picker.addEventListener("change", () => picker.files && classifyAll(picker.files));
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer?.files) classifyAll(event.dataTransfer.files);
});
