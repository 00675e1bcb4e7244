"""`digitlab import` time per kind of model, and the served latency of an imported model beside a trained one.

Run: `.venv/bin/python bench/import_speed.py [--requests 300]` — prints two tables and writes
bench/results/import_speed.json. The tutorial-style models come from `examples/tutorial_models.py` (trained once
into a temporary folder), the published-style files (an IR-3 ONNX, external weights, a Keras 2 SavedModel, TF
Serving's TF1 tutorial, a Keras 2.2 `.h5`, ...) from `examples/published_models.py`. Each import is timed as a user
waits for it: the whole `digitlab import` command in its own process, from start to exit (TensorFlow's import
included). Latency: each model served by `digitlab serve` (default runtime auto → ONNX Runtime) on a loopback port,
one client sending `POST /api/predict` with a 28×28 pixel array, one request at a time after 20 warm-up requests;
p50 and p90 of the round trip.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import served, write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "import_speed.json"
ROOT = Path(__file__).resolve().parents[1]
DIGITLAB = [str(Path(sys.executable).parent / "digitlab")]  # the venv's console script


def _example(name: str):
    """examples/NAME.py as a module (the tutorial-style and the published-style model files)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_imports(files: dict[str, Path], out: Path) -> list[dict]:
    rows = []
    for name, path in files.items():
        start = time.perf_counter()
        command = [*DIGITLAB, "import", str(path), "--out", str(out / name)]
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"import of {name} failed: {done.stderr.strip().splitlines()[-1]}")
        contract = json.loads((out / name / "contract.json").read_text())
        rows.append(
            {
                "model": name,
                "format": contract["format"],
                "seconds": round(seconds, 2),
                "detected": f"{contract['layout']}, {contract['scale']}, {contract['outputs']}",
            }
        )
    return rows


def served_latency(model: Path, pixels: list, requests: int) -> dict:
    import httpx

    with served(model) as (port, _), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        times = []
        for i in range(requests + 20):
            start = time.perf_counter()
            client.post("/api/predict", json={"pixels": pixels}).raise_for_status()
            if i >= 20:
                times.append((time.perf_counter() - start) * 1000)
        runtime = client.get("/api/model").json()["runtime"]
    times.sort()
    return {
        "runtime": runtime,
        "p50_ms": round(statistics.median(times), 2),
        "p90_ms": round(times[int(0.9 * len(times))], 2),
        "requests": requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="timed requests per served model (default 300)")
    args = parser.parse_args()
    from digitlab.data.mnist import load_mnist

    pixels = (load_mnist().x_test[0] / 255.0).round(4).tolist()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = _example("tutorial_models").save_all(tmp / "models", log=lambda *_: None)
        files |= _example("published_models").save_all(tmp / "published", log=lambda *_: None)
        imports = time_imports(files, tmp / "runs")
        trained = tmp / "runs" / "trained-cnn"
        subprocess.run(
            [*DIGITLAB, "train", "--model", "cnn", "--epochs", "1", "--limit", "5000", "--out", str(trained)],
            check=True,
            capture_output=True,
        )
        latency = {"digitlab-trained cnn": served_latency(trained, pixels, args.requests)}
        for name in ("cnn_softmax.keras", "module_784", "torch_style"):
            latency[f"imported {name}"] = served_latency(tmp / "runs" / name, pixels, args.requests)
    print("| model | format | detected | `digitlab import` (s, whole command) |\n|---|---|---|---|")
    for r in imports:
        print(f"| {r['model']} | {r['format']} | {r['detected']} | {r['seconds']:.1f} |")
    print("\n| served model | runtime | p50 ms | p90 ms |\n|---|---|---|---|")
    for name, r in latency.items():
        print(f"| {name} | {r['runtime']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count()
    write_results(RESULTS, {"cpus": cpus, "imports": imports, "latency": latency})
    print(f"\nwritten {RESULTS}")


if __name__ == "__main__":
    main()
