// Reading a handwritten number in the browser: a port of digitlab's `data/segment.py` (`segment_line`: ink
// components, grouped into digits, with cut candidates where touching digits meet) and of
// `inference/read.py` (`read_ink`: every piece between cuts made into a 28×28, scored by the model, the width
// prior and the refusal, and dynamic programming over the cuts). See those modules for why each rule exists.

import { INK_THRESHOLD, WORK_SIZE, boundingBox, imageInk, label, normaliseDigit, pyRound } from "./preprocess.js";

const SPECK = 0.05, OVERLAP = 0.5, SMALL = 0.4, MAX_CUTS = 10;
const SPLIT_ABOVE = 0.75, SPLIT_WIDER = 1.5, PIECE_COST = 1.0, PRIOR_WEIGHT = 0.5;
const NOT_DIGIT_WEIGHT = 0.5, NOT_DIGIT_MARGIN = 2.0, MAX_PIECE = 1.6, MIN_PIECE = 0.12;
const WIDTH_PRIOR = [-7.1, -2.5, -2.5, -2.0, -1.7, -0.6, -0.6, 0.0, -0.8, -0.8, -1.4, -2.0, -4.1, -4.1, -4.9,
  -9.1, -9.1, -9.1, -9.1, -9.1];

const median = (values) => {
  const s = [...values].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const unionMask = (a, b) => { const out = Uint8Array.from(a); for (let i = 0; i < b.length; i++) if (b[i]) out[i] = 1; return out; };
const overlapShare = (a, b) => Math.max(Math.min(a[3], b[3]) - Math.max(a[2], b[2]), 0) / Math.max(Math.min(a[3] - a[2], b[3] - b[2]), 1);

function oneDigit(a, b) {
  const overlap = overlapShare(a, b);
  const short = Math.min(a[1] - a[0], b[1] - b[0]) < 0.5 * Math.max(a[1] - a[0], b[1] - b[0]);
  return overlap >= OVERLAP || (short && overlap > 0);
}

/** The 8-connected ink blobs of a flattened ink map, specks dropped: [{mask, box}] (box [top, bottom, left, right)). */
function inkComponents(flat) {
  const { w, h } = flat, mask = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) mask[i] = flat.data[i] > INK_THRESHOLD ? 1 : 0;
  const { labels, sizes, count } = label(mask, w, h, true);
  if (!count) return [];
  const boxes = Array.from({ length: count + 1 }, () => [h, 0, w, 0]);
  for (let i = 0; i < w * h; i++) {
    const l = labels[i];
    if (!l) continue;
    const x = i % w, y = (i - x) / w, b = boxes[l];
    b[0] = Math.min(b[0], y); b[1] = Math.max(b[1], y + 1); b[2] = Math.min(b[2], x); b[3] = Math.max(b[3], x + 1);
  }
  const biggest = Math.max(...sizes.slice(1)), out = [];
  for (let l = 1; l <= count; l++) {
    const b = boxes[l], atEdge = b[2] === 0 || b[0] === 0 || b[3] === w || b[1] === h;
    if (sizes[l] >= Math.max(biggest * SPECK, 4) && !(atEdge && sizes[l] < 0.5 * biggest)) {
      const m = new Uint8Array(w * h);
      for (let i = 0; i < w * h; i++) if (labels[i] === l) m[i] = 1;
      out.push({ mask: m, box: b });
    }
  }
  return out;
}

function groupComponents(components, w, h) {
  const groups = [...components].sort((a, b) => a.box[2] - b.box[2]);
  for (let merged = true; merged;) {
    merged = false;
    outer: for (let i = 0; i < groups.length; i++) for (let j = i + 1; j < groups.length; j++) {
      if (oneDigit(groups[i].box, groups[j].box)) {
        const mask = unionMask(groups[i].mask, groups[j].mask);
        groups[i] = { mask, box: boundingBox(mask, w, h) };
        groups.splice(j, 1); merged = true; break outer;
      }
    }
  }
  return groups.sort((a, b) => a.box[2] - b.box[2]);
}

function attachSmall(groups, w, h) {
  if (groups.length < 2) return groups;
  const tallest = Math.max(...groups.map((g) => g.box[1] - g.box[0]));
  const small = [], big = [];
  groups.forEach((g, i) => (Math.max(g.box[1] - g.box[0], g.box[3] - g.box[2]) < SMALL * tallest ? small : big).push(i));
  if (!big.length) return groups;
  const kept = new Map(big.map((i) => [i, groups[i]]));
  for (const i of small) {
    const box = groups[i].box;
    let nearest = -1, gap = Infinity;
    for (const [j, g] of kept) {
      const d = Math.max(g.box[2] - box[3], box[2] - g.box[3], 0);
      if (d < gap) { gap = d; nearest = j; }
    }
    if (gap <= SMALL * tallest) {
      const mask = unionMask(kept.get(nearest).mask, groups[i].mask);
      kept.set(nearest, { mask, box: boundingBox(mask, w, h) });
    }
  }
  return [...kept.values()].sort((a, b) => a.box[2] - b.box[2]);
}

