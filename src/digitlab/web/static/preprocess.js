// Any image of a digit → the 28×28 an MNIST model expects: a line-by-line port of digitlab's Python
// `data/preprocess.py` (`to_mnist_28x28`), counting marks with segment.js (`data/segment.py`), so a page that runs the
// model in the browser sees what the server would. No DOM: it takes pixels, so node runs it too
// (tests/web/test_parity.py compares both on hundreds of canvases).
//
// The steps (see the Python module for why each exists):
//  1. shrink by an integer factor to ~112 px (OpenCV's INTER_AREA at an integer ratio: a box mean);
//  2. ink map: alpha for transparent images, else luminance with the polarity taken from the border, plus in a
//     colour image the departure of each pixel's CIELAB chroma from the paper's;
//  3. flatten an uneven background (grey opening), stretch contrast, remove ruled or squared paper's rules;
//  4. keep the ink blobs that matter, or say "no digit";
//  5. normalise stroke width toward MNIST's, crop;
//  6. longer side to 20 px (Pillow's Lanczos), pad to 28×28, centre of mass to the centre.

import { C } from "./constants.js";
import { boundingBox, inkLabels, markBoxes } from "./segment.js";

const F = Math.fround;

/** Python's round(): halves go to the even neighbour (Math.round sends them up). */
export function pyRound(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const round4 = (x) => pyRound(x * 1e4) / 1e4; // Python's round(x, 4), as the details are rounded there

// --- small array helpers: a map is {data: Float32Array, w, h} -------------------------------------------------
const newMap = (w, h) => ({ data: new Float32Array(w * h), w, h });

function kthSmallest(values, k) { // np.partition(values, k)[k], by quickselect
  const a = Float32Array.from(values);
  k = Math.min(k, a.length - 1);
  let lo = 0, hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) { const t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (k <= j) hi = j; else if (k >= i) lo = i; else break;
  }
  return a[k];
}

