"""`digitlab export` and exports made on demand: convert, prove the copy answers like Keras, then record it.

A copy is trusted only after its parity check: on the first 1,000 test digits its probabilities (with the
model's temperature) must give the same class as the Keras model's on every image and differ by at most
1e-4 anywhere. The check's numbers go into the metadata JSON beside the file; a copy that fails is removed
and the command says by how much it differed. `ensure_exported` is what `--runtime onnx|litert` calls: it
reuses a current export (same model file, intact, passed) and re-exports a stale or corrupted one.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.data.images import to_input_batch
from digitlab.errors import ConfigError, ModelError
from digitlab.inference.runtimes import KerasRuntime, OnnxRuntime, open_runtime
from digitlab.models import export
from digitlab.models.calibration import probabilities
from digitlab.models.saved import LoadedModel, load_model
from digitlab.tf_logging import import_tensorflow

PARITY_IMAGES = 1000
PARITY_TOLERANCE = 1e-4  # max absolute difference of any probability
FEATURE_TOLERANCE = 1e-4  # max absolute difference of any feature, relative to the features' largest magnitude


def parity(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """Compare two models' probabilities on the same images.

    Args:
        reference: (N, 10) probabilities of the Keras model.
        candidate: (N, 10) probabilities of the export.

    Returns:
        `images`, `same_label` (how many argmaxes agree), `max_abs_probability_diff`, `tolerance` and `passed`
        (every label the same and the difference within `PARITY_TOLERANCE`).
    """
    same = int(np.sum(reference.argmax(1) == candidate.argmax(1)))
    diff = float(np.max(np.abs(reference - candidate)))
    return {
        "images": len(reference),
        "same_label": same,
        "max_abs_probability_diff": diff,
        "tolerance": PARITY_TOLERANCE,
        "passed": same == len(reference) and diff <= PARITY_TOLERANCE,
    }


def feature_parity(reference: np.ndarray | None, candidate: np.ndarray | None) -> dict[str, Any] | None:
    """Compare two runtimes' features on the same images (None when the model has none).

    Args:
        reference: (N, D) features of the Keras model, or None.
        candidate: (N, D) features of the export, or None.

    Returns:
        `max_abs_diff`, `relative` (over the reference's largest magnitude), `tolerance` and `passed`, or None.
    """
    if reference is None:
        return None
    if candidate is None or candidate.shape != reference.shape:
        shape = None if candidate is None else list(candidate.shape)
        return {"max_abs_diff": None, "relative": None, "shape": shape, "tolerance": FEATURE_TOLERANCE, "passed": False}
    diff = float(np.max(np.abs(reference - candidate)))
    relative = diff / max(float(np.max(np.abs(reference))), 1e-12)
    return {
        "max_abs_diff": diff,
        "relative": relative,
        "tolerance": FEATURE_TOLERANCE,
        "passed": relative <= FEATURE_TOLERANCE,
    }


def _parity_images(data_dir: str | Path | None = None) -> np.ndarray:
    from digitlab.data.mnist import load_mnist

    return to_input_batch(load_mnist(data_dir).x_test[:PARITY_IMAGES])


def export_loaded(
    loaded: LoadedModel,
    formats: list[str],
    out: Path | None = None,
    log: Callable[[str], Any] = print,
    data_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Export a loaded model to each format, check each against the model, and write its metadata.

    Args:
        loaded: the model (Keras, or an imported ONNX model, which exports to onnx only).
        formats: a list of `FORMATS`.
        out: the export folder (default `RUN/export`, or `<name>-export/` beside a model file).
        log: receives one line per export (path and parity).
        data_dir: the MNIST folder the parity images come from.

    Returns:
        The metadata of each export, in order.

    Raises:
        ConfigError: when the folder cannot be written or an ONNX model is asked for another format.
        ModelError: when a converter refuses, or an export does not answer like the model (it is removed).
    """
    import_tensorflow()
    out = out or export.export_dir_for(loaded.model_path, loaded.run_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot write exports to {out} ({e.strerror or e})") from e
    if not loaded.is_keras and set(formats) - {"onnx"}:
        raise ConfigError(
            f"{loaded.name} is an imported ONNX model: it exports to onnx only (a copy with the contract's adapter); "
            "savedmodel and litert need a TensorFlow model"
        )
    images = _parity_images(data_dir)
    runtime = KerasRuntime(loaded.model) if loaded.is_keras else OnnxRuntime(loaded.model)
    reference_logits, reference_features = runtime.forward(images)
    reference = (probabilities(reference_logits, loaded.temperature), reference_features)
    source = loaded.file_digest()  # once: every format records the same source
    results = []
    for fmt in formats:
        start = time.perf_counter()
        if loaded.is_keras:
            info = export.convert(loaded.model, fmt, out, loaded.temperature)
        else:
            info = export.write_adapted_onnx(loaded.model.model_bytes, out)
        path = export.exported_path(out, fmt)
        check = _checked(loaded, fmt, out, path, images, reference)
        meta = _metadata(loaded, fmt, out, path, check, reference_features, info, source=source)
        meta["seconds"] = round(time.perf_counter() - start, 2)
        export.write_metadata(out, fmt, meta)
        log(
            f"{fmt:<10} {path}  parity on {check['images']} test digits: {check['same_label']} same labels, "
            f"max probability difference {check['max_abs_probability_diff']:.1e}"
        )
        results.append(meta)
    return results


def _checked(loaded: LoadedModel, fmt: str, out: Path, path: Path, images: np.ndarray, reference: tuple) -> dict:
    """The export's parity with the model (probabilities and features); a failing export is removed and raised."""
    logits, features = open_runtime(fmt, path).forward(images)
    check = parity(reference[0], probabilities(logits, loaded.temperature))
    check["features"] = feature_parity(reference[1], features)
    if check["features"] is not None and not check["features"]["passed"]:
        check["passed"] = False
    if check["passed"]:
        return check
    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    export.metadata_path(out, fmt).unlink(missing_ok=True)
    feature_check = check["features"]
    raise ModelError(
        f"the {fmt} export of {loaded.name} does not answer like the Keras model: "
        f"{check['same_label']}/{check['images']} same labels, max probability difference "
        f"{check['max_abs_probability_diff']:.2g} (tolerance {PARITY_TOLERANCE:g}), features' relative "
        f"difference {feature_check['relative'] if feature_check else 'none'}; it was removed"
    )


def _metadata(
    loaded: LoadedModel,
    fmt: str,
    out: Path,
    path: Path,
    check: dict,
    features: np.ndarray | None,
    info: dict,
    source: str,
) -> dict[str, Any]:
    """The export's metadata file (schema `export.METADATA_SCHEMA`): what it is, where from, its contract, parity.

    `source` is the sha256 of the model file it came from (hashed once per export command).
    """
    width = None if features is None else int(features.shape[1])
    return {
        "schema": export.METADATA_SCHEMA,
        "format": fmt,
        "file": str(path.relative_to(out)),
        "sha256": export.digest(path),
        "model": loaded.name,
        "source": {
            "file": loaded.model_path.name,
            "sha256": source,
            "run": loaded.run_dir.name if loaded.run_dir else None,
        },
        "input": export.INPUT_CONTRACT,
        "output": {
            "logits": [None, 10],
            "probabilities": "softmax(logits / temperature)",
            **({"features": [None, width]} if width else {}),
        },
        "labels": export.LABELS,
        "temperature": loaded.temperature,
        "parity": check,
        **info,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "exported_with": _versions(fmt),
    }


def export_run(
    target: str | Path,
    formats: str | list[str] = "all",
    out: str | Path | None = None,
    log: Callable[[str], Any] = print,
    data_dir: str | Path | None = None,
) -> list[dict[str, Any]]:
    """The `digitlab export` command: a run directory or model file → the requested formats, each checked.

    Args:
        target: a run directory or a model file.
        formats: "all", one of `FORMATS`, or a list of them.
        out: the export folder (default `RUN/export`).
        log: receives one line per export.
        data_dir: the MNIST folder the parity images come from.

    Returns:
        The metadata of each export.

    Raises:
        ConfigError: for an unknown format.
        ModelError: when the model cannot be loaded or an export fails its check.
    """
    chosen = list(export.FORMATS) if formats == "all" else [formats] if isinstance(formats, str) else formats
    for fmt in chosen:
        export.check_format(fmt)
    loaded = load_model(target)
    return export_loaded(loaded, chosen, Path(out) if out else None, log, data_dir)


def ensure_exported(loaded: LoadedModel, fmt: str, log: Callable[[str], Any] = print) -> Path:
    """The current export of a model in one format, made (or remade, if stale or corrupt) when needed.

    What `--runtime onnx|litert` calls before running an export.

    Args:
        loaded: the model.
        fmt: one of `FORMATS`.
        log: receives one line when an export is (re)made, saying why.

    Returns:
        The path of the export (file or SavedModel folder).
    """
    out = export.export_dir_for(loaded.model_path, loaded.run_dir)
    current, why = export.is_current(out, fmt, loaded.file_digest(), loaded.temperature)
    if not current:
        log(f"exporting {loaded.name} to {fmt} ({why})")
        export_loaded(loaded, [fmt], out, log=lambda _: None)
    return export.exported_path(out, fmt)


def _versions(fmt: str) -> dict[str, str]:
    import importlib.metadata as md

    names = {"savedmodel": ["tensorflow", "keras"], "onnx": ["keras", "tf2onnx", "onnx", "onnxruntime"]}
    names["litert"] = ["tensorflow", "keras", "ai-edge-litert"]
    versions = {"python": platform.python_version()}
    for name in names[fmt]:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = md.version("tensorflow-cpu") if name == "tensorflow" else "?"
    return versions
