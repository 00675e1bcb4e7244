"""Fine-tuning a served model on the corrections people made on the draw page.

The page stores each correction in the feedback folder (default RUN/feedback): `<id>.png`, the drawing as it
was sent, and one line of `index.jsonl`, `{"id", "file", "label", "predicted", "blank", "time"}`. Here each
PNG goes through `to_mnist_28x28`, exactly what serving does, so the model learns from what it actually saw.

A handful of corrections alone would pull the model toward them and make it forget MNIST, so every epoch
mixes the feedback, repeated (`repeat`) so that it matters, with `replay_ratio` times as many MNIST training
images drawn afresh, at a low learning rate for a few epochs, BatchNorm frozen (small mixed batches would
otherwise shift its statistics). A seeded share of the feedback (`holdout`, at least one image) is never
trained on: it measures the gain on the kind of input people draw, next to the MNIST test set, which
measures what was kept. The result is a new run directory; the parent run is not touched.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.errors import ConfigError, FeedbackError, ImageError
from digitlab.settings import AT_LEAST_1, NON_NEGATIVE, POSITIVE, check_fields, setting

INDEX = "index.jsonl"


@dataclass
class FinetuneConfig:
    """The settings of `digitlab finetune`, with commented defaults."""

    model: str  # the parent: a run directory or a .keras file
    feedback: str | None = None  # the feedback folder; default RUN/feedback (where `digitlab serve` stores it)
    out: str | None = None  # the new run directory; default runs/<parent>-finetune-<timestamp>
    epochs: int = setting(5, "maximum epochs; few: the model is already trained, this only nudges it", check=AT_LEAST_1)
    lr: float = setting(1e-4, "learning rate (Adam); low, so MNIST is not forgotten", check=POSITIVE)
    batch_size: int = setting(64, "batch size", check=AT_LEAST_1)
    repeat: int = setting(10, "times each feedback image is shown per epoch (oversampling)", check=AT_LEAST_1)
    replay_ratio: float = setting(3.0, "MNIST training images replayed per feedback image shown", check=NON_NEGATIVE)
    holdout: float = setting(
        0.2,
        "share of the feedback held out for the before/after comparison (at least 1 image)",
        check=(lambda v: 0 < v < 1, "between 0 and 1"),
    )
    min_feedback: int = setting(
        20,
        "refuse with fewer usable corrections",
        check=(lambda v: v >= 2, "at least 2 (one to train, one to test)"),
    )
    seed: int = setting(0, "seed of the holdout split, the replayed images and the batch order")
    data_dir: str | None = None  # MNIST location; default $DIGITLAB_DATA or ~/.cache/digitlab
    deterministic: bool = False  # TF op determinism (process-wide once on; the CLI turns it on)

    def validate(self) -> None:
        """Check every setting (`fields.check_fields`).

        Raises:
          ConfigError: the first out-of-range setting, in one line.
        """
        check_fields(self)


# --- reading the feedback -----------------------------------------------------------------------------------


@dataclass
class Feedback:
    """The usable corrections, as the model sees them, and what was skipped and why."""

    pixels: np.ndarray  # (n, 28, 28) float32 in [0, 1]: to_mnist_28x28 of each PNG
    labels: np.ndarray  # (n,) int32, the digit the person said it was
    predicted: list[int | None]  # what the model had said when the correction was made
    ids: list[str]
    skipped: dict[str, int]  # blank drawings, PNGs missing or unreadable, drawings preprocessing finds blank


def _record(line: str, number: int, index: Path) -> dict[str, Any]:
    """One index line, checked; anything malformed is an error naming the line (the index is machine-written)."""
    where = f"{index} line {number}"
    try:
        record = json.loads(line)
    except ValueError as e:
        raise FeedbackError(f"{where} is not valid JSON ({e.msg}); fix or delete that line") from e
    if not isinstance(record, dict):
        raise FeedbackError(f"{where} is not a JSON object; fix or delete that line")
    file, label = record.get("file"), record.get("label")
    if not isinstance(file, str) or not file or Path(file).name != file:
        raise FeedbackError(f"{where}: 'file' must be a file name in the feedback folder, got {file!r}")
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label <= 9:
        raise FeedbackError(f"{where}: 'label' must be an integer 0-9, got {label!r}")
    return record


def read_feedback(folder: str | Path) -> Feedback:
    """Read the feedback folder: skip blank records and missing/unreadable PNGs, preprocess the rest.

    Args:
      folder: the feedback folder (index.jsonl and the PNGs).

    Returns:
      The usable corrections, as the model sees them, and counts of what was skipped.

    Raises:
      FeedbackError: no folder, no index, or a malformed index line.
    """
    from tqdm import tqdm

    from digitlab.data.preprocess import to_mnist_28x28

    folder = Path(folder)
    index = folder / INDEX
    if not folder.is_dir():
        raise FeedbackError(f"no feedback folder at {folder} (the draw page stores corrections in RUN/feedback)")
    if not index.is_file():
        raise FeedbackError(f"{folder} has no {INDEX}; is it a digitlab feedback folder?")
    records = [
        (number, _record(line, number, index))
        for number, line in enumerate(index.read_text(encoding="utf-8").splitlines(), start=1)
        if line.strip()
    ]
    skipped = {"blank": 0, "missing": 0, "unreadable": 0, "no_digit_found": 0}
    pixels, labels, predicted, ids = [], [], [], []
    bar = tqdm(records, desc="preprocessing feedback", unit="image", disable=None)  # a bar on terminals only
    for _, record in bar:
        if record.get("blank"):
            skipped["blank"] += 1
            continue
        path = folder / record["file"]
        if not path.is_file():
            skipped["missing"] += 1
            continue
        try:
            processed = to_mnist_28x28(path)
        except (ImageError, OSError):
            skipped["unreadable"] += 1
            continue
        if processed.blank:
            skipped["no_digit_found"] += 1
            continue
        pixels.append(processed.pixels)
        labels.append(record["label"])
        predicted.append(record.get("predicted"))
        ids.append(str(record.get("id", record["file"])))
    return Feedback(
        np.asarray(pixels, np.float32).reshape(-1, 28, 28),
        np.asarray(labels, np.int32),
        predicted,
        ids,
        skipped,
    )


def _skipped_text(skipped: dict[str, int]) -> str:
    parts = [f"{count} {what.replace('_', ' ')}" for what, count in skipped.items() if count]
    return ", ".join(parts) or "none"


def split_holdout(n: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, holdout) indices; the holdout has at least one image and leaves at least one to train.

    Args:
      n: how many corrections (at least 2).
      share: the holdout's share, in (0, 1).
      seed: the permutation's seed.

    Returns:
      Two sorted int arrays of indices into range(n), disjoint, together all of it.
    """
    order = np.random.default_rng(seed).permutation(n)
    k = min(max(1, round(share * n)), n - 1)
    return np.sort(order[k:]), np.sort(order[:k])


