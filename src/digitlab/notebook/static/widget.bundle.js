// src/digitlab/web/static/texts.js
var pct = (p) => `${(p * 100).toFixed(1)}%`;
function sentence(reason) {
  const text = reason.replace(/; use read for numbers$/, "");
  return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
}
var digitStatus = (top) => `${pct(top[0].probability)} sure` + (top[1] ? `; next: ${top[1].label} (${pct(top[1].probability)})` : "");
var readingStatus = (n, confidence) => `${n} digit${n === 1 ? "" : "s"}, ${pct(confidence)} sure of ${n === 1 ? "it" : n === 2 ? "both" : "all " + n}`;
var refusedStatus = (reason, verdict) => sentence(reason || verdict.replace(/_/g, " "));
var NO_DIGIT = "No digit found. Draw one digit, larger.";
var NO_NUMBER = "No digits found. Write a number, larger.";

// src/digitlab/web/static/reading.js
var UNSURE = 0.6;
function showReading(reading, place, url = (p) => p, root = document) {
  const boxes = root.getElementById("boxes"), row = root.getElementById("reading-digits");
  boxes.replaceChildren();
  row.replaceChildren();
  boxes.classList.remove("stale");
  reading.digits.forEach((d, i) => {
    const unsure = d.confidence < UNSURE;
    const at = place && place(d.box);
    if (at) {
      const box = document.createElement("div");
      box.className = "box" + (unsure ? " unsure" : "");
      Object.assign(box.style, { left: `${at.left}px`, top: `${at.top}px`, width: `${at.width}px`, height: `${at.height}px` });
      const tag = document.createElement("span");
      tag.textContent = d.label;
      box.appendChild(tag);
      boxes.appendChild(box);
    }
    const fig = document.createElement("figure");
    if (unsure) fig.className = "unsure";
    const img = document.createElement("img");
    img.src = url(d.processed);
    img.width = 28;
    img.height = 28;
    img.dataset.testid = "processed";
    img.alt = `digit ${i + 1}: the 28\xD728 the model saw, read as ${d.label}`;
    const cap = document.createElement("figcaption");
    cap.innerHTML = `<b>${d.label}</b> <span>${pct(d.confidence)}</span>`;
    fig.append(img, cap);
    row.appendChild(fig);
  });
}
function clearReading(root = document) {
  root.getElementById("boxes")?.replaceChildren();
  root.getElementById("reading-digits")?.replaceChildren();
}
function staleReading(root = document) {
  root.getElementById("boxes")?.classList.add("stale");
}

