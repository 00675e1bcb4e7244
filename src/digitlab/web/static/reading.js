// digitlab number mode: draws a reading — each digit's box over the canvas and its 28×28 with label and
// confidence in a row. page.js owns the canvas and asks the backend; this only renders, inside `root` (the
// document, or the shadow root a notebook widget draws the page in).

import { pct } from "./texts.js";

const UNSURE = 0.6; // a digit the model gives less than this is marked as a doubtful one

/**
 * Show a reading.
 * @param {{digits: {label: number, confidence: number, box: number[], processed: any}[]}} reading the answer.
 * @param {Function|null} place maps a box [x0, y0, x1, y1] in the image's pixels to CSS pixels over the canvas
 *   (null when the canvas does not show the image, e.g. an upload the browser cannot decode).
 * @param {Function} url turns a digit's `processed` 28×28 into an image URL.
 * @param {Document|ShadowRoot} [root] where the page's elements are.
 */
export function showReading(reading, place, url = (p) => p, root = document) {
  const boxes = root.getElementById("boxes"), row = root.getElementById("reading-digits");
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
    img.src = url(d.processed); img.width = 28; img.height = 28;
    img.dataset.testid = "processed";
    img.alt = `digit ${i + 1}: the 28×28 the model saw, read as ${d.label}`;
    const cap = document.createElement("figcaption");
    cap.innerHTML = `<b>${d.label}</b> <span>${pct(d.confidence)}</span>`;
    fig.append(img, cap);
    row.appendChild(fig);
  });
}

/** Remove the boxes and the row of digits (of the page in `root`). */
export function clearReading(root = document) {
  root.getElementById("boxes")?.replaceChildren();
  root.getElementById("reading-digits")?.replaceChildren();
}

/** While the hand draws, the old boxes no longer match the ink: fade them until the next reading. */
export function staleReading(root = document) { root.getElementById("boxes")?.classList.add("stale"); }
