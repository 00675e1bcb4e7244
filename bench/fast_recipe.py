"""The fast recipe at one epoch: its settings chosen on validation, then its test accuracy over seeds.

Run (about 35 minutes on an idle 2-core machine, one phase at a time; each phase adds its section to
bench/results/fast_recipe.json and prints its table):

  .venv/bin/python bench/fast_recipe.py --choose           # variants × seeds 100-109, validation only
  .venv/bin/python bench/fast_recipe.py --test             # the frozen recipe, --full-train, seeds 0-9
  .venv/bin/python bench/fast_recipe.py --test --epochs 2 --no-full-train  # `make run`'s default model

--choose trains `--recipe fast --no-full-train` (55,000 images; the 5,000 validation images of split seed 0 held
out, the same for every run) once per seed and variant, all in this one process (timing is not the point), and
records validation accuracy only: the test set is not read into the choice. The variants are the recipe as
carried over from the public one-epoch record (tuomaso/train_mnist_fast) and the recipe as it was before (the
four settings reverted together); `--leave-one-out` adds each setting reverted alone (2.5× the time). The rule,
fixed before the runs: the carried-over settings stay unless reverting them (together, or one alone) gives a
higher mean validation accuracy.

--test runs the whole `digitlab train --recipe fast --seed S` command (all 60,000 images, settings frozen) per
seed, timed from process start to exit, and reports the test accuracy's mean ± sd and how many seeds reach 99.0%,
with the command's fixed costs from each run's metrics.json (`seconds`: data, build, first step (tracing the
train step), epochs, predictions, save, reload check; "start-up" is the rest: interpreter, imports, parsing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "fast_recipe.json"
TARGET = 0.99
CHOICE_SEEDS = range(100, 110)  # never the seeds the test phase reports
TEST_SEEDS = range(10)
VARIANTS = {  # overrides of --recipe fast --no-full-train; the first and the last always run
    "carried over (all)": {},
    "− standardization": {"standardize": False},
    "− fixed order (reshuffled each epoch)": {"order": "reshuffle"},
    "− PyTorch init (he_normal, zero bias)": {"initializer": "he_normal"},
    "− PyTorch OneCycleLR (digitlab onecycle)": {"schedule": "onecycle"},
    "before (the four reverted)": {
        "standardize": False,
        "order": "reshuffle",
        "initializer": "he_normal",
        "schedule": "onecycle",
    },
}
PHASES = ("data", "build", "first_step", "epochs", "predict", "save", "reload_check")


def mean_sd(values: list[float]) -> dict:
    return {
        "n": len(values),
        "mean": round(statistics.mean(values), 5),
        "sd": round(statistics.stdev(values), 5) if len(values) > 1 else None,
        "at_99": sum(v >= TARGET for v in values),
    }


def choose(seeds: range, leave_one_out: bool) -> dict:
    """Validation accuracy of each variant over `seeds` (55,000-image runs, split seed 0 for all)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from digitlab.training.config import resolve_config
    from digitlab.training.train import train_and_evaluate

    table: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:  # seeds outermost: a slow spell of the machine hits every variant alike
            for name, overrides in VARIANTS.items():
                if name.startswith("−") and not leave_one_out:
                    continue
                flags = {"full_train": False, "split_seed": 0, **overrides}
                config = resolve_config(None, "fast", seed=seed, out=f"{tmp}/{len(table)}-{seed}-{hash(name)}", **flags)
                keras.backend.clear_session()
                result = train_and_evaluate(config, log=lambda *_: None)
                row = table.setdefault(name, {"overrides": overrides, "validation_accuracy": []})
                row["validation_accuracy"].append(result.metrics["validation"]["accuracy"])
                print(f"seed {seed} {name}: validation {row['validation_accuracy'][-1]:.4f}", flush=True)
    for row in table.values():
        row["validation"] = mean_sd(row["validation_accuracy"])
    full = table["carried over (all)"]["validation"]["mean"]
    dropped = [n for n in table if n.startswith("−") and table[n]["validation"]["mean"] > full]
    if table["before (the four reverted)"]["validation"]["mean"] > full:
        dropped.append("before (the four reverted)")
    print(f"\n{'variant (validation, 55,000-image runs, 1 epoch)':<46}{'mean':>8}{'sd':>7}{'≥ 99.0%':>9}")
    for name, row in table.items():
        v = row["validation"]
        print(f"{name:<46}{v['mean'] * 100:>7.2f}%{v['sd'] * 100:>6.2f}{v['at_99']:>6}/{v['n']}")
    print(f"reverting improves validation for: {', '.join(dropped) or 'none'} (the rule reverts those)")
    return {"seeds": list(seeds), "split_seed": 0, "variants": table, "dropped": dropped}


