"""Accuracy on realistic inputs: each style of `digitlab.data.synthetic` vs the same digits as original 28×28.

Run: `.venv/bin/python bench/preprocess_accuracy.py --model RUN_OR_MODEL [--count 1000]` — prints a table
(original, digitlab preprocessing, plain resize, per style) and writes bench/results/preprocess_accuracy.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _common import write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "preprocess_accuracy.json"


def measure(model_path: str, count: int = 1000, seed: int = 0) -> dict:
    from digitlab.data.mnist import load_mnist
    from digitlab.data.preprocess import to_mnist_28x28
    from digitlab.data.synthetic import STYLES, plain_resize, render
    from digitlab.models.forward import predict_logits
    from digitlab.models.saved import load_model

    loaded = load_model(model_path)
    mnist = load_mnist()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(mnist.y_test), size=count, replace=False)
    digits, labels = mnist.x_test[pick], mnist.y_test[pick]
    original = float(np.mean(predict_logits(loaded.model, digits).argmax(1) == labels))
    rows = {"original 28×28": {"digitlab": original, "plain resize": original, "blank": 0}}
    for style in STYLES:
        images = [render(d, style, np.random.default_rng(seed * 1000 + i)) for i, d in enumerate(digits)]
        start = time.perf_counter()
        processed = [to_mnist_28x28(im) for im in images]
        ms = (time.perf_counter() - start) / len(images) * 1000
        ours = np.stack([p.pixels for p in processed])
        plain = np.stack([plain_resize(im) for im in images])
        ours_pred = predict_logits(loaded.model, ours[..., None]).argmax(1)
        plain_pred = predict_logits(loaded.model, plain[..., None]).argmax(1)
        blank = np.array([p.blank for p in processed])
        rows[style] = {
            "digitlab": float(np.mean((ours_pred == labels) & ~blank)),
            "plain resize": float(np.mean(plain_pred == labels)),
            "blank": int(blank.sum()),
            "ms_per_image": round(ms, 2),
        }
    return {"model": str(model_path), "count": count, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run directory or .keras file")
    parser.add_argument("--count", type=int, default=1000, help="test digits per style (default 1000)")
    args = parser.parse_args()
    result = measure(args.model, args.count)
    base = result["rows"]["original 28×28"]["digitlab"]
    print(f"{'input style':<18}{'digitlab':>10}{'Δ vs 28×28':>12}{'plain resize':>14}{'no-digit':>10}{'ms/img':>8}")
    for style, r in result["rows"].items():
        delta = (r["digitlab"] - base) * 100
        ms = r.get("ms_per_image", "")
        print(f"{style:<18}{r['digitlab']:>10.2%}{delta:>+11.2f}p{r['plain resize']:>14.2%}{r['blank']:>10}{ms:>8}")
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
