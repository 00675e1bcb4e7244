"""A network's penultimate activations ("features") beside its logits: what the refusal compares with training digits.

The 10-class head of a classifier is a linear read-out of the layer before it; that layer's activations place an
image among the training digits far better than pixels do (kNN in feature space, Sun et al., "Out-of-distribution
detection with deep nearest neighbors", ICML 2022). `with_features(model)` is the same network answering both,
sharing its layers and weights; every export carries the second output (`digitlab.models.export`), so every
runtime can answer it.

A network has features when its last layer is a 10-unit `Dense` called once (every digitlab model, and most
Keras classifiers). Imported models are run as their owners saved them: they have none, and keep the refusal that
needs only logits.
"""

from __future__ import annotations

from typing import Any

LOGITS, FEATURES = "logits", "features"


def feature_layer_output(model: Any) -> Any | None:
    """The symbolic tensor feeding the model's 10-unit output layer, or None when there is no such layer.

    Args:
        model: A Keras model (functional or Sequential, built).

    Returns:
        The (N, D) Keras tensor of penultimate activations, or None.
    """
    import keras

    layers = getattr(model, "layers", None)
    if not layers:
        return None
    last = layers[-1]
    if not isinstance(last, keras.layers.Dense) or last.units != 10:
        return None
    try:
        tensor = last.input
    except (AttributeError, ValueError):  # a layer called several times, or never: no one input
        return None
    return tensor if len(tensor.shape) == 2 else None


def with_features(model: Any) -> Any | None:
    """The same network answering `{"logits": (N, 10), "features": (N, D)}`, or None when it has no features.

    Args:
        model: A Keras model from (N, 28, 28, 1) float32 in [0, 1] to (N, 10) logits.

    Returns:
        A functional `keras.Model` sharing `model`'s layers (no weights are copied), or None.
    """
    import keras

    features = feature_layer_output(model)
    if features is None:
        return None
    try:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # one tensor, as the model is called
        return keras.Model(inputs, {LOGITS: model.outputs[0], FEATURES: features}, name=f"{model.name}_features")
    except (AttributeError, ValueError):  # a subclassed model without a functional graph
        return None


def feature_width(model: Any) -> int | None:
    """D, the width of the model's features (None when it has none)."""
    tensor = feature_layer_output(model)
    return None if tensor is None else int(tensor.shape[-1])
