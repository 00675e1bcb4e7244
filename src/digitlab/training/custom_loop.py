"""The custom training loop: GradientTape + tf.function, unchanged under any tf.distribute strategy.

The environment decides the strategy (`--strategy auto`, see `strategy.py`). Losses are
summed per replica and divided by the *global* batch size, so the gradient is the same whatever the number
of replicas. Every worker runs the same number of steps (drop_remainder) so collectives never wait on a
worker that has run out of data. Only the chief writes the run; the others checkpoint to scratch space.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from digitlab.data.mnist import Splits, make_dataset, training_order
from digitlab.errors import ConfigError
from digitlab.models.zoo import RawMLP, build_model
from digitlab.rundir import RunDir
from digitlab.training.config import TrainConfig, model_options
from digitlab.training.optim import current_lr, make_optimizer


def weights_fingerprint(model) -> str:
    """A short hash of all trainable weights (workers in lock-step print the same one)."""
    import hashlib

    h = hashlib.sha256()
    for v in model.trainable_variables:
        h.update(np.asarray(v.numpy() if hasattr(v, "numpy") else v).tobytes())
    return h.hexdigest()[:16]


def _latest(manager: tf.train.CheckpointManager, fallback: Path | None) -> str | None:
    """This worker's newest checkpoint, else the one in `fallback` (the chief's, for a resumed non-chief)."""
    return manager.latest_checkpoint or (tf.train.latest_checkpoint(str(fallback)) if fallback else None)


def train(
    config: TrainConfig,
    splits: Splits,
    run: RunDir,
    strategy: tf.distribute.Strategy,
    log: Callable[[str], None] = print,
    on_epoch_end: Callable[[int, object], None] | None = None,
    resume_from: RunDir | None = None,
):
    """Train with an explicit GradientTape step; returns the model with its best-on-validation weights.

    `resume_from`: a non-chief worker writes its checkpoints to scratch space but resumes from the chief's
    (every worker must restart from the same epoch, or the collectives wait forever).
    """
    steps = _steps_per_epoch(config, splits, strategy)
    state = _LoopState.build(config, strategy, steps)
    checkpoint = tf.train.Checkpoint(
        model=state.model, optimizer=state.optimizer, epoch=state.epoch, best_val=state.best_val, wait=state.wait
    )
    manager = tf.train.CheckpointManager(checkpoint, str(run.ckpt), max_to_keep=1)
    best_manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=state.model), str(run.best), max_to_keep=1)
    latest = _latest(manager, resume_from.ckpt if resume_from else None)
    if latest:
        checkpoint.restore(latest)
        log(f"resumed from epoch {int(state.epoch.numpy())} ({latest})")
    iterator = iter(strategy.experimental_distribute_dataset(_training_data(config, splits, steps, state)))
    val_ds = make_dataset(splits.x_val, splits.y_val, 1024)
    train_step, eval_batch = _step_functions(config, strategy, state)
    writers = {name: tf.summary.create_file_writer(str(run.logs / name)) for name in ("train", "validation")}
    while int(state.epoch.numpy()) < config.epochs:
        n = int(state.epoch.numpy()) + 1
        trained, seconds = _epoch(n, config, steps, lambda: train_step(iterator))
        val_loss, val_correct = _evaluate(eval_batch, val_ds)
        row = {
            **trained,
            "val_loss": val_loss / len(splits.x_val),
            "val_accuracy": val_correct / len(splits.x_val),
            "lr": current_lr(state.optimizer),
            "seconds": seconds,
        }
        log(
            f"epoch {n}/{config.epochs}  loss {row['loss']:.4f}  acc {row['accuracy']:.4f}  "
            f"val_loss {row['val_loss']:.4f}  val_acc {row['val_accuracy']:.4f}  {row['seconds']:.1f}s"
        )
        _write_summaries(writers, row, n)
        if row["val_loss"] < float(state.best_val.numpy()):
            state.best_val.assign(row["val_loss"])
            state.wait.assign(0)
            best_manager.save(checkpoint_number=n)
        else:
            state.wait.assign_add(1)
        state.epoch.assign(n)
        manager.save(checkpoint_number=n)  # the resume point first, then the history row that reports it
        run.append_history(row)
        if on_epoch_end is not None:
            on_epoch_end(n, state.model)
        if config.patience and int(state.wait.numpy()) >= config.patience:
            log(f"early stopping: no validation improvement for {config.patience} epochs")
            break
    return _kept_weights(config, state, _latest(best_manager, resume_from.best if resume_from else None))


def _steps_per_epoch(config: TrainConfig, splits: Splits, strategy: tf.distribute.Strategy) -> int:
    """Whole global batches per epoch (every replica runs the same number: collectives never wait)."""
    global_batch = config.batch_size
    if global_batch % strategy.num_replicas_in_sync:
        raise ConfigError(
            f"--batch-size {global_batch} must be divisible by the {strategy.num_replicas_in_sync} replicas"
        )
    steps = len(splits.x_train) // global_batch
    if steps == 0:
        raise ConfigError(f"--batch-size {global_batch} is larger than the {len(splits.x_train)} training examples")
    return steps


@dataclass
class _LoopState:
    """What the loop checkpoints: the model, its optimizer (slots built), the epoch and early-stopping state."""

    model: object
    optimizer: object
    epoch: tf.Variable
    best_val: tf.Variable
    wait: tf.Variable

    @classmethod
    def build(cls, config: TrainConfig, strategy: tf.distribute.Strategy, steps: int) -> _LoopState:
        with strategy.scope():
            model = build_model(config.model, model_options(config), seed=config.seed)
            if not isinstance(model, RawMLP):
                model.build((None, 28, 28, 1))
            optimizer = make_optimizer(config, steps)
            epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            best_val = tf.Variable(np.inf, dtype=tf.float64, trainable=False, name="best_val_loss")
            wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_without_improvement")
            optimizer.build(model.trainable_variables)  # create the slots now so a checkpoint restore fills them
        return cls(model, optimizer, epoch, best_val, wait)


def _training_data(config: TrainConfig, splits: Splits, steps: int, state: _LoopState) -> tf.data.Dataset:
    """The training batches, repeated, with the epochs already done skipped: a resumed run sees the same shuffles."""
    x_train, y_train = training_order(splits, config.order, config.seed)
    data = make_dataset(
        x_train,
        y_train,
        config.batch_size,
        shuffle=config.order == "reshuffle",
        seed=config.seed,
        drop_remainder=True,
        augment=config.augment,
        handwriting=config.handwriting,
        handwriting_style=config.handwriting_style,
    ).repeat()
    return data.skip(int(state.epoch.numpy()) * steps)


def _step_functions(config: TrainConfig, strategy: tf.distribute.Strategy, state: _LoopState):
    """(train_step(iterator) → summed (loss, correct) over replicas, eval_batch(x, y) → summed (loss, correct))."""
    model, optimizer, variables = state.model, state.optimizer, state.model.trainable_variables

    def step_fn(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            per_example = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=config.batch_size)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(loss, variables)
        if config.clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, config.clip_norm)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return loss, _correct(logits, y)

    @tf.function
    def train_step(iterator):
        loss, correct = strategy.run(step_fn, args=next(iterator))
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
        )

    @tf.function
    def eval_batch(x, y):
        logits = model(x, training=False)
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        return loss, _correct(logits, y)

    return train_step, eval_batch


def _correct(logits, y):
    return tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), y), tf.float32))


def _epoch(n: int, config: TrainConfig, steps: int, step: Callable[[], tuple]) -> tuple[dict[str, float], float]:
    """One epoch of `steps` steps with a progress bar: ({epoch, loss, accuracy}, seconds)."""
    start = time.perf_counter()
    loss_sum = correct_sum = 0.0
    bar = tqdm(range(steps), desc=f"epoch {n}/{config.epochs}", unit="step", disable=None, leave=False)
    for i in bar:
        loss, correct = step()
        loss_sum += float(loss)
        correct_sum += float(correct)
        if i % 20 == 0:
            bar.set_postfix(loss=f"{loss_sum / (i + 1):.4f}")
    bar.close()
    row = {"epoch": n, "loss": loss_sum / steps, "accuracy": correct_sum / (steps * config.batch_size)}
    return row, time.perf_counter() - start


def _evaluate(eval_batch, val_ds: tf.data.Dataset) -> tuple[float, float]:
    """Summed loss and correct answers over the validation set."""
    loss = correct = 0.0
    for x, y in val_ds:
        batch_loss, batch_correct = eval_batch(x, y)
        loss += float(batch_loss)
        correct += float(batch_correct)
    return loss, correct


def _write_summaries(writers: dict, row: dict[str, float], n: int) -> None:
    """The epoch's loss and accuracy for TensorBoard, train and validation."""
    for name, loss_key, acc_key in (("train", "loss", "accuracy"), ("validation", "val_loss", "val_accuracy")):
        with writers[name].as_default(step=n):
            tf.summary.scalar("epoch_loss", row[loss_key])
            tf.summary.scalar("epoch_accuracy", row[acc_key])


def _kept_weights(config: TrainConfig, state: _LoopState, best: str | None):
    """The model with the weights `--keep` asks for (the best epoch's, or the averaged ones with --ema)."""
    if config.keep == "best" and best:
        tf.train.Checkpoint(model=state.model).restore(best).expect_partial()
    elif config.ema:
        state.optimizer.finalize_variable_values(state.model.trainable_variables)  # the average replaces the last
    # Every worker prints this (not only the chief): workers in lock-step end with the same weights.
    print(f"weights fingerprint {weights_fingerprint(state.model)}", flush=True)
    return state.model
