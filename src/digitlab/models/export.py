"""A trained model in the formats people deploy: a TF Serving SavedModel, ONNX, LiteRT (`.tflite`).

Conversion uses Keras' own exporters (`model.export`, `keras.export.ExportArchive`); ONNX goes through
tf2onnx ≥ 1.17 (older releases pin protobuf < 4 and cannot install beside TensorFlow 2.21). Every format
takes the same input, `image`: (N, 28, 28, 1) float32 in [0, 1], a white digit on black, centred and
size-normalised like MNIST (`digitlab.data.preprocess` makes any image so), and answers 10 logits.
Probabilities are softmax(logits / temperature), with the temperature in the metadata JSON written beside
each export. The SavedModel answers them directly: its `serving_default` signature has the one output
`probabilities` (so TF Serving's row format answers `{"predictions": [[10 numbers], ...]}`), and a second
signature, `logits`, the logits. A model with features (`digitlab.models.features`: the penultimate layer's
activations and a convolutional network's last convolution pooled, which the "not a digit" refusal compares with
training digits) also answers them: a third
signature `features` in the SavedModel, a second output `features` (beside `logits`) in ONNX and LiteRT.

Each export is written under a temporary name and renamed, and its metadata records the sha256 of the
source `model.keras` and of the exported file, so a stale or corrupted copy is recognised (`is_current`)
and never run. Parity with Keras is checked by `digitlab.inference.export_command`, which runs the files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from digitlab.atomic import atomic_write_json
from digitlab.data.mnist_files import sha256_file
from digitlab.errors import ConfigError, ModelError, one_line

FORMATS = ("savedmodel", "onnx", "litert")
SERVING_NAME = "digits"  # TF Serving's model name: REST at /v1/models/digits:predict
SERVING_VERSION = 1
ONNX_OPSET = 17
INPUT_CONTRACT = {
    "name": "image",
    "shape": [None, 28, 28, 1],
    "dtype": "float32",
    "range": [0.0, 1.0],
    "convention": "white digit on black, centred and size-normalised like MNIST; digitlab's preprocessing "
    "(to_mnist_28x28) turns any image into this",
}
LABELS = list(range(10))
# The SavedModel's signatures: name -> (its one output, the method TF Serving lists). One output each, so TF
# Serving answers plain lists, not a dict per row; `digitlab serve` describes and answers the same.
SIGNATURES = {"serving_default": "probabilities", "logits": "logits"}
FEATURES_SIGNATURE = {"features": "features"}  # added for a model with features
METADATA_SCHEMA = "digitlab.export/3"  # /3: features carry the last convolution too (older exports are remade)
SIGNATURE_METHOD = "tensorflow/serving/predict"


def signatures_for(with_features: bool) -> dict[str, str]:
    """The SavedModel's signatures (name → its one output), with `features` for a model that has them."""
    return {**SIGNATURES, **(FEATURES_SIGNATURE if with_features else {})}


def signature_defs(feature_width: int | None = None) -> dict[str, Any]:
    """The exported SavedModel's SignatureDefs as TF Serving's metadata route prints them, without TensorFlow.

    Proto field names, every field present: what `digitlab serve` answers at `.../metadata`. The tensor names
    are the graph's (the placeholders are `<signature>_image`, the calls are numbered in the signatures'
    sorted order); the tests compare all of it with a real export.

    Args:
        feature_width: D of the model's features, or None for a model without them (no `features` signature).

    Returns:
        signature name → `{inputs, outputs, method_name, defaults}`, plus `__saved_model_init_op`.
    """

    def tensor(name: str, dims: list[int]) -> dict[str, Any]:
        shape = {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False}
        return {"dtype": "DT_FLOAT", "tensor_shape": shape, "name": name}

    defs: dict[str, Any] = {}
    signatures = signatures_for(feature_width is not None)
    for i, signature in enumerate(sorted(signatures)):
        output = signatures[signature]
        call = "StatefulPartitionedCall" + (f"_{i}" if i else "")
        width = feature_width if output == "features" else 10
        defs[signature] = {
            "inputs": {"image": tensor(f"{signature}_image:0", [-1, 28, 28, 1])},
            "outputs": {output: tensor(f"{call}:0", [-1, width])},
            "method_name": SIGNATURE_METHOD,
            "defaults": {},
        }
    init = {"dtype": "DT_INVALID", "tensor_shape": {"dim": [], "unknown_rank": True}, "name": "NoOp"}
    defs["__saved_model_init_op"] = {
        "inputs": {},
        "outputs": {"__saved_model_init_op": init},
        "method_name": "",
        "defaults": {},
    }
    return defs