# --- fine-tuning --------------------------------------------------------------------------------------------


@dataclass
class FinetuneResult:
    """The new run directory and its metrics (metrics.json)."""

    run_dir: Path
    metrics: dict[str, Any]


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.argmax(1) == labels)) if len(labels) else float("nan")


def _default_out(parent: Path) -> Path:
    name = parent.name if parent.is_dir() else parent.stem
    return Path("runs") / f"{name}-finetune-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def finetune(config: FinetuneConfig, log=print) -> FinetuneResult:
    """Fine-tune `config.model` on its feedback; write a new run directory and return its metrics.

    Args:
      config: the settings.
      log: where progress lines go.

    Returns:
      The FinetuneResult.

    Raises:
      ConfigError: a bad setting, an ONNX parent, or `out` already holding a run.
      FeedbackError: too few usable corrections, or a malformed feedback index.
      ModelError: the parent cannot be loaded, or the saved model predicts differently.
    """
    from digitlab.data.mnist import splits_for
    from digitlab.models.forward import predict_logits
    from digitlab.models.saved import plain_keras_model
    from digitlab.training.train import check_reload, evaluate_logits, set_seed

    config.validate()
    parent, folder, feedback = _parent_and_feedback(config)
    run = _new_run(config)
    set_seed(config.seed, config.deterministic)
    train_idx, hold_idx = split_holdout(len(feedback.labels), config.holdout, config.seed)
    # the parent's own split: replay comes from its training part, the temperature from its validation part
    splits = splits_for(parent.settings, config.data_dir)
    log(
        f"fine-tuning {parent.name} ({parent.model_path}) on {len(train_idx)} corrections, {len(hold_idx)} held out "
        f"(skipped: {_skipped_text(feedback.skipped)}) into {run.path}"
    )
    _write_config(run, config, parent, folder, feedback, (train_idx, hold_idx))
    parts = _Parts(feedback.pixels[..., None], feedback.labels, train_idx, hold_idx)
    before = _scores(parent.model, splits, parts)
    seconds = _train(parent.model, config, splits, parts, run, log)
    export = plain_keras_model(parent.model)
    test_logits = predict_logits(export, splits.x_test)
    val_logits = predict_logits(export, splits.x_val)
    after = _scores(export, splits, parts, test_logits)
    temperature, fitted_on = _calibrate(export, parent, run, val_logits, splits.y_val)
    metrics = {
        "model": parent.name,
        "recipe": "finetune",
        "loop": "fit",
        "parent": str(parent.model_path.resolve()),
        "validation": evaluate_logits(val_logits, splits.y_val),
        "test": after["test"],
        "before": before,
        "after": after,
        "feedback": {
            "usable": len(feedback.labels),
            "trained_on": len(train_idx),
            "held_out": len(hold_idx),
            "skipped": feedback.skipped,
        },
        "temperature": temperature,
        "temperature_fitted_on": fitted_on,
        "epochs_run": len(run.read_history()),
        "best_epoch": None,  # no model selection: the last epoch is kept
        "train_seconds": round(seconds, 2),
        "parameters": int(export.count_params()),
    }
    headline, details = _summary_lines(metrics)
    run.finish(
        metrics, headline, details, model=export, check=lambda path: check_reload(path, test_logits, splits.x_test)
    )
    return FinetuneResult(run.path, metrics)


