"""MkDocs hook: the site's generated parts, so that what it shows cannot drift from what is committed.

Two markers, each an HTML comment on a line of its own, are replaced before the Markdown is rendered:

- `<!-- bench: NAME -->` becomes the tables of `bench/results/NAME.json` (one renderer per bench below), or a
  note that the bench has not been re-run since its results started being committed;
- `<!-- api-modules: PLANE -->` becomes one mkdocstrings block (`::: digitlab.PLANE.module`) per module found in
  `src/digitlab/PLANE/`, so a module added, moved or removed changes the API reference without a docs edit.

A marker naming an unknown bench or plane raises, which fails `mkdocs build --strict` (`make docs-check`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
PACKAGE = ROOT / "src" / "digitlab"

BENCH_MARKER = re.compile(r"^<!-- bench: ([a-z_]+) -->$", re.MULTILINE)
API_MARKER = re.compile(r"^<!-- api-modules: ([a-z_.]+) -->$", re.MULTILINE)

Row = list[str]


def table(header: Row, rows: list[Row]) -> str:
    """A Markdown table.

    Args:
        header: the column titles.
        rows: one list of cell texts per row, each as long as `header`.

    Returns:
        The table as Markdown lines, with a trailing newline.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def pct(x: float, digits: int = 2) -> str:
    """A fraction in [0, 1] as a percentage, e.g. `0.99226` → `99.23%`."""
    return f"{100 * x:.{digits}f}%"


def fast_recipe(data: dict[str, Any]) -> str:
    """The fast recipe's choice on validation, its test accuracy over seeds, and where a command's time goes."""
    out = [
        "**Choice on validation** (one epoch, 55,000 images, split seed 0, seeds "
        f"{min(data['choice']['seeds'])}–{max(data['choice']['seeds'])}; the test set not read):\n\n"
    ]
    rows = []
    for name, variant in data["choice"]["variants"].items():
        v = variant["validation"]
        rows.append([name, f"{pct(v['mean'])} ± {100 * v['sd']:.2f}", f"{v['at_99']}/{v['n']}"])
    out.append(table(["variant", "validation accuracy, mean ± sd", "seeds at ≥ 99.0%"], rows))
    out.append(f"\nDropped by the rule fixed beforehand: {', '.join(data['choice']['dropped'])}.\n")
    rows = []
    for key, label in (
        ("test_1_epoch", "1 epoch, all 60,000 images (`--recipe fast`)"),
        ("test_2_epoch_55k", "2 epochs, 55,000 images (`make run`'s default)"),
    ):
        if key not in data:
            continue
        t, s = data[key]["test"], data[key]["command_seconds"]
        accs = [r["test_accuracy"] for r in data[key]["runs"]]
        rows.append(
            [
                label,
                f"**{pct(t['mean'])} ± {100 * t['sd']:.2f}** ({pct(min(accs))}–{pct(max(accs))})",
                f"{t['at_99']}/{t['n']}",
                f"{s['mean']:.1f} ± {s['sd']:.1f}",
            ]
        )
    out.append("\n**Test accuracy** (the whole `digitlab train --recipe fast` command, seeds 0–9):\n\n")
    out.append(table(["run", "test accuracy, mean ± sd (range)", "seeds at ≥ 99.0%", "command seconds"], rows))
    phases = data.get("test_1_epoch", {}).get("phases")
    if phases:
        out.append("\n**Where a one-epoch command's time goes** (median seconds of the 10 commands):\n\n")
        out.append(table(["phase", "seconds"], [[k.replace("_", " "), f"{v:.2f}"] for k, v in phases.items()]))
    relu = data.get("relu_order")
    if relu:
        out.append("\n**Pooling before or after the ReLU** (median ms per training step, batch 256):\n\n")
        out.append(table(["order", "ms per step"], [[k, f"{v['median_ms_per_step']:.1f}"] for k, v in relu.items()]))
    return "".join(out)


