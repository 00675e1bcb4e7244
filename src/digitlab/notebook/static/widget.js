// digitlab draw(): the draw page itself (web/static/page.js, its markup and CSS) in a notebook output, answered by
// the kernel. Bundled with the page's modules into one ES module (widget.bundle.js, `make widget`): anywidget loads
// a single module. The page lives in a shadow root, so its ids and styles stay out of the notebook's.
//
// The backend asks Python through traits: it sets `image` (the canvas's PNG data URL, or an upload's), `mode`
// and a new `request` number; Python answers (notebook/widget.py) by setting the answer's traits and `answered`
// to that number.
import { startPage } from "../../web/static/page.js";

/** A page backend (see page.js) on a widget's traits. */
function kernelBackend(model) {
  let asked = 0;
  const waiting = new Map(); // request number → resolve
  model.on("change:answered", () => {
    const answered = model.get("answered");
    for (const [n, resolve] of waiting) if (n <= answered) { waiting.delete(n); resolve(); }
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
      return { blank: verdict === "blank", verdict, reason: model.get("reason"), label: model.get("label"),
        probabilities: model.get("probabilities"), top_k: model.get("top_k"), processed: model.get("processed"),
        timing_ms: model.get("timing_ms") };
    },
    async read(drawing) {
      await ask(drawing, "number");
      return { blank: model.get("verdict") === "blank", text: model.get("text"), confidence: model.get("confidence"),
        digits: model.get("digits"), timing_ms: model.get("timing_ms") };
    },
    describe: async () => `${model.get("model_name")} on ${model.get("runtime")}, in this notebook's kernel`,
  };
}

function render({ model, el }) {
  el.classList.add("digitlab-draw");
  if (model.get("mode") === "number") el.classList.add("number"); // the mode it was made in (for tests)
  const root = el.attachShadow({ mode: "open" });
  root.innerHTML = `<style>${model.get("_page_css")}</style><div class="page">${model.get("_page_markup")}</div>`;
  const frame = root.querySelector(".page");
  startPage(kernelBackend(model), { root, frame, hash: false, mode: model.get("mode") });
  return () => {};
}

export default { render };
