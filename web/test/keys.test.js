// @ts-check
// API keys per origin: what the page sends where, and what it asks before using another origin.
import assert from "node:assert/strict";
import { test } from "node:test";

import { apiOrigin, chooseApi, KeyStore } from "../src/keys.js";

function memory() {
  const map = new Map();
  return {
    map,
    getItem: (/** @type {string} */ k) => (map.has(k) ? map.get(k) : null),
    setItem: (/** @type {string} */ k, /** @type {string} */ v) => void map.set(k, v),
    removeItem: (/** @type {string} */ k) => void map.delete(k),
  };
}

test("a key is stored for its origin and never read for another", () => {
  const keys = new KeyStore(memory());
  keys.set("https://api.example", "k-1");
  assert.equal(keys.get("https://api.example"), "k-1");
  assert.equal(keys.get("https://evil.example"), "");
  assert.equal(keys.get("http://api.example"), "", "another scheme is another origin");
});

test("the key stored before keys were per origin is dropped, not sent anywhere", () => {
  const storage = memory();
  storage.setItem("clip-api-key", "old");
  new KeyStore(storage);
  assert.equal(storage.getItem("clip-api-key"), null);
});

test("a page uses its own origin's API without asking", () => {
  const keys = new KeyStore(memory());
  let asked = 0;
  const choice = chooseApi({ pageOrigin: "http://127.0.0.1:3000", requested: null, keys, ask: () => (asked++, true) });
  assert.deepEqual(choice, { baseUrl: "http://127.0.0.1:3000/api", origin: "http://127.0.0.1:3000", refused: null });
  assert.equal(asked, 0);
});

test("another origin in ?api= is used only when the person says yes, once per origin", () => {
  const keys = new KeyStore(memory());
  keys.set("http://127.0.0.1:3000", "local-key");
  /** @type {string[]} */
  const asked = [];
  const no = chooseApi({ pageOrigin: "http://127.0.0.1:3000", requested: "https://evil.example/api", keys, ask: (o) => (asked.push(o), false) });
  assert.deepEqual(no, { baseUrl: "http://127.0.0.1:3000/api", origin: "http://127.0.0.1:3000", refused: "https://evil.example" });
  const yes = chooseApi({ pageOrigin: "http://127.0.0.1:3000", requested: "https://api.example/api/", keys, ask: (o) => (asked.push(o), true) });
  assert.deepEqual(yes, { baseUrl: "https://api.example/api", origin: "https://api.example", refused: null });
  assert.equal(keys.get(yes.origin), "", "the local key is not carried over");
  chooseApi({ pageOrigin: "http://127.0.0.1:3000", requested: "https://api.example/api", keys, ask: (o) => (asked.push(o), true) });
  assert.deepEqual(asked, ["https://evil.example", "https://api.example"]);
});

test("?api= that is not an http(s) URL is refused", () => {
  const keys = new KeyStore(memory());
  for (const bad of ["javascript:alert(1)", "file:///etc/passwd", "http://"]) {
    const choice = chooseApi({ pageOrigin: "http://h", requested: bad, keys, ask: () => true });
    assert.equal(choice.baseUrl, "http://h/api");
    assert.equal(choice.refused, bad);
  }
  assert.equal(apiOrigin("/api", "http://h:1"), "http://h:1");
});
