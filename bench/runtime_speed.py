"""Model call time per runtime (Keras, ONNX Runtime, LiteRT) on one core, and their agreement with Keras.

Run: `.venv/bin/python bench/runtime_speed.py --model RUN [--calls 3000]` — prints a table and writes
bench/results/runtime_speed.json. Times the call a server makes (`Predictor.logits`: a NumPy batch in,
logits out, conversion included) for one image and for a batch of 64 real MNIST test digits, medians
over `--calls` calls after a warm-up; every runtime on one thread (TF_NUM_INTRAOP_THREADS=1, as the server
sets it). Exports are made on demand into RUN/export, as `digitlab serve` does.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import numpy as np

from _common import timings, write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "runtime_speed.json"


def timed(fn, calls: int) -> dict[str, float]:
    times = [t * 1000 for t in timings(fn, calls, warmup=50)]
    return {"median_ms": round(statistics.median(times), 4), "p95_ms": round(float(np.percentile(times, 95)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run directory or .keras file")
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per case (default 3000)")
    args = parser.parse_args()
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    from digitlab.data.mnist import load_mnist
    from digitlab.inference.predictor import Predictor

    x = (load_mnist().x_test[:64] / 255.0).astype(np.float32)[..., None]
    rows, reference = {}, None
    for runtime in ("keras", "onnx", "litert"):
        predictor = Predictor.load(args.model, runtime)
        probs = predictor.probabilities(x)
        reference = probs if reference is None else reference
        rows[runtime] = {
            "one image": timed(lambda p=predictor: p.logits(x[:1]), args.calls),
            "batch of 64": timed(lambda p=predictor: p.logits(x), max(args.calls // 10, 100)),
            "max_abs_probability_diff_vs_keras": float(np.abs(probs - reference).max()),
        }
    print(f"{'runtime':<10}{'1 image: median ms':>20}{'p95':>9}{'64 images: median ms':>22}{'p95':>9}{'max |Δp|':>11}")
    for runtime, r in rows.items():
        one, batch = r["one image"], r["batch of 64"]
        print(
            f"{runtime:<10}{one['median_ms']:>20}{one['p95_ms']:>9}{batch['median_ms']:>22}{batch['p95_ms']:>9}"
            f"{r['max_abs_probability_diff_vs_keras']:>11.1e}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, {"model": args.model, "calls": args.calls, "runtimes": rows})
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
