"""Opening a model file digitlab did not make: Keras (`.keras`, `.h5`), a TF SavedModel folder, or ONNX.

`open_foreign(path)` returns a `ForeignModel`: the model's own input shape, dtype, fixed batch size and
tensor names, the evidence for its output kind (its last activation), and `run(x)` on the model's own side.
Every way a file can be wrong (corrupt, truncated, code inside, custom layers, not 28×28 digits, not 10
classes) is a one-line `ModelError` that says what to do. Keras files load in safe mode unless the user
passed `--trust-code`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.errors import ModelError, one_line, require
from digitlab.models.contract import LAYOUTS
from digitlab.tf_logging import import_tensorflow

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass
class ForeignModel:
    """A foreign model as found (see the module docstring). `network` is the Keras model for Keras files."""

    format: str  # keras | savedmodel | onnx
    path: Path
    input_shape: tuple[int, ...]  # without the batch axis
    dtype: str
    batch: int | None
    run: Callable[[np.ndarray], np.ndarray]  # the model's own input → its (N, 10) output
    last_activation: str | None = None  # softmax | log_softmax | None (linear or unknown)
    input_name: str | None = None
    output_name: str | None = None
    signature: str | None = None
    network: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def layout(self) -> str:
        """The name of the input layout (a key of `contract.LAYOUTS`: 28x28x1, 28x28, 784 or 1x28x28).

        Raises:
            ModelError: The input shape is none of them (not a 28×28 digit model).
        """
        for name, shape in LAYOUTS.items():
            if shape == self.input_shape:
                return name
        shown = "×".join(str(d) for d in self.input_shape)
        raise ModelError(
            f"{self.path.name} takes {shown} inputs, not 28×28 digits (accepted: 28×28×1, 28×28, 784, 1×28×28)"
        )


def format_of(path: Path) -> str:
    """What kind of model file `path` is, from its suffix or folder contents.

    Args:
        path: A model file or a SavedModel folder.

    Returns:
        "keras", "savedmodel" or "onnx" (see `FORMATS`).

    Raises:
        ModelError: The file is of no format digitlab imports.
    """
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelError(f"{path} is a folder without saved_model.pb: not a SavedModel or a digitlab run")
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return "keras"
    if suffix == ".onnx":
        return "onnx"
    raise ModelError(f"{path.name}: unknown model format (digitlab imports .keras, .h5, .onnx or a SavedModel folder)")


def open_foreign(path: str | Path, trust_code: bool = False) -> ForeignModel:
    """Open a model file digitlab did not train, by its format, to detect its contract.

    Args:
        path: A `.keras`/`.h5` file, an `.onnx` file or a SavedModel folder.
        trust_code: Load Keras files outside safe mode (runs any Python code, e.g. Lambda layers, inside).

    Returns:
        The opened model with its input shape, dtype and output facts.

    Raises:
        ModelError: One line, for anything that cannot be a 10-class digit model.
        MissingDependency: An ONNX file without onnx or ONNX Runtime installed.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"no model at {path}")
    fmt = format_of(path)
    model = {"keras": _open_keras, "savedmodel": _open_savedmodel, "onnx": _open_onnx}[fmt](path, trust_code)
    _ = model.layout  # refuses a shape that is not a digit layout
    return model


def load_keras_file(path: Path, trust_code: bool = False):
    """`keras.saving.load_model` in safe mode (unless trusted), every failure as one line naming the fix.

    Args:
        path: A `.keras` or `.h5` file.
        trust_code: Load outside safe mode (Lambda layers and other Python code run).

    Returns:
        The uncompiled Keras model.

    Raises:
        ModelError: The file cannot be loaded (the message names the layer, the code or the damage).
    """
    import_tensorflow()
    import keras

    from digitlab.models.contract import probabilities_to_logits_layer

    probabilities_to_logits_layer()  # registered, so digitlab's own adapter layer loads
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not trust_code)
    except Exception as e:  # Keras raises many types for a bad zip/config/layer; map the ones we can name
        raise ModelError(_keras_error(path, e)) from e


