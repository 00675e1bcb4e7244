"""What the benches that weigh a training option over seeds share (`outlier_exposure.py`, `served_copies.py`).

Their record of finished runs (one JSON line each, written at once, keyed by the refusal's schema so a changed
refusal measures kept runs again), mean ± sd over seeds, and the test check's scores of one run.
Imported by the bench scripts beside it: `from _seeded import ...`.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import commit_measured  # beside this file (a script's folder is on sys.path)


class RunRecord:
    """A bench's resumable record: `path` holds one JSON line per finished run, each with its `key`."""

    def __init__(self, path: Path, unmarked_schema: str):
        self.path = path
        self.unmarked_schema = unmarked_schema  # the refusal schema of lines written before lines carried one

    def lines(self) -> list[dict[str, Any]]:
        """Every recorded line, under any refusal."""
        text = self.path.read_text() if self.path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def recorded(self) -> dict[str, dict[str, Any]]:
        """The finished runs measured with the current refusal, by key."""
        from digitlab.inference.refusal import SCHEMA

        return {r["key"]: r for r in self.lines() if r.get("refusal_schema", self.unmarked_schema) == SCHEMA}

    def add(self, key: str, measured: dict[str, Any]) -> dict[str, Any]:
        """Append one run's line at once (with the commit and refusal measured); a run kept from an earlier line
        (`train_command_seconds` None) gets the training time recorded when it was trained."""
        from digitlab.inference.refusal import SCHEMA

        row = {"key": key, "commit": commit_measured(), "refusal_schema": SCHEMA, **measured}
        earlier = (r["train_command_seconds"] for r in self.lines() if r["key"] == key and r["train_command_seconds"])
        row["train_command_seconds"] = row["train_command_seconds"] or next(earlier, None)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        return row


def mean_sd(values: list[float]) -> dict[str, float]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(statistics.mean(values), 5), "sd": round(sd, 5)}


def scored_on_test(run: Path) -> dict[str, Any]:
    """One test-phase run scored once: test accuracy (its metrics.json), the real digits of `../shared` through the
    whole answer path (`real_digits.py`) and the refusal benchmark (`refusal.py`: drawn test digits, families)."""
    from digitlab.inference.predictor import Predictor
    from real_digits import SETS, SHARED, score_set
    from refusal import measure as refusal_measure

    predictor = Predictor.load(run, runtime="keras", log=lambda *_: None)
    real = {name: score_set(SHARED / name, predictor) for name in SETS}
    refusal = refusal_measure(str(run), 100, 100)["refusals"]
    return {
        "test_accuracy": json.loads((run / "metrics.json").read_text())["test"]["accuracy"],
        "real_digits": {name: r["styles"]["all"] for name, r in real.items() if r},
        "refusal": refusal["with features" if "with features" in refusal else "six features"],
    }


def test_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means ± sd over the seeds of one option's `scored_on_test` rows."""
    real = {
        name: {k: mean_sd([r["real_digits"][name][k] for r in rows]) for k in ("accuracy", "refused")}
        for name in rows[0]["real_digits"]
    }
    refusals = [r["refusal"] for r in rows]
    return {
        "seeds": len(rows),
        "test_accuracy": mean_sd([r["test_accuracy"] for r in rows]),
        "train_command_seconds": mean_sd([r["train_command_seconds"] for r in rows]),
        "real_digits": real,
        "non_digits_refused": mean_sd([r["non-digits refused (mean of families)"] for r in refusals]),
        "non_digits_refused_at_0.5%": mean_sd(
            [r["non-digits refused at q of drawn digits refused"]["0.005"] for r in refusals]
        ),
        "drawn_digits_refused": mean_sd([r["refused"]["drawn digits"] for r in refusals]),
    }


def train_kept(out: Path, flags: list[str], seed: int) -> tuple[Path, float | None]:
    """`digitlab train FLAGS --seed SEED --out OUT` as a whole command: (OUT, seconds from process start).

    A finished run already at OUT is kept (None seconds): only the measuring changed since it was trained.
    """
    if (out / "metrics.json").exists():
        return out, None
    started = time.perf_counter()
    command = [sys.executable, "-m", "digitlab", "train", *flags, "--seed", str(seed), "--out", str(out)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out, round(time.perf_counter() - started, 1)
