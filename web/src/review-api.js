// @ts-check
/**
 * The reviewers' side of the API: sign in with the stack's Cognito user pool (InitiateAuth,
 * USER_PASSWORD_AUTH, straight to Cognito: the API never sees a password), then read the review queue and
 * give or withdraw labels with the ID token. The scoring API key is never sent here: these routes do not
 * take it, and a page that only scores has no token.
 */
import { ApiError } from "./api.js";

/** @typedef {{label: string, probability: number}} RankedLabel */
/** @typedef {{pictureId: string, top: RankedLabel[], margin: number | null, ambiguous: boolean | null,
 *   headVersion: string | null, createdAt: string | null, source: "api" | "s3", key: string | null,
 *   imageUrl: string | null}} ReviewItem */
/** @typedef {{items: ReviewItem[], cursor: string | null, classes: string[], headVersion: string,
 *   noneOfThese: string}} ReviewPage */
/** @typedef {{pictureId: string, personLabel: string | null, labeledAt: string | null,
 *   topLabel: string | null, finalLabel: string | null, queued: boolean}} LabelResult */

/** The Cognito endpoint of a region (the local stack's page is told moto's instead). @param {string} region */
export function cognitoEndpoint(region) {
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) throw new ApiError(`"${region}" is not an AWS region`, 0, "bad_region");
  return `https://cognito-idp.${region}.amazonaws.com/`;
}

/**
 * Sign in as a reviewer; the ID token and when it expires (ms since the epoch).
 * @param {{endpoint: string, clientId: string, email: string, password: string, fetch?: typeof fetch,
 *   now?: () => number}} options
 * @returns {Promise<{idToken: string, expiresAt: number}>}
 */
export async function signIn({ endpoint, clientId, email, password, fetch: fetcher, now = Date.now }) {
  const send = fetcher ?? globalThis.fetch.bind(globalThis);
  if (!email || !password) throw new ApiError("enter your e-mail address and password", 0, "missing_credentials");
  let response;
  try {
    response = await send(endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": "AWSCognitoIdentityProviderService.InitiateAuth",
      },
      body: JSON.stringify({ AuthFlow: "USER_PASSWORD_AUTH", ClientId: clientId, AuthParameters: { USERNAME: email, PASSWORD: password } }),
    });
  } catch (error) {
    throw new ApiError(`the sign-in service at ${endpoint} cannot be reached: ${error}`, 0, "unreachable");
  }
  /** @type {any} */
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const kind = String(payload?.__type ?? "").split("#").pop() ?? "";
    const message =
      kind === "NotAuthorizedException" || kind === "UserNotFoundException"
        ? "wrong e-mail address or password"
        : `sign-in refused: ${payload?.message ?? `HTTP ${response.status}`}`;
    throw new ApiError(message, response.status, kind || `http_${response.status}`);
  }
  if (payload?.ChallengeName) {
    throw new ApiError(
      `this account must first answer Cognito's ${payload.ChallengeName} challenge (e.g. set a permanent password); ask the administrator`,
      200,
      "challenge",
    );
  }
  const result = payload?.AuthenticationResult;
  if (typeof result?.IdToken !== "string") throw new ApiError("the sign-in service answered without a token", 200, "invalid_response");
  return { idToken: result.IdToken, expiresAt: now() + Number(result.ExpiresIn ?? 3600) * 1000 };
}

export class ReviewApi {
  /**
   * @param {{baseUrl: string, token: string, fetch?: typeof fetch}} options ``baseUrl`` ends before ``/v1``.
   */
  constructor({ baseUrl, token, fetch: fetcher }) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.token = token;
    this.fetch = fetcher ?? globalThis.fetch.bind(globalThis);
  }

  /** @param {string} method @param {string} path @param {unknown} [body] @returns {Promise<any>} */
  async request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { authorization: this.token };
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await this.fetch(`${this.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new ApiError(`the API at ${this.baseUrl} cannot be reached (network, or an origin it does not allow): ${error}`, 0, "unreachable");
    }
    const text = await response.text();
    let payload = null;
    try {
      payload = text ? JSON.parse(text) : null;
    } catch {
      payload = null;
    }
    if (response.status === 401) throw new ApiError("your sign-in has expired or is not valid: sign in again", 401, "unauthorized");
    if (!response.ok) {
      throw new ApiError(payload?.message ?? `HTTP ${response.status}`, response.status, payload?.code ?? `http_${response.status}`, payload?.errors ?? []);
    }
    if (payload === null || typeof payload !== "object") throw new ApiError(`the API answered ${response.status} without a JSON object`, response.status, "invalid_response");
    return payload;
  }

  /** @param {{limit?: number, cursor?: string | null}} [options] @returns {Promise<ReviewPage>} */
  async queue({ limit = 20, cursor = null } = {}) {
    const query = new URLSearchParams({ limit: String(limit), ...(cursor ? { cursor } : {}) });
    const page = await this.request("GET", `/v1/review?${query}`);
    if (!Array.isArray(page.items) || !Array.isArray(page.classes)) throw new ApiError("the API answered with something that is not a review page", 200, "invalid_response");
    return page;
  }

  /** @param {string} pictureId @param {string} label @returns {Promise<LabelResult>} */
  label(pictureId, label) {
    return this.request("PUT", `/v1/classifications/${encodeURIComponent(pictureId)}/label`, { label });
  }

  /** @param {string} pictureId @returns {Promise<LabelResult>} */
  unlabel(pictureId) {
    return this.request("DELETE", `/v1/classifications/${encodeURIComponent(pictureId)}/label`);
  }
}

/**
 * The choices a card offers, in key order: the head's top 3 for the image first (keys 1–3), then the other
 * classes in the head's order (keys 4–9, then unnumbered). "none of these" is always key n.
 * @param {ReviewItem} item @param {string[]} classes
 * @returns {{label: string, key: string | null, probability: number | null}[]}
 */
export function choices(item, classes) {
  const top = item.top.slice(0, 3).filter((t) => classes.includes(t.label));
  const rest = classes.filter((c) => !top.some((t) => t.label === c));
  return [...top.map((t) => ({ label: t.label, probability: t.probability })), ...rest.map((label) => ({ label, probability: null }))].map(
    (choice, index) => ({ ...choice, key: index < 9 ? String(index + 1) : null }),
  );
}
