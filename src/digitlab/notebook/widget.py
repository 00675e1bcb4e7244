"""`draw()`: the draw page inside Jupyter, JupyterLab, VS Code and Colab (anywidget).

The widget runs the page itself: `digitlab.web`'s modules (`page.js` and what it imports), its markup
(`templates/page.html`, rendered without its document) and its CSS, in a shadow root, with a backend that asks
the kernel (`static/widget.js`, bundled into the one ES module anywidget loads: `static/widget.bundle.js`, `make
widget`). So the widget draws, uploads, switches between a digit and a number and says what the page says.

After each stroke the page sets `image` (the canvas's PNG data URL), `mode` and a new `request`; Python runs
exactly what the server runs for `/api/predict` (the same `to_mnist_28x28`, the same `Predictor` with its runtime,
fitted temperature and verdicts) and answers through synced traits: `verdict` ("digit", "blank",
"several_digits" or "not_a_digit") with its `reason`, `label` (None unless the verdict is "digit"),
`probabilities`, `top_k`, `processed` (the 28×28 the model saw, a PNG data URL) and `error`, then `answered`.

In number mode (`mode="number"`, or the page's switch) it runs what `/api/read` runs (`read_number` through the
same Predictor): `text` (e.g. "42"), `digits` (each `label`, `confidence`, `box` [x0, y0, x1, y1] in the image's
pixels and `processed`), `confidence`, and `verdict` "number" or "blank".

Scripts can set `image` (and `mode`) themselves. A bad image sets `error`; nothing raises in the kernel. In
Colab, anywidget turns on Colab's custom widget manager by itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from digitlab.data.decode import decode_data_url
from digitlab.data.preprocess import to_mnist_28x28
from digitlab.errors import ConfigError, DigitlabError
from digitlab.inference.predictor import Predictor
from digitlab.inference.read import Reading, read_number
from digitlab.inference.verdict import Answer
from digitlab.models.saved import LoadedModel

STATIC = Path(__file__).parent / "static"
TEMPLATE = Path(__file__).parent / "templates" / "widget.html"
MAX_PIXELS = 16_000_000  # the server's default decoded-pixel limit
MODES = ("digit", "number")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


def widget_module() -> str:
    """The widget's one ES module: `static/widget.js` with the page's modules, bundled by esbuild (`make widget`).

    Returns:
        The module's JavaScript source.
    """
    return (STATIC / "widget.bundle.js").read_text()


def page_parts() -> tuple[str, str]:
    """(the page's markup without its document, the page's CSS): what the widget puts in its shadow root."""
    from digitlab.web import STATIC as PAGE_STATIC
    from digitlab.web import render_page

    return render_page(TEMPLATE, "", fragment=True), (PAGE_STATIC / "style.css").read_text()


class DrawWidget(anywidget.AnyWidget):
    """A drawing canvas in a notebook that answers with a model, through the same code as `digitlab predict`.

    Draw (or set `image` to a PNG data URL) and the traits update together: `label`, `probabilities`,
    `top_k`, the `processed` 28×28 and, when the answer is not a digit, `verdict` and `reason`; in number
    mode `text`, `digits` and `confidence`.
    """

    _esm = widget_module()
    _page_markup = traitlets.Unicode("").tag(sync=True)
    _page_css = traitlets.Unicode("").tag(sync=True)

    image = traitlets.Unicode("").tag(sync=True)  # a data:image/png;base64,... URL (the canvas, or set by you)
    label = traitlets.Int(None, allow_none=True).tag(sync=True)  # None: no digit (or an error)
    probabilities = traitlets.List(traitlets.Float(), default_value=[]).tag(sync=True)
    top_k = traitlets.List(default_value=[]).tag(sync=True)
    processed = traitlets.Unicode("").tag(sync=True)  # the 28×28 the model saw, PNG data URL
    reason = traitlets.Unicode("").tag(sync=True)  # why there is no digit (or no number)
    mode = traitlets.Unicode("digit").tag(sync=True)  # "digit" or "number": what `image` is answered as
    verdict = traitlets.Unicode("").tag(sync=True)  # digit|blank|several_digits|not_a_digit; number: number|blank
    text = traitlets.Unicode("").tag(sync=True)  # number mode: what was read, e.g. "42"
    digits = traitlets.List(default_value=[]).tag(sync=True)  # number mode: label, confidence, box, processed
    confidence = traitlets.Float(0.0).tag(sync=True)  # number mode: the chance every digit is right
    error = traitlets.Unicode("").tag(sync=True)
    model_name = traitlets.Unicode("").tag(sync=True)
    runtime = traitlets.Unicode("").tag(sync=True)
    request = traitlets.Int(0).tag(sync=True)  # the page's question number, with `image` and `mode`
    answered = traitlets.Int(0).tag(sync=True)  # the `request` the answer traits are for
    timing_ms = traitlets.Float(0.0).tag(sync=True)  # how long the kernel took to answer

    def __init__(self, predictor: Predictor, top_k: int = 3, mode: str = "digit", **kwargs: Any):
        """Make the widget (use `draw`, which also loads the model).

        Args:
            predictor: the model that answers.
            top_k: classes listed in `top_k`.
            mode: "digit" or "number".
            **kwargs: passed to `anywidget.AnyWidget`.

        Raises:
            ConfigError: for another mode.
        """
        _check_mode(mode)
        markup, css = page_parts()
        names = {"model_name": predictor.name, "runtime": predictor.runtime.name}
        super().__init__(**names, mode=mode, _page_markup=markup, _page_css=css, **kwargs)
        self._predictor = predictor
        self._k = top_k
        self._last: tuple = ()
        self.observe(self._answer, names=["image", "mode", "request"])

    def _answer(self, _change: dict) -> None:
        """Answer `image` as `mode` says, once per (image, mode, request): the page sets all three at once."""
        key = (self.image, self.mode, self.request)
        if key == self._last:
            return
        self._last = key
        started = time.perf_counter()
        self._respond()
        with self.hold_sync():
            self.timing_ms = round((time.perf_counter() - started) * 1000, 1)
            self.answered = self.request

    def _respond(self) -> None:
        url = self.image
        if not url:
            self._show()
            return
        try:
            _check_mode(self.mode)
            if not isinstance(url, str) or not url.startswith("data:"):
                raise DigitlabError("image must be a data:image/...;base64,... URL")
            data = decode_data_url(url)
            if self.mode == "number":
                self._show_reading(read_number(data, self._predictor, max_pixels=MAX_PIXELS))
                return
            processed = to_mnist_28x28(data, max_pixels=MAX_PIXELS)
            answer = self._predictor.answer(processed, self._k)
        except DigitlabError as e:
            self._show(error=str(e))
            return
        self._show(answer, processed.to_data_url())

    def _show(self, answer: Answer | None = None, processed: str = "", error: str = "") -> None:
        """Set every answer trait at once (one sync to the front end): the answer's fields, or the error."""
        with self.hold_sync():
            self.error, self.processed = error, processed
            self.text, self.digits, self.confidence = "", [], 0.0
            self.verdict, self.reason = (answer.verdict, answer.reason) if answer else ("", "")
            self.label = answer.label if answer else None
            self.probabilities = (answer.probabilities or []) if answer else []
            self.top_k = answer.top_k if answer else []

    def _show_reading(self, reading: Reading) -> None:
        """Number mode's answer: the text, each digit (with its 28×28) and the overall confidence."""
        digits = [{**d.to_json(), "processed": d.processed.to_data_url()} for d in reading.digits]
        with self.hold_sync():
            self.error, self.processed, self.label, self.probabilities, self.top_k = "", "", None, [], []
            self.verdict = "blank" if reading.blank else "number"
            self.reason, self.text, self.confidence = reading.reason, reading.text, round(reading.confidence, 6)
            self.digits = digits


def draw(
    model: str | Path | LoadedModel | Predictor = "runs/default",
    top_k: int = 3,
    runtime: str = "auto",
    mode: str = "digit",
):
    """A drawing canvas that answers with `model`.

    Args:
        model: a run directory, a model file, a `LoadedModel` or a `Predictor`.
        top_k: classes listed under the answer.
        runtime: "auto", "keras", "onnx" or "litert" (when a path is given).
        mode: "digit" (one digit, with the verdict and reason when it is not one) or "number" (a wide canvas,
            read as one line of digits).

    Returns:
        The `DrawWidget`, displayed inline.

    Raises:
        ConfigError: for another mode, before anything is loaded.
    """
    _check_mode(mode)
    if isinstance(model, Predictor):
        predictor = model
    elif isinstance(model, LoadedModel):
        from digitlab.inference.runtimes import KerasRuntime

        predictor = Predictor(model, KerasRuntime(model.model))
    else:
        predictor = Predictor.load(model, runtime)  # its one-off notices (an export made now) show in the cell
    predictor.refusal()  # a run without a saved refusal fits it now (once, ~10 s, said in one line), not on a stroke
    return DrawWidget(predictor, top_k=top_k, mode=mode)
