"""How long loading verified MNIST from the data directory takes (cheap re-verify + IDX parse).

Run: `.venv/bin/python bench/load_speed.py` — prints a table and writes bench/results/load_speed.json.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from _common import timings, write_results  # beside this file (a script's folder is on sys.path)
from digitlab.data.fetch import default_data_dir, fetch_mnist, verify_data_dir
from digitlab.data.mnist import load_mnist


def main() -> None:
    data_dir = fetch_mnist(default_data_dir()).data_dir
    load_mnist(data_dir)  # warm the page cache: we measure the loader, not the disk
    rows = {
        "load_mnist (cheap verify + parse)": timings(lambda: load_mnist(data_dir), 10),
        "verify_data_dir (stamp check)": timings(lambda: verify_data_dir(data_dir), 10),
        "verify_data_dir full (re-hash)": timings(lambda: verify_data_dir(data_dir, full=True), 3),
    }
    print(f"{'what':<36}{'median s':>10}{'min s':>10}")
    result = {}
    for name, times in rows.items():
        result[name] = {"median_s": statistics.median(times), "min_s": min(times), "runs": len(times)}
        print(f"{name:<36}{statistics.median(times):>10.4f}{min(times):>10.4f}")
    out = Path(__file__).parent / "results" / "load_speed.json"
    out.parent.mkdir(exist_ok=True)
    write_results(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
