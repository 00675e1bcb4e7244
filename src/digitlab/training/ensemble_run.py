"""`digitlab ensemble RUN… --out RUN`: average finished runs into one ordinary run directory.

The members are fixed by whoever names them (the bench takes the first K seeds), never picked on the test
set. Everything chosen here is chosen on the validation split the members share: whether test-time
augmentation (±1 px shifts) stays, and the temperature. The test set is then used once, for the report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax

from digitlab.data.mnist import Splits, splits_for, validation_split_of
from digitlab.errors import ConfigError
from digitlab.models.calibration import temperature_fit
from digitlab.models.ensemble_network import build_ensemble
from digitlab.models.forward import predict_logits
from digitlab.models.saved import LoadedModel, load_model, save_temperature
from digitlab.rundir import RunDir
from digitlab.training.train import check_reload, evaluate_logits

TTA_CHOICES = ("off", "auto", "on")


def _members(paths: list[str | Path]) -> list[LoadedModel]:
    """Load and check the members: at least two distinct finished runs digitlab trained, on one split."""
    if len(paths) < 2:
        raise ConfigError("an ensemble needs at least two runs")
    members = [load_model(p, network=False) for p in paths]
    for m in members:
        if m.imported:  # decided: refuse rather than average blind (no split of theirs can be trusted)
            raise ConfigError(
                f"{m.run_dir} is an imported model: it may have trained on the validation images an ensemble is "
                "chosen and calibrated on; ensemble runs digitlab trained with one --split-seed"
            )
        if m.run_dir is None or not RunDir(m.run_dir).finished:
            raise ConfigError(f"{m.model_path} is not a finished run directory (an ensemble needs each run's split)")
        if m.settings.get("full_train"):
            raise ConfigError(
                f"{m.run_dir} was trained with --full-train: it has seen the validation images the ensemble is "
                "calibrated and chosen on"
            )
    splits = {validation_split_of(m.settings) for m in members}
    if len(splits) != 1:
        raise ConfigError(
            "the runs hold out different validation splits (size, seed): "
            + ", ".join(f"{s}" for s in sorted(splits))
            + "; train them with the same --split-seed (recipe best uses 0)"
        )
    if len({m.model_path.resolve() for m in members}) != len(members):
        raise ConfigError("the same run is named twice")
    return members


def mean_probabilities(logits: list[np.ndarray]) -> np.ndarray:
    """What the ensemble computes, in NumPy: the average of the members' softmax outputs.

    Args:
      logits: one (N, 10) array of logits per member.

    Returns:
      (N, 10) float64 probabilities, rows summing to 1.
    """
    return np.mean([softmax(np.asarray(x, np.float64), axis=1) for x in logits], axis=0)


def make_ensemble(
    runs: list[str | Path],
    out: str | Path,
    tta: str = "off",
    data_dir: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build, check, calibrate and save the ensemble of `runs` as the run directory `out`.

    Args:
      runs: the members' run directories (at least two, trained by digitlab on one validation split).
      out: the new run directory.
      tta: off | auto (kept only if it makes fewer validation errors) | on.
      data_dir: MNIST location.
      log: where the TTA decision and the summary go.

    Returns:
      The ensemble's metrics (metrics.json).

    Raises:
      ConfigError: a bad --tta, members that cannot be ensembled, or `out` already holding a run.
      ModelError: a member cannot be loaded, or the saved ensemble predicts differently.
    """
    if tta not in TTA_CHOICES:
        raise ConfigError(f"--tta must be one of {', '.join(TTA_CHOICES)}, got {tta!r}")
    members = _members(runs)
    run = RunDir(Path(out))
    if run.config.exists() or run.model.exists():
        raise ConfigError(f"--out {run.path} already holds a run; choose another --out")
    run.create()
    start = time.perf_counter()
    splits = splits_for(members[0].settings, data_dir)
    networks = [m.model for m in members]
    model, chosen_val, choice = _with_tta_choice(tta, networks, _checked_ensemble(networks, splits), splits, log)
    test_logits = predict_logits(model, splits.x_test)  # the one use of the test set
    metrics = {
        "model": "ensemble",
        "recipe": "ensemble",
        "members": [_member_row(m) for m in members],
        "tta": choice,
        "validation": evaluate_logits(chosen_val, splits.y_val),
        "test": evaluate_logits(test_logits, splits.y_test),
        "parameters": int(model.count_params()),
        "build_seconds": round(time.perf_counter() - start, 2),
    }
    validation_size, seed = validation_split_of(members[0].settings)
    run.write_config(
        "ensemble",
        {
            "model": "ensemble",
            "recipe": "ensemble",
            "members": [str(m.run_dir) for m in members],
            "tta": choice["used"],
            "validation_size": validation_size,
            "seed": seed,
            "split_seed": seed,
            "data_dir": data_dir,
        },
    )
    # the same calibration.json `evaluate` writes, through the same helpers, before the run is done
    save_temperature(LoadedModel(None, "ensemble", run.model, run.path), *temperature_fit(chosen_val, splits.y_val))
    text = run.finish(
        metrics,
        *_summary_lines(metrics),
        model=model,
        check=lambda path: check_reload(path, test_logits, splits.x_test),
    )
    log(text.rstrip())
    return metrics


