"""`digitlab predict` throughput on 10,000 canvas-sized PNGs, and per-image preprocessing time on one core.

Run: `.venv/bin/python bench/predict_speed.py --model RUN_OR_MODEL [--count 10000] [--runtimes onnx keras]` —
prints a table and writes bench/results/predict_speed.json. `digitlab predict` is timed as a user waits for
it: the whole command in its own process, from start to exit, once per runtime.
The PNGs are 300–500 px canvas drawings made from MNIST test digits,
generated once into a temporary folder, half of each kind:

- browser canvas: black ink on white, RGBA, encoded the way Chromium's `canvas.toDataURL` encodes (what the
  draw-a-digit page sends, and what a browser saves);
- Pillow-written: white ink on black, 8-bit grey, Pillow's encoder (adaptive filters, zlib level 6), which
  makes files several times slower to decode.

Per-image times are medians over 1,000 images of each kind, in this process (one core): decoding alone
(`load_pixels`), the MNIST-style preprocessing of the decoded pixels, and both (bytes in, 28×28 out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "predict_speed.json"
KINDS = ("browser canvas (RGBA)", "Pillow-written (grey)")


def make_pngs(folder: Path, count: int) -> dict[str, list[Path]]:
    from digitlab.data.mnist import load_mnist
    from digitlab.data.synthetic import browser_png, render

    mnist = load_mnist()
    paths: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    for i in range(count):
        digit, rng = mnist.x_test[i % 10000], np.random.default_rng(i)
        path = folder / f"{i:05d}.png"
        if i % 2:
            path.write_bytes(browser_png(render(digit, "black-on-white", rng)))
            paths[KINDS[0]].append(path)
        else:
            render(digit, "canvas", rng).save(path, format="PNG")
            paths[KINDS[1]].append(path)
    return paths


def per_image_times(paths: list[Path]) -> dict:
    from digitlab.data.decode import load_pixels
    from digitlab.data.preprocess import to_mnist_28x28

    blobs = [p.read_bytes() for p in paths[:1000]]
    for _ in range(2):  # the first pass warms caches; keep the second
        decode, preprocess, total = [], [], []
        for blob in blobs:
            start = time.perf_counter()
            pixels = load_pixels(blob)
            decode.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            to_mnist_28x28(pixels)
            preprocess.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            to_mnist_28x28(blob)
            total.append((time.perf_counter() - start) * 1000)

    def ms(times: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(times), 3), "p95": round(float(np.percentile(times, 95)), 3)}

    return {
        "mean_png_kb": round(statistics.mean(len(b) for b in blobs) / 1024, 1),
        "decode_ms": ms(decode),
        "preprocess_ms": ms(preprocess),
        "decode_and_preprocess_ms": ms(total),
    }


def whole_command(folder: str, model: str, runtime: str, workers: int | None) -> dict:
    """`digitlab predict FOLDER` in its own process, timed from process start to exit (output discarded)."""
    import re
    import subprocess
    import sys

    command = [sys.executable, "-m", "digitlab", "predict", folder, "--model", model, "--runtime", runtime]
    command += ["--workers", str(workers)] if workers else []
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    seconds = time.perf_counter() - start
    images = int(re.search(r"(\d+) images in", done.stderr).group(1))
    loop = float(re.search(r"\(([\d.]+) images/s\)", done.stderr).group(1))
    return {"seconds": round(seconds, 2), "images_per_s": round(images / seconds, 1), "loop_images_per_s": loop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run directory or .keras file")
    parser.add_argument("--count", type=int, default=10000, help="number of PNGs (default 10000)")
    parser.add_argument("--workers", type=int, default=None, help="predict's preprocessing processes (default: CPUs)")
    parser.add_argument(
        "--runtimes", nargs="+", default=["onnx", "keras"], help="`digitlab predict --runtime` values to time"
    )
    args = parser.parse_args()
    from digitlab.data.preprocess import usable_cpus

    with tempfile.TemporaryDirectory(prefix="digitlab-bench-") as tmp:
        print(f"making {args.count} canvas PNGs ...", flush=True)
        paths = make_pngs(Path(tmp), args.count)
        per_image = {kind: per_image_times(paths[kind]) for kind in KINDS}
        commands = {runtime: whole_command(tmp, args.model, runtime, args.workers) for runtime in args.runtimes}

    result = {
        "images": args.count,
        "per_image": per_image,
        "predict": commands,
        "workers": args.workers or usable_cpus(),
        "cpus": os.cpu_count(),
    }
    print(f"{'per image, one core (median / p95 ms)':<40}" + "".join(f"{kind:>26}" for kind in KINDS))
    for key, label in [
        ("decode_ms", "PNG decode"),
        ("preprocess_ms", "preprocess decoded pixels → 28×28"),
        ("decode_and_preprocess_ms", "both: PNG bytes → 28×28"),
    ]:
        cells = "".join(f"{per_image[k][key]['median']:>17} / {per_image[k][key]['p95']:<6}" for k in KINDS)
        print(f"{label:<40}{cells}")
    print(f"{'PNG size (mean, KB)':<40}" + "".join(f"{per_image[k]['mean_png_kb']:>17}{'':9}" for k in KINDS))
    for runtime, c in commands.items():
        print(
            f"digitlab predict --runtime {runtime}, {result['workers']} workers: {c['images_per_s']} images/s "
            f"from process start ({args.count} PNGs in {c['seconds']} s; {c['loop_images_per_s']} images/s "
            "once started)"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
