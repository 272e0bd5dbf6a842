// @ts-check
/**
 * A fetch that answers every request with one status and JSON body, and records what it was asked: the API
 * clients' tests (api.test.js, review-api.test.js) check what they send against it.
 * @param {number} status @param {unknown} body
 * @returns {{calls: {url: string, init: any}[], fetch: typeof fetch}}
 */
export function fake(status, body) {
  /** @type {{url: string, init: any}[]} */
  const calls = [];
  const fetcher = /** @type {typeof fetch} */ (
    async (url, init) => {
      calls.push({ url: String(url), init });
      return new Response(body === undefined ? null : JSON.stringify(body), { status });
    }
  );
  return { calls, fetch: fetcher };
}
