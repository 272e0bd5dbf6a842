// @ts-check
/**
 * Synthetic images both languages generate from one integer formula (tests/fixtures/make_web_golden.py has
 * the Python twin): gradients plus hashed noise, so resampling sees edges and texture, without committing
 * pixels.
 * @param {number} width @param {number} height @param {number} channels @param {number} seed
 */
export function pattern(width, height, channels, seed) {
  const data = new Uint8Array(width * height * channels);
  const s = Math.imul(seed, 2654435761);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) {
        const noise = (Math.imul(x, 73856093) ^ Math.imul(y, 19349663) ^ Math.imul(c + 1, 83492791) ^ s) >>> 0;
        data[(y * width + x) * channels + c] = (((x * 7 + y * 3 + c * 85) & 255) + ((noise >>> 13) & 63)) & 255;
      }
    }
  }
  return { width, height, data };
}