// src/digitlab/web/static/page.js
var TEXT = {
  digit: {
    title: "Draw a digit",
    intro: "Draw one digit from 0 to 9. The network answers as you draw.",
    empty: "No digit yet: draw one",
    pad: "Drawing canvas: draw a digit with mouse, finger or pen"
  },
  number: {
    title: "Write a number",
    intro: "Write a number in one line, digits left to right. The network reads it as you write.",
    empty: "No number yet: write one",
    pad: "Drawing canvas: write a number with mouse, finger or pen"
  }
};
function drawProcessed(context, processed) {
  if (typeof processed === "string") {
    const img = new Image();
    img.onload = () => context.drawImage(img, 0, 0, 28, 28);
    img.src = processed;
    return;
  }
  const data = context.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = Math.round(processed[i] * 255);
    data.data[i * 4] = data.data[i * 4 + 1] = data.data[i * 4 + 2] = v;
    data.data[i * 4 + 3] = 255;
  }
  context.putImageData(data, 0, 0);
}
function processedUrl(processed) {
  if (typeof processed === "string") return processed;
  const c = document.createElement("canvas");
  c.width = c.height = 28;
  drawProcessed(c.getContext("2d"), processed);
  return c.toDataURL("image/png");
}
function startPage(backend, { root = document, frame = document.body, hash = true, mode: first = "digit" } = {}) {
  const $ = (id) => root.getElementById(id);
  const pad = $("pad");
  const ctx = pad.getContext("2d", { willReadFrequently: true });
  const seen = $("seen").getContext("2d");
  const state = {
    strokes: [],
    current: null,
    upload: null,
    seq: 0,
    shown: 0,
    label: null,
    timer: null,
    mode: "digit",
    reading: null
  };
  if (!backend.read) for (const el of root.querySelectorAll(".mode, #as-number")) el.remove();
  if (!backend.correct) $("feedback")?.remove();
  function resizePad() {
    const scale = window.devicePixelRatio || 1;
    const w = Math.round(pad.clientWidth * scale) || 280, h = Math.round(pad.clientHeight * scale) || 280;
    if (pad.width !== w || pad.height !== h) {
      pad.width = w;
      pad.height = h;
      redraw();
    }
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
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    const u = pad.height;
    ctx.lineWidth = s.width * u;
    const pts = s.points;
    if (pts.length === 1) {
      ctx.beginPath();
      ctx.arc(pts[0][0] * u, pts[0][1] * u, ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(pts[0][0] * u, pts[0][1] * u);
    for (const [x, y] of pts.slice(1)) ctx.lineTo(x * u, y * u);
    ctx.stroke();
  }
  function point(e) {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left - pad.clientLeft) / pad.clientHeight, (e.clientY - r.top - pad.clientTop) / pad.clientHeight];
  }
  pad.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    const width = Number($("brush").value) / 280;
    performance.mark("digitlab:stroke-start");
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
  $("brush").addEventListener("input", () => {
    $("brush-size").textContent = $("brush").value;
  });
  $("undo").addEventListener("click", () => {
    state.strokes.pop();
    redraw();
    schedule(0);
  });
  $("clear").addEventListener("click", () => {
    state.strokes = [];
    state.upload = null;
    redraw();
    schedule(0);
  });
  pad.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "z") {
      e.preventDefault();
      $("undo").click();
    }
    if (e.key === "Escape" || e.key === "Delete") $("clear").click();
  });
  function useFile(file) {
    if (!file || !file.type.startsWith("image/")) {
      showError("That is not an image file.");
      return;
    }
    const reader = new FileReader();
    reader.onload = () => {
      const img = new Image();
      img.onload = () => {
        state.strokes = [];
        state.upload = { url: reader.result, img };
        redraw();
        schedule(0);
      };
      img.onerror = () => {
        state.strokes = [];
        state.upload = { url: reader.result, img: null };
        redraw();
        schedule(0);
      };
      img.src = reader.result;
    };
    reader.readAsDataURL(file);
  }
  $("file").addEventListener("change", (e) => {
    useFile(e.target.files[0]);
    e.target.value = "";
  });
  pad.addEventListener("dragover", (e) => {
    e.preventDefault();
    pad.classList.add("dragover");
  });
  pad.addEventListener("dragleave", () => pad.classList.remove("dragover"));
  pad.addEventListener("drop", (e) => {
    e.preventDefault();
    pad.classList.remove("dragover");
    useFile(e.dataTransfer.files[0]);
  });
  (hash ? window : pad).addEventListener("paste", (e) => {
    const item = [...e.clipboardData?.items || []].find((i) => i.type.startsWith("image/"));
    if (item) useFile(item.getAsFile());
  });
  function setMode(mode, { keep = true } = {}) {
    if (mode !== "number" || !backend.read) mode = "digit";
    const before = pad.clientWidth / pad.clientHeight;
    state.mode = mode;
    frame.classList.toggle("mode-number", mode === "number");
    for (const input of root.querySelectorAll("input[name=mode]")) input.checked = input.value === mode;
    const text = TEXT[mode];
    $("title").textContent = text.title;
    $("intro").textContent = text.intro;
    pad.setAttribute("aria-label", text.pad);
    if (hash) {
      document.title = `digitlab: ${text.title.toLowerCase()}`;
      if (backend.read && location.hash !== `#${mode}`) history.replaceState(null, "", mode === "digit" ? location.pathname : "#number");
    }
    const shift = (pad.clientWidth / pad.clientHeight - before) / 2;
    const after = pad.clientWidth / pad.clientHeight;
    for (const s of state.strokes) for (const p of s.points) p[0] += shift;
    if (!keep || state.strokes.some((s) => s.points.some(([x]) => x < 0 || x > after))) state.strokes = [];
    state.current = null;
    showEmpty();
    resizePad();
    redraw();
    schedule(0);
  }
  for (const input of root.querySelectorAll("input[name=mode]")) {
    input.addEventListener("change", () => {
      if (input.checked) setMode(input.value);
    });
  }
  $("as-number")?.addEventListener("click", () => {
    setMode("number");
    pad.focus();
  });
  if (hash) window.addEventListener("hashchange", () => setMode(location.hash === "#number" ? "number" : "digit"));
  function schedule(ms) {
    clearTimeout(state.timer);
    state.timer = setTimeout(predict, ms);
  }
  function posted() {
    if (state.upload && state.strokes.length === 0) {
      const { img } = state.upload;
      if (!img) return null;
      const f = Math.min(pad.width / img.width, pad.height / img.height);
      return { f, x: (pad.width - img.width * f) / 2, y: (pad.height - img.height * f) / 2, width: pad.width };
    }
    return { f: 1, x: 0, y: 0, width: pad.width };
  }
  function placer(at) {
    if (!at) return null;
    return ([x0, y0, x1, y1]) => {
      const css = pad.clientWidth / at.width;
      return {
        left: pad.offsetLeft + pad.clientLeft + (at.x + x0 * at.f) * css,
        top: pad.offsetTop + pad.clientTop + (at.y + y0 * at.f) * css,
        width: (x1 - x0) * at.f * css,
        height: (y1 - y0) * at.f * css
      };
    };
  }
  function drawing() {
    return { canvas: pad, upload: state.upload && state.strokes.length === 0 ? state.upload : null };
  }
  async function predict() {
    if (state.strokes.length === 0 && !state.upload) {
      showEmpty();
      return;
    }
    const seq = ++state.seq, mode = state.mode, at = posted();
    const started = performance.now(), finished = state.current === null;
    let body;
    try {
      body = await (mode === "number" ? backend.read(drawing()) : backend.predict(drawing()));
    } catch (err) {
      if (seq >= state.shown) showError(String(err.message || err));
      return;
    }
    if (seq < state.shown || mode !== state.mode) return;
    state.shown = seq;
    const took = Math.round(performance.now() - started);
    $("latency").textContent = backend.kind === "browser" ? `${took} ms in the browser` : `${took} ms round trip (model side ${body.timing_ms} ms)`;
    if (mode === "number") showReading2(body, at);
    else show(body);
    frame.dataset.answered = String(seq);
    if (finished) performance.mark("digitlab:answer", { detail: { asked: started } });
  }
  function answer(text, kind, placeholder = "\u2013", verdict = "") {
    const label = $("label");
    label.textContent = text;
    label.dataset.state = kind;
    label.dataset.placeholder = placeholder;
    $("verdict").textContent = verdict;
  }
  const inside = () => window.digitlabInside;
  const feedback = (hidden) => {
    if ($("feedback")) $("feedback").hidden = hidden;
  };
  function show(r) {
    drawProcessed(seen, r.processed);
    const verdict = r.verdict || (r.blank ? "blank" : "digit");
    if ($("as-number")) $("as-number").hidden = verdict !== "several_digits";
    if ($("thanks")) $("thanks").textContent = "";
    $("confidence").textContent = "";
    if (r.blank) {
      answer("", "blank", "\u2013", verdict);
      $("status").textContent = NO_DIGIT;
      state.label = null;
      bars(null);
      feedback(true);
      inside()?.clear();
      return;
    }
    if (verdict !== "digit") {
      answer("", "refused", verdict === "several_digits" ? "\u2026" : "\u2013", verdict);
      $("status").textContent = refusedStatus(r.reason, verdict);
      state.label = null;
      bars(r.probabilities, true);
      feedback(verdict !== "not_a_digit");
      if (verdict === "not_a_digit") inside()?.update(currentImage(), r);
      else inside()?.clear();
      return;
    }
    answer(String(r.label), "digit", "", verdict);
    $("confidence").textContent = pct(r.probabilities[r.label]);
    $("status").textContent = digitStatus(r.top_k);
    state.label = r.label;
    bars(r.probabilities);
    feedback(false);
    inside()?.update(currentImage(), r);
  }
  function currentImage() {
    const { upload } = drawing();
    return upload ? upload.url : pad.toDataURL("image/png");
  }
  function showReading2(r, at) {
    if (r.blank || !r.text) {
      answer("", "blank", "\u2013", "blank");
      state.reading = null;
      $("status").textContent = NO_NUMBER;
      clearReading(root);
      return;
    }
    answer(r.text, "digit", "", "number");
    state.reading = { r, at };
    $("status").textContent = readingStatus(r.digits.length, r.confidence);
    showReading(r, placer(at), processedUrl, root);
  }
  function showEmpty() {
    state.shown = ++state.seq;
    state.reading = null;
    inside()?.clear();
    clearReading(root);
    answer("", "empty", "?");
    $("status").textContent = TEXT[state.mode].empty;
    $("confidence").textContent = "";
    if ($("as-number")) $("as-number").hidden = true;
    seen.fillStyle = "#000";
    seen.fillRect(0, 0, 28, 28);
    state.label = null;
    bars(null);
    feedback(true);
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
        li.innerHTML = `<span>${d}</span><span class="bar"><span class="fill"></span></span><span class="p">\u2013</span>`;
        li.dataset.digit = d;
        list.appendChild(li);
      }
    }
    const top = probs ? probs.indexOf(Math.max(...probs)) : -1;
    [...list.children].forEach((li, d) => {
      const v = probs ? probs[d] : 0;
      li.querySelector(".fill").style.width = `${(v * 100).toFixed(1)}%`;
      li.querySelector(".p").textContent = probs ? `${(v * 100).toFixed(1)}%` : "\u2013";
      li.classList.toggle("top", d === top);
      li.setAttribute("aria-label", `${d}: ${probs ? (v * 100).toFixed(1) + "%" : "no prediction"}`);
    });
  }
  const digits = root.querySelector(".digits");
  if (backend.correct && digits) {
    for (let d = 0; d < 10; d++) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = d;
      b.setAttribute("aria-label", `It was a ${d}`);
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
  window.addEventListener("resize", () => {
    resizePad();
    if (state.reading) showReading(state.reading.r, placer(state.reading.at), processedUrl, root);
  });
  setMode(hash ? location.hash === "#number" ? "number" : "digit" : first, { keep: false });
  backend.describe().then((text) => {
    $("model").textContent = text;
  }).catch((err) => {
    $("model").textContent = `model unavailable: ${err.message || err}`;
  });
  frame.dataset.interactive = "true";
  return { state, predict };
}

