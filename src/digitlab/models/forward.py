"""A model's forward pass in inference mode: one traced graph per model, batched logits for whole splits.

`model(x, training=False)` traced once by `tf.function` is 2-3× faster than eager calls and than
`model.predict` for the small batches serving sees; every plane that runs a trained model goes through here.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from digitlab.data.images import to_unit_float
from digitlab.data.mnist import make_dataset

_FORWARD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inference_function(model) -> Callable:
    """The model's forward pass in inference mode as one traced graph (batch size may vary).

    Args:
        model: A Keras model.

    Returns:
        A `tf.function` from (N, 28, 28, 1) float32 to the model's output tensor (N, 10).
    """

    def forward(x):
        return model(x, training=False)

    return tf.function(forward, reduce_retracing=True)


def predict_logits(model, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Logits for uint8 or [0, 1] float images, batched through one traced graph (2-3× faster than eager).

    Args:
        model: A Keras model, or anything with a `logits` method on digitlab's side (an imported ONNX model).
        images: (N, 28, 28) or (N, 28, 28, 1) uint8 in [0, 255], or floats already in [0, 1].
        batch_size: Images per call (≥ 1).

    Returns:
        (N, 10) float32 logits.
    """
    if hasattr(model, "logits") and not hasattr(model, "layers"):
        x = to_unit_float(images)
        return np.concatenate([model.logits(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    forward = _FORWARD.get(model)
    if forward is None:  # one traced function per model, reused across calls
        forward = _FORWARD[model] = inference_function(model)
        # traced once for any batch size: the last, smaller batch would otherwise trace a second graph
        forward.get_concrete_function(tf.TensorSpec((None, 28, 28, 1), tf.float32))
    if images.dtype != np.uint8:  # already scaled to [0, 1]: batch as is
        ds = tf.data.Dataset.from_tensor_slices(images.astype(np.float32).reshape(-1, 28, 28, 1)).batch(batch_size)
        return np.concatenate([forward(x).numpy() for x in ds])
    ds = make_dataset(images, batch_size=batch_size, cache=False)
    return np.concatenate([forward(x).numpy() for x in ds])