def _keras_error(path: Path, e: Exception) -> str:
    text = " ".join(str(e).split())
    if "safe_mode" in text or ("Lambda" in text and "unsafe" in text.lower()):
        return (
            f"{path.name} contains Python code (a Lambda layer), which safe mode will not run; if you trust the "
            "file, import it with --trust-code"
        )
    unknown = re.search(r"[Cc]ould not (?:locate|deserialize) class '?([A-Za-z_][\w.]*)'?", text)
    if unknown:
        return (
            f"{path.name} uses the custom layer class {unknown.group(1)!r}, which digitlab cannot rebuild without "
            "its code; replace it with built-in layers, or export the model to ONNX or a SavedModel and import that"
        )
    first = text[:200] or type(e).__name__
    return f"cannot load {path.name} as a Keras model: {first}"


def _open_keras(path: Path, trust_code: bool) -> ForeignModel:
    network = load_keras_file(path, trust_code)
    shapes = network.input_shape
    if isinstance(shapes, list):
        if len(shapes) != 1:
            raise ModelError(f"{path.name} takes {len(shapes)} inputs; a digit classifier takes one image")
        shapes = shapes[0]
    _check_classes(path, network.output_shape)
    forward = _keras_forward(network)
    return ForeignModel(
        "keras",
        path,
        tuple(shapes[1:]),
        _keras_dtype(network),
        None,
        forward,
        last_activation=_keras_last_activation(network),
        network=network,
    )


def _keras_forward(network) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(network(x[i : i + 500], training=False)) for i in range(0, len(x), 500)])

    return run


def _keras_dtype(network) -> str:
    dtype = getattr(network.inputs[0], "dtype", "float32")
    return str(getattr(dtype, "name", dtype)).replace("tf.", "")


def _keras_last_activation(network) -> str | None:
    last = network.layers[-1] if getattr(network, "layers", None) else None
    while last is not None and hasattr(last, "layers") and last.layers:  # a nested model's own last layer
        last = last.layers[-1]
    if last is None:
        return None
    kind = type(last).__name__
    if kind == "Softmax":
        return "softmax"
    activation = last.get_config().get("activation") if kind in ("Dense", "Activation") else None
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", None)
    return name if name in ("softmax", "log_softmax") else None


def _check_classes(path: Path, shape) -> None:
    if isinstance(shape, list):
        raise ModelError(f"{path.name} has {len(shape)} outputs; digitlab needs one with 10 classes")
    if tuple(shape[1:]) != (10,):
        shown = "×".join(str(d) for d in shape[1:])
        raise ModelError(f"{path.name} answers {shown} values per image, not 10 classes (digits 0–9)")


def _open_savedmodel(path: Path, trust_code: bool) -> ForeignModel:
    import_tensorflow()
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # corrupt protobuf, missing variables, ...
        raise ModelError(f"cannot load the SavedModel {path.name}: {one_line(e)}") from e
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ModelError(f"the SavedModel {path.name} has no signature; save it with a tf.function input_signature")
    name = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    signature = signatures[name]
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1:
        raise ModelError(f"the SavedModel's {name!r} signature takes {len(inputs)} inputs; a digit classifier takes 1")
    input_name, spec = next(iter(inputs.items()))
    outputs = {k: v for k, v in signature.structured_outputs.items() if tuple(v.shape[1:]) == (10,)}
    if not outputs:
        raise ModelError(f"the SavedModel's {name!r} signature has no output of 10 classes")
    output_name = "logits" if "logits" in outputs else sorted(outputs)[0]
    batch = spec.shape[0] if spec.shape.rank else None

    def run(x: np.ndarray) -> np.ndarray:
        return signature(**{input_name: tf.constant(x)})[output_name].numpy()

    model = ForeignModel(
        "savedmodel",
        path,
        tuple(spec.shape[1:]),
        spec.dtype.name,
        batch,
        run,
        input_name=input_name,
        output_name=output_name,
        signature=name,
    )
    if batch:
        model.run = looped(run, batch)
    return model


