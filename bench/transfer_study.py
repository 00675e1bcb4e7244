"""A one-off study: does a base pretrained on digits 0–4 help to learn 5–9 from few labels?

Run (a few minutes at the smallest scale; the defaults take about an hour on 2 CPU cores):

  .venv/bin/python bench/transfer_study.py --n 10 50 100 500 --seeds 3 --out runs/transfer-experiment

It was `digitlab experiment transfer`; it moved here because it is a study of transfer learning, not something
a user of digitlab runs.

Nothing is downloaded: the "pretrained base" is a `cnn` trained here on the digits 0–4 of MNIST's training
split (cached in the output folder, keyed by its settings). Then, for N labelled training images per class of
the digits 5–9 (relabelled 0–4 for a 5-way head), three methods get the same seeded subset and the same budget
of optimizer steps (Adam, batch 32, 15 passes over the subset but at least 300 steps, which lets the scratch
model converge too; no early stopping and no model selection, since there is no spare labelled data):

(a) frozen:     the pretrained base, frozen, under a new Dropout + Dense(5) head, all steps at `lr` (trained on
                the base's features, computed once: the same result as running the frozen base every step);
(b) fine-tuned: (a) for the first half of the steps, then the whole base unfrozen at `lr / 10` for the rest;
(c) scratch:    the same cnn architecture (same head) from random initialisation, all steps at `lr`.

Test accuracy on the test set's digits 5–9 (4,861 images) is averaged over the seeds (mean and standard
deviation). The test set is used only for these final numbers; pretraining reports its validation accuracy.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.atomic import atomic_write_json, atomic_write_text, save_figure
from digitlab.errors import ConfigError
from digitlab.training.config import require

OLD_DIGITS = (0, 1, 2, 3, 4)  # what the base is pretrained on
NEW_DIGITS = (5, 6, 7, 8, 9)  # what is learnt from N labels per class
METHODS = {
    "frozen": "(a) frozen base + new head",
    "fine-tuned": "(b) + fine-tuning",
    "scratch": "(c) from scratch",
}


@dataclass
class ExperimentConfig:
    """The study's settings, with commented defaults (`parse_args` fills them from flags)."""

    n_per_class: tuple[int, ...] = (10, 50, 100, 500)  # labelled training images per new class (digits 5–9)
    seeds: int = 3  # repetitions with seeds 0..seeds-1 (subset, initialisation, batch order); mean ± std
    epochs: float = 15  # budget: this many passes over the N-image subset (same optimizer steps for every method)
    min_steps: int = 300  # ... but at least this many steps (small N: the subset is cycled through many times)
    batch_size: int = 32  # examples per step
    lr: float = 1e-3  # Adam learning rate of head-only and from-scratch training
    fine_tune_lr: float = 1e-4  # (b)'s second phase, whole base unfrozen: 10× lower than lr
    fine_tune_share: float = 0.5  # share of (b)'s steps spent fine-tuning, after head-only training
    dropout: float = 0.5  # before the head, in every method (the cnn's own rate)
    pretrain_epochs: int = 3  # the cnn on digits 0–4 of the training split (Adam 1e-3, batch 128)
    pretrain_limit: int | None = None  # pretrain on this many images only (smoke tests)
    validation_size: int = 5000  # the usual split; the N-image subsets come from the training part
    out: str = "runs/transfer-experiment"  # results.json, table.md, accuracy_vs_n.png, the cached base
    data_dir: str | None = None  # MNIST location; default $DIGITLAB_DATA or ~/.cache/digitlab

    def validate(self) -> None:
        """Raise ConfigError for the first out-of-range setting."""
        checks = [
            (bool(self.n_per_class) and min(self.n_per_class) >= 1, "--n values must be at least 1"),
            (self.seeds >= 1, f"--seeds must be at least 1, got {self.seeds}"),
            (self.epochs > 0, f"--epochs must be positive, got {self.epochs}"),
            (self.min_steps >= 2, f"--min-steps must be at least 2, got {self.min_steps}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (
                0 < self.fine_tune_lr <= self.lr / 10 * (1 + 1e-9),
                f"--fine-tune-lr must be positive and at most --lr / 10 = {self.lr / 10:g}",
            ),
            (0 < self.fine_tune_share < 1, "fine_tune_share must be in (0, 1)"),
            (self.pretrain_epochs >= 1, f"--pretrain-epochs must be at least 1, got {self.pretrain_epochs}"),
            (self.pretrain_limit is None or self.pretrain_limit >= 10, "--pretrain-limit must be at least 10"),
        ]
        require(checks)


