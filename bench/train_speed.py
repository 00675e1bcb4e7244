"""Training speed: the classic Keras MNIST example vs digitlab's `fast` recipe, and seconds per epoch.

Run: `.venv/bin/python bench/train_speed.py` (about 20 minutes on 2 cores; `--skip-epochs` for the race only,
`--skip-race` for the per-epoch table). Each training runs in its own process, one after the other, so they
never share the CPU and each one's peak memory is its own. Prints tables and writes
bench/results/train_speed.json.

Race, `--seeds` seeds a side (default 3), every time measured from process start, as a user waits:
(a) the classic Keras example recipe (the `cnn` with Dropout 0.5, Adam 1e-3, batch 128, up to 15 epochs, a 10%
validation split), in a child process that measures test accuracy after every epoch (the time spent measuring
is excluded) and stops at the first epoch at ≥ 99.0%: its time is from process start to the end of that epoch;
(b) the whole command `digitlab train --recipe fast --seed S --out DIR`, from process start to exit (the
finished run directory: data, training, the reload check and metrics included); its accuracy is the run's
test accuracy.

Per-epoch: every model × loop trains 2 epochs on 12,800 examples; the second epoch's time (no tracing) is
scaled to the 55,000-image epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "train_speed.json"
TARGET = 0.99
KERAS_EXAMPLE = {
    "model": "cnn",
    "recipe": "default",
    "epochs": 15,
    "batch_size": 128,
    "lr": 1e-3,
    "dropout": 0.5,
    "validation_size": 6000,
    "patience": 0,
    "schedule": "constant",
}
EPOCH_MODELS = [("mlp", "fit"), ("mlp", "custom"), ("raw-mlp", "custom"), ("cnn", "fit"), ("cnn", "custom")]
EPOCH_MODELS += [("fast-cnn", "fit"), ("fast-cnn", "custom"), ("deep-cnn", "fit"), ("deep-cnn", "custom")]
EPOCH_LIMIT = 12800


def child(spec: dict, out: Path, spawned: float) -> None:
    """Train one configuration, timing test accuracy after every epoch; write the result as JSON.

    `spawned` is the parent's wall clock when it started this process: times count from there.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from digitlab.data.mnist import load_mnist
    from digitlab.models.forward import predict_logits
    from digitlab.training.config import resolve_config
    from digitlab.training.train import train_and_evaluate

    spec = dict(spec)
    model, recipe = spec.pop("model"), spec.pop("recipe")
    eval_accuracy = spec.pop("eval_accuracy", True)
    stop_at_target = spec.pop("stop_at_target", False)
    with tempfile.TemporaryDirectory() as tmp:
        config = resolve_config(model, recipe, out=str(Path(tmp) / "run"), **spec)
        mnist = load_mnist()
        excluded, curve = 0.0, []

        def on_epoch_end(epoch, trained):
            nonlocal excluded
            t0 = time.time()
            elapsed = t0 - spawned - excluded
            if eval_accuracy:
                acc = float(np.mean(predict_logits(trained, mnist.x_test).argmax(1) == mnist.y_test))
                curve.append({"epoch": epoch, "seconds": round(elapsed, 2), "test_accuracy": acc})
                if stop_at_target and acc >= TARGET:
                    trained.stop_training = True  # the race is over for this side
            excluded += time.time() - t0

        result = train_and_evaluate(config, log=lambda *_: None, on_epoch_end=on_epoch_end)
        total = time.time() - spawned - excluded
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
        [sys.executable, __file__, "--child", json.dumps(spec), "--child-out", str(out), "--spawned", str(time.time())],
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


def keras_example(seed: int) -> dict:
    r = run_child({**KERAS_EXAMPLE, "seed": seed, "stop_at_target": True})
    reached = next((p for p in r["curve"] if p["test_accuracy"] >= TARGET), None)
    return {
        "seed": seed,
        "seconds": reached["seconds"] if reached else None,
        "epoch": reached["epoch"] if reached else None,
        "test_accuracy": reached["test_accuracy"] if reached else r["curve"][-1]["test_accuracy"],
        "peak_memory_mb": r["peak_memory_mb"],
    }


