// @ts-check
/**
 * What a file's first bytes say it is, whatever its name: so that a text file named "photo.jpg" is reported
 * as not an image, not as a JPEG the browser could not decode. The same signatures as the server's
 * ``sniff_format`` (layers/shared/clip_classifier/image/preprocess.py).
 */

/** @typedef {"JPEG" | "PNG" | "GIF" | "WebP" | "BMP" | "TIFF" | "HEIC/HEIF"} ImageFormat */

/**
 * @param {Uint8Array} head the file's first 16 bytes (fewer if it is shorter)
 * @returns {ImageFormat | null}
 */
export function sniffImage(head) {
  const ascii = (/** @type {number} */ from, /** @type {number} */ to) =>
    String.fromCharCode(...head.subarray(from, to));
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "JPEG";
  if (ascii(0, 8) === "\x89PNG\r\n\x1a\n") return "PNG";
  if (ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a") return "GIF";
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "WebP";
  if (ascii(0, 2) === "BM") return "BMP";
  if (ascii(0, 4) === "II*\x00" || ascii(0, 4) === "MM\x00*") return "TIFF";
  if (ascii(4, 8) === "ftyp") return "HEIC/HEIF";
  return null;
}

/** The extension a file name claims ("jpg"), lower case, or "" */
export function claimedExtension(/** @type {string} */ name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
}

/** A probability as the pages show it everywhere: "8.8 %" (one decimal), "<0.1 %" for a tiny non-zero one. */
export function percent(/** @type {number} */ p) {
  return p > 0 && p < 0.0005 ? "<0.1 %" : `${(p * 100).toFixed(1)} %`;
}
