// The marks of a line of ink: a port of digitlab's `data/segment.py` (ink components, grouped into digits, small
// detached strokes attached, cut candidates where touching digits meet). preprocess.js counts a drawing's marks
// with it and read.js reads numbers with it: one grouping for both, as in Python. No DOM.

import { C } from "./constants.js";

export const median = (values) => {
  const s = [...values].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Connected components of a boolean mask (Uint8Array w×h): labels (0 = background) and each label's size. */
export function label(mask, w, h, eight = false) {
  // numbered in raster order of each component's first pixel, as scipy.ndimage.label numbers them
  const labels = new Int32Array(w * h), sizes = [0], stack = new Int32Array(w * h);
  let next = 0;
  for (let start = 0; start < w * h; start++) {
    if (!mask[start] || labels[start]) continue;
    next += 1; labels[start] = next;
    let top = 0, size = 0;
    stack[top++] = start;
    while (top) {
      const p = stack[--top], y = (p / w) | 0, x = p - y * w;
      const left = x > 0, right = x < w - 1, up = y > 0, down = y < h - 1;
      size += 1;
      const visit = (q) => { if (mask[q] && !labels[q]) { labels[q] = next; stack[top++] = q; } };
      if (up) visit(p - w);
      if (left) visit(p - 1);
      if (right) visit(p + 1);
      if (down) visit(p + w);
      if (eight) {
        if (up && left) visit(p - w - 1);
        if (up && right) visit(p - w + 1);
        if (down && left) visit(p + w - 1);
        if (down && right) visit(p + w + 1);
      }
    }
    sizes.push(size);
  }
  return { labels, sizes, count: next };
}

/** The 8-connected ink components of a flattened ink map (ink above INK_THRESHOLD), as `label` gives them: what
 * preprocess.js's digit finding and the marks below share, computed once per drawing. */
export function inkLabels(flat) {
  const { w, h } = flat, mask = new Uint8Array(w * h);
  const data = flat.data, level = C.INK_THRESHOLD;
  for (let i = 0; i < w * h; i++) mask[i] = data[i] > level ? 1 : 0;
  return label(mask, w, h, true);
}

/** [top, bottom, left, right) of a non-empty mask, or null. */
export function boundingBox(mask, w, h) {
  let top = h, bottom = -1, left = w, right = -1;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (mask[y * w + x]) {
    top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
  }
  return bottom < 0 ? null : [top, bottom + 1, left, right + 1];
}

const unionMask = (a, b) => { const out = Uint8Array.from(a); for (let i = 0; i < b.length; i++) if (b[i]) out[i] = 1; return out; };
const overlapShare = (a, b) => Math.max(Math.min(a[3], b[3]) - Math.max(a[2], b[2]), 0) / Math.max(Math.min(a[3] - a[2], b[3] - b[2]), 1);

function oneDigit(a, b) {
  const overlap = overlapShare(a, b);
  const short = Math.min(a[1] - a[0], b[1] - b[0]) < 0.5 * Math.max(a[1] - a[0], b[1] - b[0]);
  return overlap >= C.OVERLAP || (short && overlap > 0);
}

/** The 8-connected ink blobs of a flattened ink map, specks dropped: [{mask, box}] (box [top, bottom, left, right)). */
function inkComponents(flat, labelled = inkLabels(flat)) {
  const { w, h } = flat, { labels, sizes, count } = labelled;
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
    if (sizes[l] >= Math.max(biggest * C.SPECK, 4) && !(atEdge && sizes[l] < 0.5 * biggest)) {
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
  groups.forEach((g, i) => (Math.max(g.box[1] - g.box[0], g.box[3] - g.box[2]) < C.SMALL * tallest ? small : big).push(i));
  if (!big.length) return groups;
  const kept = new Map(big.map((i) => [i, groups[i]]));
  for (const i of small) {
    const box = groups[i].box;
    let nearest = -1, gap = Infinity;
    for (const [j, g] of kept) {
      const d = Math.max(g.box[2] - box[3], box[2] - g.box[3], 0);
      if (d < gap) { gap = d; nearest = j; }
    }
    if (gap <= C.SMALL * tallest) {
      const mask = unionMask(kept.get(nearest).mask, groups[i].mask);
      kept.set(nearest, { mask, box: boundingBox(mask, w, h) });
    }
  }
  return [...kept.values()].sort((a, b) => a.box[2] - b.box[2]);
}

/** Columns inside `box` where touching digits may meet: thin columns and valleys of the upper and lower contours. */
export function cutCandidates(mask, w, box, lineHeight, fill = true) {
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
    if (chosen.length === C.MAX_CUTS) break;
  }
  if (!fill) return chosen.map((x) => left + x).sort((a, b) => a - b);
  const points = [0, ...[...chosen].sort((a, b) => a - b), W], all = new Set(chosen);
  for (let i = 0; i + 1 < points.length; i++) { // wide stretches without a candidate get evenly spaced ones
    const a = points[i], b = points[i + 1];
    if (b - a <= C.FILL_GAP * lineHeight) continue;
    const n = Math.floor((b - a) / (C.FILL_STEP * lineHeight));
    if (!n) all.add(Math.trunc((a + b) / 2));
    for (let k = 1; k <= n; k++) all.add(Math.trunc(a + ((b - a) * k) / (n + 1)));
  }
  return [...all].map((x) => left + x).sort((a, b) => a - b);
}

/** The marks of a flattened ink map, left to right, each {mask, box, cuts} (`segment.segment_line`). */
export function segmentLine(flat, fill = true) {
  const { w, h } = flat;
  const groups = attachSmall(groupComponents(inkComponents(flat), w, h), w, h);
  if (!groups.length) return [];
  const lineHeight = Math.trunc(median(groups.map((g) => g.box[1] - g.box[0])));
  return groups.map((g) => ({ ...g, cuts: cutCandidates(g.mask, w, g.box, Math.max(lineHeight, g.box[1] - g.box[0]), fill) }));
}


/** Boxes [top, bottom, left, right) of the separate marks of a flattened ink map, left to right (`labelled`: its
 * `inkLabels`, when already computed). */
export function markBoxes(flat, labelled = inkLabels(flat)) {
  const { w, h } = flat;
  return attachSmall(groupComponents(inkComponents(flat, labelled), w, h), w, h).map((g) => g.box);
}
