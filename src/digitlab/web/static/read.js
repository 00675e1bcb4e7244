// Reading a handwritten number in the browser: a port of digitlab's `inference/read.py` (`read_ink`: the marks of
// segment.js, every piece between their cuts made into a 28×28, scored by the model, the width prior and the
// refusal, and dynamic programming over the cuts). See that module for why each rule exists; its constants come
// from Python through web.json (constants.js).

import { C } from "./constants.js";
import { imageInk, normaliseDigit, pyRound } from "./preprocess.js";
import { boundingBox, label, median, segmentLine } from "./segment.js";

export { segmentLine };

function withoutFragments(mask, w, h) { // the slivers of a neighbour a straight cut took along (under 15%)
  const { labels, sizes, count } = label(mask, w, h, true);
  if (count <= 1) return mask;
  const largest = Math.max(...sizes.slice(1)), out = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) if (labels[i] && sizes[labels[i]] >= 0.15 * largest) out[i] = 1;
  return out;
}

/** Every piece of a group between two cut points with a plausible width, as a 28×28: Map "a,b" → processed. */
export function pieces(ink, group, lineHeight, digitWidth) {
  const { w, h } = ink.flat, [, , left, right] = group.box;
  const width = right - left, height = group.box[1] - group.box[0];
  const wide = width > C.SPLIT_ABOVE * height && (digitWidth === null || width > C.SPLIT_WIDER * digitWidth);
  const points = wide && group.cuts.length ? [left, ...group.cuts, right] : [left, right];
  const out = new Map();
  for (let i = 0; i < points.length; i++) for (const b of points.slice(i + 1)) {
    const a = points[i], ratio = (b - a) / Math.max(lineHeight, 1), whole = a === left && b === right;
    if (!whole && !(C.MIN_PIECE <= ratio && ratio <= C.MAX_PIECE)) continue;
    let mask = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = a; x < b; x++) mask[y * w + x] = group.mask[y * w + x];
    mask = withoutFragments(mask, w, h);
    if (mask.reduce((s, v) => s + v, 0) < 4) continue;
    out.set(`${a},${b}`, { a, b, processed: normaliseDigit(ink.flat, mask, boundingBox(mask, w, h), ink.factor, ink.size) });
  }
  return out;
}

const widthLogPrior = (ratio) => C.WIDTH_PRIOR[Math.min(Math.max(pyRound(ratio * 10) - 1, 0), C.WIDTH_PRIOR.length - 1)];

function bestSegmentation(group, table) {
  const [, , left, right] = group.box;
  const points = [...new Set([left, right, ...[...table.values()].flatMap((p) => [p.a, p.b])])].sort((x, y) => x - y);
  const best = new Map([[left, [0, []]]]);
  for (const b of points.slice(1)) for (const a of points) {
    const piece = table.get(`${a},${b}`);
    if (a >= b || !best.has(a) || !piece) continue;
    const total = best.get(a)[0] + piece.score;
    if (!best.has(b) || total > best.get(b)[0]) best.set(b, [total, [...best.get(a)[1], piece]]);
  }
  return best.has(right) ? best.get(right)[1] : [...table.values()].filter((p) => p.a === left && p.b === right);
}

/**
 * The median width of the line's other groups, each counted between NARROW_AS and WIDE_AS × its height
 * (`read._others_width`).
 * @param {object[]} groups from `segmentLine`.
 * @param {number} i the group left out.
 * @returns {number|null} null when the group is alone.
 */
export function othersWidth(groups, i) {
  const others = groups
    .filter((_, j) => j !== i)
    .map((o) => {
      const height = o.box[1] - o.box[0];
      return Math.min(Math.max(o.box[3] - o.box[2], C.NARROW_AS * height), C.WIDE_AS * height);
    });
  return others.length ? median(others) : null;
}

/**
 * Read the one line of digits in an image's ink (`read.read_ink`).
 * @param {object} ink from `imageInk`.
 * @param {Function} score async (list of 784-float 28×28s) → {probabilities: number[][], margins: number[]}, the
 *   model's calibrated probabilities and the refusal score minus its threshold for each.
 * @param {boolean} [fill] whether wide stretches are cut at even spacings too (`segment.cut_candidates`).
 * @returns {Promise<{text: string, digits: object[], confidence: number, blank: boolean, reason?: string}>}
 */
export async function readInk(ink, score, fill = true) {
  const groups = segmentLine(ink.flat, fill);
  if (!groups.length) return { text: "", digits: [], confidence: 0, blank: true, reason: "blank: no ink" };
  const lineHeight = Math.trunc(median(groups.map((g) => g.box[1] - g.box[0])));
  const tables = groups.map((g, i) => pieces(ink, g, lineHeight, othersWidth(groups, i)));
  const all = tables.flatMap((t) => [...t.values()]);
  const { probabilities, margins } = await score(all.map((p) => p.processed.pixels));
  all.forEach((p, i) => {
    const row = probabilities[i], top = Math.max(...row);
    p.row = row;
    p.score = Math.log(Math.max(top, 1e-12)) + C.PRIOR_WEIGHT * widthLogPrior(p.processed.details.aspect) -
      C.NOT_DIGIT_WEIGHT * Math.max(0, margins[i] + C.NOT_DIGIT_MARGIN) - C.PIECE_COST;
  });
  const digits = [];
  groups.forEach((g, i) => {
    for (const p of bestSegmentation(g, tables[i])) {
      const confidence = Math.max(...p.row);
      digits.push({ label: p.row.indexOf(confidence), confidence, probabilities: p.row, box: p.processed.bbox, processed: p.processed.pixels });
    }
  });
  const confidence = digits.length ? digits.reduce((s, d) => s * d.confidence, 1) : 0;
  return { text: digits.map((d) => d.label).join(""), digits, confidence, blank: false };
}

/** The working size for a line of digits: about a single digit's resolution per digit (`read._line_ink`). */
export function lineWorkSize(width, height) {
  return height > 0 ? Math.trunc(Math.min(C.WORK_SIZE * Math.max(1, width / height), C.WORK_SIZE * 8)) : C.WORK_SIZE;
}

/** `read.read_number`: an image (uint8 pixels, as preprocess.js takes) → its reading. */
export function readNumber(image, score) {
  return readInk(imageInk(image, lineWorkSize(image.width, image.height)), score);
}
