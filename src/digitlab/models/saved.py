"""What a model file is: a saved `model.keras` plus what lives beside it in its run directory.

The one place that knows the files: `load_model` turns a run directory or a `.keras` file into a
`LoadedModel` (the network, its run's settings and its fitted temperature) or a one-line `ModelError`;
`export_model` makes the plain Keras model a run saves. Keras is imported only when a model is loaded.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitlab.atomic import atomic_write_json
from digitlab.errors import ModelError

CALIBRATION_FILE = "calibration.json"


@dataclass
class LoadedModel:
    """A saved model plus what lives beside it: its run's settings, history and calibration."""

    model: Any
    name: str
    model_path: Path
    run_dir: Path | None
    settings: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0

    @property
    def calibration_path(self) -> Path:
        if self.run_dir is not None:
            return self.run_dir / CALIBRATION_FILE
        return self.model_path.with_suffix(".calibration.json")


def load_model(path: str | Path) -> LoadedModel:
    """Load a run directory or a `.keras` file; a missing or corrupt model is a one-line ModelError."""
    import keras

    path = Path(path)
    if path.is_dir():
        run_dir, model_path = path, path / "model.keras"
    else:
        run_dir, model_path = (path.parent if (path.parent / "config.json").is_file() else None), path
    if not model_path.is_file():
        raise ModelError(f"no model at {model_path} (expected a run directory or a .keras file)")
    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as e:  # Keras raises many types for a bad zip/config; all mean the same to a user
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load {model_path}: {first[:200]}") from None
    shape = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
    if shape not in ((28, 28, 1), (28, 28)):
        raise ModelError(f"{model_path} takes inputs of shape {shape}, not MNIST's (28, 28, 1)")
    settings: dict[str, Any] = {}
    if run_dir is not None:
        try:
            settings = json.loads((run_dir / "config.json").read_text()).get("settings", {})
        except (OSError, ValueError):
            settings = {}
    loaded = LoadedModel(model, settings.get("model", model.name), model_path, run_dir, settings)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # uncalibrated: T = 1
        loaded.temperature = float(json.loads(loaded.calibration_path.read_text())["temperature"])
    return loaded


def save_temperature(loaded: LoadedModel, temperature: float, details: dict[str, Any]) -> Path:
    loaded.temperature = temperature
    return atomic_write_json(loaded.calibration_path, {"temperature": temperature, **details})


def export_model(model):
    """A plain, uncompiled Keras model over the trained weights: loads anywhere without digitlab.

    Wrapping the same layers in a new functional Model drops the optimizer and compile state (so the
    one-cycle schedule, a digitlab class, is not needed to load it) without copying weights.
    """
    import keras

    from digitlab.models.zoo import RawMLP

    if isinstance(model, RawMLP):
        return model.to_keras()
    return keras.Model(model.input, model.output, name=model.name)
