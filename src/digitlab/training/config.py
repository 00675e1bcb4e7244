"""Training settings: one typed dataclass with commented defaults, and named recipes that fill it in.

Precedence: an explicit flag beats the recipe, the recipe beats the model's defaults. `resolve_config`
returns a complete, validated `TrainConfig`; everything in it goes into the run's `config.json`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitlab.data.augment import STYLES
from digitlab.data.mnist import DEFAULT_VALIDATION_SIZE
from digitlab.errors import ConfigError
from digitlab.models.contract import MNIST_MEAN, MNIST_STD
from digitlab.models.registry import MODELS, PYTORCH_INIT, ModelOptions, get_spec
from digitlab.models.transfer_network import (
    APPLICATIONS,
    WEIGHTS_CHOICES,
    application_key,
    default_input_size,
    saved_model_file,
)
from digitlab.settings import (
    AT_LEAST_1,
    NON_NEGATIVE,
    POSITIVE,
    UNIT_HALF_OPEN,
    UNIT_OPEN,
    check_fields,
    default_text,
    flag_name,
    setting,
    shown,
)
from digitlab.training.recipes import RECIPES

LOOPS = ("fit", "custom")
STRATEGIES = ("auto", "default", "mirrored", "multi-worker")
SCHEDULES = ("constant", "onecycle", "cosine", "torch-onecycle")
ORDERS = ("reshuffle", "fixed")
KEEP = ("best", "last")
OPTIMIZERS = ("adam", "adamw", "sgd")


TRANSFER = "transfer learning (--model transfer)"  # the help section of the transfer settings


@dataclass
class TrainConfig:
    """Every setting of a training run, with its default; build one with `resolve_config`.

    Each field is declared once (`fields.setting`): its flag, help text and range come from here, and the help's
    defaults (the recipes' values included) are generated from the field and `RECIPES`. `settings()` is what
    config.json records and what decides whether two runs are the same run.
    """

    model: str = "cnn"  # registry name (--model, declared by the parser with the registry's names)
    recipe: str = "default"  # named hyper-parameter set, see RECIPES
    epochs: int = setting(12, "maximum epochs; early stopping on validation loss may end sooner", check=AT_LEAST_1)
    batch_size: int = setting(128, "global batch size (split across replicas under tf.distribute)", check=AT_LEAST_1)
    lr: float = setting(1e-3, "(peak) learning rate", check=POSITIVE)
    schedule: str = setting(
        "constant",
        "learning-rate schedule: constant, onecycle (warm up then anneal), cosine (decay to 0) or torch-onecycle",
        choices=SCHEDULES,
    )
    optimizer: str = setting("adam", "adam, adamw or sgd (Nesterov, momentum 0.9)", choices=OPTIMIZERS)
    dropout: float | None = setting(None, "dropout rate", check=UNIT_HALF_OPEN, unset="the model's")
    weight_decay: float = setting(0.0, "L2 penalty on kernels; with adamw its decoupled decay", check=NON_NEGATIVE)
    beta_1: float = setting(0.9, "Adam/AdamW first-moment decay", check=UNIT_HALF_OPEN)
    beta_2: float = setting(0.999, "Adam/AdamW second-moment decay", check=UNIT_HALF_OPEN)
    standardize: bool = setting(
        False, f"(x − {MNIST_MEAN}) / {MNIST_STD} by a layer inside the model; input stays [0, 1]"
    )
    order: str = setting(
        "reshuffle",
        "reshuffle: a new seeded order each epoch | fixed: one seeded permutation made once",
        choices=ORDERS,
    )
    augment: bool = setting(False, "one random affine warp per training image: rotation, zoom, shear, shift")
    handwriting: bool = setting(
        False,
        "augment as people write and cameras see: warp, elastic, stroke width, outlines, blur, noise, grey or "
        "uneven background, stray strokes (data/augment.py Handwriting); replaces --augment",
    )
    handwriting_style: str = setting(
        "default", "the handwriting augmentation's ranges (data/augment.py STYLES)", choices=tuple(STYLES)
    )
    served_copies: bool = setting(
        False,
        "train on each training digit twice: as it is, and drawn large then passed through the preprocessing "
        "that serves drawings (data/served.py); doubles the images per epoch",
    )
    ema: float = setting(
        0.0, "average the weights with this momentum, e.g. 0.999; the run keeps the average", check=UNIT_HALF_OPEN
    )
    outlier_exposure: float = setting(
        0.0,
        "Outlier Exposure: one generated non-digit per ten digits, its loss LAMBDA x the cross-entropy to the "
        "uniform distribution, e.g. 0.5 (0 = off; Keras fit only; training/optim.py)",
        check=NON_NEGATIVE,
        metavar="LAMBDA",
    )
    keep: str = setting(
        "best", "best: the epoch with the lowest validation loss | last: the final (or averaged) weights", choices=KEEP
    )
    full_train: bool = setting(
        False,
        "train on all 60k images with the recipe's settings as frozen from validation (needs --keep last; "
        "--no-full-train holds out validation)",
    )
    split_seed: int | None = setting(None, "seed of the validation split", unset="--seed")
    initializer: str = setting(
        "he_normal",
        "kernel initializer, e.g. he_normal, glorot_uniform, or pytorch (PyTorch's default for weights and biases, "
        "as the public one-epoch record)",
    )
    bn_momentum: float = setting(0.99, "BatchNorm moving-average momentum", check=UNIT_OPEN)
    clip_norm: float | None = setting(None, "clip gradients to this global norm", check=POSITIVE, unset="off")
    patience: int = setting(
        3, "epochs without validation-loss improvement before stopping, 0 = off", check=NON_NEGATIVE
    )
    seed: int = setting(0, "seed of the weights, the data order, dropout and the validation split")
    validation_size: int = setting(
        DEFAULT_VALIDATION_SIZE,
        "training images held out for validation",
        check=(lambda v: 0 < v < 60000, "between 1 and 59999"),
    )
    limit: int | None = setting(
        None, "train on this many examples only, for smoke tests", check=AT_LEAST_1, unset="all"
    )
    loop: str = setting(
        "fit", "fit (Keras model.fit) or custom (GradientTape, any tf.distribute strategy)", choices=LOOPS
    )
    strategy: str = setting("auto", "tf.distribute strategy for the custom loop", choices=STRATEGIES)
    deterministic: bool = False  # TF op determinism: same seed → same weights (the CLI turns it on; see set_seed)
    out: str | None = setting(
        None, "run directory; an unfinished identical run resumes", unset="runs/<model>-<timestamp>"
    )
    data_dir: str | None = None  # MNIST location (--data-dir, shared by every command); default $DIGITLAB_DATA
    base: str | None = setting(
        None,
        "the pretrained base: vgg16 or mobilenetv2 (keras.applications, any case), or a saved digitlab model (a "
        ".keras file or a run directory), whose layers up to its logits layer are used",
        metavar="NAME_OR_PATH",
        group=TRANSFER,
        unset="none; required for transfer",
    )
    weights: str | None = setting(
        None,
        "keras.applications base weights: imagenet (downloaded by Keras into ~/.keras/models), none (random init) "
        "or a local weights file such as vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        metavar="imagenet|none|PATH",
        group=TRANSFER,
        unset="imagenet",
    )
    input_size: int | None = setting(
        None,
        "keras.applications bases: the side 28×28 is resized to, at least 32",
        group=TRANSFER,
        unset="32; MobileNetV2 with imagenet weights 96, the smallest size it has weights for",
    )
    fine_tune_layers: int = setting(
        0,
        "after the head-only phase, unfreeze the top K layers of the base that hold weights (convolutions and dense "
        "layers; BatchNorm layers stay frozen and are not counted) and train again; 0: head only",
        check=NON_NEGATIVE,
        metavar="K",
        group=TRANSFER,
    )
    fine_tune_epochs: int | None = setting(
        None, "epochs of the fine-tuning phase", check=AT_LEAST_1, group=TRANSFER, unset="--epochs"
    )
    fine_tune_lr: float | None = setting(
        None, "learning rate of the fine-tuning phase, at most --lr / 10", group=TRANSFER, unset="--lr / 10"
    )
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes recorded with the run

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain JSON-ready values."""
        return dataclasses.asdict(self)

    def settings(self) -> dict[str, Any]:
        """What defines the run: same settings, same run.

        Everything but where it is written, free-form notes and `deterministic` (how reproducibly it trains,
        recorded beside the settings). The transfer settings appear only for --model transfer, so other runs'
        config.json stay as they were.

        Returns:
          The settings, JSON-ready.
        """
        skip = {"out", "extra", "deterministic"} | (set() if self.model == "transfer" else set(TRANSFER_FIELDS))
        return {k: v for k, v in self.to_dict().items() if k not in skip}


TRANSFER_FIELDS = ("base", "weights", "input_size", "fine_tune_layers", "fine_tune_epochs", "fine_tune_lr")


def effective_settings(recorded: dict[str, Any]) -> dict[str, Any]:
    """A run's recorded settings in today's terms, to compare them with a new run's `settings()`.

    Runs written before a setting existed lack it, and older runs record `"dropout": null` for the model's
    default: both mean the value a run of today gets by default, so they are filled in.

    Args:
      recorded: config.json's `settings` (any schema version).

    Returns:
      A new dict: the recorded values over today's defaults, the dropout made explicit.
    """
    model = recorded.get("model", "cnn")
    values = {**TrainConfig(model=model).settings(), **recorded}
    if values.get("dropout") is None and model in MODELS:
        values["dropout"] = get_spec(model).default_dropout
    return values


def default_help(f: dataclasses.Field) -> str:
    """A TrainConfig field's defaults as its flag's help gives them: its own, per model, and per recipe.

    Generated from the field and `RECIPES`, so the help cannot drift from what a run gets.

    Args:
        f: One of `dataclasses.fields(TrainConfig)`.

    Returns:
        E.g. "default 12; model mlp 15, fast-cnn 4; recipe fast 1, robust 3, best 15".
    """
    parts = [default_text(f)]
    per_model = [f"{m} {shown(v[f.name])}" for m, v in RECIPES["default"].per_model.items() if f.name in v]
    recipes = [
        f"{r} {shown(v.settings[f.name])}"
        for r, v in RECIPES.items()
        if f.name in v.settings and v.settings[f.name] != f.default
    ]
    if per_model:
        parts.append("model " + ", ".join(per_model))
    if recipes:
        parts.append("recipe " + ", ".join(recipes))
    return "; ".join(parts)


def resolve_config(model: str | None = None, recipe: str = "default", **flags: Any) -> TrainConfig:
    """Merge model defaults, the recipe, and explicit flags (those not None), then validate.

    Args:
      model: a registry name (default: the recipe's model, else cnn).
      recipe: a name in RECIPES.
      **flags: TrainConfig fields; None means "not given".

    Returns:
      A complete TrainConfig holding the effective values (e.g. the model's default dropout, not None).

    Raises:
      ConfigError: an unknown recipe, model or setting, or a value out of range.
    """
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}")
    chosen = RECIPES[recipe]
    model = model or chosen.default_model or "cnn"
    spec = get_spec(model)
    values: dict[str, Any] = {"model": model, "recipe": recipe}
    values.update(chosen.settings)
    values.update(chosen.per_model.get(model, {}))
    if not spec.keras_loop:
        values["loop"] = "custom"
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in flags.items():
        if key not in known:
            raise ConfigError(f"unknown setting {key!r}")
        if value is not None:
            values[key] = value
    if values.get("dropout") is None:  # recorded as the value used, never as "the default"
        values["dropout"] = spec.default_dropout
    complete_settings(values)
    config = TrainConfig(**values)
    validate(config)
    return config


