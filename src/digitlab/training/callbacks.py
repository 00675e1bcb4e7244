"""Keras callbacks shared by the fit loop, the transfer phases and finetune; the epoch hook benches use."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from digitlab.rundir import RunDir
from digitlab.training.optim import current_lr


def progress_verbosity() -> int:
    """Keras' `verbose`: a live bar on a terminal (1), one line per epoch in logs (2)."""
    return 1 if sys.stdout.isatty() else 2  # a live bar on a terminal, one line per epoch in logs


class HistoryRows(keras.callbacks.Callback):
    """Writes each epoch to history.csv atomically (the same file format as the custom loop).

    `first_epoch` numbers the rows after epochs already written (a second training phase); `extra` adds
    fixed columns to every row (a transfer run's `phase`).
    """

    def __init__(self, run: RunDir, first_epoch: int = 0, extra: dict[str, Any] | None = None):
        super().__init__()
        self.run, self.first_epoch, self.extra = run, first_epoch, extra or {}

    def on_epoch_begin(self, epoch, logs=None):
        """Start the epoch's clock."""
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        """Append the epoch's row (losses, accuracies, learning rate, seconds) to history.csv."""
        logs = dict(logs or {})
        row = {
            "epoch": self.first_epoch + epoch + 1,
            **self.extra,
            "lr": current_lr(self.model.optimizer),
            "seconds": time.perf_counter() - self.start,
        }
        row.update({k: float(v) for k, v in logs.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy")})
        self.run.append_history(row)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that starts from the best/wait of the epochs already done before a resume."""

    def __init__(self, history: list[dict[str, float]], **kw):
        super().__init__(**kw)
        self._history = history

    def on_train_begin(self, logs=None):
        """Restore the best validation loss and the wait count from the history of a resumed run."""
        super().on_train_begin(logs)
        losses = [r["val_loss"] for r in self._history if "val_loss" in r]
        if losses:
            best = int(np.argmin(losses))
            self.best, self.wait = losses[best], len(losses) - 1 - best


EpochHook = Callable[[int, Any], None]  # (epoch number from 1, model) after each epoch; benches use it