def whole_command(seed: int, epochs: int | None, tmp: str, hold_out: bool = False) -> dict:
    """`digitlab train --recipe fast --seed S`, from process start to exit."""
    out = Path(tmp) / f"seed-{seed}"
    command = [sys.executable, "-m", "digitlab", "train", "--recipe", "fast", "--seed", str(seed)]
    command += ["--epochs", str(epochs)] if epochs else []
    command += ["--no-full-train"] if hold_out else []
    start = time.perf_counter()
    subprocess.run([*command, "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())
    laps = metrics.get("seconds", {})
    return {
        "seed": seed,
        "command_seconds": round(seconds, 2),
        "test_accuracy": metrics["test"]["accuracy"],
        "phases": {k: laps.get(k, 0.0) for k in PHASES},
        "startup": round(seconds - sum(laps.values()), 2),  # interpreter, imports, parsing, writing metrics
    }


def test(seeds: range, epochs: int | None, hold_out: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for seed in seeds:
            rows.append(whole_command(seed, epochs, tmp, hold_out))
            r = rows[-1]
            print(f"seed {seed}: test {r['test_accuracy']:.4f} in {r['command_seconds']:.1f} s", flush=True)
    accuracy = mean_sd([r["test_accuracy"] for r in rows])
    seconds = mean_sd([r["command_seconds"] for r in rows])
    phases = {k: round(statistics.median(r["phases"][k] for r in rows), 2) for k in PHASES}
    phases["startup"] = round(statistics.median(r["startup"] for r in rows), 2)
    print(f"\n{'seed':>5}{'test':>9}{'seconds':>9}")
    for r in rows:
        print(f"{r['seed']:>5}{r['test_accuracy'] * 100:>8.2f}%{r['command_seconds']:>9.1f}")
    print(
        f"test accuracy {accuracy['mean'] * 100:.2f}% ± {accuracy['sd'] * 100:.2f} (mean ± sd, {accuracy['n']} seeds), "
        f"{accuracy['at_99']}/{accuracy['n']} at ≥ 99.0%; whole command {seconds['mean']:.1f} ± {seconds['sd']:.1f} s"
    )
    print("median seconds per phase: " + ", ".join(f"{k} {v}" for k, v in phases.items()))
    return {
        "epochs": epochs or 1,
        "full_train": not hold_out,
        "runs": rows,
        "test": accuracy,
        "command_seconds": seconds,
        "phases": phases,
    }


def relu_order(repeats: int = 5, steps: int = 60) -> dict:
    """Train-step time of `fast-cnn` (conv with ReLU, then pool) against the record's order (conv, pool, then
    ReLU: the same function on 4× fewer values), interleaved, batch 256, `steps` steps after a warm-up."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    from keras import layers

    from digitlab.models.zoo import build_model

    def record_order() -> keras.Model:
        x = inputs = keras.Input((28, 28, 1))
        x = layers.ReLU()(layers.MaxPooling2D(2)(layers.Conv2D(24, 5, kernel_initializer="he_normal")(x)))
        x = layers.ReLU()(layers.MaxPooling2D(2)(layers.Conv2D(32, 3, kernel_initializer="he_normal")(x)))
        x = layers.Dense(256, activation="relu")(layers.Flatten()(x))
        return keras.Model(inputs, layers.Dense(10)(x))

    rng = np.random.default_rng(0)
    x = rng.random((256, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    models = {"conv+ReLU → pool (digitlab)": build_model("fast-cnn"), "conv → pool → ReLU (record)": record_order()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():
        model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.train_on_batch(x, y)  # trace
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            times[name].append((time.perf_counter() - start) / steps * 1000)
    result = {
        name: {"median_ms_per_step": round(statistics.median(t), 2), "ms": [round(v, 2) for v in t]}
        for name, t in times.items()
    }
    for name, r in result.items():
        print(f"{name:<32}{r['median_ms_per_step']:>8.2f} ms a step (median of {repeats})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choose", action="store_true", help="the variants on validation (seeds 100-109)")
    parser.add_argument("--leave-one-out", action="store_true", help="with --choose: also revert each setting alone")
    parser.add_argument("--test", action="store_true", help="the frozen recipe's test accuracy (seeds 0-9)")
    parser.add_argument("--epochs", type=int, help="with --test: epochs (default: the recipe's, 1)")
    parser.add_argument(
        "--no-full-train", action="store_true", help="with --test: hold the validation images out (as `make run`)"
    )
    parser.add_argument("--relu-order", action="store_true", help="time ReLU before vs after pooling")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per variant or test (default 10)")
    args = parser.parse_args()
    new: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    if args.choose:
        new["choice"] = choose(range(CHOICE_SEEDS.start, CHOICE_SEEDS.start + args.seeds), args.leave_one_out)
    if args.test:
        key = f"test_{args.epochs or 1}_epoch" + ("_55k" if args.no_full_train else "")
        new[key] = test(range(args.seeds), args.epochs, args.no_full_train)
    if args.relu_order:
        new["relu_order"] = relu_order()
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}  # read last: other phases' sections stay
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, {**results, **new})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
