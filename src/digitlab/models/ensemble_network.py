"""An ensemble as one ordinary Keras model: the mean of its members' probabilities, as logits.

The members are nested inside one functional model: image → (optional ±1 px shifted views) → each member →
log-softmax → log-mean-exp. The output is log(mean probability), computed without leaving log space (so a
class every member finds very unlikely keeps a finite, differentiable score): softmax of it gives back the
mean exactly, so everything downstream (temperature, evaluate, predict, serve, export, explain) treats it as
any model's logits. Only built-in Keras layers and `keras.ops` are used, so plain `keras.saving.load_model`
reads it in safe mode.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from digitlab.data.images import INPUT_SHAPE

# Test-time augmentation: the image itself and its four 1-pixel shifts (pad by 1, crop back to 28×28).
SHIFTS = {
    "up": ((2, 0), (1, 1)),
    "down": ((0, 2), (1, 1)),
    "left": ((1, 1), (2, 0)),
    "right": ((1, 1), (0, 2)),
}


def build_ensemble(members: list[keras.Model], tta: bool = False, name: str = "ensemble") -> keras.Model:
    """One model whose logits are log(mean over members (and shifted views) of softmax(member logits))."""
    inputs = keras.Input(INPUT_SHAPE, name="image")
    views = [inputs]
    if tta:
        padded = layers.ZeroPadding2D(1, name="tta_pad")(inputs)
        views += [layers.Cropping2D(crop, name=f"tta_shift_{side}")(padded) for side, crop in SHIFTS.items()]
    log_probabilities = []
    for i, member in enumerate(members):
        member.name = f"member_{i}"  # nested models need unique names; every member is "bn_cnn" otherwise
        log_probabilities += [
            layers.Activation("log_softmax", name=f"log_p_{i}_{j}")(member(view)) for j, view in enumerate(views)
        ]
    stacked = keras.ops.stack(log_probabilities, axis=0)  # (members × views, N, 10)
    logits = keras.ops.logsumexp(stacked, axis=0) - math.log(len(log_probabilities))  # log of the mean probability
    return keras.Model(inputs, logits, name=name)


def members_of(model: keras.Model) -> list[keras.Model]:
    """The nested member networks of an ensemble built by `build_ensemble` (empty for any other model)."""
    return [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name.startswith("member_")]