function percentile(sorted, q) { // numpy's default (linear) percentile of sorted values
  const pos = (q / 100) * (sorted.length - 1), lo = Math.floor(pos), hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

// scipy.ndimage's "reflect" mode: d c b a | a b c d | d c b a
function reflect(i, n) {
  if (n === 1) return 0;
  const period = 2 * n;
  i = ((i % period) + period) % period;
  return i < n ? i : period - 1 - i;
}

// One pass of a 1-D filter of `size` along rows (axis 1) or columns (axis 0), scipy's window placement:
// [i - size//2 - shift, ...] with shift = 0 (centred), or 1 for grey_dilation's mirrored even window.
function filter1d(map, size, axis, reduce, shift = 0) {
  const { w, h, data } = map, out = newMap(w, h), n = axis === 1 ? w : h, m = axis === 1 ? h : w;
  const line = new Float32Array(n), start = -Math.floor(size / 2) + shift;
  for (let j = 0; j < m; j++) {
    for (let i = 0; i < n; i++) line[i] = axis === 1 ? data[j * w + i] : data[i * w + j];
    for (let i = 0; i < n; i++) {
      const v = reduce(line, i + start, size, n);
      if (axis === 1) out.data[j * w + i] = v; else out.data[i * w + j] = v;
    }
  }
  return out;
}

const mean = (line, from, size, n) => { let s = 0; for (let k = 0; k < size; k++) s += line[reflect(from + k, n)]; return s / size; };
const min = (line, from, size, n) => { let s = Infinity; for (let k = 0; k < size; k++) s = Math.min(s, line[reflect(from + k, n)]); return s; };
const max = (line, from, size, n) => { let s = -Infinity; for (let k = 0; k < size; k++) s = Math.max(s, line[reflect(from + k, n)]); return s; };

/** scipy.ndimage.uniform_filter(map, size), mode "reflect". */
export function uniformFilter(map, size) { return filter1d(filter1d(map, size, 0, mean), size, 1, mean); }

/** scipy.ndimage.grey_opening(map, size=(size, size)): an erosion, then a dilation (its even window mirrored). */
export function greyOpening(map, size) {
  const eroded = filter1d(filter1d(map, size, 0, min), size, 1, min);
  const shift = size % 2 ? 0 : 1;
  return filter1d(filter1d(eroded, size, 0, max, shift), size, 1, max, shift);
}

/** scipy.ndimage.zoom(map, order=1, mode="nearest", grid_mode=True) to (w, h): bilinear, pixel edges aligned. */
export function zoomBilinear(map, w, h) {
  const out = newMap(w, h), sy = map.h / h, sx = map.w / w;
  const axis = (o, s, n) => {
    const c = Math.min(Math.max((o + 0.5) * s - 0.5, 0), n - 1), i = Math.min(Math.floor(c), n - 1);
    return [i, Math.min(i + 1, n - 1), c - i];
  };
  const xs = Array.from({ length: w }, (_, x) => axis(x, sx, map.w));
  for (let y = 0; y < h; y++) {
    const [y0, y1, fy] = axis(y, sy, map.h);
    for (let x = 0; x < w; x++) {
      const [x0, x1, fx] = xs[x], d = map.data;
      const top = d[y0 * map.w + x0] * (1 - fx) + d[y0 * map.w + x1] * fx;
      const bottom = d[y1 * map.w + x0] * (1 - fx) + d[y1 * map.w + x1] * fx;
      out.data[y * w + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

// --- step 1-2: the ink map ---------------------------------------------------------------------------------

// OpenCV's INTER_AREA at an integer factor on uint8 (a box mean, rounded; at 2× its SIMD path adds 2 and shifts).
function shrinkBands(data, w, h, channels, factor, sw, sh) {
  if (factor === 2) return halve(data, w, channels, sw, sh);
  const out = new Uint8Array(sw * sh * channels), area = factor * factor;
  const rows = Math.min(h, sh * factor), cols = Math.min(w, sw * factor); // the box filter's reach
  const sums = new Uint32Array(sw * channels);
  for (let y = 0; y < sh; y++) {
    sums.fill(0);
    for (let row = y * factor; row < Math.min((y + 1) * factor, rows); row++) {
      const base = row * w * channels;
      for (let x = 0; x < cols; x++) {
        const to = Math.floor(x / factor) * channels, from = base + x * channels;
        for (let c = 0; c < channels; c++) sums[to + c] += data[from + c];
      }
    }
    const o = y * sw * channels;
    if (factor === 2) for (let i = 0; i < sums.length; i++) out[o + i] = (sums[i] + 2) >> 2;
    else for (let i = 0; i < sums.length; i++) out[o + i] = pyRound(sums[i] / area);
  }
  return out;
}

// shrinkBands at 2× (a canvas at the page's size): each output is its 2×2 block's rounded mean, in one pass.
function halve(data, w, channels, sw, sh) {
  if (channels === 4 && data.byteOffset % 4 === 0) return halveRGBA(data, w, sw, sh);
  const out = new Uint8Array(sw * sh * channels), stride = w * channels, step = 2 * channels;
  for (let y = 0, o = 0; y < sh; y++) {
    let a = 2 * y * stride, b = a + stride;
    for (let x = 0; x < sw; x++, a += step, b += step) {
      for (let c = 0; c < channels; c++, o++) {
        out[o] = (data[a + c] + data[a + channels + c] + data[b + c] + data[b + channels + c] + 2) >> 2;
      }
    }
  }
  return out;
}

// halve for RGBA, a pixel a 32-bit word: two channels' sums at a time in 16-bit lanes (4 · 255 + 2 < 2^16, so no
// lane spills into the next), each lane's (sum + 2) >> 2 as above. Byte order does not matter: lanes stay bytes.
function halveRGBA(data, w, sw, sh) {
  const words = new Uint32Array(data.buffer, data.byteOffset, data.length >> 2);
  const out = new Uint32Array(sw * sh), M = 0x00ff00ff, ROUND = 0x00020002;
  for (let y = 0, o = 0; y < sh; y++) {
    for (let a = 2 * y * w, b = a + w, x = 0; x < sw; x++, a += 2, b += 2, o++) {
      const p = words[a], q = words[a + 1], r = words[b], t = words[b + 1];
      const even = (p & M) + (q & M) + (r & M) + (t & M) + ROUND;
      const odd = ((p >>> 8) & M) + ((q >>> 8) & M) + ((r >>> 8) & M) + ((t >>> 8) & M) + ROUND;
      out[o] = ((even >>> 2) & M) | (((odd >>> 2) & M) << 8);
    }
  }
  return new Uint8Array(out.buffer);
}

function gray8(data, n, channels) { // cv2.COLOR_RGB(A)2GRAY on uint8: fixed point, 14 bits
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const k = i * channels;
    out[i] = (data[k] * 4899 + data[k + 1] * 9617 + data[k + 2] * 1868 + 8192) >> 14;
  }
  return out;
}

// The smallest alpha of interleaved pixels (an RGBA canvas is read as 32-bit words: a quarter of the loads).
function lowestAlpha(pixels, channels, count) {
  let lowest = 255;
  if (channels === 4 && pixels.byteOffset % 4 === 0 && new Uint8Array(new Uint32Array([1]).buffer)[0] === 1) {
    const words = new Uint32Array(pixels.buffer, pixels.byteOffset, count);
    for (let i = 0; i < count; i++) { const a = words[i] >>> 24; if (a < lowest) lowest = a; }
    return lowest;
  }
  for (let i = 0, k = channels - 1; i < count; i++, k += channels) if (pixels[k] < lowest) lowest = pixels[k];
  return lowest;
}

// gray8 then shrinkBands in one pass (the same numbers: each pixel's grey is rounded to 8 bits before the mean).
function grayShrink(data, w, channels, factor, sw, sh) {
  const out = new Uint8Array(sw * sh), sums = new Uint32Array(sw), area = factor * factor, cols = sw * factor;
  for (let y = 0; y < sh; y++) {
    sums.fill(0);
    for (let row = y * factor; row < (y + 1) * factor; row++) {
      let k = row * w * channels;
      for (let x = 0; x < cols; x++, k += channels) {
        sums[(x / factor) | 0] += (data[k] * 4899 + data[k + 1] * 9617 + data[k + 2] * 1868 + 8192) >> 14;
      }
    }
    for (let x = 0; x < sw; x++) out[y * sw + x] = pyRound(sums[x] / area);
  }
  return out;
}

/**
 * The working-size ink map (ink ≈ 1, background ≈ 0) of an image: shrunk by an integer factor, or, for a small
 * image, enlarged k× (bilinear), as ink.py's `ink_map`.
 * @param {{data: ArrayLike<number>, width: number, height: number, channels: number}} image uint8 pixels, 1-4
 *   channels interleaved (grey, grey+alpha, RGB, RGBA).
 * @returns {{ink: object, polarity: string, factor: number, level: number|null}} factor: input pixels per working
 *   pixel (1/k when enlarged).
 */
export function inkMap(image, workSize = C.WORK_SIZE) {
  const shrunk = shrunkInkMap(image, workSize), { ink } = shrunk;
  const enlarge = shrunk.factor === 1 ? pyRound(workSize / Math.max(ink.w, ink.h)) : 1;
  if (enlarge < 2) return shrunk;
  return { ...shrunk, ink: zoomBilinear(ink, ink.w * enlarge, ink.h * enlarge), factor: 1 / enlarge };
}

function shrunkInkMap(image, workSize) {
  const { width: w, height: h, channels } = image;
  const factor = Math.max(1, pyRound(Math.max(h, w) / workSize));
  const sw = Math.max(1, Math.floor(w / factor)), sh = Math.max(1, Math.floor(h / factor));
  const shrink = (data, ch) => (factor === 1 ? data : shrinkBands(data, w, h, ch, factor, sw, sh));
  const shrinkFirst = channels > 1 && factor <= 2;
  let pixels = image.data;
  if (shrinkFirst) pixels = shrink(pixels, channels);
  const n = sw * sh;
  const band = (data, c, count) => { const out = new Uint8Array(count); for (let i = 0; i < count; i++) out[i] = data[i * channels + c]; return out; };
  if (channels === 2 || channels === 4) {
    const pixelsIn = shrinkFirst ? n : w * h;
    if (lowestAlpha(pixels, channels, pixelsIn) < 230) {
      let alpha = band(pixels, channels - 1, pixelsIn);
      if (!shrinkFirst) alpha = shrinkBands(alpha, w, h, 1, factor, sw, sh);
      const ink = newMap(sw, sh);
      let least = Infinity;
      const inv = F(1 / 255);
      for (let i = 0; i < n; i++) { ink.data[i] = alpha[i] * inv; least = Math.min(least, ink.data[i]); }
      if (least < 0.9) return { ink, polarity: "alpha", factor, level: 0.0 };
    }
  }
  let colour = null; // the RGB(A) at working size, only when the image holds colour (ink.py ink_map)
  if (channels >= 3) {
    if (shrinkFirst) colour = pixels;
    else if (colourful(sampled(pixels, w, h, channels, factor), channels)) colour = shrinkBands(pixels, w, h, channels, factor, sw, sh);
  }
  let grey;
  const count = shrinkFirst ? n : w * h;
  if (channels >= 3 && !shrinkFirst && factor > 2) grey = grayShrink(pixels, w, channels, factor, sw, sh);
  else if (channels >= 3) grey = gray8(pixels, count, channels);
  else if (channels === 2) grey = band(pixels, 0, count);
  else grey = pixels;
  if (!shrinkFirst && factor > 1 && !(channels >= 3 && factor > 2)) grey = shrinkBands(grey, w, h, 1, factor, sw, sh);
  const gray = newMap(sw, sh);
  const inv = F(1 / 255);
  for (let i = 0; i < n; i++) gray.data[i] = grey[i] * inv;
  // polarity: a uniform border is the background's colour; else ink is the minority departing from its surroundings
  const border = []; // (a few hundred values)
  for (let x = 0; x < sw; x++) border.push(gray.data[x]);
  for (let x = 0; x < sw; x++) border.push(gray.data[(sh - 1) * sw + x]);
  for (let y = 0; y < sh; y++) border.push(gray.data[y * sw]);
  for (let y = 0; y < sh; y++) border.push(gray.data[y * sw + sw - 1]);
  const level = border.reduce((a, b) => a + b, 0) / border.length;
  const spread = Math.sqrt(border.reduce((a, b) => a + (b - level) ** 2, 0) / border.length);
  const uniform = spread < 0.05;
  let darkInk;
  if (uniform) { // ink.py: ink is what departs furthest from the paper, either way
    let lo = Infinity, hi = -Infinity;
    for (let i = 0, d = gray.data; i < d.length; i++) { const v = d[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
    const below = level - lo, above = hi - level;
    darkInk = below > above || (below === above && level > 0.5);
  }
  else {
    const local = uniformFilter(gray, Math.max(3, Math.floor(Math.max(sw, sh) / 2)));
    const residual = new Float32Array(n);
    for (let i = 0; i < n; i++) residual[i] = gray.data[i] - local.data[i];
    residual.sort();
    darkInk = -percentile(residual, 0.5) > percentile(residual, 99.5);
  }
  if (darkInk) for (let i = 0; i < n; i++) gray.data[i] = 1 - gray.data[i];
  if (colour && colourful(colour, channels)) {
    const chroma = chromaDeparture(colour, sw, sh, channels);
    for (let i = 0; i < n; i++) gray.data[i] += chroma[i];
  }
  if (darkInk) return { ink: gray, polarity: "dark-on-light", factor, level: uniform ? 1 - level : null };
  return { ink: gray, polarity: "light-on-dark", factor, level: uniform ? level : null };
}

// Every factor-th pixel of every factor-th row, as `pixels[::factor, ::factor]` (where colour is looked for).
function sampled(data, w, h, channels, factor) {
  const sw = Math.ceil(w / factor), sh = Math.ceil(h / factor), out = new Uint8Array(sw * sh * channels);
  for (let y = 0, o = 0; y < h; y += factor) {
    for (let x = 0; x < w; x += factor) for (let c = 0; c < channels; c++) out[o++] = data[(y * w + x) * channels + c];
  }
  return out;
}

/** Whether interleaved RGB(A) pixels hold colour: some pixel's channels spread by more than COLOUR_MIN. */
function colourful(data, channels) {
  const least = C.COLOUR_MIN;
  for (let k = 0; k < data.length; k += channels) {
    const r = data[k], g = data[k + 1], b = data[k + 2];
    if (Math.max(r, g, b) - Math.min(r, g, b) > least) return true;
  }
  return false;
}

const srgbToLinear = (c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
const labF = (t) => (t > 0.008856 ? Math.cbrt(t) : 7.787 * t + 16 / 116);

/**
 * CIELAB chroma distance of each pixel from the paper's (the median a*, b* of the border) / CHROMA_SCALE, at
 * most 1: ink.py's `chroma_departure` (sRGB under D65, OpenCV's matrix and white point).
 */
function chromaDeparture(data, w, h, channels) {
  const n = w * h, a = new Float32Array(n), b = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const k = i * channels;
    const r = srgbToLinear(F(data[k] * F(1 / 255))), g = srgbToLinear(F(data[k + 1] * F(1 / 255)));
    const bl = srgbToLinear(F(data[k + 2] * F(1 / 255)));
    const x = (0.412453 * r + 0.35758 * g + 0.180423 * bl) / 0.950456;
    const y = 0.212671 * r + 0.71516 * g + 0.072169 * bl;
    const z = (0.019334 * r + 0.119193 * g + 0.950227 * bl) / 1.088754;
    const fy = labF(y);
    a[i] = 500 * (labF(x) - fy);
    b[i] = 200 * (fy - labF(z));
  }
  const border = (band) => {
    const out = [];
    for (let x = 0; x < w; x++) out.push(band[x]);
    for (let x = 0; x < w; x++) out.push(band[(h - 1) * w + x]);
    for (let y = 0; y < h; y++) out.push(band[y * w]);
    for (let y = 0; y < h; y++) out.push(band[y * w + w - 1]);
    out.sort((p, q) => p - q);
    return percentile(out, 50);
  };
  const pa = border(a), pb = border(b), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(Math.hypot(a[i] - pa, b[i] - pb) / C.CHROMA_SCALE, 1);
  return out;
}

// --- step 3: flatten and stretch ---------------------------------------------------------------------------

/** Remove slow background variation and stretch ink to ~1 (a known uniform `level` is only subtracted). */
export function flattenBackground(ink, level) {
  const { w, h } = ink, n = w * h, flat = newMap(w, h);
  let background = null;
  if (level === null) {
    const small = newMap(Math.ceil(w / 4), Math.ceil(h / 4));
    for (let y = 0; y < small.h; y++) for (let x = 0; x < small.w; x++) small.data[y * small.w + x] = ink.data[y * 4 * w + x * 4];
    const opened = greyOpening(small, Math.max(2, Math.floor(Math.max(small.w, small.h) * 0.35)));
    background = zoomBilinear(uniformFilter(opened, 3), w, h);
  }
  for (let i = 0; i < n; i++) flat.data[i] = Math.max(ink.data[i] - (background ? background.data[i] : level), 0);
  const sample = [];
  for (let y = 0; y < h; y += 2) for (let x = 0; x < w; x += 2) sample.push(flat.data[y * w + x]);
  let peak = sample.length ? kthSmallest(sample, Math.floor(sample.length * 0.997)) : 0;
  let top = 0;
  for (let i = 0; i < n; i++) top = Math.max(top, flat.data[i]);
  peak = Math.max(peak, 0.5 * top); // ink.py: ink under 0.3% of the image (thin and small) still counts
  if (peak < 0.08) return newMap(w, h);
  const scale = F(1 / peak);
  for (let i = 0; i < n; i++) flat.data[i] = Math.min(flat.data[i] * scale, 1);
  return flat;
}

/**
 * Remove the rules of ruled or squared paper (paper_rules.py `remove_rules`): runs of ink along a row (column)
 * over RULE_SPAN of the image, at most RULE_WIDTH rows thick, at least RULES_MIN of them; pixels where a stroke
 * crosses a rule (ink RULE_WIDTH + 1 beyond both sides) are kept.
 */
export function removeRules(flat) {
  const { w, h, data } = flat, n = w * h, level = C.INK_THRESHOLD;
  const mask = new Uint8Array(n), inRow = new Int32Array(h), inColumn = new Int32Array(w);
  for (let y = 0, i = 0; y < h; y++) for (let x = 0; x < w; x++, i++) {
    if (data[i] > level) { mask[i] = 1; inRow[y]++; inColumn[x]++; }
  }
  const horizontal = rules(mask, w, h, (y, x) => y * w + x, inRow);
  const vertical = rules(mask, h, w, (x, y) => y * w + x, inColumn);
  if (!horizontal && !vertical) return flat;
  const rule = new Uint8Array(n);
  if (horizontal) for (let i = 0; i < n; i++) rule[i] |= horizontal[i];
  if (vertical) for (let i = 0; i < n; i++) rule[i] |= vertical[i] << 1;
  const out = newMap(w, h);
  for (let i = 0; i < n; i++) out.data[i] = rule[i] ? 0 : data[i];
  const kept = (x, y) => x >= 0 && y >= 0 && x < w && y < h && out.data[y * w + x] > C.INK_THRESHOLD;
  const reach = C.RULE_WIDTH + 1, restored = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      if ((rule[i] & 1 && kept(x, y - reach) && kept(x, y + reach)) || (rule[i] & 2 && kept(x - reach, y) && kept(x + reach, y))) restored.push(i);
    }
  }
  for (const i of restored) out.data[i] = data[i];
  return out;
}

// The rules running along the first axis (`along` pixels long, `across` lines), or null; at(line, i) indexes,
// inked[line] counts the line's ink (a line with less than a rule's length of it holds no rule: not scanned).
function rules(mask, along, across, at, inked) {
  const length = Math.floor(C.RULE_SPAN * along);
  let candidates = 0;
  for (let line = 0; line < across; line++) if (inked[line] >= length) candidates++;
  if (candidates < C.RULES_MIN) return null; // each rule needs at least one such line
  const runs = new Uint8Array(mask.length), full = new Uint8Array(across);
  for (let line = 0; line < across; line++) {
    if (inked[line] < length) continue;
    let start = -1;
    for (let i = 0; i <= along; i++) {
      const on = i < along && mask[at(line, i)];
      if (on && start < 0) start = i;
      else if (!on && start >= 0) {
        if (i - start >= length) { for (let j = start; j < i; j++) runs[at(line, j)] = 1; full[line] = 1; }
        start = -1;
      }
    }
  }
  const chosen = new Uint8Array(across);
  let count = 0;
  for (let line = 0, start = -1; line <= across; line++) {
    const on = line < across && full[line];
    if (on && start < 0) start = line;
    else if (!on && start >= 0) {
      if (line - start <= C.RULE_WIDTH) { chosen.fill(1, start, line); count++; }
      start = -1;
    }
  }
  if (count < C.RULES_MIN) return null;
  for (let line = 0; line < across; line++) if (!chosen[line]) for (let i = 0; i < along; i++) runs[at(line, i)] = 0;
  return runs;
}

// --- step 4: the digit's blobs -------------------------------------------------------------------------------

/** The mask of the ink blobs that make the digit, its box and the ink's `inkLabels`, or the reason there is no digit. */
export function findDigit(flat) {
  const { w, h, data } = flat, n = w * h, level = C.INK_THRESHOLD;
  let total = 0;
  for (let i = 0; i < n; i++) if (data[i] > level) total++;
  if (total === 0) return { reason: "blank: no ink" };
  const coverage = total / n;
  if (coverage > C.NOISE_COVERAGE) return { reason: `noise: ink covers ${pyRound(coverage * 100)}% of the image` };
  const labelled = inkLabels(flat); // 8-connected, as preprocess.py; only for an image that may hold a digit
  const { labels, sizes, count } = labelled;
  const largest = Math.max(...sizes.slice(1));
  const keep = sizes.map((s) => s >= Math.max(largest * 0.08, 4));
  const edge = [];
  for (let x = 0; x < w; x++) edge.push(labels[x], labels[(h - 1) * w + x]);
  for (let y = 0; y < h; y++) edge.push(labels[y * w], labels[y * w + w - 1]);
  for (const l of edge) keep[l] = keep[l] && sizes[l] >= largest * 0.5;
  keep[0] = false;
  if (!keep.slice(1).some(Boolean)) return { reason: "blank: only specks" };
  const digit = new Uint8Array(n);
  for (let i = 0; i < n; i++) digit[i] = keep[labels[i]] ? 1 : 0;
  const box = boundingBox(digit, w, h);
  const longest = Math.max(box[1] - box[0], box[3] - box[2]), extent = longest / Math.max(w, h);
  if (extent < 0.08 && longest < 3 * strokeWidth(digit, w, h)) return { reason: `blank: only a dot (${pyRound(extent * 100)}% of the image)` };
  if (count > 40 && largest < 0.25 * total) return { reason: `noise: ${count} scattered blobs, none dominant` };
  return { digit, box, labelled };
}

// --- step 5-6: one digit's 28×28 -----------------------------------------------------------------------------

// Structuring elements as horizontal spans [dy, half]: the pixels (dx, dy) with |dx| ≤ half (OpenCV's elements:
// a cross, and preprocess.py's disk). Grey morphology over one is a running extreme along rows, then across them.
const CROSS = [[-1, 0], [0, 1], [1, 0]];

function disk(radius) { // the pixels with x² + y² ≤ r² + r/2
  const spans = [];
  for (let y = -radius; y <= radius; y++) {
    let half = -1;
    for (let x = 0; x <= radius; x++) if (x * x + y * y <= radius * radius + radius * 0.5) half = x;
    if (half >= 0) spans.push([y, half]);
  }
  return spans;
}

// The extreme of each row's [x - half, x + half] (`outside` counted where the window leaves the row, unless null).
function rowExtremes(data, w, h, half, useMax, outside) {
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      const from = Math.max(0, x - half), to = Math.min(w - 1, x + half);
      let v = data[row + from];
      if (useMax) for (let k = row + from + 1; k <= row + to; k++) { if (data[k] > v) v = data[k]; }
      else for (let k = row + from + 1; k <= row + to; k++) { if (data[k] < v) v = data[k]; }
      if (outside !== null && (x - half < 0 || x + half >= w)) v = useMax ? Math.max(v, outside) : Math.min(v, outside);
      out[row + x] = v;
    }
  }
  return out;
}

// Grey dilation (max) or erosion (min) over a structuring element's spans; pixels outside the map are ignored
// (OpenCV's default border for morphology). `outside` replaces them instead when given (stroke_width's border 1).
function morph(data, w, h, spans, useMax, outside = null) {
  const values = data instanceof Float32Array ? data : Float32Array.from(data), rows = new Map();
  const out = new Float32Array(w * h).fill(useMax ? -Infinity : Infinity);
  for (const [dy, half] of spans) {
    if (!rows.has(half)) rows.set(half, half ? rowExtremes(values, w, h, half, useMax, outside) : values);
    const extreme = rows.get(half);
    for (let y = 0; y < h; y++) {
      const from = y + dy, dst = y * w;
      if (from < 0 || from >= h) {
        if (outside !== null) for (let x = dst; x < dst + w; x++) out[x] = useMax ? Math.max(out[x], outside) : Math.min(out[x], outside);
        continue;
      }
      const src = from * w - dst;
      if (useMax) for (let x = dst; x < dst + w; x++) { if (extreme[src + x] > out[x]) out[x] = extreme[src + x]; }
      else for (let x = dst; x < dst + w; x++) { if (extreme[src + x] < out[x]) out[x] = extreme[src + x]; }
    }
  }
  return out;
}

/** Mean stroke width ≈ 2 · area / perimeter of a mask (a crop with a 1-pixel margin where there is room). */
export function strokeWidth(mask, w, h) {
  let area = 0, inner = 0;
  const eroded = morph(mask, w, h, CROSS, false, 1);
  for (let i = 0; i < w * h; i++) { area += mask[i] ? 1 : 0; inner += eroded[i] ? 1 : 0; }
  return (2.0 * area) / Math.max(area - inner, 1);
}

// Pillow's Image.resize(..., LANCZOS) on a float ("F") image: a separable filter, horizontal pass first,
// coefficients as in Pillow's Resample.c (support 3 scaled by the reduction, normalised per output pixel).
function lanczos(x) {
  const sinc = (t) => (t === 0 ? 1 : Math.sin(Math.PI * t) / (Math.PI * t));
  return x > -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

function coefficients(inSize, outSize) {
  const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = 3 * filterscale;
  const out = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale, ss = 1 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0), xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    const k = [];
    let ww = 0;
    for (let x = xmin; x < xmax; x++) { const v = lanczos((x - center + 0.5) * ss); k.push(v); ww += v; }
    out.push({ xmin, k: ww !== 0 ? k.map((v) => v / ww) : k });
  }
  return out;
}

export function resizeLanczos(data, w, h, nw, nh) {
  let cur = data, cw = w;
  if (nw !== w) {
    const cs = coefficients(w, nw), out = new Float32Array(nw * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < nw; x++) {
      const { xmin, k } = cs[x];
      let s = 0;
      for (let i = 0; i < k.length; i++) s += cur[y * cw + xmin + i] * k[i];
      out[y * nw + x] = s;
    }
    cur = out; cw = nw;
  }
  if (nh !== h) {
    const cs = coefficients(h, nh), out = new Float32Array(cw * nh);
    for (let y = 0; y < nh; y++) {
      const { xmin, k } = cs[y];
      for (let x = 0; x < cw; x++) {
        let s = 0;
        for (let i = 0; i < k.length; i++) s += cur[(xmin + i) * cw + x] * k[i];
        out[y * cw + x] = s;
      }
    }
    cur = out;
  }
  return cur === data ? Float32Array.from(data) : cur;
}

// NumPy's float32 sum of a contiguous run (pairwise: 8 accumulators up to 128 values, halves above).
function pairwiseSum(a, off, n) {
  if (n < 8) { let s = 0; for (let i = 0; i < n; i++) s = F(s + a[off + i]); return s; }
  if (n <= 128) {
    const r = Array.from({ length: 8 }, (_, j) => a[off + j]);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = F(r[j] + a[off + i + j]);
    let s = F(F(F(r[0] + r[1]) + F(r[2] + r[3])) + F(F(r[4] + r[5]) + F(r[6] + r[7])));
    for (; i < n; i++) s = F(s + a[off + i]);
    return s;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return F(pairwiseSum(a, off, half) + pairwiseSum(a, off + half, n - half));
}

/** Steps 5-6 for one digit: `digit` is its mask in `flat`, `box` the mask's box. */
export function normaliseDigit(flat, digit, box, factorScale, size) {
  const W = flat.w, H = flat.h;
  let [top, bottom, left, right] = box;
  const longest = Math.max(bottom - top, right - left);
  const t0 = Math.max(0, top - 1), l0 = Math.max(0, left - 1), b0 = Math.min(H, bottom + 1), r0 = Math.min(W, right + 1);
  const cropMask = new Uint8Array((b0 - t0) * (r0 - l0));
  for (let y = t0; y < b0; y++) for (let x = l0; x < r0; x++) cropMask[(y - t0) * (r0 - l0) + x - l0] = digit[y * W + x];
  const width = strokeWidth(cropMask, r0 - l0, b0 - t0);
  const ratio = width / longest;
  let radius = 0;
  if (ratio < C.STROKE_RANGE[0]) radius = Math.max(1, pyRound((C.STROKE_RANGE[0] * longest - width) / 2));
  else if (ratio > C.STROKE_RANGE[1] && width > 3) radius = -Math.max(1, pyRound((width - C.STROKE_RANGE[1] * longest) / 2));
  // only the digit's surroundings matter from here on: the anti-aliased edge and the reach of the dilation
  const margin = Math.abs(radius) + 2;
  const yOff = Math.max(0, top - margin), xOff = Math.max(0, left - margin);
  const cw = Math.min(W, right + margin) - xOff, ch = Math.min(H, bottom + margin) - yOff;
  const near = new Float32Array(cw * ch), cmask = new Uint8Array(cw * ch);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) {
    near[y * cw + x] = flat.data[(y + yOff) * W + x + xOff]; cmask[y * cw + x] = digit[(y + yOff) * W + x + xOff];
  }
  const edge = morph(cmask, cw, ch, CROSS, true);
  let values = new Float32Array(cw * ch);
  const floor = C.NOISE_FLOOR, gain = F(1 / (1 - floor)), inkLevel = C.INK_THRESHOLD;
  for (let i = 0; i < cw * ch; i++) {
    const v = edge[i] > 0 ? near[i] : 0;
    values[i] = Math.min(Math.max((v - floor) * gain, 0), 1);
  }
  let cores = 0;
  for (let i = 0; i < values.length; i++) if (values[i] > inkLevel) cores++;
  const core = new Float32Array(cores);
  for (let i = 0, k = 0; i < values.length; i++) if (values[i] > inkLevel) core[k++] = values[i];
  if (core.length) {
    const typical = kthSmallest(core, Math.floor(0.75 * (core.length - 1)));
    const s = F(1 / Math.max(typical, 0.3));
    for (let i = 0; i < values.length; i++) values[i] = Math.min(values[i] * s, 1);
  }
  const inkCount = (a) => { let c = 0; for (let i = 0; i < a.length; i++) c += a[i] > inkLevel ? 1 : 0; return c; };
  if (radius > 0) values = morph(values, cw, ch, disk(radius), true);
  else if (radius < 0) {
    const eroded = morph(values, cw, ch, disk(-radius), false);
    if (inkCount(eroded) > 0.3 * inkCount(values)) values = eroded; else radius = 0;
  }
  const strokeScale = width ? (width + 2 * radius) / width : 1.0;
  const half = new Uint8Array(cw * ch);
  for (let i = 0; i < cw * ch; i++) half[i] = values[i] > inkLevel * 0.5 ? 1 : 0;
  [top, bottom, left, right] = boundingBox(half, cw, ch);
  const h = bottom - top, w = right - left;
  const crop = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) crop[y * w + x] = values[(y + top) * cw + x + left];
  const factor = C.BOX / Math.max(h, w);
  const nw = Math.max(1, pyRound(w * factor)), nh = Math.max(1, pyRound(h * factor));
  const small = resizeLanczos(crop, w, h, nw, nh);
  let peak = 0;
  for (let i = 0; i < small.length; i++) { small[i] = Math.max(small[i], 0); peak = Math.max(peak, small[i]); }
  if (peak > 0) { const s = F(1 / peak); for (let i = 0; i < small.length; i++) small[i] = Math.min(small[i] * s, 1); }
  // the centre of mass with NumPy's float32 sums (a symmetric stroke puts it on a half pixel: rounding ties)
  const mass = pairwiseSum(small, 0, small.length);
  let my = 0, mx = 0;
  for (let y = 0; y < nh; y++) my += pairwiseSum(small, y * nw, nw) * y;
  for (let x = 0; x < nw; x++) {
    let column = 0;
    for (let y = 0; y < nh; y++) column = F(column + small[y * nw + x]);
    mx += column * x;
  }
  const cy = mass ? my / mass : (nh - 1) / 2, cx = mass ? mx / mass : (nw - 1) / 2;
  const y0 = Math.min(Math.max(pyRound(C.CANVAS / 2 - 0.5 - cy), 0), C.CANVAS - nh);
  const x0 = Math.min(Math.max(pyRound(C.CANVAS / 2 - 0.5 - cx), 0), C.CANVAS - nw);
  const pixels = new Float32Array(C.CANVAS * C.CANVAS);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) pixels[(y + y0) * C.CANVAS + x + x0] = small[y * nw + x];
  top += yOff; bottom += yOff; left += xOff; right += xOff;
  return {
    pixels, blank: false, reason: "", strokeScale,
    bbox: [Math.trunc(left * factorScale), Math.trunc(top * factorScale),
      Math.min(size[0], Math.ceil(right * factorScale)), Math.min(size[1], Math.ceil(bottom * factorScale))],
    details: { aspect: round4((right - left) / Math.max(bottom - top, 1)) },
  };
}

