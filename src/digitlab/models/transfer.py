"""Transfer learning: a pretrained base, frozen, under a new head; then, optionally, its top layers fine-tuned.

The base is either a `keras.applications` network (VGG16, MobileNetV2) or a saved digitlab model, whose
layers up to its "logits" Dense layer become the base. Training runs in two phases, the pattern of the Keras
transfer-learning guide:

1. the base is frozen (`trainable = False`) and only the new head learns, at `--lr`;
2. with `--fine-tune-layers K > 0`, the top K base layers that hold weights are unfrozen and everything is
   trained again at a learning rate at least 10× lower (`--fine-tune-lr`), so the large gradients of a
   still-untrained head cannot wreck the pretrained features.

BatchNorm layers never unfreeze: a frozen BatchNormalization runs in inference mode in Keras 3 (it uses its
moving statistics), which is what keeps the pretrained statistics intact. The base is also called with
`training=False` as in the guide, but Keras 3.15 overrides that argument with the outer call's `training`
flag inside a functional model (observed: a nested Dropout still drops during `fit`), so it is
`trainable = False` that does the work for BatchNorm, and the Dropout layers of a digitlab base are replaced
by identities: a base gives the same features in training and inference; the new head brings its own dropout.

A keras.applications base expects 3-channel images of at least 32×32, scaled its own way. The input adapter
turns MNIST's (28, 28, 1) floats in [0, 1] into that with built-in Keras layers only (Resizing, Concatenate,
Rescaling, Normalization), so the saved model.keras loads with plain `keras.saving.load_model`, without
digitlab and without `safe_mode=False` (a Lambda layer would need both).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitlab.errors import ConfigError, ModelError

if TYPE_CHECKING:  # keras is imported lazily: config validation uses this module's name checks
    import keras

    from digitlab.config import TrainConfig
    from digitlab.data import Splits
    from digitlab.rundir import RunDir

# --- the bases ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Application:
    """A keras.applications base and what its input adapter and ImageNet weights need."""

    constructor: str  # keras.applications attribute
    preprocessing: str  # "caffe": ×255, minus the BGR ImageNet means; "tf": scale to [-1, 1]
    min_size: int  # smallest input side the architecture accepts
    weights_file: str  # the no-top ImageNet file Keras downloads ({size} = its input size)
    imagenet_sizes: tuple[int, ...] = ()  # sizes with their own ImageNet file; () = one file for any size


APPLICATIONS: dict[str, Application] = {
    "vgg16": Application("VGG16", "caffe", 32, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenetv2": Application(
        "MobileNetV2",
        "tf",
        32,
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
        imagenet_sizes=(96, 128, 160, 192, 224),
    ),
}
CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)  # keras.applications.imagenet_utils, mode "caffe"
WEIGHTS_CHOICES = ("imagenet", "none")  # or a path to a weights file
DOWNLOAD_TIMEOUT_S = 60  # a stalled connection fails instead of hanging the command


def application_key(name: str) -> str | None:
    """'VGG16', 'mobilenet_v2', 'MobileNet-V2' → the APPLICATIONS key; None when it is not one."""
    key = name.lower().replace("-", "").replace("_", "")
    return key if key in APPLICATIONS else None


def saved_model_file(base: str) -> Path | None:
    """The .keras file a --base path means (the file itself, or RUN/model.keras); None when there is none."""
    path = Path(base).expanduser()
    if path.is_dir():
        path = path / "model.keras"
    return path if path.is_file() else None


def default_input_size(app: Application, weights: str) -> int:
    """The base's minimum size (cheapest on a CPU), or the smallest size that has its own ImageNet file."""
    if weights == "imagenet" and app.imagenet_sizes:
        return app.imagenet_sizes[0]
    return app.min_size


def weights_file_name(app: Application, size: int) -> str:
    # keras.applications falls back to the 224 file when the size has no file of its own
    return app.weights_file.format(size=size if size in app.imagenet_sizes else 224)


