// @ts-check
// The API client against a fake fetch: what it sends, and how each kind of failure reaches the caller.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, ClassifierApi } from "../src/api.js";
import { fake } from "./fake-fetch.js";

test("a score request carries the key, JSON and the features as numbers", async () => {
  const { calls, fetch } = fake(200, { topLabel: "pet", classes: ["pet"], probabilities: { pet: 1 }, stored: true });
  const api = new ClassifierApi({ baseUrl: "https://api.example/api/", apiKey: "k-1", fetch });
  const result = await api.score(new Float32Array([0.5, -0.25]), { pictureId: "IMG 1" });
  assert.equal(result.topLabel, "pet");
  assert.equal(calls[0].url, "https://api.example/api/v1/scores");
  assert.equal(calls[0].init.method, "POST");
  assert.deepEqual(calls[0].init.headers, { "x-api-key": "k-1", "content-type": "application/json" });
  assert.deepEqual(JSON.parse(calls[0].init.body), { features: [0.5, -0.25], pictureId: "IMG 1" });
});

test("ids are percent-encoded as encodeURIComponent does, and the embedding is asked for explicitly", async () => {
  const { calls, fetch } = fake(200, { pictureId: "a/b c", status: "classified" });
  const api = new ClassifierApi({ baseUrl: "http://127.0.0.1:3000/api", apiKey: "k", fetch });
  await api.classification("a:b@c+d");
  await api.classification("x", { includeEmbedding: true });
  assert.equal(calls[0].url, "http://127.0.0.1:3000/api/v1/classifications/a%3Ab%40c%2Bd");
  assert.equal(calls[1].url, "http://127.0.0.1:3000/api/v1/classifications/x?include=embedding");
  assert.equal(calls[0].init.headers["content-type"], undefined);
});

test("the API's own error, with its code and field, reaches the caller", async () => {
  const body = { code: "invalid_features", message: "features must have 512 numbers, got 2", errors: [{ field: "features", message: "x" }] };
  const api = new ClassifierApi({ baseUrl: "http://h/api", apiKey: "k", fetch: fake(422, body).fetch });
  await assert.rejects(api.score([1, 2]), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.message, "features must have 512 numbers, got 2");
    assert.equal(error.status, 422);
    assert.equal(error.code, "invalid_features");
    assert.equal(error.field, "features");
    return true;
  });
});

test("API Gateway's answer to a wrong key says to check the key", async () => {
  const api = new ClassifierApi({ baseUrl: "http://h/api", apiKey: "wrong", fetch: fake(403, { message: "Forbidden" }).fetch });
  await assert.rejects(api.model(), { name: "ApiError", message: "Forbidden: check the API key", status: 403, code: "forbidden" });
  const shaped = { code: "invalid_api_key", message: "the x-api-key header is missing or is not a key of this API", errors: [] };
  const deployed = new ClassifierApi({ baseUrl: "http://h/api", apiKey: "wrong", fetch: fake(403, shaped).fetch });
  await assert.rejects(deployed.model(), { name: "ApiError", message: shaped.message, status: 403, code: "invalid_api_key" });
});

test("an unreachable API (network, or CORS refusing the origin) is one clear error", async () => {
  const fetcher = /** @type {typeof fetch} */ (
    async () => {
      throw new TypeError("Failed to fetch");
    }
  );
  const api = new ClassifierApi({ baseUrl: "http://down/api", apiKey: "k", fetch: fetcher });
  await assert.rejects(api.score([1]), (error) => {
    assert.ok(error instanceof ApiError && error.status === 0 && error.code === "unreachable");
    assert.match(error.message, /cannot be reached \(network, or an origin it does not allow\)/);
    return true;
  });
});

test("a non-JSON error body still gives the status", async () => {
  const fetcher = /** @type {typeof fetch} */ (async () => new Response("<html>bad gateway</html>", { status: 502 }));
  const api = new ClassifierApi({ baseUrl: "http://h/api", apiKey: "k", fetch: fetcher });
  await assert.rejects(api.model(), { message: "HTTP 502", status: 502, code: "http_502" });
});

test("a 2xx that is not the documented JSON is an ApiError, never a null or a wrong-shaped result", async () => {
  /** @type {[number, unknown, (api: ClassifierApi) => Promise<unknown>][]} */
  const cases = [
    [200, undefined, (api) => api.score([1])],
    [200, "not an object", (api) => api.score([1])],
    [200, { topLabel: "pet" }, (api) => api.score([1])],
    [200, { topLabel: "pet", classes: ["pet"], probabilities: { pet: "0.9" } }, (api) => api.score([1])],
    [204, undefined, (api) => api.model()],
    [200, { items: [] }, (api) => api.scoreBatch([{ features: [1] }])],
    [200, [], (api) => api.classification("x")],
  ];
  for (const [status, body, call] of cases) {
    const api = new ClassifierApi({ baseUrl: "http://h/api", apiKey: "k", fetch: fake(status, body).fetch });
    await assert.rejects(call(api), (error) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.code, "invalid_response");
      assert.match(error.message, /^the API answered 20\d with something that is not a/);
      return true;
    });
  }
  const good = { topLabel: "pet", classes: ["pet", "cat"], probabilities: { pet: 0.9, cat: 0.1 } };
  const api = new ClassifierApi({ baseUrl: "http://h/api", apiKey: "k", fetch: fake(200, good).fetch });
  assert.deepEqual(await api.score([1]), good);
});
