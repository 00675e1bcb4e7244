// digitlab draw page, shared by every host: strokes on a canvas (pointer events: mouse, touch, pen), undo, clear,
// upload/paste/drop → a backend's answer → the label (or why there is none), the bars, and the 28×28 the model
// saw; in number mode a wide canvas → the text, boxes and each digit (reading.js).
//
// The backend is what answers: `serverBackend()` asks `digitlab serve` (backend-server.js), `browserBackend()`
// runs preprocessing and the model in the page (backend-browser.js). Its methods:
//   predict(drawing) → {blank, verdict, reason, label, probabilities, top_k, processed, timing_ms}
//   read(drawing)    → {blank, text, confidence, digits: [{label, confidence, box, processed}]}  (optional)
//   describe()       → the footer's line about the model (a promise)
//   correct(drawing, label, predicted)                                                         (optional)
// where `drawing` is {canvas, upload} (see `drawing()` below) and `processed` a PNG URL or 784 floats in [0, 1].
// Stable hooks for tests and embedders: [data-testid=prediction] (the digit, empty when none),
// [data-testid=processed] (the 28×28) and [data-testid=probabilities] (the bars).

import { clearReading, showReading as drawReading, staleReading } from "./reading.js";
import { NO_DIGIT, NO_NUMBER, digitStatus, pct, readingStatus, refusedStatus } from "./texts.js";

const TEXT = {
  digit: { title: "Draw a digit", intro: "Draw one digit from 0 to 9. The network answers as you draw.",
    empty: "No digit yet: draw one", pad: "Drawing canvas: draw a digit with mouse, finger or pen" },
  number: { title: "Write a number", intro: "Write a number in one line, digits left to right. The network reads it as you write.",
    empty: "No number yet: write one", pad: "Drawing canvas: write a number with mouse, finger or pen" },
};

/** Draw a 28×28 (a PNG URL, or 784 floats in [0, 1]) on a 28×28 canvas context. */
export function drawProcessed(context, processed) {
  if (typeof processed === "string") {
    const img = new Image();
    img.onload = () => context.drawImage(img, 0, 0, 28, 28);
    img.src = processed;
    return;
  }
  const data = context.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(processed[i] * 255);
    data.data[i * 4] = data.data[i * 4 + 1] = data.data[i * 4 + 2] = v; data.data[i * 4 + 3] = 255;
  }
  context.putImageData(data, 0, 0);
}

/** A 28×28 as a PNG data URL (for an <img>). */
export function processedUrl(processed) {
  if (typeof processed === "string") return processed;
  const c = document.createElement("canvas");
  c.width = c.height = 28;
  drawProcessed(c.getContext("2d"), processed);
  return c.toDataURL("image/png");
}

/**
 * Wire the page up to a backend.
 * @param {object} backend see the top of this file.
 * @param {object} [host] where the page lives: `root`, the Document (default) or a ShadowRoot holding the page's
 *   markup (a notebook widget); `frame`, the element that carries the page's classes and data attributes (default
 *   the document's body); `hash`, whether the mode follows the URL's #number and names the document (default
 *   true; a widget leaves the notebook's URL and title alone); `mode`, the mode to start in when not by the URL.
 * @returns {{state: object, predict: Function}} the page's state and its predict function (for benches).
 */
