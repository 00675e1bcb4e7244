// The refusal's Mahalanobis distance in JavaScript (backend-browser.js `mahalanobis`) for tests/web/test_parity.py:
// argv[2] the whitening then the class centres (float32, as export_web writes them), argv[3] JSON
// {width, classes, start, features}: the distance of each features row's part from `start` on.
import "./page_constants.mjs";
import { readFileSync } from "node:fs";
import { mahalanobis } from "../../src/digitlab/web/static/backend-browser.js";

const buf = readFileSync(process.argv[2]);
const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const { width, classes, start, features } = JSON.parse(readFileSync(process.argv[3], "utf8"));
const m = { width, classes, whitening: all.subarray(0, width * width), centres: all.subarray(width * width) };
process.stdout.write(JSON.stringify(features.map((f) => mahalanobis(Float32Array.from(f).subarray(start), m))));
