"""`digitlab predict` throughput on 10,000 canvas-sized PNGs, and per-image preprocessing time on one core.

Run: `.venv/bin/python bench/predict_speed.py --model RUN_OR_MODEL [--count 10000]` — prints a table and
writes bench/results/predict_speed.json. The PNGs (300–500 px canvas drawings made from MNIST test digits,
white-on-black and black-on-white) are generated once into a temporary folder.
"""

from __future__ import annotations

import argparse
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
    parser.add_argument("--workers", type=int, default=None, help="predict's preprocessing processes (default: CPUs)")
    args = parser.parse_args()
    from digitlab.predict import default_workers, run_predict
    from digitlab.preprocess import load_image, to_mnist_28x28

    with tempfile.TemporaryDirectory(prefix="digitlab-bench-") as tmp:
        print(f"making {args.count} canvas PNGs ...", flush=True)
        paths = make_pngs(Path(tmp), args.count)
        size_kb = statistics.mean(p.stat().st_size for p in paths[:200]) / 1024
        # per-image times on one core (this thread only), three ways: decoding the PNG alone (Pillow), the
        # MNIST-style preprocessing of the decoded image, and both together (bytes in, 28×28 out)
        blobs = [p.read_bytes() for p in paths[:1000]]
        decode, preprocess, total = [], [], []
        for blob in blobs:
            start = time.perf_counter()
            image = load_image(blob)
            decode.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            to_mnist_28x28(image)
            preprocess.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            to_mnist_28x28(blob)
            total.append((time.perf_counter() - start) * 1000)
        with open(os.devnull, "w") as devnull:
            start = time.perf_counter()
            run_predict([tmp], args.model, out=devnull, workers=args.workers)
            seconds = time.perf_counter() - start

    def ms(times: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(times), 3), "p95": round(float(np.percentile(times, 95)), 3)}

    result = {
        "images": args.count,
        "mean_png_kb": round(size_kb, 1),
        "decode_ms": ms(decode),
        "preprocess_ms": ms(preprocess),
        "decode_and_preprocess_ms": ms(total),
        "predict_seconds": round(seconds, 2),
        "predict_images_per_s": round(args.count / seconds, 1),
        "workers": args.workers or default_workers(),
        "cpus": os.cpu_count(),
    }
    print(f"{'what (one core unless said)':<46}{'median':>9}{'p95':>9}")
    for key, label in [
        ("decode_ms", "PNG decode (Pillow), ms/image"),
        ("preprocess_ms", "preprocess decoded image → 28×28, ms"),
        ("decode_and_preprocess_ms", "both: PNG bytes → 28×28, ms"),
    ]:
        print(f"{label:<46}{result[key]['median']:>9}{result[key]['p95']:>9}")
    print(f"{'PNG size (mean, KB)':<46}{result['mean_png_kb']:>9}")
    label = f"digitlab predict, {result['workers']} workers: images/s"
    print(f"{label:<46}{result['predict_images_per_s']:>9}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
