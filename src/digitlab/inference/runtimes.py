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
    """What runs a model: `name` says which (keras, onnx, litert, savedmodel) and `logits` runs a batch.

    `forward` answers the logits and, for a model with features (`digitlab.models.features`), its penultimate
    activations in the same call; `feature_width` is their width D, or None for a model without them.
    """

    name: str
    feature_width: int | None

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) float32 in [0, 1] → (N, 10) logits."""
        ...

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, 28, 28, 1) float32 in [0, 1] → ((N, 10) logits, (N, D) features or None)."""
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
        from digitlab.models.features import with_features
        from digitlab.models.forward import inference_function

        self._forward = inference_function(model)
        both = with_features(model)
        self._both = inference_function(both) if both is not None else None
        self.feature_width = int(both.output["features"].shape[-1]) if both is not None else None

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Run the model once.

        Args:
            batch: (N, 28, 28, 1) float32 in [0, 1], MNIST-style digits (N ≥ 1).

        Returns:
            (N, 10) float32 logits, one row per image.
        """
        return self._forward(batch).numpy()

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and features in one call, as `Runtime.forward` (features None for a model without them)."""
        if self._both is None:
            return self.logits(batch), None
        out = self._both(batch)
        return out["logits"].numpy(), out["features"].numpy()


class OnnxRuntime:
    """A model under ONNX Runtime: an exported copy (`from_file`) or an imported ONNX model's adapted graph.

    The session is a `models.onnx_files.OnnxSession` (one thread, spinning off, a fixed batch size fed in slices);
    an imported model's is its `OnnxNetwork`.
    """

    name = "onnx"

    def __init__(self, session):
        """Wrap an open session.

        Args:
            session: An open `models.onnx_files.OnnxSession` (or `models.imported.OnnxNetwork`) answering logits.
        """
        self._session = session
        outputs = {o.name: o for o in session.session.get_outputs()}
        has_features = "features" in outputs and "logits" in outputs  # digitlab's export of a model with features
        if has_features:
            session.output = "logits"
        self.feature_width = int(outputs["features"].shape[-1]) if has_features else None

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
        from digitlab.models.onnx_files import OnnxSession

        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ModelError(f"ONNX Runtime cannot load {path.name}: {e.strerror or e}") from e
        return cls(OnnxSession(data, path.name, threads=threads))

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) float32 in [0, 1] → (N, 10) float32 logits, as `Runtime.logits`."""
        return self._session.run(np.ascontiguousarray(batch, np.float32))

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and features in one call, as `Runtime.forward` (features None for a model without them)."""
        if self.feature_width is None:
            return self.logits(batch), None
        x = np.ascontiguousarray(batch, np.float32)
        logits, features = self._session.session.run(["logits", "features"], {self._session.input: x})
        return logits, features


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
        self.feature_width: int | None = None
        try:
            self._interpreter(1)
        except ValueError as e:
            raise ModelError(f"LiteRT cannot load {Path(path).name}: {one_line(e)}") from e

    def _interpreter(self, size: int) -> tuple:
        if size not in self._by_size:
            with native_stderr_captured():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                interpreter = self._make()
                inp = interpreter.get_input_details()[0]["index"]
                out, features = _litert_outputs(interpreter)
                interpreter.resize_tensor_input(inp, [size, 28, 28, 1])
                interpreter.allocate_tensors()
                interpreter.invoke()
            self._by_size[size] = (interpreter, inp, out, features)
            if features is not None:
                self.feature_width = int(interpreter.get_tensor(features).shape[-1])
        return self._by_size[size]

    def _invoke(self, batch: np.ndarray) -> tuple:
        n = len(batch)
        size = 1 << max(n - 1, 0).bit_length()
        interpreter, inp, out, features = self._interpreter(size)
        padded = np.zeros((size, 28, 28, 1), np.float32)
        padded[:n] = batch
        interpreter.set_tensor(inp, padded)
        interpreter.invoke()
        return interpreter, out, features, n

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) float32 in [0, 1] → (N, 10) float32 logits, as `Runtime.logits` (padded to 2^k rows)."""
        interpreter, out, _, n = self._invoke(batch)
        return interpreter.get_tensor(out)[:n].copy()

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and features in one call, as `Runtime.forward` (features None for a model without them)."""
        interpreter, out, features, n = self._invoke(batch)
        found = None if features is None else interpreter.get_tensor(features)[:n].copy()
        return interpreter.get_tensor(out)[:n].copy(), found


def _litert_outputs(interpreter) -> tuple[int, int | None]:
    """The tensor indices of the logits and of the features (None when the model has none).

    The converter names a signature's outputs but numbers the interpreter's by its own order: the names come from
    the signature runner.
    """
    try:
        named = {k: v["index"] for k, v in interpreter.get_signature_runner().get_output_details().items()}
    except (ValueError, KeyError):  # a file without signatures
        named = {}
    if "logits" in named and "features" in named:
        return named["logits"], named["features"]
    return interpreter.get_output_details()[0]["index"], None


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
        signatures = tf.saved_model.load(str(path)).signatures
        self._signature = signatures["logits"]
        self._features = signatures.get("features")
        spec = self._features.structured_outputs["features"] if self._features is not None else None
        self.feature_width = int(spec.shape[-1]) if spec is not None else None

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """(N, 28, 28, 1) float32 in [0, 1] → (N, 10) float32 logits, through the `logits` signature."""
        return self._signature(image=self._tf.constant(batch, self._tf.float32))["logits"].numpy()

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits and, through the `features` signature, features, as `Runtime.forward`."""
        if self._features is None:
            return self.logits(batch), None
        image = self._tf.constant(batch, self._tf.float32)
        return self._signature(image=image)["logits"].numpy(), self._features(image=image)["features"].numpy()


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
