"""What a model file is: a saved `model.keras` (or an imported model) plus what lives beside it in its run.

The one place that knows the files: `load_model` turns a run directory or any model file into a
`LoadedModel` (the network, its run's settings, its fitted temperature and, for imports, its contract) or a
one-line `ModelError`;
`plain_keras_model` makes the plain Keras model a run saves. Keras is imported only when a network is
loaded. Exported copies of a model (ONNX, LiteRT, SavedModel) are `export.py`'s.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitlab.atomic import atomic_write_json
from digitlab.errors import ModelError
from digitlab.models.contract import Contract
from digitlab.models.importing import read_contract

CALIBRATION_FILE = "calibration.json"


@dataclass
class LoadedModel:
    """A saved model plus what lives beside it: its run's settings, history, calibration and contract.

    `model` is the network on digitlab's side ((N, 28, 28, 1) float32 in [0, 1] → (N, 10) logits): a Keras
    model, or for an imported ONNX model an `OnnxNetwork`. `load_model(..., network=False)` reads only the
    metadata (no Keras, no TensorFlow) and the network loads on first use of `model`: a server running an
    exported ONNX file never needs it. `contract` is set for imported models (`digitlab import`).
    """

    _network: Any  # the keras.Model (or OnnxNetwork), or None until first needed: read it through `model`
    name: str
    model_path: Path
    run_dir: Path | None
    settings: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    contract: Contract | None = None

    @property
    def model(self):
        """The network, loaded on first use: a Keras model, or an `OnnxNetwork` for an imported ONNX model."""
        if self._network is None:
            self._network = _load_network(self.model_path, self.contract, self.name)
        return self._network

    @property
    def imported(self) -> bool:
        """Whether the model was imported from a file digitlab did not train (it has a `contract.json`)."""
        return self.contract is not None

    @property
    def validation_seen(self) -> str:
        """Why the run's validation digits may have been seen in training ("" when they were held out).

        The one place that decides whether a temperature or a refusal may be fitted on them: an imported model may
        have trained on any training image, and a --full-train run trained on the validation images too.
        """
        if self.imported:
            return "an imported model may have trained on any MNIST training image"
        if self.settings.get("full_train"):
            return "a --full-train run saw the validation images"
        return ""

    @property
    def is_keras(self) -> bool:
        """Whether the network is a TensorFlow/Keras model (gradients, SavedModel/LiteRT export, training)."""
        return self.contract is None or self.contract.format != "onnx"

    @property
    def calibration_path(self) -> Path:
        """Where the fitted temperature lives: RUN/calibration.json, or beside a bare model file."""
        if self.run_dir is not None:
            return self.run_dir / CALIBRATION_FILE
        return self.model_path.with_suffix(".calibration.json")

    def file_digest(self) -> str:
        """The sha256 of the model file (or folder), in hex.

        An exported copy records it, so a changed model is never run stale.
        """
        from digitlab.models.export import digest

        return digest(self.model_path)


def load_model(path: str | Path, network: bool = True, log: Callable[[str], Any] = print) -> LoadedModel:
    """Load a run directory (trained or imported) or any model file.

    A model file with no digitlab run around it (no config.json beside it: a `.keras`, `.h5`, `.onnx` file or
    a SavedModel folder) is imported on the fly into the import cache (`digitlab.models.importing`), and the
    cached run is loaded; `log` says so once.

    Args:
      path: a run directory, a file inside one, or a foreign model file or folder.
      network: False reads only the metadata (the model loads on first use of `.model`).
      log: where the on-the-fly import line goes.

    Returns:
      The LoadedModel.

    Raises:
      ModelError: nothing loadable at `path`, a corrupt file, or a model that is not a 10-class digit model.
    """
    run_dir, model_path = _locate(Path(path), log)
    settings: dict[str, Any] = {}
    contract = None
    if run_dir is not None:
        contract = read_contract(run_dir)
        if contract is not None:
            model_path = run_dir / contract.file
        settings = _read_settings(run_dir)
    if not model_path.exists():
        raise ModelError(f"no model at {model_path} (expected a run directory or a model file)")
    default_name = model_path.parent.name if model_path.name == "model.keras" else model_path.stem
    loaded = LoadedModel(None, settings.get("model", default_name), model_path, run_dir, settings, contract=contract)
    if network:
        _ = loaded.model
        if not settings.get("model"):
            loaded.name = getattr(loaded.model, "name", loaded.name)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):  # uncalibrated: T = 1
        loaded.temperature = float(json.loads(loaded.calibration_path.read_text())["temperature"])
    return loaded


def _locate(path: Path, log: Callable[[str], Any]) -> tuple[Path | None, Path]:
    """(run directory or None, model file) for a path; foreign files are imported into the cache first."""
    from digitlab.models.importing import import_cached

    if path.is_dir():
        if (path / "config.json").is_file() or (path / "model.keras").is_file():
            return path, path / "model.keras"
        if (path / "saved_model.pb").is_file():
            run = import_cached(path, log)
            return run, run / "model.keras"
        raise ModelError(f"no model at {path} (expected a run directory, a model file or a SavedModel folder)")
    if (path.parent / "config.json").is_file():
        return path.parent, path
    if not path.is_file():
        raise ModelError(f"no model at {path} (expected a run directory or a model file)")
    run = import_cached(path, log)
    return run, run / "model.keras"


def _read_settings(run_dir: Path) -> dict[str, Any]:
    from digitlab.rundir import RunDir  # a corrupt config.json is a ModelError, never {} (split seed 0)

    return RunDir(run_dir).read_settings()


def _load_network(model_path: Path, contract: Contract | None = None, name: str = "model"):
    """The network on digitlab's side: a Keras model, or an OnnxNetwork for an imported ONNX model."""
    if contract is not None:
        from digitlab.models.imported import load_network

        return load_network(model_path, contract, name)
    from digitlab.models.foreign import load_keras_file

    model = load_keras_file(model_path)
    shape = tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else None
    if shape not in ((28, 28, 1), (28, 28)):
        raise ModelError(f"{model_path} takes inputs of shape {shape}, not MNIST's (28, 28, 1)")
    return model


def save_temperature(loaded: LoadedModel, temperature: float, details: dict[str, Any]) -> Path:
    """Set and store a model's fitted temperature (atomically).

    Args:
        loaded: The model; its `temperature` is set.
        temperature: The softmax temperature, > 0 (1 = the raw logits).
        details: What else to record: what it was fitted on, the NLL before and after.

    Returns:
        The written calibration file.
    """
    loaded.temperature = temperature
    return atomic_write_json(loaded.calibration_path, {"temperature": temperature, **details})


def plain_keras_model(model):
    """A plain, uncompiled Keras model over the trained weights: loads anywhere without digitlab.

    Wrapping the same layers in a new functional Model drops the optimizer and compile state (so the
    one-cycle schedule, a digitlab class, is not needed to load it) without copying weights.

    Args:
        model: A trained digitlab Keras model (a `RawMLP` is rebuilt as a Keras `Sequential`).

    Returns:
        The plain `keras.Model`, sharing the trained layers.
    """
    import keras

    from digitlab.models.zoo import RawMLP

    if isinstance(model, RawMLP):
        return model.to_keras()
    return keras.Model(model.input, model.output, name=model.name)