// src/digitlab/notebook/static/widget.js
function kernelBackend(model) {
  let asked = 0;
  const waiting = /* @__PURE__ */ new Map();
  model.on("change:answered", () => {
    const answered = model.get("answered");
    for (const [n, resolve] of waiting) if (n <= answered) {
      waiting.delete(n);
      resolve();
    }
  });
  async function ask(drawing, mode) {
    const { canvas, upload } = drawing;
    const n = ++asked;
    const done = new Promise((resolve) => waiting.set(n, resolve));
    model.set("image", upload ? upload.url : canvas.toDataURL("image/png"));
    model.set("mode", mode);
    model.set("request", n);
    model.save_changes();
    await done;
    if (model.get("error")) throw new Error(model.get("error"));
  }
  return {
    kind: "kernel",
    async predict(drawing) {
      await ask(drawing, "digit");
      const verdict = model.get("verdict");
      return {
        blank: verdict === "blank",
        verdict,
        reason: model.get("reason"),
        label: model.get("label"),
        probabilities: model.get("probabilities"),
        top_k: model.get("top_k"),
        processed: model.get("processed"),
        timing_ms: model.get("timing_ms")
      };
    },
    async read(drawing) {
      await ask(drawing, "number");
      return {
        blank: model.get("verdict") === "blank",
        text: model.get("text"),
        confidence: model.get("confidence"),
        digits: model.get("digits"),
        timing_ms: model.get("timing_ms")
      };
    },
    describe: async () => `${model.get("model_name")} on ${model.get("runtime")}, in this notebook's kernel`
  };
}
function render({ model, el }) {
  el.classList.add("digitlab-draw");
  if (model.get("mode") === "number") el.classList.add("number");
  const root = el.attachShadow({ mode: "open" });
  root.innerHTML = `<style>${model.get("_page_css")}</style><div class="page">${model.get("_page_markup")}</div>`;
  const frame = root.querySelector(".page");
  startPage(kernelBackend(model), { root, frame, hash: false, mode: model.get("mode") });
  return () => {
  };
}
var widget_default = { render };
export {
  widget_default as default
};
