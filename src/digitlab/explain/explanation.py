"""One call that explains one input: the answer, every layer, an attribution map, and its place on the map.

`ModelExplainer.load(RUN)` is what the CLI, the server's `/api/explain` and the notebook use. Its
`explain(pixels, ...)` returns plain JSON types (the API's body, minus the request's own fields): `label`,
`logits`, `probabilities`, `layers` (`{name, kind, shape, image}`), `attribution` (`{method, target,
contrast, baseline, values}` with 28×28 float arrays in the model's input space), `embedding` (`{x, y,
neighbours}`) and `timing_ms`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.errors import DigitlabError
from digitlab.explain import embedding as embedding_map
from digitlab.explain.engine import METHODS, Explainer, make_explainer
from digitlab.explain.occlusion import OcclusionExplainer
from digitlab.explain.render import layer_views, png_data_url
from digitlab.models.calibration import probabilities
from digitlab.models.saved import LoadedModel, load_model


@dataclass
class ModelExplainer:
    """A loaded model with its explainer: what `digitlab explain`, the server and the notebooks call.

    Attributes:
        loaded: the model and what lives beside it (temperature, run directory).
        explainer: an `Explainer` (Keras) or an `OcclusionExplainer` (imported ONNX).
        data_dir: the MNIST folder the map of training digits is built from (default: digitlab's cache).
    """

    loaded: LoadedModel
    explainer: Explainer | OcclusionExplainer
    data_dir: str | Path | None = None
    _embedding: Any = field(default=None, repr=False)
    _train_images: Any = field(default=None, repr=False)

    @classmethod
    def load(cls, path: str | Path, data_dir: str | Path | None = None) -> ModelExplainer:
        """Load a model and make its explainer.

        Args:
            path: a run directory or a model file.
            data_dir: the MNIST folder (default: digitlab's cache).

        Returns:
            The `ModelExplainer`.
        """
        loaded = load_model(path)
        return cls(loaded, make_explainer(loaded.model), data_dir)

    @property
    def cache_dir(self) -> Path:
        """Where the map of training digits is cached: `RUN/explain`, or `<model>-explain` beside a model file."""
        if self.loaded.run_dir is not None:
            return self.loaded.run_dir / "explain"
        return self.loaded.model_path.parent / f"{self.loaded.model_path.stem}-explain"

    def embedding(self) -> embedding_map.Embedding:
        """The t-SNE map of training digits in the model's penultimate layer (cached per model file).

        Returns:
            The `Embedding` (built on first use: tens of seconds on 2 cores).
        """
        if self._embedding is None:
            cache = self.cache_dir / "embedding.npz"
            self._embedding = embedding_map.load_or_build(
                self.explainer, cache, self.loaded.file_digest(), self.data_dir
            )
        return self._embedding

    def _training_images(self) -> np.ndarray:
        if self._train_images is None:
            from digitlab.data.mnist import load_mnist

            self._train_images = load_mnist(self.data_dir).x_train
        return self._train_images

    def place(self, pixels: np.ndarray, k: int = 5) -> dict[str, Any]:
        """Where a drawing lands on the map, and its nearest training digits.

        Args:
            pixels: one 28×28 input, float32 in [0, 1].
            k: neighbours returned.

        Returns:
            `{x, y, neighbours}`: the map coordinates and, per neighbour, `{index, label, x, y, image}` (image: a
            PNG data URL of the training digit).
        """
        emb = self.embedding()
        feature = self.explainer.features(pixels)[0]
        x, y = emb.place(feature)
        images = self._training_images()
        neighbours = []
        for i in emb.neighbours(feature, k):
            digit = images[emb.indices[i]]
            neighbours.append(
                {
                    "index": int(emb.indices[i]),
                    "label": int(emb.labels[i]),
                    "x": float(emb.coords[i, 0]),
                    "y": float(emb.coords[i, 1]),
                    "image": png_data_url(np.repeat(digit[..., None], 3, axis=2)),
                }
            )
        return {"x": x, "y": y, "neighbours": neighbours}

    def map_points(self, per_class: int = 250) -> dict[str, Any]:
        """A fixed subsample of the map, for drawing it.

        Args:
            per_class: points per digit class.

        Returns:
            `{x, y, label}`: three lists of equal length (coordinates rounded to 3 decimals).
        """
        emb = self.embedding()
        keep = np.concatenate([np.flatnonzero(emb.labels == c)[:per_class] for c in range(10)])
        return {
            "x": emb.coords[keep, 0].round(3).tolist(),
            "y": emb.coords[keep, 1].round(3).tolist(),
            "label": emb.labels[keep].tolist(),
        }

    def explain(
        self,
        pixels: np.ndarray,
        method: str = "ig",
        target: int | None = None,
        contrast: int | None = None,
        steps: int = 32,
        baseline: str = "blur",
        layers: bool = True,
        place: bool = True,
    ) -> dict[str, Any]:
        """Everything the API's /api/explain answers for one input.

        Args:
            pixels: one 28×28 input, float32 in [0, 1].
            method: one of `METHODS`, or "none" (no attribution).
            target: the class explained (default: the prediction), 0-9.
            contrast: a second class 0-9, or None.
            steps: Integrated Gradients steps, 4-256.
            baseline: Integrated Gradients baseline.
            layers: include every layer's picture.
            place: include the place on the map of training digits.

        Returns:
            `label`, `logits`, `probabilities` (with the model's temperature), and as asked `layers`
            (`{name, kind, shape, image}`), `attribution` (`{method, target, contrast, baseline, baseline_name,
            values}`, 28×28 lists), `embedding`; `timing_ms` per part.
        """
        start = time.perf_counter()
        timing: dict[str, float] = {}
        pixels = np.asarray(pixels, np.float32).reshape(28, 28)
        logits = self.explainer.logits(pixels)[0]
        label = int(logits.argmax())
        target = label if target is None else target
        body: dict[str, Any] = {
            "label": label,
            "logits": [round(float(v), 5) for v in logits],
            "probabilities": [round(float(v), 6) for v in probabilities(logits[None], self.loaded.temperature)[0]],
        }
        if layers:
            t = time.perf_counter()
            body["layers"] = layer_views(self.explainer.activations(pixels))
            if self.explainer.members:  # an ensemble has no single chain of layers: show its first network's
                body["layers_of"] = f"member 1 of {self.explainer.members}"
            timing["layers"] = (time.perf_counter() - t) * 1000
        if method not in (None, "none"):
            t = time.perf_counter()
            a = self.explainer.attribution(pixels, method, target, contrast, baseline, steps)
            body["attribution"] = {
                "method": a["method"],
                "target": a["target"],
                "contrast": a["contrast"],
                "baseline": _rounded(a["baseline"]) if a.get("baseline") is not None else None,
                "baseline_name": a.get("baseline_name"),
                "values": _rounded(a["values"]),
                **({"completeness": a["completeness"]} if "completeness" in a else {}),
            }
            timing["attribution"] = (time.perf_counter() - t) * 1000
        if place:
            t = time.perf_counter()
            try:
                body["embedding"] = self.place(pixels)
            except DigitlabError as e:  # no MNIST here to build the map from: the rest still answers
                body["embedding"], body["embedding_error"] = None, str(e)
            timing["embedding"] = (time.perf_counter() - t) * 1000
        timing["total"] = (time.perf_counter() - start) * 1000
        body["timing_ms"] = {k: round(v, 2) for k, v in timing.items()}
        return body


def _rounded(values: np.ndarray) -> list[list[float]]:
    return np.round(np.asarray(values, np.float64), 6).tolist()


__all__ = ["METHODS", "ModelExplainer"]
