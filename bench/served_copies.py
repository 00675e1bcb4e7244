"""Served copies weighed over seeds on validation: does `--served-copies` help drawn digits at no cost?

Run: .venv/bin/python bench/served_copies.py [--budget-min 40] [--test]   (resumable: one JSON line per finished run)

Each (variant, seed) of `VARIANTS` × `SEEDS` is `make run`'s recipe (`--recipe fast --epochs 2 --no-full-train`)
trained by the whole `digitlab train` command, with or without `--served-copies`, kept in `runs/served/`
(git-ignored), then scored on validation only:

- clean validation accuracy (the run's metrics.json);
- drawn validation digits answered right by the model after the preprocessing: 1,500 validation digits
  (`x_val[2400:3900]`, none the refusal fits or scores on) drawn in each style of `synthetic.render` and as a
  number of one (`synthetic.number_image`), through `to_mnist_28x28`. The copies are drawn by their own renderer
  (`data/served.py`), not by these;
- the refusal on validation as `bench/outlier_exposure.py` measures it (non-digits refused at the threshold that
  refuses 0.5% of drawn validation digits, and drawn digits refused at the run's own threshold).

Lines are keyed by the refusal's schema (`digitlab.inference.refusal.SCHEMA`): when the refusal changes, the runs
are measured again (a model still in `runs/served/` is not trained again; its line keeps the training time measured
when it was trained). `RULE`, written before the runs, decides; the summary is bench/results/served_copies.json,
the lines bench/results/served_copies_runs.jsonl. `--test` (after the choice): both variants with seeds
`TEST_SEEDS`, each scored once on the test set, on the real digits of `../shared/real-digits` and `real-digits-2`
(evaluation only) and on the refusal benchmark (`bench/refusal.py`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import commit_measured, write_results  # beside this file (a script's folder is on sys.path)
from outlier_exposure import _mean_sd
from outlier_exposure import measure as refusal_on_validation

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "served_copies_runs.jsonl"
SUMMARY = RESULTS / "served_copies.json"
RUN_DIR = Path(__file__).resolve().parents[1] / "runs" / "served"
VARIANTS = {"off": [], "served copies": ["--served-copies"]}
SEEDS = (100, 101, 102)
TEST_SEEDS = (0, 1, 2)
RECIPE = ["--recipe", "fast", "--epochs", "2", "--no-full-train"]
DRAWN = slice(2400, 3900)
RULE = {
    "adopt": "served copies, if their mean drawn-digit accuracy beats off's by >= 0.3 point",
    "clean": "with mean clean validation accuracy no more than 0.1 point below off's",
    "refusal": "and mean non-digits refused at 0.5% of drawn digits no more than 2 points below off's",
}
SWITCH_RULE = {  # the test phase's check before `make run` trains with served copies, as the default-model search's
    "test accuracy": "mean no lower than off's",
    "real digits": "mean accuracy through the whole answer path no lower than off's on each shared set",
    "drawn digits refused": "mean at most 0.5% of the refusal benchmark's drawn test digits (the issue's bar)",
}


def train(variant: str, seed: int, phase: str = "") -> tuple[Path, float | None]:
    """Train one (variant, seed) with the whole command: (its run, seconds from process start; None if kept)."""
    out = RUN_DIR / f"{phase}{variant.replace(' ', '-')}-seed{seed}"
    if (out / "metrics.json").exists():
        return out, None
    started = time.perf_counter()
    command = [sys.executable, "-m", "digitlab", "train", *RECIPE, *VARIANTS[variant], "--seed", str(seed)]
    subprocess.run([*command, "--out", str(out)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out, round(time.perf_counter() - started, 1)


def drawn_accuracy(run: Path) -> dict[str, float]:
    """The model's accuracy on validation digits drawn in each style and preprocessed, and their mean."""
    from digitlab.data.mnist import splits_for
    from digitlab.data.preprocess import to_mnist_28x28
    from digitlab.data.synthetic import NUMBER_STYLES, STYLES, number_image, render
    from digitlab.models.forward import predict_logits
    from digitlab.models.saved import load_model

    loaded = load_model(run)
    splits = splits_for(loaded.settings)
    x, y = splits.x_val[DRAWN], splits.y_val[DRAWN]

    def number(i, d):
        return number_image([d], np.random.default_rng(i), "apart", NUMBER_STYLES[i % len(NUMBER_STYLES)])[0]

    drawers = {style: (lambda i, d, s=style: render(d, s, np.random.default_rng(i))) for style in STYLES}
    out = {}
    for style, draw in {**drawers, "number": number}.items():
        pixels = np.stack([to_mnist_28x28(draw(i, d)).pixels for i, d in enumerate(x)])
        out[style] = round(float(np.mean(predict_logits(loaded.model, pixels).argmax(1) == y)), 4)
    return {**out, "mean": round(float(np.mean(list(out.values()))), 4)}


