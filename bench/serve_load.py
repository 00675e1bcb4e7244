"""Load test of `digitlab serve` on loopback: requests/s and latency percentiles at 1 and 32 clients.

Run: `.venv/bin/python bench/serve_load.py --model RUN_OR_MODEL [--seconds 10] [--workers 1 2]
[--runtimes onnx keras]`. For each runtime and worker count it starts the server on a free 127.0.0.1 port
(timing it from process start to the first ready answer of /readyz, and reading each process's resident
memory once it is ready), drives it with keep-alive HTTP/1.1 clients (plain asyncio streams, so the
load generator itself stays cheap), for a bounded time per phase, then stops it. Prints a table and writes
bench/results/serve_load.json. Routes: /api/predict with a canvas PNG (JSON data URL, what the page sends)
and the TF Serving route with one 28×28 instance. Also reports the server's CPU time per request (all its
processes, from /proc), which says more than requests/s when the load generator shares the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import time
from pathlib import Path

import numpy as np

from _common import served, write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "serve_load.json"


def payloads() -> dict[str, tuple[str, bytes]]:
    from digitlab.data.mnist import load_mnist
    from digitlab.data.synthetic import browser_png, render

    mnist = load_mnist()
    image = render(mnist.x_test[0], "black-on-white", np.random.default_rng(0))
    png = browser_png(image.resize((280, 280)))  # the page's canvas: 280 CSS px, RGBA, as Chromium encodes it
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    return {
        "/api/predict (canvas PNG)": ("/api/predict", json.dumps({"image": url}).encode()),
        "TF Serving (28×28 instance)": (
            "/v1/models/digits:predict",
            json.dumps({"instances": [mnist.x_test[1].tolist()]}).encode(),
        ),
    }


async def client(port: int, path: str, body: bytes, deadline: float, latencies: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    try:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - start) * 1000)
            if b" 200 " not in status_line:
                errors.append(status_line.decode().strip())
    except (ConnectionError, asyncio.IncompleteReadError) as e:
        errors.append(type(e).__name__)
    finally:
        writer.close()


async def phase(port: int, path: str, body: bytes, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    await asyncio.gather(*(client(port, path, body, deadline, latencies, errors) for _ in range(clients)))
    wall = time.perf_counter() - start
    q = np.percentile(latencies, [50, 95, 99]) if latencies else [float("nan")] * 3
    return {
        "clients": clients,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(float(q[0]), 2),
        "p95_ms": round(float(q[1]), 2),
        "p99_ms": round(float(q[2]), 2),
        "errors": len(errors),
    }


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (the uvicorn workers), from /proc (Linux)."""
    total, pids = 0.0, [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue  # gone, or not Linux
    return total


def process_tree(pid: int) -> list[int]:
    pids, out = [pid], []
    while pids:
        current = pids.pop()
        out.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def run_server(model: str, workers: int, seconds: float, runtime: str) -> dict[str, dict]:
    """Start `digitlab serve` with `workers` processes and `runtime`, time its start, run every phase, stop it."""
    start = time.perf_counter()
    with served(model, "--workers", str(workers), "--runtime", runtime, quiet=False) as (port, server):
        ready = time.perf_counter() - start
        time.sleep(1.0 if workers > 1 else 0)  # with several workers, let every one finish loading
        memory = [resident_mb(pid) for pid in process_tree(server.pid)]
        rows = {"start": {"ready_s": round(ready, 2), "resident_mb_per_process": memory}}
        for name, (path, body) in payloads().items():
            asyncio.run(phase(port, path, body, 4, 2.0))  # warm-up (every worker process traces its model)
            for clients in (1, 32):
                cpu = server_cpu_seconds(server.pid)
                row = asyncio.run(phase(port, path, body, clients, seconds))
                cpu = server_cpu_seconds(server.pid) - cpu
                row["server_cpu_ms_per_request"] = round(cpu * 1000 / max(row["requests"], 1), 2)
                rows[f"{name} @ {clients}"] = row
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run directory or .keras file")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase (default 10)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="server worker processes to try (default: 1 2)"
    )
    parser.add_argument(
        "--runtimes", nargs="+", default=["onnx", "keras"], help="model runtimes to try (default: onnx keras)"
    )
    args = parser.parse_args()
    results = {
        runtime: {workers: run_server(args.model, workers, args.seconds, runtime) for workers in args.workers}
        for runtime in args.runtimes
    }
    print(
        f"{'route @ clients':<36}{'runtime':>8}{'workers':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}{'server CPU ms/req':>19}"
    )
    for runtime, by_workers in results.items():
        for workers, rows in by_workers.items():
            for name, r in rows.items():
                if name == "start":
                    continue
                print(
                    f"{name:<36}{runtime:>8}{workers:>8}{r['requests_per_s']:>9}{r['p50_ms']:>9}{r['p95_ms']:>9}"
                    f"{r['p99_ms']:>9}{r['errors']:>8}{r['server_cpu_ms_per_request']:>19}"
                )
    print(f"\n{'start-up':<20}{'runtime':>8}{'workers':>8}{'s to /readyz':>14}  resident MB per process")
    for runtime, by_workers in results.items():
        for workers, rows in by_workers.items():
            start = rows["start"]
            print(f"{'':<20}{runtime:>8}{workers:>8}{start['ready_s']:>14}  {start['resident_mb_per_process']}")
    result = {"seconds": args.seconds, "cpus": os.cpu_count(), "by_runtime": results}
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
