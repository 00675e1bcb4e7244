"""Training: `train_and_evaluate(config)` → a finished run directory.

Two loops share everything but the inner loop: `--loop fit` is Keras `model.fit` with the usual callbacks;
`--loop custom` (`custom_loop.py`) is an explicit GradientTape step that runs under any tf.distribute
strategy. Both resume a killed run, keep the best-on-validation weights, and end the same way: export
`model.keras`, reload it, check its test predictions equal the in-memory model's, write metrics.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from digitlab.data.mnist import Splits, load_splits, make_dataset, split_seed, training_order
from digitlab.data.served import served_copies
from digitlab.errors import ConfigError, ModelError, one_line
from digitlab.models.forward import predict_logits
from digitlab.models.saved import plain_keras_model
from digitlab.models.zoo import RawMLP, build_model
from digitlab.rundir import RunDir, default_run_path, find_unfinished_run
from digitlab.training import custom_loop, strategy, transfer_phases
from digitlab.training.callbacks import EpochHook, HistoryRows, ResumableEarlyStopping, progress_verbosity
from digitlab.training.config import TrainConfig, effective_settings, model_options
from digitlab.training.optim import compile_classifier, make_optimizer

tf.get_logger().setLevel("ERROR")  # retracing notices for each new model are expected here, not actionable


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; with `deterministic`, also turn on TF op determinism.

    Op determinism makes the same seed and settings give the same weights on the same machine (it costs little
    on CPU). It is a process-wide TensorFlow switch with no public way back, so it is the caller's explicit
    choice: the CLI turns it on (`TrainConfig.deterministic`), a library caller decides.

    Args:
      seed: any integer.
      deterministic: also call `tf.config.experimental.enable_op_determinism()`.
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


# --- the fit loop -------------------------------------------------------------------------------------------


OUTLIER_SHARE = 0.1  # Outlier Exposure: one generated non-digit for every ten training digits


def with_outliers(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training digits with generated non-digits (label `OUTLIER`) mixed in, for Outlier Exposure.

    Args:
      x: (N, 28, 28) uint8 training digits; y their (N,) labels.
      y: their labels.
      seed: the generator's and the mixing's seed.

    Returns:
      ((N + M, 28, 28) uint8, (N + M,) int32), M ≈ `OUTLIER_SHARE` × N non-digits at seeded random places.
    """
    from digitlab.data.synthetic import outlier_pool
    from digitlab.training.optim import OUTLIER

    pool = outlier_pool(int(len(x) * OUTLIER_SHARE), seed)
    x_all = np.concatenate([x, pool])
    y_all = np.concatenate([y.astype(np.int32), np.full(len(pool), OUTLIER, np.int32)])
    order = np.random.default_rng([seed, 7]).permutation(len(x_all))  # the outliers spread over every epoch
    return x_all[order], y_all[order]


def with_served_copies(splits: Splits, seed: int = 0, data_dir: str | Path | None = None) -> Splits:
    """`splits` with the training part doubled: the originals, then their `served_copies` (same labels).

    Args:
      splits: the run's splits; validation and test are left as they are.
      seed: the copies' seed.
      data_dir: the cache's parent (see `served_copies`).

    Returns:
      New Splits with (2N, 28, 28) uint8 training images and (2N,) labels.
    """
    copies = served_copies(splits.x_train, seed, data_dir)
    return replace(
        splits,
        x_train=np.concatenate([splits.x_train, copies]),
        y_train=np.concatenate([splits.y_train, splits.y_train]),
    )


def fit_loop(
    config: TrainConfig,
    model: keras.Model,
    splits: Splits,
    run: RunDir,
    on_epoch_end: EpochHook | None = None,
    clock: Stopwatch | None = None,
) -> None:
    """Train `model` with Keras `fit`: resumable (BackupAndRestore), best-on-validation weights kept.

    Args:
      config: the run's settings.
      model: the untrained Keras model (compiled here).
      splits: uint8 images and labels; validation is skipped with --full-train.
      run: the run directory (history.csv, logs/, backup/ and best.weights.h5 go there).
      on_epoch_end: called with (epoch, model) after each epoch.
      clock: laps "build", "first_step" and "epochs" go here.
    """
    clock = clock or Stopwatch()
    distribution = tf.distribute.get_strategy()
    x, y = training_order(splits, config.order, config.seed)
    if config.outlier_exposure:
        x, y = with_outliers(x, y, config.seed)
    reshuffle = config.order == "reshuffle"
    train_ds = make_dataset(
        x,
        y,
        config.batch_size,
        shuffle=reshuffle,
        seed=config.seed,
        augment=config.augment,
        handwriting=config.handwriting,
        handwriting_style=config.handwriting_style,
    )
    # --full-train has no held-out images: a per-epoch pass over images it trains on would choose nothing
    val_ds = None if config.full_train else make_dataset(splits.x_val, splits.y_val, 1024)
    steps = math.ceil(len(x) / config.batch_size)
    with distribution.scope():
        compile_classifier(model, make_optimizer(config, steps), outlier_exposure=config.outlier_exposure)
    callbacks = _fit_callbacks(config, model, run, val_ds is not None, on_epoch_end)
    first = [True]

    def first_step(batch, logs):  # tracing the train step + the first batch, apart from the steady epochs
        if first[0]:
            first[0] = False
            clock.lap("first_step")

    callbacks.append(keras.callbacks.LambdaCallback(on_train_batch_end=first_step))
    clock.lap("build")
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.epochs,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline already shuffles (seeded), or keeps --order fixed
        verbose=progress_verbosity(),
    )
    clock.lap("epochs")
    best = run.path / "best.weights.h5"
    if config.keep == "best" and best.is_file():
        model.load_weights(str(best))


