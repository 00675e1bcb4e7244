// digitlab "Inside the network" panel: after each prediction, POST /api/explain (debounced, never blocking the
// prediction) → layer maps, the attribution overlay, and the drawing's place among the training digits.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const overlay = $("overlay").getContext("2d");
  const map = $("map").getContext("2d");
  const NAMES = { ig: "Integrated Gradients", smoothgrad: "SmoothGrad", layercam: "LayerCAM", gradcam: "Grad-CAM", occlusion: "Occlusion" };
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const st = { image: null, label: null, timer: null, seq: 0, busy: false, dirty: false, points: null, bounds: null,
    last: null };

  for (let d = 0; d < 10; d++) {
    const o = document.createElement("option");
    o.value = d; o.textContent = `why not ${d}?`;
    $("contrast").appendChild(o);
  }
  $("method").addEventListener("change", () => schedule(0));
  $("contrast").addEventListener("change", () => schedule(0));

  function schedule(ms) {
    clearTimeout(st.timer);
    if (st.image) st.timer = setTimeout(explain, ms);
  }

  // At most one explanation per page is in flight. Aborting a fetch does not stop the server's work, so a newer
  // drawing does not cancel the request in flight: it waits, and the latest drawing is sent when that returns.
  async function explain() {
    if (st.busy) { st.dirty = true; return; }
    st.busy = true; st.dirty = false;
    const seq = ++st.seq;
    const contrast = $("contrast").value === "" ? null : Number($("contrast").value);
    const payload = { image: st.image, method: $("method").value, contrast: contrast === st.label ? null : contrast };
    $("inside-status").textContent = "explaining…";
    let body, retry = 0;
    try {
      const res = await fetch("/api/explain", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
      });
      body = await res.json();
      if (res.status === 429) retry = 1000 * Number(res.headers.get("Retry-After") || 1); // busy: try again
      else if (!res.ok) throw new Error(body.error || res.statusText);
    } catch (err) {
      if (seq === st.seq) $("inside-status").textContent = `Could not explain: ${err.message || err}`;
      body = null;
    } finally {
      st.busy = false;
    }
    if (retry || st.dirty) { if (st.image) schedule(retry); return; }
    if (!body || seq !== st.seq || body.blank) return;
    st.last = body;
    render(body);
    const t = body.timing_ms || {};
    $("inside-status").textContent = `explained in ${Math.round(t.total || 0)} ms on the server`;
  }

  function render(r) {
    drawOverlay(r);
    drawLayers(r.layers || [], r.layers_of);
    drawMap(r.embedding);
  }

  function drawOverlay(r) {
    const seen = new Image();
    seen.onload = () => {
      overlay.globalAlpha = 1;
      overlay.drawImage(seen, 0, 0, 28, 28);
      const a = r.attribution;
      if (!a) return;
      let peak = 0;
      for (const row of a.values) for (const v of row) peak = Math.max(peak, Math.abs(v));
      const img = overlay.getImageData(0, 0, 28, 28);
      for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
        const v = peak ? a.values[y][x] / peak : 0, k = (y * 28 + x) * 4, m = Math.min(1, Math.abs(v) * 1.4);
        const [cr, cg, cb] = v >= 0 ? [230, 40, 40] : [40, 110, 230];
        const g = img.data[k] * 0.45;  // the digit, dimmed, under the colour
        img.data[k] = g + (cr - g) * m; img.data[k + 1] = g + (cg - g) * m; img.data[k + 2] = g + (cb - g) * m;
      }
      overlay.putImageData(img, 0, 0);
      const against = a.contrast === null || a.contrast === undefined ? "" : ` rather than ${a.contrast}`;
      let text = `${NAMES[a.method]}: red pixels push the answer toward ${a.target}${against}, blue pixels push against it.`;
      if (a.completeness) {
        text += ` The map adds up to ${a.completeness.sum.toFixed(2)}; the score changes by ${a.completeness.score_difference.toFixed(2)} from the ${a.baseline_name} baseline to your drawing (${(a.completeness.relative_error * 100).toFixed(1)}% apart).`;
      }
      $("why").textContent = text;
    };
    seen.src = r.processed;
  }

  function drawLayers(layers, of) {
    const box = $("layers");
    box.replaceChildren();
    if (of) {  // an ensemble averages several networks: these are one of them
      const note = document.createElement("p");
      note.className = "explainer";
      note.textContent = `This model is an ensemble: the layers below, the LayerCAM and Grad-CAM maps and the map of training digits are those of its ${of}; the answer and the other attributions are the whole ensemble's.`;
      box.appendChild(note);
    }
    for (const layer of layers) {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = layer.image; img.alt = `${layer.name} activations`;
      if (layer.shape.length === 1) img.className = "strip";
      const cap = document.createElement("figcaption");
      const what = { conv: "convolution", pool: "pooling", norm: "batch norm", dense: "dense", logits: "logits", adapter: "input adapter" }[layer.kind] || layer.kind;
      cap.textContent = `${layer.name}: ${what}, ${layer.shape.join("×")}`;
      fig.append(img, cap);
      box.appendChild(fig);
    }
  }

  function toCanvas(x, y) {
    const b = st.bounds, w = $("map").width, h = $("map").height, m = 10;
    return [m + (x - b.x0) / (b.x1 - b.x0) * (w - 2 * m), h - m - (y - b.y0) / (b.y1 - b.y0) * (h - 2 * m)];
  }

  function drawMap(e) {
    if (!e) return;
    drawNeighbours(e.neighbours); // the five nearest training digits need no map
    if (!st.points) return; // the scatter waits for /api/explain/map
    const w = $("map").width, h = $("map").height;
    map.fillStyle = "#fff"; map.fillRect(0, 0, w, h);
    const p = st.points;
    for (let i = 0; i < p.x.length; i++) {
      const [cx, cy] = toCanvas(p.x[i], p.y[i]);
      map.fillStyle = PALETTE[p.label[i]]; map.globalAlpha = 0.55;
      map.fillRect(cx - 1.5, cy - 1.5, 3, 3);
    }
    map.globalAlpha = 1;
    for (let d = 0; d < 10; d++) { map.fillStyle = PALETTE[d]; map.font = "11px system-ui"; map.fillText(d, 6 + d * 12, 12); }
    for (const n of e.neighbours) {
      const [nx, ny] = toCanvas(n.x, n.y);
      map.strokeStyle = "#000"; map.lineWidth = 1; map.strokeRect(nx - 3, ny - 3, 6, 6);
    }
    const [cx, cy] = toCanvas(e.x, e.y);
    map.strokeStyle = "#000"; map.lineWidth = 3;
    map.beginPath(); map.arc(cx, cy, 8, 0, 2 * Math.PI); map.stroke();
  }

  function drawNeighbours(neighbours) {
    const box = $("neighbours");
    box.replaceChildren();
    for (const n of neighbours) {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.src = n.image; img.alt = `training digit ${n.label}`;
      const cap = document.createElement("figcaption");
      cap.textContent = `${n.label}`;
      fig.append(img, cap);
      box.appendChild(fig);
    }
  }

  async function loadMap() {
    try {
      const res = await fetch("/api/explain/map");
      const p = await res.json();
      if (!res.ok) return;
      const pad = (lo, hi) => [lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05];
      const [x0, x1] = pad(Math.min(...p.x), Math.max(...p.x)), [y0, y1] = pad(Math.min(...p.y), Math.max(...p.y));
      st.points = p; st.bounds = { x0, x1, y0, y1 };
      if (st.last) drawMap(st.last.embedding);
    } catch (err) { /* the map is optional: the rest of the panel still works */ }
  }

  window.digitlabInside = {
    update(image, prediction) {
      st.image = image; st.label = prediction.label;
      if (!st.points) loadMap();
      schedule(350);
    },
    clear() {
      st.image = null; st.seq++; clearTimeout(st.timer);
      overlay.fillStyle = "#000"; overlay.fillRect(0, 0, 28, 28);
      $("layers").replaceChildren(); $("neighbours").replaceChildren();
      $("why").textContent = "Draw a digit to see which pixels made the answer.";
      $("inside-status").textContent = "";
    },
  };
})();
