"""Outlier Exposure weighed over seeds on validation: does `--outlier-exposure` help the refusal at no cost?

Run: .venv/bin/python bench/outlier_exposure.py [--budget-min 40]   (resumable: one JSON line per finished run)

Each (λ, seed) of `LAMBDAS` × `SEEDS` is `make run`'s recipe (`--recipe fast --epochs 2 --no-full-train`) trained by
the whole `digitlab train` command with `--outlier-exposure λ` (0: the default as it is), kept in `runs/oe/`
(git-ignored). Its refusal is fitted as every run's is (on first use), then scored on validation only:

- clean validation accuracy (the run's own metrics.json);
- drawn validation digits refused, and the benchmark's non-digit families refused (mean of families), at the
  threshold that refuses 0.5% of drawn validation digits: the drawn digits are validation digits the refusal's fit
  never saw (`x_val[1000:2400]`, 200 per canvas style) and the non-digits are drawn with seed 7 (bench/refusal.py
  uses seed 0).

Each finished run is one line of bench/results/outlier_exposure_runs.jsonl, written at once; a recorded run is
skipped. Lines are keyed by the refusal's schema (`digitlab.inference.refusal.SCHEMA`): when the refusal changes, the
runs are measured again (a run whose model is still in `runs/oe/` is not trained again; its line keeps the training
time measured when it was trained), and the summary reads the current schema's lines only. `RULE`, written before
the runs, decides; the summary (means ± sd per λ and the verdict) is bench/results/outlier_exposure.json.
The test set and the real digits are not read by the choice.

`--test` (after the choice): the chosen λ and λ = 0 with seeds `TEST_SEEDS`, whole commands again, each scored once
on the test set (the run's own metrics.json), on the real digits of `../shared/real-digits` and `real-digits-2`
through the whole answer path (`bench/real_digits.py`), and on the refusal benchmark (`bench/refusal.py`: drawn
test digits and the non-digit families at seed 0): the check that the choice costs neither clean nor real-digit
accuracy, recorded as lines too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_results  # beside this file (a script's folder is on sys.path)
from _seeded import RunRecord, mean_sd, scored_on_test, test_summary, train_kept
from refusal import validation_rates, validation_sets

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "outlier_exposure_runs.jsonl"
RECORD = RunRecord(RUNS, unmarked_schema="digitlab.refusal/3")
SUMMARY = RESULTS / "outlier_exposure.json"
RUN_DIR = Path(__file__).resolve().parents[1] / "runs" / "oe"
LAMBDAS = (0.0, 0.1, 0.5)
SEEDS = (100, 101, 102)
TEST_SEEDS = (0, 1, 2)
COST = 0.005
RECIPE = ["--recipe", "fast", "--epochs", "2", "--no-full-train"]
RULE = {
    "adopt": "the λ with the highest mean non-digits refused, if it beats λ = 0 by ≥ 3 points",
    "clean": "and its mean clean validation accuracy is within 0.1 point of λ = 0's",
}


def measure(run: Path) -> dict[str, Any]:
    """Clean validation accuracy and the validation refusal trade-off of one trained run."""
    from digitlab.inference.predictor import Predictor

    predictor = Predictor.load(run, "keras", log=lambda *_: None)
    refusal = predictor.refusal()
    sets = validation_sets(predictor)
    scores = {k: refusal.score(x, *predictor.forward(x)) for k, x in sets.items()}
    rates = validation_rates(scores, COST)
    non_digits = rates.pop("non-digits (mean of families)")
    at_own = refusal.for_features(True).threshold
    return {
        "clean": json.loads((run / "metrics.json").read_text())["validation"]["accuracy"],
        "non_digits": non_digits,
        "families": rates,
        "drawn_refused_at_own_threshold": round(float(np.mean(scores["drawn"] > at_own)), 4),
    }


def train(lam: float, seed: int, phase: str = "") -> tuple[Path, float | None]:
    """Train one (λ, seed) with the whole `digitlab train` command: (its run, seconds; None for a kept run)."""
    flags = [*RECIPE, "--outlier-exposure", f"{lam:g}"] if lam else RECIPE
    return train_kept(RUN_DIR / f"{phase}oe{lam:g}-seed{seed}", flags, seed)


def run_one(lam: float, seed: int) -> dict[str, Any]:
    """Train one (λ, seed) and measure it on validation."""
    out, seconds = train(lam, seed)
    return {"lambda": lam, "seed": seed, "train_command_seconds": seconds, **measure(out)}


def test_one(lam: float, seed: int) -> dict[str, Any]:
    """Train one (λ, seed) of the test phase and score it once: test accuracy, real digits, the refusal bench."""
    out, seconds = train(lam, seed, phase="test-")
    return {"lambda": lam, "seed": seed, "train_command_seconds": seconds, **scored_on_test(out)}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means ± sd per λ over the recorded seeds, and what `RULE` says."""
    table = {}
    for lam in LAMBDAS:
        mine = [r for r in rows if r["lambda"] == lam]
        if not mine:
            continue
        table[f"{lam:g}"] = {
            "seeds": len(mine),
            **{k: mean_sd([r[k] for r in mine]) for k in ("clean", "non_digits", "drawn_refused_at_own_threshold")},
            "families": {f: round(statistics.mean(r["families"][f] for r in mine), 3) for f in mine[0]["families"]},
        }
    verdict = None
    if len(table) == len(LAMBDAS) and all(v["seeds"] == len(SEEDS) for v in table.values()):
        base = table["0"]
        best = max((k for k in table if k != "0"), key=lambda k: table[k]["non_digits"]["mean"])
        gain = table[best]["non_digits"]["mean"] - base["non_digits"]["mean"]
        cost = base["clean"]["mean"] - table[best]["clean"]["mean"]
        adopt = gain >= 0.03 and cost <= 0.001
        verdict = {"best": best, "gain": round(gain, 4), "clean_cost": round(cost, 5), "adopt": adopt}
    from digitlab.inference.refusal import SCHEMA

    return {"rule": RULE, "cost": COST, "refusal_schema": SCHEMA, "lambdas": table, "verdict": verdict}


