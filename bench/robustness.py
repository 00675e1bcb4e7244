"""Robustness of trained models beyond MNIST's test set: MNIST-C, scikit-learn's digits, real handwriting.

Run: .venv/bin/python bench/robustness.py runs/default runs/fast-e2 [--preprocess-limit 2000]

For each run directory: test accuracy (clean), accuracy on each of MNIST-C's 15 corruptions of the 10,000 test
digits with the model alone and through preprocessing (the first --preprocess-limit digits: it costs ~1 ms an
image), their means, scikit-learn's 1,797 8×8 digits through preprocessing, and the real digits in
../shared/real-digits (read where they lie, never copied; skipped when absent) through preprocessing, by style.
The refusal ("not a digit", "several digits") is not applied here: these are the classifier's numbers.
Prints a table and writes bench/results/robustness.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
from pathlib import Path

import numpy as np

from _common import write_results  # beside this file (a script's folder is on sys.path)
from digitlab.data.mnist import load_mnist
from digitlab.evaluation.robustness import accuracy_through_preprocessing, mnist_c, sklearn_digits
from digitlab.models.forward import predict_logits
from digitlab.models.saved import load_model

RESULTS = Path(__file__).parent / "results" / "robustness.json"
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real-digits"


def real_digits(logits) -> dict | None:
    if not (REAL / "labels.csv").is_file():
        return None
    rows = list(csv.DictReader((REAL / "labels.csv").open()))
    images = [str(REAL / "images" / r["file"]) for r in rows]
    labels = np.array([int(r["label"]) for r in rows])
    out = {"all": accuracy_through_preprocessing(logits, images, labels), "n": len(rows)}
    for style in sorted({r["style"] for r in rows}):
        pick = [i for i, r in enumerate(rows) if r["style"] == style]
        out[style] = accuracy_through_preprocessing(logits, [images[i] for i in pick], labels[pick])
        out[style]["n"] = len(pick)
    return out


def measure(run: str, limit: int) -> dict:
    loaded = load_model(run)
    model, settings = loaded.model, loaded.settings
    data = load_mnist()

    def logits(x):
        return predict_logits(model, x)

    result = mnist_c(logits, data.x_test, data.y_test, preprocess_limit=limit, progress=lambda n: print(f"  {n}"))
    images, labels = sklearn_digits()
    result["sklearn_digits"] = accuracy_through_preprocessing(logits, images, labels)
    result["real_digits"] = real_digits(logits)
    keys = ("model", "recipe", "epochs", "handwriting", "augment", "full_train", "seed")
    return {"settings": {k: settings.get(k) for k in keys}, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("--preprocess-limit", type=int, default=2000, help="digits scored through preprocessing")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    for run in args.runs:
        print(run)
        results.setdefault("runs", {})[run] = measure(run, args.preprocess_limit)
    names = list(next(iter(results["runs"].values()))["corruptions"])
    print(f"{'corruption':<14}" + "".join(f"{Path(r).name:>22}" for r in results["runs"]))
    for name in ["clean", *names, "mean"]:
        cells = []
        for r in results["runs"].values():
            row = r["clean"] if name == "clean" else r["corruptions"].get(name)
            if name == "mean":
                row = {"alone": r["mean_alone"], "preprocessed": r["mean_preprocessed"]}
            cells.append(f"{row['alone']:>10.2%} {row['preprocessed']:>10.2%} ")
        print(f"{name:<14}" + "".join(cells))
    for r, v in results["runs"].items():
        real = v["real_digits"]
        said = f"{real['all']['accuracy']:.2%} ({real['all']['blank']:.1%} blank)" if real else "absent"
        print(f"{r}: sklearn digits {v['sklearn_digits']['accuracy']:.2%}; real digits {said}")
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, results)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
