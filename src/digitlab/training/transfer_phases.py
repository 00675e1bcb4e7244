"""Training a transfer model (`digitlab train --model transfer`) in the two phases of the Keras guide.

1. the base is frozen (`trainable = False`) and only the new head learns, at `--lr`;
2. with `--fine-tune-layers K > 0`, the top K base layers that hold weights are unfrozen and everything is
   trained again at a learning rate at least 10× lower (`--fine-tune-lr`), so the large gradients of a
   still-untrained head cannot wreck the pretrained features.

The network and its freezing are `digitlab.models.transfer_network`; the settings' checks are in `config.py`.
Transfer runs start over rather than resume.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import keras

from digitlab.data.mnist import Splits, make_dataset
from digitlab.models.transfer_network import TransferModel, build_transfer_model, set_trainable_top, unfreeze_all
from digitlab.rundir import RunDir
from digitlab.training.callbacks import HistoryRows, progress_verbosity
from digitlab.training.config import TrainConfig
from digitlab.training.optim import compile_classifier, make_optimizer


def transfer_model_for(config: TrainConfig, num_classes: int = 10) -> TransferModel:
    """The untrained transfer network `config` describes (its --base, --weights, --input-size, --dropout).

    Args:
      config: a validated TrainConfig with `model == "transfer"`.
      num_classes: outputs of the new head.

    Returns:
      The TransferModel (the Keras model, its base, and what was built, for metrics.json).
    """
    return build_transfer_model(
        config.base or "", config.weights, config.input_size, config.dropout, config.fine_tune_layers, num_classes
    )


def _keep_best(first_epoch: int, keep: list, on_epoch_end, model) -> keras.callbacks.Callback:
    """A callback that keeps the run's best-on-validation weights in memory and calls the epoch hook.

    Epochs are numbered across phases; `keep` holds [best val_loss, weights].
    """

    def end(epoch, logs):
        logs = logs or {}
        if logs.get("val_loss") is not None and logs["val_loss"] < keep[0]:
            keep[:] = [float(logs["val_loss"]), model.get_weights()]
        if on_epoch_end is not None:
            on_epoch_end(first_epoch + epoch + 1, model)

    return keras.callbacks.LambdaCallback(on_epoch_end=end)


def train_phases(
    config: TrainConfig,
    built: TransferModel,
    splits: Splits,
    run: RunDir,
    log: Callable[[str], Any] = print,
    on_epoch_end: Callable | None = None,
) -> dict[str, Any]:
    """Phase 1 (head only) then, if asked, phase 2 (top K base layers at the lower rate); best weights kept.

    Returns what each phase did, for metrics.json. Transfer runs start over rather than resume.
    """
    model = built.model
    run.history.unlink(missing_ok=True)
    train_ds = make_dataset(splits.x_train, splits.y_train, config.batch_size, shuffle=True, seed=config.seed)
    val_ds = make_dataset(splits.x_val, splits.y_val, 256)
    steps = math.ceil(len(splits.x_train) / config.batch_size)
    plan = [(1, config.epochs, config.lr, 0)]
    if config.fine_tune_layers:
        tune_epochs, tune_lr = config.fine_tune_epochs or config.epochs, config.fine_tune_lr or config.lr / 10
        plan.append((2, tune_epochs, tune_lr, config.fine_tune_layers))
    keep: list = [math.inf, None]
    phases, done = [], 0
    for phase, epochs, lr, k in plan:
        unfrozen = set_trainable_top(built.base, k)
        compile_classifier(model, make_optimizer(dataclasses.replace(config, lr=lr, epochs=epochs), steps))
        trainable = int(sum(v.numpy().size for v in model.trainable_weights))
        what = "head only, base frozen" if not k else f"head + top {k} base layers ({', '.join(unfrozen)})"
        log(f"phase {phase}: {what}; lr {lr:g}, up to {epochs} epochs, {trainable:,} trainable parameters")
        callbacks = [
            HistoryRows(run, first_epoch=done, extra={"phase": phase}),
            keras.callbacks.TensorBoard(str(run.logs / f"phase{phase}"), write_graph=False),
            _keep_best(done, keep, on_epoch_end, model),
        ]
        if config.patience:
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience))
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            callbacks=callbacks,
            shuffle=False,
            verbose=progress_verbosity(),
        )
        rows = [r for r in run.read_history() if r.get("phase") == phase]
        done += len(rows)
        phases.append(
            {
                "phase": phase,
                "lr": lr,
                "epochs_run": len(rows),
                "unfrozen_base_layers": unfrozen,
                "trainable_parameters": trainable,
                "best_val_loss": min((r["val_loss"] for r in rows), default=None),
                "final_val_accuracy": rows[-1].get("val_accuracy") if rows else None,
            }
        )
    if keep[1] is not None:
        model.set_weights(keep[1])
    unfreeze_all(built.base)
    return {**built.info, "fine_tune_layers": config.fine_tune_layers, "phases": phases}
