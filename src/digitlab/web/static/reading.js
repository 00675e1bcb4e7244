// digitlab number mode: draws a reading from POST /api/read — each digit's box over the canvas and its 28×28
// with label and confidence in a row. app.js owns the canvas and the requests; this only renders.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const pct = (p) => `${(p * 100).toFixed(1)}%`;
  const UNSURE = 0.6; // a digit the model gives less than this is marked as a doubtful one

  // `place([x0, y0, x1, y1])` maps a box in the posted image's pixels to CSS pixels over the canvas (or null
  // when the canvas does not show the posted image, e.g. an upload the browser cannot decode).
  function show(reading, place) {
    const boxes = $("boxes"), row = $("reading-digits");
    boxes.replaceChildren(); row.replaceChildren();
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
      img.src = d.processed; img.width = 28; img.height = 28;
      img.alt = `digit ${i + 1}: the 28×28 the model saw, read as ${d.label}`;
      const cap = document.createElement("figcaption");
      cap.innerHTML = `<b>${d.label}</b> <span>${pct(d.confidence)}</span>`;
      fig.append(img, cap);
      row.appendChild(fig);
    });
  }

  function clear() {
    $("boxes").replaceChildren();
    $("reading-digits").replaceChildren();
  }

  // While the hand draws, the old boxes no longer match the ink: fade them until the next reading.
  function stale() { $("boxes").classList.add("stale"); }

  window.digitlabReading = { show, clear, stale };
})();
