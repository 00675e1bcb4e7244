"""`make run` on a fresh run directory, step by step: how long until the draw-a-digit page serves.

Run: `.venv/bin/python bench/make_run.py` (about a minute on 2 cores). It runs the commands of the Makefile's
`run` target after the install (the `TRAIN ?=` line is read from the Makefile), each one timed from its process
start: fetch (here: MNIST already cached, so only the stamp check), train into a new temporary RUN_DIR,
`make report` (`digitlab evaluate`: the report and the calibration the page uses), then serve, timed to the line
announcing the runtime (the model loaded and, for the default ONNX runtime, its first export made) and to the first
200 from the page. Then a second `make run` on the same run: fetch, `make report` finding the report current, serve.
`--train "--model cnn"` times another default. Prints a table and adds a sample to bench/results/make_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import free_port, timed_command, write_results  # beside this file (a script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "make_run.json"
DIGITLAB = [sys.executable, "-m", "digitlab"]


def makefile_train_args() -> list[str]:
    match = re.search(r"^TRAIN \?= (.*)$", (ROOT / "Makefile").read_text(), re.M)
    return shlex.split(match.group(1)) if match else []


def serve_until_page(run_dir: Path, timeout: float = 300) -> tuple[float, float]:
    """Seconds from `digitlab serve` start to its 'serving …' line, and to the first 200 from /."""
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*DIGITLAB, "serve", "--model", str(run_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        for line in proc.stdout:  # "serving …" comes once the model is loaded (and exported for its runtime)
            if line.startswith("serving"):
                break
        else:
            raise SystemExit("serve exited before serving")
        announced = time.perf_counter() - start
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    if response.status == 200:
                        return round(announced, 2), round(time.perf_counter() - start, 2)
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the page did not answer")
    finally:
        proc.terminate()
        proc.wait(30)


def make_report(run_dir: Path) -> float:
    """Seconds `make report` takes on `run_dir` (the Makefile's own staleness check, then `digitlab evaluate` if
    stale), the venv's install stamp taken as done."""
    start = time.perf_counter()
    stamp = Path(sys.executable).parent / ".installed-serve"
    args = ["make", "-s", "--no-print-directory", "-o", str(stamp.relative_to(ROOT)), "report", f"RUN_DIR={run_dir}"]
    subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", help="the train flags (default: the Makefile's TRAIN)")
    args = parser.parse_args()
    train = shlex.split(args.train) if args.train is not None else makefile_train_args()
    steps: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "default"
        steps["fetch"] = timed_command(["fetch"])
        steps["train"] = timed_command(["train", *train, "--out", str(run_dir)])
        steps["evaluate and report"] = make_report(run_dir)
        steps["serve: model loaded (+ first export)"], steps["serve: page answers"] = serve_until_page(run_dir)
        test = json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"]
        again = {"fetch": timed_command(["fetch"]), "report (current)": make_report(run_dir)}
        again["serve: page answers"] = serve_until_page(run_dir)[1]
    total = steps["fetch"] + steps["train"] + steps["evaluate and report"] + steps["serve: page answers"]
    total_again = sum(again.values())
    print(f"\nmake run, train flags: {' '.join(train) or '(none)'}")
    for name, seconds in steps.items():
        print(f"  {name:<40}{seconds:>7.1f} s")
    print(f"  {'end of install → page serving':<40}{total:>7.1f} s   (test accuracy {test * 100:.2f}%)")
    for name, seconds in again.items():
        print(f"  again: {name:<33}{seconds:>7.1f} s")
    print(f"  {'a second make run → page serving':<40}{total_again:>7.1f} s")
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    entry = results.setdefault(" ".join(train) or "default", {})
    samples = entry.pop("samples", [dict(entry)] if entry else [])  # every run of the bench is kept
    sample = {"steps": steps, "total_seconds": round(total, 2), "test_accuracy": test, "load_average": os.getloadavg()}
    sample |= {"second_run_steps": again, "second_run_seconds": round(total_again, 2)}
    results[" ".join(train) or "default"] = {"samples": [*samples, sample]}
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, results)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
