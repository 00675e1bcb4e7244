"""The robust recipe's settings, chosen on validation: clean digits and held-out shifts of our own.

Run (one phase at a time; each adds its section to bench/results/robust_recipe.json and prints its table):

  .venv/bin/python bench/robust_recipe.py --choose            # variants × seeds 100-102, validation only
  .venv/bin/python bench/robust_recipe.py --test              # the frozen recipes, seeds 0-2, test accuracy

--choose trains each variant of `--recipe robust` (55,000 images; the 5,000 validation images of split seed 0
held out) per seed and scores the validation digits clean and under `HELD_OUT` shifts: image changes that are
neither in the training augmentation (data/augment.py `Handwriting`) nor among MNIST-C's 15 corruptions that
`digitlab.data.corruptions` scores a model on, so choosing on them tunes to neither. The rule, fixed before the
runs: the variant with the highest mean of (clean validation accuracy, mean held-out accuracy) wins, unless
its clean validation accuracy is more than 0.1 point below the best clean one.

--test trains the frozen recipes (`make run`'s default among them) per seed with the whole `digitlab train`
command and reports test accuracy as mean ± sd; the robustness numbers of the same runs come from
bench/robustness.py and bench/real_digits.py.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

RESULTS = Path(__file__).parent / "results" / "robust_recipe.json"
CHOICE_SEEDS = (100, 101, 102)  # never the seeds --test reports
TEST_SEEDS = (0, 1, 2)
VARIANTS = {  # overrides of --recipe robust
    "robust, 2 epochs": {"epochs": 2},
    "robust, 3 epochs": {},
    "affine only (--augment), 3 epochs": {"handwriting": False, "augment": True},
}
TEST_RECIPES = {
    "fast (make run before)": ["--recipe", "fast", "--epochs", "2", "--no-full-train"],
    "robust (make run now)": ["--recipe", "robust"],
}


def _pixelate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.resize(cv2.resize(x, (12, 12), interpolation=cv2.INTER_AREA), (28, 28), interpolation=cv2.INTER_NEAREST)


def _jpeg(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 8])[1], cv2.IMREAD_GRAYSCALE)


def _gamma(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.round(255 * (x / 255.0) ** 3).astype(np.uint8)  # a dim scan: thin, faint strokes


def _grating(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[:28, :28]
    angle, period = rng.uniform(0, np.pi), rng.uniform(3, 7)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    return np.maximum(x, np.round(70 * wave)).astype(np.uint8)  # lined or woven paper


def _cutout(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = x.copy()
    y0, x0 = rng.integers(6, 16, size=2)
    out[y0 : y0 + 6, x0 : x0 + 6] = 0  # a part of the stroke missing (a pen skipping)
    return out


def _perspective(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    src = np.float32([[0, 0], [27, 0], [27, 27], [0, 27]])
    dst = src + rng.uniform(-4, 4, size=(4, 2)).astype(np.float32)  # a photo taken at an angle
    return cv2.warpPerspective(x, cv2.getPerspectiveTransform(src, dst), (28, 28))


def _inverted_ink_halo(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    blurred = cv2.GaussianBlur(x, (0, 0), 2.5)
    return np.clip(x.astype(np.int16) // 2 + blurred, 0, 255).astype(np.uint8)  # ink bleeding into paper


HELD_OUT = {
    "pixelate": _pixelate,
    "jpeg q8": _jpeg,
    "dim (gamma 3)": _gamma,
    "lined paper": _grating,
    "pen skip": _cutout,
    "perspective": _perspective,
    "ink bleed": _inverted_ink_halo,
}


def held_out_sets(images: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Every held-out shift of (N, 28, 28) uint8 digits, seeded."""
    out = {}
    for i, (name, shift) in enumerate(HELD_OUT.items()):
        rng = np.random.default_rng([seed, i])
        out[name] = np.stack([shift(x, rng) for x in images])
    return out


def mean_sd(values: list[float]) -> dict:
    return {
        "n": len(values),
        "mean": round(statistics.mean(values), 5),
        "sd": round(statistics.stdev(values), 5) if len(values) > 1 else 0.0,
    }


def score(model, images: np.ndarray, labels: np.ndarray) -> float:
    from digitlab.data.images import to_unit_float
    from digitlab.models.forward import predict_logits

    return float(np.mean(predict_logits(model, to_unit_float(images)[..., None]).argmax(1) == labels))


def choose(seeds: tuple[int, ...]) -> dict:
    from digitlab.data.mnist import load_splits
    from digitlab.training.config import resolve_config
    from digitlab.training.train import train_and_evaluate

    splits = load_splits(validation_size=5000, seed=0)
    shifted = held_out_sets(splits.x_val)
    variants = {}
    for name, overrides in VARIANTS.items():
        rows = []
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                config = resolve_config(
                    recipe="robust", seed=seed, split_seed=0, out=f"{tmp}/run", deterministic=True, **overrides
                )
                started = time.perf_counter()
                model = train_and_evaluate(config, log=lambda *_: None).model  # its test number is not read
                seconds = time.perf_counter() - started
            row = {"seed": seed, "train_seconds": round(seconds, 1), "clean": score(model, splits.x_val, splits.y_val)}
            row.update({k: score(model, v, splits.y_val) for k, v in shifted.items()})
            row["held_out_mean"] = statistics.mean(row[k] for k in HELD_OUT)
            rows.append(row)
            print(name, row, flush=True)
        variants[name] = {
            "overrides": overrides,
            "runs": rows,
            "clean": mean_sd([r["clean"] for r in rows]),
            "held_out_mean": mean_sd([r["held_out_mean"] for r in rows]),
            "per_shift": {k: mean_sd([r[k] for r in rows]) for k in HELD_OUT},
        }
    best_clean = max(v["clean"]["mean"] for v in variants.values())
    eligible = {k: v for k, v in variants.items() if v["clean"]["mean"] >= best_clean - 0.001}
    chosen = max(eligible, key=lambda k: eligible[k]["clean"]["mean"] + eligible[k]["held_out_mean"]["mean"])
    return {"seeds": list(seeds), "split_seed": 0, "held_out": list(HELD_OUT), "variants": variants, "chosen": chosen}


def whole_command(flags: list[str], seed: int, tmp: str) -> dict:
    out = Path(tmp) / f"run-{seed}"
    started = time.perf_counter()
    digitlab = [sys.executable, "-m", "digitlab"]
    subprocess.run([*digitlab, "train", *flags, "--seed", str(seed), "--out", str(out)], check=True)
    seconds = time.perf_counter() - started
    metrics = json.loads((out / "metrics.json").read_text())
    return {"seed": seed, "seconds": round(seconds, 1), "test_accuracy": metrics["test"]["accuracy"]}


def test(seeds: tuple[int, ...]) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in TEST_RECIPES.items():
            rows = [whole_command(flags, seed, tmp) for seed in seeds]
            results[name] = {
                "command": "digitlab train " + " ".join(flags),
                "runs": rows,
                "test_accuracy": mean_sd([r["test_accuracy"] for r in rows]),
                "seconds": mean_sd([r["seconds"] for r in rows]),
            }
            print(name, results[name]["test_accuracy"], results[name]["seconds"], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--choose", action="store_true", help="variants × seeds on validation (clean + held out)")
    parser.add_argument("--test", action="store_true", help="the frozen recipes' test accuracy over seeds")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"cpus": __import__("os").cpu_count(), "platform": platform.platform()}
    if args.choose:
        results["choice"] = choose(CHOICE_SEEDS)
        print(f"chosen: {results['choice']['chosen']}")
    if args.test:
        results["test"] = test(TEST_SEEDS)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
