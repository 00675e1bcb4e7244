"""Evaluation: metrics, calibration and error analysis of a trained model, once, on held-out data.

Classification metrics come from scikit-learn; what no maintained library provides for Keras logits is
written here and tested against hand-computed cases: Expected Calibration Error, the multi-class Brier
score, and temperature scaling.

Definitions (all computed from softmax(logits / T)):
- confidence = the largest class probability; prediction = its class.
- ECE (15 equal-width bins over [0, 1]) = Σ_b (n_b / N) · |accuracy(b) − mean confidence(b)|, where bin b
  holds the examples whose confidence falls in ((b−1)/15, b/15] (the first bin includes 0).
- NLL = mean of −log p(true class); Brier = mean over examples of Σ_k (p_k − 1[k = true])², in [0, 2].
- Temperature T > 0 minimises the NLL on the *validation* split; dividing logits by T never changes the
  predicted class, only the confidence.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from digitlab.atomic import atomic_write_json
from digitlab.errors import ConfigError, ModelError

NUM_CLASSES = 10
ECE_BINS = 15
CALIBRATION_FILE = "calibration.json"


# --- metric functions ---------------------------------------------------------------------------------------


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with `bins` equal-width confidence bins (see the module docstring)."""
    stats = reliability_bins(probs, labels, bins)
    n = len(labels)
    rows = zip(stats["count"], stats["accuracy"], stats["confidence"], strict=True)
    return float(sum(count / n * abs(acc - conf) for count, acc, conf in rows if count))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Per-bin count, accuracy and mean confidence: the data of a reliability diagram."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    # bin b holds ((b-1)/bins, b/bins]; ceil puts exact edges in the lower bin, max(…, 1) puts 0 in the first
    index = np.clip(np.ceil(confidence * bins).astype(int), 1, bins) - 1
    out: dict[str, list[float]] = {"count": [], "accuracy": [], "confidence": []}
    for b in range(bins):
        mask = index == b
        out["count"].append(int(mask.sum()))
        out["accuracy"].append(float(correct[mask].mean()) if mask.any() else 0.0)
        out["confidence"].append(float(confidence[mask].mean()) if mask.any() else 0.0)
    out["edges"] = np.linspace(0, 1, bins + 1).tolist()
    return out


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(log_softmax(logits, axis=1)[np.arange(len(labels)), labels]))


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int = 2) -> float:
    top = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises NLL(logits / T); searched on log T so the optimiser stays in T > 0."""
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits / np.exp(log_t), labels),
        bounds=(np.log(0.05), np.log(20.0)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def most_confused_pairs(confusion: np.ndarray, top: int = 10) -> list[dict[str, int]]:
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None)[:top]
    pairs = [(int(i // NUM_CLASSES), int(i % NUM_CLASSES)) for i in order]
    return [{"true": t, "predicted": p, "count": int(off[t, p])} for t, p in pairs if off[t, p] > 0]


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Everything that depends on the predicted class (temperature-invariant)."""
    from sklearn.metrics import classification_report, confusion_matrix

    predicted = logits.argmax(axis=1)
    report = classification_report(
        labels, predicted, labels=list(range(NUM_CLASSES)), output_dict=True, zero_division=0
    )
    confusion = confusion_matrix(labels, predicted, labels=list(range(NUM_CLASSES)))
    per_class = {
        str(c): {k: float(report[str(c)][k]) for k in ("precision", "recall", "f1-score")}
        | {"support": int(report[str(c)]["support"])}
        for c in range(NUM_CLASSES)
    }
    averages = {
        name: {k: float(report[name][k]) for k in ("precision", "recall", "f1-score")}
        for name in ("macro avg", "weighted avg")
    }
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "top2_accuracy": top_k_accuracy(logits, labels, 2),
        "per_class": per_class,
        "macro_avg": averages["macro avg"],
        "weighted_avg": averages["weighted avg"],
        "confusion_matrix": confusion.tolist(),
        "most_confused": most_confused_pairs(confusion),
    }


