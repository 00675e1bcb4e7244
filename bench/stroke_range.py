"""The stroke width preprocessing leaves alone (`preprocess.STROKE_RANGE`), weighed against MNIST's own.

Run: `.venv/bin/python bench/stroke_range.py --model RUN [--count 2000]` — prints two tables and writes
bench/results/stroke_range.json.

1. MNIST's stroke width over the digit's longer side, measured exactly as `normalise_digit` measures it
   (2 · area / perimeter of the ink at working size, `preprocess.stroke_width`) on 3,000 *training* digits drawn
   on the canvas (`synthetic.render`, "canvas"): its quantiles. A stroke outside the range is dilated or eroded to
   its edge; one inside is left as drawn. The shipped top, 0.20, lies below MNIST's own 90% quantile.
2. Each candidate top (`TOPS`) on the run's held-out *validation* digits (never test), drawn in every style of
   `synthetic.STYLES` and as a number of one digit in each of `synthetic.NUMBER_STYLES`: the share eroded, the
   model's accuracy on the 28×28s, and what `digitlab predict` answers (right only when the verdict is a digit and
   its label is right), each candidate with the refusal fitted again on its own preprocessing, in a copy of the run
   (the refusal's threshold is a quantile of preprocessed validation digits: it moves with the stroke width).
   The rule, written before this version's run: a new top replaces the shipped one only if it answers more digits
   right over the ten styles; ties keep the shipped top. It chose 0.24.
3. `--test-check`: the shipped top and the chosen one on 1,000 *test* digits per style, each with its own refusal,
   once: 9,777 and 9,779 of 10,000 answered right (`stroke_range.json`, "test_check"), no gain beyond noise, so
   the top stays 0.20. The rule's measure flattered the change: the refusal's threshold is placed on the run's
   validation digits, the very digits the rule counted, so on them it refuses its 0.5% whatever the preprocessing,
   and the rule saw the model's gain without the refusal's cost. Weighing this again needs validation digits the
   refusal was not fitted on.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from _common import commit_measured, write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "stroke_range.json"
TOPS = (0.20, 0.22, 0.24, 0.26, 0.28)
QUANTILES = (0.01, 0.05, 0.1, 0.5, 0.9, 0.95, 0.99)


def measured_ratios(digits: np.ndarray) -> np.ndarray:
    """Stroke width / longer side of each digit drawn on the canvas, as `normalise_digit` measures it."""
    import digitlab.data.preprocess as preprocess
    from digitlab.data.synthetic import render

    ratios: list[float] = []
    radius = preprocess._stroke_radius

    def record(width: float, longest: int) -> int:
        ratios.append(width / longest)
        return radius(width, longest)

    preprocess._stroke_radius = record
    try:
        for k, digit in enumerate(digits):
            preprocess.to_mnist_28x28(render(digit, "canvas", np.random.default_rng(k)))
    finally:
        preprocess._stroke_radius = radius
    return np.array(ratios)


def drawn(digits: np.ndarray) -> dict[str, list]:
    """Each digit drawn in every style of `STYLES` and as a number of one in each of `NUMBER_STYLES`."""
    from digitlab.data.synthetic import NUMBER_STYLES, STYLES, number_image, render

    images = {s: [render(d, s, np.random.default_rng(1000 + k)) for k, d in enumerate(digits)] for s in STYLES}
    for s in NUMBER_STYLES:
        images[f"number, {s}"] = [
            number_image([d], np.random.default_rng(5000 + k), "apart", s)[0] for k, d in enumerate(digits)
        ]
    return images


def one_top(run: Path, images: dict[str, list], labels: np.ndarray) -> dict:
    """Eroded share, model accuracy and answers right per style, under the `STROKE_RANGE` set now."""
    import digitlab.data.preprocess as preprocess
    from digitlab.inference.predictor import Predictor
    from digitlab.inference.verdict import answer_all

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(run, Path(tmp) / "run", ignore=shutil.ignore_patterns("refusal*", "report")))
        predictor = Predictor.load(copy, "onnx", log=lambda *_: None)
        predictor.refusal()  # fitted here, on this top's preprocessing
        styles, totals = {}, {"eroded": 0, "model right": 0, "answered right": 0}
        for style, batch in images.items():
            processed = [preprocess.to_mnist_28x28(im) for im in batch]
            inked = [i for i, p in enumerate(processed) if not p.blank]
            logits, net = predictor.forward(np.stack([processed[i].pixels for i in inked]))
            answers = answer_all([processed[i] for i in inked], logits, net, predictor)
            model = int(sum(int(row.argmax()) == labels[i] for row, i in zip(logits, inked, strict=True)))
            answered = int(
                sum(a.verdict == "digit" and a.label == labels[i] for a, i in zip(answers, inked, strict=True))
            )
            styles[style] = {"model": model / len(batch), "answered": answered / len(batch)}
            totals["eroded"] += sum(p.stroke_scale < 1 for p in processed)
            totals["model right"] += model
            totals["answered right"] += answered
    return {**totals, "eroded": totals["eroded"] / (len(images) * len(labels)), "styles": styles}


def each_top(run: Path, tops: list[float], images: dict[str, list], labels: np.ndarray) -> dict[str, dict]:
    """`one_top` under each top of the range ("0.20": …), the shipped range set back afterwards."""
    import digitlab.data.preprocess as preprocess

    shipped, rows = preprocess.STROKE_RANGE, {}
    try:
        for top in tops:
            preprocess.STROKE_RANGE = (shipped[0], top)
            rows[f"{top:.2f}"] = row = one_top(run, images, labels)
            print(
                f"top {top:.2f}: eroded {row['eroded']:.1%}, model right {row['model right']:,}, "
                f"answered right {row['answered right']:,}",
                flush=True,
            )
    finally:
        preprocess.STROKE_RANGE = shipped
    return rows


def test_check(run: Path) -> None:
    """The shipped top and the one the rule kept, on drawn test digits, added to the results as "test_check"."""
    from digitlab.data.mnist import load_mnist

    results = json.loads(RESULTS.read_text())
    mnist = load_mnist()
    pick = np.random.default_rng(0).choice(len(mnist.y_test), 1000, replace=False)
    images, labels = drawn(mnist.x_test[pick]), mnist.y_test[pick]
    rows = each_top(run, sorted({float(results["shipped"]), float(results["kept"])}), images, labels)
    write_results(RESULTS, {**results, "test_check": {"test_digits": len(labels), "commit": commit_measured(), **rows}})
    print(f"written {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/default", help="a run directory (default runs/default)")
    parser.add_argument("--count", type=int, default=2000, help="validation digits per style (default 2000)")
    parser.add_argument(
        "--test-check", action="store_true", help="only the shipped and the chosen top on 1,000 test digits per style"
    )
    args = parser.parse_args()
    if args.test_check:
        test_check(Path(args.model))
        return
    import digitlab.data.preprocess as preprocess
    from digitlab.data.mnist import load_mnist, load_splits, split_seed
    from digitlab.rundir import RunDir

    train = load_mnist().x_train
    ratios = measured_ratios(train[np.random.default_rng(3).choice(len(train), 3000, replace=False)])
    quantiles = {f"{q:.0%}": round(float(np.quantile(ratios, q)), 3) for q in QUANTILES}
    print("MNIST training digits on the canvas, stroke width / longer side:", quantiles)

    settings = RunDir(Path(args.model)).read_config()["settings"]
    splits = load_splits(None, settings.get("validation_size", 5000), split_seed(settings))
    pick = np.random.default_rng(7).choice(len(splits.y_val), args.count, replace=False)
    images, labels = drawn(splits.x_val[pick]), splits.y_val[pick]
    rows = each_top(Path(args.model), list(TOPS), images, labels)
    shipped = preprocess.STROKE_RANGE
    kept = f"{shipped[1]:.2f}"
    best = max(rows, key=lambda k: rows[k]["answered right"])
    if rows[best]["answered right"] > rows[kept]["answered right"]:
        kept = best
    print(f"\nkept: {kept} (shipped: {shipped[1]:.2f}), of {len(images) * len(labels):,} drawn validation digits")
    write_results(
        RESULTS,
        {
            "model": args.model,
            "commit": commit_measured(),
            "validation_digits": args.count,
            "mnist_training_quantiles": quantiles,
            "lower": shipped[0],
            "shipped": f"{shipped[1]:.2f}",
            "kept": kept,
            "candidates": rows,
        },
    )
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
