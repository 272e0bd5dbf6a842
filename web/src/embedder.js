// @ts-check
/**
 * The project's CLIP image embedder in the page: the exported ONNX model and its manifest, run by
 * onnxruntime-web (WASM), on images the browser decodes.
 *
 *   const embedder = await Embedder.load({ modelUrl: "/model/model.onnx", manifestUrl: "/model/manifest.json",
 *                                          wasmPaths: "/ort/" });
 *   const { embedding, ms } = await embedder.embed(file);   // a File, Blob or ImageBitmap
 *
 * Decoding: the browser's own decoders, with the EXIF orientation applied and no colour-space conversion
 * (the Python pipeline ignores ICC profiles too); formats the browser cannot decode (HEIC, TIFF) are a
 * clear UnsupportedImageError. Preprocessing: ./preprocess.js, bit for bit the Python exact path.
 */

import { claimedExtension, sniffImage } from "./formats.js";
import { preprocessRgba } from "./preprocess.js";

/** @typedef {import("./preprocess.js").ImageTransform} ImageTransform */
/** @typedef {{format: string, model_id: string, revision: string, random_init: boolean, model_sha256: string,
 *   input_name: string, output_name: string, output_dim: number, quantization: string,
 *   transform: ImageTransform}} Manifest */

export class UnsupportedImageError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "UnsupportedImageError";
  }
}

export class ModelLoadError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "ModelLoadError";
  }
}

/** @param {string} url @param {string} what */
async function fetchOk(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new ModelLoadError(`cannot fetch the ${what} at ${url}: ${error}`);
  }
  if (!response.ok) throw new ModelLoadError(`the ${what} at ${url} answered ${response.status}`);
  return response;
}

/** @param {ArrayBuffer} bytes */
async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A File/Blob decoded by the browser (or an ImageBitmap as given) → RGBA pixels, orientation applied.
 * @param {Blob | ImageBitmap} source
 * @returns {Promise<{width: number, height: number, data: Uint8ClampedArray}>}
 */
export async function decodeImage(source) {
  let bitmap;
  if (source instanceof Blob) {
    try {
      bitmap = await createImageBitmap(source, {
        imageOrientation: "from-image",
        colorSpaceConversion: "none",
        premultiplyAlpha: "none",
      });
    } catch {
      const name = "name" in source ? String(source.name) : "";
      const format = sniffImage(new Uint8Array(await source.slice(0, 16).arrayBuffer()));
      if (format === null) {
        // Not an image at all, whatever its name or type says: say that, not "cannot decode a JPEG".
        const claimed = claimedExtension(name);
        throw new UnsupportedImageError(
          `${name || "this file"} is not an image: its bytes are not JPEG, PNG, WebP, GIF, BMP, TIFF or HEIC` +
            (claimed ? ` (only its name says .${claimed})` : ""),
        );
      }
      throw new UnsupportedImageError(
        `the browser cannot decode this ${format}${name ? ` (${name})` : ""}: use JPEG, PNG, WebP, GIF or BMP, ` +
          "or upload it to the bucket, where the server decodes HEIC and TIFF too",
      );
    }
  } else {
    bitmap = source;
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  if (!context) throw new UnsupportedImageError("no 2D canvas to read the pixels from");
  context.drawImage(bitmap, 0, 0);
  const image = context.getImageData(0, 0, bitmap.width, bitmap.height);
  if (source instanceof Blob) bitmap.close();
  return { width: image.width, height: image.height, data: image.data };
}

export class Embedder {
  /**
   * @param {import("onnxruntime-web").InferenceSession} session
   * @param {Manifest} manifest
   * @param {typeof import("onnxruntime-web")} ort
   * @param {number} bytes the model file's size (what the page downloaded)
   */
  constructor(session, manifest, ort, bytes) {
    this.session = session;
    this.manifest = manifest;
    this.ort = ort;
    this.modelBytes = bytes;
  }

  /**
   * Fetch the manifest and model, check the model's sha256 against the manifest (a mismatch refuses to
   * run, as the server does), and start an onnxruntime-web session.
   * @param {{modelUrl: string, manifestUrl: string, wasmPaths?: string, threads?: number,
   *   ort?: typeof import("onnxruntime-web")}} options
   */
  static async load({ modelUrl, manifestUrl, wasmPaths, threads = 1, ort }) {
    let runtime = ort;
    if (!runtime) {
      try {
        runtime = await import("onnxruntime-web");
      } catch (error) {
        throw new ModelLoadError(`onnxruntime-web did not load (run \`npm ci\` in web/): ${error}`);
      }
    }
    if (wasmPaths) runtime.env.wasm.wasmPaths = wasmPaths;
    runtime.env.wasm.numThreads = threads;
    const manifest = /** @type {Manifest} */ (await (await fetchOk(manifestUrl, "model manifest")).json());
    if (manifest.format !== "clip-image-embedder") {
      throw new ModelLoadError(`${manifestUrl} is not an image embedder manifest (format ${manifest.format})`);
    }
    const bytes = await (await fetchOk(modelUrl, "model")).arrayBuffer();
    const actual = await sha256Hex(bytes);
    if (actual !== manifest.model_sha256) {
      throw new ModelLoadError(`the model has sha256 ${actual} but its manifest declares ${manifest.model_sha256}`);
    }
    let session;
    try {
      session = await runtime.InferenceSession.create(new Uint8Array(bytes), { executionProviders: ["wasm"] });
    } catch (error) {
      throw new ModelLoadError(`onnxruntime-web cannot load the model: ${error}`);
    }
    return new Embedder(session, manifest, runtime, bytes.byteLength);
  }

  /**
   * Preprocessed pixels → the embedding (not normalised, as the server's; the API normalises).
   * @param {Float32Array} tensor @param {[number, number, number, number]} dims
   * @returns {Promise<Float32Array>}
   */
  async embedTensor(tensor, dims) {
    const { input_name: input, output_name: output } = this.manifest;
    const result = await this.session.run({ [input]: new this.ort.Tensor("float32", tensor, dims) });
    return /** @type {Float32Array} */ (result[output].data);
  }

  /**
   * An image → its embedding, with the time each step took.
   * @param {Blob | ImageBitmap} source
   */
  async embed(source) {
    const start = performance.now();
    const rgba = await decodeImage(source);
    const decoded = performance.now();
    const { tensor, dims, rgb } = preprocessRgba(rgba, this.manifest.transform);
    const preprocessed = performance.now();
    const embedding = await this.embedTensor(tensor, dims);
    const done = performance.now();
    return {
      embedding,
      tensor,
      /** The cropped 8-bit RGB the tensor was made from. */
      crop: rgb,
      width: rgba.width,
      height: rgba.height,
      ms: { decode: decoded - start, preprocess: preprocessed - decoded, embed: done - preprocessed, total: done - start },
    };
  }
}