@dataclass(frozen=True)
class _Parts:
    """The feedback as the model takes it ((n, 28, 28, 1) float32, labels) and its train / held-out indices."""

    x: np.ndarray
    y: np.ndarray
    train: np.ndarray
    held_out: np.ndarray


def _parent_and_feedback(config: FinetuneConfig):
    """The parent (a Keras model, loaded), its feedback folder and the usable corrections in it."""
    from digitlab.models.saved import load_model

    parent = load_model(config.model, network=False)  # a missing or corrupt model is a one-line ModelError
    if not parent.is_keras:
        raise ConfigError(f"{parent.name} is an imported ONNX model: fine-tuning needs a TensorFlow/Keras model")
    _ = parent.model
    if config.feedback is None and parent.run_dir is None:
        raise ConfigError(f"{config.model} is a bare model file: pass the feedback folder with --feedback")
    folder = Path(config.feedback) if config.feedback else parent.run_dir / "feedback"
    feedback = read_feedback(folder)
    usable = len(feedback.labels)
    if usable < config.min_feedback:
        raise FeedbackError(
            f"only {usable} usable corrections in {folder} (skipped: {_skipped_text(feedback.skipped)}); "
            f"fine-tuning needs at least {config.min_feedback} (--min-feedback): collect more on the draw page"
        )
    return parent, folder, feedback


def _new_run(config: FinetuneConfig):
    """The new run directory, created (an unfinished earlier attempt there starts over)."""
    from digitlab.rundir import RunDir

    out = Path(config.out) if config.out else _default_out(Path(config.model))
    run = RunDir(out)
    if run.finished or (run.model.exists() and not run.config.exists()):
        raise ConfigError(f"--out {out} already holds a run; choose another --out")
    run.create()
    run.history.unlink(missing_ok=True)
    return run


def _write_config(run, config: FinetuneConfig, parent, folder: Path, feedback: Feedback, split: tuple) -> None:
    """config.json: what `evaluate`, `serve` and `predict` read (the name, the parent's split) and the provenance."""
    from digitlab.data.mnist import validation_split_of

    validation_size, parent_split = validation_split_of(parent.settings)
    train_idx, hold_idx = split
    run.write_config(
        "finetune",
        {
            "model": parent.name,
            "recipe": "finetune",
            "validation_size": validation_size,
            "seed": parent_split,
            "data_dir": config.data_dir,
            **({"imported": True} if parent.imported else {}),  # evaluate then fits no temperature either
        },
        finetune=asdict(config),
        parent={"model_file": str(parent.model_path.resolve()), "settings": parent.settings},
        feedback={
            "folder": str(folder.resolve()),
            "usable": len(feedback.labels),
            "trained_on": [feedback.ids[i] for i in train_idx],
            "held_out": [feedback.ids[i] for i in hold_idx],
            "skipped": feedback.skipped,
        },
    )


def _scores(model, splits, parts: _Parts, test_logits: np.ndarray | None = None) -> dict[str, Any]:
    """Test metrics and the accuracy on the held-out and the trained-on feedback."""
    from digitlab.models.forward import predict_logits
    from digitlab.training.train import evaluate_logits

    test_logits = predict_logits(model, splits.x_test) if test_logits is None else test_logits
    return {
        "test": evaluate_logits(test_logits, splits.y_test),
        "feedback_holdout_accuracy": _accuracy(predict_logits(model, parts.x[parts.held_out]), parts.y[parts.held_out]),
        "feedback_train_accuracy": _accuracy(predict_logits(model, parts.x[parts.train]), parts.y[parts.train]),
    }


