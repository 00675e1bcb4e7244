// The server backend of the draw page: `digitlab serve` answers (POST /api/predict, /api/read, /api/feedback,
// GET /api/model), and keeps the explanations and corrections that need it.

// The image a request carries: an upload as its original file (full quality), else the canvas as a PNG.
const image = ({ canvas, upload }) => (upload ? upload.url : canvas.toDataURL("image/png"));

async function post(path, payload) {
  const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

/** A backend (see page.js) that asks the digitlab server the page came from. */
export function serverBackend() {
  return {
    kind: "server",
    predict: (drawing) => post("/api/predict", { image: image(drawing) }),
    read: (drawing) => post("/api/read", { image: image(drawing) }),
    correct: (drawing, label, predicted) => post("/api/feedback", { image: image(drawing), label, predicted }),
    async describe() {
      const m = await (await fetch("/api/model")).json();
      const acc = m.metrics && m.metrics.test_accuracy;
      return `model ${m.name}` + (acc ? `, test accuracy ${(acc * 100).toFixed(2)}%` : "") +
        (m.runtime ? ` · runtime ${m.runtime}` : "") +
        (m.contract ? ` · imported ${m.contract.format}: ${m.contract.assumed}` : "");
    },
  };
}