# --- data ---------------------------------------------------------------------------------------------------


def _subset(labels: np.ndarray, digits: tuple[int, ...], n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of `n` random examples of each digit (all of them when n is None), sorted."""
    picked = []
    for d in digits:
        where = np.flatnonzero(labels == d)
        if n is not None:
            if n > len(where):
                raise ConfigError(f"--n {n} is more than the {len(where)} training images of digit {d}")
            where = rng.choice(where, size=n, replace=False)
        picked.append(where)
    return np.sort(np.concatenate(picked))


def _steps_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """An endless, seeded, reshuffled stream of (B, 28, 28, 1) float batches: training is counted in steps."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32))).cache()
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch_size)
    return ds.map(lambda a, b: (tf.reshape(tf.cast(a, tf.float32) / 255.0, (-1, 28, 28, 1)), b)).prefetch(2)


# --- the pretrained base ------------------------------------------------------------------------------------


def pretrain(config: ExperimentConfig, splits, log=print) -> tuple[Path, dict[str, Any]]:
    """A cnn trained on digits 0–4 only, cached as OUT/pretrained-cnn-<key>.keras (key = its settings)."""
    import keras

    from digitlab.models.forward import predict_logits
    from digitlab.models.registry import ModelOptions
    from digitlab.models.zoo import build_cnn
    from digitlab.training.optim import compile_classifier
    from digitlab.training.train import set_seed

    settings = {
        "model": "cnn",
        "digits": list(OLD_DIGITS),
        "epochs": config.pretrain_epochs,
        "limit": config.pretrain_limit,
        "validation_size": config.validation_size,
        "optimizer": "adam",
        "lr": 1e-3,
        "batch_size": 128,
        "seed": 0,
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(config.out) / f"pretrained-cnn-{key}.keras"
    info_path = path.with_suffix(".json")
    if path.is_file() and info_path.is_file():
        log(f"pretrained base: {path} (cached)")
        return path, json.loads(info_path.read_text())

    rng = np.random.default_rng(0)
    train = _subset(splits.y_train, OLD_DIGITS, None, rng)
    if config.pretrain_limit is not None and config.pretrain_limit < len(train):
        train = np.sort(rng.choice(train, size=config.pretrain_limit, replace=False))
    val = _subset(splits.y_val, OLD_DIGITS, None, rng)
    log(f"pretraining the base: cnn on digits 0–4, {len(train):,} training images, {config.pretrain_epochs} epochs")
    set_seed(0, deterministic=True)
    model = build_cnn(ModelOptions(dropout=0.5))
    compile_classifier(model, keras.optimizers.Adam(1e-3))
    start = time.perf_counter()
    x = (splits.x_train[train] / np.float32(255.0))[..., None]
    model.fit(x, splits.y_train[train].astype(np.int32), batch_size=128, epochs=config.pretrain_epochs, verbose=2)
    val_accuracy = float(np.mean(predict_logits(model, splits.x_val[val]).argmax(1) == splits.y_val[val]))
    info = {
        "settings": settings,
        "train_images": len(train),
        "validation_accuracy_digits_0_4": val_accuracy,
        "seconds": round(time.perf_counter() - start, 1),
    }
    log(f"pretrained base: validation accuracy on digits 0–4 {val_accuracy:.4f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.part.keras")  # Keras wants the suffix; renamed when complete
    model.save(tmp)
    os.replace(tmp, path)
    atomic_write_json(info_path, info)
    return path, info


# --- the three methods --------------------------------------------------------------------------------------


def _compile_fit(model, ds, steps: int, lr: float) -> None:
    import keras

    from digitlab.training.optim import compile_classifier

    compile_classifier(model, keras.optimizers.Adam(lr), accuracy=False)
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)  # the stream is shuffled, seeded