def train_speed(data: dict[str, Any]) -> str:
    """The race: the classic Keras example to its first epoch at 99% against `digitlab train --recipe fast`."""
    names = {
        "keras-example": "Keras example, to its first epoch at 99.0%",
        "digitlab-fast": "`digitlab train --recipe fast`, whole command, 1 epoch",
    }
    rows = []
    for key, runs in data["race"]["runs"].items():
        s = data["race"]["summary"][key]
        per_seed = ", ".join(f"{r['seconds']:.1f} (epoch {r['epoch']})" for r in runs)
        peak = max(r["peak_memory_mb"] for r in runs) / 1000
        rows.append(
            [
                names.get(key, key),
                f"{s['mean_seconds']:.1f} ± {s['sd_seconds']:.1f}",
                per_seed,
                pct(s["mean_test_accuracy"]),
                s["seeds_at_99"],
                f"{peak:.2f} GB",
            ]
        )
    header = ["run", "seconds, mean ± sd", "per seed", "test accuracy (mean)", "seeds at ≥ 99.0%", "peak memory"]
    ratio = data["race"]["summary"].get("speedup_to_99")
    tail = f"\n`fast` reaches a finished run **{ratio:.1f}× sooner**.\n" if ratio else ""
    return table(header, rows) + tail


def make_run(data: dict[str, Any]) -> str:
    """`make run` step by step, one column per recorded sample."""
    parts = []
    for train_flags, entry in data.items():
        if train_flags == "machine":
            continue
        samples = entry["samples"]
        steps = list(samples[0]["steps"])
        rows = [[step, _seconds(s["steps"][step] for s in samples)] for step in steps]
        rows.append(["**end of install → page serving**", f"**{_seconds(s['total_seconds'] for s in samples)}**"])
        again = [s for s in samples if "second_run_steps" in s]  # measured since the Makefile's `report` check
        if again:
            rows += [
                [f"second `make run`: {step}", _seconds(s["second_run_steps"][step] for s in again)]
                for step in again[0]["second_run_steps"]
            ]
            total = _seconds(s["second_run_seconds"] for s in again)
            rows.append(["**second `make run` → page serving**", f"**{total}**"])
        parts.append(f'`TRAIN="{train_flags}"`, {len(samples)} sample(s):\n\n')
        parts.append(table(["step", "seconds per sample"], rows))
    return "".join(parts)


def _seconds(values: Iterable[float]) -> str:
    """Seconds, one per sample, comma separated."""
    return ", ".join(f"{v:.1f}" for v in values)


def import_speed(data: dict[str, Any]) -> str:
    """`digitlab import` per model kind, and the served latency of imported models."""
    rows = [[f"`{i['model']}`", i["format"], i["detected"], f"{i['seconds']:.1f}"] for i in data["imports"]]
    out = table(["model", "format", "detected", "`digitlab import`, s (whole command)"], rows)
    rows = [[name, v["runtime"], f"{v['p50_ms']:.2f}", f"{v['p90_ms']:.2f}"] for name, v in data["latency"].items()]
    return out + "\n" + table(["served model", "runtime", "p50 ms", "p90 ms"], rows)