/**
 * Steps 1-3: an image's ink at working size, what single digits and numbers are both cut from.
 * @returns {{flat: object, polarity: string, factor: number, size: number[]}}
 */
export function imageInk(image, workSize = C.WORK_SIZE) {
  const { ink, polarity, factor, level } = inkMap(image, workSize);
  return { flat: removeRules(flattenBackground(ink, level)), polarity, factor, size: [image.width, image.height] };
}

/**
 * Any image of a digit → MNIST's 28×28 (see the top of this file), as `to_mnist_28x28` does in Python.
 * @param {{data: ArrayLike<number>, width: number, height: number, channels: number}} image uint8 pixels.
 * @returns {{pixels: Float32Array, blank: boolean, reason: string, polarity: string,
 *   bbox: number[]|null, details: {marks?: number, mark_aspect?: number}}} pixels: 784 values in [0, 1], white
 *   ink on black, row-major; bbox [x0, y0, x1, y1] of the ink in the input's pixels.
 */
export function toMnist28x28(image) {
  const { ink, polarity, factor, level } = inkMap(image);
  const flat = removeRules(flattenBackground(ink, level));
  const found = findDigit(flat);
  if (!found.digit) return { pixels: new Float32Array(784), blank: true, reason: found.reason, polarity, bbox: null, details: {} };
  const result = normaliseDigit(flat, found.digit, found.box, factor, [image.width, image.height]);
  result.polarity = polarity;
  result.ink = { flat, polarity, factor, size: [image.width, image.height] }; // what read.js cuts digits from
  const separate = markBoxes(flat, found.labelled);
  result.details.marks = separate.length;
  if (separate.length === 1) {
    const [t, b, l, r] = separate[0];
    result.details.mark_aspect = round4((r - l) / Math.max(b - t, 1));
  }
  return result;
}
