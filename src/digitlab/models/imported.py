"""The networks of imported models on digitlab's side, built when a run is loaded (`saved.load_model`).

Keras imports need nothing here: their adapter is saved inside `model.keras`. A TF SavedModel and an ONNX
file stay as their owners saved them, beside `contract.json`, and the contract is applied on load:

- `saved_model_signature`: a Keras layer that calls one signature of a loaded SavedModel, so the adapter and
  the signature form one Keras model, differentiable end to end (explanations with gradients work). It is
  never saved: Keras 3.15's own `TFSMLayer` refuses safe-mode loading and stores an absolute path, so it
  cannot live inside a portable `model.keras`.
- `OnnxNetwork`: the ONNX graph with the adapter nodes around it (`contract.onnx_adapter`), run by ONNX
  Runtime. It is not a Keras model: no gradients, no SavedModel/LiteRT export, no training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitlab.models.contract import Contract, keras_adapter, onnx_adapter
from digitlab.models.foreign import load_keras_file
from digitlab.models.onnx_files import OnnxSession, read_onnx
from digitlab.models.signatures import load_saved_model


def load_network(path: Path, contract: Contract, name: str):
    """An imported model's network on digitlab's side, as every command loads it.

    Args:
        path: The model inside the run: `model.keras`, `source.onnx` or `savedmodel/` (`contract.file`).
        contract: The run's contract.
        name: The network's name.

    Returns:
        A Keras model, or for ONNX an `OnnxNetwork`: (N, 28, 28, 1) float32 in [0, 1] → (N, 10) logits.

    Raises:
        ModelError: the file is missing or damaged, or its runtime cannot load it.
        MissingDependency: onnx or ONNX Runtime is not installed (ONNX imports).
    """
    if contract.format == "onnx":
        return OnnxNetwork.from_contract(path, contract)
    if contract.format == "savedmodel":
        return keras_adapter(saved_model_signature(path, contract), contract, name)
    return load_keras_file(path, trust_code=contract.trust_code)


def saved_model_signature(path: Path, contract: Contract):
    """A Keras layer calling `contract.signature` of the SavedModel at `path`, returning its 10-class output.

    Args:
        path: The imported SavedModel folder.
        contract: Names the signature, its input and its output.

    Returns:
        A Keras layer from the model's own input layout to its (N, 10) output.
    """
    restored, _ = load_saved_model(path)  # the signatures alone when TensorFlow cannot restore the objects
    import keras
    import tensorflow as tf

    signature = restored.signatures[contract.signature or "serving_default"]
    dtype = tf.as_dtype(contract.dtype)

    class Signature(keras.layers.Layer):
        def __init__(self):
            super().__init__(name=f"savedmodel_{contract.signature or 'serving_default'}", trainable=False)
            self._restored = restored  # keeps the loaded variables alive

        def call(self, x):
            x = (
                tf.cast(tf.clip_by_value(tf.round(x), 0, 255), dtype)
                if contract.dtype == "uint8"
                else tf.cast(x, dtype)
            )
            return tf.cast(signature(**{contract.input_name: x})[contract.output_name], tf.float32)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], 10)

    return Signature()


class OnnxNetwork(OnnxSession):
    """An imported ONNX model on digitlab's side: `logits((N, 28, 28, 1) float32 in [0, 1])` → (N, 10).

    Its `model_bytes` (the original graph with the adapter) are what `digitlab export --format onnx` writes.
    """

    @classmethod
    def from_contract(cls, path: Path, contract: Contract) -> OnnxNetwork:
        """The ONNX file at `path` with `contract`'s adapter around it, under ONNX Runtime.

        Args:
            path: The imported `.onnx` file, as its owner saved it.
            contract: How digitlab's (N, 28, 28, 1) [0, 1] images map onto the file's input (`contract.json`).

        Returns:
            The network.

        Raises:
            MissingDependency: onnx or ONNX Runtime is not installed.
            ModelError: the file or a weights file it names is missing or damaged, or ONNX Runtime cannot load
                the adapted graph.
        """
        return cls(onnx_adapter(read_onnx(path), contract).SerializeToString(), path.stem)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) float32 in [0, 1] (any shape of N·784 values) → (N, 10) float32 logits."""
        return self.run(np.ascontiguousarray(np.asarray(batch, np.float32).reshape(-1, 28, 28, 1)))