export function startPage(backend, { root = document, frame = document.body, hash = true, mode: first = "digit" } = {}) {
  const $ = (id) => root.getElementById(id);
  const pad = $("pad");
  const ctx = pad.getContext("2d", { willReadFrequently: true }); // the in-browser backend reads its pixels
  const seen = $("seen").getContext("2d");
  // Stroke points are in units of the canvas's height (x from 0 to its aspect ratio, y from 0 to 1) and stroke
  // widths a fraction of its height, so a drawing survives a resize and a switch between the square and wide pads.
  const state = { strokes: [], current: null, upload: null, seq: 0, shown: 0, label: null, timer: null,
    mode: "digit", reading: null };
  if (!backend.read) for (const el of root.querySelectorAll(".mode, #as-number")) el.remove();
  if (!backend.correct) $("feedback")?.remove();

  // The canvas keeps its drawing buffer at device resolution so strokes stay smooth on phones.
  function resizePad() {
    const scale = window.devicePixelRatio || 1;
    const w = Math.round(pad.clientWidth * scale) || 280, h = Math.round(pad.clientHeight * scale) || 280;
    if (pad.width !== w || pad.height !== h) { pad.width = w; pad.height = h; redraw(); }
  }

  function redraw() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, pad.width, pad.height);
    if (state.upload && state.upload.img) {
      const { img } = state.upload;
      const f = Math.min(pad.width / img.width, pad.height / img.height);
      ctx.drawImage(img, (pad.width - img.width * f) / 2, (pad.height - img.height * f) / 2, img.width * f, img.height * f);
    }
    for (const s of state.strokes) drawStroke(s);
  }

  function drawStroke(s) {
    ctx.strokeStyle = "#000"; ctx.fillStyle = "#000";
    ctx.lineCap = "round"; ctx.lineJoin = "round";
    const u = pad.height; // one unit of the stroke's coordinates
    ctx.lineWidth = s.width * u;
    const pts = s.points;
    if (pts.length === 1) {
      ctx.beginPath(); ctx.arc(pts[0][0] * u, pts[0][1] * u, ctx.lineWidth / 2, 0, 2 * Math.PI); ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(pts[0][0] * u, pts[0][1] * u);
    for (const [x, y] of pts.slice(1)) ctx.lineTo(x * u, y * u);
    ctx.stroke();
  }

  function point(e) { // the canvas's drawing area is inside its border
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left - pad.clientLeft) / pad.clientHeight, (e.clientY - r.top - pad.clientTop) / pad.clientHeight];
  }

  pad.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    const width = Number($("brush").value) / 280; // brush size relative to the canvas's height
    performance.mark("digitlab:stroke-start"); // benches time the first answer after a stroke from these marks
    state.current = { width, points: [point(e)] };
    state.strokes.push(state.current);
    drawStroke(state.current);
    staleReading(root);
  });
  pad.addEventListener("pointermove", (e) => {
    if (!state.current) return;
    e.preventDefault();
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events) state.current.points.push(point(ev));
    redraw();
    schedule(150);
  });
  for (const type of ["pointerup", "pointercancel"]) {
    pad.addEventListener(type, () => {
      if (!state.current) return;
      state.current = null;
      performance.mark("digitlab:stroke-end");
      schedule(0);
    });
  }

  $("brush").addEventListener("input", () => { $("brush-size").textContent = $("brush").value; });
  $("undo").addEventListener("click", () => { state.strokes.pop(); redraw(); schedule(0); });
  $("clear").addEventListener("click", () => { state.strokes = []; state.upload = null; redraw(); schedule(0); });
  pad.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); $("undo").click(); }
    if (e.key === "Escape" || e.key === "Delete") $("clear").click();
  });

  // --- image input: upload, drag-and-drop, paste -------------------------------------------------------
  function useFile(file) {
    if (!file || !file.type.startsWith("image/")) { showError("That is not an image file."); return; }
    const reader = new FileReader();
    reader.onload = () => {
      const img = new Image();
      img.onload = () => { state.strokes = []; state.upload = { url: reader.result, img }; redraw(); schedule(0); };
      img.onerror = () => { state.strokes = []; state.upload = { url: reader.result, img: null }; redraw(); schedule(0); };
      img.src = reader.result;
    };
    reader.readAsDataURL(file);
  }
  $("file").addEventListener("change", (e) => { useFile(e.target.files[0]); e.target.value = ""; });
  pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("dragover"); });
  pad.addEventListener("dragleave", () => pad.classList.remove("dragover"));
  pad.addEventListener("drop", (e) => { e.preventDefault(); pad.classList.remove("dragover"); useFile(e.dataTransfer.files[0]); });
  (hash ? window : pad).addEventListener("paste", (e) => { // a widget takes only what is pasted on its canvas
    const item = [...(e.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
    if (item) useFile(item.getAsFile());
  });

  // --- mode: one digit, or a number on a wide canvas -------------------------------------------------------
  function setMode(mode, { keep = true } = {}) {
    if (mode !== "number" || !backend.read) mode = "digit";
    const before = pad.clientWidth / pad.clientHeight;
    state.mode = mode;
    frame.classList.toggle("mode-number", mode === "number");
    for (const input of root.querySelectorAll("input[name=mode]")) input.checked = input.value === mode;
    const text = TEXT[mode];
    $("title").textContent = text.title; $("intro").textContent = text.intro;
    pad.setAttribute("aria-label", text.pad);
    if (hash) {
      document.title = `digitlab: ${text.title.toLowerCase()}`;
      if (backend.read && location.hash !== `#${mode}`) history.replaceState(null, "", mode === "digit" ? location.pathname : "#number");
    }
    // the drawing stays, centred on the new canvas, when it fits there
    const shift = (pad.clientWidth / pad.clientHeight - before) / 2;
    const after = pad.clientWidth / pad.clientHeight;
    for (const s of state.strokes) for (const p of s.points) p[0] += shift;
    if (!keep || state.strokes.some((s) => s.points.some(([x]) => x < 0 || x > after))) state.strokes = [];
    state.current = null;
    showEmpty();
    resizePad(); redraw(); schedule(0);
  }
  for (const input of root.querySelectorAll("input[name=mode]")) {
    input.addEventListener("change", () => { if (input.checked) setMode(input.value); });
  }
  $("as-number")?.addEventListener("click", () => { setMode("number"); pad.focus(); });
  if (hash) window.addEventListener("hashchange", () => setMode(location.hash === "#number" ? "number" : "digit"));

  // --- prediction -----------------------------------------------------------------------------------------
  function schedule(ms) {
    clearTimeout(state.timer);
    state.timer = setTimeout(predict, ms);
  }

  // Where the image lies on the canvas's buffer: the drawing is the buffer itself; an upload is fitted and
  // centred (see redraw). Kept with each request so the boxes of its answer land on the ink it was about.
  function posted() {
    if (state.upload && state.strokes.length === 0) {
      const { img } = state.upload;
      if (!img) return null;
      const f = Math.min(pad.width / img.width, pad.height / img.height);
      return { f, x: (pad.width - img.width * f) / 2, y: (pad.height - img.height * f) / 2, width: pad.width };
    }
    return { f: 1, x: 0, y: 0, width: pad.width };
  }

  // A box [x0, y0, x1, y1] in the image's pixels → CSS pixels over the canvas, inside its border.
  function placer(at) {
    if (!at) return null;
    return ([x0, y0, x1, y1]) => {
      const css = pad.clientWidth / at.width;
      return { left: pad.offsetLeft + pad.clientLeft + (at.x + x0 * at.f) * css, top: pad.offsetTop + pad.clientTop + (at.y + y0 * at.f) * css,
        width: (x1 - x0) * at.f * css, height: (y1 - y0) * at.f * css };
    };
  }

  // What a backend is asked about: an upload alone is sent as the original file (full quality), else the canvas.
  function drawing() {
    return { canvas: pad, upload: state.upload && state.strokes.length === 0 ? state.upload : null };
  }

  async function predict() {
    if (state.strokes.length === 0 && !state.upload) { showEmpty(); return; }
    const seq = ++state.seq, mode = state.mode, at = posted();
    const started = performance.now(), finished = state.current === null;
    let body;
    try {
      body = await (mode === "number" ? backend.read(drawing()) : backend.predict(drawing()));
    } catch (err) {
      if (seq >= state.shown) showError(String(err.message || err));
      return;
    }
    if (seq < state.shown || mode !== state.mode) return; // an older answer arriving late
    state.shown = seq;
    const took = Math.round(performance.now() - started);
    $("latency").textContent = backend.kind === "browser" ? `${took} ms in the browser` : `${took} ms round trip (model side ${body.timing_ms} ms)`;
    if (mode === "number") showReading(body, at); else show(body);
    frame.dataset.answered = String(seq); // benches and tests wait on this
    // an answer to the finished drawing (asked after its last stroke ended), with when it was asked
    if (finished) performance.mark("digitlab:answer", { detail: { asked: started } });
  }

  // The big answer: the prediction's text, or nothing and a grey placeholder glyph (a CSS ::before) when there
  // is no answer, so `[data-testid=prediction]` holds only what the model said.
  function answer(text, kind, placeholder = "–", verdict = "") {
    const label = $("label");
    label.textContent = text; label.dataset.state = kind; label.dataset.placeholder = placeholder;
    $("verdict").textContent = verdict;
  }

  const inside = () => window.digitlabInside; // the served page's explanations panel, where there is one
  const feedback = (hidden) => { if ($("feedback")) $("feedback").hidden = hidden; };

  function show(r) {
    drawProcessed(seen, r.processed);
    const verdict = r.verdict || (r.blank ? "blank" : "digit");
    if ($("as-number")) $("as-number").hidden = verdict !== "several_digits";
    if ($("thanks")) $("thanks").textContent = "";
    $("confidence").textContent = "";
    if (r.blank) {
      answer("", "blank", "–", verdict);
      $("status").textContent = NO_DIGIT;
      state.label = null; bars(null); feedback(true);
      inside()?.clear();
      return;
    }
    if (verdict !== "digit") { // several digits, or not a digit: say so, and no confident digit
      answer("", "refused", verdict === "several_digits" ? "…" : "–", verdict);
      $("status").textContent = refusedStatus(r.reason, verdict);
      state.label = null; bars(r.probabilities, true);
      feedback(verdict !== "not_a_digit"); // "it was a 7" still teaches the model
      if (verdict === "not_a_digit") inside()?.update(currentImage(), r); else inside()?.clear();
      return;
    }
    answer(String(r.label), "digit", "", verdict);
    $("confidence").textContent = pct(r.probabilities[r.label]);
    $("status").textContent = digitStatus(r.top_k);
    state.label = r.label; bars(r.probabilities); feedback(false);
    inside()?.update(currentImage(), r);
  }

  // The image as a data URL: what the server's explanations and corrections take.
  function currentImage() {
    const { upload } = drawing();
    return upload ? upload.url : pad.toDataURL("image/png");
  }

  function showReading(r, at) {
    if (r.blank || !r.text) {
      answer("", "blank", "–", "blank"); state.reading = null;
      $("status").textContent = NO_NUMBER;
      clearReading(root);
      return;
    }
    answer(r.text, "digit", "", "number");
    state.reading = { r, at };
    $("status").textContent = readingStatus(r.digits.length, r.confidence);
    drawReading(r, placer(at), processedUrl, root);
  }

  function showEmpty() {
    state.shown = ++state.seq; state.reading = null;
    inside()?.clear();
    clearReading(root);
    answer("", "empty", "?");
    $("status").textContent = TEXT[state.mode].empty;
    $("confidence").textContent = "";
    if ($("as-number")) $("as-number").hidden = true;
    seen.fillStyle = "#000"; seen.fillRect(0, 0, 28, 28);
    state.label = null; bars(null); feedback(true);
  }

  function showError(message) {
    state.reading = null;
    clearReading(root);
    answer("", "blank", "!");
    $("status").textContent = `Error: ${message}`;
  }

  function bars(probs, muted = false) {
    const list = $("bars");
    list.classList.toggle("muted", muted);
    if (!list.children.length) {
      for (let d = 0; d < 10; d++) {
        const li = document.createElement("li");
        li.innerHTML = `<span>${d}</span><span class="bar"><span class="fill"></span></span><span class="p">–</span>`;
        li.dataset.digit = d;
        list.appendChild(li);
      }
    }
    const top = probs ? probs.indexOf(Math.max(...probs)) : -1;
    [...list.children].forEach((li, d) => {
      const v = probs ? probs[d] : 0;
      li.querySelector(".fill").style.width = `${(v * 100).toFixed(1)}%`;
      li.querySelector(".p").textContent = probs ? `${(v * 100).toFixed(1)}%` : "–";
      li.classList.toggle("top", d === top);
      li.setAttribute("aria-label", `${d}: ${probs ? (v * 100).toFixed(1) + "%" : "no prediction"}`);
    });
  }

  // --- corrections (a backend that stores them) ----------------------------------------------------------------
  const digits = root.querySelector(".digits");
  if (backend.correct && digits) {
    for (let d = 0; d < 10; d++) {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = d; b.setAttribute("aria-label", `It was a ${d}`);
      b.addEventListener("click", () => correct(d));
      digits.appendChild(b);
    }
  }

  async function correct(label) {
    try {
      await backend.correct(drawing(), label, state.label);
      $("thanks").textContent = `Thanks! Saved as a ${label}.`;
    } catch (err) {
      $("thanks").textContent = `Could not save: ${err.message || err}`;
    }
  }

  // --- start ----------------------------------------------------------------------------------------------
  // The canvas's own size, not the window's: a widget's page is laid out after it starts (its canvas may be 0 wide
  // then) and resized with its output area.
  new ResizeObserver(() => {
    resizePad();
    if (state.reading) drawReading(state.reading.r, placer(state.reading.at), processedUrl, root); // boxes follow the canvas
  }).observe(pad);
  setMode(hash ? (location.hash === "#number" ? "number" : "digit") : first, { keep: false });
  backend.describe().then((text) => { $("model").textContent = text; }).catch((err) => {
    $("model").textContent = `model unavailable: ${err.message || err}`;
  });
  frame.dataset.interactive = "true"; // the canvas takes strokes from now on (benches wait for it)
  return { state, predict };
}
