"""Kill -9 training at random moments, five times per mode, and resume with the same command.

Run: `.venv/bin/python bench/kill_resume.py` (about 6 minutes on 2 cores; `--kills N`, `--modes fit custom`).
Modes: `fit` (Keras model.fit + BackupAndRestore), `custom` (GradientTape loop + CheckpointManager) and
`launch` (two local workers of a MultiWorkerMirroredStrategy cluster, the custom loop). Each mode first
trains once without interruption; then the same command is started, killed with SIGKILL to its whole process
group (the launcher and both workers, as a crash would) at a random moment, and started again, until it has
been killed `--kills` times and then runs to the end. After every kill the run directory must not look
finished (no metrics.json) and every file in it that a later command reads must parse. The final model is
compared with the uninterrupted one: bit-identical weights, or the largest difference and both test
accuracies. Prints a table and writes bench/results/kill_resume.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "kill_resume.json"
TRAIN = [
    "train",
    "--model",
    "mlp",
    "--epochs",
    "12",
    "--limit",
    "8000",
    "--batch-size",
    "32",
    "--validation-size",
    "500",
    "--patience",
    "0",
]
MODES = {
    "fit": [*TRAIN, "--loop", "fit"],
    "custom": [*TRAIN, "--loop", "custom"],
    "launch": ["launch", "--workers", "2", "--timeout", "600", "--", *TRAIN, "--loop", "custom"],
}
EPOCH_LINE = {"fit": "val_accuracy", "custom": "val_acc", "launch": "val_acc"}  # one per finished epoch


def start(args: list[str], out: Path, log: Path) -> subprocess.Popen:
    with log.open("a") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "digitlab", *args, "--out", str(out)],
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill takes the launcher and its workers
            env=dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2"),
        )


def trusted_files_parse(run: Path) -> list[str]:
    """What a later command reads must be whole: config.json, history.csv and (if present) metrics.json."""
    problems = []
    if (run / "metrics.json").exists():
        problems.append("metrics.json written before the run finished")
    for name in ("config.json",):
        if (run / name).exists():
            try:
                json.loads((run / name).read_text())
            except ValueError:
                problems.append(f"{name} does not parse")
    if (run / "history.csv").exists():
        rows = list(csv.DictReader((run / "history.csv").open()))
        if any(None in r.values() or "" in r.values() for r in rows):
            problems.append("history.csv has a cut row")
    return problems


def test_accuracy(path: Path) -> float:
    return json.loads((path / "metrics.json").read_text())["test"]["accuracy"]


def mode_result(name: str, kills: int, rng: random.Random, tmp: Path) -> dict:
    """The uninterrupted run, then the killed-and-resumed one; compare their models."""
    import keras
    import numpy as np

    args = MODES[name]
    log = tmp / f"{name}.log"
    whole = tmp / f"{name}-whole"
    proc = start(args, whole, log)
    if proc.wait(timeout=900):
        raise SystemExit(f"{name}: the uninterrupted run failed; see {log}")
    killed, done, moments, problems, launches = tmp / f"{name}-killed", 0, [], [], 0
    t0 = time.perf_counter()
    while True:
        proc, launches = start(args, killed, log), launches + 1
        if done < kills:
            # after this launch has finished at least one epoch, a random moment within the next ~epoch:
            # mid-epoch, mid-checkpoint or mid-history-write
            before, started = log.read_text().count(EPOCH_LINE[name]), time.perf_counter()
            while proc.poll() is None and log.read_text().count(EPOCH_LINE[name]) <= before:
                time.sleep(0.05)
            if proc.poll() is None:
                time.sleep(rng.uniform(0.0, 3.0))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                done += 1
                moments.append(round(time.perf_counter() - started, 2))
                problems += trusted_files_parse(killed)
                continue
        if proc.wait(timeout=900):
            raise SystemExit(f"{name}: the resumed run failed; see {log}")
        if done < kills:
            raise SystemExit(f"{name}: the run finished before kill {done + 1}; give it more --epochs")
        break
    a = keras.saving.load_model(whole / "model.keras").get_weights()
    b = keras.saving.load_model(killed / "model.keras").get_weights()
    diff = max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))
    resumes = log.read_text().count("resumed from epoch") + log.read_text().count("resuming ")
    return {
        "kills": done,
        "kill_seconds": moments,
        "launches": launches,
        "resume_messages": resumes,
        "problems": problems,
        "bit_identical": diff == 0.0,
        "max_weight_difference": diff,
        "test_accuracy_uninterrupted": test_accuracy(whole),
        "test_accuracy_killed": test_accuracy(killed),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.modes:
            print(f"{name}: {args.kills} kills ...", flush=True)
            results[name] = mode_result(name, args.kills, rng, Path(tmp))
    print(
        f"\n{'mode':<8}{'kills':>6}{'problems':>10}{'identical':>11}{'max diff':>10}{'acc whole':>11}{'acc killed':>11}"
    )
    for name, r in results.items():
        print(
            f"{name:<8}{r['kills']:>6}{len(r['problems']):>10}{r['bit_identical']!s:>11}"
            f"{r['max_weight_difference']:>10.2g}{r['test_accuracy_uninterrupted']:>11.4f}{r['test_accuracy_killed']:>11.4f}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, results)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
