"""How a trained network reaches its answer for one input: every layer's activations, and attributions.

Written with TensorFlow itself (`tf.GradientTape`, traced `tf.function`s), for any Keras functional or
Sequential model, whatever its graph's shape: chains, residual and branching nets, and models nested inside
models (a transfer model's pretrained base, an imported model inside its adapter). `Explainer` runs the
model's own graph node by node (Keras' `_run_through_graph`), descending into nested models, and records
every leaf layer's inputs and output, so it can read any layer's activations — including one inside a nested
base, where a Keras sub-model "reaching into" the base fails — and take gradients with respect to them.
An imported ONNX model has no gradients: `OcclusionExplainer` offers occlusion alone.
The score explained is a logit, or with a contrast class the difference
`logit[target] − logit[contrast]` ("why 9 and not 4?"); the class enters the traced functions as a weight
vector, so changing it never retraces.

Attributions, all signed and in the model's input space (28×28, positive = pushes the score up):
- Integrated Gradients: (x − x′) × the average gradient on the straight path from a baseline x′ to x
  (trapezoid rule, all steps in one batch). They add up to score(x) − score(x′) ("completeness"), which is
  measured and returned. The baseline matters: black is MNIST's own background and can never credit ink
  that is absent, so a blurred copy of the input and uniform grey are offered too.
- SmoothGrad: the gradient averaged over 32 noisy copies of the input (σ = 0.15): where a small change of
  brightness would move the score most, with less speckle than one gradient.
- LayerCAM (Jiang et al. 2021, "LayerCAM: Exploring Hierarchical Class Activation Maps for Localization"):
  the last convolution's activations times their positive gradients, position by position, summed over
  channels and upsampled to 28×28 (coarse: where, not which pixel).
- Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
  Localization"): one weight per channel, its gradient averaged over positions; the ReLU of the weighted sum
  of the channels, upsampled the same way. LayerCAM's per-position weights are why both are offered: on the
  default `cnn` Grad-CAM's map ordered ink no better than random in the deletion test (area ratio 1.02),
  LayerCAM's did (0.76).
- Occlusion: the score's change when a patch of ink is removed (set to 0) or added (set to 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from digitlab.errors import ConfigError, ModelError
from digitlab.explain.graph import SKIPPED, LayerActivation, as_batch, as_many, kind_of, run_traced
from digitlab.explain.occlusion import OcclusionExplainer, occlusion_map, score_weights
from digitlab.explain.options import BASELINES, CAM_METHODS, METHODS


class Explainer:
    """Activations and attributions of one Keras model (see the module docstring)."""

    def __init__(self, model):
        """Trace `model` once on a zero input to find its layers, its last convolution and its head.

        Args:
            model: a Keras model taking (N, 28, 28, 1) float32 in [0, 1] and answering (N, 10) logits; an
                ensemble is explained as a whole, its layers through its first member.
        """
        from digitlab.models.ensemble_network import members_of

        self.model = model
        # An ensemble (`digitlab ensemble`) averages several networks: its scores and attributions are the whole
        # ensemble's; its layers, class activation maps and features are its first member's.
        self.members = len(members_of(model))
        self.network = members_of(model)[0] if self.members else model
        record: list = []
        run_traced(self.network, tf.zeros((1, 28, 28, 1)), record)
        self.layers = [layer for layer, _, _ in record]
        convs = [i for i, layer in enumerate(self.layers) if kind_of(layer) == "conv" and len(record[i][2].shape) == 4]
        self.cam_index = (
            convs[-1] if convs else None
        )  # the class activation maps' layer: the last convolutional feature map
        dense = [i for i, layer in enumerate(self.layers) if type(layer).__name__ == "Dense"]
        self.head_index = dense[-1] if dense else None  # the classifier's head: its input is the features
        self._gradients = tf.function(self._gradients_fn, reduce_retracing=True)
        self._scores = tf.function(self._scores_fn, reduce_retracing=True)
        self._logits = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        self._activations = tf.function(self._activations_fn, reduce_retracing=True)
        self._cam = tf.function(self._cam_fn, reduce_retracing=True) if convs else None
        self._features = tf.function(self._features_fn, reduce_retracing=True)

    # --- traced pieces (x: (N, 28, 28, 1) float32; w: (10,) weights over the logits) ---------------------

    def _scores_fn(self, x, w):
        return tf.reduce_sum(self.model(x, training=False) * w, axis=1)

    def _gradients_fn(self, x, w):
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(self.model(x, training=False) * w, axis=1)
        return tape.gradient(score, x), score

    def _activations_fn(self, x):
        record: list = []
        run_traced(self.network, x, record)
        return [out for _, _, out in record]

    def _features_fn(self, x):
        record: list = []
        run_traced(self.network, x, record)
        return record[self.head_index][1]

    def _cam_fn(self, x, w):
        record: list = []
        with tf.GradientTape() as tape:
            logits = run_traced(self.network, x, record)
            features = record[self.cam_index][2]
            score = tf.reduce_sum(logits * w, axis=1)
        return features, tape.gradient(score, features)

    def layer_output(self, x, index: int):
        """The output of `self.layers[index]` for a batch.

        Args:
            x: (N, 28, 28, 1) float32 in [0, 1] (a tensor).
            index: a position in `self.layers`.

        Returns:
            That layer's output tensor, (N, ...).
        """
        return self._activations(x)[index]

    # --- public API ----------------------------------------------------------------------------------------

    def logits(self, pixels: np.ndarray) -> np.ndarray:
        """The model's logits.

        Args:
            pixels: one 28×28 input or a stack of them, float32 in [0, 1].

        Returns:
            (N, 10) float32 logits.
        """
        x = as_many(pixels)
        return self._logits(tf.constant(x)).numpy()

    def features(self, pixels: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """The penultimate representation (what the final Dense layer sees), one row per input.

        Args:
            pixels: one 28×28 input or a stack of them, float32 in [0, 1].
            batch_size: inputs per forward pass.

        Returns:
            (N, features) float32.

        Raises:
            ModelError: when the model has no Dense head.
        """
        if self.head_index is None:
            raise ModelError("this model has no Dense head, so there is no penultimate layer to map")
        x = as_many(pixels)
        return np.concatenate(
            [self._features(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
        )

    def activations(self, pixels: np.ndarray) -> list[LayerActivation]:
        """Every layer's output for one input (dropout, flatten and identity layers left out).

        Args:
            pixels: one 28×28 input, float32 in [0, 1].

        Returns:
            One `LayerActivation` per shown layer, in the order the model runs them.
        """
        outputs = self._activations(as_batch(pixels))
        return [
            LayerActivation(layer.name, kind_of(layer), out.numpy()[0])
            for layer, out in zip(self.layers, outputs, strict=True)
            if type(layer).__name__ not in SKIPPED
        ]

    score_weights = staticmethod(score_weights)  # the weights over the logits that define the score

    def integrated_gradients(
        self, pixels: np.ndarray, w: np.ndarray, baseline: str = "black", steps: int = 32
    ) -> dict[str, Any]:
        """Integrated Gradients (Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks").

        (x − x′) × the gradient averaged along the straight path from the baseline x′ to x (trapezoid rule).

        Args:
            pixels: one 28×28 input, float32 in [0, 1].
            w: (10,) score weights (`score_weights`).
            baseline: "black", "blur" or "grey" (`make_baseline`).
            steps: path steps, 4-256.

        Returns:
            `values` (28, 28) float32 attributions, `baseline_image` (28, 28), and `completeness`: the sum of the
            attributions, score(x) − score(x′), and their relative difference.

        Raises:
            ConfigError: for an unknown baseline or steps out of range.
        """
        if baseline not in BASELINES:
            raise ConfigError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")
        if not 4 <= steps <= 256:
            raise ConfigError(f"steps must be between 4 and 256, got {steps}")
        x = as_batch(pixels)[0]
        base = make_baseline(x[..., 0], baseline)[..., None]
        alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)[:, None, None, None]
        path = base + alphas * (x - base)
        grads, scores = self._gradients(tf.constant(path), tf.constant(w))
        grads, scores = grads.numpy(), scores.numpy()
        average = (grads[:-1] + grads[1:]).mean(axis=0) / 2.0  # trapezoid rule over the path
        values = ((x - base) * average)[..., 0]
        delta = float(scores[-1] - scores[0])
        return {
            "values": values,
            "baseline_image": base[..., 0],
            "completeness": {
                "sum": float(values.sum()),
                "score_difference": delta,
                "relative_error": abs(float(values.sum()) - delta) / max(abs(delta), 1e-6),
            },
        }

    def smoothgrad(self, pixels: np.ndarray, w: np.ndarray, samples: int = 32, noise: float = 0.15) -> np.ndarray:
        """SmoothGrad (Smilkov et al. 2017): the input gradient averaged over noisy copies of the input.

        Args:
            pixels: one 28×28 input, float32 in [0, 1].
            w: (10,) score weights (`score_weights`).
            samples: noisy copies (the noise is seeded: the same input gives the same map).
            noise: standard deviation of the Gaussian noise, in pixel units of [0, 1].

        Returns:
            (28, 28) float32, signed.
        """
        x = as_batch(pixels)[0]
        rng = np.random.default_rng(0)  # fixed: the same drawing always gives the same map
        noisy = np.clip(x + rng.normal(0, noise, (samples, *x.shape)).astype(np.float32), 0, 1)
        grads, _ = self._gradients(tf.constant(noisy), tf.constant(w))
        return grads.numpy().mean(axis=0)[..., 0]

    def _cam_parts(self, pixels: np.ndarray, w: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The last convolution's activations A and the score's gradients dS/dA, both (h, w, channels)."""
        if self._cam is None:
            raise ConfigError(f"{name} needs a convolutional layer; this model has none (try ig or smoothgrad)")
        features, grads = self._cam(as_batch(pixels), tf.constant(w))
        return features.numpy()[0], grads.numpy()[0]

    def layercam(self, pixels: np.ndarray, w: np.ndarray) -> np.ndarray:
        """LayerCAM (Jiang et al. 2021): Σ_k ReLU(dS/dA_k) ⊙ A_k, each position weighted by its own gradient.

        Args:
            pixels: one 28×28 input, float32 in [0, 1].
            w: (10,) weights over the logits that define the score S (see `score_weights`).

        Returns:
            (28, 28) float32, bilinearly upsampled from the last convolution's grid.

        Raises:
            ConfigError: when the model has no convolutional layer.
        """
        features, grads = self._cam_parts(pixels, w, "LayerCAM")
        return _upsample((features * np.maximum(grads, 0)).sum(axis=-1))

    def gradcam(self, pixels: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Grad-CAM (Selvaraju et al. 2017): ReLU(Σ_k α_k A_k), α_k = dS/dA_k averaged over positions.

        Args:
            pixels: one 28×28 input, float32 in [0, 1].
            w: (10,) weights over the logits that define the score S (see `score_weights`).

        Returns:
            (28, 28) float32, ≥ 0, bilinearly upsampled from the last convolution's grid.

        Raises:
            ConfigError: when the model has no convolutional layer.
        """
        features, grads = self._cam_parts(pixels, w, "Grad-CAM")
        alpha = grads.mean(axis=(0, 1))  # one weight per channel: its global-average-pooled gradient
        return _upsample(np.maximum((features * alpha).sum(axis=-1), 0))

    def occlusion(self, pixels: np.ndarray, w: np.ndarray, mode: str = "remove", patch: int = 4) -> np.ndarray:
        """Occlusion: the score's change when each 4×4 window (stride 2) is set to 0 (remove) or 1 (add).

        Args:
            pixels: one 28×28 input, float32 in [0, 1].
            w: (10,) score weights (`score_weights`).
            mode: "remove" or "add".
            patch: the window's side in pixels.

        Returns:
            (28, 28) float32, averaged per pixel over the windows that cover it (> 0: the region supported the score).
        """
        return occlusion_map(
            lambda batch: self._scores(tf.constant(batch), tf.constant(w)).numpy(), pixels, mode, patch
        )

    def attribution(
        self, pixels, method: str, target: int, contrast: int | None = None, baseline: str = "blur", steps: int = 32
    ) -> dict[str, Any]:
        """One method's map for one input.

        Args:
            pixels: one 28×28 input, float32 in [0, 1].
            method: one of `METHODS`.
            target: the class explained, 0-9.
            contrast: a second class 0-9, or None.
            baseline: Integrated Gradients' baseline.
            steps: Integrated Gradients' steps.

        Returns:
            `{method, target, contrast, baseline, values}` with `values` (28, 28) float32; Integrated Gradients adds
            `baseline` (the baseline image), `baseline_name` and `completeness`.

        Raises:
            ConfigError: for an unknown method, a bad class, or a CAM on a model without a convolution.
        """
        w = self.score_weights(target, contrast)
        x = as_batch(pixels)[0, ..., 0]
        out: dict[str, Any] = {"method": method, "target": target, "contrast": contrast, "baseline": None}
        if method == "ig":
            ig = self.integrated_gradients(x, w, baseline, steps)
            out.update(values=ig["values"], baseline=ig["baseline_image"], completeness=ig["completeness"])
            out["baseline_name"] = baseline
        elif method == "smoothgrad":
            out["values"] = self.smoothgrad(x, w)
        elif method in CAM_METHODS:
            out["values"] = getattr(self, method)(x, w)
        elif method == "occlusion":
            out["values"] = self.occlusion(x, w)
        else:
            raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        return out


def make_explainer(network):
    """The explainer a network supports.

    Args:
        network: a Keras model, or an imported ONNX network (anything with `logits` and no `layers`).

    Returns:
        An `Explainer` for a Keras model, an `OcclusionExplainer` otherwise.
    """
    return Explainer(network) if hasattr(network, "layers") else OcclusionExplainer(network)


def make_baseline(x: np.ndarray, kind: str) -> np.ndarray:
    """A reference input for Integrated Gradients.

    Args:
        x: (28, 28) float32 in [0, 1].
        kind: "black" (zeros), "blur" (the input blurred, σ = 3 px: no strokes left) or "grey" (0.5).

    Returns:
        (28, 28) float32 in [0, 1].
    """
    if kind == "black":
        return np.zeros_like(x)
    if kind == "grey":
        return np.full_like(x, 0.5)
    import cv2

    return cv2.GaussianBlur(x.astype(np.float32), (0, 0), 3.0)


def _upsample(cam: np.ndarray) -> np.ndarray:
    """A class activation map on the convolution's (h, w) grid → 28×28 float32 (bilinear)."""
    import cv2

    return cv2.resize(cam.astype(np.float32), (28, 28), interpolation=cv2.INTER_LINEAR)
