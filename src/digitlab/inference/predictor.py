"""A trained model ready to answer: images in, calibrated probabilities out.

`Predictor` pairs a loaded model with its fitted temperature and a runtime (`runtimes.py`: Keras, ONNX
Runtime or LiteRT) on batches of MNIST-style 28×28s. `digitlab predict`, the server's micro-batcher and the
notebook all predict through it, so every door into a model gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.data.preprocess import Processed
from digitlab.errors import ConfigError, MissingDependency, ModelError, install_hint
from digitlab.inference.export_command import ensure_exported
from digitlab.inference.runtimes import RUNTIMES, KerasRuntime, OnnxRuntime, Runtime, open_runtime
from digitlab.inference.verdict import Answer, answer_all
from digitlab.models.calibration import probabilities
from digitlab.models.saved import LoadedModel, load_model


class Predictor:
    """A model behind a runtime, with its temperature.

    `logits`/`probabilities` take (N, 28, 28) or (N, 28, 28, 1) floats in [0, 1].
    """

    def __init__(self, loaded: LoadedModel, runtime: Runtime, note: str = "", log: Callable[[str], Any] = print):
        """Pair a loaded model with what runs it (`Predictor.load` chooses the runtime).

        Args:
            loaded: The model and its run's metadata (`models.saved.load_model`).
            runtime: What runs the network (`runtimes.py`).
            note: Why `auto` chose this runtime, when it could not take ONNX Runtime ("" otherwise).
            log: Where one-off notices go (default: print).
        """
        self.loaded = loaded
        self.name = loaded.name
        self.temperature = loaded.temperature
        self.runtime = runtime
        self.note = note  # why `auto` chose what it chose, when it could not take ONNX Runtime
        self._refusal = None
        self.log = log  # where one-off notices go (an export made on demand, a refusal fitted on first use)

    @classmethod
    def load(cls, path: str | Path, runtime: str = "keras", log: Callable[[str], Any] = print) -> Predictor:
        """Load a predictor from a run directory or any model file.

        A foreign file is imported on the fly (see `load_model`).

        Args:
            path: A run directory, a `model.keras`, or a foreign model file or SavedModel folder.
            runtime: keras (the model itself), onnx or litert (an export, made on demand in RUN/export and
                remade when stale), or auto: ONNX Runtime if installed and it loads, then LiteRT, then Keras
                (saying so in one line, with the extra that installs ONNX Runtime when it is missing).
            log: Where one-off notices go.

        Returns:
            The predictor.

        Raises:
            ConfigError: An unknown runtime, or keras/litert for an imported ONNX model.
            ModelError: The model, or the export asked for, cannot be loaded.
            MissingDependency: The runtime asked for is not installed.
        """
        if runtime not in RUNTIMES:
            raise ConfigError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        loaded = load_model(path, network=False, log=log)
        if not loaded.is_keras:  # an imported ONNX model runs on ONNX Runtime, as its owner saved it
            if runtime in ("keras", "litert"):
                raise ConfigError(
                    f"{loaded.name} is an imported ONNX model: it runs on ONNX Runtime only (--runtime onnx or auto)"
                )
            return cls(loaded, OnnxRuntime(loaded.model), log=log)
        if runtime == "keras":
            return cls(loaded, KerasRuntime(loaded.model), log=log)
        tried = []
        for fmt in _installed_runtimes() if runtime == "auto" else (runtime,):
            try:
                return cls(loaded, open_runtime(fmt, ensure_exported(loaded, fmt, log)), log=log)
            except (ModelError, ConfigError, MissingDependency) as e:
                if runtime != "auto":
                    raise
                tried.append(f"{fmt}: {e}")
        if tried:
            note = "runtime auto fell back to keras (" + "; ".join(tried) + ")"
        else:  # the core install: no ONNX Runtime, which is fine, only slower
            note = f"runtime auto runs Keras: ONNX Runtime is not installed ({install_hint('onnxruntime')} is faster)"
        log(note)
        return cls(loaded, KerasRuntime(loaded.model), note, log)

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """The network's raw outputs.

        Args:
            pixels: (N, 28, 28) or (N, 28, 28, 1) floats in [0, 1], MNIST-style (`data.preprocess.to_mnist_28x28`).

        Returns:
            (N, 10) float32 logits.
        """
        return self.runtime.logits(_batch(pixels))

    def forward(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and the network's features in one call (`Runtime.forward`).

        Args:
            pixels: (N, 28, 28) or (N, 28, 28, 1) floats in [0, 1], MNIST-style.

        Returns:
            ((N, 10) float32 logits, (N, D) float32 features, or None for a model without them).
        """
        return self.runtime.forward(_batch(pixels))

    @property
    def feature_width(self) -> int | None:
        """D of the network's features, or None when it has none (an imported model)."""
        return self.runtime.feature_width

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities: softmax(logits / temperature).

        Args:
            pixels: (N, 28, 28) or (N, 28, 28, 1) floats in [0, 1].

        Returns:
            (N, 10) float32, each row summing to 1.
        """
        return probabilities(self.logits(pixels), self.temperature)

    def refusal(self):
        """The run's "not a digit" score (`refusal.Refusal`), fitted on first use (see `refusal.refusal_for`)."""
        if self._refusal is None:
            from digitlab.inference.refusal import refusal_for

            self._refusal = refusal_for(self.loaded, self.forward, log=self.log)
        return self._refusal

    def answer(self, processed: Processed, top_k: int = 3) -> Answer:
        """One preprocessed image's answer (`verdict.answer_all` for one).

        Args:
            processed: The image as `data.preprocess.to_mnist_28x28` returned it.
            top_k: How many of the most probable labels the answer lists, 1 to 10.

        Returns:
            The `verdict.Answer`: blank, several_digits, not_a_digit or a digit, with the reason.
        """
        if processed.blank:
            return Answer.blank_of(processed)
        logits, net = self.forward(processed.pixels[None])
        return answer_all([processed], logits, net, self, top_k)[0]


def _batch(pixels: np.ndarray) -> np.ndarray:
    """(N, 28, 28) or (N, 28, 28, 1) floats → the (N, 28, 28, 1) float32 batch every runtime takes."""
    batch = np.asarray(pixels, np.float32)
    return batch[..., None] if batch.ndim == 3 else batch


def _installed_runtimes() -> tuple[str, ...]:
    """The exported formats `auto` may try, fastest first: those whose runtime library is installed.

    ONNX Runtime comes with the `serve` and `export` extras, LiteRT with `export`; the core install has neither.
    """
    from importlib.util import find_spec

    def installed(module: str) -> bool:
        try:
            return find_spec(module) is not None
        except (ImportError, ValueError):  # a blocked or half-installed package
            return False

    return tuple(fmt for fmt, module in (("onnx", "onnxruntime"), ("litert", "ai_edge_litert")) if installed(module))
