"""The timings the tests used to assert, measured instead (the tests keep the behaviour; README: timings are
never asserted).

- `to_mnist_28x28` on hostile inputs (header bombs, a 4-megapixel photo-like image, random bytes): the worst
  seconds per call (was a 5 s bound per fuzzed example in tests/data/test_fuzz_images.py);
- a lone request to the server's micro-batcher with nothing pending: seconds until its answer, which must not
  wait out `max_wait` (was a 1 s bound in tests/serving/test_serve.py);
- loading verified MNIST again from the data directory is bench/load_speed.py (was a 2 s bound in
  tests/data/test_mnist.py).

Run: `.venv/bin/python bench/timing_bounds.py RUN_DIR` (a trained run, e.g. runs/default) — prints a table and
writes bench/results/timing_bounds.json.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from _common import write_results  # beside this file (a script's folder is on sys.path)
from digitlab.data.preprocess import to_mnist_28x28
from digitlab.errors import ImageError

MAX_PIXELS = 4_000_000  # as the fuzz tests call it


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def hostile_inputs() -> dict[str, bytes]:
    """Inputs at the edges of the image path: sizes at the limit, random bytes, a bomb."""
    rng = np.random.default_rng(0)
    return {
        "random bytes (4 KiB)": rng.bytes(4096),
        "noise PNG 2000×2000": _png(rng.integers(0, 256, (2000, 2000), np.uint8)),
        "1-bit PNG 12000×12000 (over the limit)": _bomb(),
        "white 1×4000000 strip": _png(np.full((1, 4_000_000), 255, np.uint8)),
    }


def _bomb() -> bytes:
    out = io.BytesIO()
    Image.new("1", (12000, 12000)).save(out, format="PNG")
    return out.getvalue()


def preprocess_worst(repeats: int = 3) -> dict[str, float]:
    """Seconds of the slowest of `repeats` calls of `to_mnist_28x28` per hostile input (after one warm-up call
    that loads Pillow's plugins)."""
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the bomb is refused; the warning is noise
    with contextlib.suppress(ImageError):
        to_mnist_28x28(_png(np.zeros((28, 28), np.uint8)), max_pixels=MAX_PIXELS)
    worst = {}
    for name, data in hostile_inputs().items():
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            with contextlib.suppress(ImageError):  # a refusal is an answer too; its time counts
                to_mnist_28x28(data, max_pixels=MAX_PIXELS)
            times.append(time.perf_counter() - start)
        worst[name] = max(times)
    return worst


def lone_request_seconds(run_dir: str, repeats: int = 20) -> list[float]:
    """Seconds from submit to answer of one image with nothing pending (max_wait 2 s: it must not wait)."""
    from digitlab.data.fetch import default_data_dir
    from digitlab.data.mnist import load_mnist
    from digitlab.inference.predictor import Predictor
    from digitlab.serving.batching import BatchPredictor

    digits = load_mnist(default_data_dir()).x_test[:1].astype(np.float32) / 255
    batcher = BatchPredictor(Predictor.load(run_dir, log=lambda *_: None), max_wait=2.0)
    batcher.submit(digits).result(timeout=60)  # warm: the first call traces the graph
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        batcher.submit(digits).result(timeout=60)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    result: dict[str, dict] = {"to_mnist_28x28 worst seconds": preprocess_worst()}
    for name, seconds in result["to_mnist_28x28 worst seconds"].items():
        print(f"{name:<44}{seconds:>10.3f} s")
    if len(sys.argv) > 1:
        times = lone_request_seconds(sys.argv[1])
        result["lone request"] = {"median_s": statistics.median(times), "max_s": max(times), "runs": len(times)}
        median, worst = statistics.median(times), max(times)
        print(f"{'lone request, nothing pending (median/max)':<44}{median:>10.4f} / {worst:.4f} s")
    out = Path(__file__).parent / "results" / "timing_bounds.json"
    out.parent.mkdir(exist_ok=True)
    write_results(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