def wilson(share: float, n: int, z: float = 1.96) -> str:
    """The 95% Wilson score interval of a share measured on `n` cases, as "a–b%" (Wilson, JASA 1927)."""
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * (share * (1 - share) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
    return f"{100 * max(centre - half, 0):.1f}–{100 * min(centre + half, 1):.1f}%"


def read_numbers(data: dict[str, Any]) -> str:
    """Reading numbers against the ceiling and two naive readers; the refusal's rates and trade-off.

    Each exact share has its 95% interval, and the separated and touching rows are pooled too (what the issue's
    targets name, beside their pooled ceiling): at 200 numbers a row, one number is half a point.
    """
    rows = []
    for name, n in data["numbers"].items():
        rows.append(
            [
                name,
                str(n["numbers"]),
                pct(n["ceiling"], 1),
                pct(n["read"]["exact"], 1),
                wilson(n["read"]["exact"], n["numbers"]),
                pct(n["read"]["digits"], 1),
                pct(n["components"]["exact"], 1),
                pct(n["one box"]["exact"], 1),
            ]
        )
    for gap in ("separated", "touching"):
        chosen = [n for name, n in data["numbers"].items() if name.endswith(gap)]
        count = sum(n["numbers"] for n in chosen)
        exact = sum(n["read"]["exact"] * n["numbers"] for n in chosen) / count
        ceiling = sum(n["ceiling"] * n["numbers"] for n in chosen) / count
        rows.append(
            [f"**all {gap}**", str(count), pct(ceiling, 1), f"**{pct(exact, 1)}**", wilson(exact, count), "", "", ""]
        )
    header = [
        "numbers",
        "n",
        "ceiling",
        "read exact",
        "95% interval",
        "read digits",
        "components exact",
        "one box exact",
    ]
    out = [
        f"Model `{data['model']}`, numbers made of MNIST {data['split']} digits; single-digit accuracy on the "
        f"same styles {pct(data['single_digit_accuracy'])}{single_count(data)}.\n\n",
        table(header, rows),
    ]
    refusal = data["refusal"]
    families = ", ".join(f"{k} {pct(v, 0)}" for k, v in refusal["families"].items())
    out.append(
        f"\n**Refusal at the run's threshold:** {pct(refusal['digits refused'], 1)} of "
        f"{refusal['digits']} real single-digit canvases refused; **{pct(refusal['non-digits refused'], 1)}** "
        f"of non-digits refused ({families}).\n\n"
    )
    rows = [[pct(c["digits refused"], 1), pct(c["non-digits accepted"], 0)] for c in refusal["curve"]]
    out.append(table(["digits refused", "non-digits accepted"], rows))
    if "read_5_digits_p50_ms" in data:
        out.append(f"\n`read` of a 5-digit canvas, p50 in this run: {data['read_5_digits_p50_ms']:.1f} ms.\n")
    return "".join(out)


def single_count(data: dict[str, Any]) -> str:
    """The ceiling's base: how many digits and its 95% interval, when the results say (older ones do not)."""
    if "single_digits" not in data:
        return ""
    n = data["single_digits"]
    return f" (of {n:,} digits, {wilson(data['single_digit_accuracy'], n)})"


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested objects as dotted keys (`warm_prediction_ms.total.p50`), lists and scalars as leaves."""
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        out += flatten(value, f"{name}.") if isinstance(value, dict) else [(name, value)]
    return out


def generic(data: Any) -> str:
    """Any other results file: every number as a row of a key/value table.

    A new bench shows up on the page before it gets a renderer of its own.
    """
    if not isinstance(data, dict):
        return "```json\n" + json.dumps(data, indent=1)[:2000] + "\n```\n"
    rows = [[f"`{k}`", f"{v:,}" if isinstance(v, int) else json.dumps(v)[:120]] for k, v in flatten(data)]
    return table(["key", "value"], rows)


def load_speed(data: dict[str, Any]) -> str:
    """Loading verified MNIST from the cache: median and fastest of several runs."""
    rows = [
        [name, f"{1000 * v['median_s']:.2f}", f"{1000 * v['min_s']:.2f}", str(v["runs"])] for name, v in data.items()
    ]
    return table(["what", "median ms", "fastest ms", "runs"], rows)


def robustness(data: dict[str, Any]) -> str:
    """MNIST-C per corruption, then the cross-writer and real-digit rows: a column pair (alone | preprocessed) a run."""
    runs = data["runs"]

    def label(run: str, v: dict[str, Any]) -> str:
        s = v.get("settings", {})
        return f"`{run}` ({s.get('recipe')}, {s.get('epochs')} epochs)" if s else f"`{run}`"

    header = ["", *[f"{label(r, v)} alone / preprocessed" for r, v in runs.items()]]
    first = next(iter(runs.values()))
    rows = [
        ["clean", *[f"{pct(v['clean']['alone'], 1)} / {pct(v['clean']['preprocessed'], 1)}" for v in runs.values()]]
    ]
    for name in first["corruptions"]:
        cells = [
            f"{pct(v['corruptions'][name]['alone'], 1)} / {pct(v['corruptions'][name]['preprocessed'], 1)}"
            for v in runs.values()
        ]
        rows.append([name.replace("_", " "), *cells])
    rows.append(
        ["**mean**", *[f"**{pct(v['mean_alone'], 1)} / {pct(v['mean_preprocessed'], 1)}**" for v in runs.values()]]
    )
    rows.append(
        ["scikit-learn digits (preprocessed)", *[pct(v["sklearn_digits"]["accuracy"], 1) for v in runs.values()]]
    )

    def real(v: dict[str, Any]) -> str:
        r = v.get("real_digits")
        if not r:
            return "absent"
        styles = ", ".join(f"{k} {pct(r[k]['accuracy'], 1)}" for k in r if k not in ("all", "n"))
        return f"{pct(r['all']['accuracy'], 1)} of {r['n']}, {pct(r['all']['blank'], 1)} blank ({styles})"

    rows.append(["real digits (preprocessed)", *[real(v) for v in runs.values()]])
    limit = first.get("preprocessed_examples")
    note = f"\nModel alone on {first['examples']:,} test digits; through preprocessing on the first {limit:,}.\n"
    return table(header, rows) + note


def robust_recipe(data: dict[str, Any]) -> str:
    """The default-model search: screened and confirmed variants on validation, per held-out shift, and the choice."""

    def rows(part: dict[str, Any]) -> list[Row]:
        out = []
        for name in part["ranking"]:
            v = part["variants"][name]
            shifts = [pct(v["per_shift"][k]["mean"], 1) for k in data["held_out"]]
            clean = f"{pct(v['clean']['mean'])} ± {100 * v['clean']['sd']:.2f}"
            held = f"{pct(v['held_out_mean']['mean'])} ± {100 * v['held_out_mean']['sd']:.2f}"
            out.append([name, str(len(v["seeds"])), clean, held, *shifts, f"{v['train_seconds']['mean']:.0f}"])
        return out

    header = ["variant", "seeds", "clean (val)", "held out (mean)", *data["held_out"], "train s"]
    chosen = data.get("chosen") or "not yet (confirmation incomplete)"
    out = (
        f"**Screen** (seed {data['screen']['seed']}, ranked by the rule):\n\n"
        + table(header, rows(data["screen"]))
        + f"\n**Confirm** (seeds {', '.join(map(str, data['confirm']['seeds']))}):\n\n"
        + table(header, rows(data["confirm"]))
        + f"\nChosen on validation: **{chosen}**.\n"
    )
    recipes = data.get("recipes") or {}
    if recipes:
        measures = list(dict.fromkeys(m for entry in recipes.values() for m in entry))

        def cell(v: dict[str, Any] | None, name: str) -> str:
            if v is None:
                return "—"
            if name == "train seconds":
                return f"{v['mean']:.0f} ± {v['sd']:.0f}"
            return f"{pct(v['mean'])} ± {100 * v['sd']:.2f}"

        rows_ = [[name, *[cell(entry.get(m), m) for m in measures]] for name, entry in recipes.items()]
        out += (
            "\n**The test phase's recipes** (seeds 0–2, mean ± sd; MNIST-C through predict on the first 500 test "
            "digits):\n\n" + table(["recipe", *measures], rows_)
        )
    verdict = data.get("switch") or {}
    if verdict.get("decided"):
        checks = [
            [name, f"{c['value']:.4f}", f"{c['bar']:.4f}", "met" if c["met"] else "**missed**"]
            for name, c in verdict["checks"].items()
        ]
        decision = "switch `make run`'s default" if verdict["switch"] else "keep `make run`'s default"
        out += (
            "\n**The switch rule** (test seeds 0–2, whole commands; MNIST-C model alone on 10,000 digits; both real "
            f"sets through the answer path), against the default: **{decision}**.\n\n"
            + table(["bar", "chosen", "needed", ""], checks)
        )
    return out


def real_digits(data: dict[str, Any]) -> str:
    """Real handwriting answered as `digitlab predict` answers it, per measured entry, set and style."""
    header = ["set", "style", "n", "right", "wrong", "blank", "refused"]
    out = []
    for label, entry in data.items():
        rows = []
        for name in ("real-digits", "real-digits-2"):
            for style, c in (entry.get(name) or {}).get("styles", {}).items():
                counts = [str(c[k]) for k in ("wrong", "blank", "refused")]
                rows.append([name, style, str(c["n"]), pct(c["accuracy"], 1), *counts])
        out.append(f"**{label}** (`{entry['run']}`, {entry['commit']}):\n\n" + table(header, rows))
    return "\n".join(out)


def stroke_range(data: dict[str, Any]) -> str:
    """MNIST's stroke widths as the pipeline measures them, and each candidate top of the range on validation."""
    quantiles = data["mnist_training_quantiles"]
    out = [
        "MNIST training digits drawn on the canvas, stroke width / longer side:\n\n"
        + table(list(quantiles), [[f"{v:.3f}" for v in quantiles.values()]])
    ]
    rows = data["candidates"]
    styles = len(next(iter(rows.values()))["styles"])
    total = data["validation_digits"] * styles
    body = [
        [
            f"**{top}**" if top == data["kept"] else top,
            pct(row["eroded"], 1),
            pct(row["model right"] / total),
            pct(row["answered right"] / total),
        ]
        for top, row in rows.items()
    ]
    out.append(
        f"\nEach top on {total:,} drawn validation digits ({styles} styles; lower bound {data['lower']}; each top "
        f"with its own refusal; the rule's choice in bold):\n\n"
        + table(["top", "eroded", "model right", "answered right"], body)
    )
    check = data.get("test_check")
    if check:
        tops = [k for k in check if k not in ("test_digits", "commit")]
        styles = list(check[tops[0]]["styles"])
        rows = [[s, *[pct(check[t]["styles"][s]["answered"], 1) for t in tops]] for s in styles]
        out.append(
            f"\nThe test check ({check['test_digits']:,} test digits per style, {check['commit']}), answered right:\n\n"
            + table(["style", *[f"top {t}" for t in tops]], rows)
        )
    return "".join(out)


def refusal(data: dict[str, Any]) -> str:
    """Each run's refusals: the share refused of each set at their thresholds, and at equal digit refusal."""
    out = []
    for run, entry in data.items():
        kinds = entry["refusals"]
        names = list(next(iter(kinds.values()))["refused"])
        rows = [
            [name, str(entry["counts"][name]), *[pct(k["refused"][name], 1) for k in kinds.values()]] for name in names
        ]
        header = ["set", "n", *[f"refused, {kind}" for kind in kinds]]
        out.append(f"**`{run}`** ({entry['commit']}):\n\n" + table(header, rows))
        qs = list(next(iter(kinds.values()))["non-digits refused at q of drawn digits refused"])
        curve = [
            [kind, *[pct(k["non-digits refused at q of drawn digits refused"][q], 1) for q in qs]]
            for kind, k in kinds.items()
        ]
        out.append(
            "\nNon-digits refused (mean of families) when the threshold refuses this share of the drawn test digits:"
            "\n\n" + table(["refusal", *[pct(float(q), 1) for q in qs]], curve)
        )
    return "\n".join(out)


def refusal_signals(data: dict[str, Any]) -> str:
    """Each signal and combination (or learned scorer): the share of each set refused at one cost in drawn digits."""
    out = []
    for run, entry in data.items():
        rows = [[name, *[pct(v, 1) for v in rates.values()]] for name, rates in entry["rows"].items()]
        header = ["signal", *next(iter(entry["rows"].values()))]
        out.append(f"**`{run}`** ({entry['commit']}), each at {pct(entry['cost'], 1)} of drawn digits refused:")
        out.append("\n" + table(header, rows))
    return "\n".join(out)


def _ms(v: dict[str, float], digits: int = 1) -> str:
    return f"{pct(v['mean'], digits)} ± {pct(v['sd'], digits)}"


def _test_check(test: dict[str, Any], first: str, title: str = "**Test check** (seeds 0–2, whole commands)") -> str:
    """The test phase of a seeded choice (bench/outlier_exposure.py, bench/served_copies.py): one row per option."""
    rows = [
        [
            option,
            _ms(v["test_accuracy"], 2),
            _ms(v["real_digits"]["real-digits"]["accuracy"]),
            _ms(v["real_digits"]["real-digits-2"]["accuracy"]),
            _ms(v["non_digits_refused"]),
            _ms(v["drawn_digits_refused"], 2),
            _ms(v["non_digits_refused_at_0.5%"]),
            f"{v['train_command_seconds']['mean']:.0f} s",
        ]
        for option, v in test.items()
    ]
    header = [first, "test", "real-digits", "real-digits-2", "non-digits refused", "drawn refused", "at 0.5%", "train"]
    return f"{title}:\n\n" + table(header, rows)


def outlier_exposure(data: dict[str, Any]) -> str:
    """Outlier Exposure per λ: the validation choice (mean ± sd over seeds), then the test check."""
    rows = [
        [lam, str(v["seeds"]), _ms(v["clean"], 2), _ms(v["non_digits"]), _ms(v["drawn_refused_at_own_threshold"], 2)]
        for lam, v in data["lambdas"].items()
    ]
    header = ["λ", "seeds", "clean validation", "non-digits refused at 0.5%", "drawn refused at own threshold"]
    refusal = data.get("refusal_schema", "digitlab.refusal/3")
    out = [f"**Validation** (the choice; refusal `{refusal}`):\n\n" + table(header, rows)]
    out.append(f"\nRule verdict: `{data['verdict']}`\n")
    if data.get("test"):
        out.append(_test_check(data["test"], "λ"))
    return "\n".join(out)


def served_copies(data: dict[str, Any]) -> str:
    """--served-copies against make run's recipe: the validation choice, the test check and the switch rule."""
    rows = [
        [
            name,
            str(v["seeds"]),
            _ms(v["clean"], 2),
            _ms(v["drawn"], 2),
            _ms(v["non_digits"]),
            _ms(v["drawn_refused_at_own_threshold"], 2),
        ]
        for name, v in data["variants"].items()
    ]
    header = ["training", "seeds", "clean validation", "drawn validation digits", "non-digits at 0.5%"]
    header.append("drawn refused at own threshold")
    out = ["**Validation** (the choice):\n\n" + table(header, rows), f"\nRule verdict: `{data['verdict']}`\n"]
    if data.get("test"):
        out.append(_test_check(data["test"], "training"))
    if data.get("switch"):
        out.append(_switch_rule(data["switch"], "**Switch rule** for `make run` (seeds 0–2)"))
    if data.get("confirmation"):
        title = "\n**Confirmation** (seeds 0–4: seeds 3 and 4 added as written before their runs; it decides)"
        out.append(_test_check(data["confirmation"]["test"], "training", title))
        out.append(_switch_rule(data["confirmation"]["switch"], "**Switch rule** over seeds 0–4"))
    return "\n".join(out)


def _switch_rule(switch: dict[str, Any], title: str) -> str:
    """Each check of a switch rule: the value, its bar and whether it is met."""
    rows = [
        [k, pct(c["value"], 2), pct(c["bar"], 2), "met" if c["met"] else "**not met**"]
        for k, c in switch["checks"].items()
    ]
    return f"\n{title}:\n\n" + table(["check", "served copies", "bar", ""], rows)


def read_weights(data: dict[str, Any]) -> str:
    """The reader's refusal term on a grid: each (weight, margin)'s numbers read exactly, the shipped one marked."""
    rows = [
        [f"**{term}** (shipped)" if term == data["shipped"] else term, *[pct(v, 1) for v in shares.values()]]
        for term, shares in data["rows"].items()
    ]
    kinds = list(next(iter(data["rows"].values())))
    note = f"{data['numbers per (length, gap)']} numbers per length and gap, {data['split']} digits.\n\n"
    return note + table(["refusal term (nats)", *kinds], rows)


def pct1(x: float) -> str:
    """A fraction as a percentage with one decimal."""
    return pct(x, 1)


def read_sweep(data: dict[str, Any]) -> str:
    """One table per swept reader constant (and seed): each value's numbers read exactly, the shipped one marked."""
    out = []
    for key, entry in data.items():
        rows = [
            [
                f"**{value}** (shipped)" if float(value) == float(entry["shipped"]) else value,
                *map(pct1, shares.values()),
            ]
            for value, shares in entry["rows"].items()
        ]
        kinds = list(next(iter(entry["rows"].values())))
        note = (
            f"**{key}**: {entry['numbers per (length, gap)']} numbers per length and gap, {entry['split']} digits.\n\n"
        )
        out.append(note + table([entry["constant"], *kinds], rows))
    return "\n".join(out)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "read_weights": read_weights,
    "read_sweep": read_sweep,
    "read_numbers_served_copies": read_numbers,  # bench/read_numbers.py --results ... on a --served-copies run
    "refusal": refusal,
    "outlier_exposure": outlier_exposure,
    "served_copies": served_copies,
    "refusal_signals": refusal_signals,
    "refusal_learned": refusal_signals,  # the same shape: rows of shares refused at one cost
    "real_digits": real_digits,
    "robust_recipe": robust_recipe,
    "robustness": robustness,
    "fast_recipe": fast_recipe,
    "train_speed": train_speed,
    "make_run": make_run,
    "load_speed": load_speed,
    "import_speed": import_speed,
    "read_numbers": read_numbers,
    "stroke_range": stroke_range,
}


