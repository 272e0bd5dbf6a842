// @ts-check
// File signatures: what a file is, by its bytes, whatever its name says.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { claimedExtension, sniffImage } from "../src/formats.js";

const FIXTURES = new URL("../../tests/fixtures/images/", import.meta.url);

test("every fixture image is recognised by its bytes", () => {
  const expected = {
    "landscape_rgb.jpg": "JPEG",
    "cmyk.jpg": "JPEG",
    "small_rgb.png": "PNG",
    "animated.gif": "GIF",
    "photo.webp": "WebP",
    "bitmap.bmp": "BMP",
    "scan.tiff": "TIFF",
    "iphone.heic": "HEIC/HEIF",
  };
  for (const [name, format] of Object.entries(expected)) {
    const head = new Uint8Array(readFileSync(new URL(name, FIXTURES))).subarray(0, 16);
    assert.equal(sniffImage(head), format, name);
  }
});

test("text, an empty file and a truncated signature are not images", () => {
  const text = new TextEncoder().encode("this is a text file, not a JPEG");
  assert.equal(sniffImage(text), null);
  assert.equal(sniffImage(new Uint8Array()), null);
  assert.equal(sniffImage(new Uint8Array([0xff, 0xd8])), null);
  assert.equal(claimedExtension("holiday.photo.JPG"), "jpg");
  assert.equal(claimedExtension("README"), "");
});
