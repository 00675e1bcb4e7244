// The refusal's features in JavaScript (src/digitlab/web/static/backend-browser.js) for tests/web/test_parity.py:
// argv[2] the digit space as export_web writes it, argv[3] JSON {components, bank, pixels: [[784]], logits: [[10]]}.
import "./page_constants.mjs";
import { readFileSync } from "node:fs";
import { refusalFeatures } from "../../src/digitlab/web/static/backend-browser.js";

const buf = readFileSync(process.argv[2]);
const f = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const { components: k, bank: n, pixels, logits } = JSON.parse(readFileSync(process.argv[3], "utf8"));
const space = { k, n, mean: f.subarray(0, 784), components: f.subarray(784, 784 + k * 784),
  bank: f.subarray(784 + k * 784, 784 + k * 784 + n * k) };
process.stdout.write(JSON.stringify(pixels.map((p, i) => refusalFeatures(Float32Array.from(p), logits[i], space))));
