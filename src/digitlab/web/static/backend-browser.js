// The in-browser backend of the draw page: preprocessing (preprocess.js), the model (ONNX Runtime Web, wasm, one
// thread) and the "not a digit" refusal score all run in the page; no request leaves it after load.
//
// It reads what `digitlab export --format web` writes beside the page: `model/web.json` (the model's input
// contract, temperature, the refusal's weights, the digit space's layout), `model/model.onnx` and
// `model/digit-space.bin` (float32: the PCA mean and basis and the bank of training digits, as
// `digitlab.data.digit_space`). The score is the same logistic regression as `digitlab.inference.refusal`.

import { C, setConstants } from "./constants.js";
import { toMnist28x28 } from "./preprocess.js";
import { readInk, readNumber } from "./read.js";

const WASM_MAGIC = [0x00, 0x61, 0x73, 0x6d]; // "\0asm": what a WebAssembly file starts with

/** A one-line error a person can act on (the page shows it as is). */
export class SetupError extends Error {}

async function fetchOk(url, what) {
  let res;
  try { res = await fetch(url); } catch (err) { throw new SetupError(`could not load ${what} (${url}): ${err.message || err}`); }
  if (!res.ok) throw new SetupError(`could not load ${what} (${url}): HTTP ${res.status}`);
  return res;
}

/** The wasm runtime's bytes, refused with a clear reason when the server sends something else (an HTML page). */
export async function loadWasm(url) {
  const res = await fetchOk(url, "ONNX Runtime's WebAssembly file");
  const bytes = await res.arrayBuffer();
  const head = new Uint8Array(bytes, 0, Math.min(4, bytes.byteLength));
  if (!WASM_MAGIC.every((b, i) => head[i] === b)) {
    const type = res.headers.get("Content-Type") || "no Content-Type";
    const text = new TextDecoder().decode(new Uint8Array(bytes, 0, Math.min(64, bytes.byteLength))).trim();
    const html = /^<(!doctype|html)/i.test(text) ? "an HTML page" : `${bytes.byteLength} bytes that are not WebAssembly`;
    throw new SetupError(`the server sent ${html} (${type}) for ${url}, where ONNX Runtime's WebAssembly file belongs ` +
      "(it must start with 00 61 73 6d): upload the ort/ folder as it is and serve .wasm files as they are");
  }
  return bytes;
}

/** The refusal's six features (energy, doubt, knn, residual, flatness, ink) of one 28×28 and its logits. */
export function refusalFeatures(pixels, logits, space) {
  const top = Math.max(...logits);
  const sumExp = logits.reduce((s, v) => s + Math.exp(v - top), 0);
  const energy = -(top + Math.log(sumExp));
  const doubt = 1 - 1 / sumExp; // 1 − the largest softmax probability
  const { mean, components, bank, k, n } = space;
  const centred = new Float32Array(784);
  for (let i = 0; i < 784; i++) centred[i] = pixels[i] - mean[i];
  const z = new Float32Array(k);
  for (let c = 0; c < k; c++) {
    let s = 0;
    for (let i = 0; i < 784; i++) s += centred[i] * components[c * 784 + i];
    z[c] = s;
  }
  // The NEIGHBOURS (5) smallest squared distances to the bank, sorted. The components come in order of variance, so a partial
  // sum over the first ones usually passes the 5th best already and the rest need not be added (the same result).
  const m = C.NEIGHBOURS, last = m - 1, nearest = new Array(m).fill(Infinity);
  for (let j = 0, row = 0; j < n; j++, row += k) {
    let d2 = 0, c = 0;
    while (c < k) {
      const end = Math.min(c + 8, k);
      for (; c < end; c++) { const d = z[c] - bank[row + c]; d2 += d * d; }
      if (d2 >= nearest[last]) break;
    }
    if (d2 < nearest[last]) { let p = last; while (p > 0 && nearest[p - 1] > d2) { nearest[p] = nearest[p - 1]; p--; } nearest[p] = d2; }
  }
  const knn = nearest.reduce((s, d) => s + Math.sqrt(Math.max(d, 0)), 0) / m;
  let residual = 0;
  for (let i = 0; i < 784; i++) {
    let r = centred[i];
    for (let c = 0; c < k; c++) r -= z[c] * components[c * 784 + i];
    residual += r * r;
  }
  let inkCount = 0, rows = 0, cols = 0;
  const level = C.INK_LEVEL;
  for (let y = 0; y < 28; y++) { let any = false; for (let x = 0; x < 28; x++) if (pixels[y * 28 + x] > level) { any = true; inkCount++; } rows += any; }
  for (let x = 0; x < 28; x++) { let any = false; for (let y = 0; y < 28; y++) if (pixels[y * 28 + x] > level) any = true; cols += any; }
  const flatness = Math.abs(Math.log(Math.max(cols, 1) / Math.max(rows, 1)));
  return [energy, doubt, knn, Math.sqrt(residual), flatness, inkCount / 784];
}

