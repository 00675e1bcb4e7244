"""Training speed: the classic Keras MNIST example vs digitlab's `fast` recipe, and seconds per epoch.

Run: `.venv/bin/python bench/train_speed.py` (about 15 minutes on 2 cores; `--skip-epochs` for the race only,
`--skip-race` for the per-epoch table). Each training runs in its own child process, one after the other,
so they never share the CPU and each one's peak memory is its own. Prints tables and writes
bench/results/train_speed.json.

Race: (a) the classic Keras example recipe: the `cnn` with Dropout 0.5, Adam 1e-3, batch 128, 15 epochs, a
10% validation split; (b) `digitlab train --recipe fast`. Test accuracy is measured after every epoch (the
time spent measuring it is excluded) to find the first time each reaches 99.0%.

Per-epoch: every model × loop trains 2 epochs on 12,800 examples; the second epoch's time (no tracing) is
scaled to the 55,000-image epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "train_speed.json"
TARGET = 0.99
RACE = {
    "keras-example": {
        "model": "cnn",
        "recipe": "default",
        "epochs": 15,
        "batch_size": 128,
        "lr": 1e-3,
        "dropout": 0.5,
        "validation_size": 6000,
        "patience": 0,
        "schedule": "constant",
    },
    "digitlab-fast": {"model": None, "recipe": "fast"},
}
EPOCH_MODELS = [("mlp", "fit"), ("mlp", "custom"), ("raw-mlp", "custom"), ("cnn", "fit"), ("cnn", "custom")]
EPOCH_MODELS += [("fast-cnn", "fit"), ("fast-cnn", "custom"), ("deep-cnn", "fit"), ("deep-cnn", "custom")]
EPOCH_LIMIT = 12800


def child(spec: dict, out: Path) -> None:
    """Train one configuration, timing test accuracy after every epoch; write the result as JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from digitlab.data.mnist import load_mnist
    from digitlab.models.forward import predict_logits
    from digitlab.training.config import resolve_config
    from digitlab.training.train import train_and_evaluate

    spec = dict(spec)
    model, recipe = spec.pop("model"), spec.pop("recipe")
    eval_accuracy = spec.pop("eval_accuracy", True)
    with tempfile.TemporaryDirectory() as tmp:
        config = resolve_config(model, recipe, out=str(Path(tmp) / "run"), **spec)
        mnist = load_mnist()
        start, excluded, curve = time.perf_counter(), 0.0, []

        def on_epoch_end(epoch, trained):
            nonlocal excluded
            t0 = time.perf_counter()
            elapsed = t0 - start - excluded
            if eval_accuracy:
                acc = float(np.mean(predict_logits(trained, mnist.x_test).argmax(1) == mnist.y_test))
                curve.append({"epoch": epoch, "seconds": round(elapsed, 2), "test_accuracy": acc})
            excluded += time.perf_counter() - t0

        result = train_and_evaluate(config, log=lambda *_: None, on_epoch_end=on_epoch_end)
        total = time.perf_counter() - start - excluded
        from digitlab.rundir import RunDir

        history = RunDir(result.run_dir).read_history()
    out.write_text(
        json.dumps(
            {
                "model": config.model,
                "loop": config.loop,
                "curve": curve,
                "total_seconds": round(total, 2),
                "final_test_accuracy": result.metrics["test"]["accuracy"],
                "epoch_seconds": [round(r["seconds"], 2) for r in history],
            }
        )
    )


def run_child(spec: dict) -> dict:
    """Run `child` in a fresh process; add its peak resident memory (from wait4's rusage)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec), "--child-out", str(out)],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"child {spec} failed with status {proc.returncode}")
    result = json.loads(out.read_text())
    out.unlink()
    result["peak_memory_mb"] = round(usage.ru_maxrss / 1024, 1)
    return result


def race(only: str | None = None, previous: dict | None = None) -> dict:
    rows = {k: v for k, v in (previous or {}).items() if k in RACE and only and k != only}
    for name, spec in RACE.items():
        if only and name != only:
            continue
        print(f"race: {name} ...", flush=True)
        r = run_child(spec)
        reached = next((p["seconds"] for p in r["curve"] if p["test_accuracy"] >= TARGET), None)
        r["seconds_to_99"] = reached
        rows[name] = r
    print(f"\n{'run':<16}{'model':<10}{'s to 99.0%':>12}{'total s':>10}{'test acc':>10}{'peak MB':>10}")
    for name, r in rows.items():
        reached = f"{r['seconds_to_99']:.1f}" if r["seconds_to_99"] is not None else "never"
        print(
            f"{name:<16}{r['model']:<10}{reached:>12}{r['total_seconds']:>10.1f}"
            f"{r['final_test_accuracy']:>10.4f}{r['peak_memory_mb']:>10.0f}"
        )
    a, b = rows["keras-example"].get("seconds_to_99"), rows["digitlab-fast"].get("seconds_to_99")
    if a and b:
        print(f"fast reaches 99.0% {a / b:.1f}× sooner than the Keras example (target ≥ 5×)")
        rows["speedup_to_99"] = round(a / b, 2)
    return rows


def epochs() -> dict:
    rows = {}
    for model, loop in EPOCH_MODELS:
        print(f"epoch time: {model} {loop} ...", flush=True)
        spec = {"model": model, "recipe": "default", "loop": loop, "epochs": 2, "limit": EPOCH_LIMIT}
        spec.update({"batch_size": 128, "patience": 0, "eval_accuracy": False})
        r = run_child(spec)
        rows[f"{model}/{loop}"] = round(r["epoch_seconds"][-1] * 55000 / EPOCH_LIMIT, 2)
    print(f"\n{'model':<10}{'fit s/epoch':>13}{'custom s/epoch':>16}{'custom vs fit':>15}")
    for model in dict.fromkeys(m for m, _ in EPOCH_MODELS):
        fit, custom = rows.get(f"{model}/fit"), rows.get(f"{model}/custom")
        ratio = f"{(custom / fit - 1) * 100:+.0f}%" if fit and custom else ""
        print(f"{model:<10}{fit or '-':>13}{custom or '-':>16}{ratio:>15}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-race", action="store_true", help="only the per-epoch table")
    parser.add_argument("--skip-epochs", action="store_true", help="only the race")
    parser.add_argument("--only", choices=list(RACE), help="rerun one side of the race, keep the other's result")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child), Path(args.child_out))
    import platform

    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    if RESULTS.is_file():
        result.update({k: v for k, v in json.loads(RESULTS.read_text()).items() if k in ("race", "epoch_seconds")})
    if not args.skip_race:
        result["race"] = race(args.only, result.get("race"))
    if not args.skip_epochs:
        result["epoch_seconds"] = epochs()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