def _fit_head_on_features(model, base, x: np.ndarray, y: np.ndarray, steps: int, lr: float, batch: int, seed: int):
    """Train the head of `model` on the frozen base's features, computed once.

    Exactly what training the whole model with a frozen base does (the base has no Dropout or BatchNorm in
    training mode, so its features do not change), without running the base at every step: the Keras
    transfer-learning guide's "feature extraction" shortcut. The head layers are shared with `model`.
    """
    import keras
    import tensorflow as tf

    features = base.predict((x / np.float32(255.0))[..., None], batch_size=512, verbose=0)
    inputs = keras.Input(features.shape[1:])
    names = {layer.name for layer in model.layers}
    hidden = model.get_layer("head_dropout")(inputs) if "head_dropout" in names else inputs
    head = keras.Model(inputs, model.get_layer("logits")(hidden))
    ds = tf.data.Dataset.from_tensor_slices((features, y.astype(np.int32))).cache()
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch).prefetch(2)
    _compile_fit(head, ds, steps, lr)


def train_method(
    method: str, config: ExperimentConfig, pretrained: Path, x: np.ndarray, y: np.ndarray, steps: int, seed: int
):
    """Build and train one method's model on (x, y) within `steps` optimizer steps; returns the model."""
    from digitlab.models import transfer_network as transfer
    from digitlab.models.registry import ModelOptions
    from digitlab.models.zoo import build_cnn
    from digitlab.training.train import set_seed

    set_seed(seed, deterministic=True)  # same head initialisation for (a) and (b); the scratch model's own for (c)
    classes = len(NEW_DIGITS)
    if method == "scratch":
        base = transfer.base_from_model(build_cnn(ModelOptions(dropout=config.dropout)), name="scratch_base")
        model = transfer.attach_head(base, classes, config.dropout)
        _compile_fit(model, _steps_dataset(x, y, config.batch_size, seed), steps, config.lr)
        return model
    base = transfer.saved_base(str(pretrained))  # a fresh copy each run: (b) changes the base's weights
    model = transfer.attach_head(base, classes, config.dropout)
    transfer.set_trainable_top(base, 0)
    head_steps = steps if method == "frozen" else max(1, round(steps * (1 - config.fine_tune_share)))
    _fit_head_on_features(model, base, x, y, head_steps, config.lr, config.batch_size, seed)
    if method == "fine-tuned":
        transfer.set_trainable_top(base, len(transfer.weighted_layers(base)))
        _compile_fit(model, _steps_dataset(x, y, config.batch_size, seed), steps - head_steps, config.fine_tune_lr)
    return model


def budget(config: ExperimentConfig, n: int) -> int:
    """Optimizer steps each method gets at N per class: `epochs` passes over the subset, at least `min_steps`."""
    return max(config.min_steps, math.ceil(config.epochs * n * len(NEW_DIGITS) / config.batch_size))


# --- the experiment -----------------------------------------------------------------------------------------


@dataclass
class ExperimentResult:
    """Where the study wrote, what it measured (results.json) and its Markdown table."""

    out_dir: Path
    results: dict[str, Any]
    table: str