def _train(model, config: FinetuneConfig, splits, parts: _Parts, run, log) -> float:
    """The epochs: the feedback repeated, mixed with fresh MNIST replay, BatchNorm frozen; returns seconds."""
    import keras

    from digitlab.models.transfer_network import sublayers
    from digitlab.training.callbacks import HistoryRows
    from digitlab.training.optim import compile_classifier

    for layer in sublayers(model):  # frozen BatchNorm runs in inference mode: its MNIST statistics stay
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    compile_classifier(model, keras.optimizers.Adam(config.lr))
    rng = np.random.default_rng(config.seed)
    shown = len(parts.train) * config.repeat
    replayed = math.ceil(shown * config.replay_ratio)
    x_val = (splits.x_val / np.float32(255.0))[..., None]
    start = time.perf_counter()
    for epoch in range(config.epochs):
        # fresh replay every epoch: more of MNIST is seen, and no fixed small replay set is memorised
        replay = rng.choice(len(splits.x_train), size=replayed, replace=replayed > len(splits.x_train))
        x = np.concatenate(
            [
                np.repeat(parts.x[parts.train], config.repeat, axis=0),
                (splits.x_train[replay] / np.float32(255.0))[..., None],
            ]
        )
        y = np.concatenate([np.repeat(parts.y[parts.train], config.repeat), splits.y_train[replay]])
        order = rng.permutation(len(x))
        history = model.fit(
            x[order],
            y[order].astype(np.int32),
            batch_size=config.batch_size,
            epochs=epoch + 1,
            initial_epoch=epoch,
            validation_data=(x_val, splits.y_val.astype(np.int32)),
            shuffle=False,
            verbose=0,
            callbacks=[HistoryRows(run)],  # initial_epoch numbers the row
        )
        logs = {k: float(v[-1]) for k, v in history.history.items()}
        log(
            f"epoch {epoch + 1}/{config.epochs}: {len(x):,} images ({shown:,} feedback, {replayed:,} MNIST replay)  "
            f"loss {logs['loss']:.4f}  accuracy {logs['accuracy']:.4f}  "
            f"val_loss {logs['val_loss']:.4f}  val_accuracy {logs['val_accuracy']:.4f}"
        )
    return time.perf_counter() - start


def _calibrate(export, parent, run, val_logits: np.ndarray, y_val: np.ndarray) -> tuple[float, str]:
    """(temperature, what it was fitted on), saved into the run: recalibrated as `digitlab evaluate` does.

    Unless the parent may have trained on the validation images (an imported model, a --full-train run): the
    temperature then stays 1.
    """
    from digitlab.models.calibration import temperature_fit
    from digitlab.models.saved import LoadedModel, save_temperature

    temperature, details = temperature_fit(val_logits, y_val, parent.validation_seen)
    save_temperature(LoadedModel(export, parent.name, run.model, run.path, {}), temperature, details)
    return temperature, details["fitted_on"]


def format_report(metrics: dict[str, Any]) -> str:
    """Before/after on the MNIST test set and on the held-out corrections, as summary.txt says it.

    Args:
      metrics: a finetune run's metrics.json.

    Returns:
      The text, without a final newline.
    """
    from digitlab.rundir import format_summary

    headline, details = _summary_lines(metrics)
    return format_summary(headline, metrics, details).rstrip("\n")


def _summary_lines(metrics: dict[str, Any]) -> tuple[str, list[str]]:
    """The summary's headline and detail lines (see `digitlab.rundir.format_summary`)."""
    b, a, fb = metrics["before"], metrics["after"], metrics["feedback"]
    return f"fine-tuned {metrics['model']} from {metrics['parent']}", (
        [
            f"feedback: {fb['usable']} usable corrections, {fb['trained_on']} trained on, {fb['held_out']} held out "
            f"(skipped: {_skipped_text(fb['skipped'])})",
            "                               before    after",
            f"MNIST test accuracy            {b['test']['accuracy']:.4f}   {a['test']['accuracy']:.4f}",
            f"held-out feedback accuracy     {b['feedback_holdout_accuracy']:.4f}   "
            f"{a['feedback_holdout_accuracy']:.4f}   ({fb['held_out']} images)",
            f"trained-on feedback accuracy   {b['feedback_train_accuracy']:.4f}   {a['feedback_train_accuracy']:.4f}",
            f"{metrics['epochs_run']} epochs, {metrics['train_seconds']:.1f} s; "
            f"temperature {metrics['temperature']:.3f} "
            + (
                "refitted on validation"
                if metrics.get("temperature_fitted_on", "validation") == "validation"
                else f"(not fitted: {metrics['temperature_fitted_on'].removeprefix('nothing: ')})"
            ),
        ]
    )