def complete_settings(values: dict[str, Any]) -> None:
    """Fill in the transfer defaults that depend on other settings, so config.json records what was used."""
    if values.get("model") != "transfer" or not values.get("base"):
        return
    key = application_key(values["base"])
    if key:
        values["base"] = key  # the canonical name: "MobileNet_V2" and "mobilenetv2" are the same run
        weights = values.get("weights") or "imagenet"
        values["weights"] = weights.lower() if weights.lower() in WEIGHTS_CHOICES else weights
        values["input_size"] = values.get("input_size") or default_input_size(APPLICATIONS[key], values["weights"])
    if values.get("fine_tune_layers"):
        values["fine_tune_epochs"] = values.get("fine_tune_epochs") or values.get("epochs")
        values["fine_tune_lr"] = values.get("fine_tune_lr") or values["lr"] / 10


def check_settings(config: TrainConfig) -> None:
    """One-line ConfigErrors for the transfer settings (called by `digitlab.config.validate`)."""
    given = [
        flag
        for flag, value in (
            ("--base", config.base),
            ("--weights", config.weights),
            ("--input-size", config.input_size),
            ("--fine-tune-layers", config.fine_tune_layers or None),
            ("--fine-tune-epochs", config.fine_tune_epochs),
            ("--fine-tune-lr", config.fine_tune_lr),
        )
        if value is not None
    ]
    if config.model != "transfer":
        if given:
            raise ConfigError(
                f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to --model transfer"
            )
        return
    names = ", ".join(APPLICATIONS)
    if not config.base:
        raise ConfigError(
            f"--model transfer needs --base: {names} (keras.applications) or a saved digitlab model "
            "(a .keras file or a run directory)"
        )
    if config.loop != "fit":
        raise ConfigError("--model transfer trains with --loop fit (its two phases are model.fit calls)")
    key = application_key(config.base)
    if key is None:
        if saved_model_file(config.base) is None:
            raise ConfigError(
                f"--base {config.base!r} is neither a supported keras.applications base ({names}) nor a saved "
                "digitlab model (a .keras file or a run directory with model.keras)"
            )
        if config.weights is not None or config.input_size is not None:
            raise ConfigError(
                "--weights and --input-size apply to keras.applications bases; a saved digitlab model brings its "
                "own weights and takes 28×28 input"
            )
    else:
        app = APPLICATIONS[key]
        weights = config.weights or "imagenet"
        if weights not in WEIGHTS_CHOICES and not Path(weights).expanduser().is_file():
            raise ConfigError(f"--weights must be imagenet, none or a weights file; no file at {weights}")
        if config.input_size is not None and config.input_size < app.min_size:
            raise ConfigError(f"--input-size for {key} must be at least {app.min_size}, got {config.input_size}")
    if config.fine_tune_layers < 0:
        raise ConfigError(f"--fine-tune-layers must be >= 0, got {config.fine_tune_layers}")
    if config.fine_tune_layers == 0:
        if config.fine_tune_epochs is not None or config.fine_tune_lr is not None:
            raise ConfigError("--fine-tune-epochs and --fine-tune-lr need --fine-tune-layers K > 0")
        return
    if config.fine_tune_epochs is not None and config.fine_tune_epochs < 1:
        raise ConfigError(f"--fine-tune-epochs must be at least 1, got {config.fine_tune_epochs}")
    if config.fine_tune_lr is not None and not 0 < config.fine_tune_lr <= config.lr / 10 * (1 + 1e-9):
        raise ConfigError(
            f"--fine-tune-lr must be positive and at most --lr / 10 = {config.lr / 10:g} (a high rate on an "
            f"unfrozen pretrained base destroys its features), got {config.fine_tune_lr:g}"
        )


# --- building -----------------------------------------------------------------------------------------------


def input_adapter(x: keras.KerasTensor, app: Application, size: int) -> keras.KerasTensor:
    """(N, 28, 28, 1) in [0, 1] → (N, size, size, 3) exactly as the base's `preprocess_input` would give it.

    Three identical channels make the BGR/RGB order irrelevant, so "caffe" preprocessing (×255, then minus
    each channel's ImageNet mean) is a Rescaling and a Normalization with variance 1.
    """
    from keras import layers

    x = layers.Resizing(size, size, interpolation="bilinear", name="resize")(x)
    x = layers.Concatenate(axis=-1, name="gray_to_rgb")([x, x, x])
    if app.preprocessing == "caffe":
        x = layers.Rescaling(255.0, name="to_0_255")(x)
        return layers.Normalization(mean=list(CAFFE_BGR_MEANS), variance=[1.0, 1.0, 1.0], name="imagenet_mean")(x)
    return layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)