def digitlab_fast(seed: int, epochs: int | None = None) -> dict:
    """The whole `digitlab train --recipe fast` command, from process start to exit (with `epochs`: on 55,000
    images, validation held out, for choosing)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "digitlab", "train", "--recipe", "fast", "--seed", str(seed)]
        command += ["--epochs", str(epochs), "--no-full-train"] if epochs else []  # choosing: hold validation out
        start = time.perf_counter()
        proc = subprocess.Popen([*command, "--out", f"{tmp}/run"], stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{' '.join(command)} failed")
        metrics = json.loads(Path(f"{tmp}/run/metrics.json").read_text())
    return {
        "seed": seed,
        "seconds": round(seconds, 2),
        "epoch": metrics["epochs_run"],
        "validation_accuracy": metrics["validation"]["accuracy"],
        "test_accuracy": metrics["test"]["accuracy"],
        "peak_memory_mb": round(usage.ru_maxrss / 1024, 1),
    }


def choose_epochs(seeds: int, choices: tuple[int, ...] = (1, 2, 3)) -> dict:
    """The fast recipe's epoch count, chosen on the validation split: the fewest epochs whose mean validation
    accuracy over the seeds is ≥ 99.0% (seeds 100+ so the race's own seeds are not the ones chosen on)."""
    table = {}
    for epochs in choices:
        runs = [digitlab_fast(100 + s, epochs) for s in range(seeds)]
        table[epochs] = {
            "mean_validation_accuracy": round(statistics.mean(r["validation_accuracy"] for r in runs), 5),
            "seeds_at_99_validation": sum(r["validation_accuracy"] >= TARGET for r in runs),
            "mean_seconds": round(statistics.mean(r["seconds"] for r in runs), 2),
        }
        print(f"fast, {epochs} epoch(s): {table[epochs]}", flush=True)
    chosen = next((e for e, row in table.items() if row["mean_validation_accuracy"] >= TARGET), None)
    print(f"chosen on validation: {chosen} epoch(s)")
    return {"table": table, "chosen": chosen}


def race(seeds: int) -> dict:
    rows: dict = {"keras-example": [], "digitlab-fast": []}
    for seed in range(seeds):  # interleaved, so a slower spell of the machine hits both sides
        for name, fn in (("keras-example", keras_example), ("digitlab-fast", digitlab_fast)):
            print(f"race: {name} seed {seed} ...", flush=True)
            rows[name].append(fn(seed))
    summary = {}
    print(f"\n{'run':<16}{'seed':>5}{'seconds':>9}{'epoch':>7}{'test acc':>10}{'peak MB':>9}")
    for name, runs in rows.items():
        for r in runs:
            seconds = f"{r['seconds']:.1f}" if r["seconds"] is not None else "never"
            print(
                f"{name:<16}{r['seed']:>5}{seconds:>9}{r['epoch'] or '-':>7}{r['test_accuracy']:>10.4f}"
                f"{r['peak_memory_mb']:>9.0f}"
            )
        reached = [r for r in runs if r["test_accuracy"] >= TARGET and r["seconds"] is not None]
        times = [r["seconds"] for r in runs if r["seconds"] is not None]
        summary[name] = {
            "mean_seconds": round(statistics.mean(times), 2) if times else None,
            "sd_seconds": round(statistics.stdev(times), 2) if len(times) > 1 else None,
            "mean_test_accuracy": round(statistics.mean(r["test_accuracy"] for r in runs), 5),
            "seeds_at_99": f"{len(reached)}/{len(runs)}",
        }
        s = summary[name]
        print(
            f"{name}: mean {s['mean_seconds']} s (sd {s['sd_seconds']}), mean test accuracy "
            f"{s['mean_test_accuracy']:.4f}, {s['seeds_at_99']} seeds at ≥ 99.0%"
        )
    a, b = summary["keras-example"]["mean_seconds"], summary["digitlab-fast"]["mean_seconds"]
    if a and b:
        summary["speedup_to_99"] = round(a / b, 2)
        print(f"fast (whole command) is {a / b:.1f}× sooner than the Keras example at 99.0% (target ≥ 6×)")
    return {"runs": rows, "summary": summary}


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
    parser.add_argument("--seeds", type=int, default=3, help="seeds a side in the race (default 3)")
    parser.add_argument("--choose-epochs", action="store_true", help="only choose fast's epochs on validation")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(json.loads(args.child), Path(args.child_out), args.spawned)
    import platform

    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    if RESULTS.is_file():
        kept = ("race", "epoch_seconds", "fast_epochs")
        result.update({k: v for k, v in json.loads(RESULTS.read_text()).items() if k in kept})
    if args.choose_epochs:
        result["fast_epochs"] = choose_epochs(args.seeds)
        args.skip_race = args.skip_epochs = True
    if not args.skip_race:
        result["race"] = race(args.seeds)
    if not args.skip_epochs:
        result["epoch_seconds"] = epochs()
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
