"""Soak: `digitlab serve` under a steady mixed load for minutes; errors, latency and memory growth over time.

Run: `.venv/bin/python bench/soak.py --model RUN [--minutes 10] [--workers 2] [--load 0.7]` — prints a table per
minute and writes bench/results/soak.json. First measures capacity (requests/s at 32 clients, 15 s, with the
same mix), then sends the mix at `--load` × capacity, open-loop (a fixed schedule, so a slow server meets
requests piling up, as in production): 80% 280 px canvas PNGs, 8% phone-photo JPEGs, 10% bad inputs (garbage
bytes, bad JSON, NaN pixels, a decompression bomb header), 2% explanations. Expected: bad inputs get their 4xx,
everything else 200; any 5xx or connection error counts as unexpected. Resident memory of every server process
is sampled each minute; growth is measured from the end of minute 1 (after warm-up) to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import served, write_results
from serve_load import process_tree, resident_mb

RESULTS = Path(__file__).parent / "results" / "soak.json"


def requests_mix() -> list[tuple[str, str, bytes, str, int]]:
    """(name, path, body, content type, expected status) — the pool the schedule draws from."""
    from PIL import Image

    from digitlab.data.mnist import load_mnist
    from digitlab.data.synthetic import browser_png, render

    mnist = load_mnist()
    pool = []
    for i in range(40):
        png = browser_png(render(mnist.x_test[i], "black-on-white", np.random.default_rng(i)).resize((280, 280)))
        body = json.dumps({"image": "data:image/png;base64," + base64.b64encode(png).decode()}).encode()
        pool.append(("canvas", "/api/predict", body, "application/json", 200))
    for i in range(6):
        buf = io.BytesIO()
        render(mnist.x_test[100 + i], "photo", np.random.default_rng(i)).convert("RGB").resize((1600, 1200)).save(
            buf, format="JPEG", quality=85
        )
        pool.append(("photo", "/api/predict", buf.getvalue(), "image/jpeg", 200))
    bomb = io.BytesIO()
    Image.new("1", (6000, 6000)).save(bomb, format="PNG")
    pool += [
        ("bad: garbage", "/api/predict", bytes(random.Random(0).getrandbits(8) for _ in range(2000)), "image/png", 400),
        ("bad: json", "/api/predict", b'{"image": ', "application/json", 400),
        (
            "bad: NaN",
            "/api/predict",
            b'{"pixels": [' + b",".join([b"[" + b",".join([b"NaN"] * 28) + b"]"] * 28) + b"]}",
            "application/json",
            400,
        ),
        ("bad: bomb", "/api/predict", bomb.getvalue(), "image/png", 413),
    ]
    explain = json.loads(pool[0][2])
    explain["steps"] = 32
    pool.append(("explain", "/api/explain", json.dumps(explain).encode(), "application/json", 200))
    return pool


def draw(pool, rng: random.Random):
    r = rng.random()
    kind = "canvas" if r < 0.80 else "photo" if r < 0.88 else "bad" if r < 0.98 else "explain"
    return rng.choice([p for p in pool if p[0].startswith(kind)])


async def send(host: str, port: int, item, stats: dict) -> None:
    name, path, body, content_type, expected = item
    start = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 60)
        await reader.read()
        writer.close()
        status = int(status_line.split()[1])
    except (TimeoutError, OSError, IndexError, ValueError) as e:
        stats["unexpected"].append(f"{name}: {type(e).__name__}")
        return
    stats["latency"].append((time.perf_counter() - start) * 1000)
    stats["count"] += 1
    if status == 429 and name == "explain":  # the explainer's bounded queue saying "busy": by design
        stats["busy"] = stats.get("busy", 0) + 1
    elif status != expected or status >= 500:
        stats["unexpected"].append(f"{name}: {status} (expected {expected})")


async def run_load(port: int, pool, rate: float, seconds: float, seed: int, on_minute=None) -> list[dict]:
    rng = random.Random(seed)
    minutes, stats = [], {"count": 0, "latency": [], "unexpected": []}
    start = time.perf_counter()
    tasks, next_minute, i = set(), 60.0, 0
    while (now := time.perf_counter() - start) < seconds:
        due = i / rate
        if due > now:
            await asyncio.sleep(min(due - now, 0.01))
        else:
            task = asyncio.create_task(send("127.0.0.1", port, draw(pool, rng), stats))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if now >= next_minute or (now >= seconds - 0.01 and not minutes):
            minutes.append(summarise(stats, 60.0, on_minute))
            stats = {"count": 0, "latency": [], "unexpected": []}
            next_minute += 60.0
    await asyncio.gather(*tasks)
    if stats["count"] or stats["unexpected"]:
        minutes.append(summarise(stats, seconds - 60.0 * len(minutes), on_minute))
    return minutes


def summarise(stats: dict, seconds: float, on_minute) -> dict:
    lat = np.array(stats["latency"]) if stats["latency"] else np.array([np.nan])
    row = {
        "requests": stats["count"],
        "requests_per_s": round(stats["count"] / max(seconds, 1e-9), 1),
        "p50_ms": round(float(np.nanpercentile(lat, 50)), 2),
        "p99_ms": round(float(np.nanpercentile(lat, 99)), 2),
        "unexpected": len(stats["unexpected"]),
        "explain_busy_429": stats.get("busy", 0),
        "unexpected_examples": stats["unexpected"][:5],
    }
    if on_minute:
        row.update(on_minute())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--load", type=float, default=0.7, help="share of the measured capacity (default 0.7)")
    args = parser.parse_args()
    pool = requests_mix()
    with served(args.model, "--workers", str(args.workers), quiet=False) as (port, server):
        time.sleep(2)

        def memory() -> dict:
            return {"resident_mb": [resident_mb(p) for p in process_tree(server.pid)]}

        # capacity: closed loop, 32 clients, same mix
        async def capacity() -> float:
            rng, stats, end = random.Random(1), {"count": 0, "latency": [], "unexpected": []}, time.perf_counter() + 15

            async def client():
                while time.perf_counter() < end:
                    await send("127.0.0.1", port, draw(pool, rng), stats)

            await asyncio.gather(*(client() for _ in range(32)))
            return stats["count"] / 15.0

        cap = asyncio.run(capacity())
        rate = cap * args.load
        print(
            f"capacity {cap:.0f} requests/s with the mix; soaking at {rate:.0f}/s for {args.minutes:g} min", flush=True
        )
        minutes = asyncio.run(run_load(port, pool, rate, args.minutes * 60, seed=2, on_minute=memory))
    print(f"{'minute':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'unexpected':>12}  resident MB per process")
    for n, m in enumerate(minutes, 1):
        print(
            f"{n:>6}{m['requests_per_s']:>9}{m['p50_ms']:>9}{m['p99_ms']:>9}{m['unexpected']:>12}  {m['resident_mb']}"
        )
    first, last = minutes[0]["resident_mb"], minutes[-1]["resident_mb"]
    growth = [round(b - a, 1) for a, b in zip(first, last, strict=False)]
    total_unexpected = sum(m["unexpected"] for m in minutes)
    print(f"unexpected answers: {total_unexpected}; memory growth after minute 1, per process: {growth} MB")
    result = {
        "capacity_rps": round(cap, 1),
        "rate_rps": round(rate, 1),
        "minutes": minutes,
        "memory_growth_mb": growth,
        "unexpected": total_unexpected,
        "workers": args.workers,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
