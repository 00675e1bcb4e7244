"""Which signal refuses which non-digits: each of the refusal's signals alone, and three ways to combine them.

Run: .venv/bin/python bench/refusal_signals.py [RUN] [--per-style 100] [--per-family 100]   (default runs/default)

A study for issue 32's open target (≥ 90% of non-digits refused at ≤ 0.5% of drawn digits refused), not a
refusal anyone ships. Every row is compared at equal cost: its threshold refuses 0.5% of the same drawn *test*
digits (`refusal.benchmark_sets`), and the row gives the share of each benchmark family refused
(`synthetic.NON_DIGIT_FAMILIES`, never fitted on) and of the fitting pool (`synthetic.outlier_pool`, what a
fitted combination sees). Signals: the six of `inference.refusal.features`, the cosine kNN to the run's feature
bank (`feature_knn`), and the Mahalanobis distance of the network's features to the nearest class mean under one
shared covariance (Lee et al., "A simple unified framework for detecting out-of-distribution samples and
adversarial attacks", NeurIPS 2018), as the run's refusal computes it (`FeatureBank.mahalanobis`, 10,000 training
digits); beside them, not a regression input, the same distance of the last convolution's channels
(`FeatureBank.conv_mahalanobis`, their feature ensemble). Combinations:

- `regression alone`: the run's logistic regression on the first seven, fitted on validation digits against the
  fitting pool (what `digitlab.refusal/3` shipped);
- `shipped`: the run's own refusal: the largest of that regression and the two Mahalanobis distances mapped onto its
  scale (`inference.refusal`; the penultimate one from `digitlab.refusal/4`, the convolution's from `/5`);
- `regression + mahalanobis`: the regression refitted with the Mahalanobis distance as an eighth input;
- `fisher`: no fitting against non-digits at all: each signal becomes −log of its tail share among the validation
  digits (a conformal p-value) and the eight are summed (Fisher's method; Bates et al., "Testing for outliers with
  conformal p-values", Annals of Statistics 2023).

Writes bench/results/refusal_signals.json (with the commit).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from _common import commit_measured, write_results  # beside this file (a script's folder is on sys.path)
from refusal import _pixels, benchmark_sets

RESULTS = Path(__file__).parent / "results" / "refusal_signals.json"
COST = 0.005  # the share of drawn digits every row refuses
SIGNALS = ("energy", "doubt", "knn", "residual", "flatness", "ink", "feature_knn", "mahalanobis")


def signals(run: str, per_style: int, per_family: int) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """(set → (N, 8) signals, {"shipped", "regression alone"} → set → scores)."""
    from digitlab.data.images import to_unit_float
    from digitlab.data.mnist import splits_for
    from digitlab.data.synthetic import STYLES, outlier_pool, render
    from digitlab.inference.predictor import Predictor
    from digitlab.inference.refusal import features

    predictor = Predictor.load(run, "keras", log=lambda *_: None)
    refusal = predictor.refusal()
    if not refusal.uses_features or refusal.bank.whitening is None:
        raise SystemExit(
            f"{run}: its refusal has no feature measures (a network without features); this study needs them"
        )
    splits = splits_for(predictor.loaded.settings)
    sets = benchmark_sets(per_style, per_family, real=False)
    rng = np.random.default_rng(1)  # validation digits as they are and drawn, as the shipped regression is fitted
    drawn = _pixels(render(d, STYLES[i % len(STYLES)], rng) for i, d in enumerate(splits.x_val[-700:]))
    sets["validation digits"] = np.concatenate([to_unit_float(splits.x_val[:1000]), drawn])
    sets["fitting pool"] = to_unit_float(outlier_pool(800, 1))
    out, own = {}, {"convolution's mahalanobis": {}, "regression alone": {}, "shipped": {}}
    for name, x in sets.items():
        logits, net = predictor.forward(x)
        out[name] = np.column_stack([features(x, logits), refusal.bank.distance(net), refusal.bank.mahalanobis(net)])
        own["convolution's mahalanobis"][name] = refusal.bank.conv_mahalanobis(net)
        own["regression alone"][name] = refusal.regression(out[name][:, :-1])
        own["shipped"][name] = refusal.score(x, logits, net)
    if own["convolution's mahalanobis"]["drawn digits"] is None:  # a network without convolutions
        del own["convolution's mahalanobis"]
    return out, own


def _rates(scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Shares refused per set at the threshold that refuses COST of the drawn digits."""
    from digitlab.data.synthetic import NON_DIGIT_FAMILIES

    threshold = np.quantile(scores["drawn digits"], 1 - COST)
    rates = {k: round(float(np.mean(v > threshold)), 3) for k, v in scores.items() if k != "validation digits"}
    rates["non-digits (mean of families)"] = round(float(np.mean([rates[f] for f in NON_DIGIT_FAMILIES])), 3)
    return rates


def combinations(table: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Scores per set of the three combinations (see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    digits = table["validation digits"]
    ink_sign = np.where(np.array(SIGNALS) == "ink", -1.0, 1.0)  # less ink than digits is the unusual side
    reference = np.sort(digits * ink_sign, axis=0)

    def fisher(v: np.ndarray) -> np.ndarray:
        above = [np.searchsorted(reference[:, j], (v * ink_sign)[:, j], side="right") for j in range(v.shape[1])]
        tail = 1 - np.stack(above, axis=1) / len(reference)
        return -np.log(tail + 0.5 / len(reference)).sum(axis=1)

    mean, std = digits.mean(axis=0), digits.std(axis=0) + 1e-9
    x = np.concatenate([digits, table["fitting pool"]])
    y = np.r_[np.zeros(len(digits)), np.ones(len(table["fitting pool"]))]
    regression = LogisticRegression(max_iter=2000, class_weight="balanced").fit((x - mean) / std, y)
    return {
        "regression + mahalanobis": {k: regression.decision_function((v - mean) / std) for k, v in table.items()},
        "fisher": {k: fisher(v) for k, v in table.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("run", nargs="?", default="runs/default", help="a run with features (default runs/default)")
    parser.add_argument("--per-style", type=int, default=100, help="drawn test digits per canvas style (default 100)")
    parser.add_argument("--per-family", type=int, default=100, help="non-digits per benchmark family (default 100)")
    args = parser.parse_args()
    started = time.perf_counter()
    table, own = signals(args.run, args.per_style, args.per_family)
    rows = {name: _rates({k: v[:, j] for k, v in table.items()}) for j, name in enumerate(SIGNALS)}
    rows["ink"] = _rates({k: -v[:, SIGNALS.index("ink")] for k, v in table.items()})
    rows |= {name: _rates(scores) for name, scores in own.items()}
    for name, scores in combinations(table).items():
        rows[name] = _rates(scores)
    print(f"{'refused at 0.5% of drawn digits':28s} " + " ".join(f"{k[:12]:>12s}" for k in next(iter(rows.values()))))
    for name, rates in rows.items():
        print(f"{name:28s} " + " ".join(f"{v:12.1%}" for v in rates.values()))
    entry = {"commit": commit_measured(), "cpus": os.cpu_count(), "cost": COST, "rows": rows}
    entry["seconds"] = round(time.perf_counter() - started, 1)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.run] = entry
    write_results(RESULTS, results)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
