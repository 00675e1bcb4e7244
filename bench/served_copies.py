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

`--confirm` (written 2026-12-07, before any of its runs): seeds 0-2 did not meet `SWITCH_RULE` (real-digits-2 half
a point lower: one digit on one seed); the closing note proposed two more seeds to tell noise from a loss. Seeds
`CONFIRM_SEEDS` are trained and scored as the test phase's, and `SWITCH_RULE` is applied once more to the means
over all five seeds ("confirmation"): that decides `make run`'s default either way, and no further seeds are added.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import write_results  # beside this file (a script's folder is on sys.path)
from _seeded import RunRecord, mean_sd, scored_on_test, test_summary, train_kept
from outlier_exposure import measure as refusal_on_validation

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "served_copies_runs.jsonl"
SUMMARY = RESULTS / "served_copies.json"
RECORD = RunRecord(RUNS, unmarked_schema="digitlab.refusal/5")
RUN_DIR = Path(__file__).resolve().parents[1] / "runs" / "served"
VARIANTS = {"off": [], "served copies": ["--served-copies"]}
SEEDS = (100, 101, 102)
TEST_SEEDS = (0, 1, 2)
CONFIRM_SEEDS = (3, 4)  # the confirmation's extra seeds (see the docstring), decided before their runs
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
    return train_kept(RUN_DIR / f"{phase}{variant.replace(' ', '-')}-seed{seed}", [*RECIPE, *VARIANTS[variant]], seed)


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
    out, seconds = train(variant, seed, phase="test-")
    return {"variant": variant, "seed": seed, "train_command_seconds": seconds, **scored_on_test(out)}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means ± sd per variant over the recorded seeds, and what `RULE` says."""
    table = {}
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        if mine:
            table[variant] = {
                "seeds": len(mine),
                "drawn": mean_sd([r["drawn"]["mean"] for r in mine]),
                **{k: mean_sd([r[k] for r in mine]) for k in ("clean", "non_digits", "drawn_refused_at_own_threshold")},
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


def test_table(rows: list[dict[str, Any]], seeds: tuple[int, ...] = TEST_SEEDS) -> dict[str, Any]:
    """The test phase per variant: means ± sd over `seeds`."""
    rows = [r for r in rows if r["seed"] in seeds]
    return {
        v: test_summary([r for r in rows if r["variant"] == v])
        for v in VARIANTS
        if any(r["variant"] == v for r in rows)
    }


def switch(test: dict[str, Any], seeds: tuple[int, ...] = TEST_SEEDS) -> dict[str, Any] | None:
    """What `SWITCH_RULE` says of the test phase over `seeds` (None until both variants have each of them)."""
    if set(test) != set(VARIANTS) or any(v["seeds"] < len(seeds) for v in test.values()):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--budget-min", type=float, default=40, help="start no run after this many minutes")
    parser.add_argument("--test", action="store_true", help="the test phase: both variants, seeds 0-2")
    parser.add_argument("--confirm", action="store_true", help="the confirmation: both variants, seeds 3-4 too")
    args = parser.parse_args()
    deadline = time.monotonic() + args.budget_min * 60
    done = RECORD.recorded()
    plan = [("", v, seed, run_one) for v in VARIANTS for seed in SEEDS]
    if args.test or args.confirm:
        seeds = TEST_SEEDS + CONFIRM_SEEDS if args.confirm else TEST_SEEDS
        plan = [("test-", v, seed, test_one) for seed in seeds for v in VARIANTS]
    for phase, variant, seed, measure_run in plan:
        key = f"{phase}{variant}-seed{seed}"
        if key in done or time.monotonic() > deadline:
            continue
        row = RECORD.add(key, measure_run(variant, seed))
        done[key] = row
        print(f"{key}: recorded", flush=True)
    tested = [r for r in done.values() if r["key"].startswith("test-")]
    result = summary([r for r in done.values() if not r["key"].startswith("test-")])
    result["test"] = test_table(tested)
    result["switch"] = switch(result["test"])
    if any(r["seed"] in CONFIRM_SEEDS for r in tested):
        every_seed = TEST_SEEDS + CONFIRM_SEEDS
        confirmation = test_table(tested, every_seed)
        result["confirmation"] = {"test": confirmation, "switch": switch(confirmation, every_seed)}
    write_results(SUMMARY, result)
    for variant, v in result["variants"].items():
        print(
            f"{variant}: clean {v['clean']['mean']:.2%}, drawn {v['drawn']['mean']:.2%} ± {v['drawn']['sd']:.2%}, "
            f"non-digits {v['non_digits']['mean']:.1%} ± {v['non_digits']['sd']:.1%}"
        )
    print(f"verdict: {result['verdict']}\nswitch: {result['switch']}")
    print(f"confirmation: {result.get('confirmation', {}).get('switch')}\nwrote {SUMMARY}")


if __name__ == "__main__":
    main()
