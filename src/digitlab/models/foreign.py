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

from digitlab.errors import ModelError, one_line, require
from digitlab.models.contract import LAYOUTS
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


def load_saved_model(path: Path) -> tuple[Any, str | None]:
    """Load a SavedModel's signatures, restoring its objects when TensorFlow can and skipping them when not.

    SavedModels written by Keras 2 (`model.save("dir")` on TF ≤ 2.15) often carry their optimizer's slot
    variables, which TensorFlow 2.16+ cannot restore without Keras 2's optimizer class ("'_UserObject' object has
    no attribute 'add_slot'", tensorflow/tensorflow#52091); their serving signatures need none of those objects.
    So when `tf.saved_model.load` fails, the MetaGraph's signatures are loaded alone, with their variables, the
    way TensorFlow loads a TF1 SavedModel (and TF Serving any SavedModel).

    Args:
        path: A SavedModel folder.

    Returns:
        (the loaded object, whose `.signatures` map names to callables; a note when only the signatures were
        loaded, else None).

    Raises:
        ModelError: neither way loads it (the message keeps TensorFlow's cause).
    """
    import_tensorflow()
    import tensorflow as tf

    with library_output_silenced():
        try:
            return tf.saved_model.load(str(path)), None
        except Exception as e:  # corrupt protobuf, missing variables, objects TF cannot revive, ...
            restoring = e
        try:
            # TensorFlow's own loader for SavedModels without an object graph: signatures and variables only
            from tensorflow.python.saved_model import load_v1_in_v2

            loaded = load_v1_in_v2.load(str(path), None)
        except Exception:  # the first failure is the one that explains the folder
            raise ModelError(f"cannot load the SavedModel {path.name}: {one_line(restoring)}") from restoring
    note = f"its objects could not be restored ({one_line(restoring, 100)}), so its signatures were loaded alone"
    return loaded, note


def _open_savedmodel(path: Path, trust_code: bool, signature_name: str | None = None) -> ForeignModel:
    loaded, note = load_saved_model(path)
    import tensorflow as tf  # imported (quietly) by load_saved_model

    # `__saved_model_init_op` (TF1 SavedModels' initialiser) is listed with the signatures but is not one
    signatures = {k: v for k, v in loaded.signatures.items() if not k.startswith("__")}
    name = choose_signature(path, signatures, signature_name)
    signature = signatures[name]
    input_name, spec = next(iter(signature.structured_input_signature[1].items()))
    shape, output_name = _probe_signature(path, name, signature, input_name, spec)
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


def choose_signature(path: Path, signatures: dict[str, Any], wanted: str | None = None) -> str:
    """The signature to call: `wanted`, else `serving_default` if it classifies digits, else the only one that does.

    Args:
        path: The SavedModel folder (for messages).
        signatures: Name → concrete function, as `loaded.signatures`.
        wanted: The `--signature` the user named, or None.

    Returns:
        The signature's name.

    Raises:
        ModelError: no signatures, `wanted` is not one, or it is unclear which one classifies a digit image (the
            message lists every signature with its inputs and outputs).
    """
    if not signatures:
        raise ModelError(f"the SavedModel {path.name} has no signature; save it with a tf.function input_signature")
    listing = "; ".join(f"{name}{_signature_words(fn)}" for name, fn in sorted(signatures.items()))
    if wanted is not None:
        if wanted not in signatures:
            raise ModelError(f"the SavedModel {path.name} has no signature {wanted!r}; its signatures: {listing}")
        problem = _not_a_digit_classifier(signatures[wanted])
        if problem:
            raise ModelError(f"the SavedModel's {wanted!r} signature {problem}; its signatures: {listing}")
        return wanted
    fit = [name for name, fn in sorted(signatures.items()) if not _not_a_digit_classifier(fn)]
    if "serving_default" in fit:
        return "serving_default"
    if len(fit) == 1:
        return fit[0]
    default = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    why = _not_a_digit_classifier(signatures[default]) if default in signatures else "is missing"
    which = "several classify 28×28 digits" if fit else "none takes one 28×28 image and answers 10 classes"
    raise ModelError(
        f"the SavedModel {path.name}'s {default!r} signature {why}, and {which}: {listing}; "
        "choose one with --signature NAME"
    )


def _not_a_digit_classifier(signature) -> str | None:
    """Why a signature cannot be a one-image, 10-class digit classifier (None when it may be one).

    TF1 SavedModels often record no shapes at all (TF Serving's MNIST tutorial: "unknown rank"); such a
    signature may be one, and `_probe_signature` finds out by running it.
    """
    inputs = signature.structured_input_signature[1]
    if len(inputs) != 1:
        return f"takes {len(inputs)} inputs ({', '.join(sorted(inputs))}), not one image"
    name, spec = next(iter(inputs.items()))
    if spec.dtype.name not in ("float32", "float64", "uint8"):
        what = " (serialized tf.Example protos, not pixels)" if spec.dtype.name == "string" else ""
        return f"takes {spec.dtype.name} {name!r}{what}"
    if spec.shape.rank is not None and tuple(spec.shape[1:]) not in LAYOUTS.values():
        return f"takes {name!r} of shape {_shape_words(spec.shape)}, not 28×28 digits"
    if not _output_candidates(signature):
        return "has no output of 10 classes"
    return None


