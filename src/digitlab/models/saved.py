"""What a model file is: a saved `model.keras` plus what lives beside it in its run directory.

The one place that knows the files: `load_model` turns a run directory or a `.keras` file into a
`LoadedModel` (the network, its run's settings and its fitted temperature) or a one-line `ModelError`;
`plain_keras_model` makes the plain Keras model a run saves. Keras is imported only when a network is
loaded. Exported copies of a model (ONNX, LiteRT, SavedModel) are `export.py`'s.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitlab.atomic import atomic_write_json
from digitlab.data.fetch import sha256_file
from digitlab.errors import ModelError
from digitlab.tf_logging import import_tensorflow

CALIBRATION_FILE = "calibration.json"


@dataclass
class LoadedModel:
    """A saved model plus what lives beside it: its run's settings, history and calibration.

    `model` is the Keras network. `load_model(..., network=False)` reads only the metadata (no Keras, no
    TensorFlow) and the network loads on first use of `model`: a server running an exported ONNX file
    never needs it.
    """

    network: Any  # the keras.Model, or None until first needed
    name: str
    model_path: Path
    run_dir: Path | None
    settings: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0

    @property
    def model(self):
        if self.network is None:
            self.network = _load_network(self.model_path)
        return self.network

    @property
    def calibration_path(self) -> Path:
        if self.run_dir is not None:
            return self.run_dir / CALIBRATION_FILE
        return self.model_path.with_suffix(".calibration.json")

    def file_digest(self) -> str:
        """sha256 of the model file: what an exported copy records, so a changed model is never run stale."""
        return sha256_file(self.model_path)


def load_model(path: str | Path, network: bool = True) -> LoadedModel:
    """Load a run directory or a `.keras` file; a missing or corrupt model is a one-line ModelError.

    With `network=False` only the metadata is read (the file must exist; it is checked when first loaded).
    """
    path = Path(path)
    if path.is_dir():
        run_dir, model_path = path, path / "model.keras"
    else:
        run_dir, model_path = (path.parent if (path.parent / "config.json").is_file() else None), path
    if not model_path.is_file():
        raise ModelError(f"no model at {model_path} (expected a run directory or a .keras file)")
    model = _load_network(model_path) if network else None
    settings: dict[str, Any] = {}
    if run_dir is not None:
        try:
            settings = json.loads((run_dir / "config.json").read_text()).get("settings", {})
        except (OSError, ValueError, AttributeError):
            settings = {}
    default_name = model.name if model is not None else model_path.stem
    loaded = LoadedModel(model, settings.get("model", default_name), model_path, run_dir, settings)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # uncalibrated: T = 1
        loaded.temperature = float(json.loads(loaded.calibration_path.read_text())["temperature"])
    return loaded


def _load_network(model_path: Path):
    import_tensorflow()  # quietly, if this is the first use of TensorFlow in the process
    import keras

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as e:  # Keras raises many types for a bad zip/config; all mean the same to a user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load {model_path}: {first[:200]}") from None
    shape = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
    if shape not in ((28, 28, 1), (28, 28)):
        raise ModelError(f"{model_path} takes inputs of shape {shape}, not MNIST's (28, 28, 1)")
    return model


def save_temperature(loaded: LoadedModel, temperature: float, details: dict[str, Any]) -> Path:
    loaded.temperature = temperature
    return atomic_write_json(loaded.calibration_path, {"temperature": temperature, **details})


def plain_keras_model(model):
    """A plain, uncompiled Keras model over the trained weights: loads anywhere without digitlab.

    Wrapping the same layers in a new functional Model drops the optimizer and compile state (so the
    one-cycle schedule, a digitlab class, is not needed to load it) without copying weights.
    """
    import keras

    from digitlab.models.zoo import RawMLP

    if isinstance(model, RawMLP):
        return model.to_keras()
    return keras.Model(model.input, model.output, name=model.name)
