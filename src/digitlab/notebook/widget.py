"""`draw()`: the draw-a-digit canvas inside Jupyter, JupyterLab, VS Code and Colab (anywidget).

The canvas is one ES module (`static/draw.js`, shipped as package data, no build step). After each stroke it
sets `image` to the canvas's PNG data URL; Python then runs exactly what the server runs for `/api/predict`
(the same `to_mnist_28x28`, the same `Predictor` with its runtime and fitted temperature) and answers through
synced traits: `label` (None for "no digit"), `probabilities`, `top_k`, `processed` (the 28×28 the model saw,
a PNG data URL) and `error`. Scripts can set `image` themselves. A bad image sets `error`; nothing raises in
the kernel. In Colab, anywidget turns on Colab's custom widget manager by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

from digitlab.data.decode import decode_data_url
from digitlab.data.preprocess import to_mnist_28x28
from digitlab.errors import DigitlabError
from digitlab.inference.predictor import Predictor, top_k_of
from digitlab.models.saved import LoadedModel

STATIC = Path(__file__).parent / "static"
MAX_PIXELS = 16_000_000  # the server's default decoded-pixel limit


class DrawWidget(anywidget.AnyWidget):
    _esm = STATIC / "draw.js"
    _css = STATIC / "draw.css"

    image = traitlets.Unicode("").tag(sync=True)  # a data:image/png;base64,... URL (the canvas, or set by you)
    label = traitlets.Int(None, allow_none=True).tag(sync=True)  # None: no digit (or an error)
    probabilities = traitlets.List(traitlets.Float(), default_value=[]).tag(sync=True)
    top_k = traitlets.List(default_value=[]).tag(sync=True)
    processed = traitlets.Unicode("").tag(sync=True)  # the 28×28 the model saw, PNG data URL
    reason = traitlets.Unicode("").tag(sync=True)  # why it is "no digit"
    error = traitlets.Unicode("").tag(sync=True)
    model_name = traitlets.Unicode("").tag(sync=True)
    runtime = traitlets.Unicode("").tag(sync=True)

    def __init__(self, predictor: Predictor, top_k: int = 3, **kwargs: Any):
        super().__init__(model_name=predictor.name, runtime=predictor.runtime.name, **kwargs)
        self._predictor = predictor
        self._k = top_k
        self.observe(self._answer, names="image")

    def _answer(self, change: dict) -> None:
        url = change["new"]
        if not url:
            self._show()
            return
        try:
            if not isinstance(url, str) or not url.startswith("data:"):
                raise DigitlabError("image must be a data:image/...;base64,... URL")
            processed = to_mnist_28x28(decode_data_url(url), max_pixels=MAX_PIXELS)
            probs = None if processed.blank else self._predictor.probabilities(processed.pixels[None])[0]
        except DigitlabError as e:
            self._show(error=str(e))
            return
        self._show(probs, processed.to_data_url(), processed.reason)

    def _show(self, probs=None, processed: str = "", reason: str = "", error: str = "") -> None:
        """Set every answer trait at once (one sync to the front end); no probabilities means no label."""
        with self.hold_sync():
            self.error, self.processed, self.reason = error, processed, reason
            if probs is None:
                self.label, self.probabilities, self.top_k = None, [], []
            else:
                self.probabilities = [round(float(p), 6) for p in probs]
                self.top_k = top_k_of(probs, self._k)
                self.label = int(probs.argmax())


def draw(model: str | Path | LoadedModel | Predictor = "runs/default", top_k: int = 3, runtime: str = "auto"):
    """A drawing canvas that answers with `model` (a run directory, a .keras file, a LoadedModel or a Predictor)."""
    if isinstance(model, Predictor):
        predictor = model
    elif isinstance(model, LoadedModel):
        from digitlab.inference.runtimes import KerasRuntime

        predictor = Predictor(model, KerasRuntime(model.model))
    else:
        predictor = Predictor.load(model, runtime, log=lambda *_: None)
    return DrawWidget(predictor, top_k=top_k)