def _output_candidates(signature) -> list[str]:
    """Outputs that are, or may be (unknown shape), (N, 10): a name `logits` first."""
    names = [
        k
        for k, v in sorted(signature.structured_outputs.items())
        if v is not None and (v.shape.rank is None or (v.shape.rank == 2 and v.shape[1] in (10, None)))
    ]
    return sorted(names, key=lambda k: k != "logits")


def _probe_signature(path: Path, name: str, signature: Any, input_name: str, spec: Any) -> tuple[tuple[int, ...], str]:
    """The signature's input shape (without the batch axis) and its (N, 10) output, from its record or by a run.

    Every digitlab layout holds a digit's 784 pixels in the same order, so the first layout a shape-less
    signature accepts reads digits as any other would.

    Args:
        path: The SavedModel folder (for messages).
        name: The signature's name.
        signature: The signature (a concrete function).
        input_name: Its one input.
        spec: The input's `tf.TensorSpec` (its shape may be of unknown rank).

    Returns:
        (the input shape without the batch axis, the name of the (N, 10) output).

    Raises:
        ModelError: no layout runs, or nothing it answers is (N, 10).
    """
    import tensorflow as tf

    shapes = [tuple(spec.shape[1:])] if spec.shape.rank is not None else list(LAYOUTS.values())
    batch = spec.shape[0] if spec.shape.rank and spec.shape[0] else 2
    for shape in shapes:
        try:
            with library_output_silenced():
                out = signature(**{input_name: tf.zeros((batch, *shape), spec.dtype)})
        except Exception:  # this layout does not fit the graph: try the next
            continue
        ten = [k for k in _output_candidates(signature) if tuple(out[k].shape) == (batch, 10)]
        if ten:
            return shape, ten[0]
    raise ModelError(
        f"the SavedModel's {name!r} signature answers no (N, 10) output for 28×28 digits in any layout "
        f"({', '.join(LAYOUTS)}); its outputs: {', '.join(sorted(signature.structured_outputs))}"
    )


def _shape_words(shape) -> str:
    return "(unknown)" if shape is None or shape.rank is None else str(tuple(shape))


def _signature_words(signature) -> str:
    """'(images: float32 (None, 784)) → scores (None, 10)' for the listing in a message."""
    inputs = ", ".join(
        f"{k}: {v.dtype.name} {_shape_words(v.shape)}" for k, v in signature.structured_input_signature[1].items()
    )
    outputs = ", ".join(
        f"{k} {_shape_words(getattr(v, 'shape', None))}" for k, v in signature.structured_outputs.items()
    )
    return f"({inputs}) → {outputs}"


def read_onnx(path: Path):
    """Read an ONNX file as one self-contained `ModelProto`: tensors it keeps in separate files are read in.

    Exporters write a model's weights to a side file (`model.onnx.data`) when asked or when it is large;
    digitlab keeps the model as one file afterwards, so the run does not depend on the side file staying put.

    Args:
        path: An `.onnx` file, with any external-data files it names beside it.

    Returns:
        The checked `onnx.ModelProto`, every tensor inline.

    Raises:
        ModelError: the file is not ONNX, names a side file that is missing or outside its folder, or fails
            ONNX's checker.
        MissingDependency: onnx is not installed.
    """
    onnx = require("onnx", "reading ONNX models")
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model, uses_external_data

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # truncated or not ONNX at all
        raise ModelError(f"{path.name} is not a readable ONNX model ({one_line(e, 160)})") from e
    external = sorted({ExternalDataInfo(t).location for t in _tensors(proto.graph) if uses_external_data(t)})
    folder = path.resolve().parent
    for location in external:
        side = (folder / location).resolve()
        if folder not in side.parents:
            raise ModelError(f"{path.name} names weights outside its folder ({location}); refusing to read them")
        if not side.is_file():
            raise ModelError(
                f"{path.name} keeps its weights in a separate file, {location}, which is not beside it in "
                f"{folder}: copy {location} there too"
            )
    try:
        if external:
            load_external_data_for_model(proto, str(folder))
        onnx.checker.check_model(proto)
    except Exception as e:
        raise ModelError(f"{path.name} is not a valid ONNX model ({one_line(e, 160)})") from e
    return proto


def _tensors(graph):
    """Every tensor a graph holds: its initializers and the constants in node attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("g"):
                yield from _tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _tensors(subgraph)


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