def _fit_callbacks(
    config: TrainConfig, model: keras.Model, run: RunDir, validated: bool, on_epoch_end: EpochHook | None
) -> list:
    """Resumable backup, the best epoch's weights (with validation), TensorBoard, history rows, early stopping."""
    history = run.read_history()
    val_losses = [r["val_loss"] for r in history if "val_loss" in r]
    callbacks = [
        # kept until finish_run has written metrics.json: a kill between the last epoch and the end resumes
        # with no epoch left to train, instead of starting over
        keras.callbacks.BackupAndRestore(str(run.backup), delete_checkpoint=False),
        keras.callbacks.TensorBoard(str(run.logs), histogram_freq=0, write_graph=False),
        HistoryRows(run),
    ]
    if validated:
        best = keras.callbacks.ModelCheckpoint(
            str(run.path / "best.weights.h5"),
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=min(val_losses) if val_losses else None,
        )
        callbacks.insert(1, best)
    if config.patience:
        callbacks.append(ResumableEarlyStopping(history, monitor="val_loss", patience=config.patience))
    if on_epoch_end is not None:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch_end(e + 1, model)))
    return callbacks


# --- orchestration ------------------------------------------------------------------------------------------


class Stopwatch:
    """Named laps in seconds (`laps["data"]`: time since the previous lap), for the fixed-cost table."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        """Record the seconds since the previous lap under `name`."""
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


@dataclass
class RunResult:
    """What `train_and_evaluate` returns: the run directory, its metrics (metrics.json) and the saved model."""

    run_dir: Path
    metrics: dict[str, Any]
    model: keras.Model


def evaluate_logits(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and mean cross-entropy of (N, 10) logits against (N,) integer labels.

    Args:
      logits: (N, 10) float logits.
      labels: (N,) integer labels in 0..9.

    Returns:
      {"accuracy": in [0, 1], "loss": mean NLL in nats}.
    """
    loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return {
        "accuracy": float(np.mean(np.argmax(logits, axis=1) == labels)),
        "loss": float(np.mean(np.asarray(loss))),
    }


def check_reload(path: Path, in_memory: np.ndarray, images: np.ndarray, count: int = 2000) -> None:
    """Reload the saved file with plain Keras and require the same predictions on `count` test images."""
    reloaded = keras.saving.load_model(path, compile=False)
    logits, in_memory = predict_logits(reloaded, images[:count]), in_memory[:count]
    if not (np.array_equal(logits.argmax(1), in_memory.argmax(1)) and np.allclose(logits, in_memory, atol=1e-4)):
        diff = float(np.max(np.abs(logits - in_memory)))
        raise ModelError(f"the saved {path.name} predicts differently from the trained model (max diff {diff:.3g})")


def prepare_run(config: TrainConfig) -> tuple[RunDir, str]:
    """Choose the run directory: --out, else an unfinished run of the same settings, else a new one.

    Args:
      config: the run's settings.

    Returns:
      The run (not created yet) and what to do with it: "new", "resume" (an unfinished run of the same
      settings) or "reuse" (a finished run of the same settings: training again would only reproduce it).

    Raises:
      ConfigError: --out holds a run of other settings, or files that are not a run; config.json is corrupt.
    """
    settings = config.settings()
    if config.out:
        run = RunDir(Path(config.out))
    else:
        found = find_unfinished_run(settings, effective=effective_settings)
        run = RunDir(found or default_run_path(config.model))
    try:
        recorded = run.read_settings()
    except ModelError as e:
        raise ConfigError(f"--out {run.path}: {e}; choose another --out") from e
    same = bool(recorded) and effective_settings(recorded) == settings
    if same and run.finished:
        return run, "reuse"
    if run.finished or (run.config.exists() and not same):
        raise ConfigError(f"--out {run.path} already holds a run with different settings; choose another --out")
    return run, "resume" if same else "new"


