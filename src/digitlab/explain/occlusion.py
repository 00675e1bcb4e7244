"""Occlusion: the score's change when a patch of ink is removed or added, for any model, gradients or not.

`OcclusionExplainer` is what an imported ONNX model (no gradients) is explained with; `occlusion_map` is also one
of `engine.Explainer`'s attributions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from digitlab.errors import ConfigError, ModelError
from digitlab.explain.graph import LayerActivation, as_batch, as_many


def score_weights(target: int, contrast: int | None = None) -> np.ndarray:
    """The weights over the logits that define the explained score.

    Args:
        target: the class explained, 0-9.
        contrast: a second class 0-9 (the score becomes logit[target] − logit[contrast]), or None.

    Returns:
        (10,) float32: +1 at `target`, −1 at `contrast`, 0 elsewhere.

    Raises:
        ConfigError: when a class is not a digit 0-9 or the contrast equals the target.
    """
    for name, value in (("target", target), ("contrast", contrast)):
        if value is not None and not (isinstance(value, int | np.integer) and 0 <= value <= 9):
            raise ConfigError(f"{name} must be a digit 0-9, got {value!r}")
    if contrast == target:
        raise ConfigError("the contrast class must differ from the target")
    w = np.zeros(10, np.float32)
    w[target] = 1.0
    if contrast is not None:
        w[contrast] = -1.0
    return w


def occlusion_map(
    scores: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, mode: str = "remove", patch: int = 4
) -> np.ndarray:
    """Occlusion (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks").

    Args:
        scores: (N, 28, 28, 1) float32 batch → (N,) scores.
        pixels: one 28×28 input, float32 in [0, 1].
        mode: "remove" (windows set to 0) or "add" (set to 1).
        patch: the window's side in pixels (stride 2).

    Returns:
        (28, 28) float32: the score's change per pixel, averaged over the windows that cover it.

    Raises:
        ConfigError: for an unknown mode.
    """
    if mode not in ("remove", "add"):
        raise ConfigError(f"occlusion mode must be remove or add, got {mode!r}")
    x = as_batch(pixels)[0]
    starts = range(0, 28 - patch + 1, 2)
    copies, boxes = [], []
    for r in starts:
        for c in starts:
            copy = x.copy()
            copy[r : r + patch, c : c + patch] = 0.0 if mode == "remove" else 1.0
            copies.append(copy)
            boxes.append((r, c))
    values = scores(np.stack([x, *copies]))
    change, count = np.zeros((28, 28), np.float32), np.zeros((28, 28), np.float32)
    for (r, c), s in zip(boxes, values[1:], strict=True):
        change[r : r + patch, c : c + patch] += values[0] - s  # > 0: this region supported the score
        count[r : r + patch, c : c + patch] += 1
    return change / np.maximum(count, 1) * (-1 if mode == "add" else 1)


class OcclusionExplainer:
    """The explainer of a model without gradients or layers (an imported ONNX graph): logits and occlusion.

    Same public API as `Explainer`; the gradient methods (ig, smoothgrad, layercam, gradcam) refuse in one line.
    """

    members = 0
    cam_index = None
    head_index = None

    def __init__(self, network: Any):
        """Wrap an imported network.

        Args:
            network: an imported ONNX network with a `logits` method.
        """
        self.model = network
        self.layers: list = []

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """The network's logits.

        Args:
            pixels: one 28×28 input or a stack of them, float32 in [0, 1].

        Returns:
            (N, 10) float32 logits.
        """
        return self.model.logits(as_many(pixels))

    def features(self, pixels: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Refuses: an ONNX graph exposes no penultimate layer.

        Args:
            pixels: unused.
            batch_size: unused.

        Returns:
            Nothing: it always raises.

        Raises:
            ModelError: always.
        """
        raise ModelError("an imported ONNX model exposes no penultimate layer, so there is no map of it")

    def activations(self, pixels: np.ndarray) -> list[LayerActivation]:
        """No layers to show for an ONNX graph.

        Args:
            pixels: unused.

        Returns:
            An empty list.
        """
        return []

    score_weights = staticmethod(score_weights)  # the weights over the logits that define the score

    def occlusion(self, pixels: np.ndarray, w: np.ndarray, mode: str = "remove", patch: int = 4) -> np.ndarray:
        """As `Explainer.occlusion`, through the network's logits.

        Args:
            pixels: one 28×28 input, float32 in [0, 1].
            w: (10,) score weights.
            mode: "remove" or "add".
            patch: the window's side in pixels.

        Returns:
            (28, 28) float32.
        """
        return occlusion_map(lambda batch: self.logits(batch) @ w, pixels, mode, patch)

    def attribution(
        self,
        pixels: np.ndarray,
        method: str,
        target: int,
        contrast: int | None = None,
        baseline: str = "blur",
        steps: int = 32,
    ) -> dict[str, Any]:
        """Occlusion only (the other methods need gradients).

        Args:
            pixels: one 28×28 input, float32 in [0, 1].
            method: must be "occlusion".
            target: the class explained, 0-9.
            contrast: a second class 0-9, or None.
            baseline: unused.
            steps: unused.

        Returns:
            `{method, target, contrast, baseline, values}`, values (28, 28) float32.

        Raises:
            ConfigError: for any other method.
        """
        if method != "occlusion":
            raise ConfigError(
                f"{method} needs gradients, which an imported ONNX model does not give; use --method occlusion"
            )
        w = self.score_weights(target, contrast)
        values = self.occlusion(as_batch(pixels)[0, ..., 0], w)
        return {"method": method, "target": target, "contrast": contrast, "baseline": None, "values": values}