def run_experiment(config: ExperimentConfig, log=print) -> ExperimentResult:
    """Pretrain (or reuse) the base, run every method × N × seed, write results.json, table.md and the plot."""
    from tqdm import tqdm

    from digitlab.data.mnist import load_splits
    from digitlab.models.forward import predict_logits

    config.validate()
    out = Path(config.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out} is not writable ({e.strerror or e})") from e
    splits = load_splits(config.data_dir, config.validation_size, seed=0)
    pretrained, pretrain_info = pretrain(config, splits, log)

    test = _subset(splits.y_test, NEW_DIGITS, None, np.random.default_rng(0))
    x_test, y_test = splits.x_test[test], splits.y_test[test] - NEW_DIGITS[0]
    runs: list[dict[str, Any]] = []
    total = len(config.n_per_class) * config.seeds * len(METHODS)
    start = time.perf_counter()
    with tqdm(total=total, desc="transfer experiment", unit="run", disable=None) as bar:  # bar on terminals only
        for n in config.n_per_class:
            for seed in range(config.seeds):
                rng = np.random.default_rng([seed, n])  # the same subset for all three methods (paired)
                subset = _subset(splits.y_train, NEW_DIGITS, n, rng)
                x, y = splits.x_train[subset], splits.y_train[subset] - NEW_DIGITS[0]
                for method in METHODS:
                    bar.set_postfix_str(f"N={n} seed={seed} {method}")
                    t0 = time.perf_counter()
                    model = train_method(method, config, pretrained, x, y, budget(config, n), seed)
                    accuracy = float(np.mean(predict_logits(model, x_test).argmax(1) == y_test))
                    runs.append(
                        {
                            "method": method,
                            "n_per_class": n,
                            "seed": seed,
                            "test_accuracy": accuracy,
                            "seconds": round(time.perf_counter() - t0, 2),
                        }
                    )
                    bar.update()
            done = [r for r in runs if r["n_per_class"] == n]
            log(
                f"N={n}: "
                + "  ".join(
                    f"{m} {100 * np.mean([r['test_accuracy'] for r in done if r['method'] == m]):.2f}%" for m in METHODS
                )
            )

    summary = summarise(runs, config)
    results = {
        "experiment": "transfer: pretrain cnn on digits 0–4, learn 5–9 from N labelled images per class",
        "config": asdict(config),
        "budget": (
            f"every method: the same number of Adam steps (batch {config.batch_size}, constant rate) "
            f"on the same seeded subset: {config.epochs:g} passes over it, at least {config.min_steps} steps "
            f"({', '.join(f'N={n}: {budget(config, n)}' for n in config.n_per_class)}); (a) and (c) at lr "
            f"{config.lr:g}; (b) {100 * (1 - config.fine_tune_share):.0f}% of the steps head-only at {config.lr:g}, "
            f"then the whole base unfrozen at {config.fine_tune_lr:g}"
        ),
        "pretrain": pretrain_info,
        "test_images": len(test),
        "summary": summary,
        "runs": runs,
        "seconds": round(time.perf_counter() - start, 1),
    }
    smallest = summary[0]
    results["transfer_gain_at_smallest_n_points"] = {
        m: round(100 * (smallest[m]["mean"] - smallest["scratch"]["mean"]), 2) for m in ("frozen", "fine-tuned")
    }
    table = format_table(summary)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "table.md", table + "\n")
    plot(summary, out / "accuracy_vs_n.png")
    return ExperimentResult(out, results, table)


def summarise(runs: list[dict[str, Any]], config: ExperimentConfig) -> list[dict[str, Any]]:
    """One row per N: mean and standard deviation (over seeds) of each method's test accuracy."""
    rows = []
    for n in config.n_per_class:
        row: dict[str, Any] = {"n_per_class": n, "labelled_images": n * len(NEW_DIGITS)}
        for method in METHODS:
            acc = [r["test_accuracy"] for r in runs if r["n_per_class"] == n and r["method"] == method]
            row[method] = {"mean": float(np.mean(acc)), "std": float(np.std(acc)), "seeds": acc}
        rows.append(row)
    return rows