def reuse_run(run: RunDir, log=print) -> RunResult:
    """The result of a finished run of the same settings, read back instead of trained again.

    Args:
      run: The finished run directory.
      log: Receives the one line that says the run is reused.

    Returns:
      Its RunResult (metrics from metrics.json, the model loaded from model.keras).

    Raises:
      ModelError: its metrics.json or model.keras is unreadable.
    """
    metrics = run.read_metrics()
    log(f"{run.path} already holds a finished run with these settings: reusing it (delete it to train again)")
    try:
        model = keras.saving.load_model(run.model, compile=False)
    except Exception as e:  # Keras raises many types for a damaged file
        raise ModelError(f"{run.model} is unreadable ({one_line(e)})") from e
    return RunResult(run.path, metrics, model)


def train_and_evaluate(config: TrainConfig, log=print, on_epoch_end: EpochHook | None = None) -> RunResult:
    """Train `config.model`, write the run directory, and return its metrics.

    Training into a finished run of the same settings reuses it (one line says so) instead of training again;
    a run of other settings at `config.out` is refused.

    Args:
      config: a validated TrainConfig (see `digitlab.training.config.resolve_config`).
      log: where progress lines go.
      on_epoch_end: called after every epoch with (epoch, model), e.g. to time accuracy milestones.

    Returns:
      The RunResult: the run directory, its metrics (metrics.json) and the plain Keras model it saved.

    Raises:
      ConfigError: --out holds another run or is not writable.
      ModelError: the saved model does not predict like the trained one.
      DataError: MNIST is missing and cannot be fetched.
    """
    clock = Stopwatch()
    distribution = strategy.make_strategy(config.strategy) if config.loop == "custom" else None
    chief = strategy.is_chief(distribution)
    # before anything is built: a finished run of the same settings is read back, not retrained (by every
    # worker of a cluster, so none waits for a chief that does not train)
    run, state = prepare_run(config)
    if state == "reuse":
        return reuse_run(run, log if chief else (lambda *_: None))
    set_seed(config.seed, config.deterministic)
    transfer_model = None
    if config.model == "transfer":  # built first: a missing base or undownloadable weights fail before the run dir
        transfer_model = transfer_phases.transfer_model_for(config)
    run, resuming, resume_from = _worker_run(config, run, state == "resume", chief)
    clock.lap("setup")
    splits = load_splits(
        config.data_dir, config.validation_size, split_seed(config.settings()), config.limit, config.full_train
    )
    if config.served_copies:
        splits = with_served_copies(splits, config.seed, config.data_dir)
    clock.lap("data")
    replicas = distribution.num_replicas_in_sync if distribution else 1
    if chief:
        _start_run(config, run, splits, distribution, transfer_model is not None, resuming, log)
    start = time.perf_counter()
    transfer_info = None
    if transfer_model is not None:
        transfer_info = transfer_phases.train_phases(config, transfer_model, splits, run, log, on_epoch_end)
        model = transfer_model.model
    elif config.loop == "fit":
        model = build_model(config.model, model_options(config), seed=config.seed)
        fit_loop(config, model, splits, run, on_epoch_end, clock)
    else:
        quiet = log if chief else (lambda *_: None)
        model = custom_loop.train(config, splits, run, distribution, quiet, on_epoch_end, resume_from)
    train_seconds = time.perf_counter() - start
    clock.lap("after_training")
    export = plain_keras_model(model)
    metrics, test_logits = _run_metrics(config, export, splits, run.read_history(), train_seconds, replicas)
    clock.lap("predict")
    if transfer_info is not None:
        metrics["transfer"] = transfer_info
    metrics["seconds"] = clock.laps  # where the command's time went, after imports (bench/train_speed.py)
    if chief:
        finish_run(run, model, export, test_logits, splits, metrics, clock)
        log(
            f"test accuracy {metrics['test']['accuracy']:.4f} (validation {metrics['validation']['accuracy']:.4f}); "
            f"run in {run.path}"
        )
    return RunResult(run.path, metrics, export)


def _worker_run(config: TrainConfig, run: RunDir, resuming: bool, chief: bool) -> tuple[RunDir, bool, RunDir | None]:
    """(the run this process writes, whether it resumes, the run to resume from when it is not its own).

    Only the chief writes the run; the others keep their resume state in a scratch folder and resume where the
    chief does.
    """
    if chief:
        return run.create(), resuming, None
    scratch = RunDir(Path(tempfile.mkdtemp(prefix="digitlab-worker-"))).create()
    found = None if config.out else find_unfinished_run(config.settings(), effective=effective_settings)
    chief_run = Path(config.out) if config.out else found
    return scratch, False, RunDir(chief_run) if chief_run else None


