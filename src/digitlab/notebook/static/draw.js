// digitlab draw(): a canvas in a notebook output. Strokes → PNG data URL in `image` → Python answers through
// `verdict`, `reason`, `label`, `probabilities`, `top_k`, `processed` and `error`; in number mode (a wide canvas)
// through `text`, `digits` and `confidence` (see digitlab/notebook/widget.py).
import { NO_DIGIT, NO_NUMBER, digitStatus, pct, readingStatus, refusedStatus } from "../../web/static/texts.js";

function render({ model, el }) {
  const number = model.get("mode") === "number";
  const root = document.createElement("div");
  root.className = "digitlab-draw" + (number ? " number" : "");
  const [w, h] = number ? [720, 200] : [280, 280]; // the canvas's buffer: the image Python gets
  const hint = number ? "Write a number, digits left to right." : "Draw one digit, 0–9.";
  root.innerHTML = `
    <div><div class="pad-wrap"><canvas class="pad" width="${w}" height="${h}" aria-label="${number ? "Write a number" : "Draw a digit"}"></canvas>
      <div class="boxes" aria-hidden="true"></div></div>
      <div class="tools"><label>Brush <input class="brush" type="range" min="6" max="40" value="18" aria-label="Brush size"></label>
        <button class="undo" type="button" aria-label="Undo the last stroke">Undo</button>
        <button class="clear" type="button" aria-label="Clear the canvas">Clear</button></div></div>
    <div class="answer"><div class="label" data-testid="prediction" data-placeholder="?"></div><div class="status">${hint}</div>
      <span class="verdict" data-testid="verdict" hidden></span>
      <div class="error"></div>
      <div class="seen"><img alt="the 28×28 the model saw"><span>what the model saw (28×28)</span></div>
      <div class="bars"></div>
      <div class="digits" data-testid="reading-digits" aria-label="Each digit read, left to right"></div></div>`;
  el.appendChild(root);
  const pad = root.querySelector("canvas.pad");
  const ctx = pad.getContext("2d");
  const strokes = [];
  let current = null;

  function paint() {
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.strokeStyle = "#000"; ctx.fillStyle = "#000"; ctx.lineCap = "round"; ctx.lineJoin = "round";
    for (const s of strokes) {
      ctx.lineWidth = s.width;
      if (s.points.length === 1) {
        ctx.beginPath(); ctx.arc(s.points[0][0], s.points[0][1], s.width / 2, 0, 2 * Math.PI); ctx.fill(); continue;
      }
      ctx.beginPath(); ctx.moveTo(...s.points[0]);
      for (const p of s.points.slice(1)) ctx.lineTo(...p);
      ctx.stroke();
    }
  }
  function at(e) {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
  }
  function send() {
    model.set("image", strokes.length ? pad.toDataURL("image/png") : "");
    model.save_changes();
  }
  pad.addEventListener("pointerdown", (e) => {
    e.preventDefault(); pad.setPointerCapture(e.pointerId);
    current = { width: Number(root.querySelector(".brush").value) * h / 280, points: [at(e)] };
    strokes.push(current); paint();
  });
  pad.addEventListener("pointermove", (e) => {
    if (!current) return;
    e.preventDefault();
    for (const ev of (e.getCoalescedEvents ? e.getCoalescedEvents() : [e])) current.points.push(at(ev));
    paint();
  });
  for (const type of ["pointerup", "pointercancel"]) {
    pad.addEventListener(type, () => { if (current) { current = null; send(); } });
  }
  root.querySelector(".undo").addEventListener("click", () => { strokes.pop(); paint(); send(); });
  root.querySelector(".clear").addEventListener("click", () => { strokes.length = 0; paint(); send(); });

  // The answer's text, or nothing and a grey placeholder (a CSS ::before) when there is none.
  function answer(text, placeholder) {
    const labelEl = root.querySelector(".label");
    labelEl.textContent = text; labelEl.dataset.placeholder = placeholder;
    labelEl.classList.toggle("empty", text === "");
  }

  // Number mode: the text, a box over each digit's ink, and each digit's 28×28 with label and confidence.
  function showReading() {
    const digits = model.get("digits") || [], drawn = !!model.get("image");
    answer(model.get("text") || "", drawn ? "–" : "?");
    root.querySelector(".status").textContent = !drawn ? hint : !digits.length ? NO_NUMBER
      : readingStatus(digits.length, model.get("confidence"));
    const boxes = root.querySelector(".boxes"), row = root.querySelector(".digits");
    boxes.replaceChildren(); row.replaceChildren();
    const css = pad.clientWidth / pad.width; // the posted image is the canvas's buffer
    for (const d of digits) {
      const [x0, y0, x1, y1] = d.box, box = document.createElement("div");
      box.className = "box";
      Object.assign(box.style, { left: `${pad.offsetLeft + pad.clientLeft + x0 * css}px`, top: `${pad.offsetTop + pad.clientTop + y0 * css}px`,
        width: `${(x1 - x0) * css}px`, height: `${(y1 - y0) * css}px` });
      box.innerHTML = `<span>${d.label}</span>`;
      boxes.appendChild(box);
      const fig = document.createElement("figure");
      fig.innerHTML = `<img alt="the 28×28 read as ${d.label}" src="${d.processed}"><figcaption><b>${d.label}</b> ${pct(d.confidence)}</figcaption>`;
      row.appendChild(fig);
    }
  }

  function show() {
    root.querySelector(".verdict").textContent = model.get("verdict") || "";
    const error = model.get("error");
    root.querySelector(".error").textContent = error ? `error: ${error}` : "";
    if (number) { showReading(); return; }
    const label = model.get("label"), probs = model.get("probabilities") || [], verdict = model.get("verdict");
    answer(label === null || label === undefined ? "" : String(label), model.get("image") ? "–" : "?");
    const top = model.get("top_k") || [];
    root.querySelector(".status").textContent = !model.get("image") ? hint
      : verdict === "blank" ? NO_DIGIT
      : label === null || label === undefined ? refusedStatus(model.get("reason"), verdict || "no digit")
      : digitStatus(top);
    root.querySelector(".bars").classList.toggle("muted", verdict !== "digit");
    const img = root.querySelector(".seen img");
    if (model.get("processed")) img.src = model.get("processed"); else img.removeAttribute("src");
    const bars = root.querySelector(".bars");
    bars.replaceChildren();
    probs.forEach((p, d) => {
      const row = document.createElement("div");
      row.className = "bar" + (d === label ? " top" : "");
      row.innerHTML = `<span>${d}</span><span class="track"><span class="fill" style="width:${(p * 100).toFixed(1)}%"></span></span><span>${(p * 100).toFixed(1)}%</span>`;
      bars.appendChild(row);
    });
  }
  for (const name of ["label", "probabilities", "processed", "error", "reason", "verdict", "text", "digits"]) {
    model.on(`change:${name}`, show);
  }
  paint(); show();
  return () => {};
}
export default { render };