def test_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The test phase per λ: means ± sd over seeds of test accuracy, real digits right and refused, the refusal."""
    table = {}
    for lam in sorted({r["lambda"] for r in rows}):
        mine = [r for r in rows if r["lambda"] == lam]
        families = {
            f: round(statistics.mean(r["refusal"]["refused"][f] for r in mine), 3)
            for f in mine[0]["refusal"]["refused"]
        }
        table[f"{lam:g}"] = {**test_summary(mine), "families": families}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--budget-min", type=float, default=40, help="start no run after this many minutes")
    parser.add_argument("--test", action="store_true", help="the test phase: the chosen λ and 0, seeds 0-2")
    args = parser.parse_args()
    deadline = time.monotonic() + args.budget_min * 60
    done = RECORD.recorded()
    rows = [r for r in done.values() if not r["key"].startswith("test-")]
    plan = [("", lam, seed, run_one) for lam in LAMBDAS for seed in SEEDS]
    if args.test:
        chosen = (summary(rows)["verdict"] or {}).get("best")
        if chosen is None:
            raise SystemExit("the validation phase is not finished: run without --test first")
        plan = [("test-", lam, seed, test_one) for lam in (0.0, float(chosen)) for seed in TEST_SEEDS]
    for phase, lam, seed, measure_run in plan:
        key = f"{phase}oe{lam:g}-seed{seed}"
        if key in done or time.monotonic() > deadline:
            continue
        row = RECORD.add(key, measure_run(lam, seed))
        done[key] = row
        print(f"{key}: recorded", flush=True)
    rows = [r for r in done.values() if not r["key"].startswith("test-")]
    result = summary(rows)
    result["test"] = test_table([r for r in done.values() if r["key"].startswith("test-")])
    write_results(SUMMARY, result)
    for lam, v in result["lambdas"].items():
        clean, nd = v["clean"], v["non_digits"]
        print(f"λ {lam}: clean {clean['mean']:.4f} ± {clean['sd']:.4f}, non-digits {nd['mean']:.1%} ± {nd['sd']:.1%}")
    print(f"verdict: {result['verdict']}\nwrote {SUMMARY}")


if __name__ == "__main__":
    main()
