// digitlab draw page: strokes on a canvas → POST /api/predict → label, bars, and the 28×28 the model saw.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const $ = (id) => document.getElementById(id);
const state = { strokes: [], current: null, upload: null, seq: 0, shown: 0, label: null, timer: null };

// The canvas keeps its drawing buffer at device resolution so strokes stay smooth on phones.
function resizePad() {
  const scale = window.devicePixelRatio || 1;
  const size = Math.round(pad.getBoundingClientRect().width * scale) || 280;
  if (pad.width !== size) { pad.width = size; pad.height = size; redraw(); }
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
  ctx.lineWidth = s.width * pad.width;
  const pts = s.points;
  if (pts.length === 1) {
    ctx.beginPath(); ctx.arc(pts[0][0] * pad.width, pts[0][1] * pad.height, ctx.lineWidth / 2, 0, 2 * Math.PI); ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(pts[0][0] * pad.width, pts[0][1] * pad.height);
  for (const [x, y] of pts.slice(1)) ctx.lineTo(x * pad.width, y * pad.height);
  ctx.stroke();
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height];
}

pad.addEventListener("pointerdown", (e) => {
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  const width = Number($("brush").value) / 280; // brush size relative to the canvas
  state.current = { width, points: [point(e)] };
  state.strokes.push(state.current);
  drawStroke(state.current);
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

// --- image input: upload, drag-and-drop, paste ---------------------------------------------------------
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
window.addEventListener("paste", (e) => {
  const item = [...(e.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
  if (item) useFile(item.getAsFile());
});

// --- prediction -------------------------------------------------------------------------------------------
function schedule(ms) {
  clearTimeout(state.timer);
  state.timer = setTimeout(predict, ms);
}

function currentImage() {
  if (state.upload && state.strokes.length === 0) return state.upload.url; // the original file, full quality
  return pad.toDataURL("image/png");
}

async function predict() {
  if (state.strokes.length === 0 && !state.upload) { showEmpty(); return; }
  const seq = ++state.seq;
  const started = performance.now();
  let body;
  try {
    const res = await fetch("/api/predict", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image: currentImage() }),
    });
    body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
  } catch (err) {
    if (seq >= state.shown) showError(String(err.message || err));
    return;
  }
  if (seq < state.shown) return; // an older answer arriving late
  state.shown = seq;
  $("latency").textContent = `${Math.round(performance.now() - started)} ms round trip (model side ${body.timing_ms} ms)`;
  show(body);
}

function show(r) {
  const seenImg = new Image();
  seenImg.onload = () => seen.drawImage(seenImg, 0, 0, 28, 28);
  seenImg.src = r.processed;
  const label = $("label");
  if (r.blank) {
    label.textContent = "–"; label.dataset.state = "blank";
    $("status").textContent = "No digit found. Draw one digit, larger.";
    state.label = null; bars(null); $("feedback").hidden = true;
    if (window.digitlabInside) window.digitlabInside.clear();
    return;
  }
  label.textContent = r.label; label.dataset.state = "digit";
  const p = r.probabilities[r.label];
  $("status").textContent = `${(p * 100).toFixed(1)}% sure` + (r.top_k[1] ? `; next: ${r.top_k[1].label} (${(r.top_k[1].probability * 100).toFixed(1)}%)` : "");
  state.label = r.label; bars(r.probabilities); $("feedback").hidden = false; $("thanks").textContent = "";
  if (window.digitlabInside) window.digitlabInside.update(currentImage(), r);
}

function showEmpty() {
  state.shown = ++state.seq;
  if (window.digitlabInside) window.digitlabInside.clear();
  $("label").textContent = "?"; $("label").dataset.state = "empty";
  $("status").textContent = "No digit yet: draw one";
  seen.fillStyle = "#000"; seen.fillRect(0, 0, 28, 28);
  state.label = null; bars(null); $("feedback").hidden = true;
}

function showError(message) {
  $("label").textContent = "!"; $("label").dataset.state = "blank";
  $("status").textContent = `Error: ${message}`;
}

function bars(probs) {
  const list = $("bars");
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

// --- corrections ------------------------------------------------------------------------------------------
const digits = document.querySelector(".digits");
for (let d = 0; d < 10; d++) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = d; b.setAttribute("aria-label", `It was a ${d}`);
  b.addEventListener("click", () => correct(d));
  digits.appendChild(b);
}

async function correct(label) {
  try {
    const res = await fetch("/api/feedback", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image: currentImage(), label, predicted: state.label }),
    });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    $("thanks").textContent = `Thanks! Saved as a ${label}.`;
  } catch (err) {
    $("thanks").textContent = `Could not save: ${err.message || err}`;
  }
}

// --- start ------------------------------------------------------------------------------------------------
window.addEventListener("resize", resizePad);
resizePad(); redraw(); showEmpty();
fetch("/api/model").then((r) => r.json()).then((m) => {
  const acc = m.metrics && m.metrics.test_accuracy;
  $("model").textContent = `model ${m.name}` + (acc ? `, test accuracy ${(acc * 100).toFixed(2)}%` : "") +
    (m.runtime ? ` · runtime ${m.runtime}` : "") +
    (m.contract ? ` · imported ${m.contract.format}: ${m.contract.assumed}` : "");
}).catch(() => { $("model").textContent = "model unavailable"; });
