"""A network's penultimate activations ("features") beside its logits: what the refusal compares with training digits.

The 10-class head of a classifier is a linear read-out of the layer before it; that layer's activations place an
image among the training digits far better than pixels do (kNN in feature space, Sun et al., "Out-of-distribution
detection with deep nearest neighbors", ICML 2022). `with_features(model)` is the same network answering both,
sharing its layers and weights; every export carries the second output (`digitlab.models.export`), so every
runtime can answer it.

A network has features when its last layer is a 10-unit `Dense` called once (every digitlab model, and most
Keras classifiers). Imported models are run as their owners saved them: they have none, and keep the refusal that
needs only logits.

A convolutional network's features also carry its last convolution's channels averaged over positions, after the
penultimate ones: `[penultimate (P), last convolution (C)]`, P = `penultimate_width`. The refusal measures the two
parts apart (a Mahalanobis distance on each, Lee et al.'s feature ensemble, NeurIPS 2018): the earlier layer sees
shapes the penultimate one maps among the digits (`bench/refusal_learned.py`).
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


def conv_layer_output(model: Any) -> Any | None:
    """The output of the model's last top-level `Conv2D`, or None when it has none (or it has no one output).

    Args:
        model: A Keras model (functional or Sequential, built).

    Returns:
        The (N, h, w, C) Keras tensor, or None.
    """
    import keras

    conv = next((x for x in reversed(getattr(model, "layers", None) or []) if isinstance(x, keras.layers.Conv2D)), None)
    try:
        tensor = None if conv is None else conv.output
    except (AttributeError, ValueError):  # a layer called several times: no one output
        return None
    return tensor if tensor is not None and len(tensor.shape) == 4 else None


def with_features(model: Any) -> Any | None:
    """The same network answering `{"logits": (N, 10), "features": (N, D)}`, or None when it has no features.

    D = P penultimate activations, then, for a convolutional network, its last convolution's C channels averaged
    over positions (see the module docstring).

    Args:
        model: A Keras model from (N, 28, 28, 1) float32 in [0, 1] to (N, 10) logits.

    Returns:
        A functional `keras.Model` sharing `model`'s layers (no weights are copied), or None.
    """
    import keras

    features = feature_layer_output(model)
    if features is None:
        return None
    conv = conv_layer_output(model)
    if conv is not None:
        features = keras.layers.Concatenate()([features, keras.layers.GlobalAveragePooling2D()(conv)])
    try:
        inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # one tensor, as the model is called
        return keras.Model(inputs, {LOGITS: model.outputs[0], FEATURES: features}, name=f"{model.name}_features")
    except (AttributeError, ValueError):  # a subclassed model without a functional graph
        return None


def feature_width(model: Any) -> int | None:
    """D, the width of the model's features (None when it has none)."""
    both = with_features(model)
    return None if both is None else int(both.output[FEATURES].shape[-1])


def penultimate_width(model: Any) -> int | None:
    """P, the width of the penultimate part of the model's features (None when it has none)."""
    tensor = feature_layer_output(model)
    return None if tensor is None else int(tensor.shape[-1])
