"""Reading numbers and refusing non-digits, measured: `digitlab read` against two naive baselines and the ceiling.

Run: `.venv/bin/python bench/read_numbers.py --model RUN [--count 60] [--split test]` — prints the tables and
writes bench/results/read_numbers.json. `--split validation` builds everything from the run's held-out
training digits instead: the reader's constants (`read.PIECE_COST`, `SPLIT_WIDER`, `SPLIT_ABOVE`) were chosen
that way, never on test. `--prior` prints the width prior of `read.WIDTH_PRIOR` from the training digits.

- Numbers: `synthetic.number_image` of 2–6 MNIST digits, gaps touching / close / apart / wide, in canvas,
  black-on-white and photo styles, `--count` per (length, gap). Exact match (the whole text right) and digit
  accuracy (1 − edit distance / length, floored at 0).
- Baselines: "one box" (all ink as one digit, what a single-digit app does) and "components" (8-connected
  ink blobs left to right, no merging or splitting).
- Ceiling: single-digit accuracy on the same styles (each digit alone, as a number of length 1) raised to the
  length: what a perfect segmenter would get with this model.
- Refusal: the share of real single-digit canvases (MNIST test digits in the 7 canvas styles) refused as not a
  digit or several digits, and the share of each non-digit family refused, at the run's threshold; and the
  trade-off when the threshold moves.
- Speed: `read` of a 5-digit canvas PNG end to end in this process (decode, segment, model on ONNX Runtime),
  p50 over 100 canvases.
- `--failures DIR`: where separated numbers are lost (`failures`), each misread number written out as an image, and
  DIR/overview.png of the first merges, splits and misreads inside the number (the reading-numbers guide's
  picture); with `--touching`, the same for touching numbers (`bench/results/read_failures_touching.json`).
- `--sweep NAME=V1,V2,...`: one constant of the reader or the segmentation at each value, the same numbers for each
  (`bench/results/read_sweep.json`; run it with `--split validation`).
- `--weights`: the reader's refusal term (`read.NOT_DIGIT_WEIGHT`, `NOT_DIGIT_MARGIN`) on a grid, the same numbers
  for each (`bench/results/read_weights.json`; run it with `--split validation`).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from pathlib import Path

import numpy as np

from _common import write_results  # beside this file (a script's folder is on sys.path)

RESULTS = Path(__file__).parent / "results" / "read_numbers.json"
LENGTHS = (2, 3, 4, 5, 6)


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def digit_accuracy(text: str, truth: str) -> float:
    return max(0.0, 1.0 - edit_distance(text, truth) / len(truth))


def png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def baselines(data: bytes, predictor) -> dict[str, str]:
    """What the naive readers say: one box around all ink, and plain connected components."""
    from digitlab.data.preprocess import bounding_box, normalise_digit, to_mnist_28x28
    from digitlab.data.segment import ink_components
    from digitlab.inference.read import _line_ink

    whole = to_mnist_28x28(data)
    one_box = "" if whole.blank else str(int(predictor.probabilities(whole.pixels[None]).argmax()))
    ink = _line_ink(data, 10**8)
    parts = sorted(ink_components(ink.flat), key=lambda c: c[1][2])
    pieces = [normalise_digit(ink, mask, bounding_box(mask)).pixels for mask, _ in parts]
    components = "".join(str(int(i)) for i in predictor.probabilities(np.stack(pieces)).argmax(1)) if pieces else ""
    return {"one box": one_box, "components": components}


def number_cases(digits, labels, count: int, rng, lengths=LENGTHS):
    """(length, gap, PNG bytes, truth) of `count` numbers per (length, gap): every gap, a lone digit "apart"."""
    from digitlab.data.synthetic import GAPS, NUMBER_STYLES, number_image

    for length in lengths:
        for gap in GAPS if length > 1 else ("apart",):
            for _ in range(count):
                idx = rng.choice(len(digits), length)
                image, _ = number_image([digits[i] for i in idx], rng, gap, str(rng.choice(NUMBER_STYLES)))
                yield length, gap, png(image), "".join(str(labels[i]) for i in idx)


def numbers(predictor, digits, labels, count: int, rng) -> dict:
    from digitlab.inference.read import read_number

    rows = []
    for length, gap, data, truth in number_cases(digits, labels, count, rng):
        said = {"read": read_number(data, predictor).text, **baselines(data, predictor)}
        rows.append({"length": length, "gap": gap, "truth": truth, **said})
    return rows


WEIGHTS = Path(__file__).parent / "results" / "read_weights.json"
WEIGHT_GRID = ((1.0, 6.0), (0.5, 6.0), (2.0, 6.0), (1.0, 4.0), (1.0, 8.0), (1.0, 10.0), (0.5, 8.0), (2.0, 8.0))


def exact_shares(cases: list, predictor) -> dict[str, float]:
    """The share of `cases` (`number_cases` with lone digits) read exactly: touching, separated and a lone digit."""
    from digitlab.inference.read import read_number

    right: dict[str, list[bool]] = {"touching": [], "separated": [], "lone digit": []}
    for length, gap, data, truth in cases:
        kind = "lone digit" if length == 1 else "touching" if gap == "touching" else "separated"
        right[kind].append(read_number(data, predictor).text == truth)
    return {k: round(float(np.mean(v)), 4) for k, v in right.items()}


def weights(predictor, digits, labels, count: int, rng) -> dict:
    """The reader's refusal term (`read.NOT_DIGIT_WEIGHT`, `NOT_DIGIT_MARGIN`) on the same numbers, each pair of
    `WEIGHT_GRID`: the share read exactly, touching, separated and a lone digit (`--weights`, on validation)."""
    import digitlab.inference.read as read

    cases = list(number_cases(digits, labels, count, rng, lengths=(1, *LENGTHS)))
    kept = read.NOT_DIGIT_WEIGHT, read.NOT_DIGIT_MARGIN
    out = {}
    try:
        for weight, margin in WEIGHT_GRID:
            read.NOT_DIGIT_WEIGHT, read.NOT_DIGIT_MARGIN = weight, margin
            shares = exact_shares(cases, predictor)
            out[f"{weight} × (score − threshold + {margin})"] = shares
            print(f"weight {weight}, margin {margin}: " + ", ".join(f"{k} {v:.1%}" for k, v in shares.items()))
    finally:
        read.NOT_DIGIT_WEIGHT, read.NOT_DIGIT_MARGIN = kept
    return {"numbers per (length, gap)": count, "shipped": f"{kept[0]} × (score − threshold + {kept[1]})", "rows": out}


SWEEP = Path(__file__).parent / "results" / "read_sweep.json"


def sweep(predictor, digits, labels, count: int, rng, name: str, values: list[float]) -> dict:
    """One constant of `read` or `segment` (`NAME`) at each of `values`, on the same numbers: the share read exactly,
    touching and separated (lengths 2–6) and a lone digit (`--sweep NAME=v1,v2,...`; run it with `--split validation`).
    """
    import digitlab.data.segment as segment
    import digitlab.inference.read as read

    module = read if hasattr(read, name) else segment
    if not hasattr(module, name):
        raise SystemExit(f"--sweep: neither digitlab.inference.read nor digitlab.data.segment has {name}")
    cases = list(number_cases(digits, labels, count, rng, lengths=(1, *LENGTHS)))
    kept, rows = getattr(module, name), {}
    try:
        for value in values:
            setattr(module, name, type(kept)(value))
            rows[str(value)] = exact_shares(cases, predictor)
            print(f"{name} = {value}: " + ", ".join(f"{k} {v:.1%}" for k, v in rows[str(value)].items()), flush=True)
    finally:
        setattr(module, name, kept)
    return {"constant": name, "shipped": kept, "numbers per (length, gap)": count, "rows": rows}


FAILURES = Path(__file__).parent / "results" / "read_failures.json"
FAILURES_TOUCHING = Path(__file__).parent / "results" / "read_failures_touching.json"
CAUSES = ("merged: fewer digits", "split: more digits", "misread inside the number only", "misread alone too")


def failures(predictor, digits, labels, count: int, rng, out: Path, touching: bool = False) -> dict:
    """Where separated (or, with `touching`, touching) numbers are lost: each wrong reading written to `out` as a
    PNG and given one cause.

    A reading with fewer digits than the truth merged pieces (or lost one); with more, it split one. Otherwise
    each wrong digit is read again alone, drawn in the same style as a number of one: if the model misreads it
    alone too, the loss is the model's; if not, it comes from reading it inside the number (its cut, its size
    normalisation, the refusal term or the width prior in the reader's search).
    """
    from digitlab.data.preprocess import to_mnist_28x28
    from digitlab.data.synthetic import GAPS, NUMBER_STYLES, number_image
    from digitlab.inference.read import read_number

    out.mkdir(parents=True, exist_ok=True)
    counts = {"numbers": 0, "right": 0, **dict.fromkeys(CAUSES, 0)}
    for length in LENGTHS:
        for gap in ("touching",) if touching else (g for g in GAPS if g != "touching"):
            for _ in range(count):
                idx = rng.choice(len(digits), length)
                style = str(rng.choice(NUMBER_STYLES))
                image, _ = number_image([digits[i] for i in idx], rng, gap, style)
                truth = "".join(str(labels[i]) for i in idx)
                text = read_number(png(image), predictor).text
                counts["numbers"] += 1
                if text == truth:
                    counts["right"] += 1
                    continue
                if len(text) != len(truth):
                    cause = CAUSES[0] if len(text) < len(truth) else CAUSES[1]
                else:
                    alone_wrong = False
                    for i, (a, b) in enumerate(zip(text, truth, strict=True)):
                        if a != b:
                            single, _ = number_image([digits[idx[i]]], rng, "apart", style)
                            p = to_mnist_28x28(single)
                            alone_wrong |= (
                                p.blank or int(predictor.probabilities(p.pixels[None]).argmax()) != labels[idx[i]]
                            )
                    cause = CAUSES[3] if alone_wrong else CAUSES[2]
                counts[cause] += 1
                slug = cause.split(":")[0].replace(" ", "-")
                image.save(out / f"{slug}-{counts['numbers']:04d}-{truth}-read-as-{text or 'nothing'}.png")
    wrong = counts["numbers"] - counts["right"]
    counts["share of the wrong"] = {c: round(counts[c] / max(wrong, 1), 3) for c in CAUSES}
    overview(out)
    return counts


def overview(folder: Path, per_cause: int = 4) -> None:
    """`folder`/overview.png: the first `per_cause` merges, splits and misreads inside the number, captioned, two to
    a row (the picture in the reading-numbers guide, docs/img/read-failures.png)."""
    from PIL import Image, ImageDraw

    shown = [
        (path, f"{cause} {path.stem.split('-')[-4]} read as {path.stem.split('-')[-1]}")
        for prefix, cause in (("merged-", "merged"), ("split-", "split"), ("misread-inside", "inside only:"))
        for path in sorted(folder.glob(f"{prefix}*.png"))[:per_cause]
    ]
    if not shown:
        return
    cell_w, cell_h = 370, 112
    sheet = Image.new("RGB", (2 * cell_w, cell_h * ((len(shown) + 1) // 2)), (235, 235, 235))
    draw = ImageDraw.Draw(sheet)
    for k, (path, caption) in enumerate(shown):
        x, y = cell_w * (k % 2), cell_h * (k // 2)
        image = Image.open(path).convert("RGB")
        image.thumbnail((cell_w - 10, cell_h - 22))
        sheet.paste(image, (x + 5, y + 2))
        draw.text((x + 5, y + cell_h - 18), caption, fill=(20, 20, 20))
    sheet.save(folder / "overview.png")


SINGLE_DIGITS = 5000  # distinct digits behind the ceiling: 600 left it ±1.2 points (95%), a six-digit ceiling ±7


def single_digit_accuracy(predictor, digits, labels, rng, count: int = SINGLE_DIGITS) -> tuple[float, int]:
    """The share of `count` distinct digits (all of them when fewer) read right alone, each drawn as a number of
    one in the three number styles in turn and made 28×28 as a single digit is: the ceiling's base."""
    from digitlab.data.preprocess import to_mnist_28x28
    from digitlab.data.synthetic import NUMBER_STYLES, number_image

    chosen = rng.permutation(len(digits))[:count]
    right = 0
    for n, i in enumerate(chosen):
        image, _ = number_image([digits[i]], rng, "apart", NUMBER_STYLES[n % len(NUMBER_STYLES)])
        p = to_mnist_28x28(image)
        right += (not p.blank) and int(predictor.probabilities(p.pixels[None]).argmax()) == labels[i]
    return right / len(chosen), len(chosen)