def _open_onnx(path: Path, trust_code: bool) -> ForeignModel:
    onnx = require("onnx", "reading ONNX models")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as e:  # truncated or not ONNX at all
        raise ModelError(f"{path.name} is not a readable ONNX model ({one_line(e, 160)})") from e
    model = OnnxSession(proto.SerializeToString(), path.name)
    inputs, outputs = model.session.get_inputs(), model.session.get_outputs()
    if len(inputs) != 1:
        raise ModelError(f"{path.name} takes {len(inputs)} inputs; a digit classifier takes one image")
    ten = [o for o in outputs if o.shape and o.shape[-1] == 10 and len(o.shape) == 2]
    if not ten:
        raise ModelError(f"{path.name} has no output of 10 classes (digits 0–9)")
    model.output = ten[0].name
    dtype = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(uint8)": "uint8"}.get(inputs[0].type)
    if dtype is None:
        raise ModelError(f"{path.name} takes {inputs[0].type} inputs (digitlab feeds float32, float64 or uint8)")
    last = {"Softmax": "softmax", "LogSoftmax": "log_softmax"}.get(_through_identity(proto, model.output))
    shape = tuple(int(d) if isinstance(d, int) else -1 for d in inputs[0].shape[1:])
    return ForeignModel(
        "onnx",
        path,
        shape,
        dtype,
        model.batch,
        model.run,
        last_activation=last,
        input_name=model.input,
        output_name=model.output,
    )


def _through_identity(proto, name: str) -> str | None:
    """The op that makes `name`, looking through Identity nodes (Keras' exporter ends graphs with one)."""
    by_output = {o: n for n in proto.graph.node for o in n.output}
    node = by_output.get(name)
    while node is not None and node.op_type == "Identity":
        node = by_output.get(node.input[0])
    return node.op_type if node is not None else None


def looped(run: Callable[[np.ndarray], np.ndarray], batch: int) -> Callable[[np.ndarray], np.ndarray]:
    """`run` for a model with a fixed batch size: the input in slices of `batch`, the last one padded.

    Args:
        run: Runs exactly `batch` rows, (batch, ...) → (batch, 10).
        batch: The model's fixed batch size (≥ 1).

    Returns:
        A function of any number N of rows, (N, ...) → (N, 10).
    """

    def looped(x: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(x), batch):
            part = x[i : i + batch]
            pad = batch - len(part)
            if pad:
                part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), part.dtype)])
            out.append(run(part)[: batch - pad])
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)

    return looped


class OnnxSession:
    """An ONNX model under ONNX Runtime, on `threads` threads and not spinning.

    Idle workers give their core back at once. `run(x)` answers the `output` tensor (default: the graph's first
    output) for the graph's one input; a graph with a fixed batch size is fed in slices of that size (`looped`).

    Detection runs a foreign graph through it, an imported model's adapted graph is one (`OnnxNetwork`), and so
    is the onnx runtime's session (`inference.runtimes.OnnxRuntime`).
    """

    def __init__(self, model_bytes: bytes, name: str, output: str | None = None, threads: int = 1):
        """Open an ONNX Runtime session on one thread pool that does not spin.

        Args:
            model_bytes: A serialised ONNX `ModelProto`.
            name: The file's name, for messages.
            output: The output tensor to answer (default: the graph's first output).
            threads: ONNX Runtime's intra-op threads (≥ 1).

        Raises:
            MissingDependency: onnxruntime is not installed.
            ModelError: ONNX Runtime cannot load the bytes.
        """
        ort = require("onnxruntime", "running ONNX models")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # InvalidProtobuf, unsupported op, ...: all mean "this file cannot be run"
            raise ModelError(f"ONNX Runtime cannot load {name}: {one_line(e)}") from e
        self.name = name
        self.model_bytes = model_bytes
        first = self.session.get_inputs()[0]
        self.input = first.name
        self.batch = first.shape[0] if isinstance(first.shape[0], int) and first.shape[0] > 0 else None
        self.output = output or self.session.get_outputs()[0].name

    def _run_once(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output], {self.input: x})[0]

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the graph on `x`, in slices of the graph's batch size when it has a fixed one.

        Args:
            x: The graph's one input, of the shape and dtype it declares (N first).

        Returns:
            The `output` tensor for all N rows.
        """
        return looped(self._run_once, self.batch)(x) if self.batch else self._run_once(x)