def run_one(variant: str, seed: int) -> dict[str, Any]:
    out, seconds = train(variant, seed)
    return {
        "variant": variant,
        "seed": seed,
        "train_command_seconds": seconds,
        "drawn": drawn_accuracy(out),
        **refusal_on_validation(out),
    }


def test_one(variant: str, seed: int) -> dict[str, Any]:
    """One test-phase run scored once: test accuracy, real digits, the refusal benchmark."""
    from digitlab.inference.predictor import Predictor
    from real_digits import SETS, SHARED, score_set
    from refusal import measure as refusal_measure

    out, seconds = train(variant, seed, phase="test-")
    predictor = Predictor.load(out, runtime="keras", log=lambda *_: None)
    real = {name: score_set(SHARED / name, predictor) for name in SETS}
    refusal = refusal_measure(str(out), 100, 100)["refusals"]
    return {
        "variant": variant,
        "seed": seed,
        "train_command_seconds": seconds,
        "test_accuracy": json.loads((out / "metrics.json").read_text())["test"]["accuracy"],
        "real_digits": {name: r["styles"]["all"] for name, r in real.items() if r},
        "refusal": refusal["with features" if "with features" in refusal else "six features"],
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means ± sd per variant over the recorded seeds, and what `RULE` says."""
    table = {}
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        if mine:
            table[variant] = {
                "seeds": len(mine),
                "drawn": _mean_sd([r["drawn"]["mean"] for r in mine]),
                **{
                    k: _mean_sd([r[k] for r in mine]) for k in ("clean", "non_digits", "drawn_refused_at_own_threshold")
                },
                "drawn_styles": {s: round(statistics.mean(r["drawn"][s] for r in mine), 4) for s in mine[0]["drawn"]},
                "families": {f: round(statistics.mean(r["families"][f] for r in mine), 3) for f in mine[0]["families"]},
            }
    verdict = None
    if len(table) == len(VARIANTS) and all(v["seeds"] == len(SEEDS) for v in table.values()):
        off, on = table["off"], table["served copies"]
        gain = {k: round(on[k]["mean"] - off[k]["mean"], 5) for k in ("drawn", "clean", "non_digits")}
        adopt = gain["drawn"] >= 0.003 and gain["clean"] >= -0.001 and gain["non_digits"] >= -0.02
        verdict = {"gain": gain, "adopt": adopt}
    return {"rule": RULE, "variants": table, "verdict": verdict}


def test_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The test phase per variant: means ± sd over seeds."""
    table = {}
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        if not mine:
            continue
        real = {
            name: {k: _mean_sd([r["real_digits"][name][k] for r in mine]) for k in ("accuracy", "refused")}
            for name in mine[0]["real_digits"]
        }
        table[variant] = {
            "seeds": len(mine),
            "test_accuracy": _mean_sd([r["test_accuracy"] for r in mine]),
            "train_command_seconds": _mean_sd([r["train_command_seconds"] for r in mine]),
            "real_digits": real,
            "non_digits_refused": _mean_sd([r["refusal"]["non-digits refused (mean of families)"] for r in mine]),
            "non_digits_refused_at_0.5%": _mean_sd(
                [r["refusal"]["non-digits refused at q of drawn digits refused"]["0.005"] for r in mine]
            ),
            "drawn_digits_refused": _mean_sd([r["refusal"]["refused"]["drawn digits"] for r in mine]),
        }
    return table


def switch(test: dict[str, Any]) -> dict[str, Any] | None:
    """What `SWITCH_RULE` says of the test phase (None until both variants have every test seed)."""
    if set(test) != set(VARIANTS) or any(v["seeds"] < len(TEST_SEEDS) for v in test.values()):
        return None
    off, on = test["off"], test["served copies"]
    checks = {
        "test accuracy": (on["test_accuracy"]["mean"], off["test_accuracy"]["mean"], True),
        **{
            f"real {name}": (on["real_digits"][name]["accuracy"]["mean"], v["accuracy"]["mean"], True)
            for name, v in off["real_digits"].items()
        },
        "drawn digits refused": (on["drawn_digits_refused"]["mean"], 0.005, False),
    }
    met = {
        k: {"value": v, "bar": bar, "met": v >= bar if higher else v <= bar} for k, (v, bar, higher) in checks.items()
    }
    return {"rule": SWITCH_RULE, "checks": met, "switch": all(c["met"] for c in met.values())}


def _lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()] if RUNS.exists() else []