def export_dir_for(model_path: Path, run_dir: Path | None) -> Path:
    """Where a model's exports live by default.

    Args:
        model_path: the model file.
        run_dir: its run directory, or None for a bare model file.

    Returns:
        `RUN/export`, or `<name>-export/` beside a bare model file.
    """
    return run_dir / "export" if run_dir is not None else model_path.parent / f"{model_path.stem}-export"


def exported_path(out: Path, fmt: str) -> Path:
    """The file (or, for a SavedModel, the version directory) of a format under an export folder.

    Args:
        out: the export folder.
        fmt: one of `FORMATS`.

    Returns:
        `savedmodel/digits/1`, `model.onnx` or `model.tflite` under `out`.

    Raises:
        ConfigError: for an unknown format.
    """
    return {
        "savedmodel": out / "savedmodel" / SERVING_NAME / str(SERVING_VERSION),
        "onnx": out / "model.onnx",
        "litert": out / "model.tflite",
    }[check_format(fmt)]


def metadata_path(out: Path, fmt: str) -> Path:
    """The metadata JSON written beside an export.

    Args:
        out: the export folder.
        fmt: one of `FORMATS`.

    Returns:
        `out/<fmt>.json`.

    Raises:
        ConfigError: for an unknown format.
    """
    return out / f"{check_format(fmt)}.json"


