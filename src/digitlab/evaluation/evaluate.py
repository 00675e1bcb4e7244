"""`digitlab evaluate`: metrics, calibration and error analysis of a trained model, once, on held-out data.

The test split is the default and is meant for a model's final report; temperature scaling is always fitted
on the validation split (`digitlab.models.calibration`). The metric definitions are in `metrics.py`.

The fitted temperature changes what `predict` and `serve` answer once it is in the model's `calibration.json`,
so evaluating writes that file only when the model has none yet (a fresh run's first evaluation, as `make run`
does) or when asked (`--calibrate`), and says which in `Evaluation.calibration`; `compare` never writes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.atomic import atomic_write_json
from digitlab.data.mnist import splits_for
from digitlab.errors import ConfigError
from digitlab.evaluation.metrics import ECE_BINS, calibration_metrics, classification_metrics
from digitlab.models.calibration import temperature_fit
from digitlab.models.forward import predict_logits
from digitlab.models.saved import LoadedModel, load_model, save_temperature


@dataclass
class Evaluation:
    """What `evaluate_model` computed and where it wrote it.

    Attributes:
        metrics: the `digitlab.metrics/1` document (also in `out_dir/metrics.json`).
        out_dir: the folder that holds metrics.json, the plots and report.html.
        calibration: one line on the model's `calibration.json`: written, kept as it was, or left absent.
    """

    metrics: dict[str, Any]
    out_dir: Path
    calibration: str = ""


def evaluate_model(
    target: str | Path,
    split: str = "test",
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    report: bool = True,
    calibrate: bool | None = None,
) -> Evaluation:
    """Evaluate a run or model file; write metrics.json, plots and report.html.

    Args:
        target: a run directory or a model file.
        split: "test" (the final report) or "validation".
        out: output folder (default RUN/report, or beside the model file).
        data_dir: the MNIST folder (default: digitlab's cache).
        report: also render the plots and HTML (tests of the numbers alone can skip it).
        calibrate: write the fitted temperature to the model's `calibration.json`, which `predict` and `serve`
            use: True always (refit), False never, None (default) only when the model has none yet.

    Returns:
        The metrics, the output folder, and one line saying what happened to `calibration.json`.

    Raises:
        ConfigError: for an unknown split or an output folder that cannot be written.
        ModelError: when the target is not a model digitlab can load.
    """
    if split not in ("test", "validation"):
        raise ConfigError(f"--split must be test or validation, got {split!r}")
    loaded = load_model(target)
    settings = loaded.settings
    splits = splits_for(settings, data_dir)
    val_logits = predict_logits(loaded.model, splits.x_val)
    if split == "test":
        images, labels, logits = splits.x_test, splits.y_test, predict_logits(loaded.model, splits.x_test)
    else:
        images, labels, logits = splits.x_val, splits.y_val, val_logits

    # trained on the validation images (loaded.validation_seen): nothing to calibrate on
    temperature, details = temperature_fit(val_logits, splits.y_val, loaded.validation_seen)
    if not np.array_equal((val_logits / temperature).argmax(1), val_logits.argmax(1)):
        raise AssertionError("temperature scaling changed a predicted class")  # impossible for T > 0
    calibration = _calibrate(loaded, temperature, details, calibrate)

    metrics: dict[str, Any] = {
        "schema": "digitlab.metrics/1",
        "model": loaded.name,
        "model_file": loaded.model_path.name,
        "split": split,
        "examples": len(labels),
        **classification_metrics(logits, labels),
        "calibration": {
            "bins": ECE_BINS,
            "before": calibration_metrics(logits, labels, 1.0),
            "after": calibration_metrics(logits, labels, temperature),
            "temperature_fitted_on": details["fitted_on"],
            "validation_nll_before": details["validation_nll_before"],
            "validation_nll_after": details["validation_nll_after"],
        },
    }
    metrics["loss"] = metrics["calibration"]["before"]["loss"]
    if loaded.contract is not None:  # what digitlab assumed about an imported model, shown in the report
        metrics["contract"] = {"format": loaded.contract.format, "assumed": loaded.contract.describe()}
    out_dir = Path(out) if out else default_out_dir(loaded)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out_dir} is not writable ({e.strerror or e})") from e
    section = None
    if report:  # MNIST-C on a fixed subset (a few seconds): a report section, its numbers in metrics.json
        from digitlab.evaluation.robustness import report_section

        section = report_section(lambda x: predict_logits(loaded.model, x), images, labels)
        metrics["robustness"] = {k: v for k, v in section.items() if k != "grid"}
    atomic_write_json(out_dir / "metrics.json", metrics)
    if report:
        from digitlab.evaluation.report import write_report  # matplotlib: only when plotting

        write_report(out_dir, metrics, loaded, images, labels, logits, robustness_grid=section["grid"])
    return Evaluation(metrics, out_dir, calibration)


def _calibrate(loaded: LoadedModel, temperature: float, details: dict[str, Any], calibrate: bool | None) -> str:
    """Write the temperature when asked (or when the model has none yet); the line that says what happened."""
    path = loaded.calibration_path
    exists = path.is_file()
    if calibrate or (calibrate is None and not exists):
        save_temperature(loaded, temperature, details)
        return f"calibration: wrote {path} (temperature {temperature:.3f}); predict and serve use it"
    if exists:
        refit = "" if abs(loaded.temperature - temperature) < 5e-4 else f" (refitting gives {temperature:.3f})"
        return f"calibration: kept {path} (temperature {loaded.temperature:.3f}){refit}; --calibrate rewrites it"
    return f"calibration: none written (predict and serve use temperature 1); --calibrate writes {path}"


def _fitted_words(metrics: dict[str, Any]) -> str:
    fitted = metrics["calibration"]["temperature_fitted_on"]
    return "fitted on validation" if fitted == "validation" else fitted.replace("nothing: ", "not fitted: ", 1)


def default_out_dir(loaded: LoadedModel) -> Path:
    """Where a model's report goes when `--out` is not given.

    Args:
        loaded: the evaluated model.

    Returns:
        `RUN/report` for a run directory, else `<model file stem>-report` beside the model file.
    """
    if loaded.run_dir is not None:
        return loaded.run_dir / "report"
    return loaded.model_path.parent / f"{loaded.model_path.stem}-report"


def format_metrics_summary(metrics: dict[str, Any]) -> str:
    """The few lines of an evaluation a person reads on the terminal.

    Args:
        metrics: the `digitlab.metrics/1` document of `evaluate_model`.

    Returns:
        Four lines: the split, accuracy/top-2/macro F1, ECE and NLL before → after temperature, the worst class
        and the top confusions.
    """
    before, after = metrics["calibration"]["before"], metrics["calibration"]["after"]
    f1 = {c: v["f1-score"] for c, v in metrics["per_class"].items()}
    worst = min(f1, key=f1.get)
    pairs = ", ".join(f"{p['true']}→{p['predicted']} ({p['count']})" for p in metrics["most_confused"][:3])
    return "\n".join(
        [
            f"{metrics['model']} on {metrics['split']} ({metrics['examples']} images)",
            f"  accuracy {metrics['accuracy']:.4f}   top-2 {metrics['top2_accuracy']:.4f}   "
            f"macro F1 {metrics['macro_avg']['f1-score']:.4f}",
            f"  ECE {before['ece']:.4f} → {after['ece']:.4f}   NLL {before['nll']:.4f} → {after['nll']:.4f}   "
            f"(temperature {after['temperature']:.3f}, {_fitted_words(metrics)})",
            f"  worst class {worst} (F1 {f1[worst]:.4f});  top confusions true→predicted: {pairs or 'none'}",
        ]
    )
