"""Real handwriting, answered as `digitlab predict` answers it: both shared sets, by style.

Run: .venv/bin/python bench/real_digits.py [RUN ...] [--label NAME]   (default RUN: runs/default)

The sets are `../shared/real-digits` (95 digits) and `../shared/real-digits-2` (128), digits people drew or
photographed to try their own apps, read where they lie (never copied; a set that is absent is skipped). Each
file goes through the whole answer path (preprocessing, the model, the refusal, the verdict) and is counted
right (a digit, the true one), wrong (another digit), blank (no digit found: a lost digit) or refused ("not a
digit" or "several digits" for a good single digit). Evaluation only: nothing is chosen on these numbers.
Writes bench/results/real_digits.json, one entry per `--label` (default: the run's folder name), with the commit
it was measured at and the files answered wrongly, so a change to preprocessing or a new default is compared
set by set and style by style.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path
from typing import Any

from _common import commit_measured, write_results  # beside this file (a script's folder is on sys.path)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SETS = ("real-digits", "real-digits-2")
RESULTS = Path(__file__).parent / "results" / "real_digits.json"
OUTCOMES = ("right", "wrong", "blank", "refused")


def outcome(prediction, truth: int) -> str:
    """right | wrong | blank | refused for one `Prediction` of a digit whose label is `truth`."""
    if prediction.error is not None or prediction.verdict == "blank":
        return "blank"
    if prediction.verdict != "digit":
        return "refused"
    return "right" if prediction.label == truth else "wrong"


def score_set(folder: Path, predictor) -> dict[str, Any] | None:
    """Counts per style and overall for one shared set, and the files not answered right."""
    from digitlab.inference.predict import predict_files

    if not (folder / "labels.csv").is_file():
        return None
    rows = list(csv.DictReader((folder / "labels.csv").open()))
    paths = [folder / "images" / r["file"] for r in rows]
    predictions = list(predict_files(paths, predictor, progress=False, workers=1))
    table: dict[str, dict[str, int]] = {}
    misses = []
    for row, prediction in zip(rows, predictions, strict=True):
        said = outcome(prediction, int(row["label"]))
        for key in ("all", row["style"]):
            counts = table.setdefault(key, dict.fromkeys(OUTCOMES, 0))
            counts[said] += 1
        if said != "right":
            misses.append({"file": row["file"], "label": int(row["label"]), "outcome": said, "said": _said(prediction)})
    for counts in table.values():
        counts["n"] = sum(counts[k] for k in OUTCOMES)
        counts["accuracy"] = round(counts["right"] / counts["n"], 4)
    return {"styles": table, "misses": misses}


def _said(prediction) -> str:
    if prediction.answer is None:
        return prediction.error
    if prediction.verdict != "digit":
        return prediction.answer.reason
    return f"{prediction.label} ({max(prediction.answer.probabilities):.2f})"


def main() -> None:
    from digitlab.inference.predictor import Predictor

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("runs", nargs="*", default=["runs/default"], help="run directories (default runs/default)")
    parser.add_argument("--label", help="the entry's name in the results (default: the run's folder name)")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for run in args.runs:
        predictor = Predictor.load(run, runtime="keras", log=lambda *_: None)
        entry: dict[str, Any] = {"run": run, "commit": commit_measured(), "cpus": os.cpu_count()}
        for name in SETS:
            entry[name] = score_set(SHARED / name, predictor)
        label = args.label if args.label and len(args.runs) == 1 else Path(run).name
        results[label] = entry
        print(f"\n{label} ({run}, {entry['commit']})")
        print(f"  {'set':<14} {'style':<8} {'n':>4} {'right':>7} {'wrong':>6} {'blank':>6} {'refused':>8}")
        for name in SETS:
            for style, c in (entry[name] or {}).get("styles", {}).items():
                print(
                    f"  {name:<14} {style:<8} {c['n']:>4} {c['accuracy']:>7.1%} {c['wrong']:>6} {c['blank']:>6} "
                    f"{c['refused']:>8}"
                )
    RESULTS.parent.mkdir(exist_ok=True)
    write_results(RESULTS, results)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
