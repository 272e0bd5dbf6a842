// @ts-check
/**
 * The embedder's image transform, in the browser, bit for bit as the Python exact path computes it
 * (layers/shared/clip_classifier/image/preprocess.py, itself equal to Hugging Face's CLIPImageProcessor):
 *
 *   RGBA → alpha composited onto white → shorter side resized (Pillow 13's resampling, ported exactly:
 *   the same filter, coefficient rounding, 22-bit fixed point and order of the two passes) →
 *   centre crop (zero-padded where smaller) → x * rescale (float64, then float32) → (x - mean) / std.
 *
 * Pure functions over plain arrays, so Node runs the same code the page does (test/preprocess.test.js
 * checks it against tensors the Python pipeline produced).
 */

/** @typedef {{shortest_edge: number, crop_height: number, crop_width: number, resample: string,
 *   rescale_factor: number, image_mean: number[], image_std: number[]}} ImageTransform */
/** @typedef {{width: number, height: number, data: Uint8Array | Uint8ClampedArray}} Pixels RGBA or RGB */

/** Beyond this ratio of resized long side to crop, only the part that survives the crop is resampled. */
export const MAX_ASPECT = 16;
const PRECISION_BITS = 32 - 8 - 2;

/** @type {Record<string, {support: number, filter: (x: number) => number}>} */
const FILTERS = {
  bicubic: {
    support: 2.0,
    filter(x) {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
      if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
      return 0.0;
    },
  },
  bilinear: {
    support: 1.0,
    filter(x) {
      x = Math.abs(x);
      return x < 1.0 ? 1.0 - x : 0.0;
    },
  },
};

/**
 * Composite RGBA onto white and drop alpha (Pillow's alpha_composite over an opaque white canvas).
 * @param {Pixels} rgba
 * @returns {Pixels} RGB
 */
export function compositeOnWhite(rgba) {
  const { width, height, data } = rgba;
  const out = new Uint8Array(width * height * 3);
  for (let i = 0, j = 0; i < data.length; i += 4, j += 3) {
    const a = data[i + 3];
    if (a === 255) {
      out[j] = data[i];
      out[j + 1] = data[i + 1];
      out[j + 2] = data[i + 2];
    } else if (a === 0) {
      out[j] = out[j + 1] = out[j + 2] = 255;
    } else {
      // Pillow's integer formula over a white, opaque destination (7 extra bits, divisions rounded).
      const coef1 = Math.floor((a * 255 * 255 * 128) / (a * 255 + 255 * (255 - a)));
      const coef2 = 255 * 128 - coef1;
      for (let c = 0; c < 3; c++) {
        const tmp = data[i + c] * coef1 + 255 * coef2 + (0x80 << 7);
        out[j + c] = ((tmp + (tmp >>> 8)) >>> 8) >>> 7;
      }
    }
  }
  return { width, height, data: out };
}

/**
 * (width, height) after resizing the shorter side to ``shortestEdge``, the longer one truncated as HF does.
 * @param {number} width @param {number} height @param {number} shortestEdge
 * @returns {[number, number]}
 */
export function resizeSize(width, height, shortestEdge) {
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newLong = Math.trunc((shortestEdge * long) / short);
  return width <= height ? [shortestEdge, newLong] : [newLong, shortestEdge];
}

/**
 * Pillow's precompute_coeffs + normalize_coeffs_8bpc: per output pixel, the first input index, the count,
 * and int32 fixed-point weights.
 * @param {number} inSize @param {number} in0 @param {number} in1 @param {number} outSize
 * @param {{support: number, filter: (x: number) => number}} filterp
 */
