"""The "not a digit" refusal's trade-off on a run: with the network's features, and the six-feature one beside it.

Run: .venv/bin/python bench/refusal.py [RUN ...] [--per-style 250] [--per-family 200]   (default RUN: runs/default)

For each run and each of its refusals (`with features`, when the network has them, and `six features`, what a
runtime without them uses): the share of drawn digits refused (MNIST *test* digits in the 8 styles of
`synthetic.render`, preprocessed as the page does; all of them, then each style) and of MNIST test digits as they
are (scans, as someone uploading MNIST's own PNGs sends them), the share of generated non-digits refused per
benchmark family (`synthetic.NON_DIGIT_FAMILIES`: not the families the threshold was fitted on), and the good digits
refused among the real handwriting of `../shared/real-digits` and `real-digits-2` (read where they lie, never tuned
on). The issue's targets: ≥ 90% of non-digits refused with ≤ 0.5% of drawn digits refused, and no real digit
refused.
Writes bench/results/refusal.json (one entry per run and refusal, with the commit).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from _common import commit_measured, write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "refusal.json"
CURVE = (0.005, 0.01, 0.02)
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _pixels(images) -> np.ndarray:
    from digitlab.data.preprocess import to_mnist_28x28

    return np.stack([p.pixels for p in (to_mnist_28x28(image) for image in images) if not p.blank])


def benchmark_sets(per_style: int, per_family: int, real: bool = True) -> dict[str, np.ndarray]:
    """The preprocessed 28×28s measured: drawn test digits, each benchmark family, and the shared real digits."""
    from digitlab.data.mnist import load_mnist
    from digitlab.data.preprocess import to_mnist_28x28
    from digitlab.data.synthetic import NON_DIGIT_FAMILIES, STYLES, non_digit, render

    rng = np.random.default_rng(0)
    test = load_mnist().x_test
    picks = rng.choice(len(test), per_style * len(STYLES), replace=False)
    styles = [STYLES[n % len(STYLES)] for n in range(len(picks))]
    drawn = [(style, to_mnist_28x28(render(test[i], style, rng))) for style, i in zip(styles, picks, strict=True)]
    sets = {"drawn digits": np.stack([p.pixels for _, p in drawn if not p.blank])}
    sets |= {f"drawn, {s}": np.stack([p.pixels for style, p in drawn if style == s and not p.blank]) for s in STYLES}
    others = np.setdiff1d(np.arange(len(test)), picks)  # (their own generator: the other sets' draws stay as they were)
    sets["MNIST test digits"] = _pixels(test[np.random.default_rng(1).choice(others, 2000, replace=False)])
    sets |= {f: _pixels(non_digit(f, rng) for _ in range(per_family)) for f in NON_DIGIT_FAMILIES}
    for name in ("real-digits", "real-digits-2") if real else ():
        labels = SHARED / name / "labels.csv"
        if labels.is_file():
            sets[name] = _pixels(str(SHARED / name / "images" / r["file"]) for r in csv.DictReader(labels.open()))
    return sets


def validation_sets(predictor) -> dict[str, np.ndarray]:
    """For choices on validation: drawn validation digits the refusal's fit never saw (`x_val[1000:2400]`) and
    100 of each benchmark family drawn at seed 7 (the test sets above use seed 0), preprocessed.

    The run's threshold is placed on `x_val[1000:3000]` drawn (`refusal.fitting_digits`), so these are only for
    comparisons at equal cost (`validation_rates` places its own threshold), never for the run's own rates.
    """
    from digitlab.data.mnist import splits_for
    from digitlab.data.synthetic import NON_DIGIT_FAMILIES, STYLES, non_digit, render

    x_val = splits_for(predictor.loaded.settings).x_val[1000:2400]
    rng = np.random.default_rng(7)
    sets = {"drawn": _pixels(render(d, STYLES[i % len(STYLES)], rng) for i, d in enumerate(x_val))}
    return sets | {f: _pixels(non_digit(f, rng) for _ in range(100)) for f in NON_DIGIT_FAMILIES}


def validation_rates(scores: dict[str, np.ndarray], cost: float = 0.005) -> dict[str, float]:
    """Each family's share refused at the threshold refusing `cost` of `validation_sets`' drawn digits, and their
    mean ("non-digits (mean of families)")."""
    from digitlab.data.synthetic import NON_DIGIT_FAMILIES

    threshold = np.quantile(scores["drawn"], 1 - cost)
    out = {f: round(float(np.mean(scores[f] > threshold)), 3) for f in NON_DIGIT_FAMILIES}
    return {**out, "non-digits (mean of families)": round(float(np.mean(list(out.values()))), 4)}


def measure(run: str, per_style: int, per_family: int) -> dict[str, Any]:
    """Both refusals of one run on the same drawn digits, non-digits and real digits."""
    from digitlab.data.synthetic import NON_DIGIT_FAMILIES
    from digitlab.inference.predictor import Predictor

    predictor = Predictor.load(run, "keras", log=lambda *_: None)
    refusal = predictor.refusal()
    sets = benchmark_sets(per_style, per_family)
    out = {}
    kinds = {"with features": True, "six features": False} if refusal.uses_features else {"six features": False}
    for kind, use in kinds.items():
        refused, scores = {}, {}
        for name, x in sets.items():
            logits, net = predictor.forward(x)
            scores[name] = refusal.score(x, logits, net if use else None)
            refused[name] = round(float(np.mean(refusal.refuses(x, logits, net if use else None))), 4)
        families = [refused[f] for f in NON_DIGIT_FAMILIES]
        # the curve at equal cost: the threshold that refuses q of these drawn test digits (a comparison, not a
        # threshold anyone ships: the run's threshold is fitted on validation digits)
        curve = {}
        for q in CURVE:
            t = np.quantile(scores["drawn digits"], 1 - q)
            curve[str(q)] = round(float(np.mean([np.mean(scores[f] > t) for f in NON_DIGIT_FAMILIES])), 4)
        out[kind] = {
            "refused": refused,
            "non-digits refused (mean of families)": round(float(np.mean(families)), 4),
            "non-digits refused at q of drawn digits refused": curve,
        }
    return {"counts": {k: len(v) for k, v in sets.items()}, "refusals": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("runs", nargs="*", default=["runs/default"], help="run directories (default runs/default)")
    parser.add_argument("--per-style", type=int, default=250, help="drawn test digits per canvas style (default 250)")
    parser.add_argument("--per-family", type=int, default=200, help="non-digits per benchmark family (default 200)")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for run in args.runs:
        started = time.perf_counter()
        entry = {"commit": commit_measured(), "cpus": os.cpu_count(), **measure(run, args.per_style, args.per_family)}
        entry["seconds"] = round(time.perf_counter() - started, 1)
        results[run] = entry
        for kind, r in entry["refusals"].items():
            cells = ", ".join(f"{k} {v:.1%}" for k, v in r["refused"].items())
            at = ", ".join(
                f"{float(q):.1%} → {v:.1%}" for q, v in r["non-digits refused at q of drawn digits refused"].items()
            )
            print(f"{run} [{kind}]: non-digits {r['non-digits refused (mean of families)']:.1%}; refused: {cells}")
            print(f"  non-digits refused at equal shares of drawn digits refused: {at}")
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, results)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