def bench_section(name: str) -> str:
    """The Markdown for one bench: its tables from the committed JSON, or a note that it awaits a re-run.

    Args:
        name: the bench's name, `bench/NAME.py` writing `bench/results/NAME.json`.

    Returns:
        Markdown text.

    Raises:
        FileNotFoundError: neither the bench script nor its results exist (a typo in the page).
    """
    path = RESULTS / f"{name}.json"
    script = ROOT / "bench" / f"{name}.py"
    if not path.exists():
        if not script.exists():
            raise FileNotFoundError(f"docs marker names bench {name!r}, but bench/{name}.py does not exist")
        return (
            f'!!! note "Not yet re-run"\n    `bench/results/{name}.json` is not committed yet: this bench '
            f"needs a trained model or minutes of machine time, and its figures are committed when it is next run "
            f"(`.venv/bin/python bench/{name}.py`).\n"
        )
    data = json.loads(path.read_text())
    source = f"\n<small>Generated from `bench/results/{name}.json` when the site was built.</small>\n"
    return RENDERERS.get(name, generic)(data) + source


def api_modules(plane: str) -> str:
    """One mkdocstrings block per public module of a plane, found on disk.

    Args:
        plane: a folder under `src/digitlab` (`data`, `models`, …), or `core` for the top-level modules.

    Returns:
        Markdown with one `::: digitlab.…` block per module, in file-name order.

    Raises:
        FileNotFoundError: the plane does not exist.
    """
    folder = PACKAGE if plane == "core" else PACKAGE / plane
    if not folder.is_dir():
        raise FileNotFoundError(f"docs marker names plane {plane!r}, but src/digitlab/{plane} does not exist")
    prefix = "digitlab" if plane == "core" else f"digitlab.{plane}"
    modules = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    return "\n".join(f"::: {prefix}.{m}\n" for m in modules)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs event: expand the markers of one page before it is rendered.

    Args:
        markdown: the page's Markdown source.

    Returns:
        The source with every marker replaced.
    """
    markdown = BENCH_MARKER.sub(lambda m: bench_section(m.group(1)), markdown)
    return API_MARKER.sub(lambda m: api_modules(m.group(1)), markdown)
