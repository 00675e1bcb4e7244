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
"""

from __future__ import annotations

import csv
import io
import json
import platform
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from digitlab.atomic import atomic_write_json, atomic_write_text
from digitlab.errors import ConfigError, ModelError

HISTORY_FIELDS = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"]


@dataclass
class RunDir:
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
        return self.metrics.is_file() and self.model.is_file()

    def create(self) -> RunDir:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / ".write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"--out {self.path} is not writable ({e.strerror or e})") from None
        return self

    def read_config(self) -> dict[str, Any]:
        try:
            return json.loads(self.config.read_text())
        except (OSError, ValueError):
            return {}

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.config, config)

    def read_metrics(self) -> dict[str, Any]:
        try:
            return json.loads(self.metrics.read_text())
        except FileNotFoundError:
            raise ModelError(f"{self.path} has no metrics.json; is it a finished digitlab run?") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"{self.metrics} is unreadable ({e})") from None

    def read_history(self) -> list[dict[str, float]]:
        if not self.history.is_file():
            return []
        with open(self.history, newline="") as f:
            return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]

    def append_history(self, row: dict[str, float]) -> None:
        """Rewrite history.csv atomically with one more epoch (a kill never leaves half a row)."""
        rows = [r for r in self.read_history() if int(r["epoch"]) < int(row["epoch"])] + [row]
        buf = io.StringIO()
        fields = HISTORY_FIELDS + (["phase"] if any("phase" in r for r in rows) else [])  # transfer runs' phases
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (int(v) if k in ("epoch", "phase") else f"{v:.6g}") for k, v in r.items()})
        atomic_write_text(self.history, buf.getvalue())


def default_run_path(model: str, root: Path = Path("runs")) -> Path:
    return root / f"{model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def find_unfinished_run(settings: dict[str, Any], root: Path = Path("runs")) -> Path | None:
    """The latest unfinished run under `root` whose settings equal these (the same command run again)."""
    if not root.is_dir():
        return None
    for path in sorted(root.glob(f"{settings['model']}-*"), reverse=True):
        run = RunDir(path)
        if not run.finished and run.read_config().get("settings") == settings:
            return path
    return None


def environment() -> dict[str, str]:
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
