"""Running a Keras model's own graph node by node, nested models too, recording every leaf layer's output.

What the explainers read activations and take gradients through (`engine.Explainer`); see `engine`'s docstring
for why the graph is run this way. Also the 28×28 batching the explainers share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from digitlab.errors import ConfigError

SKIPPED = ("InputLayer", "Dropout", "Identity", "Flatten", "Reshape", "SpatialDropout2D", "GaussianNoise")


@dataclass
class LayerActivation:
    """One layer's output for one input, as the pictures and the API show it.

    Attributes:
        name: the Keras layer's name.
        kind: conv, pool, norm, dense, logits, adapter or other (`kind_of`).
        values: float32, (H, W, C) for a feature map or (units,) for a dense layer.
    """

    name: str
    kind: str  # conv | pool | norm | dense | logits | adapter | other
    values: np.ndarray  # one input's activation: (H, W, C) or (units,)

    @property
    def shape(self) -> list[int]:
        """The shape of `values` as a list, e.g. [26, 26, 32] or [10]."""
        return list(self.values.shape)


def _graph_of(model):
    """The functional graph that runs `model` (a Sequential's own), or None for a plain layer."""
    graph = getattr(model, "_functional", None) if type(model).__name__ == "Sequential" else model
    return graph if hasattr(graph, "_run_through_graph") and hasattr(graph, "_nodes_by_depth") else None


def run_traced(model: Any, x: Any, record: list | None = None) -> Any:
    """`model(x)` in inference mode, node by node through its graph (nested models too).

    Args:
        model: a Keras functional or Sequential model, or a plain layer.
        x: a (N, 28, 28, 1) float32 batch (a tensor).
        record: when given, each leaf layer call is appended to it as (layer, first input, output).

    Returns:
        The model's output for `x`: (N, 10) logits for a digitlab classifier.
    """
    graph = _graph_of(model)
    if graph is None:
        return _leaf(model, (x,), {}, record)

    def operation(op):
        def call(*args, **kwargs):
            if _graph_of(op) is not None:
                return run_traced(op, args[0] if len(args) == 1 else list(args), record)
            return _leaf(op, args, kwargs, record)

        return call

    return graph._run_through_graph(x, operation_fn=operation)


def _leaf(layer, args, kwargs, record):
    if getattr(layer, "_call_has_training_arg", False):
        kwargs = {**kwargs, "training": False}
    out = layer(*args, **kwargs)
    if record is not None:
        record.append((layer, args[0] if args else None, out))
    return out


def kind_of(layer: Any) -> str:
    """What a layer is, in the words the pictures use.

    Args:
        layer: a Keras layer.

    Returns:
        "conv", "pool", "norm", "dense", "logits" (the Dense layer named `logits`), "adapter" (resizing,
        rescaling, an imported model's adapter) or "other".
    """
    name = type(layer).__name__
    if "Conv" in name:
        return "conv"
    if "Pooling" in name:
        return "pool"
    if "Normalization" in name and name != "Normalization":
        return "norm"
    if name == "Dense":
        return "logits" if layer.name == "logits" else "dense"
    if name in ("Resizing", "Concatenate", "Rescaling", "Normalization", "ProbabilitiesToLogits"):
        return "adapter"
    return "other"


def as_many(pixels) -> np.ndarray:
    """One 28×28, or any stack of them, as an (N, 28, 28, 1) batch."""
    x = np.asarray(pixels, np.float32)
    return as_batch(x) if x.ndim == 2 else x.reshape(-1, 28, 28, 1)


def as_batch(pixels) -> np.ndarray:
    """One 28×28 (or (28, 28, 1), or a batch of one) as a (1, 28, 28, 1) float32 batch; ConfigError otherwise."""
    x = np.asarray(pixels, np.float32)
    if x.ndim == 2:
        x = x[None, ..., None]
    elif x.ndim == 3:
        x = x[..., None] if x.shape[-1] != 1 else x[None]
    if x.shape[1:] != (28, 28, 1):
        raise ConfigError(f"explain takes 28×28 inputs, got {x.shape}")
    return x
