"""The run directory: the unit of output of one training run.

```
runs/cnn-20261121-101500/
  config.json      every setting, the seed, library versions, the strategy
  model.keras      the final (best-on-validation) model; plain keras.saving.load_model works on it
  history.csv      one row per epoch: loss, accuracy, val_loss, val_accuracy, lr, seconds (+ phase: transfer)
  logs/            TensorBoard summaries
  metrics.json     validation and test accuracy/loss, epochs, wall time
  summary.txt      a few lines for humans
  backup/ ckpt/    resume state while the run is unfinished (removed when it completes)
```

`RunDir` is the one writer of these files for every kind of run (train, ensemble, finetune, import):
`write_config` gives config.json one schema (`CONFIG_SCHEMA`): `schema`, `kind`, `settings` (the effective
values: what was used, never "default"), the kind's own sections, `environment`, `created`. `finish` then
saves model.keras atomically (after a caller's reload check), writes metrics.json and summary.txt in one
format (`format_summary`) and drops the resume state. Older config.json shapes (no `schema`, no `kind`) still
read: every reader goes through `settings`.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from digitlab.atomic import atomic_save_model, atomic_write_json, atomic_write_text
from digitlab.errors import ConfigError, ModelError

HISTORY_FIELDS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
CONFIG_SCHEMA = "digitlab.run/2"  # version 1: the shapes before one writer (no "schema" or a per-kind one)
KINDS = ("train", "ensemble", "finetune", "import")


@dataclass
class RunDir:
    """The files of one run directory (see the module docstring), and the one place that writes them.

    Attributes:
      path: the run directory.
    """

    path: Path

    config = property(lambda self: self.path / "config.json")
    model = property(lambda self: self.path / "model.keras")
    history = property(lambda self: self.path / "history.csv")
    logs = property(lambda self: self.path / "logs")
    metrics = property(lambda self: self.path / "metrics.json")
    summary = property(lambda self: self.path / "summary.txt")
    backup = property(lambda self: self.path / "backup")
    ckpt = property(lambda self: self.path / "ckpt")
    best = property(lambda self: self.path / "best")
    savedmodel = property(lambda self: self.path / "savedmodel")

    @property
    def finished(self) -> bool:
        """Whether the run completed.

        metrics.json is written last, after the model (or, for an imported ONNX or SavedModel run, after its
        contract.json).
        """
        has_model = self.model.is_file() or (self.path / "contract.json").is_file()
        return self.metrics.is_file() and has_model

    def create(self) -> RunDir:
        """Create the folder (and its parents) and check it is writable.

        Returns:
          self.

        Raises:
          ConfigError: the folder cannot be created or written.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"--out {self.path} is not writable ({e.strerror or e})") from e
        return self

    def read_config(self) -> dict[str, Any]:
        """config.json as written (any schema version); {} when the run has none yet.

        Returns:
          The record: at least `settings` (a dict) when the file exists.

        Raises:
          ModelError: config.json exists but is unreadable, not JSON, or not an object with a `settings`
            object (a corrupt file must not pass for a run with default settings, such as split seed 0).
        """
        try:
            text = self.config.read_text()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise ModelError(f"{self.config} is unreadable ({e.strerror or e})") from e
        try:
            record = json.loads(text)
        except ValueError as e:
            raise ModelError(f"{self.config} is corrupt (not JSON: {e}); restore it or train the run again") from e
        if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
            raise ModelError(f"{self.config} is corrupt (no 'settings' object); restore it or train the run again")
        return record

    def read_settings(self) -> dict[str, Any]:
        """The run's settings ({} when there is no config.json); a corrupt config.json is a ModelError."""
        return self.read_config().get("settings", {})

    def write_config(self, kind: str, settings: dict[str, Any], **sections: Any) -> dict[str, Any]:
        """Write config.json in the one schema every kind of run shares.

        Args:
          kind: train | ensemble | finetune | import.
          settings: the effective values that define the run (`model` at least; `validation_size`, `seed`,
            `split_seed` name its validation split for evaluate, ensemble, finetune and the refusal).
          **sections: the kind's own records (e.g. `parent`, `feedback`, `source`, `contract`, `strategy`),
            written between `settings` and `environment`.

        Returns:
          The record written.

        Raises:
          ValueError: an unknown kind (a bug, not a user error).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown run kind {kind!r}")
        record = {
            "schema": CONFIG_SCHEMA,
            "kind": kind,
            "settings": settings,
            **sections,
            "environment": environment(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write_json(self.config, record)
        return record

    def finish(
        self,
        metrics: dict[str, Any],
        headline: str,
        details: list[str] | None = None,
        model: Any = None,
        check: Callable[[Path], None] | None = None,
    ) -> str:
        """Complete the run: save the model atomically, write metrics.json and summary.txt, drop resume state.

        The order matters: model.keras first, metrics.json last, so `finished` is true only for a complete run.

        Args:
          metrics: what metrics.json holds; its `validation`/`test` (dicts with `accuracy` and `loss`) go into
            the summary.
          headline: the summary's first line (what the run is).
          details: further summary lines (epochs, phases, members, before/after tables).
          model: the Keras model to save as model.keras (None: the caller wrote the model files itself).
          check: called with the temporary model file before it becomes model.keras (a reload check).

        Returns:
          The summary text written to summary.txt.

        Raises:
          ModelError: from `check`, when the saved model predicts differently.
        """
        if model is not None:
            atomic_save_model(model, self.model, check)
        text = format_summary(headline, metrics, details or [])
        atomic_write_text(self.summary, text)
        atomic_write_json(self.metrics, metrics)
        for leftover in (self.backup, self.ckpt, self.best):
            shutil.rmtree(leftover, ignore_errors=True)
        (self.path / "best.weights.h5").unlink(missing_ok=True)
        return text

    def read_metrics(self) -> dict[str, Any]:
        """Read metrics.json.

        Returns:
          The run's metrics, as written by `finish` (per split: accuracy, loss and the rest).

        Raises:
          ModelError: no metrics.json (an unfinished run or not a run), or an unreadable one.
        """
        try:
            return json.loads(self.metrics.read_text())
        except FileNotFoundError as e:
            raise ModelError(f"{self.path} has no metrics.json; is it a finished digitlab run?") from e
        except (OSError, ValueError) as e:
            raise ModelError(f"{self.metrics} is unreadable ({e})") from e

    def read_history(self) -> list[dict[str, float]]:
        """history.csv as one dict per epoch (empty before the first epoch); numbers as floats."""
        if not self.history.is_file():
            return []
        with open(self.history, newline="") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]

    def append_history(self, row: dict[str, float]) -> None:
        """Rewrite history.csv atomically with one more epoch (a kill never leaves half a row).

        Args:
          row: the epoch's numbers, keyed by HISTORY_FIELDS (and `phase` for transfer runs); a row of an epoch
            already written replaces it and every later one.
        """
        rows = [r for r in self.read_history() if int(r["epoch"]) < int(row["epoch"])] + [row]
        buf = io.StringIO()
        fields = HISTORY_FIELDS + (["phase"] if any("phase" in r for r in rows) else [])  # transfer runs' phases
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (int(v) if k in ("epoch", "phase") else f"{v:.6g}") for k, v in r.items()})
        atomic_write_text(self.history, buf.getvalue())


def format_summary(headline: str, metrics: dict[str, Any], details: list[str]) -> str:
    """summary.txt, the same shape for every kind of run.

    Args:
      headline: what the run is (first line).
      metrics: its metrics; `validation` and `test` entries with `accuracy` and `loss` become one line each.
      details: the kind's own lines, after the accuracies.

    Returns:
      The text, ending in a newline.
    """
    lines = [headline]
    for split, label in (("validation", "validation accuracy"), ("test", "test accuracy      ")):
        scores = metrics.get(split)
        if isinstance(scores, dict) and "accuracy" in scores:
            lines.append(f"{label} {scores['accuracy']:.4f}  loss {scores['loss']:.4f}")
    return "\n".join([*lines, *details]) + "\n"


def default_run_path(model: str, root: Path = Path("runs")) -> Path:
    """runs/<model>-<local timestamp>, the folder of a run trained without --out."""
    return root / f"{model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def find_unfinished_run(
    settings: dict[str, Any],
    root: Path = Path("runs"),
    effective: Callable[[dict[str, Any]], dict[str, Any]] = dict,
) -> Path | None:
    """The latest unfinished run under `root` whose settings equal these (the same command run again).

    Args:
      settings: the new run's settings.
      root: where default run directories are made.
      effective: maps a recorded (possibly older) settings dict to today's terms before comparing (training
        passes `digitlab.training.config.effective_settings`).

    Returns:
      The run's path, or None.
    """
    if not root.is_dir():
        return None
    for path in sorted(root.glob(f"{settings['model']}-*"), reverse=True):
        run = RunDir(path)
        try:
            recorded = run.read_settings()
        except ModelError:  # a corrupt run is never the one to resume
            continue
        if recorded and not run.finished and effective(recorded) == settings:
            return path
    return None


def environment() -> dict[str, str]:
    """Versions of digitlab, Python, TensorFlow, Keras, NumPy and the platform, for config.json."""
    import keras
    import numpy
    import tensorflow as tf

    from digitlab import __version__

    return {
        "digitlab": __version__,
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": platform.machine(),
    }
