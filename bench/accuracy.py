"""Accuracy, honestly: seeds of one recipe, their mean ± sd, and the ensemble of the first K.

Run: `.venv/bin/python bench/accuracy.py --recipe best --seeds 5 --ensemble 5` (about 20 minutes a model on 2
cores). Each seed is one whole `digitlab train --recipe R --seed S --out RUNS/seed-S` command, timed from
process start to exit; a finished run directory is adopted, not retrained, so the bench resumes where it
stopped. The ensemble takes the first K seeds (fixed in advance, never chosen on the test set) through
`digitlab ensemble`. Every run's seed, epochs, wall time, validation and test accuracy go to
bench/results/accuracy.json (one entry per recipe); the table is printed.

The protocol: every setting of the recipe, and the ensemble's test-time augmentation, is chosen on the
validation split; the test set is read once per reported model (at the end of its run); the single-model
figure is the mean ± sd over the first `--singles` seeds, never the best seed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "accuracy.json"
DIGITLAB = [sys.executable, "-m", "digitlab"]


def timed(command: list[str], log: Path) -> float:
    """Run a whole command (its own process), output to `log`; return wall seconds from start to exit."""
    start = time.perf_counter()
    with log.open("a") as f:
        code = subprocess.call(command, stdout=f, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if code:
        raise SystemExit(f"{' '.join(command)} failed ({code}); see {log}")
    return round(time.perf_counter() - start, 1)


def train_seed(recipe: str, seed: int, runs: Path, extra: list[str]) -> dict:
    out = runs / f"seed-{seed}"
    stamp = out / "bench.json"  # the command time, kept beside the run so a rerun of the bench adopts it
    if not (out / "metrics.json").is_file():
        print(f"training {recipe} seed {seed} → {out}", flush=True)
        command = [*DIGITLAB, "train", "--recipe", recipe, "--seed", str(seed), "--out", str(out), *extra]
        seconds = timed(command, runs / f"seed-{seed}.log")
        stamp.write_text(json.dumps({"command_seconds": seconds, "command": command[2:]}))
    metrics = json.loads((out / "metrics.json").read_text())
    timing = json.loads(stamp.read_text()) if stamp.is_file() else {}
    return {
        "seed": seed,
        "run": str(out),
        "epochs": metrics["epochs_run"],
        "command_seconds": timing.get("command_seconds"),  # None: the run was made outside the bench
        "train_seconds": metrics["train_seconds"],
        "validation_accuracy": metrics["validation"]["accuracy"],
        "test_accuracy": metrics["test"]["accuracy"],
    }


def ensemble(rows: list[dict], runs: Path, k: int, tta: str) -> dict:
    out = runs / f"ensemble-{k}"
    seconds = None
    if not (out / "metrics.json").is_file():
        print(f"ensemble of seeds 0..{k - 1} → {out}", flush=True)
        command = [*DIGITLAB, "ensemble", *[r["run"] for r in rows[:k]], "--out", str(out), "--tta", tta]
        seconds = timed(command, runs / f"ensemble-{k}.log")
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "members": k,
        "run": str(out),
        "tta": metrics["tta"],
        "command_seconds": seconds,
        "validation_accuracy": metrics["validation"]["accuracy"],
        "test_accuracy": metrics["test"]["accuracy"],
    }


def mean_sd(values: list[float]) -> dict:
    return {
        "n": len(values),
        "mean": round(statistics.mean(values), 5),
        "sd": round(statistics.stdev(values), 5) if len(values) > 1 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="best")
    parser.add_argument("--seeds", type=int, default=5, help="train seeds 0..N-1 (default 5)")
    parser.add_argument("--singles", type=int, default=3, help="report the single-model mean over the first N")
    parser.add_argument("--ensemble", type=int, default=5, help="ensemble the first K seeds; 0 = none")
    parser.add_argument("--tta", choices=("off", "auto", "on"), default="auto", help="the ensemble's --tta")
    parser.add_argument("--runs", type=Path, help="where the runs go (default runs/<recipe>)")
    parser.add_argument("extra", nargs="*", help="-- then more `digitlab train` flags (e.g. --limit 2000)")
    args = parser.parse_args()
    runs = args.runs or Path("runs") / args.recipe
    runs.mkdir(parents=True, exist_ok=True)
    rows = [train_seed(args.recipe, s, runs, args.extra) for s in range(args.seeds)]
    singles = rows[: args.singles]
    entry = {
        "runs": rows,
        "single": {
            "seeds": [r["seed"] for r in singles],
            "test": mean_sd([r["test_accuracy"] for r in singles]),
            "validation": mean_sd([r["validation_accuracy"] for r in singles]),
        },
        "all_seeds_test": mean_sd([r["test_accuracy"] for r in rows]),
    }
    if args.ensemble >= 2:
        entry["ensemble"] = ensemble(rows, runs, min(args.ensemble, len(rows)), args.tta)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    results[args.recipe] = entry
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, results)

    print(f"\n{'seed':>5}{'epochs':>8}{'command s':>11}{'validation':>12}{'test':>9}")
    for r in rows:
        seconds = f"{r['command_seconds']:.0f}" if r["command_seconds"] else f"({r['train_seconds']:.0f})"
        print(f"{r['seed']:>5}{r['epochs']:>8}{seconds:>11}{r['validation_accuracy']:>12.4f}{r['test_accuracy']:>9.4f}")
    t = entry["single"]["test"]
    sd = f" ± {t['sd'] * 100:.2f}" if t["sd"] is not None else ""
    print(f"single model, seeds {entry['single']['seeds']}: test {t['mean'] * 100:.2f}%{sd} (mean ± sd)")
    if "ensemble" in entry:
        e = entry["ensemble"]
        tta = "on" if e["tta"]["used"] else "off"
        print(f"ensemble of {e['members']} (tta {tta}): test {e['test_accuracy'] * 100:.2f}%")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
