"""`digitlab compare`: one row of main metrics per run, as a Markdown table and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from digitlab.atomic import atomic_write_json, atomic_write_text
from digitlab.evaluation.evaluate import evaluate_model

COMPARE_COLUMNS = [
    ("accuracy", "accuracy"),
    ("top-2", "top2_accuracy"),
    ("macro F1", "macro_f1"),
    ("NLL", "nll"),
    ("ECE", "ece"),
    ("ECE (T)", "ece_after"),
    ("T", "temperature"),
    ("epochs", "epochs"),
    ("train s", "train_seconds"),
    ("params", "parameters"),
]


def compare_runs(runs: list[str | Path], out: str | Path | None = None) -> tuple[list[dict[str, Any]], str]:
    """One row of main metrics per run, evaluating on test any run without a report yet.

    Evaluating here never writes a model's `calibration.json`: comparing does not change what `serve` answers.

    Args:
        runs: run directories or model files.
        out: when given, the table is also written to `out.md` and the rows to `out.json`.

    Returns:
        The rows (run, model, accuracy, top-2, macro F1, NLL, ECE before and after temperature, T, epochs,
        training seconds, parameters) and the Markdown table.
    """
    rows = []
    for run in runs:
        run = Path(run)
        report = (run if run.is_dir() else run.parent) / "report" / "metrics.json"
        if run.is_dir() and report.is_file():
            metrics = json.loads(report.read_text())
        else:
            metrics = evaluate_model(run, report=False, calibrate=False).metrics  # never changes what serve answers
        training = {}
        if run.is_dir() and (run / "metrics.json").is_file():
            training = json.loads((run / "metrics.json").read_text())
        rows.append(
            {
                "run": str(run),
                "model": metrics["model"],
                "accuracy": metrics["accuracy"],
                "top2_accuracy": metrics["top2_accuracy"],
                "macro_f1": metrics["macro_avg"]["f1-score"],
                "nll": metrics["calibration"]["before"]["nll"],
                "ece": metrics["calibration"]["before"]["ece"],
                "ece_after": metrics["calibration"]["after"]["ece"],
                "temperature": metrics["calibration"]["after"]["temperature"],
                "epochs": training.get("epochs_run"),
                "train_seconds": training.get("train_seconds"),
                "parameters": training.get("parameters"),
            }
        )
    table = format_table(rows)
    if out:
        out = Path(out)
        atomic_write_json(out.with_suffix(".json"), rows)
        atomic_write_text(out.with_suffix(".md"), table + "\n")
    return rows, table


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows of `compare_runs` as a Markdown table.

    Args:
        rows: one dict per run with the keys of `COMPARE_COLUMNS`.

    Returns:
        The table; missing values show as "-".
    """

    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4f}" if v < 10 else f"{v:.1f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    header = ["run", "model", *[c for c, _ in COMPARE_COLUMNS]]
    body = [[r["run"], r["model"], *[cell(r[k]) for _, k in COMPARE_COLUMNS]] for r in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