def summarise(rows: list[dict], ceiling_digit: float) -> dict:
    out = {}
    for key, select in (
        *[(f"length {n}, separated", lambda r, n=n: r["length"] == n and r["gap"] != "touching") for n in LENGTHS],
        *[(f"length {n}, touching", lambda r, n=n: r["length"] == n and r["gap"] == "touching") for n in LENGTHS],
    ):
        chosen = [r for r in rows if select(r)]
        length = chosen[0]["length"]
        out[key] = {
            "numbers": len(chosen),
            "ceiling": ceiling_digit**length,
            **{
                who: {
                    "exact": float(np.mean([r[who] == r["truth"] for r in chosen])),
                    "digits": float(np.mean([digit_accuracy(r[who], r["truth"]) for r in chosen])),
                }
                for who in ("read", "components", "one box")
            },
        }
    return out


def refusal(predictor, test_digits, count: int, rng) -> dict:
    from digitlab.data.preprocess import to_mnist_28x28
    from digitlab.data.synthetic import NON_DIGIT_FAMILIES, STYLES, non_digit, render
    from digitlab.inference.verdict import answer_all

    def verdicts(images):
        out, scores = [], []
        for image in images:
            p = to_mnist_28x28(image)
            if p.blank:
                out.append("blank")
                continue
            logits, net = predictor.forward(p.pixels[None])
            out.append(answer_all([p], logits, net, predictor)[0].verdict)
            scores.append(float(predictor.refusal().score(p.pixels[None], logits, net)[0]))
        return out, np.array(scores)

    digit_verdicts, digit_scores = verdicts(
        render(test_digits[i], STYLES[i % len(STYLES)], rng) for i in rng.choice(len(test_digits), count * 5)
    )
    result = {
        "digits refused": float(np.mean([v in ("not_a_digit", "several_digits") for v in digit_verdicts])),
        "digits": len(digit_verdicts),
        "families": {},
    }
    all_scores = []
    for family in NON_DIGIT_FAMILIES:
        family_verdicts, scores = verdicts(non_digit(family, rng) for _ in range(count))
        result["families"][family] = float(np.mean([v != "digit" for v in family_verdicts]))
        all_scores.append(scores)
    others = np.concatenate(all_scores)
    result["non-digits refused"] = float(np.mean(list(result["families"].values())))
    result["curve"] = [
        {"digits refused": q, "non-digits accepted": float(np.mean(others <= np.quantile(digit_scores, 1 - q)))}
        for q in (0.005, 0.01, 0.02, 0.05, 0.1)
    ]
    return result