/**
 * 1 − the mean cosine similarity of a network's features to their `k` nearest in the bank (`feature_bank.FeatureBank`).
 * @param {ArrayLike<number>} features the network's D features of one 28×28.
 * @param {{bank: Float32Array, rows: number, width: number, neighbours: number}} bank L2-normalised rows.
 */
export function featureKnn(features, { bank, rows, width, neighbours }) {
  // ReLU features are often 0: the dot products run over the others only (adding 0 changes no sum)
  const at = new Int32Array(width), value = new Float64Array(width);
  let norm = 0, nonzero = 0;
  for (let i = 0; i < width; i++) {
    const f = features[i];
    norm += f * f;
    if (f !== 0) { at[nonzero] = i; value[nonzero++] = f; }
  }
  norm = Math.max(Math.sqrt(norm), 1e-12);
  const best = new Array(neighbours).fill(-Infinity); // the largest similarities, descending
  for (let r = 0, row = 0; r < rows; r++, row += width) {
    let s = 0;
    for (let j = 0; j < nonzero; j++) s += value[j] * bank[row + at[j]];
    s /= norm;
    if (s > best[neighbours - 1]) { let p = neighbours - 1; while (p > 0 && best[p - 1] < s) { best[p] = best[p - 1]; p--; } best[p] = s; }
  }
  return 1 - best.reduce((a, b) => a + b, 0) / neighbours;
}

/**
 * The squared Mahalanobis distance of a network's features to the nearest class mean (`FeatureBank.mahalanobis`).
 * @param {ArrayLike<number>} features the network's D features of one 28×28.
 * @param {{whitening: Float32Array, centres: Float32Array, width: number, classes: number}} m the (D, D) factor L
 *   of the shared covariance's inverse and the (classes, D) class means times L, row-major.
 */
export function mahalanobis(features, { whitening, centres, width, classes }) {
  const z = new Float64Array(width);
  for (let i = 0; i < width; i++) {
    const f = features[i];
    if (f === 0) continue; // ReLU features are often 0
    for (let j = 0, row = i * width; j < width; j++) z[j] += f * whitening[row + j];
  }
  let best = Infinity;
  for (let c = 0; c < classes; c++) {
    let d2 = 0;
    for (let j = 0, row = c * width; j < width; j++) { const d = z[j] - centres[row + j]; d2 += d * d; }
    best = Math.min(best, d2);
  }
  return best;
}

/**
 * `verdict.judge` after "blank": several marks, one mark wide enough to be touching digits, not a digit, a digit.
 * @param {object} processed from `toMnist28x28`, not blank.
 * @param {() => boolean} refused whether the refusal says "not a digit" (asked only when it decides).
 * @param {(ink: object, fill?: boolean) => Promise<object>} read the reader (`readInk` with the model's scores).
 * @returns {Promise<[string, string]>} [verdict, reason]; the reason is "" for a digit.
 */
export async function verdictOf(processed, refused, read) {
  const marks = processed.details.marks || 1;
  if (marks >= 2) {
    const { text } = await read(processed.ink);
    return ["several_digits", `several digits: ${marks} separate marks, reads as '${text}'; use read for numbers`];
  }
  if ((processed.details.mark_aspect || 0) > C.TOUCHING_ASPECT) {
    const reading = await read(processed.ink, false); // clear cuts only: a wide 2 is not "22"
    if (reading.digits.length >= 2 && Math.min(...reading.digits.map((d) => d.confidence)) >= C.TOUCHING_CONFIDENCE) {
      return ["several_digits", `several digits: reads as '${reading.text}' (touching); use read for numbers`];
    }
  }
  return refused() ? ["not_a_digit", C.NOT_A_DIGIT] : ["digit", ""];
}

/**
 * The refusal's score (higher: less like a digit); above `refusal.threshold` it says "not a digit".
 * @param {number[]} features the regression's inputs (`refusal.features`, in order).
 * @param {object} refusal from web.json.
 * @param {{mahalanobis?: number, conv_mahalanobis?: number}} [distances] the Mahalanobis distances of the features'
 *   penultimate and convolution parts, for a refusal that uses them: the score is then the largest of the
 *   regression's and each `scale · distance + offset` (`Refusal.score`).
 */
