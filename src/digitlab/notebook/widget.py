"""`draw()`: the draw-a-digit canvas inside Jupyter, JupyterLab, VS Code and Colab (anywidget).

The canvas is one ES module (`static/draw.js` with the page's wording inlined, `widget_module`; package data, no
build step). After each stroke it
sets `image` to the canvas's PNG data URL; Python then runs exactly what the server runs for `/api/predict`
(the same `to_mnist_28x28`, the same `Predictor` with its runtime, fitted temperature and verdicts) and answers
through synced traits: `verdict` ("digit", "blank", "several_digits" or "not_a_digit") with its `reason`,
`label` (None unless the verdict is "digit"), `probabilities`, `top_k`, `processed` (the 28×28 the model saw,
a PNG data URL) and `error`.

`mode="number"` gives a wide canvas and runs what `/api/read` runs (`read_number` through the same Predictor):
`text` (e.g. "42"), `digits` (each `label`, `confidence`, `box` [x0, y0, x1, y1] in the image's pixels and
`processed`), `confidence`, and `verdict` "number" or "blank".

Scripts can set `image` themselves. A bad image sets `error`; nothing raises in the kernel. In Colab,
anywidget turns on Colab's custom widget manager by itself.
"""

from __future__ import annotations

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
MAX_PIXELS = 16_000_000  # the server's default decoded-pixel limit
MODES = ("digit", "number")


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")


def widget_module() -> str:
    """The widget's one ES module: `static/draw.js` with the page's wording (`digitlab.web` `texts.js`) inlined.

    anywidget loads a single module, which cannot import its neighbours, so the shared module is put in front
    of it here (its `export`s dropped, the import line removed): the page and the widget say the same things.

    Returns:
        The module's JavaScript source.
    """
    import re

    from digitlab.web import STATIC as PAGE_STATIC

    texts = re.sub(r"^export ", "", (PAGE_STATIC / "texts.js").read_text(), flags=re.M)
    shared = r'^import [^\n]* from "[./]*web/static/texts\.js";\n'
    draw = re.sub(shared, "", (STATIC / "draw.js").read_text(), flags=re.M)
    return texts + "\n" + draw


class DrawWidget(anywidget.AnyWidget):
    """A drawing canvas in a notebook that answers with a model, through the same code as `digitlab predict`.

    Draw (or set `image` to a PNG data URL) and the traits update together: `label`, `probabilities`,
    `top_k`, the `processed` 28×28 and, when the answer is not a digit, `verdict` and `reason`; in number
    mode `text`, `digits` and `confidence`.
    """

    _esm = widget_module()
    _css = STATIC / "draw.css"

    image = traitlets.Unicode("").tag(sync=True)  # a data:image/png;base64,... URL (the canvas, or set by you)
    label = traitlets.Int(None, allow_none=True).tag(sync=True)  # None: no digit (or an error)
    probabilities = traitlets.List(traitlets.Float(), default_value=[]).tag(sync=True)
    top_k = traitlets.List(default_value=[]).tag(sync=True)
    processed = traitlets.Unicode("").tag(sync=True)  # the 28×28 the model saw, PNG data URL
    reason = traitlets.Unicode("").tag(sync=True)  # why there is no digit (or no number)
    mode = traitlets.Unicode("digit").tag(sync=True)  # "digit" or "number", fixed when made
    verdict = traitlets.Unicode("").tag(sync=True)  # digit|blank|several_digits|not_a_digit; number: number|blank
    text = traitlets.Unicode("").tag(sync=True)  # number mode: what was read, e.g. "42"
    digits = traitlets.List(default_value=[]).tag(sync=True)  # number mode: label, confidence, box, processed
    confidence = traitlets.Float(0.0).tag(sync=True)  # number mode: the chance every digit is right
    error = traitlets.Unicode("").tag(sync=True)
    model_name = traitlets.Unicode("").tag(sync=True)
    runtime = traitlets.Unicode("").tag(sync=True)

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
        super().__init__(model_name=predictor.name, runtime=predictor.runtime.name, mode=mode, **kwargs)
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
        predictor = Predictor.load(model, runtime, log=lambda *_: None)
    return DrawWidget(predictor, top_k=top_k, mode=mode)