@contextlib.contextmanager
def _download_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)  # urlretrieve (inside keras.utils.get_file) has no timeout of its own
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _keras_models_dir() -> str:
    return os.path.join(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")), "models")


def application_base(key: str, weights: str, size: int) -> keras.Model:
    """The keras.applications network without its classifier, with the requested weights.

    ImageNet weights come through Keras' own mechanism (keras.utils.get_file into $KERAS_HOME/models, default
    ~/.keras/models); when that fails the error says which file to fetch by hand and pass with --weights PATH.
    """
    import keras

    app = APPLICATIONS[key]
    build = getattr(keras.applications, app.constructor)
    shape = (size, size, 3)
    expected = weights_file_name(app, size)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input_shape.*")  # MobileNetV2 at a non-ImageNet size
        if weights == "imagenet":
            try:
                with _download_timeout(DOWNLOAD_TIMEOUT_S):
                    return build(include_top=False, weights="imagenet", input_shape=shape)
            except Exception as e:  # get_file raises a bare Exception for URL failures
                reason = " ".join(str(e).split())[:300] or type(e).__name__
                raise ModelError(
                    f"the ImageNet weights for {key} could not be downloaded ({reason}); download {expected} "
                    f"where there is network and pass it with --weights PATH (or put it in {_keras_models_dir()}), or "
                    "use --weights none for random initialisation"
                ) from None
        model = build(include_top=False, weights=None, input_shape=shape)
    if weights != "none":
        path = Path(weights).expanduser()
        try:
            model.load_weights(str(path))
        except Exception as e:
            reason = " ".join(str(e).split())[:200] or type(e).__name__
            raise ModelError(
                f"cannot load --weights {path} into {key} without its top ({reason}); expected {expected} or a "
                ".weights.h5 saved from the same base"
            ) from None
    return model


def _without_dropout(base: keras.Model) -> keras.Model:
    """The same layers (and weights) with each Dropout replaced by an identity (see the module docstring)."""
    import keras
    from keras import layers

    if not any(isinstance(layer, layers.Dropout) for layer in base.layers):
        return base

    def reuse(layer):
        return layers.Identity(name=layer.name) if isinstance(layer, layers.Dropout) else layer

    return keras.models.clone_model(base, clone_function=reuse)


def base_from_model(model: keras.Model, name: str | None = None) -> keras.Model:
    """A digitlab model's layers up to its head: the input of the final "logits" Dense layer is the output."""
    import keras

    try:
        head = model.get_layer("logits")
    except ValueError:
        raise ModelError(f"model {model.name!r} has no 'logits' layer; is it a digitlab model?") from None
    base = keras.Model(model.input, head.input, name=name or f"{model.name}_base")
    return _without_dropout(base)


def saved_base(path: str) -> keras.Model:
    from digitlab.evaluate import load_model

    file = saved_model_file(path)
    if file is None:
        raise ModelError(f"no saved model at {path} (expected a .keras file or a run directory with model.keras)")
    model = load_model(file).model  # a corrupt file or a non-MNIST input shape is a one-line ModelError
    if tuple(model.input_shape[1:]) != (28, 28, 1):
        raise ModelError(f"{file} takes inputs of shape {model.input_shape[1:]}, not MNIST's (28, 28, 1)")
    return base_from_model(model)


def attach_head(base: keras.Model, num_classes: int, dropout: float, adapter: Callable | None = None) -> keras.Model:
    """image (28, 28, 1) → [adapter] → base (inference mode) → pooling → dropout → Dense(num_classes, "logits")."""
    import keras
    from keras import layers

    x = inputs = keras.Input((28, 28, 1), name="image")
    if adapter is not None:
        x = adapter(x)
    x = base(x, training=False)  # the guide's pattern; frozen BatchNorm is what guarantees it (module docstring)
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name="pool")(x)
    elif len(x.shape) > 2:
        x = layers.Flatten(name="flatten_features")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=f"transfer_{base.name}")


@dataclass
class TransferModel:
    model: keras.Model  # the whole network, image → logits
    base: keras.Model  # the pretrained part (a nested model inside `model`)
    info: dict[str, Any] = field(default_factory=dict)  # what was built, recorded in metrics.json


