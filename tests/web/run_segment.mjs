// Runs the page's number reading geometry (src/digitlab/web/static/read.js) in node on images written by
// tests/web/test_parity.py (same files as run_preprocess.mjs): per image the groups' boxes and cut candidates and
// every piece's 28×28, as JSON on stdout.
import "./page_constants.mjs";
import { readFileSync } from "node:fs";
import { imageInk } from "../../src/digitlab/web/static/preprocess.js";
import { lineWorkSize, othersWidth, pieces, segmentLine } from "../../src/digitlab/web/static/read.js";

const data = readFileSync(process.argv[2]);
const shapes = JSON.parse(readFileSync(process.argv[3], "utf8"));
const median = (v) => { const s = [...v].sort((a, b) => a - b), m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const out = shapes.map(([height, width, channels, offset]) => {
  const image = { data: data.subarray(offset, offset + height * width * channels), width, height, channels };
  const ink = imageInk(image, lineWorkSize(width, height));
  const groups = segmentLine(ink.flat);
  const lineHeight = groups.length ? Math.trunc(median(groups.map((g) => g.box[1] - g.box[0]))) : 0;
  return groups.map((g, i) => {
    const cut = pieces(ink, g, lineHeight, othersWidth(groups, i));
    return { box: g.box, cuts: g.cuts, pieces: Object.fromEntries([...cut].map(([k, p]) => [k, Array.from(p.processed.pixels, (v) => Math.round(v * 1e6) / 1e6)])) };
  });
});
process.stdout.write(JSON.stringify(out));
