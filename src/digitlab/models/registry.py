"""The model registry: names, descriptions and defaults, without importing Keras.

Add a model by writing its builder `fn(options) -> keras.Model` in `zoo.py` and one line in `MODELS`.
The CLI lists and validates models from here, so parsing a command never starts TensorFlow; networks are
built by `zoo.build_model`.
"""

from __future__ import annotations

from dataclasses import dataclass

from digitlab.errors import ConfigError

PYTORCH_INIT = "pytorch"  # the --initializer value for PyTorch's default Conv2d/Linear initialisation


@dataclass(frozen=True)
class ModelOptions:
    """Knobs shared by every builder; `None` means the model's own default."""

    dropout: float | None = None  # dropout rate (cnn: before the head; deep-cnn: scales its .2/.3/.4/.5)
    weight_decay: float = 0.0  # L2 penalty on kernels, added to the loss
    initializer: str = "he_normal"  # kernel initializer for conv/dense layers (ReLU nets want He)
    bn_momentum: float = 0.99  # BatchNorm moving-average momentum (low values settle fast in short runs)
    standardize: bool = False  # a Rescaling layer first: (x - MNIST mean) / MNIST std; the input stays [0, 1]


@dataclass(frozen=True)
class ModelSpec:
    """One registered model: how to build it and its defaults.

    Attributes:
      builder: name of the builder function in digitlab.models.zoo.
      description: one line for `digitlab models`.
      keras_loop: False for a raw tf.Module that only the custom loop can train.
      default_dropout: the rate the model trains with when --dropout is not given, in [0, 1) (0: no dropout
        layer). It is the one place this default is decided: `resolve_config` records it in config.json and
        `zoo.build_model` builds with it.
    """

    builder: str
    description: str
    keras_loop: bool = True
    default_dropout: float = 0.0


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec("build_mlp", "Flatten → Dense(128, ReLU) → Dense(10)"),
    "cnn": ModelSpec("build_cnn", "Conv32 → Pool → Conv64 → Pool → Dense(10), dropout before the head", True, 0.5),
    "deep-cnn": ModelSpec(  # --dropout sets the head's rate; the blocks' scale with it (.2/.3/.4 at .5)
        "build_deep_cnn", "5 Conv+BN, 3 pools, dropout .2/.3/.4/.5, Dense(200)+BN", default_dropout=0.5
    ),
    "fast-cnn": ModelSpec("build_fast_cnn", "Conv5×5(24) → Pool → Conv3×3(32) → Pool → Dense(256) → Dense(10)"),
    "bn-cnn": ModelSpec(
        "build_bn_cnn",
        "Deotte's CNN: 2×(Conv3×3, Conv3×3, strided Conv5×5), Conv4×4, BN, dropout .4",
        default_dropout=0.4,
    ),
    "raw-mlp": ModelSpec("build_mlp", "the mlp as a tf.Module of tf.Variables", keras_loop=False),
    "transfer": ModelSpec(
        "build_transfer",
        "a pretrained --base (vgg16, mobilenetv2 or a saved digitlab model), frozen, + a new Dense(10) head; "
        "--fine-tune-layers K then unfreezes its top K layers",
        default_dropout=0.2,
    ),
}


def model_names() -> list[str]:
    """The registered model names, in registry order."""
    return list(MODELS)


def get_spec(name: str) -> ModelSpec:
    """The registry entry of `name`.

    Args:
      name: A model's registry name (`digitlab models` lists them).

    Returns:
      Its ModelSpec.

    Raises:
      ConfigError: no model of that name.
    """
    try:
        return MODELS[name]
    except KeyError as e:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from e