def build_transfer_model(config: TrainConfig, num_classes: int = 10) -> TransferModel:
    """The base named by `config.base` (keras.applications or a saved digitlab model) under a new head."""
    from digitlab.models import get_spec

    dropout = config.dropout if config.dropout is not None else (get_spec("transfer").default_dropout or 0.0)
    key = application_key(config.base or "")
    if key:
        app = APPLICATIONS[key]
        weights = config.weights or "imagenet"
        size = config.input_size or default_input_size(app, weights)
        base = application_base(key, weights, size)
        model = attach_head(base, num_classes, dropout, lambda x: input_adapter(x, app, size))
        info = {"base": key, "base_kind": "keras.applications", "weights": weights, "input_size": size}
    else:
        base = saved_base(config.base)
        model = attach_head(base, num_classes, dropout)
        info = {"base": str(config.base), "base_kind": "digitlab model", "weights": "saved", "input_size": 28}
        info["base_file"] = str(saved_model_file(config.base).resolve())
    layers_with_weights = weighted_layers(base)
    if config.fine_tune_layers > len(layers_with_weights):
        raise ConfigError(
            f"--fine-tune-layers {config.fine_tune_layers} but the base {info['base']} has only "
            f"{len(layers_with_weights)} layers with weights (BatchNorm not counted)"
        )
    info.update(
        head_dropout=dropout,
        base_layers_with_weights=len(layers_with_weights),
        base_parameters=int(base.count_params()),
    )
    return TransferModel(model, base, info)


# --- freezing -----------------------------------------------------------------------------------------------


def weighted_layers(base: keras.Model) -> list:
    """The base's layers that hold weights, bottom to top, BatchNorm excluded: what --fine-tune-layers counts."""
    from keras import layers

    return [layer for layer in base.layers if layer.weights and not isinstance(layer, layers.BatchNormalization)]


def sublayers(model: keras.Model) -> list:
    """Every layer inside `model`, nested models' layers included."""
    out = []
    for layer in model.layers:
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(sublayers(layer))
    return out


def set_trainable_top(base: keras.Model, k: int) -> list[str]:
    """Freeze the base except its top `k` weighted layers (k = 0: all frozen); BatchNorm always stays frozen.

    Every layer's flag is set explicitly: Keras 3 does not pass `model.trainable = x` on to the sublayers when
    the model's own flag already equals x, and a BatchNormalization left trainable inside a frozen base would
    still normalise with batch statistics and update its moving averages. Returns the unfrozen layers' names;
    the model must be compiled again for this to take effect.
    """
    top = weighted_layers(base)[-k:] if k else []
    base.trainable = bool(top)
    for layer in sublayers(base):
        layer.trainable = any(layer is t for t in top)
    return [layer.name for layer in top]


def unfreeze_all(base: keras.Model) -> None:
    """Back to an ordinary, fully trainable model (how the run saves it: whoever fine-tunes it chooses)."""
    base.trainable = True
    for layer in sublayers(base):
        layer.trainable = True


# --- training: the two phases of `digitlab train --model transfer` ------------------------------------------


def _keep_best(first_epoch: int, keep: list, on_epoch_end, model) -> keras.callbacks.Callback:
    """Keeps the best-on-validation weights of the whole run in memory and calls the epoch hook, with epochs
    numbered across phases."""
    import keras

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
    import keras

    from digitlab.data import make_dataset
    from digitlab.train import HistoryRows, compile_classifier, make_optimizer, progress_verbosity

    model = built.model
    run.history.unlink(missing_ok=True)
    train_ds = make_dataset(splits.x_train, splits.y_train, config.batch_size, shuffle=True, seed=config.seed)
    val_ds = make_dataset(splits.x_val, splits.y_val, 256)
    steps = math.ceil(len(splits.x_train) / config.batch_size)
    plan = [(1, config.epochs, config.lr, 0)]
    if config.fine_tune_layers:
        plan.append((2, config.fine_tune_epochs or config.epochs, config.fine_tune_lr or config.lr / 10,
                     config.fine_tune_layers))  # fmt: skip
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
        model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=callbacks, shuffle=False,
                  verbose=progress_verbosity())  # fmt: skip
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
