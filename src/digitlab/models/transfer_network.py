"""Transfer models: a pretrained base under a new head, and the freezing that its two training phases use.

The base is either a `keras.applications` network (VGG16, MobileNetV2) or a saved digitlab model, whose
layers up to its "logits" Dense layer become the base. `digitlab.training.transfer_phases` trains it in the two
phases of the Keras transfer-learning guide (head only on a frozen base, then the top K base layers at a
lower rate); this module builds the network and freezes or unfreezes its layers.

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

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitlab.errors import ConfigError, ModelError, one_line

if TYPE_CHECKING:  # keras is imported lazily: config validation uses this module's name checks
    import keras

# --- the bases ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Application:
    """A keras.applications base and what its input adapter and ImageNet weights need."""

    constructor: str  # keras.applications attribute
    folder: str  # its folder under WEIGHTS_URL (where keras.applications downloads from)
    preprocessing: str  # "caffe": ×255, minus the BGR ImageNet means; "tf": scale to [-1, 1]
    min_size: int  # smallest input side the architecture accepts
    weights_file: str  # the no-top ImageNet file Keras downloads ({size} = its input size)
    imagenet_sizes: tuple[int, ...] = ()  # sizes with their own ImageNet file; () = one file for any size


APPLICATIONS: dict[str, Application] = {
    "vgg16": Application("VGG16", "vgg16", "caffe", 32, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenetv2": Application(
        "MobileNetV2",
        "mobilenet_v2",
        "tf",
        32,
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5",
        imagenet_sizes=(96, 128, 160, 192, 224),
    ),
}
CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)  # keras.applications.imagenet_utils, mode "caffe"
WEIGHTS_CHOICES = ("imagenet", "none")  # or a path to a weights file
DOWNLOAD_TIMEOUT_S = 60  # a stalled connection fails instead of hanging the command
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications"  # keras.applications' own source


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
    """The no-top ImageNet file Keras uses for `app` at input side `size`."""
    # keras.applications falls back to the 224 file when the size has no file of its own
    return app.weights_file.format(size=size if size in app.imagenet_sizes else 224)


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


def _keras_models_dir() -> str:
    return os.path.join(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")), "models")


def imagenet_weights(app: Application, size: int, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """The no-top ImageNet weights file of `app`, downloaded into Keras' cache ($KERAS_HOME/models) if missing.

    Downloaded here rather than by `keras.applications` (whose `get_file` uses `urlretrieve`, which has no
    timeout): `urlopen(timeout=...)` bounds this one connection, where `socket.setdefaulttimeout` would change
    every socket of the process while the download runs. The file lands in the folder Keras itself uses, so a
    copy Keras downloaded before is reused.

    Args:
      app: the base.
      size: its input side (chooses MobileNetV2's file).
      timeout: seconds a connection may stall.

    Returns:
      The local .h5 file.

    Raises:
      OSError: the download failed (urllib's URLError, a timeout) or the cache is not writable.
    """
    import shutil
    import tempfile
    import urllib.request

    name = weights_file_name(app, size)
    folder = Path(_keras_models_dir()).expanduser()
    path = folder / name
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    url = f"{WEIGHTS_URL}/{app.folder}/{name}"
    with (
        urllib.request.urlopen(url, timeout=timeout) as response,
        tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}.", suffix=".part", delete=False) as f,
    ):
        part = Path(f.name)
        try:
            shutil.copyfileobj(response, f)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    os.replace(part, path)  # a half download never passes for the file
    return path


def application_base(key: str, weights: str, size: int) -> keras.Model:
    """The keras.applications network without its classifier, with the requested weights.

    ImageNet weights are Keras' own files, in Keras' cache ($KERAS_HOME/models, default ~/.keras/models; see
    `imagenet_weights`); when the download fails the error says which file to fetch by hand and pass with
    --weights PATH.
    """
    import keras

    app = APPLICATIONS[key]
    build = getattr(keras.applications, app.constructor)
    shape = (size, size, 3)
    expected = weights_file_name(app, size)
    if weights == "imagenet":
        try:
            weights = str(imagenet_weights(app, size))
        except (OSError, ValueError) as e:  # URLError and timeouts are OSErrors
            reason = one_line(e, 300)
            raise ModelError(
                f"the ImageNet weights for {key} could not be downloaded ({reason}); download {expected} "
                f"where there is network and pass it with --weights PATH (or put it in {_keras_models_dir()}), or "
                "use --weights none for random initialisation"
            ) from e
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input_shape.*")  # MobileNetV2 at a non-ImageNet size
        model = build(include_top=False, weights=None, input_shape=shape)
    if weights != "none":
        path = Path(weights).expanduser()
        try:
            model.load_weights(str(path))
        except Exception as e:
            reason = one_line(e)
            raise ModelError(
                f"cannot load --weights {path} into {key} without its top ({reason}); expected {expected} or a "
                ".weights.h5 saved from the same base"
            ) from e
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
    except ValueError as e:
        raise ModelError(f"model {model.name!r} has no 'logits' layer; is it a digitlab model?") from e
    base = keras.Model(model.input, head.input, name=name or f"{model.name}_base")
    return _without_dropout(base)


def saved_base(path: str) -> keras.Model:
    """The base of a saved digitlab model (a .keras file or a run directory): its layers up to "logits".

    Args:
      path: A `.keras` file or a run directory holding `model.keras`.

    Returns:
      A Keras model from the (28, 28, 1) input to the layer before "logits".

    Raises:
      ModelError: no model there, a corrupt file, or a model that does not take (28, 28, 1) input.
    """
    from digitlab.models.foreign import load_keras_file

    file = saved_model_file(path)
    if file is None:
        raise ModelError(f"no saved model at {path} (expected a .keras file or a run directory with model.keras)")
    model = load_keras_file(file)  # a corrupt file is a one-line ModelError
    if tuple(model.input_shape[1:]) != (28, 28, 1):
        raise ModelError(f"{file} takes inputs of shape {model.input_shape[1:]}, not MNIST's (28, 28, 1)")
    return base_from_model(model)


def attach_head(base: keras.Model, num_classes: int, dropout: float, adapter: Callable | None = None) -> keras.Model:
    """Put a classification head on a pretrained base.

    The model: image (28, 28, 1) → [adapter] → base (inference mode) → pooling → dropout → Dense(num_classes,
    "logits").
    """
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
    """A built transfer network: the whole model, its base, and what was built (for metrics.json)."""

    model: keras.Model  # the whole network, image → logits
    base: keras.Model  # the pretrained part (a nested model inside `model`)
    info: dict[str, Any] = field(default_factory=dict)  # what was built, recorded in metrics.json


def build_transfer_model(
    base: str,
    weights: str | None = None,
    input_size: int | None = None,
    dropout: float | None = None,
    fine_tune_layers: int = 0,
    num_classes: int = 10,
) -> TransferModel:
    """The named base (a keras.applications key or a saved digitlab model) under a new head.

    Args mirror `digitlab train --model transfer`: `weights` imagenet | none | a file (keras.applications
    only), `input_size` the side 28×28 is resized to, `dropout` the head's (None: the registry default), and
    `fine_tune_layers` is checked against the base's weighted layers here, before any training.
    """
    from digitlab.models.registry import get_spec

    dropout = dropout if dropout is not None else get_spec("transfer").default_dropout
    key = application_key(base or "")
    if key:
        app = APPLICATIONS[key]
        weights = weights or "imagenet"
        size = input_size or default_input_size(app, weights)
        network = application_base(key, weights, size)
        model = attach_head(network, num_classes, dropout, lambda x: input_adapter(x, app, size))
        info = {"base": key, "base_kind": "keras.applications", "weights": weights, "input_size": size}
    else:
        network = saved_base(base)
        model = attach_head(network, num_classes, dropout)
        info = {"base": str(base), "base_kind": "digitlab model", "weights": "saved", "input_size": 28}
        info["base_file"] = str(saved_model_file(base).resolve())
    layers_with_weights = weighted_layers(network)
    if fine_tune_layers > len(layers_with_weights):
        raise ConfigError(
            f"--fine-tune-layers {fine_tune_layers} but the base {info['base']} has only "
            f"{len(layers_with_weights)} layers with weights (BatchNorm not counted)"
        )
    info.update(
        head_dropout=dropout,
        base_layers_with_weights=len(layers_with_weights),
        base_parameters=int(network.count_params()),
    )
    return TransferModel(model, network, info)


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
