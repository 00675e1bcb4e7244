"""A trained model ready to answer: images in, calibrated probabilities out.

`Predictor` pairs a loaded model with its fitted temperature and runs it as one traced graph on batches of
MNIST-style 28×28s. `digitlab predict`, the server's micro-batcher and the notebook all predict through it,
so every door into a model gives the same numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitlab.models.calibration import probabilities
from digitlab.models.saved import LoadedModel, load_model


class Predictor:
    """A loaded model and its temperature; `logits`/`probabilities` take (N, 28, 28) or (N, 28, 28, 1) in [0, 1]."""

    def __init__(self, loaded: LoadedModel):
        from digitlab.models.forward import inference_function  # TensorFlow: only once a model runs

        self.loaded = loaded
        self.name = loaded.name
        self.temperature = loaded.temperature
        self._forward = inference_function(loaded.model)

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """From a run directory or a `.keras` file (a one-line ModelError when it cannot be loaded)."""
        return cls(load_model(path))

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        batch = np.asarray(pixels, np.float32)
        if batch.ndim == 3:
            batch = batch[..., None]
        return self._forward(batch).numpy()

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        return probabilities(self.logits(pixels), self.temperature)


def top_k_of(probs: np.ndarray, k: int) -> list[dict[str, float]]:
    """The k most probable labels of one row of probabilities, most probable first."""
    order = np.argsort(-probs)[:k]
    return [{"label": int(i), "probability": round(float(probs[i]), 6)} for i in order]
