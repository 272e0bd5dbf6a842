// @ts-check
// The reviewers' client against a fake fetch: sign-in with Cognito, the token on every request (never an
// API key), the choices a card offers, and how each failure reaches the page.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError } from "../src/api.js";
import { percent } from "../src/formats.js";
import { ReviewApi, choices, cognitoEndpoint, signIn } from "../src/review-api.js";
import { fake } from "./fake-fetch.js";

test("sign-in asks Cognito for USER_PASSWORD_AUTH with the app client and returns the ID token", async () => {
  const { calls, fetch } = fake(200, { AuthenticationResult: { IdToken: "id.tok.en", AccessToken: "a", ExpiresIn: 3600 } });
  const session = await signIn({ endpoint: "https://cognito-idp.eu-west-1.amazonaws.com/", clientId: "c1", email: "r@x.org", password: "pw", fetch, now: () => 1000 });
  assert.deepEqual(session, { idToken: "id.tok.en", expiresAt: 1000 + 3600 * 1000 });
  assert.equal(calls[0].init.headers["x-amz-target"], "AWSCognitoIdentityProviderService.InitiateAuth");
  assert.equal(calls[0].init.headers["content-type"], "application/x-amz-json-1.1");
  assert.deepEqual(JSON.parse(calls[0].init.body), { AuthFlow: "USER_PASSWORD_AUTH", ClientId: "c1", AuthParameters: { USERNAME: "r@x.org", PASSWORD: "pw" } });
});

test("a wrong password, a challenge and an empty form are clear errors", async () => {
  const wrong = fake(400, { __type: "NotAuthorizedException", message: "Incorrect username or password." });
  await assert.rejects(signIn({ endpoint: "e", clientId: "c", email: "a@b", password: "x", fetch: wrong.fetch }), { message: "wrong e-mail address or password", status: 400 });
  const challenge = fake(200, { ChallengeName: "NEW_PASSWORD_REQUIRED", Session: "s" });
  await assert.rejects(signIn({ endpoint: "e", clientId: "c", email: "a@b", password: "x", fetch: challenge.fetch }), /NEW_PASSWORD_REQUIRED challenge/);
  const none = fake(200, {});
  await assert.rejects(signIn({ endpoint: "e", clientId: "c", email: "", password: "", fetch: none.fetch }), { code: "missing_credentials" });
  assert.equal(none.calls.length, 0);
});

test("the Cognito endpoint is built only from a region name", () => {
  assert.equal(cognitoEndpoint("eu-west-1"), "https://cognito-idp.eu-west-1.amazonaws.com/");
  assert.throws(() => cognitoEndpoint("evil.example/x"), { code: "bad_region" });
  assert.throws(() => cognitoEndpoint(""), ApiError);
});

test("every review request carries the token, never an API key, and ids are percent-encoded", async () => {
  const { calls, fetch } = fake(200, { items: [], classes: ["pet"], cursor: null, headVersion: "h", noneOfThese: "none of these" });
  const api = new ReviewApi({ baseUrl: "http://127.0.0.1:3000/api/", token: "id.tok.en", fetch });
  await api.queue({ limit: 5, cursor: "abc" });
  await api.label("a/b c", "pet");
  await api.unlabel("a/b c");
  assert.equal(calls[0].url, "http://127.0.0.1:3000/api/v1/review?limit=5&cursor=abc");
  assert.equal(calls[1].url, "http://127.0.0.1:3000/api/v1/classifications/a%2Fb%20c/label");
  assert.deepEqual([calls[1].init.method, JSON.parse(calls[1].init.body)], ["PUT", { label: "pet" }]);
  assert.equal(calls[2].init.method, "DELETE");
  for (const call of calls) {
    assert.equal(call.init.headers.authorization, "id.tok.en");
    assert.ok(!("x-api-key" in call.init.headers));
  }
});

test("a 401 says sign in again; a 422 keeps the API's message and field", async () => {
  const expired = fake(401, { code: "unauthorized", message: "sign in" });
  await assert.rejects(new ReviewApi({ baseUrl: "b", token: "t", fetch: expired.fetch }).queue(), { status: 401, code: "unauthorized", message: /sign in again/ });
  const refused = fake(422, { code: "label_invalid", message: 'label "zebra" is not one of', errors: [{ field: "label", message: "m" }] });
  await assert.rejects(new ReviewApi({ baseUrl: "b", token: "t", fetch: refused.fetch }).label("p", "zebra"), { status: 422, field: "label", message: /zebra/ });
  const notPage = fake(200, { hello: 1 });
  await assert.rejects(new ReviewApi({ baseUrl: "b", token: "t", fetch: notPage.fetch }).queue(), { code: "invalid_response" });
});

test("a card offers its top 3 first (keys 1-3), then the other classes in the head's order", () => {
  const classes = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];
  const item = /** @type {any} */ ({ top: [{ label: "e", probability: 0.4 }, { label: "b", probability: 0.35 }, { label: "k", probability: 0.1 }] });
  const offered = choices(item, classes);
  assert.deepEqual(offered.map((c) => c.label), ["e", "b", "k", "a", "c", "d", "f", "g", "h", "i", "j", "l"]);
  assert.deepEqual(offered.map((c) => c.key), ["1", "2", "3", "4", "5", "6", "7", "8", "9", null, null, null]);
  assert.deepEqual(offered.slice(0, 4).map((c) => c.probability), [0.4, 0.35, 0.1, null]);
  // A top label the active head no longer has (an older head's result) is not offered.
  const older = choices(/** @type {any} */ ({ top: [{ label: "zz", probability: 0.9 }] }), ["a", "b"]);
  assert.deepEqual(older.map((c) => c.label), ["a", "b"]);
});

test("one percent format for every page", () => {
  assert.equal(percent(0.0876), "8.8 %");
  assert.equal(percent(0.0001), "<0.1 %");
  assert.equal(percent(0), "0.0 %");
});