def calibration_metrics(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> dict[str, float]:
    scaled = logits / temperature
    probs = softmax(scaled, axis=1)
    nll = negative_log_likelihood(scaled, labels)
    return {
        "temperature": temperature,
        "loss": nll,  # = NLL, the cross-entropy loss
        "nll": nll,
        "ece": expected_calibration_error(probs, labels),
        "brier": brier_score(probs, labels),
        "mean_confidence": float(probs.max(axis=1).mean()),
    }


# --- a model to evaluate ------------------------------------------------------------------------------------


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


# --- the evaluation -----------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    out_dir: Path  # holds metrics.json, the plots and report.html


def evaluate_model(
    target: str | Path,
    split: str = "test",
    out: str | Path | None = None,
    data_dir: str | Path | None = None,
    report: bool = True,
) -> Evaluation:
    """Evaluate a run or model file; write metrics.json, plots and report.html.

    Args:
      target: a run directory or a `.keras` file.
      split: "test" (the final report) or "validation".
      out: output folder (default RUN/report, or beside the model file).
      report: also render the plots and HTML (tests of the numbers alone can skip it).
    """
    from digitlab.data import load_splits
    from digitlab.train import predict_logits

    if split not in ("test", "validation"):
        raise ConfigError(f"--split must be test or validation, got {split!r}")
    loaded = load_model(target)
    settings = loaded.settings
    splits = load_splits(data_dir, settings.get("validation_size", 5000), settings.get("seed", 0))
    val_logits = predict_logits(loaded.model, splits.x_val)
    if split == "test":
        images, labels, logits = splits.x_test, splits.y_test, predict_logits(loaded.model, splits.x_test)
    else:
        images, labels, logits = splits.x_val, splits.y_val, val_logits

    temperature = fit_temperature(val_logits, splits.y_val)
    val_before = negative_log_likelihood(val_logits, splits.y_val)
    val_after = negative_log_likelihood(val_logits / temperature, splits.y_val)
    if not np.array_equal((val_logits / temperature).argmax(1), val_logits.argmax(1)):
        raise AssertionError("temperature scaling changed a predicted class")  # impossible for T > 0
    save_temperature(
        loaded,
        temperature,
        {"fitted_on": "validation", "validation_nll_before": val_before, "validation_nll_after": val_after},
    )

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
            "temperature_fitted_on": "validation",
            "validation_nll_before": val_before,
            "validation_nll_after": val_after,
        },
    }
    metrics["loss"] = metrics["calibration"]["before"]["loss"]
    out_dir = Path(out) if out else default_out_dir(loaded)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out_dir} is not writable ({e.strerror or e})") from None
    atomic_write_json(out_dir / "metrics.json", metrics)
    if report:
        from digitlab.report import write_report

        write_report(out_dir, metrics, loaded, images, labels, logits)
    return Evaluation(metrics, out_dir)


def default_out_dir(loaded: LoadedModel) -> Path:
    if loaded.run_dir is not None:
        return loaded.run_dir / "report"
    return loaded.model_path.parent / f"{loaded.model_path.stem}-report"


def format_summary(metrics: dict[str, Any]) -> str:
    """The few lines a person reads on the terminal."""
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
            f"(temperature {after['temperature']:.3f}, fitted on validation)",
            f"  worst class {worst} (F1 {f1[worst]:.4f});  top confusions true→predicted: {pairs or 'none'}",
        ]
    )


# --- comparing runs -----------------------------------------------------------------------------------------

COMPARE_COLUMNS = [
    ("accuracy", "accuracy"),
    ("top-2", "top2_accuracy"),
    ("macro F1", "macro_f1"),
    ("NLL", "nll"),
    ("ECE", "ece"),
    ("ECE (T)", "ece_after"),
    ("T", "temperature"),
    ("epochs", "epochs"),
    ("train s", "train_seconds"),
    ("params", "parameters"),
]


def compare_runs(runs: list[str | Path], out: str | Path | None = None) -> tuple[list[dict[str, Any]], str]:
    """One row of main metrics per run (evaluating on test any run without a report yet)."""
    rows = []
    for run in runs:
        run = Path(run)
        report = (run if run.is_dir() else run.parent) / "report" / "metrics.json"
        if run.is_dir() and report.is_file():
            metrics = json.loads(report.read_text())
        else:
            metrics = evaluate_model(run, report=False).metrics
        training = {}
        if run.is_dir() and (run / "metrics.json").is_file():
            training = json.loads((run / "metrics.json").read_text())
        rows.append(
            {
                "run": str(run),
                "model": metrics["model"],
                "accuracy": metrics["accuracy"],
                "top2_accuracy": metrics["top2_accuracy"],
                "macro_f1": metrics["macro_avg"]["f1-score"],
                "nll": metrics["calibration"]["before"]["nll"],
                "ece": metrics["calibration"]["before"]["ece"],
                "ece_after": metrics["calibration"]["after"]["ece"],
                "temperature": metrics["calibration"]["after"]["temperature"],
                "epochs": training.get("epochs_run"),
                "train_seconds": training.get("train_seconds"),
                "parameters": training.get("parameters"),
            }
        )
    table = format_table(rows)
    if out:
        out = Path(out)
        atomic_write_json(out.with_suffix(".json"), rows)
        from digitlab.atomic import atomic_write_text

        atomic_write_text(out.with_suffix(".md"), table + "\n")
    return rows, table


def format_table(rows: list[dict[str, Any]]) -> str:
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4f}" if v < 10 else f"{v:.1f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    header = ["run", "model", *[c for c, _ in COMPARE_COLUMNS]]
    body = [[r["run"], r["model"], *[cell(r[k]) for _, k in COMPARE_COLUMNS]] for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
