// The page's verdicts (backend-browser.js `verdictOf`, with read.js's reader) in node, for tests/web/test_parity.py:
// argv[2], argv[3] the images as run_preprocess.mjs takes them; argv[4] JSON {means: (10, 784) class means, refused:
// [bool per image]}. The "model" is the nearest class mean (logits −10·squared distance), the refusal margin 0 for
// every piece: the same stand-ins the Python side uses, so only the rules are compared. Prints [verdict, reason]s.
import "./page_constants.mjs";
import { readFileSync } from "node:fs";
import { toMnist28x28 } from "../../src/digitlab/web/static/preprocess.js";
import { readInk } from "../../src/digitlab/web/static/read.js";
import { verdictOf } from "../../src/digitlab/web/static/backend-browser.js";

const data = readFileSync(process.argv[2]);
const shapes = JSON.parse(readFileSync(process.argv[3], "utf8"));
const { means, refused } = JSON.parse(readFileSync(process.argv[4], "utf8"));

function probabilities(pixels) {
  const logits = means.map((m) => -10 * m.reduce((s, v, i) => s + (v - pixels[i]) ** 2, 0));
  const top = Math.max(...logits), exp = logits.map((l) => Math.exp(l - top)), total = exp.reduce((a, b) => a + b, 0);
  return exp.map((e) => e / total);
}
const score = async (batch) => ({ probabilities: batch.map(probabilities), margins: batch.map(() => 0) });

const out = [];
for (const [n, [height, width, channels, offset]] of shapes.entries()) {
  const image = { data: data.subarray(offset, offset + height * width * channels), width, height, channels };
  const p = toMnist28x28(image);
  out.push(p.blank ? ["blank", p.reason] : await verdictOf(p, () => refused[n], (ink, fill) => readInk(ink, score, fill)));
}
process.stdout.write(JSON.stringify(out));