def speed(predictor, digits, rng, count: int = 100) -> float:
    from digitlab.data.synthetic import number_image
    from digitlab.inference.read import read_number

    canvases = [
        png(number_image([digits[i] for i in rng.choice(len(digits), 5)], rng, "apart")[0]) for _ in range(count)
    ]
    read_number(canvases[0], predictor)
    times = []
    for data in canvases:
        start = time.perf_counter()
        read_number(data, predictor)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def print_prior() -> None:
    from digitlab.data.mnist import load_mnist

    ink = load_mnist().x_train[:20000] > 50
    ratios = []
    for image in ink:
        rows, cols = np.flatnonzero(image.any(1)), np.flatnonzero(image.any(0))
        ratios.append((cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1))
    index = np.clip(np.round(np.array(ratios) * 10).astype(int) - 1, 0, 19)
    counts = np.bincount(index, minlength=20).astype(float)
    log_density = np.maximum(np.log(np.maximum(counts, 0.5) / counts.max()), -10)
    mode = int(log_density.argmax())
    left = np.minimum.accumulate(log_density[: mode + 1][::-1])[::-1]
    right = np.minimum.accumulate(log_density[mode:])
    print(np.round(np.concatenate([left[:-1], right]), 1).tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a run directory or model file")
    parser.add_argument("--count", type=int, default=60, help="numbers per (length, gap) (default 60)")
    parser.add_argument("--split", choices=("test", "validation"), default="test", help="digits to build from")
    parser.add_argument("--prior", action="store_true", help="print the width prior and exit")
    parser.add_argument("--seed", type=int, default=0, help="the numbers' random seed (default 0)")
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="where the tables go (default bench/results/read_numbers.json)"
    )
    parser.add_argument("--speed-only", action="store_true", help="only time read on 5-digit canvases")
    parser.add_argument(
        "--weights",
        action="store_true",
        help="only the reader's refusal term: each weight and margin of WEIGHT_GRID on the same numbers, to "
        "bench/results/read_weights.json (use with --split validation)",
    )
    parser.add_argument(
        "--failures",
        type=Path,
        metavar="DIR",
        help="only the separated numbers: write each misread one to DIR as a PNG with its cause, and the counts "
        "to bench/results/read_failures.json",
    )
    parser.add_argument(
        "--sweep",
        metavar="NAME=V1,V2,...",
        help="only one constant of digitlab.inference.read or digitlab.data.segment at each value, on the same "
        "numbers (bench/results/read_sweep.json, one entry per constant; use with --split validation)",
    )
    parser.add_argument(
        "--touching",
        action="store_true",
        help="with --failures: the touching numbers instead (bench/results/read_failures_touching.json)",
    )
    args = parser.parse_args()
    if args.prior:
        print_prior()
        return
    from digitlab.data.mnist import load_splits, split_seed
    from digitlab.inference.predictor import Predictor

    predictor = Predictor.load(args.model, "onnx")
    settings = predictor.loaded.settings
    splits = load_splits(None, settings.get("validation_size", 5000), split_seed(settings))
    digits, labels = (splits.x_test, splits.y_test) if args.split == "test" else (splits.x_val, splits.y_val)
    rng = np.random.default_rng(args.seed)
    if args.failures:
        counts = failures(predictor, digits, labels, args.count, rng, args.failures, args.touching)
        print(json.dumps(counts, indent=2))
        results = FAILURES_TOUCHING if args.touching else FAILURES
        write_results(results, {"model": str(args.model), "split": args.split, **counts})
        print(f"written {results}; the misread numbers are in {args.failures}")
        return
    if args.sweep:
        name, _, values = args.sweep.partition("=")
        result = sweep(predictor, digits, labels, args.count, rng, name, [float(v) for v in values.split(",")])
        previous = json.loads(SWEEP.read_text()) if SWEEP.exists() else {}
        key = name if args.seed == 0 else f"{name}, seed {args.seed}"
        write_results(SWEEP, {**previous, key: {"model": str(args.model), "split": args.split, **result}})
        print(f"written {SWEEP}")
        return
    if args.weights:
        grid = weights(predictor, digits, labels, args.count, rng)
        write_results(WEIGHTS, {"model": str(args.model), "split": args.split, **grid})
        print(f"written {WEIGHTS}")
        return
    if args.speed_only:
        p50 = speed(predictor, digits, rng)
        print(f"read of a 5-digit canvas PNG, end to end in-process (ONNX Runtime): p50 {p50:.1f} ms")
        return
    single, single_count = single_digit_accuracy(predictor, digits, labels, rng)
    rows = numbers(predictor, digits, labels, args.count, rng)
    table = summarise(rows, single)
    refused = refusal(predictor, digits, args.count, rng)
    p50 = speed(predictor, digits, rng)
    print(f"single-digit accuracy on the number styles: {single:.2%} ({single_count} {args.split} digits)\n")
    print("| numbers | n | ceiling | read exact | read digits | components exact | one box exact |")
    print("|---|---|---|---|---|---|---|")
    for key, r in table.items():
        print(
            f"| {key} | {r['numbers']} | {r['ceiling']:.1%} | {r['read']['exact']:.1%} | {r['read']['digits']:.1%} "
            f"| {r['components']['exact']:.1%} | {r['one box']['exact']:.1%} |"
        )
    print(
        f"\nrefused: {refused['digits refused']:.1%} of {refused['digits']} real single-digit canvases; "
        f"{refused['non-digits refused']:.1%} of non-digits: "
        + ", ".join(f"{f} {v:.0%}" for f, v in refused["families"].items())
    )
    print(
        "trade-off (refusal score alone): "
        + ", ".join(
            f"{c['digits refused']:.1%} digits refused → {c['non-digits accepted']:.0%} non-digits accepted"
            for c in refused["curve"]
        )
    )
    print(f"\nread of a 5-digit canvas PNG, end to end in-process (ONNX Runtime): p50 {p50:.1f} ms")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(
        json.dumps(
            {
                "model": str(args.model),
                "split": args.split,
                "count": args.count,
                "single_digit_accuracy": single,
                "single_digits": single_count,
                "numbers": table,
                "refusal": refused,
                "read_5_digits_p50_ms": p50,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written {args.results}")


if __name__ == "__main__":
    main()