export function refusalScore(features, refusal, distances = {}) {
  let s = features.reduce((a, f, i) => a + ((f - refusal.mean[i]) / refusal.std[i]) * refusal.coef[i], refusal.intercept);
  for (const [name, distance] of Object.entries(distances)) {
    const m = refusal[name];
    if (m && distance !== undefined) s = Math.max(s, m.scale * distance + m.offset);
  }
  return s;
}

// The pixels of what the page shows: the canvas, or an upload at its own size (alpha kept for transparent PNGs).
function pixelsOf({ canvas, upload }) {
  let source = canvas;
  if (upload && upload.img) {
    source = document.createElement("canvas");
    source.width = upload.img.naturalWidth; source.height = upload.img.naturalHeight;
    source.getContext("2d").drawImage(upload.img, 0, 0);
  }
  const data = source.getContext("2d", { willReadFrequently: true }).getImageData(0, 0, source.width, source.height);
  return { data: data.data, width: data.width, height: data.height, channels: 4 };
}

/**
 * A backend (see page.js) that answers in the page.
 * @param {{ort: object, model?: string, wasm?: string}} options `ort`: the ONNX Runtime Web module; `model`: the
 *   folder of web.json (default "model/"); `wasm`: the runtime's .wasm file (default "ort/ort-wasm-simd-threaded.wasm").
 */