def check_format(fmt: str) -> str:
    """Refuse an unknown export format in one line.

    Args:
        fmt: the format asked for.

    Returns:
        `fmt`, one of `FORMATS`.

    Raises:
        ConfigError: when `fmt` is not one of `FORMATS`.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)} or all, got {fmt!r}")
    return fmt


def digest(path: Path) -> str:
    """The sha256 of a file, or of a folder: of every file's relative name and sha256, in sorted order.

    Args:
        path: a file or a folder (a SavedModel).

    Returns:
        64 lowercase hex digits.
    """
    if not path.is_dir():
        return sha256_file(path)
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{file.relative_to(path)}\0{sha256_file(file)}\n".encode())
    return h.hexdigest()


def read_metadata(out: Path, fmt: str) -> dict[str, Any] | None:
    """An export's metadata, if it is there and readable.

    Args:
        out: the export folder.
        fmt: one of `FORMATS`.

    Returns:
        The metadata dict, or None when missing or not JSON.
    """
    try:
        return json.loads(metadata_path(out, fmt).read_text())
    except (OSError, ValueError):
        return None


def is_current(out: Path, fmt: str, source_sha256: str, temperature: float) -> tuple[bool, str]:
    """Whether an export can be run as it is.

    Current means: made from this exact model file, passed its parity check, intact, and (a SavedModel, which
    bakes the temperature in) made with this temperature and the current signature layout.

    Args:
        out: the export folder.
        fmt: one of `FORMATS`.
        source_sha256: the model file's digest now.
        temperature: the model's temperature now.

    Returns:
        (True, "") when current, else (False, why) with a reason a person reads.
    """
    meta = read_metadata(out, fmt)
    path = exported_path(out, fmt)
    if meta is None:
        return False, "not exported yet"
    if meta.get("source", {}).get("sha256") != source_sha256:
        return False, "the model file changed since it was exported"
    if not meta.get("parity", {}).get("passed"):
        return False, "the export did not pass its parity check"
    if fmt == "savedmodel" and abs(meta.get("temperature", 1.0) - temperature) > 1e-9:
        return False, "the temperature was refitted since it was exported"
    if meta.get("schema") != METADATA_SCHEMA:
        return False, "it was exported by an older digitlab (the features output changed since)"
    if not path.exists() or digest(path) != meta.get("sha256"):
        return False, f"{path.name} is missing or corrupt (its sha256 differs from the metadata's)"
    return True, ""


def convert(model, fmt: str, out: Path, temperature: float = 1.0) -> dict[str, Any]:
    """Write a Keras model in one format under `out`, atomically (staged in a temporary folder, then renamed).

    Args:
        model: a Keras model taking (N, 28, 28, 1) float32 in [0, 1] and answering (N, 10) logits.
        fmt: one of `FORMATS`.
        out: the export folder.
        temperature: baked into the SavedModel's `probabilities` signature.

    Returns:
        What the metadata should say about the conversion (opset, operators, endpoint names).

    Raises:
        ConfigError: for an unknown format.
        ModelError: when the converter refuses the model (the message names what blocks it).
    """
    import numpy as np

    from digitlab.models.features import with_features

    model(np.zeros((1, 28, 28, 1), np.float32), training=False)  # Keras' exporters need a called model
    target = exported_path(out, fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{fmt}-", dir=target.parent))
    try:
        staged = tmp / target.name
        both = with_features(model)
        if both is not None:
            both(np.zeros((1, 28, 28, 1), np.float32), training=False)
        writer = {"savedmodel": _savedmodel, "onnx": _onnx, "litert": _litert}[fmt]
        info = writer(model, both, staged, temperature)
        if target.is_dir():
            shutil.rmtree(target)
        staged.replace(target)
    except (ModelError, ConfigError):
        raise
    except Exception as e:  # a converter's refusal names the layer or op that blocks it
        reason = one_line(e, 300)
        raise ModelError(f"cannot export {model.name} to {fmt}: {reason}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def write_adapted_onnx(onnx_bytes: bytes, out: Path) -> dict[str, Any]:
    """Write an imported ONNX model, with its contract's adapter, as the onnx export.

    Args:
        onnx_bytes: the adapted graph (`OnnxNetwork.model_bytes`).
        out: the export folder.

    Returns:
        The conversion's metadata: opset, input and output names, and where the adapter is described.
    """
    import onnx

    from digitlab.atomic import atomic_write_bytes

    path = atomic_write_bytes(exported_path(out, "onnx"), onnx_bytes)
    graph = onnx.load(str(path))
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    return {"opset": int(opset), "input_name": "image", "output_name": "logits", "adapter": "contract.json"}


def write_metadata(out: Path, fmt: str, meta: dict[str, Any]) -> Path:
    """Write an export's metadata JSON atomically.

    Args:
        out: the export folder.
        fmt: one of `FORMATS`.
        meta: the metadata (schema `digitlab.export/1`).

    Returns:
        The path written.
    """
    return atomic_write_json(metadata_path(out, fmt), meta)


def _savedmodel(model, both, path: Path, temperature: float) -> dict[str, Any]:
    """Write a SavedModel laid out as TF Serving's NAME/VERSION/.

    Its signatures: `serving_default`: image → {probabilities}; `logits`: image → {logits}; with features
    (`both` is the model answering both), `features`: image → {features} (see `signatures_for`).
    """
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)

    def probabilities(image):
        return {"probabilities": tf.nn.softmax(model(image, training=False) / temperature)}

    def logits(image):
        return {"logits": model(image, training=False)}

    signature = [tf.TensorSpec((None, 28, 28, 1), tf.float32, name="image")]
    archive.add_endpoint(name="serving_default", fn=probabilities, input_signature=signature)
    archive.add_endpoint(name="logits", fn=logits, input_signature=signature)
    if both is not None:
        archive.track(both)

        def features(image):
            return {"features": both(image, training=False)["features"]}

        archive.add_endpoint(name="features", fn=features, input_signature=signature)
    archive.write_out(str(path), verbose=False)
    return {"signature": "serving_default", "signatures": signatures_for(both is not None)}


def _onnx(model, both, path: Path, temperature: float) -> dict[str, Any]:
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx probes np.object
        (both or model).export(str(path), format="onnx", opset_version=ONNX_OPSET, verbose=False)
    graph = onnx.load(str(path))
    opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    outputs = [o.name for o in graph.graph.output]
    logits = "logits" if both is not None else outputs[0]
    info = {"opset": int(opset), "input_name": graph.graph.input[0].name, "output_name": logits}
    return info | ({"features_name": "features"} if both is not None else {})


def _litert(model, both, path: Path, temperature: float) -> dict[str, Any]:
    from tensorflow.lite.python import schema_py_generated as schema

    (both or model).export(str(path), format="litert", verbose=False)
    flat = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops, flex = set(), set()
    for i in range(flat.OperatorCodesLength()):
        code = flat.OperatorCodes(i)
        custom = code.CustomCode()
        if custom:
            (flex if custom.startswith(b"Flex") else ops).add(custom.decode())
        else:
            ops.add(builtin.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?"))
    if flex:
        raise ModelError(
            f"cannot export {model.name} to litert without Select TF ops ({', '.join(sorted(flex))}); "
            "those need TensorFlow's Flex delegate on the device"
        )
    return {"operators": sorted(ops), "select_tf_ops": []}
