// Runs the page's preprocessing (src/digitlab/web/static/preprocess.js) in node on images written by
// tests/web/test_parity.py: argv[2] is a file of raw uint8 pixels, argv[3] their shapes as JSON
// [[height, width, channels, offset], ...]; prints one JSON object per image on stdout.
import "./page_constants.mjs";
import { readFileSync } from "node:fs";
import { toMnist28x28 } from "../../src/digitlab/web/static/preprocess.js";

const data = readFileSync(process.argv[2]);
const shapes = JSON.parse(readFileSync(process.argv[3], "utf8"));
const out = shapes.map(([height, width, channels, offset]) => {
  // a copy of its own, as a canvas's getImageData gives (word-aligned: preprocess.js reads RGBA as 32-bit words)
  const image = { data: data.slice(offset, offset + height * width * channels), width, height, channels };
  const r = toMnist28x28(image);
  return { blank: r.blank, reason: r.reason, polarity: r.polarity, marks: r.details.marks ?? 0, bbox: r.bbox,
    pixels: Array.from(r.pixels, (v) => Math.round(v * 1e6) / 1e6) };
});
process.stdout.write(JSON.stringify(out));