export function browserBackend({ ort, model = "model/", wasm = "ort/ort-wasm-simd-threaded.wasm" }) {
  let ready = null;
  async function setup() {
    const info = await (await fetchOk(`${model}web.json`, "the model's description")).json();
    if (!info.constants) {
      throw new SetupError("this export's web.json has no constants (an older digitlab wrote it): export it again " +
        "with digitlab export RUN --format web");
    }
    setConstants(info.constants);
    ort.env.wasm.numThreads = 1; // one thread: no SharedArrayBuffer, so no cross-origin isolation headers needed
    ort.env.wasm.proxy = false;
    // the runtime, the model, the digit space and the refusal's feature bank download side by side
    const bankInfo = info.refusal.feature_bank, mahalanobisInfo = info.refusal.mahalanobis;
    const convInfo = info.refusal.conv_mahalanobis;
    const [binary, onnx, space, bankBytes, mahalanobisBytes, convBytes] = await Promise.all([
      loadWasm(wasm),
      fetchOk(`${model}${info.model.file}`, "the model").then((r) => r.arrayBuffer()),
      fetchOk(`${model}${info.digit_space.file}`, "the digit space").then((r) => r.arrayBuffer()),
      bankInfo ? fetchOk(`${model}${bankInfo.file}`, "the refusal's feature bank").then((r) => r.arrayBuffer()) : null,
      mahalanobisInfo ? fetchOk(`${model}${mahalanobisInfo.file}`, "the refusal's class centres").then((r) => r.arrayBuffer()) : null,
      convInfo ? fetchOk(`${model}${convInfo.file}`, "the refusal's class centres of the last convolution").then((r) => r.arrayBuffer()) : null,
    ]);
    ort.env.wasm.wasmBinary = binary; // checked by loadWasm, then handed over: ORT does not fetch it again
    ort.env.wasm.wasmPaths = new URL(wasm.replace(/[^/]*$/, ""), location.href).href;
    let session;
    try {
      session = await ort.InferenceSession.create(onnx, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
    } catch (err) {
      throw new SetupError(`ONNX Runtime could not start: ${err.message || err}`);
    }
    const { components: k, bank: n } = info.digit_space;
    const f = new Float32Array(space);
    const digitSpace = { k, n, mean: f.subarray(0, 784), components: f.subarray(784, 784 + k * 784),
      bank: f.subarray(784 + k * 784, 784 + k * 784 + n * k) }; // (the bank's norms follow: Python's kNN uses them)
    // a model with features answers `logits` and `features` (models/export.py): the logits by name
    const output = session.outputNames.includes("logits") ? "logits" : session.outputNames[0];
    const withFeatures = Boolean(bankInfo) && session.outputNames.includes("features");
    const bank = withFeatures ? { ...bankInfo, bank: new Float32Array(bankBytes) } : null;
    // each distance's file: the (width, width) whitening, then the (classes, width) class centres
    const distance = (layout, bytes) => {
      const m = new Float32Array(bytes), w = layout.width;
      return { ...layout, whitening: m.subarray(0, w * w), centres: m.subarray(w * w) };
    };
    if (bank && mahalanobisBytes) bank.mahalanobis = distance(mahalanobisInfo, mahalanobisBytes);
    if (bank && convBytes) bank.conv_mahalanobis = distance(convInfo, convBytes);
    // the refusal with the network's features when both the model and the export carry them, else the six-feature one
    const refusal = withFeatures ? info.refusal : info.refusal.plain || info.refusal;
    return { info, session, digitSpace, input: session.inputNames[0], output, bank, refusal };
  }
  const init = () => (ready ??= setup());

  // The model on a batch of 28×28s (each 784 floats): (N, 10) logits as arrays, and the features (N, D) when the
  // refusal uses them (else null).
  async function forward(batch) {
    const { session, input, output, bank } = await init();
    const n = batch.length, data = new Float32Array(n * 784);
    batch.forEach((p, i) => data.set(p, i * 784));
    const feeds = { [input]: new ort.Tensor("float32", data, [n, 28, 28, 1]) };
    const names = bank ? [output, "features"] : [output];
    const result = await session.run(feeds, names);
    const flat = result[output].data;
    const logits = batch.map((_, i) => Array.from(flat.subarray(i * 10, i * 10 + 10)));
    const f = bank ? result.features.data : null, width = bank ? result.features.dims[1] : 0;
    return { logits, features: f ? batch.map((_, i) => f.subarray(i * width, (i + 1) * width)) : null };
  }
  const logitsOf = async (batch) => (await forward(batch)).logits;

  // The refusal's margin of one 28×28 (> 0: refused), with the network's features when it uses them.
  function margin(pixels, logits, features, { digitSpace, bank, refusal }) {
    const x = refusalFeatures(pixels, logits, digitSpace);
    if (!(bank && features)) return refusalScore(x, refusal) - refusal.threshold;
    x.push(featureKnn(features, bank));
    const distances = {};
    if (bank.mahalanobis) distances.mahalanobis = mahalanobis(features, bank.mahalanobis);
    const conv = bank.conv_mahalanobis; // the convolution's part of the features starts after the penultimate one
    if (conv) distances.conv_mahalanobis = mahalanobis(features.subarray(conv.start), conv);
    return refusalScore(x, refusal, distances) - refusal.threshold;
  }

  function softmax(logits, t) {
    const top = Math.max(...logits), exp = logits.map((v) => Math.exp((v - top) / t)), total = exp.reduce((a, b) => a + b, 0);
    return exp.map((v) => v / total);
  }

  // What the reader needs of a batch of pieces: calibrated probabilities and the refusal's margin (> 0: refused).
  async function score(batch) {
    const state = await init();
    const { logits, features } = await forward(batch);
    return {
      probabilities: logits.map((l) => softmax(l, state.info.temperature)),
      margins: logits.map((l, i) => margin(batch[i], l, features && features[i], state)),
    };
  }

  async function judge(processed, logits, features) {
    const state = await init();
    return verdictOf(processed, () => margin(processed.pixels, logits, features, state) > 0, (ink, fill) => readInk(ink, score, fill));
  }

  return {
    kind: "browser",
    init,
    /** One run on a blank 28×28: the first run of a session allocates and compiles; the visitor's should not. */
    async warm() { await logitsOf([new Float32Array(784)]); },
    async predict(drawing) {
      const { info } = await init();
      const t0 = performance.now();
      const processed = toMnist28x28(pixelsOf(drawing));
      const t1 = performance.now();
      const timing_ms = { preprocess: t1 - t0, model: 0, refusal: 0 };
      const body = { processed: processed.pixels, blank: processed.blank, label: null, top_k: [], probabilities: null, timing_ms };
      if (processed.blank) return { ...body, verdict: "blank", reason: processed.reason };
      const { logits: [logits], features } = await forward([processed.pixels]);
      const t2 = performance.now();
      timing_ms.model = t2 - t1;
      const probabilities = softmax(logits, info.temperature);
      const top_k = probabilities.map((probability, label) => ({ label, probability }))
        .sort((a, b) => b.probability - a.probability).slice(0, 3);
      const [verdict, reason] = await judge(processed, logits, features && features[0]);
      timing_ms.refusal = performance.now() - t2; // and the reading, when there is one
      return { ...body, verdict, reason, probabilities, top_k, label: verdict === "digit" ? top_k[0].label : null };
    },
    /** Number mode: the one line of digits in the drawing (`read.read_number`). */
    read: (drawing) => readNumber(pixelsOf(drawing), score),
    async describe() {
      const { info } = await init();
      const acc = info.metrics && info.metrics.test_accuracy;
      return `model ${info.name}` + (acc ? `, test accuracy ${(acc * 100).toFixed(2)}%` : "") +
        ` · runs in this browser (ONNX Runtime Web ${info.runtime.version}, wasm)`;
    },
  };
}