def format_table(summary: list[dict[str, Any]]) -> str:
    """Markdown: test accuracy on digits 5–9 in %, mean ± standard deviation over the seeds."""
    header = ["N per class", "labelled images", *METHODS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in summary:
        cells = [f"{100 * row[m]['mean']:.2f} ± {100 * row[m]['std']:.2f}" for m in METHODS]
        lines.append(f"| {row['n_per_class']} | {row['labelled_images']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(summary: list[dict[str, Any]], path: Path) -> Path:
    """Test accuracy against N (log scale) per method, mean ± std over seeds, as a PNG at `path`; returns it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ns = [row["n_per_class"] for row in summary]
    for (method, label), marker in zip(METHODS.items(), "os^", strict=True):
        means = [100 * row[method]["mean"] for row in summary]
        stds = [100 * row[method]["std"] for row in summary]
        ax.errorbar(ns, means, yerr=stds, marker=marker, capsize=4, label=label)
    ax.set_xscale("log")
    ax.set_xticks(ns)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("labelled training images per class (digits 5–9)")
    ax.set_ylabel("test accuracy on digits 5–9 (%)")
    ax.set_title("Transfer from a cnn pretrained on digits 0–4 (mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def parse_args(argv: list[str] | None = None) -> ExperimentConfig:
    """The study's settings from the command line (every flag has the default of `ExperimentConfig`).

    Args:
      argv: the arguments (default: sys.argv[1:]).

    Returns:
      A validated ExperimentConfig.

    Raises:
      ConfigError: a setting is out of range.
    """
    import argparse

    p = argparse.ArgumentParser(
        description="Pretrain a cnn on digits 0–4 (cached in --out), then learn 5–9 from N labelled images per "
        "class with (a) the frozen base + a new head, (b) the same plus fine-tuning, (c) the cnn from scratch; "
        "prints and saves the test accuracy table and a plot."
    )
    p.add_argument("--n", type=int, nargs="+", default=[10, 50, 100, 500], help="N per class (default 10 50 100 500)")
    p.add_argument("--seeds", type=int, default=3, help="repetitions per N, averaged (default 3)")
    p.add_argument("--epochs", type=float, default=15, help="budget: passes over the N-image subset (default 15)")
    p.add_argument("--min-steps", type=int, default=300, help="budget: at least this many steps (default 300)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size of every method (default 32)")
    p.add_argument("--pretrain-epochs", type=int, default=3, help="epochs of the cnn on digits 0–4 (default 3)")
    p.add_argument("--pretrain-limit", type=int, default=None, help="pretrain on this many 0–4 images (default all)")
    p.add_argument("--out", default="runs/transfer-experiment", help="output folder (default runs/transfer-experiment)")
    p.add_argument("--data-dir", default=None, help="MNIST location (default $DIGITLAB_DATA or ~/.cache/digitlab)")
    args = p.parse_args(argv)
    config = ExperimentConfig(
        n_per_class=tuple(args.n),
        seeds=args.seeds,
        epochs=args.epochs,
        min_steps=args.min_steps,
        batch_size=args.batch_size,
        pretrain_epochs=args.pretrain_epochs,
        pretrain_limit=args.pretrain_limit,
        out=args.out,
        data_dir=args.data_dir,
    )
    config.validate()  # before importing TensorFlow
    return config


def main(argv: list[str] | None = None) -> int:
    """Run the study and print its table; returns the exit status."""
    config = parse_args(argv)
    result = run_experiment(config)
    print(f"test accuracy (%) on digits 5–9, mean ± std over {config.seeds} seeds; {result.results['budget']}")
    print(result.table)
    gain = ", ".join(f"{m} {v:+.2f}" for m, v in result.results["transfer_gain_at_smallest_n_points"].items())
    print(f"transfer vs scratch at N={config.n_per_class[0]}: {gain} points")
    files = ", ".join(str(result.out_dir / name) for name in ("results.json", "table.md", "accuracy_vs_n.png"))
    print(f"saved: {files}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
