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


@keras.saving.register_keras_serializable(package="digitlab")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak` over `warmup` of the steps, then cosine annealing to ~0.

    The warm-up lets a high peak rate be used safely (fast progress); the anneal settles into a minimum.
    """

    def __init__(self, peak: float, total_steps: int, warmup: float = 0.25, final_div: float = 100.0):
        self.peak, self.total_steps, self.warmup, self.final_div = peak, total_steps, warmup, final_div

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        total = tf.cast(max(self.total_steps, 1), tf.float32)
        up = tf.maximum(total * self.warmup, 1.0)
        start = self.peak / 10.0
        warm = start + (self.peak - start) * step / up
        progress = tf.clip_by_value((step - up) / tf.maximum(total - up, 1.0), 0.0, 1.0)
        end = self.peak / self.final_div
        anneal = end + (self.peak - end) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < up, warm, anneal)

    def get_config(self) -> dict[str, Any]:
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup": self.warmup,
            "final_div": self.final_div,
        }


@keras.saving.register_keras_serializable(package="digitlab")
class TorchOneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """PyTorch's `OneCycleLR` with its defaults (the public one-epoch MNIST record uses them unchanged).

    Cosine from peak / 25 up to `peak` over the first 30% of the steps, then cosine down to peak / 25e4
    (`div_factor` 25, `final_div_factor` 1e4, `pct_start` 0.3, `three_phase` False). The phase boundary sits
    where PyTorch puts it, at step 0.3·total − 1; step k gets PyTorch's k-th rate (Keras counts from 0 too).
    Keras has no schedule of this shape: its `CosineDecay` warms up linearly.
    """

    def __init__(
        self, peak: float, total_steps: int, pct_start: float = 0.3, div: float = 25.0, final_div: float = 1e4
    ):
        self.peak, self.total_steps, self.pct_start = peak, total_steps, pct_start
        self.div, self.final_div = div, final_div

    def __call__(self, step):
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
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "div": self.div,
            "final_div": self.final_div,
        }


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    total = steps_per_epoch * config.epochs
    if config.schedule == "onecycle":
        lr = OneCycle(config.lr, total)
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
    lr = optimizer.learning_rate
    return float(lr.numpy() if hasattr(lr, "numpy") else lr)


def compile_classifier(model: keras.Model, optimizer, accuracy: bool = True) -> None:
    """Compile for 10 (or N) logits and integer labels: the loss every digitlab model trains with."""
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")] if accuracy else None,
    )
