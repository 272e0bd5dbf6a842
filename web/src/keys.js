// @ts-check
/**
 * API keys, one per API origin: a key is stored for the origin it was entered for and sent only there.
 * A page opened with ``?api=`` naming another origin (a link anyone can craft) is only used once the person
 * approved that origin; the approval is remembered per origin.
 */

const KEY_PREFIX = "clip-api-key:";
const APPROVED_PREFIX = "clip-api-approved:";
/** Where the key was stored before keys were per origin (any origin): dropped, never sent anywhere. */
const LEGACY_KEY = "clip-api-key";

/**
 * The origin of an API base URL (``https://abc.execute-api.eu-west-1.amazonaws.com``), or null when the URL
 * is not an http(s) URL.
 * @param {string} url @param {string} [base]
 * @returns {string | null}
 */
export function apiOrigin(url, base) {
  try {
    const parsed = new URL(url, base);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.origin : null;
  } catch {
    return null;
  }
}

export class KeyStore {
  /** @param {Pick<Storage, "getItem" | "setItem" | "removeItem">} storage */
  constructor(storage) {
    this.storage = storage;
    storage.removeItem(LEGACY_KEY);
  }

  /** @param {string} origin @returns {string} the key stored for ``origin``, or "" */
  get(origin) {
    return this.storage.getItem(KEY_PREFIX + origin) ?? "";
  }

  /** @param {string} origin @param {string} key */
  set(origin, key) {
    if (key) this.storage.setItem(KEY_PREFIX + origin, key);
    else this.storage.removeItem(KEY_PREFIX + origin);
  }

  /** @param {string} origin */
  approved(origin) {
    return this.storage.getItem(APPROVED_PREFIX + origin) === "yes";
  }

  /** @param {string} origin */
  approve(origin) {
    this.storage.setItem(APPROVED_PREFIX + origin, "yes");
  }
}

/**
 * The API base URL a page should use: its own origin's ``/api`` unless ``requested`` (the ``?api=``
 * parameter) names a URL; a URL on another origin only if ``ask`` (shown the origin) says yes, or it was
 * approved before.
 * @param {{pageOrigin: string, requested: string | null, keys: KeyStore, ask: (origin: string) => boolean}} options
 * @returns {{baseUrl: string, origin: string, refused: string | null}}
 */
export function chooseApi({ pageOrigin, requested, keys, ask }) {
  const own = { baseUrl: `${pageOrigin}/api`, origin: pageOrigin, refused: null };
  if (!requested) return own;
  const origin = apiOrigin(requested, pageOrigin);
  if (origin === null) return { ...own, refused: requested };
  if (origin !== pageOrigin && !keys.approved(origin)) {
    if (!ask(origin)) return { ...own, refused: origin };
    keys.approve(origin);
  }
  return { baseUrl: new URL(requested, pageOrigin).href.replace(/\/+$/, ""), origin, refused: null };
}