def _start_run(config: TrainConfig, run: RunDir, splits: Splits, distribution, transfer: bool, resuming: bool, log):
    """config.json (the settings and how they train), and the line that says what is trained where."""
    run.write_config(
        "train",
        config.settings(),
        deterministic=config.deterministic,
        extra=config.extra,
        strategy=strategy.strategy_name(distribution),
        replicas=distribution.num_replicas_in_sync if distribution else 1,
        train_examples=len(splits.x_train),
        validation_examples=len(splits.x_val),
    )
    if transfer:
        again = " (an unfinished transfer run starts over)" if resuming else ""
        log(f"training transfer from base {config.base} into {run.path}{again}")
    else:
        log(f"{'resuming' if resuming else 'training'} {config.model} ({config.loop} loop) into {run.path}")


def _run_metrics(
    config: TrainConfig, export: keras.Model, splits: Splits, history: list, train_seconds: float, replicas: int
) -> tuple[dict[str, Any], np.ndarray]:
    """(metrics.json's body, the test logits): validation and test in one pass (one traced graph, one pipeline)."""
    logits = predict_logits(export, np.concatenate([splits.x_val, splits.x_test]))
    val_logits, test_logits = logits[: len(splits.x_val)], logits[len(splits.x_val) :]
    val = evaluate_logits(val_logits, splits.y_val)
    if config.full_train:
        val["seen_in_training"] = True  # not a held-out measurement
    metrics = {
        "model": config.model,
        "recipe": config.recipe,
        "loop": config.loop,
        "validation": val,
        "test": evaluate_logits(test_logits, splits.y_test),
        "epochs_run": len(history),
        "best_epoch": _best_epoch(history),
        "kept": config.keep,  # best: that epoch's weights; last: the final (or averaged) weights
        "train_seconds": round(train_seconds, 2),
        "train_seconds_total": round(sum(r.get("seconds", 0.0) for r in history), 2),
        "parameters": int(export.count_params()),
        "replicas": replicas,
    }
    return metrics, test_logits


def finish_run(
    run: RunDir, model, export: keras.Model, test_logits, splits: Splits, metrics: dict, clock: Stopwatch | None = None
) -> None:
    """Save (atomically, after a reload check), write metrics and summary, then drop the resume state.

    Args:
      run: the run directory.
      model: the trained model (a RawMLP also gets a SavedModel with its own serving signature).
      export: the plain Keras model saved as model.keras.
      test_logits: (N, 10) the in-memory model's test logits, which the reloaded file must reproduce.
      splits: the run's splits (the test images for the reload check).
      metrics: metrics.json.
      clock: laps "save" and "reload_check" go here (they are in metrics["seconds"]).

    Raises:
      ModelError: the saved file predicts differently.
    """
    clock = clock or Stopwatch()
    if isinstance(model, RawMLP):
        tf.saved_model.save(model, str(run.savedmodel), signatures={"serving_default": model.serve})
    m = metrics
    details = [
        f"epochs {m['epochs_run']} (lowest validation loss: epoch {m['best_epoch'] or '- (no held-out images)'}; "
        f"kept: {m.get('kept', 'best')}), {m['train_seconds']:.1f} s training",
        *_transfer_summary(metrics.get("transfer")),
    ]

    def check(path: Path) -> None:  # laps before metrics.json is written, so they are in it
        clock.lap("save")
        check_reload(path, test_logits, splits.x_test)
        clock.lap("reload_check")

    headline = f"model {m['model']} (recipe {m['recipe']}, {m['loop']} loop, {m['parameters']:,} parameters)"
    run.finish(metrics, headline, details, model=export, check=check)
    os.sync()


def _best_epoch(history: list[dict]) -> int | None:
    """The epoch with the lowest validation loss; None when no epoch was validated (--full-train)."""
    losses = [r.get("val_loss") for r in history]
    if not losses or None in losses:
        return None
    return int(np.argmin(losses)) + 1


def _transfer_summary(info: dict | None) -> list[str]:
    if not info:
        return []
    phases = [
        f"phase {p['phase']}: {p['epochs_run']} epochs at lr {p['lr']:g}, "
        + (f"top {len(p['unfrozen_base_layers'])} base layers unfrozen" if p["unfrozen_base_layers"] else "head only")
        for p in info["phases"]
    ]
    where = f"transfer from {info['base']} (weights {info['weights']}, input {info['input_size']}px)"
    return [f"{where}: {'; '.join(phases)}"]
