"""What runs a model: Keras itself, ONNX Runtime, LiteRT, or a SavedModel; one `logits(batch)` for all.

For a 35k-parameter CNN Keras is the slow part of serving: a traced `tf.function` call costs ~1 ms of
Python and TensorFlow overhead per call, while ONNX Runtime on one thread runs the same network in
~0.05 ms. ONNX Runtime and LiteRT sessions never import TensorFlow, so a server or `predict` using them
starts in about a second and holds a fraction of the memory. Each session uses one thread: a server runs
one process per core, and `predict` keeps the other cores for preprocessing. Sessions are not
thread-safe; each caller (the server's model thread, `predict`'s loop) owns one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from digitlab.errors import ConfigError, ModelError, one_line, require
from digitlab.tf_logging import import_tensorflow, native_stderr_captured

RUNTIMES = ("auto", "keras", "onnx", "litert")


class Runtime(Protocol):
    """What runs a model: `name` says which (keras, onnx, litert, savedmodel) and `logits` runs a batch."""

    name: str

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) float32 in [0, 1] → (N, 10) logits."""
        ...


class KerasRuntime:
    """The Keras model's forward pass as one traced graph (TensorFlow's intra-op threads as configured)."""

    name = "keras"

    def __init__(self, model):
        """Trace `model`'s forward pass (TensorFlow starts here if it has not).

        Args:
            model: A Keras model taking (N, 28, 28, 1) float32 and answering (N, 10) logits.
        """
        import_tensorflow()
        from digitlab.models.forward import inference_function

        self._forward = inference_function(model)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Run the model once.

        Args:
            batch: (N, 28, 28, 1) float32 in [0, 1], MNIST-style digits (N ≥ 1).

        Returns:
            (N, 10) float32 logits, one row per image.
        """
        return self._forward(batch).numpy()


class OnnxRuntime:
    """A model under ONNX Runtime: an exported copy (`from_file`) or an imported ONNX model's adapted graph.

    The session is a `models.foreign.OnnxSession` (one thread, spinning off, a fixed batch size fed in slices);
    an imported model's is its `OnnxNetwork`.
    """

    name = "onnx"

    def __init__(self, session):
        """Wrap an open session.

        Args:
            session: An open `models.foreign.OnnxSession` (or `models.imported.OnnxNetwork`) answering logits.
        """
        self._session = session

    @classmethod
    def from_file(cls, path: str | Path, threads: int = 1) -> OnnxRuntime:
        """Open an exported `.onnx` file.

        Args:
            path: The `.onnx` file (digitlab's export: input `image`, output `logits`).
            threads: ONNX Runtime's intra-op threads (≥ 1).

        Returns:
            The runtime.

        Raises:
            ModelError: The file cannot be read or ONNX Runtime cannot load it.
            MissingDependency: ONNX Runtime is not installed.
        """
        from digitlab.models.foreign import OnnxSession

        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ModelError(f"ONNX Runtime cannot load {path.name}: {e.strerror or e}") from e
        return cls(OnnxSession(data, path.name, threads=threads))

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) float32 in [0, 1] → (N, 10) float32 logits, as `Runtime.logits`."""
        return self._session.run(np.ascontiguousarray(batch, np.float32))


class LiteRTRuntime:
    """A LiteRT interpreter on one thread.

    Its tensors have a fixed batch size, so batches are padded to the next power of two and one interpreter is
    kept per size (resizing on every call would reallocate).
    """

    name = "litert"

    def __init__(self, path: str | Path, threads: int = 1):
        """Open a `.tflite` file (one interpreter of batch size 1 is made and run at once, to fail early).

        Args:
            path: The `.tflite` file (digitlab's export).
            threads: The interpreter's threads (≥ 1).

        Raises:
            MissingDependency: ai-edge-litert is not installed.
            ModelError: LiteRT cannot load the file.
        """
        interpreter = require("ai_edge_litert.interpreter", "the litert runtime").Interpreter
        self._make = lambda: interpreter(model_path=str(path), num_threads=threads)
        self._by_size: dict[int, tuple] = {}
        try:
            self._interpreter(1)
        except ValueError as e:
            raise ModelError(f"LiteRT cannot load {Path(path).name}: {one_line(e)}") from e

    def _interpreter(self, size: int) -> tuple:
        if size not in self._by_size:
            with native_stderr_captured():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                interpreter = self._make()
                inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
                interpreter.resize_tensor_input(inp, [size, 28, 28, 1])
                interpreter.allocate_tensors()
                interpreter.invoke()
            self._by_size[size] = (interpreter, inp, out)
        return self._by_size[size]

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) float32 in [0, 1] → (N, 10) float32 logits, as `Runtime.logits` (padded to 2^k rows)."""
        n = len(batch)
        size = 1 << max(n - 1, 0).bit_length()
        interpreter, inp, out = self._interpreter(size)
        padded = np.zeros((size, 28, 28, 1), np.float32)
        padded[:n] = batch
        interpreter.set_tensor(inp, padded)
        interpreter.invoke()
        return interpreter.get_tensor(out)[:n].copy()


class SavedModelRuntime:
    """The exported SavedModel's `logits` signature, as TensorFlow Serving would run it."""

    name = "savedmodel"

    def __init__(self, path: str | Path):
        """Load the SavedModel folder (TensorFlow starts here if it has not).

        Args:
            path: The exported SavedModel folder (`NAME/VERSION/`, with a `logits` signature).
        """
        import_tensorflow()
        import tensorflow as tf

        self._tf = tf
        self._signature = tf.saved_model.load(str(path)).signatures["logits"]

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) float32 in [0, 1] → (N, 10) float32 logits, through the `logits` signature."""
        return self._signature(image=self._tf.constant(batch, self._tf.float32))["logits"].numpy()


def open_runtime(fmt: str, path: str | Path) -> Runtime:
    """A session for an exported file.

    Args:
        fmt: The export's format: onnx, litert or savedmodel.
        path: The exported file (or SavedModel folder).

    Returns:
        The runtime, ready to answer `logits`.

    Raises:
        ConfigError: An unknown format.
        ModelError: The file cannot be loaded.
        MissingDependency: The format's runtime library is not installed.
    """
    if fmt == "onnx":
        return OnnxRuntime.from_file(path)
    if fmt == "litert":
        return LiteRTRuntime(path)
    if fmt == "savedmodel":
        return SavedModelRuntime(path)
    raise ConfigError(f"no runtime for format {fmt!r}")
