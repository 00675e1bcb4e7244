"""`digitlab predict` throughput on 10,000 canvas-sized PNGs, and per-image preprocessing time on one core.

Run: `.venv/bin/python bench/predict_speed.py --model RUN_OR_MODEL [--count 10000]` — prints a table and
writes bench/results/predict_speed.json. The PNGs (300–500 px canvas drawings made from MNIST test digits,
white-on-black and black-on-white) are generated once into a temporary folder.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "predict_speed.json"


def make_pngs(folder: Path, count: int) -> list[Path]:
    from digitlab.data import load_mnist
    from digitlab.synthetic import render

    mnist = load_mnist()
    paths = []
    for i in range(count):
        style = "canvas" if i % 2 else "black-on-white"
        image = render(mnist.x_test[i % 10000], style, np.random.default_rng(i))
        path = folder / f"{i:05d}.png"
        image.save(path, format="PNG")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run directory or .keras file")
    parser.add_argument("--count", type=int, default=10000, help="number of PNGs (default 10000)")
    args = parser.parse_args()
    from digitlab.predict import run_predict
    from digitlab.preprocess import to_mnist_28x28

    with tempfile.TemporaryDirectory(prefix="digitlab-bench-") as tmp:
        print(f"making {args.count} canvas PNGs ...", flush=True)
        paths = make_pngs(Path(tmp), args.count)
        size_kb = statistics.mean(p.stat().st_size for p in paths[:200]) / 1024
        # per-image preprocessing on one core (this thread only): decode + to_mnist_28x28
        blobs = [p.read_bytes() for p in paths[:1000]]
        times = []
        for blob in blobs:
            start = time.perf_counter()
            to_mnist_28x28(io.BytesIO(blob).getvalue())
            times.append((time.perf_counter() - start) * 1000)
        with open(os.devnull, "w") as devnull:
            start = time.perf_counter()
            run_predict([tmp], args.model, out=devnull)
            seconds = time.perf_counter() - start
    result = {
        "images": args.count,
        "mean_png_kb": round(size_kb, 1),
        "preprocess_ms_median": round(statistics.median(times), 3),
        "preprocess_ms_p95": round(float(np.percentile(times, 95)), 3),
        "predict_seconds": round(seconds, 2),
        "predict_images_per_s": round(args.count / seconds, 1),
        "cpus": os.cpu_count(),
    }
    print(f"{'what':<42}{'value':>12}")
    print(f"{'PNG size (mean, KB)':<42}{result['mean_png_kb']:>12}")
    print(f"{'preprocess, one core: median ms/image':<42}{result['preprocess_ms_median']:>12}")
    print(f"{'preprocess, one core: p95 ms/image':<42}{result['preprocess_ms_p95']:>12}")
    print(f"{'digitlab predict: images/s (all cores)':<42}{result['predict_images_per_s']:>12}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