function coefficients(inSize, in0, in1, outSize, filterp) {
  // Pillow keeps the box in C floats: round to float32 as it does.
  in0 = Math.fround(in0);
  in1 = Math.fround(in1);
  const scale = Math.fround(in1 - in0) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = filterp.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const weights = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const ss = 1.0 / filterscale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = filterp.filter((x + xmin - center + 0.5) * ss);
      weights[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0.0 ? weights[x] / ww : weights[x];
      kk[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

/** @param {number} value */
function clip8(value) {
  const v = value >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * One horizontal pass (Pillow's ImagingResampleHorizontal_8bpc) over ``rows`` rows from ``offset``.
 * @param {Pixels} src @param {number} outWidth @param {number} offset @param {number} rows
 * @param {{ksize: number, bounds: Int32Array, kk: Int32Array}} coeffs
 * @returns {Pixels}
 */
function horizontalPass(src, outWidth, offset, rows, coeffs) {
  const out = new Uint8Array(outWidth * rows * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < rows; yy++) {
    const row = (yy + offset) * src.width * 3;
    for (let xx = 0; xx < outWidth; xx++) {
      const xmin = coeffs.bounds[xx * 2];
      const xmax = coeffs.bounds[xx * 2 + 1];
      const k = xx * coeffs.ksize;
      let s0 = half, s1 = half, s2 = half;
      for (let x = 0; x < xmax; x++) {
        const w = coeffs.kk[k + x];
        const p = row + (x + xmin) * 3;
        s0 += src.data[p] * w;
        s1 += src.data[p + 1] * w;
        s2 += src.data[p + 2] * w;
      }
      const o = (yy * outWidth + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return { width: outWidth, height: rows, data: out };
}

/**
 * One vertical pass (Pillow's ImagingResampleVertical_8bpc) to ``outHeight`` rows.
 * @param {Pixels} src @param {number} outHeight
 * @param {{ksize: number, bounds: Int32Array, kk: Int32Array}} coeffs
 * @returns {Pixels}
 */
function verticalPass(src, outHeight, coeffs) {
  const out = new Uint8Array(src.width * outHeight * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = coeffs.bounds[yy * 2];
    const ymax = coeffs.bounds[yy * 2 + 1];
    const k = yy * coeffs.ksize;
    for (let xx = 0; xx < src.width; xx++) {
      let s0 = half, s1 = half, s2 = half;
      for (let y = 0; y < ymax; y++) {
        const w = coeffs.kk[k + y];
        const p = ((y + ymin) * src.width + xx) * 3;
        s0 += src.data[p] * w;
        s1 += src.data[p + 1] * w;
        s2 += src.data[p + 2] * w;
      }
      const o = (yy * src.width + xx) * 3;
      out[o] = clip8(s0);
      out[o + 1] = clip8(s1);
      out[o + 2] = clip8(s2);
    }
  }
  return { width: src.width, height: outHeight, data: out };
}

/**
 * Pillow 13's Image.resize of an 8-bit RGB image (ImagingResampleInner; the upload image's lock pins
 * Pillow 13.0.0), optionally of a source ``box``. The order of the two passes matters to the last bit:
 * vertical first when the height shrinks by more than twice what the width does, else horizontal first,
 * over only the rows the vertical pass reads.
 * @param {Pixels} rgb @param {number} outWidth @param {number} outHeight @param {string} resample
 * @param {[number, number, number, number]} [box]
 * @returns {Pixels}
 */
export function resize(rgb, outWidth, outHeight, resample, box) {
  const filterp = FILTERS[resample];
  if (!filterp) throw new Error(`resampling ${resample} is not implemented`);
  const { width, height } = rgb;
  const [x0, y0, x1, y1] = box ?? [0, 0, width, height];
  const needHorizontal = outWidth !== width || x0 !== 0 || x1 !== outWidth;
  const needVertical = outHeight !== height || y0 !== 0 || y1 !== outHeight;
  const horizontalFirst = !(height - outHeight > 0 && height - outHeight > (width - outWidth) * 2);
  const vert = needVertical || (needHorizontal && horizontalFirst) ? coefficients(height, y0, y1, outHeight, filterp) : null;
  const horiz = needHorizontal ? coefficients(width, x0, x1, outWidth, filterp) : null;
  let src = rgb;
  if (horizontalFirst) {
    if (horiz && vert) {
      const first = vert.bounds[0];
      const last = vert.bounds[outHeight * 2 - 2] + vert.bounds[outHeight * 2 - 1];
      for (let i = 0; i < outHeight; i++) vert.bounds[i * 2] -= first;
      src = horizontalPass(src, outWidth, first, last - first, horiz);
    }
    if (needVertical && vert) src = verticalPass(src, outHeight, vert);
  } else {
    if (needVertical && vert) src = verticalPass(src, outHeight, vert);
    if (horiz) src = horizontalPass(src, outWidth, 0, src.height, horiz);
  }
  return src === rgb ? { width, height, data: Uint8Array.from(rgb.data) } : src;
}

/**
 * Centre crop of an RGB image; zero-padded (centred) where it is smaller, exactly as HF does.
 * @param {Pixels} rgb @param {number} cropHeight @param {number} cropWidth
 * @returns {Pixels}
 */
export function centerCrop(rgb, cropHeight, cropWidth) {
  const { width, height, data } = rgb;
  // Python's floor division, for the negative offsets of a smaller image.
  let top = Math.floor((height - cropHeight) / 2);
  let left = Math.floor((width - cropWidth) / 2);
  let padTop = 0, padLeft = 0;
  if (top < 0 || left < 0) {
    const newH = Math.max(cropHeight, height), newW = Math.max(cropWidth, width);
    padTop = Math.ceil((newH - height) / 2);
    padLeft = Math.ceil((newW - width) / 2);
    top += padTop;
    left += padLeft;
  }
  const out = new Uint8Array(cropWidth * cropHeight * 3);
  for (let y = 0; y < cropHeight; y++) {
    const sy = top + y - padTop;
    if (sy < 0 || sy >= height) continue;
    for (let x = 0; x < cropWidth; x++) {
      const sx = left + x - padLeft;
      if (sx < 0 || sx >= width) continue;
      const s = (sy * width + sx) * 3, o = (y * cropWidth + x) * 3;
      out[o] = data[s];
      out[o + 1] = data[s + 1];
      out[o + 2] = data[s + 2];
    }
  }
  return { width: cropWidth, height: cropHeight, data: out };
}

/**
 * [channel][value] lookup: (float32(value * rescale) - mean) / std in float32, as numpy computes it.
 * @param {ImageTransform} transform
 */
function normalizationTable(transform) {
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(transform.image_mean[c]);
    const std = Math.fround(transform.image_std[c]);
    for (let v = 0; v < 256; v++) {
      const scaled = Math.fround(v * transform.rescale_factor);
      table[c * 256 + v] = Math.fround(Math.fround(scaled - mean) / std);
    }
  }
  return table;
}

/**
 * RGBA (as a canvas gives it, EXIF orientation already applied) → the model's [1, 3, H, W] input.
 * @param {Pixels} rgba @param {ImageTransform} transform
 * @returns {{tensor: Float32Array, dims: [number, number, number, number], rgb: Pixels}}
 */
export function preprocessRgba(rgba, transform) {
  return preprocessRgb(compositeOnWhite(rgba), transform);
}

/**
 * RGB → the model's [1, 3, H, W] input (the exact path of the Python pipeline).
 * @param {Pixels} rgb @param {ImageTransform} transform
 * @returns {{tensor: Float32Array, dims: [number, number, number, number], rgb: Pixels}}
 */
export function preprocessRgb(rgb, transform) {
  const t = transform;
  const [width, height] = resizeSize(rgb.width, rgb.height, t.shortest_edge);
  let resized;
  if (Math.max(width, height) <= MAX_ASPECT * Math.max(t.crop_width, t.crop_height)) {
    resized = resize(rgb, width, height, t.resample);
  } else {
    // Extreme aspect ratio: resample only the source box that maps onto the centre crop (as Python does).
    const outW = Math.min(width, t.crop_width), outH = Math.min(height, t.crop_height);
    const left = Math.floor((width - outW) / 2), top = Math.floor((height - outH) / 2);
    const sx = rgb.width / width, sy = rgb.height / height;
    resized = resize(rgb, outW, outH, t.resample, [left * sx, top * sy, (left + outW) * sx, (top + outH) * sy]);
  }
  const cropped = centerCrop(resized, t.crop_height, t.crop_width);
  const table = normalizationTable(t);
  const plane = t.crop_height * t.crop_width;
  const tensor = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) tensor[c * plane + i] = table[c * 256 + cropped.data[i * 3 + c]];
  }
  return { tensor, dims: [1, 3, t.crop_height, t.crop_width], rgb: cropped };
}
