"""Optimisers, learning-rate schedules and the one loss every digitlab model trains with.

`make_optimizer(config, steps_per_epoch)` reads `--optimizer`, `--schedule`, `--lr` and `--clip-norm`; both
loops, the transfer phases, finetune and the experiment compile through `compile_classifier`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

if TYPE_CHECKING:
    from digitlab.training.config import TrainConfig


def one_cycle(
    peak: float, total_steps: int, warmup: float = 0.25, final_div: float = 100.0
) -> keras.optimizers.schedules.CosineDecay:
    """The `--schedule onecycle` learning rate: a linear warm-up, then a cosine anneal.

    Warm-up from peak / 10 to `peak` over `warmup` of the steps, then cosine annealing to peak / `final_div`
    (Smith & Topin, "Super-Convergence", 2017, with a cosine anneal).

    The warm-up lets a high peak rate be used safely (fast progress); the anneal settles into a minimum. This is
    Keras' own `CosineDecay` with its linear warm-up; step k gets the rate of digitlab's former `OneCycle` class
    (tests/training/test_recipes.py compares them at every step).

    Args:
      peak: the highest learning rate, reached at the end of the warm-up.
      total_steps: optimizer steps of the whole run (steps per epoch × epochs).
      warmup: the warm-up's share of the steps, in (0, 1) (at least one step).
      final_div: the last rate is peak / final_div.

    Returns:
      The schedule: step (int) → learning rate (float32).
    """
    total = max(total_steps, 1)
    up = max(total * warmup, 1.0)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10.0,
        decay_steps=max(total - up, 1.0),
        alpha=1.0 / final_div,
        warmup_target=peak,
        warmup_steps=up,
        name="OneCycle",
    )


@keras.saving.register_keras_serializable(package="digitlab")
class TorchOneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's `OneCycleLR` with its defaults (the public one-epoch MNIST record uses them unchanged).

    Cosine from peak / 25 up to `peak` over the first 30% of the steps, then cosine down to peak / 25e4
    (`div_factor` 25, `final_div_factor` 1e4, `pct_start` 0.3, `three_phase` False). The phase boundary sits
    where PyTorch puts it, at step 0.3·total − 1; step k gets PyTorch's k-th rate (Keras counts from 0 too).

    Why a class of our own: Keras has no schedule of this shape. Its `CosineDecay` warms up *linearly*
    (`one_cycle` uses it), and the fast recipe's `--schedule torch-onecycle` exists to reproduce the record's
    curve exactly, cosine warm-up included. Source: PyTorch's `torch.optim.lr_scheduler.OneCycleLR`
    (Smith & Topin, "Super-Convergence", 2017).

    Args:
      peak: `max_lr`.
      total_steps: optimizer steps of the whole run.
      pct_start: the warm-up's share of the steps.
      div: the first rate is peak / div.
      final_div: the last rate is peak / div / final_div.
    """

    def __init__(
        self, peak: float, total_steps: int, pct_start: float = 0.3, div: float = 25.0, final_div: float = 1e4
    ):
        self.peak, self.total_steps, self.pct_start = peak, total_steps, pct_start
        self.div, self.final_div = div, final_div

    def __call__(self, step):
        """The learning rate at optimizer step `step` (0-based), a float32 tensor."""
        step = tf.cast(step, tf.float32)
        start, low = self.peak / self.div, self.peak / self.div / self.final_div
        up_end = max(self.pct_start * self.total_steps - 1.0, 1e-6)
        down_len = max(self.total_steps - 1.0 - up_end, 1e-6)

        def cosine(a, b, pct):  # a at pct 0, b at pct 1
            return b + (a - b) * 0.5 * (1.0 + tf.cos(math.pi * tf.clip_by_value(pct, 0.0, 1.0)))

        return tf.where(
            step <= up_end, cosine(start, self.peak, step / up_end), cosine(self.peak, low, (step - up_end) / down_len)
        )

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments (Keras serialization)."""
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div": self.div,
            "final_div": self.final_div,
        }


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """The optimizer `config` asks for, on its learning-rate schedule.

    Args:
      config: reads optimizer, schedule, lr, epochs, beta_1/beta_2, weight_decay (AdamW), clip_norm and ema.
      steps_per_epoch: optimizer steps per epoch (the schedules span steps_per_epoch × epochs).

    Returns:
      An uncompiled Keras optimizer.
    """
    total = steps_per_epoch * config.epochs
    if config.schedule == "onecycle":
        lr = one_cycle(config.lr, total)
    elif config.schedule == "torch-onecycle":
        lr = TorchOneCycle(config.lr, total)
    elif config.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(config.lr, total)
    else:
        lr = config.lr
    common: dict[str, Any] = {"global_clipnorm": config.clip_norm} if config.clip_norm else {}
    if config.ema:  # Keras keeps the average beside the weights and swaps it in when training ends
        common.update(use_ema=True, ema_momentum=config.ema)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, **common)
    betas = {"beta_1": config.beta_1, "beta_2": config.beta_2}
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, **betas, **common)
    return keras.optimizers.Adam(lr, **betas, **common)


def current_lr(optimizer: keras.optimizers.Optimizer) -> float:
    """The optimizer's learning rate now (a schedule's value at its current step)."""
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)


def compile_classifier(model: keras.Model, optimizer, accuracy: bool = True, outlier_exposure: float = 0.0) -> None:
    """Compile for 10 (or N) logits and integer labels: the loss every digitlab model trains with.

    Args:
      model: the Keras model (its output: logits).
      optimizer: a Keras optimizer.
      accuracy: also track accuracy.
      outlier_exposure: > 0: examples labelled `OUTLIER` (-1) are non-digits, and their loss is this weight times
        the cross-entropy from the uniform distribution to the softmax (`outlier_exposure_loss`).
    """
    if outlier_exposure:
        loss = outlier_exposure_loss(outlier_exposure)
        metrics = [keras.metrics.MeanMetricWrapper(digit_accuracy, name="accuracy")] if accuracy else None
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")] if accuracy else None
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)


OUTLIER = -1  # the label of a generated non-digit in an Outlier Exposure batch


def outlier_exposure_loss(weight: float):
    """Cross-entropy for digits; for non-digits (label `OUTLIER`), `weight` × the cross-entropy to uniform.

    Outlier Exposure (Hendrycks, Mazeika & Dietterich, "Deep anomaly detection with outlier exposure", ICLR 2019):
    −mean_k log softmax(z)_k on outliers pushes their softmax toward uniform, so a model unsure of a non-digit says
    so in its energy and top probability, which the refusal reads.

    Args:
        weight: λ, the outliers' term's weight (their paper's 0.5).

    Returns:
        A Keras loss of (y_true (B,) int, logits (B, 10)).
    """

    def loss(y_true, logits):
        y = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        log_p = keras.ops.log_softmax(logits, axis=-1)
        outlier = keras.ops.equal(y, OUTLIER)
        picked = keras.ops.take_along_axis(log_p, keras.ops.expand_dims(keras.ops.maximum(y, 0), -1), axis=-1)
        digit_term = -keras.ops.squeeze(picked, -1)
        uniform_term = -keras.ops.mean(log_p, axis=-1)
        return keras.ops.where(outlier, weight * uniform_term, digit_term)

    return loss


def digit_accuracy(y_true, logits):
    """Accuracy over the digits of a batch (non-digits, label `OUTLIER`, have no right class)."""
    y = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
    right = keras.ops.cast(keras.ops.equal(keras.ops.argmax(logits, axis=-1), y), "float32")
    digits = keras.ops.cast(keras.ops.not_equal(y, OUTLIER), "float32")
    return keras.ops.sum(right * digits) / keras.ops.maximum(keras.ops.sum(digits), 1.0)
