"""Opening a model file digitlab did not make: Keras (`.keras`, `.h5`), a TF SavedModel folder, or ONNX.

`open_foreign(path)` returns a `ForeignModel`: the model's own input shape, dtype, fixed batch size and
tensor names, the evidence for its output kind (its last activation), and `run(x)` on the model's own side.
Every way a file can be wrong (corrupt, truncated, code inside, custom layers, not 28×28 digits, not 10
classes) is a one-line `ModelError` that says what to do. Keras files load in safe mode unless the user
passed `--trust-code`.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.errors import ModelError, one_line
from digitlab.models.contract import LAYOUTS
from digitlab.models.onnx_files import OnnxSession, looped, read_onnx
from digitlab.models.signatures import choose_signature, load_saved_model, probe_signature
from digitlab.tf_logging import import_tensorflow, library_output_silenced

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
    network: Any = None  # the Keras model, the loaded SavedModel, or the ONNX ModelProto (every tensor inline)
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


def open_foreign(path: str | Path, trust_code: bool = False, signature: str | None = None) -> ForeignModel:
    """Open a model file digitlab did not train, by its format, to detect its contract.

    Args:
        path: A `.keras`/`.h5` file, an `.onnx` file or a SavedModel folder.
        trust_code: Load Keras files outside safe mode (runs any Python code, e.g. Lambda layers, inside).
        signature: The SavedModel signature to call (default: `choose_signature`'s choice); others ignore it.

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
    if signature is not None and fmt != "savedmodel":
        raise ModelError(f"--signature names a SavedModel signature, but {path.name} is not a SavedModel ({fmt})")
    opener = {"keras": _open_keras, "savedmodel": _open_savedmodel, "onnx": _open_onnx}[fmt]
    model = opener(path, trust_code, signature)
    _ = model.layout  # refuses a shape that is not a digit layout
    return model


def load_keras_file(path: Path, trust_code: bool = False):
    """`keras.saving.load_model` in safe mode (unless trusted), every failure as one line naming the fix.

    An `.h5` written by Keras 2.2 or older (a `Sequential` whose first layer carries `batch_input_shape`, or a
    config that is a bare list of layers) is read through a copy whose config says the same in Keras 3's terms:
    Keras 3 takes such a first layer's shape for an extra axis and fails on the kernel's shape.

    Args:
        path: A `.keras` or `.h5` file.
        trust_code: Load outside safe mode (Lambda layers and other Python code run).

    Returns:
        The uncompiled Keras model.

    Raises:
        ModelError: The file cannot be loaded (the message names the layer, the code or the damage, and for a
            Keras 2 file how to convert it).
    """
    import_tensorflow()
    import keras

    from digitlab.models.contract import probabilities_to_logits_layer

    probabilities_to_logits_layer()  # registered, so digitlab's own adapter layer loads
    with library_output_silenced(), legacy_h5_rewritten(path) as readable:
        try:
            return keras.saving.load_model(readable, compile=False, safe_mode=not trust_code)
        except Exception as e:  # Keras raises many types for a bad zip/config/layer; map the ones we can name
            raise ModelError(_keras_error(path, e)) from e


@contextlib.contextmanager
def legacy_h5_rewritten(path: Path) -> Iterator[Path]:
    """`path`, or for a Keras ≤ 2.2 `.h5` a temporary copy whose model config Keras 3 reads as Keras 2 did.

    Args:
        path: A Keras file.

    Yields:
        The file to load (the copy is removed after the block).
    """
    config = _legacy_h5_config(path)
    if config is None:
        yield path
        return
    import h5py

    with tempfile.TemporaryDirectory(prefix="digitlab-h5-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as f:
            f.attrs["model_config"] = json.dumps(config)
        yield copy


def _legacy_h5_config(path: Path) -> dict[str, Any] | None:
    """The model config of a Keras ≤ 2.2 `.h5` rewritten for Keras 3, or None when nothing needs rewriting."""
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return None
    try:
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else None
    except (OSError, ValueError, TypeError):
        return None  # not HDF5, or no readable config: Keras' own error names it
    if not isinstance(config, dict) or config.get("class_name") != "Sequential":
        return None
    changed, body = False, config.get("config")
    if isinstance(body, list):  # Keras ≤ 2.1: the config is the list of layers itself
        config["config"] = body = {"name": "sequential", "layers": body}
        changed = True
    layers = body.get("layers") if isinstance(body, dict) else None
    if layers and layers[0].get("class_name") != "InputLayer":
        first = layers[0].get("config", {})
        shape = first.pop("batch_input_shape", None)
        if shape is not None:
            input_config = {"batch_shape": shape, "dtype": first.get("dtype", "float32"), "name": "input"}
            layers.insert(0, {"class_name": "InputLayer", "config": input_config})
            changed = True
    return config if changed else None


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
    version = _keras_version(path)
    if version.startswith(("1.", "2.")):
        return (
            f"{path.name} was saved by Keras {version}, and Keras 3 cannot rebuild it ({one_line(e, 120)}); convert "
            f'it with Keras 2 (pip install tf-keras): python -c "import tf_keras; '
            f"tf_keras.models.load_model('{path.name}').export('{path.stem}-savedmodel')\", then import that folder"
        )
    return f"cannot load {path.name} as a Keras model: {one_line(e)}"


def _keras_version(path: Path) -> str:
    """The Keras version an `.h5` file records ("" for other files or none recorded)."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            version = f.attrs.get("keras_version", "")
    except (OSError, ValueError, TypeError):
        return ""
    return version.decode() if isinstance(version, bytes) else str(version)


def _open_keras(path: Path, trust_code: bool, signature_name: str | None = None) -> ForeignModel:
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


def _open_savedmodel(path: Path, trust_code: bool, signature_name: str | None = None) -> ForeignModel:
    loaded, note = load_saved_model(path)
    import tensorflow as tf  # imported (quietly) by load_saved_model

    # `__saved_model_init_op` (TF1 SavedModels' initialiser) is listed with the signatures but is not one
    signatures = {k: v for k, v in loaded.signatures.items() if not k.startswith("__")}
    name = choose_signature(path, signatures, signature_name)
    signature = signatures[name]
    input_name, spec = next(iter(signature.structured_input_signature[1].items()))
    shape, output_name = probe_signature(path, name, signature, input_name, spec)
    batch = spec.shape[0] if spec.shape.rank else None

    def run(x: np.ndarray) -> np.ndarray:
        with library_output_silenced():
            return signature(**{input_name: tf.constant(x)})[output_name].numpy()

    model = ForeignModel(
        "savedmodel",
        path,
        shape,
        spec.dtype.name,
        batch,
        looped(run, batch) if batch else run,
        input_name=input_name,
        output_name=output_name,
        signature=name,
        network=loaded,
    )
    model.notes += [note] if note else []
    return model


def _open_onnx(path: Path, trust_code: bool, signature_name: str | None = None) -> ForeignModel:
    proto = read_onnx(path)
    with library_output_silenced():
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
        network=proto,
    )


def _through_identity(proto, name: str) -> str | None:
    """The op that makes `name`, looking through Identity nodes (Keras' exporter ends graphs with one)."""
    by_output = {o: n for n in proto.graph.node for o in n.output}
    node = by_output.get(name)
    while node is not None and node.op_type == "Identity":
        node = by_output.get(node.input[0])
    return node.op_type if node is not None else None
