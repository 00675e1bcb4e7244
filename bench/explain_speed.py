"""How fast the explanations are: `/api/explain` over HTTP, the layer maps alone, and the per-model views.

Run: `.venv/bin/python bench/explain_speed.py --model RUN [--requests 200]` — prints a table and writes
bench/results/explain_speed.json. Starts `digitlab serve` on a free 127.0.0.1 port (default runtime), sends
one warm-up explanation (it loads TensorFlow and the training digits' map), then `--requests` explanations
of a 280 px browser-encoded canvas PNG from one client: IG at 32 steps + every layer's map + the map
placement, as the page asks. In-process: the layer maps alone (activations + PNGs) for the 28×28, and the
time to build the per-model views from scratch (the t-SNE map; cached in RUN/explain afterwards).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results" / "explain_speed.json"


def post(url: str, body: bytes) -> dict:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=120).read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run directory")
    parser.add_argument("--requests", type=int, default=200, help="timed /api/explain requests (default 200)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import served, write_results
    from digitlab.data.mnist import load_mnist
    from digitlab.data.synthetic import browser_png, render

    mnist = load_mnist()
    png = browser_png(render(mnist.x_test[0], "black-on-white", np.random.default_rng(0)).resize((280, 280)))
    body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(png).decode(), "steps": 32}).encode()
    with served(args.model, quiet=False) as (port, _):
        url = f"http://127.0.0.1:{port}"
        start = time.perf_counter()
        post(url + "/api/explain", body)
        first = time.perf_counter() - start
        times, server_ms = [], []
        for _ in range(args.requests):
            start = time.perf_counter()
            answer = post(url + "/api/explain", body)
            times.append((time.perf_counter() - start) * 1000)
            server_ms.append(answer["timing_ms"])

    from digitlab.tf_logging import import_tensorflow

    import_tensorflow()
    from digitlab.explain import embedding
    from digitlab.explain.explanation import ModelExplainer
    from digitlab.explain.render import layer_views

    explainer = ModelExplainer.load(args.model)
    pixels = (mnist.x_test[0] / 255.0).astype(np.float32)
    layer_views(explainer.explainer.activations(pixels))
    layer_ms = []
    for _ in range(200):
        start = time.perf_counter()
        layer_views(explainer.explainer.activations(pixels))
        layer_ms.append((time.perf_counter() - start) * 1000)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        embedding.load_or_build(explainer.explainer, Path(tmp) / "embedding.npz", "bench")
        views_s = time.perf_counter() - start
    result = {
        "requests": args.requests,
        "api_explain_ms": {"p50": round(statistics.median(times), 2), "p95": round(float(np.percentile(times, 95)), 2)},
        "server_side_ms_p50": {k: round(statistics.median(t[k] for t in server_ms), 2) for k in server_ms[0]},
        "first_explain_s": round(first, 2),
        "layer_maps_ms_p50": round(statistics.median(layer_ms), 2),
        "model_views_s": round(views_s, 1),
    }
    api = result["api_explain_ms"]
    print(
        f"/api/explain, canvas PNG, IG 32 steps + layer maps + map, 1 client: p50 {api['p50']} ms, "
        f"p95 {api['p95']} ms (server side p50: {result['server_side_ms_p50']})"
    )
    print(f"first /api/explain after start (loads TensorFlow and the explainer): {result['first_explain_s']} s")
    print(f"layer maps alone (activations + PNGs), in process: p50 {result['layer_maps_ms_p50']} ms")
    print(f"per-model views (t-SNE map of 2,500 training digits) from scratch: {result['model_views_s']} s")
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