def require(checks: list[tuple[bool, str]]) -> None:
    """Raise ConfigError with the message of the first (condition, message) pair whose condition is false.

    Args:
      checks: (condition, message) pairs, checked in order.

    Raises:
      ConfigError: that message.
    """
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def validate(config: TrainConfig) -> None:
    """Check every setting.

    Args:
      config: The settings to check.

    Raises:
      ConfigError: a one-line message naming the first out-of-range setting and its allowed range.
    """
    get_spec(config.model)
    check_fields(config)  # each setting's own range and choices, declared with the field
    require(
        [
            (
                not config.outlier_exposure or (config.loop == "fit" and config.model != "transfer"),
                "--outlier-exposure trains with Keras fit on a digitlab model: not with --loop custom or --model "
                "transfer",
            ),
            (
                not config.ema or config.keep == "last",
                "--ema keeps an average of the weights; --keep best would replace it with one epoch's raw weights: "
                "add --keep last",
            ),
            (
                not config.full_train or (config.keep == "last" and config.patience == 0),
                "--full-train has no held-out images to choose an epoch on: it needs --keep last and --patience 0 "
                "(recipe best sets both)",
            ),
        ]
    )
    if config.model in ("raw-mlp", "transfer") and (config.standardize or config.initializer == PYTORCH_INIT):
        raise ConfigError(
            f"--standardize and --initializer {PYTORCH_INIT} apply to the zoo's Keras models, not {config.model}"
        )
    if not get_spec(config.model).keras_loop and config.loop != "custom":
        raise ConfigError(f"model {config.model!r} is a raw tf.Module: train it with --loop custom")
    check_transfer_settings(config)
    if config.loop == "fit" and config.strategy == "multi-worker":
        raise ConfigError(
            "Keras 3 model.fit does not run under MultiWorkerMirroredStrategy (keras-team/keras#20585); "
            "use --loop custom"
        )
    if config.out is not None:
        out = Path(config.out).absolute()
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {config.out} exists and is not a directory")
        parent = next(p for p in [out, *out.parents] if p.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigError(f"--out {config.out} is not writable ({parent} is not a writable directory)")


def model_options(config: TrainConfig) -> ModelOptions:
    """The builder's options for `config` (an L2 penalty only when the optimizer does not decay weights itself)."""
    l2 = 0.0 if config.optimizer == "adamw" else config.weight_decay  # AdamW decays the weights itself
    return ModelOptions(config.dropout, l2, config.initializer, config.bn_momentum, config.standardize)


# --- --model transfer: defaults that depend on other settings, and the settings' checks ---------------------


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


def check_transfer_settings(config: TrainConfig) -> None:
    """Check the transfer settings (called by `validate`): given only for --model transfer, and usable there.

    Args:
      config: The settings to check.

    Raises:
      ConfigError: a transfer setting given for another model, or out of range, or an unusable base.
    """
    _transfer_flags_match_model(config)
    if config.model != "transfer":
        return
    names = ", ".join(APPLICATIONS)
    if not config.base:
        raise ConfigError(
            f"--model transfer needs --base: {names} (keras.applications) or a saved digitlab model "
            "(a .keras file or a run directory)"
        )
    if config.loop != "fit":
        raise ConfigError("--model transfer trains with --loop fit (its two phases are model.fit calls)")
    _check_base(config, names)
    _check_fine_tune(config)


def _transfer_flags_match_model(config: TrainConfig) -> None:
    """Transfer flags only with --model transfer, and none of the settings its phases do not support."""
    # given: set at all (fine_tune_layers: above its default 0, which means "head only")
    given = [
        flag_name(name)
        for name in TRANSFER_FIELDS
        if (bool(getattr(config, name)) if name == "fine_tune_layers" else getattr(config, name) is not None)
    ]
    if config.model == "transfer":
        unsupported = (
            ("--augment", config.augment),
            ("--handwriting", config.handwriting),
            ("--ema", config.ema),
            ("--keep last", config.keep == "last"),
            ("--full-train", config.full_train),
        )
        new = [flag for flag, on in unsupported if on]
        if new:
            raise ConfigError(f"{', '.join(new)} not supported with --model transfer (its phases keep the best epoch)")
    elif given:
        raise ConfigError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to --model transfer")


def _check_base(config: TrainConfig, names: str) -> None:
    """A keras.applications base with usable weights and input size, or a saved digitlab model."""
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
        return
    app = APPLICATIONS[key]
    weights = config.weights or "imagenet"
    if weights not in WEIGHTS_CHOICES and not Path(weights).expanduser().is_file():
        raise ConfigError(f"--weights must be imagenet, none or a weights file; no file at {weights}")
    if config.input_size is not None and config.input_size < app.min_size:
        raise ConfigError(f"--input-size for {key} must be at least {app.min_size}, got {config.input_size}")


def _check_fine_tune(config: TrainConfig) -> None:
    """Phase-2 settings only with --fine-tune-layers K > 0, and a rate at most --lr / 10."""
    if config.fine_tune_layers == 0:
        if config.fine_tune_epochs is not None or config.fine_tune_lr is not None:
            raise ConfigError("--fine-tune-epochs and --fine-tune-lr need --fine-tune-layers K > 0")
        return
    if config.fine_tune_lr is not None and not 0 < config.fine_tune_lr <= config.lr / 10 * (1 + 1e-9):
        raise ConfigError(
            f"--fine-tune-lr must be positive and at most --lr / 10 = {config.lr / 10:g} (a high rate on an "
            f"unfrozen pretrained base destroys its features), got {config.fine_tune_lr:g}"
        )