/** Columns inside `box` where touching digits may meet: thin columns and valleys of the upper and lower contours. */
export function cutCandidates(mask, w, box, lineHeight) {
  const [top, bottom, left, right] = box, H = bottom - top, W = right - left;
  const profile = new Float64Array(W), upper = new Array(W).fill(H), lower = new Array(W).fill(-1);
  for (let x = 0; x < W; x++) for (let y = 0; y < H; y++) {
    if (!mask[(y + top) * w + x + left]) continue;
    profile[x] += 1; upper[x] = Math.min(upper[x], y); lower[x] = Math.max(lower[x], y);
  }
  const c = 1 / 3, smooth = new Float64Array(W); // np.convolve(profile, ones(3) / 3, mode="same")
  for (let x = 0; x < W; x++) smooth[x] = (x > 0 ? profile[x - 1] * c : 0) + profile[x] * c + (x < W - 1 ? profile[x + 1] * c : 0);
  const scores = new Map();
  for (let x = 1; x < W - 1; x++) {
    if (smooth[x] <= smooth[x - 1] && smooth[x] <= smooth[x + 1]) scores.set(x, smooth[x]);
    if (upper[x] >= upper[x - 1] && upper[x] >= upper[x + 1] && upper[x] > 0.3 * H) scores.set(x, Math.min(scores.get(x) ?? Infinity, profile[x]));
    if (lower[x] <= lower[x - 1] && lower[x] <= lower[x + 1] && lower[x] < 0.7 * H) scores.set(x, Math.min(scores.get(x) ?? Infinity, profile[x]));
  }
  const edge = Math.max(2, Math.floor(lineHeight / 5)), chosen = [];
  for (const [x] of [...scores].sort((a, b) => a[1] - b[1])) { // thinnest first (a stable sort, as Python's)
    if (edge <= x && x <= W - edge && chosen.every((k) => Math.abs(x - k) >= edge)) chosen.push(x);
    if (chosen.length === MAX_CUTS) break;
  }
  return chosen.map((x) => left + x).sort((a, b) => a - b);
}

/** The marks of a flattened ink map, left to right, each {mask, box, cuts} (`segment.segment_line`). */
export function segmentLine(flat) {
  const { w, h } = flat;
  const groups = attachSmall(groupComponents(inkComponents(flat), w, h), w, h);
  if (!groups.length) return [];
  const lineHeight = Math.trunc(median(groups.map((g) => g.box[1] - g.box[0])));
  return groups.map((g) => ({ ...g, cuts: cutCandidates(g.mask, w, g.box, Math.max(lineHeight, g.box[1] - g.box[0])) }));
}

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
  const wide = width > SPLIT_ABOVE * height && (digitWidth === null || width > SPLIT_WIDER * digitWidth);
  const points = wide && group.cuts.length ? [left, ...group.cuts, right] : [left, right];
  const out = new Map();
  for (let i = 0; i < points.length; i++) for (const b of points.slice(i + 1)) {
    const a = points[i], ratio = (b - a) / Math.max(lineHeight, 1), whole = a === left && b === right;
    if (!whole && !(MIN_PIECE <= ratio && ratio <= MAX_PIECE)) continue;
    let mask = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) for (let x = a; x < b; x++) mask[y * w + x] = group.mask[y * w + x];
    mask = withoutFragments(mask, w, h);
    if (mask.reduce((s, v) => s + v, 0) < 4) continue;
    out.set(`${a},${b}`, { a, b, processed: normaliseDigit(ink.flat, mask, boundingBox(mask, w, h), ink.factor, ink.size) });
  }
  return out;
}

const widthLogPrior = (ratio) => WIDTH_PRIOR[Math.min(Math.max(pyRound(ratio * 10) - 1, 0), WIDTH_PRIOR.length - 1)];

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
 * Read the one line of digits in an image's ink (`read.read_ink`).
 * @param {object} ink from `imageInk`.
 * @param {Function} score async (list of 784-float 28×28s) → {probabilities: number[][], margins: number[]}, the
 *   model's calibrated probabilities and the refusal score minus its threshold for each.
 * @returns {Promise<{text: string, digits: object[], confidence: number, blank: boolean, reason?: string}>}
 */
export async function readInk(ink, score) {
  const groups = segmentLine(ink.flat);
  if (!groups.length) return { text: "", digits: [], confidence: 0, blank: true, reason: "blank: no ink" };
  const lineHeight = Math.trunc(median(groups.map((g) => g.box[1] - g.box[0])));
  const tables = groups.map((g, i) => {
    const others = groups.filter((_, j) => j !== i).map((o) => o.box[3] - o.box[2]);
    return pieces(ink, g, lineHeight, others.length ? median(others) : null);
  });
  const all = tables.flatMap((t) => [...t.values()]);
  const { probabilities, margins } = await score(all.map((p) => p.processed.pixels));
  all.forEach((p, i) => {
    const row = probabilities[i], top = Math.max(...row);
    p.row = row;
    p.score = Math.log(Math.max(top, 1e-12)) + PRIOR_WEIGHT * widthLogPrior(p.processed.details.aspect) -
      NOT_DIGIT_WEIGHT * Math.max(0, margins[i] + NOT_DIGIT_MARGIN) - PIECE_COST;
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
  return height > 0 ? Math.trunc(Math.min(WORK_SIZE * Math.max(1, width / height), WORK_SIZE * 8)) : WORK_SIZE;
}

/** `read.read_number`: an image (uint8 pixels, as preprocess.js takes) → its reading. */
export function readNumber(image, score) {
  return readInk(imageInk(image, lineWorkSize(image.width, image.height)), score);
}
