// @ts-check
// The browser's preprocessing against the Python pipeline (web/test/golden.json, made by
// tests/fixtures/make_web_golden.py): the exact transform bit for bit, Pillow's compositing, and the tiny
// model's embeddings through onnxruntime-web (WASM) in Node.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { compositeOnWhite, preprocessRgb, resizeSize } from "../src/preprocess.js";
import { pattern } from "./pattern.js";

const golden = JSON.parse(readFileSync(new URL("./golden.json", import.meta.url), "utf8"));

/** @param {Float32Array} tensor */
function sha256(tensor) {
  return createHash("sha256").update(new Uint8Array(tensor.buffer, tensor.byteOffset, tensor.byteLength)).digest("hex");
}

for (const entry of golden.tensors) {
  test(`exact transform of a ${entry.width}x${entry.height} image equals Python's bit for bit`, () => {
    const { tensor, dims } = preprocessRgb(pattern(entry.width, entry.height, 3, entry.seed), golden.transform);
    assert.deepEqual(dims, [1, 3, golden.transform.crop_height, golden.transform.crop_width]);
    assert.deepEqual(Array.from(tensor.slice(0, 6)), entry.first);
    assert.equal(sha256(tensor), entry.sha256);
  });
}

test("alpha is composited onto white as Pillow does", () => {
  const { width, height, seed, rgb } = golden.composite;
  const out = compositeOnWhite(pattern(width, height, 4, seed));
  const diffs = Array.from(out.data).map((v, i) => Math.abs(v - rgb[i]));
  assert.equal(Math.max(...diffs), 0, `${diffs.filter((d) => d > 0).length} of ${diffs.length} values differ`);
});

test("the resize size truncates the longer side as Hugging Face does", () => {
  assert.deepEqual(resizeSize(640, 480, 224), [298, 224]);
  assert.deepEqual(resizeSize(250, 333, 224), [224, 298]);
  assert.deepEqual(resizeSize(1, 1, 224), [224, 224]);
});

/**
 * Cosine similarity of a golden embedding and onnxruntime-web's output.
 * @param {number[]} expected
 * @param {Float32Array} got
 */
function cosine(expected, got) {
  let dot = 0, a = 0, b = 0;
  expected.forEach((v, i) => {
    dot += v * got[i];
    a += v * v;
    b += got[i] * got[i];
  });
  return dot / Math.sqrt(a * b);
}

// The int8 model is what is deployed; onnxruntime's int8 kernels differ by CPU (AVX2, AVX-512 VNNI, WASM),
// so it is held to a cosine. The fp32 graph is the same everywhere up to summation order: a tighter bound.
for (const [variant, field, floor] of [
  ["int8", "embedding", golden.tolerances.int8_min_cosine],
  ["fp32", "embedding_fp32", golden.tolerances.fp32_min_cosine],
]) {
  test(`onnxruntime-web embeds the exact tensors as onnxruntime does (${variant}, cosine >= ${floor})`, async () => {
    const ort = await import("onnxruntime-web");
    ort.env.wasm.numThreads = 1;
    const model = readFileSync(new URL(`../../weights/models/tiny/${variant}/model.onnx`, import.meta.url));
    const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"] });
    for (const entry of golden.tensors.filter((/** @type {any} */ e) => e[field])) {
      const { tensor, dims } = preprocessRgb(pattern(entry.width, entry.height, 3, entry.seed), golden.transform);
      const output = await session.run({ pixel_values: new ort.Tensor("float32", tensor, dims) });
      const similarity = cosine(entry[field], /** @type {Float32Array} */ (output.image_embeds.data));
      assert.ok(similarity >= floor, `cosine ${similarity}`);
    }
  });
}
