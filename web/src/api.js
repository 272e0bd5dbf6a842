// @ts-check
/**
 * A client of the scoring API (infra/openapi.json): POST /v1/scores, GET /v1/classifications/{id},
 * GET /v1/model. Every request carries the API key; every failure is an ApiError with the API's own
 * message (or API Gateway's, for a missing key or throttling), its HTTP status and, for a field error, the
 * field.
 */

export class ApiError extends Error {
  /**
   * @param {string} message @param {number} status @param {string} code
   * @param {{field?: string, message: string}[]} [errors]
   */
  constructor(message, status, code, errors = []) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.errors = errors;
    this.field = errors[0]?.field;
  }
}

/** @typedef {{label: string, probability: number}} RankedLabel */
/** @typedef {{classes: string[], probabilities: Record<string, number>, scores: Record<string, number>,
 *   topLabel: string, topProbability: number, top: RankedLabel[], ambiguous: boolean | null,
 *   headVersion: string, pictureId?: string | null, stored: boolean}} ScoreResult */

/** @type {[string, (payload: any) => boolean]} */
const SCORE_RESULT = [
  "a score result",
  (p) =>
    p !== null &&
    typeof p === "object" &&
    typeof p.topLabel === "string" &&
    Array.isArray(p.classes) &&
    p.probabilities !== null &&
    typeof p.probabilities === "object" &&
    p.classes.every((/** @type {unknown} */ c) => typeof c === "string" && typeof p.probabilities[c] === "number"),
];

export class ClassifierApi {
  /**
   * @param {{baseUrl: string, apiKey: string, fetch?: typeof fetch}} options ``baseUrl`` ends before
   *   ``/v1`` (e.g. ``https://abc.execute-api.eu-west-1.amazonaws.com/api``).
   */
  constructor({ baseUrl, apiKey, fetch: fetcher }) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.fetch = fetcher ?? globalThis.fetch.bind(globalThis);
  }

  /**
   * @param {string} method @param {string} path @param {unknown} [body]
   * @param {[string, (payload: any) => boolean]} [expected] what a 2xx body must be (described, checked)
   * @returns {Promise<any>}
   */
  async request(method, path, body, expected) {
    const url = `${this.baseUrl}${path}`;
    /** @type {Record<string, string>} */
    const headers = { "x-api-key": this.apiKey };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await this.fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new ApiError(`the API at ${this.baseUrl} cannot be reached (network, or an origin it does not allow): ${error}`, 0, "unreachable");
    }
    const text = await response.text();
    let payload;
    try {
      payload = text ? JSON.parse(text) : null;
    } catch {
      payload = null;
    }
    if (!response.ok) {
      const message = payload?.message ?? `HTTP ${response.status}`;
      const code = payload?.code ?? (response.status === 403 ? "forbidden" : `http_${response.status}`);
      const shown = response.status === 403 && !payload?.code ? `${message}: check the API key` : message;
      throw new ApiError(shown, response.status, code, payload?.errors ?? []);
    }
    if (expected && !(payload !== null && typeof payload === "object" && expected[1](payload))) {
      const seen = text ? `${text.slice(0, 60)}${text.length > 60 ? "…" : ""}` : "an empty body";
      throw new ApiError(
        `the API answered ${response.status} with something that is not ${expected[0]}: ${seen}`,
        response.status,
        "invalid_response",
      );
    }
    return payload;
  }

  /**
   * Score one feature vector (stored under ``pictureId`` when given).
   * @param {ArrayLike<number>} features @param {{pictureId?: string}} [options]
   * @returns {Promise<ScoreResult>}
   */
  score(features, { pictureId } = {}) {
    const body = { features: Array.from(features), ...(pictureId ? { pictureId } : {}) };
    return this.request("POST", "/v1/scores", body, SCORE_RESULT);
  }

  /**
   * Score a batch (at most the API's maxBatchItems), all or nothing.
   * @param {{features: ArrayLike<number>, pictureId?: string}[]} items
   * @returns {Promise<{items: ScoreResult[]}>}
   */
  scoreBatch(items) {
    return this.request(
      "POST",
      "/v1/scores",
      { items: items.map((item) => ({ features: Array.from(item.features), ...(item.pictureId ? { pictureId: item.pictureId } : {}) })) },
      ["a batch of score results", (p) => Array.isArray(p.items) && p.items.length === items.length && p.items.every(SCORE_RESULT[1])],
    );
  }

  /**
   * The stored result of ``pictureId`` (an upload's or an API result), with its embedding if asked.
   * @param {string} pictureId @param {{includeEmbedding?: boolean}} [options]
   */
  classification(pictureId, { includeEmbedding = false } = {}) {
    const query = includeEmbedding ? "?include=embedding" : "";
    return this.request("GET", `/v1/classifications/${encodeURIComponent(pictureId)}${query}`, undefined, [
      "a stored classification",
      (p) => typeof p.pictureId === "string" && typeof p.status === "string",
    ]);
  }

  /** The head and the embedder it expects (model id, sha256, transform). */
  model() {
    return this.request("GET", "/v1/model", undefined, [
      "a model description",
      (p) => Array.isArray(p.classes) && typeof p.inputDim === "number",
    ]);
  }
}
