// The refusal's feature kNN in JavaScript (backend-browser.js `featureKnn`) for tests/web/test_parity.py:
// argv[2] the bank (float32, rows × width, as export_web writes it), argv[3] JSON {rows, width, neighbours, features}.
import "./page_constants.mjs";
import { readFileSync } from "node:fs";
import { featureKnn } from "../../src/digitlab/web/static/backend-browser.js";

const buf = readFileSync(process.argv[2]);
const bank = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const { rows, width, neighbours, features } = JSON.parse(readFileSync(process.argv[3], "utf8"));
process.stdout.write(JSON.stringify(features.map((f) => featureKnn(Float32Array.from(f), { bank, rows, width, neighbours }))));