def _checked_ensemble(networks: list, splits: Splits) -> tuple[Any, np.ndarray]:
    """(the averaging model, its validation logits), checked to give the mean of the members' probabilities."""
    plain = build_ensemble(networks)
    val_logits = predict_logits(plain, splits.x_val)
    expected = mean_probabilities([predict_logits(n, splits.x_val) for n in networks])
    if not np.allclose(softmax(val_logits.astype(np.float64), axis=1), expected, atol=1e-5):
        raise AssertionError("the ensemble's probabilities are not the mean of its members'")  # a bug, not a user error
    return plain, val_logits


def _with_tta_choice(tta: str, networks: list, plain: tuple, splits: Splits, log) -> tuple[Any, np.ndarray, dict]:
    """(the model kept, its validation logits, the choice recorded).

    Test-time augmentation off, on, or kept only when it makes fewer validation errors (auto).
    """
    model, val_logits = plain
    choice: dict[str, Any] = {"asked": tta, "used": tta == "on"}
    if tta == "off":
        return model, val_logits, choice
    shifted = build_ensemble(networks, tta=True)
    tta_val = predict_logits(shifted, splits.x_val)
    errors = {
        "without": int(np.sum(val_logits.argmax(1) != splits.y_val)),
        "with": int(np.sum(tta_val.argmax(1) != splits.y_val)),
    }
    choice.update(validation_errors=errors)
    if tta == "on" or errors["with"] < errors["without"]:
        choice["used"] = True
        model, val_logits = shifted, tta_val
    log(
        f"test-time augmentation: {errors['without']} → {errors['with']} validation errors; "
        f"{'kept' if choice['used'] else 'left out'}"
    )
    return model, val_logits, choice


def _member_row(member: LoadedModel) -> dict[str, Any]:
    row: dict[str, Any] = {"run": str(member.run_dir), "sha256": member.file_digest()}
    try:
        metrics = json.loads((Path(member.run_dir) / "metrics.json").read_text())
        row.update(validation=metrics["validation"]["accuracy"], test=metrics["test"]["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return row


def _summary_lines(metrics: dict[str, Any]) -> tuple[str, list[str]]:
    """The summary's headline and detail lines (see `digitlab.rundir.format_summary`)."""
    members = metrics["members"]
    singles = [m["test"] for m in members if "test" in m]
    headline = (
        f"ensemble of {len(members)} runs ({metrics['parameters']:,} parameters), "
        f"test-time augmentation {'on' if metrics['tta']['used'] else 'off'}"
    )
    details = []
    if singles:
        details.append(f"members' test accuracy: mean {np.mean(singles):.4f} ± {np.std(singles, ddof=1):.4f} (sd)")
    return headline, details