def recorded() -> dict[str, dict[str, Any]]:
    """The finished runs measured with the current refusal, by key."""
    from digitlab.inference.refusal import SCHEMA

    return {r["key"]: r for r in _lines() if r.get("refusal_schema", "digitlab.refusal/5") == SCHEMA}


def seconds_trained(key: str) -> float | None:
    """The training time recorded when the run `key` was trained (under any refusal), if it was."""
    return next((r["train_command_seconds"] for r in _lines() if r["key"] == key and r["train_command_seconds"]), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--budget-min", type=float, default=40, help="start no run after this many minutes")
    parser.add_argument("--test", action="store_true", help="the test phase: both variants, seeds 0-2")
    args = parser.parse_args()
    deadline = time.monotonic() + args.budget_min * 60
    done = recorded()
    plan = [("", v, seed, run_one) for v in VARIANTS for seed in SEEDS]
    if args.test:
        plan = [("test-", v, seed, test_one) for v in VARIANTS for seed in TEST_SEEDS]
    for phase, variant, seed, measure_run in plan:
        key = f"{phase}{variant}-seed{seed}"
        if key in done or time.monotonic() > deadline:
            continue
        from digitlab.inference.refusal import SCHEMA

        row = {"key": key, "commit": commit_measured(), "refusal_schema": SCHEMA, **measure_run(variant, seed)}
        row["train_command_seconds"] = row["train_command_seconds"] or seconds_trained(key)
        with RUNS.open("a") as f:
            f.write(json.dumps(row) + "\n")
        done[key] = row
        print(f"{key}: recorded", flush=True)
    result = summary([r for r in done.values() if not r["key"].startswith("test-")])
    result["test"] = test_table([r for r in done.values() if r["key"].startswith("test-")])
    result["switch"] = switch(result["test"])
    write_results(SUMMARY, result)
    for variant, v in result["variants"].items():
        print(
            f"{variant}: clean {v['clean']['mean']:.2%}, drawn {v['drawn']['mean']:.2%} ± {v['drawn']['sd']:.2%}, "
            f"non-digits {v['non_digits']['mean']:.1%} ± {v['non_digits']['sd']:.1%}"
        )
    print(f"verdict: {result['verdict']}\nswitch: {result['switch']}\nwrote {SUMMARY}")


if __name__ == "__main__":
    main()
