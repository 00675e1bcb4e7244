// digitlab draw(): a canvas in a notebook output. Strokes → PNG data URL in `image` → Python answers through
// `label`, `probabilities`, `top_k`, `processed` and `error` (see digitlab/notebook/widget.py).
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "digitlab-draw";
  root.innerHTML = `
    <div><canvas class="pad" width="280" height="280" aria-label="Draw a digit"></canvas>
      <div class="tools"><label>Brush <input class="brush" type="range" min="6" max="40" value="18"></label>
        <button class="undo" type="button">Undo</button><button class="clear" type="button">Clear</button></div></div>
    <div class="answer"><div class="label empty">?</div><div class="status">Draw one digit, 0–9.</div>
      <div class="error"></div>
      <div class="seen"><img alt="the 28×28 the model saw"><span>what the model saw (28×28)</span></div>
      <div class="bars"></div></div>`;
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
    current = { width: Number(root.querySelector(".brush").value), points: [at(e)] };
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

  function show() {
    const label = model.get("label"), probs = model.get("probabilities") || [], error = model.get("error");
    const labelEl = root.querySelector(".label");
    labelEl.textContent = label === null || label === undefined ? (model.get("image") ? "–" : "?") : String(label);
    labelEl.classList.toggle("empty", label === null || label === undefined);
    const top = model.get("top_k") || [];
    root.querySelector(".status").textContent = !model.get("image") ? "Draw one digit, 0–9."
      : label === null || label === undefined ? (model.get("reason") || "no digit")
      : `${(top[0].probability * 100).toFixed(1)}% sure` + (top[1] ? `; next ${top[1].label} (${(top[1].probability * 100).toFixed(1)}%)` : "");
    root.querySelector(".error").textContent = error ? `error: ${error}` : "";
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
  for (const name of ["label", "probabilities", "processed", "error", "reason"]) model.on(`change:${name}`, show);
  paint(); show();
  return () => {};
}
export default { render };
