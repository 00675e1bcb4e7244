"""Are the attributions faithful? Completeness, deletion and model randomisation on real MNIST test digits.

Run: `.venv/bin/python bench/explain_faithfulness.py --model RUN [--completeness 500] [--deletion 200]
[--randomisation 50]` — prints a table and writes bench/results/explain_faithfulness.json. Definitions in
`digitlab.explain.faithfulness`: IG completeness error at 64 steps (black baseline and blurred baseline);
deletion area ratio against random ink order (< 1: the map knows which ink matters; lower is better); the
rank correlation of |attribution| with a weight-shuffled copy of the model (near 0: the map depends on what
the model learned), on the ink pixels and on all pixels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _common import write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "explain_faithfulness.json"
METHODS = ("ig", "smoothgrad", "layercam", "gradcam", "occlusion")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run directory or .keras file")
    parser.add_argument("--completeness", type=int, default=500, help="digits for IG completeness (default 500)")
    parser.add_argument("--deletion", type=int, default=200, help="digits for the deletion test (default 200)")
    parser.add_argument("--randomisation", type=int, default=50, help="digits for the randomisation check")
    args = parser.parse_args()
    from digitlab.tf_logging import import_tensorflow

    import_tensorflow()
    from digitlab.data.mnist import load_mnist
    from digitlab.explain import faithfulness
    from digitlab.explain.engine import Explainer
    from digitlab.models.saved import load_model

    model = load_model(args.model).model
    explainer = Explainer(model)
    images = (load_mnist().x_test / 255.0).astype(np.float32)
    result: dict = {"model": args.model, "completeness": {}, "methods": {}}
    start = time.perf_counter()
    for baseline in ("black", "blur"):
        errors = faithfulness.completeness(explainer, images[: args.completeness], steps=64, baseline=baseline)
        result["completeness"][baseline] = {
            "digits": len(errors),
            "median_relative_error": float(np.median(errors)),
            "p95_relative_error": float(np.percentile(errors, 95)),
            "max_relative_error": float(errors.max()),
            "share_within_5pct": float(np.mean(errors <= 0.05)),
        }
    for method in METHODS:
        result["methods"][method] = {
            "deletion": faithfulness.deletion(explainer, images[: args.deletion], method),
            "randomisation": faithfulness.randomisation(model, images[: args.randomisation], method),
        }
    result["seconds"] = round(time.perf_counter() - start, 1)
    print("IG completeness at 64 steps  (relative error of Σ attributions vs score(x) − score(baseline))")
    for baseline, c in result["completeness"].items():
        print(
            f"  {baseline:<6} baseline, {c['digits']} digits: median {c['median_relative_error']:.2%}, p95 "
            f"{c['p95_relative_error']:.2%}, max {c['max_relative_error']:.2%}, within 5%: {c['share_within_5pct']:.1%}"
        )
    print(f"\n{'method':<12}{'deletion AUC':>14}{'random AUC':>12}{'ratio':>8}{'rand. corr (ink)':>18}{'(all px)':>10}")
    for method, m in result["methods"].items():
        d, r = m["deletion"], m["randomisation"]
        print(
            f"{method:<12}{d['auc']:>14.3f}{d['random_auc']:>12.3f}{d['ratio']:>8.2f}{r['ink']:>18.2f}{r['all']:>10.2f}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, result)
    print(f"wrote {RESULTS} ({result['seconds']} s)")


if __name__ == "__main__":
    main()
